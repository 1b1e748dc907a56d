-- skynet SIZE DIV: a tree of SIZE leaves with fan-out DIV; the root sums what the leaves send back.
-- `main` runs in the terminal host and only starts `body` on bench:processes, so the whole tree
-- (the body included) lives on the process host; the body times itself and returns the figures.
local function body(size: number, div: number)
	local t0 = os.clock()
	process.spawn("bench:skynet_node", "bench:processes", process.pid(), 0, size, div)
	local sum = process.inbox():receive():payload():data()
	local ms = (os.clock() - t0) * 1e3
	local expected = size * (size - 1) / 2
	if sum ~= expected then
		error(string.format("skynet: sum %.0f, expected %.0f", sum, expected))
	end
	return { ms = ms, sum = sum }
end

local function main(size_s: string?, div_s: string?)
	local size = tonumber(size_s) or 1000000
	local div = tonumber(div_s) or 10
	local r, err = process.exec("bench:skynet_body", "bench:processes", size, div)
	if r == nil then
		error(err)
	end
	print(string.format("RESULT skynet ms=%.1f result=%.0f size=%d div=%d", r.ms, r.sum, size, div))
	return r.sum
end

return { main = main, body = body }
