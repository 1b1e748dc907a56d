local time = require("time")
local function main(parent: string)
	local side = process.listen("side")
	local child = process.spawn_monitored("app:returns", "app:processes", 1)
	local timer = time.after("1ms")
	local inbox = process.inbox()
	process.send(parent, "ready")
	local n, pairs_seen = 0, 0
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "done" then
			break
		elseif topic == "both" then
			local p = msg:payload()
			assert(p[1]:data() == n and p[2]:data() == n + 1, "multi payload out of place")
			pairs_seen += 1
		else
			assert(topic == "in", "unexpected topic " .. topic)
			assert(msg:from() == parent and msg:from() == parent, "sender " .. tostring(msg:from()))
			n += 1
			assert(msg:payload():data() == n, "inbox message " .. tostring(msg:payload():data()) .. " arrived as " .. n)
		end
	end
	-- everything sent on "side" waited in its channel, in order
	for i = 1, 500 do
		assert(side:receive() == i, "side message out of order")
	end
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.from == child and ev.result.value == 2, "EXIT lost")
	timer:receive()
	process.send(parent, "report", n + pairs_seen)
end
return { main = main }
