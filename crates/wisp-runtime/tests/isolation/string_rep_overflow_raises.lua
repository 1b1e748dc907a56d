-- expect: ok
-- Finding 10: string.rep of a length past what a string can hold raises; it used to overflow
-- and return "" (or a short string).

local function main()
	local wrong = {}
	for _, case in { { "x", 2 ^ 31 }, { "x", 2 ^ 32 + 1 }, { "ab", 2 ^ 30 + 1 } } do
		local s, n = case[1], case[2]
		local ok, r = pcall(string.rep, s, n)
		if ok then
			wrong[#wrong + 1] = string.format("string.rep(%q, %.0f) returned a string of %d bytes", s, n, #r)
		end
	end
	if #wrong > 0 then
		error(table.concat(wrong, "; "), 0)
	end
	return "ok"
end

return { main = main }
