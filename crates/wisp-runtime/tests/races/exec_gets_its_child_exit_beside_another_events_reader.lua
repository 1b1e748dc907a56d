-- expect: ok
-- `process.exec` waits on its own child's EXIT, whatever else of the process reads events():
-- here a coroutine waits on `process.events():receive()` all along, and must see only the
-- CANCEL sent to wake it.
-- timeout: 60
local ROUNDS = 200
local function main()
	for i = 1, ROUNDS do
		local seen, waiting = channel.new(1), channel.new(0)
		coroutine.spawn(function()
			waiting:send(true) -- then waits on events() before exec does
			local ev = process.events():receive()
			seen:send(ev.kind)
		end)
		waiting:receive()
		local value, err = process.exec("app:returns", "app:processes", i)
		assert(value == i, "round " .. i .. ": exec returned " .. tostring(value) .. ", " .. tostring(err))
		process.cancel(process.pid(), "wake")
		local kind = seen:receive()
		assert(kind == process.event.CANCEL, "round " .. i .. ": the events() reader got " .. tostring(kind))
	end
	return "ok"
end
return { main = main }
