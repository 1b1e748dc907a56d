-- expect error: deadlock
-- on: terminal
-- The deadlock error also ends the entry that `wisp exec` runs (on the terminal host).
local function main()
	channel.new():receive()
end
return { main = main }
