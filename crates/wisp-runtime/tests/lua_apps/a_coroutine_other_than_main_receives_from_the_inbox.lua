-- expect: ok
local function main()
	local child = process.spawn_monitored("app:helpers", "app:processes", "inbox_in_coroutine")
	for i = 1, 3 do
		assert(process.send(child, "n", i * 10))
	end
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.result.value == 60, tostring(ev.result.error or ev.result.value))
	return "ok"
end
return { main = main }
