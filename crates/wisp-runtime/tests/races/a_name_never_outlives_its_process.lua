-- expect: ok
-- A name bound to a process while it ends is gone once that process's EXIT arrives, whether the
-- registration came before the end (and was released with it) or after (and was refused). Each
-- round spawns more children in one step than placement keeps beside their parent (the rest go
-- to other shards, run by the other worker), registers a name for each, and checks every name
-- once every EXIT is in.
local ROUNDS = 1000
local CHILDREN = 48
local function main()
	for round = 1, ROUNDS do
		local children, order = {}, {}
		for k = 1, CHILDREN do
			local child = process.spawn_monitored("app:returns", "app:processes", k)
			children[child] = "racing_" .. round .. "_" .. k
			order[k] = child
		end
		-- Latest first: the first few are still waiting to run, the last ones long gone, and
		-- some in between end as their names are bound.
		for k = CHILDREN, 1, -1 do
			process.registry.register(children[order[k]], order[k])
		end
		for _ = 1, CHILDREN do
			local ev = process.events():receive()
			assert(ev.kind == process.event.EXIT and children[ev.from], "round " .. round .. ": unexpected event")
		end
		for child, name in children do
			local holder = process.registry.lookup(name)
			assert(holder == nil, "round " .. round .. ": " .. name .. " still bound to " .. tostring(holder) .. " after the EXIT of " .. child)
		end
	end
	return "ok"
end
return { main = main }
