-- expect: ok
-- A stopped timer's channel beside something that can still wake the process: no deadlock.
local time = require("time")
local function main()
	local t = time.timer("1h")
	t:stop()
	process.send(process.pid(), "wake", 1)
	local r = channel.select({ t:channel():case_receive(), process.inbox():case_receive() })
	assert(r.channel == process.inbox())
	-- A reset timer wakes its waiter again.
	t:reset("1ms")
	t:channel():receive()
	return "ok"
end
return { main = main }
