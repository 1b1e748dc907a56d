-- expect: 10000
-- on: terminal
-- args: 100, 10000
-- A ring of `size` processes passes a token `hops` times; the last holder reports the count.
local function main(size: number, hops: number)
	local me = process.pid()
	local nodes = {}
	for i = 1, size do
		nodes[i] = process.spawn("app:ring_node", "app:processes", me, hops)
	end
	for i = 1, size do
		process.send(nodes[i], "next", nodes[i % size + 1])
	end
	process.send(nodes[1], "token", 0)
	local msg = process.inbox():receive()
	assert(msg:topic() == "done")
	for i = 1, size do
		process.send(nodes[i], "stop")
	end
	return msg:payload():data()
end
return { main = main }
