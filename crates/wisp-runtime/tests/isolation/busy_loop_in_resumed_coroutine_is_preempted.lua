-- expect: ok
-- Finding 6, a loop the preemption missed: a busy loop inside a coroutine.create'd coroutine it resumes.
-- A busy process and a ping-pong neighbour share the shard: the neighbour keeps completing
-- round trips while the other spins, and process.terminate delivers an EXIT with the error
-- "terminated" to the busy process's monitor within a few seconds.

local h = require("harness") -- common/lib/harness.lua

local function spin()
	local co = coroutine.create(function()
		while true do
		end
	end)
	coroutine.resume(co)
end

local function main(role: string?, ...)
	return h.busy_loop_is_preempted(spin, role, ...)
end

return { main = main }
