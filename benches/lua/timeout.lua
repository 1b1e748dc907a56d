-- timeout N [timer|none]: the timeout idiom, `channel.select` on a ready channel beside a fresh
-- `time.after("2s")` per iteration, N times (with `none`, the same loop without the timer).
-- The 2 s timers are abandoned and pile up; at a few hundred thousand iterations a second the
-- first of them fire while the loop still runs, so their expiry is measured too. Reports the
-- iterations per second and the worst gap between two iterations.
local time = require("time")

local function body(n: number, with_timer: boolean)
	local ch = channel.new(1)
	local started = os.clock()
	local last, worst = started, 0
	for i = 1, n do
		ch:send(i)
		local r
		if with_timer then
			r = channel.select({ ch:case_receive(), time.after("2s"):case_receive() })
		else
			r = channel.select({ ch:case_receive() })
		end
		if r.value ~= i then
			error(string.format("iteration %d: got %s", i, tostring(r.value)))
		end
		-- os.clock is cheap; reading it every 64 iterations keeps it out of the figure and
		-- still sees any stall.
		if i % 64 == 0 then
			local now = os.clock()
			if now - last > worst then
				worst = now - last
			end
			last = now
		end
	end
	local took = os.clock() - started
	return { per_s = n / took, worst_ms = worst * 1e3 }
end

local function main(n_s: string?, mode: string?)
	local n = tonumber(n_s) or 1000000
	local with_timer = mode ~= "none"
	local r, err = process.exec("bench:timeout_body", "bench:processes", n, with_timer)
	if r == nil then
		error(err)
	end
	print(string.format("RESULT timeout per_s=%.0f worst_gap_ms=%.3f n=%d timer=%s",
		r.per_s, r.worst_ms, n, tostring(with_timer)))
	return n
end

return { main = main, body = body }
