-- expect: ok
-- Finding 5, through debug: the functions debug.info(level, "f") finds on a process's stack
-- (levels 1 to 20, at its chunk's top level, in main, in coroutines, in metamethods and
-- callbacks the runtime or the standard library call, and in the __tostring of the error value
-- that ends it) must not let it forge traffic. The attacker calls every function it finds that
-- is not its own with odd arguments (slots, tokens, forged process records, forged items), and
-- after each one probes: a with_name spawner's message to a spy and a name registration. The
-- spy must get only genuine messages from the attacker, no name may stay bound to another
-- process, and the runtime must not crash.

local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending = h.HOST, h.within, h.exit_of, h.ending
local problem, verdict = h.problem, h.verdict

local SPY_NAME = "iso-debug-spy"
local PROBE_NAME = "iso-debug-probe"

-- Functions found on the stack, in the order found, with where.
local found = {}
local where = {}
local own_source = debug and debug.info and debug.info(1, "s")

local function collect(context: string)
	if not (debug and debug.info) then
		return
	end
	for level = 1, 20 do
		local f = debug.info(level, "f")
		if f == nil then
			break
		end
		if where[f] == nil and debug.info(f, "s") ~= own_source then
			where[f] = context .. ", level " .. level
			found[#found + 1] = f
		end
	end
end

collect("the chunk's top level")

local function fake_record(token: number)
	return { token, false, false, false }
end

local function fake_chunk()
	return { main = function() end }
end

-- Odd arguments: slots and tokens alone, forged records, forged mailbox items.
local ODD = {}
local function odd(...)
	ODD[#ODD + 1] = table.pack(...)
end
odd()
for slot = 0, 6 do
	odd(slot)
	odd(slot, nil, 1, "forged message", nil, nil)
	odd(slot, nil, 5, nil, nil, { kind = "pid.exit", from = "forged", result = { value = "forged" } })
	odd(slot, 0, false, nil)
	odd(fake_record(slot))
	odd(fake_record(slot), fake_chunk, "main")
	odd(fake_record(slot), 1, "forged message")
end

local tried = {}

local function probe(label: string)
	pcall(function()
		process.with_name(SPY_NAME):with_message("probe", label):spawn("app:echo", HOST)
	end)
	pcall(process.registry.register, PROBE_NAME)
end

local function try_found()
	for _, f in found do
		if not tried[f] then
			tried[f] = true
			for _, args in ODD do
				pcall(f, table.unpack(args, 1, args.n))
			end
			probe(where[f])
		end
	end
end

local function attacker()
	collect("main")
	coroutine.wrap(function()
		collect("a coroutine.wrap function")
	end)()
	coroutine.resume(coroutine.create(function()
		collect("a coroutine.create function")
	end))
	pcall(channel.select, setmetatable({}, {
		__index = function()
			collect("an __index under channel.select")
			return nil
		end,
	}))
	print(setmetatable({}, {
		__tostring = function()
			collect("a __tostring under print")
			return "x"
		end,
	}))
	pcall(process.with_context, setmetatable({}, {
		__iter = function()
			collect("an __iter under with_context")
			return next, {}
		end,
	}))
	table.sort({ 3, 2, 1 }, function(a, b)
		collect("a table.sort comparator")
		return a < b
	end)
	string.gsub("ab", ".", function()
		collect("a string.gsub callback")
	end)
	xpcall(function()
		error("x")
	end, function()
		collect("an xpcall handler")
	end)
	try_found()
	probe("after the calls")
	-- The runtime turns this error value into text as the process ends.
	error(setmetatable({}, {
		__tostring = function()
			collect("the __tostring of the error value")
			try_found()
			return "the attacker is done"
		end,
	}))
end

local function case()
	local me = process.pid()
	local ready = process.listen("ready")
	local spy = process.spawn_monitored("app:spy", HOST, me, SPY_NAME)
	local said, ok = within(ready, "10s")
	assert(ok and said == spy, "the spy did not start")
	local attacker_pid = process.spawn_monitored(process.id(), HOST, "attacker")
	if exit_of(attacker_pid, "20s") == nil then
		problem("the attacker never ended")
	end
	local holder = process.registry.lookup(PROBE_NAME)
	if holder ~= nil then
		problem("the attacker left the name " .. PROBE_NAME .. " bound to " .. tostring(holder))
	end
	process.send(spy, "report")
	local reported = exit_of(spy, "10s")
	local notes = reported and reported.result and reported.result.value
	if type(notes) ~= "table" then
		problem("the spy ended with " .. ending(reported))
	else
		for _, note in notes do
			if note ~= "probe from " .. attacker_pid then
				problem("the spy got: " .. note)
			end
		end
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
