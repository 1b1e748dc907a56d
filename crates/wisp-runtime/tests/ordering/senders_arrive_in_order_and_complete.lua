-- expect: any string
-- setup: rust
-- The Rust tests run it with plans of senders and compare the summary it returns.
-- plan: "id:count:yield_every,..." in spawn order. Spawns one seq_sender per item, receives until
-- every sender said "end", then drains what is left. Returns a summary the test compares.
local function main(plan: string)
	local me = process.pid()
	local inbox = process.inbox()
	local expected, last, count, ended_ids = {}, {}, {}, {}
	local senders, want_total = 0, 0
	for id, n in string.gmatch(plan, "(%d+):(%d+):%d+") do
		id, n = tonumber(id), tonumber(n)
		expected[id], last[id], count[id] = n, 0, 0
		senders += 1
		want_total += n
	end
	for id, n, every in string.gmatch(plan, "(%d+):(%d+):(%d+)") do
		process.spawn("app:seq_sender", "app:processes", me, tonumber(id), tonumber(n), tonumber(every))
	end
	local total, reordered, after_end, ended, short = 0, 0, 0, 0, 0
	local function take(msg)
		local parts = msg:payload()
		local id, seq = parts[1]:data(), parts[2]:data()
		if msg:topic() == "n" then
			if ended_ids[id] then
				after_end += 1
			end
			if seq ~= last[id] + 1 then
				reordered += 1
			end
			last[id] = seq
			count[id] += 1
			total += 1
		else
			ended += 1
			ended_ids[id] = true
			if count[id] ~= expected[id] then
				short += 1
			end
		end
	end
	while ended < senders do
		take(inbox:receive())
	end
	-- Anything still queued is a duplicate or came after its sender's "end".
	while true do
		local r = channel.select({ inbox:case_receive(), default = true })
		if r.default then
			break
		end
		take(r.value)
	end
	return string.format(
		"total=%d lost=%d reordered=%d after_end=%d short=%d",
		total, want_total - total, reordered, after_end, short
	)
end
return { main = main }
