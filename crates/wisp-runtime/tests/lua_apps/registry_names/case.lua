-- expect: ok
local function main()
	local me = process.pid()
	local inbox = process.inbox()
	local events = process.events()
	assert(process.registry.register("case.me") == true)
	assert(process.registry.register("case.me") == true, "re-registering one's own name is fine")
	assert(process.registry.lookup("case.me") == me)
	assert(process.send("case.me", "hi", 1) == true)
	local m = inbox:receive()
	assert(m:topic() == "hi" and m:payload():data() == 1)

	-- A child takes a name; others cannot; the name is released when the child ends.
	local child = process.spawn_monitored("app:namer", "app:processes", "case.child", me)
	m = inbox:receive()
	assert(m:topic() == "registered")
	assert(process.registry.lookup("case.child") == child)
	local okr, errr = process.registry.register("case.child")
	assert(okr == nil and type(errr) == "string", "took a live process's name")
	assert(process.send("case.child", "quit") == true)
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == child and ev.result.value == "bye")
	local pid, errl = process.registry.lookup("case.child")
	assert(pid == nil and type(errl) == "string", "the name outlived its process")
	local oks, errs = process.send("case.child", "x")
	assert(oks == nil and type(errs) == "string", "send to a released name")

	-- Free again: register, unregister.
	assert(process.registry.register("case.child") == true)
	assert(process.registry.unregister("case.child") == true)
	assert(process.registry.unregister("case.child") == false)
	return "ok"
end
return { main = main }
