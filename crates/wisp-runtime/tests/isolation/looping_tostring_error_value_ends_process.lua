-- expect: ok
-- host: limits: { max_step: 200ms }
-- Finding 7, with a __tostring that loops: a process that registered a name and raised an error
-- value whose __tostring never returns still ends, with the error "error value is not
-- printable"; its monitor gets the EXIT, its name is released, and the shard goes on serving its
-- neighbours. (max_step is lowered so that a limit on the loop, if that is what ends it, comes
-- soon.)

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

local NAME = "iso-unprintable-loop"

local function failing(parent: string)
	assert(process.registry.register(NAME))
	process.send(parent, "registered", process.pid())
	error(setmetatable({}, {
		__tostring = function()
			while true do
			end
		end,
	}))
end

local function case()
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
	local holder = process.registry.lookup(NAME)
	if holder ~= nil then
		problem("its name is still bound to " .. tostring(holder))
	end
	if not round_trip(echo, 1) then
		problem("a neighbour on the shard stopped answering")
	end
	return verdict()
end

local function main(role: string?, ...)
	if role == "failing" then
		return failing(...)
	end
	return case()
end

return { main = main }
