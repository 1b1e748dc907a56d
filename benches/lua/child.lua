-- Replies its index to the parent and ends.
local function main(parent: string, i: number)
	process.send(parent, "done", i)
end

return { main = main }
