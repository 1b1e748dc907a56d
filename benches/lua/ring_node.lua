-- A ring member: forwards K-1 to the next member until it sees 0 (which it passes on once).
-- The last member (next == "") learns the first member's PID from its first message and reports
-- completion to `main`.
local function main(next_pid: string, main_pid: string?)
	local inbox = process.inbox()
	if next_pid == "" then
		next_pid = inbox:receive():payload():data()
		while true do
			local k = inbox:receive():payload():data()
			if k == 0 then
				process.send(main_pid, "done", true)
				return
			end
			process.send(next_pid, "k", k - 1)
		end
	end
	while true do
		local k = inbox:receive():payload():data()
		if k == 0 then
			process.send(next_pid, "k", 0)
			return
		end
		process.send(next_pid, "k", k - 1)
	end
end

return { main = main }
