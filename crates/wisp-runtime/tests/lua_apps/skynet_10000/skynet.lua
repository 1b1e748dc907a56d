-- Leaves send their number to the parent; inner nodes spawn 10 children and sum their answers.
local function main(parent: string, num: number, size: number)
	if size == 1 then
		process.send(parent, "n", num)
		return
	end
	local me = process.pid()
	local step = size // 10
	for i = 0, 9 do
		process.spawn("app:skynet", "app:processes", me, num + i * step, step)
	end
	local inbox = process.inbox()
	local sum = 0
	for _ = 1, 10 do
		sum += inbox:receive():payload():data()
	end
	process.send(parent, "n", sum)
end
return { main = main }
