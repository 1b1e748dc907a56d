-- expect: ok
local function main()
	-- Waiting on a local channel that a sleeping coroutine will fill is not a deadlock.
	local v, err = process.exec("app:late_sender", "app:processes")
	assert(v == "late", "late sender: " .. tostring(err))
	-- Nobody can ever send: deadlock.
	v, err = process.exec("app:stuck", "app:processes")
	assert(v == nil and type(err) == "string", "stuck returned " .. tostring(v))
	assert(string.find(err, "deadlock", 1, true), "stuck: " .. err)
	-- Two coroutines waiting on each other: deadlock too.
	v, err = process.exec("app:stuck_pair", "app:processes")
	assert(v == nil and string.find(err, "deadlock", 1, true), "stuck pair: " .. tostring(err))
	return "ok"
end
return { main = main }
