-- expect: any string
-- on: terminal
-- setup: rust
-- The Rust test of this name runs it once per other file of this folder, with that file's entry
-- and the fragments its EXIT error must contain as `entry` and `fragments`; it returns the error.
-- Spawns `entry` monitored, checks its EXIT error, then proves the runtime still works.
local function main(entry: string, fragments: { string })
	local events = process.events()
	local child = process.spawn_monitored(entry, "app:processes")
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT, "expected EXIT, got " .. tostring(ev.kind))
	assert(ev.from == child, "EXIT from " .. tostring(ev.from) .. ", expected " .. tostring(child))
	local err = ev.result.error
	assert(type(err) == "string", "expected an error, got value " .. tostring(ev.result.value))
	for _, f in ipairs(fragments) do
		if not string.find(err, f, 1, true) then
			error("error " .. string.format("%q", err) .. " does not contain " .. string.format("%q", f))
		end
	end
	local v, e = process.exec("app:returns", "app:processes", 21)
	assert(v == 42, "runtime broken after a bad process: " .. tostring(e))
	return err
end
return { main = main }
