-- expect: ok
-- Finding 9: channels live inside one process. Sending a channel, process.inbox(),
-- process.events(), a timer or a time.after channel (alone or inside a table), or passing one
-- as a spawn argument, is refused at the call with an error naming what it is; nothing reaches
-- the receiver, and the sender keeps working.

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
