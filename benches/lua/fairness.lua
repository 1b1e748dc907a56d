-- fairness WORKERS [ROUNDS]: start 2 busy-looping processes per worker, then measure ping-pong
-- round trips against a ponger while they spin; report p50/p99/max in ms. `main` runs in the
-- terminal host and only starts `body` on bench:processes: the busy loops, the pinger (the body)
-- and the ponger all share the process host's workers.
local time = require("time")

local function body(workers: number, rounds: number)
	local busy = {}
	for i = 1, 2 * workers do
		busy[i] = process.spawn("bench:busy", "bench:processes")
	end
	local pong = process.spawn("bench:pong", "bench:processes", process.pid())
	local inbox = process.inbox()
	time.sleep("50ms")
	local rtts = table.create(rounds)
	for i = 1, rounds do
		local t0 = os.clock()
		process.send(pong, "ping", i)
		local got = inbox:receive():payload():data()
		rtts[i] = (os.clock() - t0) * 1e3
		if got ~= i then
			error(string.format("round %d: got %s", i, tostring(got)))
		end
		time.sleep("1ms")
	end
	for i = 1, #busy do
		process.send(busy[i], "stop")
	end
	process.send(pong, "stop")
	table.sort(rtts)
	local function pct(p)
		return rtts[math.max(1, math.ceil(rounds * p))]
	end
	return { p50 = pct(0.5), p99 = pct(0.99), max = rtts[rounds], busy = #busy }
end

local function main(workers_s: string?, rounds_s: string?)
	local workers = tonumber(workers_s) or 2
	local rounds = tonumber(rounds_s) or 200
	local r, err = process.exec("bench:fairness_body", "bench:processes", workers, rounds)
	if r == nil then
		error(err)
	end
	print(string.format("RESULT fairness p50_ms=%.3f p99_ms=%.3f max_ms=%.3f busy=%d rounds=%d",
		r.p50, r.p99, r.max, r.busy, rounds))
	return rounds
end

return { main = main, body = body }
