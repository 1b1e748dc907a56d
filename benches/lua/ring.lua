-- ring N M: N processes in a ring pass a counter N*M hops. `main` runs in the terminal host and
-- only starts `body` on bench:processes, which builds the ring, times it and returns the figures.
local function body(n: number, m: number)
	local t0 = os.clock()
	local last = process.spawn("bench:ring_node", "bench:processes", "", process.pid())
	local nxt = last
	for _ = 1, n - 1 do
		nxt = process.spawn("bench:ring_node", "bench:processes", nxt)
	end
	local first = nxt
	process.send(last, "first", first)
	local t1 = os.clock()
	process.send(first, "k", n * m)
	process.inbox():receive()
	local t2 = os.clock()
	return { ns_per_hop = (t2 - t1) * 1e9 / (n * m), us_per_spawn = (t1 - t0) * 1e6 / n }
end

local function main(n_s: string?, m_s: string?)
	local n = tonumber(n_s) or 1000
	local m = tonumber(m_s) or 1000
	local r, err = process.exec("bench:ring_body", "bench:processes", n, m)
	if r == nil then
		error(err)
	end
	print(string.format("RESULT ring ns_per_hop=%.1f us_per_spawn=%.3f n=%d m=%d", r.ns_per_hop, r.us_per_spawn, n, m))
	return n * m
end

return { main = main, body = body }
