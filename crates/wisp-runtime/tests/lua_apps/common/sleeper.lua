-- Waits for messages forever (not a deadlock: the inbox can always receive).
local function main()
	local inbox = process.inbox()
	while true do
		inbox:receive()
	end
end
return { main = main }
