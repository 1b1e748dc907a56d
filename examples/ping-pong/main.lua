-- Ping-pong: the entry (in the terminal host) runs the game on the process host, where the
-- pinger and the ponger share a worker, and prints what it measured.
local function main(n: string?): number
	local rounds = tonumber(n) or 10000
	local ns, err = process.exec("app:ping", "app:processes", rounds)
	if ns == nil then
		error(err)
	end
	print(string.format("%d round trips in order, %.0f ns per round trip", rounds, ns))
	return rounds
end

return { main = main }
