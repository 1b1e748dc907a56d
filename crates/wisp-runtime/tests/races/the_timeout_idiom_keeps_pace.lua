-- expect: ok
-- setup: rust
-- The timeout idiom: `select` on a ready channel with a fresh `time.after("2s")` per iteration,
-- for `seconds` (more than the timeout, so the abandoned timers fire while it runs). Once they
-- fire, the loop must keep at least `min_ratio` of the pace it had in its first second (a timer
-- structure whose cost grows with the timers pending slows it to a crawl), and no gap between
-- two iterations may reach `max_gap` seconds.
local time = require("time")
local function main(seconds: number, min_ratio: number, max_gap: number)
	local ch = channel.new(1)
	local started = time.now()
	local last, worst, n = started, 0, 0
	local first_second, last_second = 0, 0
	while last - started < seconds do
		ch:send(n)
		local r = channel.select({ ch:case_receive(), time.after("2s"):case_receive() })
		assert(r.channel == ch and r.value == n)
		n += 1
		local now = time.now()
		if now - last > worst then
			worst = now - last
		end
		last = now
		local at = now - started
		if at < 1 then
			first_second += 1
		elseif at >= seconds - 1 then
			last_second += 1
		end
	end
	assert(worst < max_gap, string.format("worst gap %.3fs after %d iterations", worst, n))
	assert(
		last_second >= first_second * min_ratio,
		string.format("%d iterations in the first second, %d in the last (timers firing)", first_second, last_second)
	)
	return "ok"
end
return { main = main }
