-- expect error: error value is not printable
-- Finding 7: an error value whose __tostring raises still ends its process, with the error
-- "error value is not printable" (the runtime used to raise in its own driver turning it into
-- text, and the process never ended).

local function main()
	error(setmetatable({}, {
		__tostring = function()
			error("x")
		end,
	}))
end

return { main = main }
