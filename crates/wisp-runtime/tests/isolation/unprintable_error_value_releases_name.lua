-- expect: ok
-- Finding 7, seen from outside: a process that registered a name and raised an error value
-- whose __tostring raises ends with the error "error value is not printable"; its monitor gets
-- the EXIT, its name is released, and the shard goes on serving its neighbours.

local h = require("harness") -- common/lib/harness.lua

local NAME = "iso-unprintable"

-- The error value the failing process raises.
local function unprintable()
	return setmetatable({}, {
		__tostring = function()
			error("x")
		end,
	})
end

local function main(role: string?, ...)
	return h.unprintable_error_ends_process(NAME, unprintable, role, ...)
end

return { main = main }
