-- expect: ok
-- Finding 2, in general: every table a fresh process can reach is frozen (table.isfrozen),
-- nested tables included: its globals (recursively), the metatables of everything reached,
-- getmetatable("") and getmetatable(string), the tables require returns (time, ctx, uuid,
-- security) and the metatables of the objects the runtime hands it. The one exception is the
-- process's own global table, if it has one (checked instead: a later process does not see the
-- global this one sets).
local ctx = require("ctx")
local uuid = require("uuid")
local security = require("security")

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

local function key_text(k): string
	if type(k) == "string" then
		return "." .. k
	elseif type(k) == "number" or type(k) == "boolean" then
		return "[" .. tostring(k) .. "]"
	end
	return "[" .. type(k) .. " key]"
end

local seen = {}
local writable = {}
local skip = {}

local function visit(path: string, v)
	if type(v) ~= "table" or seen[v] then
		return
	end
	seen[v] = true
	if not skip[v] and not table.isfrozen(v) then
		writable[#writable + 1] = path
	end
	for k, x in next, v do
		visit(path .. key_text(k), x)
		visit(path .. key_text(k) .. " (the key)", k)
	end
	visit("getmetatable(" .. path .. ")", getmetatable(v))
end

local function walker(): string
	-- A global of this process: code that sets one may have a global table of its own.
	isolation_probe_global = process.pid()
	if rawget(_G, "isolation_probe_global") ~= nil then
		-- _G is this process's own table: walk what it holds, not it.
		skip[_G] = true
	end
	local globals = {
		_G = _G, process = process, channel = channel, coroutine = coroutine, string = string,
		table = table, math = math, bit32 = bit32, utf8 = utf8, os = os, buffer = buffer,
		debug = debug, vector = vector,
	}
	for name, value in globals do
		visit(name, value)
	end
	for name, value in next, _G do
		visit("_G." .. tostring(name), value)
	end
	visit("getmetatable(\"\")", getmetatable(""))
	visit("getmetatable(string)", getmetatable(string))
	visit("require(\"time\")", time)
	visit("require(\"ctx\")", ctx)
	visit("require(\"uuid\")", uuid)
	visit("require(\"security\")", security)

	-- The metatables of the objects the runtime hands out.
	local me = process.pid()
	process.send(me, "probe", 1)
	local msg = within(process.inbox(), "5s")
	local timer, ticker = time.timer("1h"), time.ticker("1h")
	local objects = {
		channel = channel.new(),
		inbox = process.inbox(),
		events = process.events(),
		listen = process.listen("walk"),
		after = time.after("1h"),
		timer = timer,
		timer_channel = timer:channel(),
		ticker = ticker,
		ticker_channel = ticker:channel(),
		with_name = process.with_name("walk"),
		with_context = process.with_context({ k = 1 }),
		with_message = process.with_message("t", 1),
		actor = security.new_actor("walk"),
		scope = security.new_scope({}),
		message = msg,
		payload = msg and msg:payload(),
	}
	for name, obj in objects do
		visit("getmetatable(" .. name .. ")", getmetatable(obj))
	end
	timer:stop()
	ticker:stop()

	table.sort(writable)
	if #writable > 0 then
		return #writable .. " writable shared table(s): " .. table.concat(writable, ", ")
	end
	return "all frozen"
end

local function peek(): string
	local before = isolation_probe_global
	isolation_probe_global = "peek"
	if before ~= nil then
		return "saw another process's global: " .. tostring(before)
	end
	return "nothing"
end

local function case()
	local walked = walker()
	if walked ~= "all frozen" then
		problem(walked)
	end
	local peeker = process.spawn_monitored(process.id(), HOST, "peek")
	local peeked = exit_of(peeker, "10s")
	if ending(peeked) ~= "value nothing" then
		problem("a later process " .. ending(peeked))
	end
	return verdict()
end

local function main(role: string?)
	if role == "peek" then
		return peek()
	end
	return case()
end

return { main = main }
