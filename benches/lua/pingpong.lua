-- pingpong N: N round trips between two processes. `main` runs in the terminal host and only
-- starts `body` on bench:processes; the body plays ping against a ponger on the same host and
-- returns ns per round trip.
local function body(n: number)
	local pong = process.spawn("bench:pong", "bench:processes", process.pid())
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

local function main(n_s: string?)
	local n = tonumber(n_s) or 1000000
	local ns, err = process.exec("bench:pingpong_body", "bench:processes", n)
	if ns == nil then
		error(err)
	end
	print(string.format("RESULT pingpong ns_per_rt=%.1f n=%d", ns, n))
	return n
end

return { main = main, body = body }
