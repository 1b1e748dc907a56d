-- Counts messages until "end"; they must arrive in the order sent.
local function main(parent: string)
	local inbox = process.inbox()
	local count = 0
	while true do
		local msg = inbox:receive()
		if msg:topic() == "end" then
			break
		end
		local v = msg:payload():data()
		count += 1
		if v ~= count then
			error(string.format("message %d arrived as number %d", v, count))
		end
	end
	process.send(parent, "count", count)
end
return { main = main }
