local function main()
	return nil, "bad"
end
return { main = main }
