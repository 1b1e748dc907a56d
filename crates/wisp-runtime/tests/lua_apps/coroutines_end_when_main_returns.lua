-- expect: ok
local function main()
	local v, err = process.exec("app:helpers", "app:processes", "leaves_coroutine")
	assert(v == "main done", tostring(err))
	return "ok"
end
return { main = main }
