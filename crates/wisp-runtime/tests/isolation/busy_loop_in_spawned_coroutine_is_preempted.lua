-- expect: ok
-- Finding 6, a loop the preemption missed: a busy loop in a coroutine.spawn'd coroutine while the main one waits on its inbox.
-- A busy process and a ping-pong neighbour share the shard: the neighbour keeps completing
-- round trips while the other spins, and process.terminate delivers an EXIT with the error
-- "terminated" to the busy process's monitor within a few seconds.

local h = require("harness") -- common/lib/harness.lua

local function spin()
	coroutine.spawn(function()
		while true do
		end
	end)
	process.inbox():receive()
end

local function main(role: string?, ...)
	return h.busy_loop_is_preempted(spin, role, ...)
end

return { main = main }
