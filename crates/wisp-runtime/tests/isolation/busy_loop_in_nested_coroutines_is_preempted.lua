-- expect: ok
-- Finding 6, a loop the preemption missed: a busy loop in a coroutine.wrap inside a coroutine.create'd coroutine, under pcall.
-- A busy process and a ping-pong neighbour share the shard: the neighbour keeps completing
-- round trips while the other spins, and process.terminate delivers an EXIT with the error
-- "terminated" to the busy process's monitor within a few seconds.

local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending, error_of = h.HOST, h.within, h.exit_of, h.ending, h.error_of
local start_echo, round_trip, problem, verdict = h.start_echo, h.round_trip, h.problem, h.verdict

local function spin()
	coroutine.resume(coroutine.create(function()
		pcall(coroutine.wrap(function()
			while true do
			end
		end))
	end))
end

local function busy(parent: string)
	process.send(parent, "spinning", process.pid())
	spin()
	return "the loop ended"
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
	for i = 1, 20 do
		if not round_trip(echo, i) then
			problem("round trip " .. i .. " with the neighbour took more than 5s while the other process spun")
			break
		end
	end
	process.terminate(busy_pid)
	local ev = exit_of(busy_pid, "5s")
	if ev == nil then
		problem("no EXIT within 5s of process.terminate")
	elseif not string.find(error_of(ev), "terminated", 1, true) then
		problem("after process.terminate the busy process ended with " .. ending(ev))
	end
	if not round_trip(echo, 100) then
		problem("the neighbour stopped answering")
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
