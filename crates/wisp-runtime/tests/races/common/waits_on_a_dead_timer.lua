-- Waits on a timer's channel that nothing can fill any more: `kind` says which.
local time = require("time")
local waits = {}
function waits.stopped_timer()
	local t = time.timer("1h")
	t:stop()
	t:channel():receive()
end
function waits.stopped_ticker()
	local t = time.ticker("1h")
	t:stop()
	t:channel():receive()
end
function waits.fired_after()
	local ch = time.after("1ms")
	ch:receive()
	ch:receive()
end
local function main(kind: string)
	waits[kind]()
	return "woke"
end
return { main = main }
