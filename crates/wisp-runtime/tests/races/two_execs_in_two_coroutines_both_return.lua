-- expect: ok
-- timeout: 60
-- Two `process.exec` calls waiting at once, in two coroutines of one process: each gets its own
-- child's value.
local ROUNDS = 200
local function main()
	for round = 1, ROUNDS do
		local results = channel.new(2)
		for k = 1, 2 do
			coroutine.spawn(function()
				local v = process.exec("app:returns", "app:processes", round * 10 + k)
				results:send({ k, v })
			end)
		end
		for _ = 1, 2 do
			local r = results:receive()
			assert(r[2] == round * 10 + r[1], "round " .. round .. ": exec " .. r[1] .. " returned " .. tostring(r[2]))
		end
	end
	return "ok"
end
return { main = main }
