-- A puppet of the process-table model test (tests/model.rs). It performs each command the test
-- sends it (topic `cmd`: an array `{op, seq, args...}`) with the real process API and reports
-- to the recorder what the call returned (`ack`, seq and the two results), every event it
-- receives (`event`) and every note another puppet sends it (`note`). Commands and events are
-- taken by one `select`, so events are reported as they arrive; the only other reader of
-- `events()` is an `exec` the test asks to run in a coroutine of its own.
local HOST = "app:processes"
local PUPPET = "app:puppet"

-- `names`: every name the test uses. An event's report says which of them are still bound to
-- the process it is about (none should be: names are released before EXIT and LINK_DOWN go out).
local function main(recorder: string, watcher: string, names: { string })
	process.send(watcher, "watch", process.pid())
	local inbox = process.inbox()
	local events = process.events()
	while true do
		local r = channel.select({ inbox:case_receive(), events:case_receive() })
		if r.channel == events then
			local ev = r.value
			local held = {}
			for _, name in names do
				if process.registry.lookup(name) == ev.from then
					held[#held + 1] = name
				end
			end
			local result = ev.result or {}
			process.send(recorder, "event", ev.kind, ev.from, result.error, result.value, table.concat(held, ","))
		else
			local msg = r.value
			local topic = msg:topic()
			if topic == "note" then
				process.send(recorder, "note", msg:from(), msg:payload():data())
			elseif topic == "cmd" then
				local c = msg:payload():data()
				local op, seq = c[1], c[2]
				local a, b
				if op == "spawn" then
					a, b = process[c[3]](PUPPET, HOST, recorder, watcher, names)
				elseif op == "spawn_named" then
					local spawner = process.with_name(c[4])
					a, b = spawner[c[3]](spawner, PUPPET, HOST, recorder, watcher, names)
				elseif op == "send" then
					a, b = process.send(c[3], "note", c[4])
				elseif op == "exit" then
					if c[3] then
						return nil, "boom"
					end
					return "bye"
				elseif op == "terminate" or op == "monitor" or op == "unmonitor" or op == "link" or op == "unlink" then
					a, b = process[op](c[3])
				elseif op == "trap" then
					a, b = process.set_options({ trap_links = c[3] })
				elseif op == "register" then
					a, b = process.registry.register(c[3], c[4])
				elseif op == "unregister" then
					a, b = process.registry.unregister(c[3])
				elseif op == "lookup" then
					a, b = process.registry.lookup(c[3])
				elseif op == "exec" and c[5] then
					-- In a coroutine of its own, while this one goes on waiting on events():
					-- the child's EXIT must still go to the exec, and only there.
					coroutine.spawn(function()
						local value, err = process.exec(c[3], HOST, c[4])
						process.send(recorder, "ack", seq, value, err)
					end)
					continue
				elseif op == "exec" then
					a, b = process.exec(c[3], HOST, c[4])
				elseif op == "sync" then
					a = true
				else
					error("unknown command " .. tostring(op))
				end
				process.send(recorder, "ack", seq, a, b)
			end
		end
	end
end
return { main = main }
