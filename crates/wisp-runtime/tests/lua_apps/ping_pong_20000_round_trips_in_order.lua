-- expect: 20000
-- on: terminal
-- args: 20000
local function main(n: number)
	local pong = process.spawn("app:pong", "app:processes", process.pid())
	local inbox = process.inbox()
	for i = 1, n do
		process.send(pong, "ping", i)
		local msg = inbox:receive()
		assert(msg:topic() == "pong", "wrong topic " .. tostring(msg:topic()))
		local got = msg:payload():data()
		if got ~= i then
			error(string.format("round %d: got %s", i, tostring(got)))
		end
	end
	process.send(pong, "stop")
	return n
end
return { main = main }
