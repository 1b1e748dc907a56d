-- ordering SENDERS N: SENDERS processes each send N numbered messages to one receiver; checks
-- that none is lost and none is reordered within a sender (stress test R1). `main` runs in the
-- terminal host and only starts `body` (the receiver) on bench:processes, next to the senders.
local function body(senders: number, n: number)
	local me = process.pid()
	local inbox = process.inbox()
	local t0 = os.clock()
	for id = 1, senders do
		process.spawn("bench:seq_sender", "bench:processes", me, id, n)
	end
	local last = table.create(senders, 0)
	local reordered = 0
	for _ = 1, senders * n do
		local parts = inbox:receive():payload()
		local id, seq = parts[1]:data(), parts[2]:data()
		if seq ~= last[id] + 1 then
			reordered += 1
		end
		last[id] = seq
	end
	local lost = 0
	for id = 1, senders do
		lost += n - last[id]
	end
	return { reordered = reordered, lost = lost, ms = (os.clock() - t0) * 1e3 }
end

local function main(senders_s: string?, n_s: string?)
	local senders = tonumber(senders_s) or 8
	local n = tonumber(n_s) or 100000
	local r, err = process.exec("bench:ordering_body", "bench:processes", senders, n)
	if r == nil then
		error(err)
	end
	print(string.format("RESULT ordering reordered=%d lost=%d ms=%.1f senders=%d n=%d",
		r.reordered, r.lost, r.ms, senders, n))
	if r.reordered > 0 or r.lost > 0 then
		error(string.format("ordering: %d reordered, %d lost", r.reordered, r.lost))
	end
	return senders * n
end

return { main = main, body = body }
