local function main()
	local ch = channel.new()
	ch:receive()
	return "unreachable"
end
return { main = main }
