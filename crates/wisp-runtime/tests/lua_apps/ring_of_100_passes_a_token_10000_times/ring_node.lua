local function main(parent: string, hops: number)
	local inbox = process.inbox()
	local next_pid = nil
	local held = nil
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "next" then
			next_pid = msg:payload():data()
		elseif topic == "token" then
			held = msg:payload():data()
		elseif topic == "stop" then
			return
		end
		-- A token can arrive before "next" (they come from different senders).
		if held ~= nil and next_pid ~= nil then
			local count = held
			held = nil
			if count >= hops then
				process.send(parent, "done", count)
			else
				process.send(next_pid, "token", count + 1)
			end
		end
	end
end
return { main = main }
