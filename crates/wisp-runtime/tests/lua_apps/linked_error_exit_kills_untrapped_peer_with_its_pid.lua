-- expect: ok
local function main()
	local parent = process.spawn_monitored("app:helpers", "app:processes", "link_to_failing")
	local ev = process.events():receive()
	assert(ev.from == parent)
	assert(string.match(ev.result.error, "^linked process failed: {app:processes|0x%x+}$"), ev.result.error)
	return "ok"
end
return { main = main }
