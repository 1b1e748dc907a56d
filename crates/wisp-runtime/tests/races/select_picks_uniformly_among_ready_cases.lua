-- expect: ok
-- Among several ready cases `select` picks each with the same chance (a busy channel cannot
-- starve the others): 3000 selects over three always-ready channels.
local N = 3000
local function main()
	local chans = { channel.new(1), channel.new(1), channel.new(1) }
	local picked = { 0, 0, 0 }
	for _ = 1, N do
		for _, ch in chans do
			if ch:len() == 0 then
				ch:send(true)
			end
		end
		local r = channel.select({ chans[1]:case_receive(), chans[2]:case_receive(), chans[3]:case_receive() })
		for i, ch in chans do
			if r.channel == ch then
				picked[i] += 1
			end
		end
	end
	-- Expected 1000 each; 800..1200 fails by chance with probability under 1e-10.
	for i = 1, 3 do
		assert(picked[i] > 800 and picked[i] < 1200, "case " .. i .. " picked " .. picked[i] .. " of " .. N)
	end
	return "ok"
end
return { main = main }
