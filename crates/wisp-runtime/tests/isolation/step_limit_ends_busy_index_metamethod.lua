-- expect: ok
-- host: limits: { max_step: 200ms }
-- Finding 6: a busy __index metamethod cannot yield, so it cannot be preempted.
-- With the host's limits.max_step at 200ms the process ends with the error "step time limit
-- exceeded" (the pcall around the loop must not catch it), its monitor gets the EXIT, and the
-- neighbour on the shard answers again.

local h = require("harness") -- common/lib/harness.lua

local function spin()
	local t = setmetatable({}, {
		__index = function()
			while true do
			end
		end,
	})
	return t.anything
end

local function main(role: string?, ...)
	return h.step_limit_ends_busy(spin, role, ...)
end

return { main = main }
