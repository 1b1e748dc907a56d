-- Sends k numbered messages to its parent, then ends (normally, or with an error).
local function main(parent: string, k: number, fail: boolean)
	for i = 1, k do
		process.send(parent, "m", i)
	end
	if fail then
		error("child fails after sending")
	end
	return k
end
return { main = main }
