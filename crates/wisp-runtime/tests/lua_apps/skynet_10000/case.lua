-- expect: 49995000
-- on: terminal
-- args: 10000
local function main(size: number)
	process.spawn("app:skynet", "app:processes", process.pid(), 0, size)
	local msg = process.inbox():receive()
	return msg:payload():data()
end
return { main = main }
