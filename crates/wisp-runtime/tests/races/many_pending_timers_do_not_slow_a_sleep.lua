-- expect: ok
-- setup: rust
-- Timers cost the same however many are pending: with `n` abandoned `time.after("3s")` pending
-- (they all fire during a sleep that ends half a second after them), the sleep still returns
-- within `slack` seconds of its time, and a process ending with `n` timers pending ends as fast.
local time = require("time")
local function main(n: number, slack: number)
	local started = time.now()
	for _ = 1, n do
		time.after("3s")
	end
	local armed = time.now() - started
	assert(armed < 3, string.format("arming %d timers took %.2fs", n, armed))
	-- They all fire during this sleep, which ends half a second after them.
	local wake_at = started + 3.5
	time.sleep(math.floor((wake_at - time.now()) * 1000) .. "ms")
	local late = time.now() - wake_at
	assert(late < slack, string.format("with %d timers firing, sleep returned %.2fs late", n, late))
	started = time.now()
	local child = process.spawn_monitored("app:arms_timers", "app:processes", n)
	assert(process.events():receive().from == child)
	local took = time.now() - started
	assert(took < slack * 2, string.format("a process arming and leaving %d timers took %.2fs", n, took))
	return "ok"
end
return { main = main }
