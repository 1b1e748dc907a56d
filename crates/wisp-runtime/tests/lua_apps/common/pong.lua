-- Answers every ping with the same payload until told to stop.
local function main(parent: string)
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		if msg:topic() == "stop" then
			return "stopped"
		end
		process.send(parent, "pong", msg:payload():data())
	end
end
return { main = main }
