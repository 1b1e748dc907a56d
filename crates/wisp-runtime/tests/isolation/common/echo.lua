-- An ordinary, well-behaved process: the neighbour or the victim of the attack programs.
-- Tells `parent` (if given) "ready" with its PID, answers every "ping" with a "pong" carrying
-- the same payload, to the sender, and on "stop" returns "echo <its PID>": a value only it can
-- produce, which its monitor checks.
local function main(parent: string?)
	if parent ~= nil then
		process.send(parent, "ready", process.pid())
	end
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "stop" then
			return "echo " .. process.pid()
		elseif topic == "ping" then
			local payload = msg:payload()
			process.send(msg:from(), "pong", payload and payload:data())
		end
	end
end

return { main = main }
