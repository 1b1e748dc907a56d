-- expect: "ok 66"
-- setup: rust
-- For each k: spawn a monitored child that sends k messages and ends; wait for its EXIT, then
-- check that the k messages were all delivered before it, in order: they are in the inbox
-- already. (A select over both channels would pick among ready cases at random.)
local function round(k: number, fail: boolean)
	local inbox, events = process.inbox(), process.events()
	local child = process.spawn_monitored("app:child", "app:processes", process.pid(), k, fail)
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == child, "unexpected event")
	if fail then
		assert(string.find(tostring(ev.result.error), "child fails after sending", 1, true))
	else
		assert(ev.result.value == k, "EXIT value " .. tostring(ev.result.value))
	end
	local seen = {}
	while true do
		local r = channel.select({ inbox:case_receive(), default = true })
		if r.default then
			break
		end
		seen[#seen + 1] = r.value:payload():data()
	end
	assert(#seen == k,
		string.format("k=%d fail=%s: %d messages before the EXIT", k, tostring(fail), #seen))
	for i = 1, k do
		assert(seen[i] == i, "message " .. i .. " is " .. tostring(seen[i]))
	end
end

local function main()
	local rounds = 0
	for _, k in { 1, 2, 10, 63, 64, 65, 200, 1000 } do
		round(k, false)
		round(k, true)
		rounds += 2
	end
	for _ = 1, 50 do
		round(20, false)
		rounds += 1
	end
	return "ok " .. rounds
end
return { main = main }
