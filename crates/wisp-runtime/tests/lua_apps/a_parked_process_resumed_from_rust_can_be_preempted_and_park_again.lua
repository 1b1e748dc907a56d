-- expect: ok
local function main()
	local child = process.spawn_monitored("app:helpers", "app:processes", "busy_after_park", process.pid())
	local inbox = process.inbox()
	local expected = 0
	for i = 1, 2000000 do
		expected += i % 7
	end
	for _ = 1, 3 do
		assert(process.send(child, "n", 2000000))
		local got = inbox:receive():payload():data()
		assert(got == expected, "got " .. tostring(got))
	end
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.result.value == "busy done", tostring(ev.result.error))
	return "ok"
end
return { main = main }
