-- spawn N [HOLD_MS]: spawn N idle processes and report us/spawn (until they have all started; the
-- spawn calls alone as us/call), then stop them all and report us/stop. `main` runs in the terminal host and only starts `body` on bench:processes, which does
-- the spawning (so spawner and children share the process host's scheduler).
-- With HOLD_MS > 0 it prints marker lines for a driver that samples the RSS of the whole OS
-- process: `BASE` (then waits HOLD_MS), spawns, waits HOLD_MS for the children to settle,
-- `MEASURE` (then waits HOLD_MS), and stops them. The body asks `main` to print each marker
-- (topic "mark") and waits for its "marked" reply before holding, as the terminal host owns stdout.
local time = require("time")

local function body(parent: string, n: number, hold: number)
	local me = process.pid()
	local pids = table.create(n)
	local marked = process.listen("marked")
	local function mark(label: string)
		process.send(parent, "mark", label)
		marked:receive()
		time.sleep(hold * 1e6)
	end
	if hold > 0 then
		mark("BASE")
	end
	local t0 = os.clock()
	for i = 1, n - 1 do
		pids[i] = process.spawn("bench:idle", "bench:processes")
	end
	-- the last one acknowledges, so we know every stop message has been taken
	pids[n] = process.spawn("bench:idle", "bench:processes", me)
	local call_us = (os.clock() - t0) * 1e6 / n
	-- A child's coroutine is made when it first runs, after the spawn call returned. A timer's
	-- wake-up queues behind the children still waiting on this shard, so this measures until
	-- they have started (and reached their receive) as well.
	time.sleep(1)
	local spawn_us = (os.clock() - t0) * 1e6 / n
	if hold > 0 then
		time.sleep(hold * 1e6)
		mark("MEASURE")
	end
	local t1 = os.clock()
	for i = 1, n do
		process.send(pids[i], "stop")
	end
	process.inbox():receive()
	local stop_us = (os.clock() - t1) * 1e6 / n
	return { spawn_us = spawn_us, call_us = call_us, stop_us = stop_us }
end

local function main(n_s: string?, hold_s: string?)
	local n = tonumber(n_s) or 100000
	local hold = tonumber(hold_s) or 0
	-- print the body's markers while exec waits for it
	local marks = process.listen("mark", { message = true })
	coroutine.spawn(function()
		while true do
			local msg = marks:receive()
			print(msg:payload():data())
			process.send(msg:from(), "marked", true)
		end
	end)
	local r, err = process.exec("bench:spawn_body", "bench:processes", process.pid(), n, hold)
	if r == nil then
		error(err)
	end
	print(
		string.format(
			"RESULT spawn us_per_spawn=%.3f us_per_call=%.3f us_per_stop=%.3f n=%d",
			r.spawn_us,
			r.call_us,
			r.stop_us,
			n
		)
	)
	return n
end

return { main = main, body = body }
