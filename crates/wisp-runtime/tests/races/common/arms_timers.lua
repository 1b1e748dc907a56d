-- Arms `n` hour-long timers and ends with them pending.
local time = require("time")
local function main(n: number)
	for _ = 1, n do
		time.after("1h")
	end
	return n
end
return { main = main }
