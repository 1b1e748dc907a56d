-- Waits for a message before the module is even built.
local first = process.inbox():receive():payload():data()
local function main(parent: string, a: string, t, c: number)
	process.send(parent, "waited", string.format("%s %s %d %d", first, a, t.n, c))
end
return { main = main }
