-- expect: ok
-- host: limits: { max_step: 200ms }
-- Finding 7, with a __tostring that loops: a process that registered a name and raised an error
-- value whose __tostring never returns still ends, with the error "error value is not
-- printable"; its monitor gets the EXIT, its name is released, and the shard goes on serving its
-- neighbours. (max_step is lowered so that a limit on the loop, if that is what ends it, comes
-- soon.)

local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending, error_of = h.HOST, h.within, h.exit_of, h.ending, h.error_of
local start_echo, round_trip, problem, verdict = h.start_echo, h.round_trip, h.problem, h.verdict

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
