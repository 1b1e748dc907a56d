-- A child for `process.exec`: ends at once with the error "nope".
local function main()
	return nil, "nope"
end
return { main = main }
