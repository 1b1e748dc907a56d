-- expect: ok
-- Finding 1's crash. A process reached its own driver record through the waiter of a receive
-- blocked in a coroutine it made (rawget(ch, "rq")[1].p), cleared its main coroutine
-- (rec[2] = nil) and waited on its inbox; a neighbour churned garbage and sent it a message,
-- and the VM crashed (SIGSEGV). Now the waiter is out of reach and the shard goes on serving
-- other processes. The attacker then gets its message and returns, unless the receive in its
-- coroutine made the whole process wait (a wait inside a coroutine.create'd coroutine may pass
-- up to the process): then nothing can ever wake it, and it ends with a deadlock error.

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

local function attacker(parent: string)
	local ch = channel.new()
	local co = coroutine.create(function()
		ch:receive()
	end)
	coroutine.resume(co)
	local reached = pcall(function()
		local rec = rawget(ch, "rq")[1].p
		rec[2] = nil
	end)
	process.send(parent, "parked", reached)
	local msg = process.inbox():receive()
	if msg:topic() ~= "wake" then
		return "woken by " .. tostring(msg:topic())
	end
	if reached then
		return "reached its process record, and survived"
	end
	return "survived"
end

local function churner(target: string)
	local keep = {}
	for _ = 1, 300 do
		keep = {}
		for i = 1, 2000 do
			keep[i] = { i, tostring(i), { i } }
		end
	end
	process.send(target, "wake", #keep)
	return "churned"
end

local function case()
	local echo = start_echo()
	local parked = process.listen("parked")
	local attacker_pid = process.spawn_monitored(process.id(), HOST, "attacker", process.pid())
	-- Until it says it waits on its inbox, or ends.
	local events = process.events()
	local timeout = after("10s")
	local waiting = false
	while not waiting and exits[attacker_pid] == nil do
		local r = channel.select({ parked:case_receive(), events:case_receive(), timeout:case_receive() })
		if r.channel == parked then
			waiting = true
			if r.value then
				problem("rawget(ch, \"rq\")[1].p reached the attacker's process record and let it clear its main coroutine")
			end
		elseif r.channel == events then
			local ev = r.value
			if type(ev) == "table" and ev.kind == "pid.exit" then
				exits[ev.from] = ev
			end
		else
			problem("the attacker neither waited on its inbox nor ended within 10s")
			break
		end
	end
	local churner_pid = process.spawn_monitored(process.id(), HOST, "churner", attacker_pid)
	local attacked = exit_of(attacker_pid, "10s")
	local how = ending(attacked)
	if how ~= "value survived" and not string.find(error_of(attacked), "deadlock", 1, true) then
		problem("the attacker ended with " .. how)
	end
	local churned = exit_of(churner_pid, "10s")
	if ending(churned) ~= "value churned" then
		problem("the churning neighbour ended with " .. ending(churned))
	end
	if not round_trip(echo, 1) then
		problem("a neighbour on the shard stopped answering")
	end
	return verdict()
end

local function main(role: string?, ...)
	if role == "attacker" then
		return attacker(...)
	elseif role == "churner" then
		return churner(...)
	end
	return case()
end

return { main = main }
