-- expect: ok
local time = require("time")

local function main()
	local t0 = os.clock()
	time.sleep("20ms")
	local slept = os.clock() - t0
	assert(slept >= 0.019, "sleep('20ms') took " .. slept .. " s")

	t0 = os.clock()
	time.sleep(5000000) -- nanoseconds
	slept = os.clock() - t0
	assert(slept >= 0.0045, "sleep(5000000) took " .. slept .. " s")

	for _, d in ipairs({ 0, "0s", -1, "-5ms" }) do
		local ok = pcall(time.sleep, d)
		assert(not ok, "time.sleep(" .. tostring(d) .. ") must raise")
	end
	assert(not pcall(time.sleep, "soon"), "an unparsable duration must raise")

	-- A compound duration parses; stopping its timer works.
	local t = time.timer("1m30s")
	assert(t:stop() == true)
	return "ok"
end
return { main = main }
