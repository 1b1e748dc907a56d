-- skynet SIZE DIV: a tree of SIZE leaves with fan-out DIV; the root sums what the leaves send back.
local function main(size_s: string?, div_s: string?)
	local size = tonumber(size_s) or 1000000
	local div = tonumber(div_s) or 10
	local t0 = os.clock()
	process.spawn("bench:skynet_node", "bench:processes", process.pid(), 0, size, div)
	local sum = process.inbox():receive():payload():data()
	local ms = (os.clock() - t0) * 1e3
	local expected = size * (size - 1) / 2
	if sum ~= expected then
		error(string.format("skynet: sum %.0f, expected %.0f", sum, expected))
	end
	print(string.format("RESULT skynet ms=%.1f result=%.0f size=%d div=%d", ms, sum, size, div))
	return sum
end

return { main = main }
