-- counting N: one sender, one counter, N messages. `main` runs in the terminal host and only
-- starts `body` (the sender) on bench:processes, next to the counter; it returns ns per message.
local function body(n: number)
	local c = process.spawn("bench:counter", "bench:processes", process.pid(), n)
	local t0 = os.clock()
	for _ = 1, n do
		process.send(c, "n", 1)
	end
	local sum = process.inbox():receive():payload():data()
	local ns = (os.clock() - t0) * 1e9 / n
	if sum ~= n then
		error(string.format("counting: got %s, expected %d", tostring(sum), n))
	end
	return ns
end

local function main(n_s: string?)
	local n = tonumber(n_s) or 1000000
	local ns, err = process.exec("bench:counting_body", "bench:processes", n)
	if ns == nil then
		error(err)
	end
	print(string.format("RESULT counting ns_per_msg=%.1f n=%d", ns, n))
	return n
end

return { main = main, body = body }
