-- expect: ok
local time = require("time")
local function main()
	local child = process.spawn("app:sleeper", "app:processes")
	assert(process.monitor(child) == true)
	assert(process.unmonitor(child) == true)
	assert(process.terminate(child) == true)
	local r = channel.select({ process.events():case_receive(), time.after("100ms"):case_receive() })
	assert(r.channel ~= process.events(), "late EXIT after unmonitor")
	return "ok"
end
return { main = main }
