-- expect: ok
-- Deadlock detection covers timers: waiting (alone) on a stopped timer, a stopped ticker, or an
-- `after` whose value was taken ends the process with the deadlock error, as any other wait on
-- nothing does.
local function main()
	for _, kind in { "stopped_timer", "stopped_ticker", "fired_after" } do
		local child = process.spawn_monitored("app:waits_on_a_dead_timer", "app:processes", kind)
		local ev = process.events():receive()
		assert(ev.from == child)
		local err = tostring(ev.result.error or ev.result.value)
		assert(string.find(err, "deadlock", 1, true), kind .. ": ended with " .. err)
	end
	return "ok"
end
return { main = main }
