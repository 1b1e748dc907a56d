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

local time = require("time")
local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending = h.HOST, h.within, h.exit_of, h.ending
local problem, verdict = h.problem, h.verdict

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
