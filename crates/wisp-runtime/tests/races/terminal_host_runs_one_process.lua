-- expect: ok
-- on: terminal
-- A spawn onto the terminal host while its process runs is refused, as are the monitored and
-- named variants.
local function main()
	local host = "app:terminal"
	assert(string.find(process.pid(), host, 1, true), "runs on " .. process.pid())
	local want = "terminal host " .. host .. " runs one process"
	local pid, err = process.spawn("app:returns", host, 1)
	assert(pid == nil and err == want, "spawn: " .. tostring(pid) .. ", " .. tostring(err))
	pid, err = process.spawn_monitored("app:returns", host, 1)
	assert(pid == nil and err == want, "spawn_monitored: " .. tostring(pid) .. ", " .. tostring(err))
	pid, err = process.with_name("term"):spawn("app:returns", host, 1)
	assert(pid == nil and err == want, "with_name: " .. tostring(pid) .. ", " .. tostring(err))
	assert(process.registry.lookup("term") == nil)
	return "ok"
end
return { main = main }
