-- expect: ok
local function main()
	local child = process.spawn_monitored("app:sleeper", "app:processes")
	-- a round trip through another process so the sleeper has surely parked
	assert(process.exec("app:returns", "app:processes", 1) == 2)
	assert(process.send(child, "wake", 1))
	assert(process.terminate(child) == true)
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.result.error == "terminated", tostring(ev.result.error))
	return "ok"
end
return { main = main }
