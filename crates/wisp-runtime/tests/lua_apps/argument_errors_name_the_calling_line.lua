-- expect: ok
local time = require("time")
local function main()
	local cases = {
		{ function() process.spawn(nil, "app:processes") end, "process.spawn: the entry must be a string" },
		{ function() process.send(nil, "t") end, "process.send: destination must be a PID or a name" },
		{ function() process.send(process.pid(), "t", print) end, "process.send: cannot send a function" },
		{ function() time.sleep(0) end, "duration must be positive" },
		{ function() process.set_options({ bogus = 1 }) end, "process.set_options: unknown option `bogus`" },
	}
	for i, case in cases do
		local ok, err = pcall(case[1])
		assert(not ok, "case " .. i .. " raised")
		local text = tostring(err)
		assert(string.find(text, case[2], 1, true), "case " .. i .. ": " .. text)
	end
	-- The EXIT of a process that dies of such an error names its file and line, not the runtime's.
	local child = process.spawn_monitored("app:helpers", "app:processes", "bad_options")
	local ev = process.events():receive()
	assert(ev.from == child)
	assert(string.match(ev.result.error, "helpers%.lua:%d+: process%.set_options: unknown option"), ev.result.error)
	return "ok"
end
return { main = main }
