-- expect: ok
-- host: limits: { max_step: 200ms }
-- Finding 6: a busy __index metamethod cannot yield, so it cannot be preempted.
-- With the host's limits.max_step at 200ms the process ends with the error "step time limit
-- exceeded" (the pcall around the loop must not catch it), its monitor gets the EXIT, and the
-- neighbour on the shard answers again.

local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending, error_of = h.HOST, h.within, h.exit_of, h.ending, h.error_of
local start_echo, round_trip, problem, verdict = h.start_echo, h.round_trip, h.problem, h.verdict

local function spin()
	local t = setmetatable({}, {
		__index = function()
			while true do
			end
		end,
	})
	return t.anything
end

local function busy(parent: string)
	process.send(parent, "spinning", process.pid())
	local ok, err = pcall(spin)
	return "pcall caught it: " .. tostring(ok) .. ", " .. tostring(err)
end

local function case()
	local echo = start_echo()
	local spinning = process.listen("spinning")
	local busy_pid = process.spawn_monitored(process.id(), HOST, "busy", process.pid())
	local _, started = within(spinning, "10s")
	if not started then
		problem("the busy process never started: " .. ending(exit_of(busy_pid, "1s")))
		return verdict()
	end
	local ev = exit_of(busy_pid, "10s")
	if ev == nil then
		problem("the busy process was still running 10s later")
		process.terminate(busy_pid)
	elseif not string.find(error_of(ev), "step time limit exceeded", 1, true) then
		problem("the busy process ended with " .. ending(ev))
	end
	if not round_trip(echo, 1) then
		problem("the neighbour did not answer afterwards")
	end
	return verdict()
end

local function main(role: string?, ...)
	if role == "busy" then
		return busy(...)
	end
	return case()
end

return { main = main }
