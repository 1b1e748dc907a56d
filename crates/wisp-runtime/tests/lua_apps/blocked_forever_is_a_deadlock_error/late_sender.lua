local time = require("time")
local function main()
	local ch = channel.new()
	coroutine.spawn(function()
		time.sleep("10ms")
		ch:send("late")
	end)
	return ch:receive()
end
return { main = main }
