local function main()
	error("child failed on purpose")
end
return { main = main }
