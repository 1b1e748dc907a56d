-- expect: ok
-- `process.terminate(process.pid())` does not return: the process ends with `terminated` at the
-- call, whatever comes after it (a send, a return, a `pcall` around it, a coroutine).
local ROUNDS = 30
local MODES = { "plain", "pcall", "pcall_then_return", "by_name", "in_coroutine", "in_spawned_coroutine" }
local function main()
	local me = process.pid()
	for round = 1, ROUNDS do
		for _, mode in MODES do
			local child = process.spawn_monitored("app:self_terminating", "app:processes", mode, me)
			local ev = process.events():receive()
			assert(ev.from == child, "round " .. round .. " " .. mode .. ": event from another process")
			local result = ev.result
			assert(
				result.error == "terminated",
				"round " .. round .. " " .. mode .. ": ended with " .. tostring(result.error or result.value)
			)
			-- Whatever it sent before its end arrives before its EXIT: nothing may be here.
			local r = channel.select({ process.inbox():case_receive(), default = true })
			assert(r.default, "round " .. round .. " " .. mode .. ": it went on after terminate")
		end
	end
	return "ok"
end
return { main = main }
