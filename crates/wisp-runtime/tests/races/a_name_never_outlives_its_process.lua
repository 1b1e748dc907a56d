-- expect: ok
-- A name bound to a process while it ends (here: a child that returns at once, registered by
-- its parent right after the spawn) is gone once that process's EXIT arrives, whether the
-- registration came before the end (and was released with it) or after (and was refused).
local ROUNDS = 2000
local function main()
	local refused = 0
	for round = 1, ROUNDS do
		local name = "racing_" .. round
		local child = process.spawn_monitored("app:returns", "app:processes", round)
		if not process.registry.register(name, child) then
			refused += 1
		end
		local ev = process.events():receive()
		assert(ev.from == child and ev.kind == process.event.EXIT)
		local holder = process.registry.lookup(name)
		assert(holder == nil, "round " .. round .. ": " .. name .. " still bound to " .. tostring(holder) .. " after its EXIT")
	end
	return "ok"
end
return { main = main }
