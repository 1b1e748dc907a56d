-- An idle process: waits on its inbox until told to stop, then optionally acknowledges.
local function main(ack: string?)
	process.inbox():receive()
	if ack then
		process.send(ack, "stopped", true)
	end
end

return { main = main }
