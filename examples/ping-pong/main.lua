-- Ping-pong: the main process spawns a ponger on the process host and plays N round trips.
local function main(n: string?): number
	local rounds = tonumber(n) or 10000
	local pong = process.spawn("app:pong", "app:processes", process.pid())
	local inbox = process.inbox()
	local t0 = os.clock()
	for i = 1, rounds do
		process.send(pong, "ping", i)
		local msg = inbox:receive()
		local got = msg:payload():data()
		if got ~= i then
			error(string.format("round %d: got %s", i, tostring(got)))
		end
	end
	local elapsed = os.clock() - t0
	process.send(pong, "stop")
	print(string.format("%d round trips in order, %.0f ns per round trip", rounds, elapsed * 1e9 / rounds))
	return rounds
end

return { main = main }
