-- Returns its argument at once.
local function main(v)
	return v
end
return { main = main }
