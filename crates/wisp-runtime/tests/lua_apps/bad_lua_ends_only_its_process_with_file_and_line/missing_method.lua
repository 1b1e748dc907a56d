local function main()
	local t = {}
	t:nope()
end
return { main = main }
