-- Sends `n` messages {id, seq} (seq = 1..n) to `to`, then {id, n} on topic "end".
-- With yield_every > 0 it gives its turn away every yield_every sends, to vary interleavings.
local function main(to: string, id: number, n: number, yield_every: number?)
	local every = yield_every or 0
	for i = 1, n do
		local ok, err = process.send(to, "n", id, i)
		if not ok then
			error("send " .. i .. " failed: " .. tostring(err))
		end
		if every > 0 and i % every == 0 then
			coroutine.yield()
		end
	end
	process.send(to, "end", id, n)
end
return { main = main }
