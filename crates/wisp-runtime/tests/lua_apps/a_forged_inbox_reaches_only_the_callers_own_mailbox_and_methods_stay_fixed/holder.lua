local function main(parent: string)
	process.send(parent, "ready", true)
	local msg = process.inbox():receive()
	process.send(parent, "got", msg:payload():data())
end
return { main = main }
