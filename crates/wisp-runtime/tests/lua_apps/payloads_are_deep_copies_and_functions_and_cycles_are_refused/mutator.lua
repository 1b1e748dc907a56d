local function main(parent: string)
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "stop" then
			return
		elseif topic == "t" then
			local t = msg:payload():data()
			local seen_a = t.a
			t.a = 100
			table.insert(t.list, 4)
			t.nested.x.y = "changed"
			t.seen_a = seen_a
			t.seen_s = t.s
			t.seen_10 = t[10]
			process.send(parent, "back", t)
		elseif topic == "echo" then
			process.send(parent, "echo", msg:payload():data())
		else
			error("unexpected topic " .. topic)
		end
	end
end
return { main = main }
