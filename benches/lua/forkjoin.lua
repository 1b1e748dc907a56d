-- forkjoin N: spawn N children that each reply once; wait for all of them. `main` runs in the
-- terminal host and only starts `body` (the parent) on bench:processes; it returns us per child.
local function body(n: number)
	local me = process.pid()
	local done = process.listen("done")
	local t0 = os.clock()
	for i = 1, n do
		process.spawn("bench:child", "bench:processes", me, i)
	end
	local sum = 0
	for _ = 1, n do
		sum += done:receive()
	end
	local us = (os.clock() - t0) * 1e6 / n
	if sum ~= n * (n + 1) / 2 then
		error(string.format("forkjoin: sum %.0f, expected %.0f", sum, n * (n + 1) / 2))
	end
	return us
end

local function main(n_s: string?)
	local n = tonumber(n_s) or 100000
	local us, err = process.exec("bench:forkjoin_body", "bench:processes", n)
	if us == nil then
		error(err)
	end
	print(string.format("RESULT forkjoin us_per_child=%.3f n=%d", us, n))
	return n
end

return { main = main, body = body }
