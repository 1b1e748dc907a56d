-- expect: ok
local time = require("time")

local function main()
	-- Unbuffered: a spawned coroutine sends, the main coroutine receives, then close.
	local ch = channel.new()
	local done = channel.new(1)
	coroutine.spawn(function()
		for i = 1, 3 do
			ch:send(i)
		end
		ch:close()
		done:send("sender done")
	end)
	local got = {}
	while true do
		local v, ok = ch:receive()
		if not ok then
			break
		end
		got[#got + 1] = v
	end
	assert(#got == 3 and got[1] == 1 and got[2] == 2 and got[3] == 3, "unbuffered: got " .. #got)
	assert(done:receive() == "sender done")
	local v, ok = ch:receive()
	assert(v == nil and ok == false, "receive on a closed channel")

	-- Unbuffered send blocks until a receiver takes the value.
	local u = channel.new()
	local steps = {}
	coroutine.spawn(function()
		steps[#steps + 1] = "send"
		u:send("x")
		steps[#steps + 1] = "sent"
	end)
	local r0 = channel.select({ u:case_receive(), default = true })
	-- The spawned coroutine has not run yet or is blocked in send; either way receive completes.
	if r0.default then
		assert(u:receive() == "x")
	else
		assert(r0.value == "x")
	end

	-- Buffered: sends complete up to the capacity, then a send would block.
	local b = channel.new(2)
	b:send("a")
	b:send("b")
	local full = channel.select({ b:case_send("c"), default = true })
	assert(full.default == true, "a full channel accepted a send")
	assert(b:receive() == "a" and b:receive() == "b")

	-- A buffered channel is drained before receive reports closed.
	local d = channel.new(2)
	d:send(1)
	d:close()
	local v1, ok1 = d:receive()
	assert(v1 == 1 and ok1 == true)
	local v2, ok2 = d:receive()
	assert(v2 == nil and ok2 == false)
	assert(not pcall(d.send, d, 2), "send on a closed channel must raise")
	assert(not pcall(d.close, d), "closing twice must raise")

	-- Select with default on an empty channel.
	local e = channel.new()
	local r = channel.select({ e:case_receive(), default = true })
	assert(r.default == true)

	-- Select over a timer and a channel: a ready channel wins...
	local c2 = channel.new(1)
	c2:send(42)
	r = channel.select({ time.after("1s"):case_receive(), c2:case_receive() })
	assert(r.channel == c2 and r.value == 42 and r.ok == true)
	-- ...and the timer fires when the channel stays empty.
	local timer = time.after("10ms")
	r = channel.select({ e:case_receive(), timer:case_receive() })
	assert(r.channel == timer and r.ok == true, "timer did not win")

	-- A coroutine that sends later wakes a select.
	local late = channel.new()
	coroutine.spawn(function()
		time.sleep("5ms")
		late:send("late")
	end)
	r = channel.select({ late:case_receive(), time.after("10s"):case_receive() })
	assert(r.channel == late and r.value == "late")

	-- Select on a send case completes when a receiver shows up.
	local s = channel.new()
	local received = channel.new(1)
	coroutine.spawn(function()
		received:send(s:receive())
	end)
	r = channel.select({ s:case_send("hello") })
	assert(r.channel == s and r.ok == true)
	assert(received:receive() == "hello")
	return "ok"
end
return { main = main }
