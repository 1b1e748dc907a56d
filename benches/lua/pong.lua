-- Answers every "ping" with the same payload on topic "pong" until "stop".
local function serve(parent: string)
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		if msg:topic() == "stop" then
			return
		end
		process.send(parent, "pong", msg:payload():data())
	end
end

-- Spawned by the player it answers.
local function main(parent: string)
	serve(parent)
end

-- Spawned by someone else: learns whom to answer from its first message (topic "peer").
local function detached()
	serve(process.inbox():receive():payload():data())
end

return { main = main, detached = detached }
