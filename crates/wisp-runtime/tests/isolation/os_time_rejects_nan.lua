-- expect: ok
-- Finding 10: os.time of a date with a field that is not a number it can use (NaN, or an
-- infinity) raises, instead of converting it to an integer (undefined behaviour in C).

local function main()
	local nan, inf = 0 / 0, math.huge
	local dates = {
		{ "day = 0/0", { year = 2020, month = 1, day = nan } },
		{ "year = 0/0", { year = nan, month = 1, day = 1 } },
		{ "month = 0/0", { year = 2020, month = nan, day = 1 } },
		{ "hour = 0/0", { year = 2020, month = 1, day = 1, hour = nan } },
		{ "day = math.huge", { year = 2020, month = 1, day = inf } },
		{ "day = -math.huge", { year = 2020, month = 1, day = -inf } },
	}
	local wrong = {}
	for _, d in dates do
		local ok, r = pcall(os.time, d[2])
		if ok then
			wrong[#wrong + 1] = "os.time{" .. d[1] .. "} returned " .. tostring(r)
		end
	end
	if #wrong > 0 then
		error(table.concat(wrong, "; "), 0)
	end
	return "ok"
end

return { main = main }
