-- expect: ok
-- setup: rust
-- The timeout idiom: `select` on a ready channel with a fresh `time.after("2s")` per iteration,
-- for `seconds` (longer than the timeout, so the first timers fire while it runs). No gap between
-- two iterations may reach `max_gap` seconds (with a timer structure that slows down as timers
-- pile up, the loop stalls once they start firing).
local time = require("time")
local function main(seconds: number, max_gap: number)
	local ch = channel.new(1)
	local started = time.now()
	local last, worst, n = started, 0, 0
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
	end
	assert(worst < max_gap, string.format("worst gap %.3fs after %d iterations", worst, n))
	return "ok"
end
return { main = main }
