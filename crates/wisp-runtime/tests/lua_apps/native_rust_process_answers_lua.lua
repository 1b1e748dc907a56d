-- expect: ok
-- on: terminal
-- setup: rust
-- Talks to `app:echo`, a native Rust process the Rust test of this name registers: it answers
-- `ping` with `pong` and the same payloads, and ends on `stop` with the number of pings.
local time = require("time")

-- Receives from ch, or fails naming what it waited for.
local function recv(ch, what: string)
	local r = channel.select({ ch:case_receive(), time.after("10s"):case_receive() })
	if r.channel ~= ch then
		error("timed out waiting for " .. what, 2)
	end
	return r.value
end

local function main()
	local echo = process.spawn_monitored("app:echo", "app:processes")
	assert(type(echo) == "string", "spawn of the native process: " .. tostring(echo))
	local inbox = process.inbox()
	for i = 1, 3 do
		assert(process.send(echo, "ping", { n = i, text = "hello" }) == true)
		local m = recv(inbox, "pong " .. i)
		assert(m:topic() == "pong" and m:from() == echo, "reply from " .. tostring(m:from()))
		local t = m:payload():data()
		assert(t.n == i and t.text == "hello")
	end
	process.send(echo, "stop")
	local ev = recv(process.events(), "EXIT of the native process")
	assert(ev.kind == process.event.EXIT and ev.from == echo and ev.result.value == 3, tostring(ev.result.error))
	return "ok"
end
return { main = main }
