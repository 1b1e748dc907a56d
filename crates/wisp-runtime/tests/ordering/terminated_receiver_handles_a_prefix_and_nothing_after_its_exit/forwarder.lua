-- Forwards every number it handles to its parent, in the order handled.
local function main(parent: string)
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		if msg:topic() == "n" then
			process.send(parent, "handled", msg:payload():data())
		else
			process.send(parent, "late_handled", msg:payload():data())
		end
	end
end
return { main = main }
