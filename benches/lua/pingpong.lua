-- pingpong N: N round trips between two processes. `main` runs in the terminal host and only
-- starts `body` on bench:processes; the body plays ping against a ponger on the same host and
-- returns ns per round trip.

-- Plays N round trips against `pong` and returns ns per round trip, then stops it.
local function play(pong: string, n: number)
	local inbox = process.inbox()
	local t0 = os.clock()
	for i = 1, n do
		process.send(pong, "ping", i)
		local got = inbox:receive():payload():data()
		if got ~= i then
			error(string.format("round %d: got %s", i, tostring(got)))
		end
	end
	local ns = (os.clock() - t0) * 1e9 / n
	process.send(pong, "stop")
	return ns
end

local function body(n: number)
	return play(process.spawn("bench:pong", "bench:processes", process.pid()), n)
end

-- Plays against a ponger somebody else spawned (`bench:pong_detached`), wherever it was placed.
local function against(pong: string, n_s: string)
	process.send(pong, "peer", process.pid())
	return play(pong, tonumber(n_s) or 1000)
end

local function main(n_s: string?)
	local n = tonumber(n_s) or 1000000
	local ns, err = process.exec("bench:pingpong_body", "bench:processes", n)
	if ns == nil then
		error(err)
	end
	print(string.format("RESULT pingpong ns_per_rt=%.1f n=%d", ns, n))
	return n
end

return { main = main, body = body, against = against }
