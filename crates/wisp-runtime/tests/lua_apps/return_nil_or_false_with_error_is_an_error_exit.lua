-- expect: ok
local function main()
	local v, err = process.exec("app:helpers", "app:processes", "nil_err")
	assert(v == nil and err == "bad input", tostring(err))
	v, err = process.exec("app:helpers", "app:processes", "false_err")
	assert(v == nil and err == "refused", tostring(err))
	return "ok"
end
return { main = main }
