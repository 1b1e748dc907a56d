-- expect: ok
local function main()
	local child = process.spawn_monitored("app:helpers", "app:processes", "cancellable")
	assert(process.cancel(child, "shutting down") == true)
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.result.value == "shutting down", tostring(ev.result.value))
	return "ok"
end
return { main = main }
