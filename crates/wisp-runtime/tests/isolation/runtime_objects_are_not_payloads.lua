-- expect: ok
-- Finding 9: channels live inside one process. Sending a channel, process.inbox(),
-- process.events(), a timer or a time.after channel (alone or inside a table), or passing one
-- as a spawn argument, is refused at the call with an error naming what it is; nothing reaches
-- the receiver, and the sender keeps working.

local time = require("time")
local h = require("harness") -- common/lib/harness.lua
local HOST = h.HOST
local start_echo, round_trip, problem, verdict = h.start_echo, h.round_trip, h.problem, h.verdict

local function case()
	local echo = start_echo()
	local timer = time.timer("1h")
	local objects = {
		{ "a channel", channel.new(), { "channel" } },
		{ "process.inbox()", process.inbox(), { "inbox", "channel" } },
		{ "process.events()", process.events(), { "event", "channel" } },
		{ "a timer", timer, { "timer" } },
		{ "a time.after channel", time.after("1h"), { "channel", "timer" } },
	}
	local function names_kind(text: string, kinds): boolean
		for _, kind in kinds do
			if string.find(text, kind, 1, true) then
				return true
			end
		end
		return false
	end
	for _, o in objects do
		local label, obj, kinds = o[1], o[2], o[3]
		local ok, err = pcall(process.send, echo, "x", obj)
		if ok then
			problem("process.send accepted " .. label)
		elseif not names_kind(tostring(err), kinds) then
			problem("process.send refused " .. label .. " without naming it: " .. tostring(err))
		end
		ok, err = pcall(process.send, echo, "x", { inner = obj })
		if ok then
			problem("process.send accepted " .. label .. " inside a table")
		end
		local spawned, pid, why = pcall(process.spawn, "app:echo", HOST, obj)
		if spawned and pid ~= nil then
			problem("process.spawn accepted " .. label .. " as an argument")
		else
			local text = spawned and tostring(why) or tostring(pid)
			if not names_kind(text, kinds) then
				problem("process.spawn refused " .. label .. " without naming it: " .. text)
			end
		end
	end
	timer:stop()
	-- Nothing of that reached the echo process: its next pong answers this ping.
	if not round_trip(echo, 1) then
		problem("the sender could not exchange messages afterwards (or the echo got what was refused)")
	end
	return verdict()
end

local function main()
	return case()
end

return { main = main }
