-- Fan-out/fan-in: N workers on the process host each sum the squares of one slice of 1..N*size
-- and reply to the parent, which collects the answers with a select over its inbox and a timeout.
local time = require("time")

local function main(workers: string?, size: string?): number
	local n = tonumber(workers) or 8
	local per = tonumber(size) or 1000
	local me = process.pid()
	for i = 1, n do
		local first = (i - 1) * per + 1
		process.spawn("app:worker", "app:processes", me, first, first + per - 1)
	end

	local inbox = process.inbox()
	local deadline = time.after("10s")
	local total, answers = 0, 0
	while answers < n do
		local r = channel.select({ inbox:case_receive(), deadline:case_receive() })
		if r.channel == deadline then
			return nil, string.format("timed out with %d of %d answers", answers, n)
		end
		local msg = r.value
		if msg:topic() == "sum" then
			total += msg:payload():data()
			answers += 1
		end
	end

	-- Check against the closed form: sum of k^2 for k = 1..m is m(m+1)(2m+1)/6.
	local m = n * per
	local expected = m * (m + 1) * (2 * m + 1) / 6
	if total ~= expected then
		return nil, string.format("total %d, expected %d", total, expected)
	end
	print(string.format("%d workers summed the squares of 1..%d: %d", n, m, total))
	return total
end

return { main = main }
