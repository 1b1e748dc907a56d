-- Spins on arithmetic until a "stop" message arrives (checked every few thousand iterations
-- with a non-blocking select, so the spin itself never yields voluntarily).
local function main()
	local inbox = process.inbox()
	local x = 0
	while true do
		for i = 1, 100000 do
			x = (x + i) % 1000003
		end
		local r = channel.select({ inbox:case_receive(), default = true })
		if not r.default then
			return x
		end
	end
end

return { main = main }
