-- Sends 1, 2, 3, ... to `to` (10 per millisecond) until a send fails, then reports.
local time = require("time")
local function main(to: string, parent: string)
	for i = 1, 1000000 do
		local ok, err = process.send(to, "n", i)
		if not ok then
			assert(ok == nil, "a failed send returns nil, not " .. tostring(ok))
			local again, err2 = process.send(to, "n", i + 1)
			process.send(parent, "sender_done", {
				first_failed = i,
				err = tostring(err),
				again_nil = again == nil and err2 ~= nil,
			})
			return
		end
		if i % 10 == 0 then
			time.sleep("1ms")
		end
	end
	process.send(parent, "sender_done", { first_failed = -1, err = "never failed", again_nil = false })
end
return { main = main }
