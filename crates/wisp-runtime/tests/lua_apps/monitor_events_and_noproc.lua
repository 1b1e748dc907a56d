-- expect: ok
local function main()
	local events = process.events()
	assert(process.events() == events)

	local bad = process.spawn_monitored("app:fails", "app:processes")
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == bad, "EXIT of the failing child")
	assert(type(ev.result.error) == "string" and string.find(ev.result.error, "child failed on purpose", 1, true), tostring(ev.result.error))

	local good = process.spawn_monitored("app:returns", "app:processes", 21)
	ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == good, "EXIT of the returning child")
	assert(ev.result.value == 42 and ev.result.error == nil, "result.value " .. tostring(ev.result.value))

	-- Monitoring a dead PID gives EXIT with noproc at once.
	assert(process.monitor(good) == true)
	ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == good and ev.result.error == "noproc", tostring(ev.result.error))

	-- Monitor a live process, then terminate it.
	local sleeper = process.spawn("app:sleeper", "app:processes")
	assert(process.monitor(sleeper) == true)
	assert(process.terminate(sleeper) == true)
	ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == sleeper and ev.result.error == "terminated", tostring(ev.result.error))

	-- process.exec
	local v, err = process.exec("app:returns", "app:processes", 5)
	assert(v == 10, tostring(err))
	v, err = process.exec("app:fails", "app:processes")
	assert(v == nil and string.find(err, "child failed on purpose", 1, true))
	return "ok"
end
return { main = main }
