-- expect: ok
local function main()
	local ok, err = pcall(process.set_options, { trap_links = true, nope = 1 })
	assert(not ok and string.find(tostring(err), "unknown option", 1, true), tostring(err))
	local ok2 = pcall(process.set_options, { trap_links = "yes" })
	assert(not ok2, "trap_links must be a boolean")
	assert(process.get_options().trap_links == false, "a refused call changes nothing")
	return "ok"
end
return { main = main }
