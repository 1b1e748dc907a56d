local function main(name: string, parent: string)
	assert(process.registry.register(name) == true)
	process.send(parent, "registered", name)
	local inbox = process.inbox()
	while true do
		if inbox:receive():topic() == "quit" then
			return "bye"
		end
	end
end
return { main = main }
