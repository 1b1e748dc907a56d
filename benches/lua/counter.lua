-- Sums N messages, then sends the sum to `main` on topic "count".
local function main(main_pid: string, n: number)
	local inbox = process.inbox()
	local sum = 0
	for _ = 1, n do
		sum += inbox:receive():payload():data()
	end
	process.send(main_pid, "count", sum)
end

return { main = main }
