-- expect: ok
-- Finding 2, by attack: an attacker tries to change the tables every process of its VM shares
-- (by assignment, rawset and setmetatable): process.registry, process.event, the string
-- metatables and casts, and the tables require returns (time, ctx, uuid, security); then it
-- exits. Every write must raise, and a victim started later on that shard must find everything
-- as the runtime made it: correct registry lookups, event names, string methods and modules.
local ctx = require("ctx")
local uuid = require("uuid")
local security = require("security")

local time = require("time")
local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending = h.HOST, h.within, h.exit_of, h.ending
local start_echo, problem, verdict = h.start_echo, h.problem, h.verdict

local TARGET_NAME = "iso-tamper-target"
local HIJACKED = "HIJACKED by another process"

local function evil(): any
	error(HIJACKED, 0)
end

-- What the attacker tries; each entry a label and a function that should raise.
local function attempts()
	local list = {}
	local function add(label: string, f: () -> ())
		list[#list + 1] = { label, f }
	end
	local evil_mt = { __index = evil, __newindex = evil, __call = evil }
	add("process.registry.lookup = f", function()
		process.registry.lookup = function(_name)
			return "{app:processes|0x00001}"
		end
	end)
	add("process.registry.register = f", function()
		process.registry.register = evil
	end)
	add("rawset(process.registry, \"unregister\", f)", function()
		rawset(process.registry, "unregister", evil)
	end)
	add("setmetatable(process.registry, mt)", function()
		setmetatable(process.registry, evil_mt)
	end)
	add("process.event.EXIT = x", function()
		process.event.EXIT = "hijacked"
	end)
	add("rawset(process.event, \"LINK_DOWN\", x)", function()
		rawset(process.event, "LINK_DOWN", "hijacked")
	end)
	add("setmetatable(process.event, mt)", function()
		setmetatable(process.event, evil_mt)
	end)
	add("process.send = f", function()
		process.send = evil
	end)
	add("channel.new = f", function()
		channel.new = evil
	end)
	add("string.upper = f", function()
		string.upper = evil
	end)
	add("setmetatable(string, mt)", function()
		setmetatable(string, evil_mt)
	end)
	local string_cast_mt = getmetatable(string)
	if type(string_cast_mt) == "table" then
		add("getmetatable(string).__call = f", function()
			string_cast_mt.__call = evil
		end)
		add("rawset(getmetatable(string), \"__index\", f)", function()
			rawset(string_cast_mt, "__index", evil)
		end)
		add("setmetatable(getmetatable(string), mt)", function()
			setmetatable(string_cast_mt, evil_mt)
		end)
		if type(string_cast_mt.__index) == "table" then
			add("getmetatable(string).__index.x = f", function()
				string_cast_mt.__index.upper = evil
			end)
		end
	end
	local string_mt = getmetatable("")
	if type(string_mt) == "table" then
		add("getmetatable(\"\").__index = t", function()
			string_mt.__index = setmetatable({}, evil_mt)
		end)
		add("rawset(getmetatable(\"\"), \"__index\", t)", function()
			rawset(string_mt, "__index", setmetatable({}, evil_mt))
		end)
		add("setmetatable(getmetatable(\"\"), mt)", function()
			setmetatable(string_mt, evil_mt)
		end)
		if type(string_mt.__index) == "table" then
			add("getmetatable(\"\").__index.upper = f", function()
				string_mt.__index.upper = evil
			end)
		end
	end
	local modules = { time = time, ctx = ctx, uuid = uuid, security = security }
	for name, m in modules do
		for key, value in next, m do
			if type(value) == "function" then
				add(name .. "." .. tostring(key) .. " = f", function()
					m[key] = evil
				end)
			end
		end
		add("rawset(" .. name .. ", \"extra\", f)", function()
			rawset(m, "extra", evil)
		end)
		add("setmetatable(" .. name .. ", mt)", function()
			setmetatable(m, evil_mt)
		end)
	end
	add("time.SECOND = 0", function()
		time.SECOND = 0
	end)
	return list
end

local function attacker(): string
	local accepted = {}
	for _, a in attempts() do
		if pcall(a[2]) then
			accepted[#accepted + 1] = a[1]
		end
	end
	return table.concat(accepted, "; ")
end

-- In a later process: is everything as the runtime made it?
local function victim(target: string): string
	local found = {}
	local function expect(label: string, f: () -> boolean)
		local ok, res = pcall(f)
		if not ok then
			found[#found + 1] = label .. " raised: " .. tostring(res)
		elseif res ~= true then
			found[#found + 1] = label .. " is wrong"
		end
	end
	local me = process.pid()
	expect("process.registry.lookup", function()
		return process.registry.lookup(TARGET_NAME) == target
	end)
	expect("process.registry.register", function()
		return process.registry.register("iso-tamper-victim") == true
			and process.registry.lookup("iso-tamper-victim") == me
	end)
	expect("process.registry.unregister", function()
		return process.registry.unregister("iso-tamper-victim") == true
	end)
	expect("a missing process.registry field", function()
		return process.registry.no_such_field == nil
	end)
	expect("process.event", function()
		return process.event.EXIT == "pid.exit"
			and process.event.LINK_DOWN == "pid.link.down"
			and process.event.CANCEL == "pid.cancel"
			and process.event.no_such_field == nil
	end)
	expect("string(x)", function()
		return string(5) == "5"
	end)
	expect("string methods", function()
		return ("abc"):upper() == "ABC" and string.upper("x") == "X" and ("x").no_such_method == nil
	end)
	expect("a missing string field", function()
		return string.no_such_field == nil
	end)
	expect("time", function()
		return time.SECOND == 1e9 and type(time.now()) ~= "nil" and time.extra == nil
	end)
	expect("time.sleep", function()
		time.sleep("1ms")
		return true
	end)
	expect("ctx", function()
		local v, err = ctx.get("no such key")
		return v == nil and type(err) == "string" and type(ctx.all()) == "table" and ctx.extra == nil
	end)
	expect("uuid", function()
		return #uuid.v4() == 36 and #uuid.v7() == 36 and uuid.extra == nil
	end)
	expect("security", function()
		return type(security.can("process.send", "x")) == "boolean"
			and security.new_actor("iso.v"):id() == "iso.v"
			and security.extra == nil
	end)
	expect("a round trip by name", function()
		local pongs = process.listen("pong")
		process.send(TARGET_NAME, "ping", 7)
		local got, ok = within(pongs, "5s")
		return ok and got == 7
	end)
	return table.concat(found, "; ")
end

local function case()
	local echo = start_echo()
	assert(process.registry.register(TARGET_NAME, echo))
	local attacker_pid = process.spawn_monitored(process.id(), HOST, "attacker")
	local attacked = exit_of(attacker_pid, "10s")
	if ending(attacked) ~= "value " then
		problem("writes to shared tables were not refused: " .. ending(attacked))
	end
	local victim_pid = process.spawn_monitored(process.id(), HOST, "victim", echo)
	local checked = exit_of(victim_pid, "10s")
	if ending(checked) ~= "value " then
		problem("a later process on the shard found the tampering: " .. ending(checked))
	end
	return verdict()
end

local function main(role: string?, ...)
	if role == "attacker" then
		return attacker()
	elseif role == "victim" then
		return victim(...)
	end
	return case()
end

return { main = main }
