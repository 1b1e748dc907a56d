-- The helpers of the isolation cases: `local h = require("harness")` (every entry of the app
-- imports it; see isolation.rs). A library is loaded once per process, so the state below (the
-- EXIT events seen, the problems found) is each process's own.

local time = require("time")

local HOST = "app:processes"
-- Captured when the library loads: what an attacker does to the module later cannot change it.
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

-- EXIT events seen so far, by PID (a case reading events itself may add to it).
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

-- The scenarios several cases share. Each runs as the case's whole `main`: the case spawns a
-- second process of its own file, monitored, in a role (its `main` gets the role, then this
-- process's PID), and that process runs the case's own part.

-- Starts the echo process, then the case's "busy" process, and waits up to 10s for its
-- "spinning". The echo's PID and the busy process's, or the echo's and nil (a problem recorded)
-- when it never started.
local function start_busy(): (string, string?)
	local echo = start_echo()
	local spinning = process.listen("spinning")
	local busy_pid = process.spawn_monitored(process.id(), HOST, "busy", process.pid())
	local _, started = within(spinning, "10s")
	if not started then
		problem("the busy process never started: " .. ending(exit_of(busy_pid, "1s")))
		return echo, nil
	end
	return echo, busy_pid
end

-- A busy loop that preemption must catch: `main = function(role, ...) return
-- h.busy_loop_is_preempted(spin, role, ...) end`. In the role "busy" the process tells its
-- parent "spinning" and calls `spin`, which must never return. The case checks that the echo
-- neighbour completes 20 round trips (each within 5s) while it spins, that process.terminate
-- brings its EXIT with the error "terminated" within 5s, and that the neighbour still answers.
local function busy_loop_is_preempted(spin: () -> (), role: string?, ...): string
	if role == "busy" then
		local parent: string = ...
		process.send(parent, "spinning", process.pid())
		spin()
		return "the loop ended"
	end
	local echo, busy_pid = start_busy()
	if busy_pid == nil then
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

-- A busy loop that cannot yield, which the host's step limit must end: `main = function(role,
-- ...) return h.step_limit_ends_busy(spin, role, ...) end`. In the role "busy" the process tells
-- its parent "spinning" and calls `spin` under pcall (which must not catch the limit). The case
-- checks that the busy process ends within 10s with the error "step time limit exceeded" and
-- that the echo neighbour answers afterwards.
local function step_limit_ends_busy(spin: () -> any, role: string?, ...): string
	if role == "busy" then
		local parent: string = ...
		process.send(parent, "spinning", process.pid())
		local ok, err = pcall(spin)
		return "pcall caught it: " .. tostring(ok) .. ", " .. tostring(err)
	end
	local echo, busy_pid = start_busy()
	if busy_pid == nil then
		return verdict()
	end
	local ev = exit_of(busy_pid, "10s")
	if ev == nil then
		problem("the busy process was still running 10s later")
		process.terminate(busy_pid)
	elseif not string.find(error_of(ev), "step time limit exceeded", 1, true) then
		problem("the busy process ended with " .. ending(ev))
	end
	if not round_trip(echo, 1) then
		problem("the neighbour did not answer afterwards")
	end
	return verdict()
end

-- An unprintable error value that must still end its process: `main = function(role, ...)
-- return h.unprintable_error_ends_process(name, unprintable, role, ...) end`. In the role
-- "failing" the process registers `name`, tells its parent "registered" with its PID, and raises
-- `unprintable()`. The case checks that it registered within 10s, that it ends within 10s with
-- the error "error value is not printable", that `name` is then unbound, and that the echo
-- neighbour still answers.
local function unprintable_error_ends_process(name: string, unprintable: () -> any, role: string?, ...): string
	if role == "failing" then
		local parent: string = ...
		assert(process.registry.register(name))
		process.send(parent, "registered", process.pid())
		error(unprintable())
	end
	local echo = start_echo()
	local registered = process.listen("registered")
	local pid = process.spawn_monitored(process.id(), HOST, "failing", process.pid())
	local said, ok = within(registered, "10s")
	if not ok or said ~= pid then
		problem("the failing process never registered its name")
	end
	local ev = exit_of(pid, "10s")
	if ev == nil then
		problem("no EXIT within 10s")
	elseif not string.find(error_of(ev), "error value is not printable", 1, true) then
		problem("it ended with " .. ending(ev))
	end
	local holder = process.registry.lookup(name)
	if holder ~= nil then
		problem("its name is still bound to " .. tostring(holder))
	end
	if not round_trip(echo, 1) then
		problem("a neighbour on the shard stopped answering")
	end
	return verdict()
end

return {
	HOST = HOST,
	after = after,
	within = within,
	exits = exits,
	exit_of = exit_of,
	ending = ending,
	error_of = error_of,
	start_echo = start_echo,
	round_trip = round_trip,
	problem = problem,
	verdict = verdict,
	busy_loop_is_preempted = busy_loop_is_preempted,
	step_limit_ends_busy = step_limit_ends_busy,
	unprintable_error_ends_process = unprintable_error_ends_process,
}
