local function main()
	return 1 +
end
return { main = main }
