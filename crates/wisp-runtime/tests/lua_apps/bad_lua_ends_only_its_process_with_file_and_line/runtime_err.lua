local function main()
	error("boom")
end
return { main = main }
