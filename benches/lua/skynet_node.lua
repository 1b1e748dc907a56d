-- One node of the skynet tree: a leaf sends its number, an inner node spawns DIV children and sends their sum.
local function main(parent: string, num: number, size: number, div: number)
	if size == 1 then
		process.send(parent, "r", num)
		return
	end
	local me = process.pid()
	local sub = size // div
	for i = 0, div - 1 do
		process.spawn("bench:skynet_node", "bench:processes", me, num + i * sub, sub, div)
	end
	local inbox = process.inbox()
	local sum = 0
	for _ = 1, div do
		sum += inbox:receive():payload():data()
	end
	process.send(parent, "r", sum)
end

return { main = main }
