-- expect: ok
-- setup: rust
-- The Rust test of this name runs it five times.
local KILL_AFTER = 100

local function main()
	local me = process.pid()
	local inbox, events = process.inbox(), process.events()
	local receiver = process.spawn_monitored("app:forwarder", "app:processes", me)
	process.spawn("app:flooder", "app:processes", receiver, me)

	local handled = {}
	local killed, exit_ev, report = false, nil, nil
	local after_exit, late_handled, late_sent = 0, 0, 0
	local function on_message(msg)
		local topic = msg:topic()
		if topic == "handled" then
			if exit_ev then
				after_exit += 1
			end
			handled[#handled + 1] = msg:payload():data()
			if not killed and #handled >= KILL_AFTER then
				assert(process.terminate(receiver) == true)
				killed = true
				-- These queue behind the terminate signal (same sender, same mailbox):
				-- they must never be handled, whether the send itself succeeds or not.
				for i = 1, 3 do
					if process.send(receiver, "late", i) then
						late_sent += 1
					end
				end
			end
		elseif topic == "late_handled" then
			late_handled += 1
		elseif topic == "sender_done" then
			report = msg:payload():data()
		else
			error("unexpected topic " .. topic)
		end
	end

	-- Inbox first: a select takes the first ready case, so an EXIT can only be seen before a
	-- forwarded number if the runtime delivered it earlier.
	while exit_ev == nil or report == nil do
		local r = channel.select({ inbox:case_receive(), events:case_receive() })
		if r.channel == inbox then
			on_message(r.value)
		else
			local ev = r.value
			assert(ev.kind == process.event.EXIT, "unexpected event " .. tostring(ev.kind))
			assert(ev.from == receiver, "EXIT from " .. tostring(ev.from))
			exit_ev = ev
		end
	end
	while true do
		local r = channel.select({ inbox:case_receive(), events:case_receive(), default = true })
		if r.default then
			break
		end
		assert(r.channel == inbox, "a second event")
		on_message(r.value)
	end

	assert(killed, "the receiver died before it was killed")
	assert(exit_ev.result.error == "terminated", "EXIT error: " .. tostring(exit_ev.result.error))
	assert(after_exit == 0, after_exit .. " forwarded numbers arrived after the EXIT")
	assert(late_handled == 0, late_handled .. " messages sent after terminate were handled")
	for i, n in handled do
		assert(n == i, "forwarded number " .. i .. " is " .. tostring(n) .. " (not a prefix 1..k in order)")
	end
	local k = #handled
	assert(k >= KILL_AFTER, "only " .. k .. " handled")
	assert(report.first_failed > k, "send " .. report.first_failed .. " failed, but " .. k .. " were handled")
	assert(string.find(report.err, "not found", 1, true), "send to a dead pid: " .. report.err)
	assert(report.again_nil, "a second send to the dead pid did not return nil, err")
	local ok, err = process.send(receiver, "n", -1)
	assert(ok == nil and err ~= nil, "send after EXIT returned " .. tostring(ok))
	assert(string.find(err, "not found", 1, true), "send after EXIT: " .. tostring(err))
	return "ok"
end
return { main = main }
