-- expect: 100
-- on: terminal
-- args: 2, 100
-- Two busy loops per worker of app:processes, then a ping-pong on the same host.
local function main(workers: number, rounds: number)
	local events = process.events()
	local busy = {}
	for i = 1, 2 * workers do
		busy[i] = process.spawn_monitored("app:busy", "app:processes")
	end
	local pong = process.spawn("app:pong", "app:processes", process.pid())
	local inbox = process.inbox()
	for i = 1, rounds do
		process.send(pong, "ping", i)
		local got = inbox:receive():payload():data()
		assert(got == i, "round " .. i .. " got " .. tostring(got))
	end
	process.send(pong, "stop")
	for _, pid in ipairs(busy) do
		assert(process.terminate(pid) == true)
	end
	for _ = 1, #busy do
		local ev = events:receive()
		assert(ev.kind == process.event.EXIT and ev.result.error == "terminated", tostring(ev.result.error))
	end
	return rounds
end
return { main = main }
