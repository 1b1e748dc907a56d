-- expect: ok
-- Finding 5: the runtime never runs a process's code outside that process's own coroutines.
-- The attacker plants tables with metamethods where the driver looks when it delivers (the
-- waiter queue of its inbox, of events(), of a listen channel and of a time.after channel; the
-- metatable of another time.after channel); each metamethod notes the coroutine it runs in.
-- Messages to itself, a message on a listened topic, a timer and a child's EXIT must still
-- arrive, and no metamethod may have run in a coroutine other than the attacker's own. (Error
-- values' __tostring, which the runtime calls, is covered by the unprintable_* and debug_info_*
-- cases.)

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

local function attacker(): string
	local mine = { [coroutine.running()] = true }
	local calls, foreign = 0, 0
	local function noted(): any
		calls += 1
		if not mine[coroutine.running()] then
			foreign += 1
		end
		return nil
	end
	local trap = setmetatable({}, {
		__index = noted,
		__len = function()
			noted()
			return 0
		end,
	})
	local me = process.pid()
	local inbox, events = process.inbox(), process.events()
	local topic = process.listen("iso.topic")
	local soon = time.after("50ms")
	local other = time.after("50ms")
	local planted = {}
	local function plant(label: string, f: () -> ())
		if pcall(f) then
			planted[#planted + 1] = label
		end
	end
	plant("rawset(inbox, \"rq\", t)", function()
		rawset(inbox, "rq", trap)
	end)
	plant("rawset(events, \"rq\", t)", function()
		rawset(events, "rq", trap)
	end)
	plant("rawset(listen channel, \"rq\", t)", function()
		rawset(topic, "rq", trap)
	end)
	plant("rawset(time.after channel, \"rq\", t)", function()
		rawset(soon, "rq", trap)
	end)
	plant("setmetatable(time.after channel, {__index = f})", function()
		setmetatable(other, { __index = noted })
	end)

	local missing = {}
	process.send(me, "iso.self", 1)
	process.send(me, "iso.topic", 2)
	local child = process.spawn_monitored("app:echo", HOST)
	process.send(child, "stop")
	-- Wait on something untouched while all that is delivered (into empty queues, where the
	-- driver looks at the planted tables), then take it.
	within(channel.new(), "300ms")
	local msg, got_msg = within(inbox, "5s")
	if not got_msg or msg:topic() ~= "iso.self" then
		missing[#missing + 1] = "a message to itself"
	end
	local v, got_topic = within(topic, "5s")
	if not got_topic or v ~= 2 then
		missing[#missing + 1] = "a message on a listened topic"
	end
	local _, fired = within(soon, "5s")
	if not fired then
		missing[#missing + 1] = "a time.after value"
	end
	if exit_of(child, "5s") == nil then
		missing[#missing + 1] = "a child's EXIT"
	end
	local report = {}
	if foreign > 0 then
		report[#report + 1] = foreign .. " of " .. calls .. " metamethod calls ran outside the attacker's coroutine"
			.. " (planted: " .. table.concat(planted, ", ") .. ")"
	end
	if #missing > 0 then
		report[#report + 1] = "never arrived: " .. table.concat(missing, ", ")
	end
	return table.concat(report, "; ")
end

local function case()
	local echo = start_echo()
	local attacker_pid = process.spawn_monitored(process.id(), HOST, "attacker")
	local attacked = exit_of(attacker_pid, "20s")
	if ending(attacked) ~= "value " then
		problem("planted metamethods: " .. ending(attacked))
	end
	if not round_trip(echo, 1) then
		problem("a neighbour on the shard stopped answering")
	end
	return verdict()
end

local function main(role: string?)
	if role == "attacker" then
		return attacker()
	end
	return case()
end

return { main = main }
