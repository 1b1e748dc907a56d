-- spawn N [HOLD_MS]: spawn N idle processes and report us/spawn, then stop them all and report
-- us/stop. With HOLD_MS > 0 it prints marker lines for a driver that samples the RSS of the whole
-- OS process: `BASE` (then waits HOLD_MS), spawns, waits HOLD_MS for the children to settle,
-- `MEASURE` (then waits HOLD_MS), and stops them.
local time = require("time")

local function main(n_s: string?, hold_s: string?)
	local n = tonumber(n_s) or 100000
	local hold = tonumber(hold_s) or 0
	local me = process.pid()
	local pids = table.create(n)
	if hold > 0 then
		print("BASE")
		time.sleep(hold * 1e6)
	end
	local t0 = os.clock()
	for i = 1, n - 1 do
		pids[i] = process.spawn("bench:idle", "bench:processes")
	end
	-- the last one acknowledges, so we know every stop message has been taken
	pids[n] = process.spawn("bench:idle", "bench:processes", me)
	local spawn_us = (os.clock() - t0) * 1e6 / n
	if hold > 0 then
		time.sleep(hold * 1e6)
		print("MEASURE")
		time.sleep(hold * 1e6)
	end
	local t1 = os.clock()
	for i = 1, n do
		process.send(pids[i], "stop")
	end
	process.inbox():receive()
	local stop_us = (os.clock() - t1) * 1e6 / n
	print(string.format("RESULT spawn us_per_spawn=%.3f us_per_stop=%.3f n=%d", spawn_us, stop_us, n))
	return n
end

return { main = main }
