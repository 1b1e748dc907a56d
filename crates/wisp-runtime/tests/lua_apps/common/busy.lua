local function main()
	while true do
	end
end
return { main = main }
