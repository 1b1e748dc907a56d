-- expect: ok
-- Finding 6's control: a busy loop in the process's main function, which the preemption
-- always caught.
-- A busy process and a ping-pong neighbour share the shard: the neighbour keeps completing
-- round trips while the other spins, and process.terminate delivers an EXIT with the error
-- "terminated" to the busy process's monitor within a few seconds.

local h = require("harness") -- common/lib/harness.lua

local function spin()
	while true do
	end
end

local function main(role: string?, ...)
	return h.busy_loop_is_preempted(spin, role, ...)
end

return { main = main }
