-- Runs long enough at its top level to be preempted there.
local x = 0
for i = 1, 3000000 do
	x += i % 3
end
local function main(parent: string, b: string, n: number)
	assert(x > 0)
	process.send(parent, "busy", b .. " " .. n)
end
return { main = main }
