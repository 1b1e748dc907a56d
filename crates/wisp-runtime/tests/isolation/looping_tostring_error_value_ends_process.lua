-- expect: ok
-- host: limits: { max_step: 200ms }
-- Finding 7, with a __tostring that loops: a process that registered a name and raised an error
-- value whose __tostring never returns still ends, with the error "error value is not
-- printable"; its monitor gets the EXIT, its name is released, and the shard goes on serving its
-- neighbours. (max_step is lowered so that a limit on the loop, if that is what ends it, comes
-- soon.)

local h = require("harness") -- common/lib/harness.lua

local NAME = "iso-unprintable-loop"

-- The error value the failing process raises.
local function unprintable()
	return setmetatable({}, {
		__tostring = function()
			while true do
			end
		end,
	})
end

local function main(role: string?, ...)
	return h.unprintable_error_ends_process(NAME, unprintable, role, ...)
end

return { main = main }
