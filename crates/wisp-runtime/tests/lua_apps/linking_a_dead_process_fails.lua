-- expect: ok
local function main()
	local child = process.spawn_monitored("app:returns", "app:processes", 1)
	assert(process.events():receive().from == child)
	local ok, err = process.link(child)
	assert(ok == nil and type(err) == "string", "link to a dead process")
	return "ok"
end
return { main = main }
