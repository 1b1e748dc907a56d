-- Sends N numbered messages {id, seq} to `dest`.
local function main(dest: string, id: number, n: number)
	for i = 1, n do
		process.send(dest, "m", id, i)
	end
end

return { main = main }
