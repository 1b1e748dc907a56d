-- expect: ok
-- An entry's chunk normally runs to its end and its function is then called on a fresh frame;
-- a chunk that waits or is preempted at its top level must still get its arguments, in order.
local function main()
	local me = process.pid()
	local waiting = process.spawn("app:waits_at_top", "app:processes", me, "a", { n = 2 }, 3)
	local busy = process.spawn("app:busy_at_top", "app:processes", me, "b", 5)
	process.send(waiting, "go", "first")
	local inbox = process.inbox()
	local got = {}
	for _ = 1, 2 do
		local msg = inbox:receive()
		got[msg:topic()] = msg:payload():data()
	end
	assert(got.waited == "first a 2 3", "waiting chunk: " .. tostring(got.waited))
	assert(got.busy == "b 5", "busy chunk: " .. tostring(got.busy))
	return "ok"
end
return { main = main }
