-- expect: ok
local function main()
	-- One after another, so each can start on the thread the previous one ended on.
	for i = 1, 200 do
		local v, err = process.exec("app:helpers", "app:processes", "fresh_globals")
		assert(v == "fresh", "process " .. i .. ": " .. tostring(err))
	end
	return "ok"
end
return { main = main }
