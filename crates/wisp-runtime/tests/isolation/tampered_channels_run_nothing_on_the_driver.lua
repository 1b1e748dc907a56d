-- expect: ok
-- Finding 5: the runtime never runs a process's code outside that process's own coroutines.
-- The attacker plants tables with metamethods where the driver looks when it delivers (the
-- waiter queue of its inbox, of events(), of a listen channel and of a time.after channel; the
-- metatable of another time.after channel); each metamethod notes the coroutine it runs in.
-- Messages to itself, a message on a listened topic, a timer and a child's EXIT must still
-- arrive, and no metamethod may have run in a coroutine other than the attacker's own. (Error
-- values' __tostring, which the runtime calls, is covered by the unprintable_* and debug_info_*
-- cases.)

local time = require("time")
local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending = h.HOST, h.within, h.exit_of, h.ending
local start_echo, round_trip, problem, verdict = h.start_echo, h.round_trip, h.problem, h.verdict

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
