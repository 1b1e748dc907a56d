-- expect: ok
-- Finding 10: gcinfo reports on the heap every process of the VM shares; it is absent, as
-- collectgarbage is.

local function main()
	assert(gcinfo == nil, "gcinfo is available: it reports on memory shared with other processes")
	assert(collectgarbage == nil, "collectgarbage is available")
	return "ok"
end

return { main = main }
