-- expect: 100000
-- on: terminal
-- args: 100000
local function main(n: number)
	local me = process.pid()
	local counter = process.spawn_monitored("app:counter", "app:processes", me)
	process.spawn("app:sender", "app:processes", counter, n)
	-- The counter either reports its count or ends with an error (an out-of-order message).
	local r = channel.select({ process.inbox():case_receive(), process.events():case_receive() })
	if r.channel == process.events() then
		return nil, "counter ended early: " .. tostring(r.value.result.error)
	end
	assert(r.value:topic() == "count")
	return r.value:payload():data()
end
return { main = main }
