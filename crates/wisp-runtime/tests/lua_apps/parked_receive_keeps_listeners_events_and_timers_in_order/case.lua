-- expect: 505
-- A process waiting on its inbox alone is resumed straight from the mailbox; whatever else
-- arrives meanwhile (listener messages, events, timers) must still reach its channels, in order.
local function main()
	local me = process.pid()
	local worker = process.spawn("app:parked_worker", "app:processes", me)
	assert(process.inbox():receive():topic() == "ready")
	for i = 1, 500 do
		process.send(worker, "side", i)
		process.send(worker, "in", i)
		if i % 100 == 0 then
			process.send(worker, "both", i, i + 1)
		end
	end
	process.send(worker, "done")
	local report = process.inbox():receive()
	assert(report:topic() == "report", "got " .. tostring(report:topic()))
	return report:payload():data()
end
return { main = main }
