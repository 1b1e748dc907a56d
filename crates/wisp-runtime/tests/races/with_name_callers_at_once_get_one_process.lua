-- expect: ok
-- timeout: 60
-- Ten processes call `process.with_name(n):with_message("hello", i):spawn(...)` at once: they
-- all get the same PID, and that process gets all ten hellos.
local ROUNDS = 1500
local CALLERS = 10
local function main()
	local me = process.pid()
	for round = 1, ROUNDS do
		local name = "shared_" .. round
		for i = 1, CALLERS do
			process.spawn("app:claimer", "app:processes", name, i, me, CALLERS)
		end
		-- The claimers' reports and the named process's come from different senders: any order.
		local claimed, served = {}, nil
		while #claimed < CALLERS or served == nil do
			local msg = process.inbox():receive()
			local data = msg:payload()
			if msg:topic() == "claimed" then
				claimed[#claimed + 1] = data:data()
			else
				assert(msg:topic() == "served", "round " .. round .. ": got " .. msg:topic())
				served = { data[1]:data(), data[2]:data() }
			end
		end
		for _, pid in claimed do
			assert(pid == claimed[1], "round " .. round .. ": two processes for one name: " .. claimed[1] .. " and " .. pid)
		end
		assert(served[1] == claimed[1] and served[2] == CALLERS, "round " .. round .. ": " .. served[1] .. " served " .. served[2])
	end
	return "ok"
end
return { main = main }
