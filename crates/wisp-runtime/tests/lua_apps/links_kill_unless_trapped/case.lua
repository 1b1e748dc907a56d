-- expect: ok
local function main()
	local events = process.events()
	-- Without trap_links the parent dies with the child.
	local p = process.spawn_monitored("app:link_parent", "app:processes", "no_trap")
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == p)
	local err = ev.result.error
	assert(type(err) == "string" and string.find(err, "linked process failed", 1, true), "untrapped: " .. tostring(err or ev.result.value))

	-- With trap_links the parent gets LINK_DOWN on events().
	local v, e = process.exec("app:link_parent", "app:processes", "trap")
	assert(v == "trapped", "trapped: " .. tostring(e))

	-- A normal exit of a linked child sends no LINK_DOWN.
	v, e = process.exec("app:link_parent", "app:processes", "normal")
	assert(v == "no link down", "normal: " .. tostring(e))
	return "ok"
end
return { main = main }
