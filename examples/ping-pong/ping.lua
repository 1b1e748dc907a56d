-- Plays `rounds` round trips with a ponger it spawns next to itself, checking the order of the
-- answers; returns the time per round trip in nanoseconds.
local function main(rounds: number): number
	local pong = process.spawn("app:pong", "app:processes", process.pid())
	local inbox = process.inbox()
	local t0 = os.clock()
	for i = 1, rounds do
		process.send(pong, "ping", i)
		local got = inbox:receive():payload():data()
		if got ~= i then
			error(string.format("round %d: got %s", i, tostring(got)))
		end
	end
	local elapsed = os.clock() - t0
	process.send(pong, "stop")
	return elapsed * 1e9 / rounds
end

return { main = main }
