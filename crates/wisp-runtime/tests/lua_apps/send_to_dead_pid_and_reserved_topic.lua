-- expect: ok
local function main()
	local child = process.spawn_monitored("app:returns", "app:processes", 1)
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.from == child)
	local ok, err = process.send(child, "x", 1)
	assert(ok == nil and type(err) == "string" and #err > 0, "send to a dead pid: " .. tostring(ok))
	local okn, errn = process.send("no.such.name", "x", 1)
	assert(okn == nil and type(errn) == "string", "send to an unknown name")
	-- A topic is checked whenever it differs from the last one sent on, so a reserved or
	-- non-string topic raises after valid sends too, and every time.
	assert(process.send(process.pid(), "x", 1) == true, "a send to itself")
	for _ = 1, 2 do
		local raised = pcall(process.send, process.pid(), "@system", 1)
		assert(not raised, "a topic starting with @ must raise")
	end
	assert(not pcall(process.send, process.pid(), 42, 1), "a topic must be a string")
	assert(process.send(process.pid(), "x", 2) == true, "the last valid topic again")
	return "ok"
end
return { main = main }
