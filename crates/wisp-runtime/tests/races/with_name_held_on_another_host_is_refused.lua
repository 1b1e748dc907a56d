-- expect: ok
-- on: terminal
-- A name held on another host than the spawn's: `nil, "name <n> is held by <pid>"`, and no
-- process starts.
local function main()
	assert(process.registry.register("held_here"))
	local pid, err = process.with_name("held_here"):spawn("app:returns", "app:processes", 1)
	assert(pid == nil, "spawned " .. tostring(pid))
	assert(err == "name held_here is held by " .. process.pid(), "error: " .. tostring(err))
	return "ok"
end
return { main = main }
