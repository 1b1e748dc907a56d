local function main()
	local a, b = channel.new(), channel.new()
	coroutine.spawn(function()
		a:receive()
		b:send(1)
	end)
	b:receive()
	a:send(1)
	return "unreachable"
end
return { main = main }
