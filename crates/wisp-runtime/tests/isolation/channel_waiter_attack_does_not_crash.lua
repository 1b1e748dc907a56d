-- expect: ok
-- Finding 1's crash. A process reached its own driver record through the waiter of a receive
-- blocked in a coroutine it made (rawget(ch, "rq")[1].p), cleared its main coroutine
-- (rec[2] = nil) and waited on its inbox; a neighbour churned garbage and sent it a message,
-- and the VM crashed (SIGSEGV). Now the waiter is out of reach and the shard goes on serving
-- other processes. The attacker then gets its message and returns, unless the receive in its
-- coroutine made the whole process wait (a wait inside a coroutine.create'd coroutine may pass
-- up to the process): then nothing can ever wake it, and it ends with a deadlock error.

local h = require("harness") -- common/lib/harness.lua
local HOST, after, exits = h.HOST, h.after, h.exits
local exit_of, ending, error_of = h.exit_of, h.ending, h.error_of
local start_echo, round_trip, problem, verdict = h.start_echo, h.round_trip, h.problem, h.verdict

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
