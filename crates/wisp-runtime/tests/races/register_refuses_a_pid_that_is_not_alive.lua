-- expect: ok
-- `registry.register(name, pid)` refuses a PID that is not alive: `nil, "process <pid> not found"`.
local function main()
	local dead = process.spawn_monitored("app:returns", "app:processes", 0)
	assert(process.events():receive().from == dead)
	local ok, err = process.registry.register("dead", dead)
	assert(ok == nil and err == "process " .. dead .. " not found", "register(dead): " .. tostring(ok) .. ", " .. tostring(err))
	assert(process.registry.lookup("dead") == nil)
	return "ok"
end
return { main = main }
