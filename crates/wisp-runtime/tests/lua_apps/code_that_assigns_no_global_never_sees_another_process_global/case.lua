-- expect: ok
local function main()
	-- Writers and readers in turn, each started after the one before ended: they run on
	-- reused threads.
	for i = 1, 100 do
		local v, err = process.exec("app:helpers", "app:processes", "fresh_globals")
		assert(v == "fresh", "writer " .. i .. ": " .. tostring(err))
		local seen, err2 = process.exec("app:reader", "app:processes")
		assert(seen == true, "reader " .. i .. ": " .. tostring(seen) .. " " .. tostring(err2))
	end
	return "ok"
end
return { main = main }
