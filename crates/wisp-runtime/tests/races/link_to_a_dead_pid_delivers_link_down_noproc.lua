-- expect: ok
-- `link` to a PID that is not alive returns true and delivers LINK_DOWN with `noproc`: trapped,
-- it arrives as an event; untrapped, it ends the linker (as in Erlang).
local function main()
	local dead = process.spawn_monitored("app:returns", "app:processes", 0)
	assert(process.events():receive().from == dead)
	process.set_options({ trap_links = true })
	assert(process.link(dead) == true, "link to a dead PID returns true")
	local ev = process.events():receive()
	assert(ev.kind == process.event.LINK_DOWN and ev.from == dead, "got " .. tostring(ev.kind))
	assert(ev.result.error == "noproc", "error " .. tostring(ev.result.error))
	process.set_options({ trap_links = false })
	local linker = process.spawn_monitored("app:links_to", "app:processes", dead)
	local exit = process.events():receive()
	assert(exit.from == linker)
	assert(exit.result.error == "linked process failed: " .. dead, "linker ended with " .. tostring(exit.result.error or exit.result.value))
	return "ok"
end
return { main = main }
