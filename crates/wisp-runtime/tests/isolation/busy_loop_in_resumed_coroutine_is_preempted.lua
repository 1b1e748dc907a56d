-- expect: ok
-- Finding 6, a loop the preemption missed: a busy loop inside a coroutine.create'd coroutine it resumes.
-- A busy process and a ping-pong neighbour share the shard: the neighbour keeps completing
-- round trips while the other spins, and process.terminate delivers an EXIT with the error
-- "terminated" to the busy process's monitor within a few seconds.

-- Helpers: the same block in every case that uses them (each case file stands alone).

local time = require("time")

local HOST = "app:processes"
-- Captured when the chunk loads: what an attacker does to the module later cannot change it.
local after = time.after

-- The next value on `ch` within `d`: the value and true, or nil and false on timeout.
local function within(ch, d: string): (any, boolean)
	local timeout = after(d)
	local r = channel.select({ ch:case_receive(), timeout:case_receive() })
	if r.channel == ch then
		return r.value, true
	end
	return nil, false
end

-- EXIT events seen so far, by PID.
local exits = {}

-- The EXIT event of `pid` within `d`, or nil.
local function exit_of(pid: string, d: string)
	local timeout = after(d)
	local events = process.events()
	while exits[pid] == nil do
		local r = channel.select({ events:case_receive(), timeout:case_receive() })
		if r.channel ~= events then
			return nil
		end
		local ev = r.value
		if type(ev) == "table" and ev.kind == "pid.exit" then
			exits[ev.from] = ev
		end
	end
	return exits[pid]
end

-- How a process ended, from its EXIT event.
local function ending(ev): string
	if ev == nil then
		return "no EXIT"
	end
	local result = ev.result or {}
	if result.error ~= nil then
		return "error " .. tostring(result.error)
	end
	return "value " .. tostring(result.value)
end

-- The error text of an EXIT event ("" when it ended normally or never).
local function error_of(ev): string
	return ev and ev.result and ev.result.error and tostring(ev.result.error) or ""
end

-- Starts the common echo process, monitored, and waits for its "ready".
local function start_echo(): string
	local ready = process.listen("ready")
	local pid = process.spawn_monitored("app:echo", HOST, process.pid())
	local said, ok = within(ready, "10s")
	assert(ok and said == pid, "the echo process did not start")
	return pid
end

-- One round trip with an echo process: true when its pong came back within `d`.
local function round_trip(echo: string, n: number, d: string?): boolean
	local pongs = process.listen("pong")
	process.send(echo, "ping", n)
	local got, ok = within(pongs, d or "5s")
	return ok and got == n
end

-- Problems found so far; the case's verdict lists them all.
local problems = {}
local function problem(text: string)
	problems[#problems + 1] = text
end
local function verdict(): string
	if #problems == 0 then
		return "ok"
	end
	error(#problems .. " problem(s):\n" .. table.concat(problems, "\n"), 0)
end

-- End of the helpers.

local function spin()
	local co = coroutine.create(function()
		while true do
		end
	end)
	coroutine.resume(co)
end

local function busy(parent: string)
	process.send(parent, "spinning", process.pid())
	spin()
	return "the loop ended"
end

local function case()
	local echo = start_echo()
	local spinning = process.listen("spinning")
	local busy_pid = process.spawn_monitored(process.id(), HOST, "busy", process.pid())
	local _, started = within(spinning, "10s")
	if not started then
		problem("the busy process never started: " .. ending(exit_of(busy_pid, "1s")))
		return verdict()
	end
	for i = 1, 20 do
		if not round_trip(echo, i) then
			problem("round trip " .. i .. " with the neighbour took more than 5s while the other process spun")
			break
		end
	end
	process.terminate(busy_pid)
	local ev = exit_of(busy_pid, "5s")
	if ev == nil then
		problem("no EXIT within 5s of process.terminate")
	elseif not string.find(error_of(ev), "terminated", 1, true) then
		problem("after process.terminate the busy process ended with " .. ending(ev))
	end
	if not round_trip(echo, 100) then
		problem("the neighbour stopped answering")
	end
	return verdict()
end

local function main(role: string?, ...)
	if role == "busy" then
		return busy(...)
	end
	return case()
end

return { main = main }
