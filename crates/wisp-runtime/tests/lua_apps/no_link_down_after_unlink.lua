-- expect: ok
local time = require("time")
local function main()
	process.set_options({ trap_links = true })
	local child = process.spawn_linked("app:helpers", "app:processes", "fail_on_go")
	assert(process.unlink(child) == true)
	process.send(child, "go")
	local r = channel.select({ process.events():case_receive(), time.after("100ms"):case_receive() })
	assert(r.channel ~= process.events(), "late LINK_DOWN after unlink")
	return "ok"
end
return { main = main }
