-- The watcher of the process-table model test: monitors each puppet that asks (`watch`, sent by
-- the puppet itself as it starts) and reports it to the recorder (`watching`), then reports the
-- puppet's end (`exit`). Every report goes through the recorder's one mailbox, so a puppet's
-- own reports always come before the report of its end. `finish` terminates the puppets of a
-- sequence that are still alive.
local function main(recorder: string)
	local inbox = process.inbox()
	local events = process.events()
	while true do
		local r = channel.select({ inbox:case_receive(), events:case_receive() })
		if r.channel == events then
			local ev = r.value
			if ev.kind == process.event.EXIT then
				process.send(recorder, "exit", ev.from, ev.result.error, ev.result.value)
			end
		else
			local msg = r.value
			local topic = msg:topic()
			if topic == "watch" then
				local pid = msg:payload():data()
				process.monitor(pid)
				process.send(recorder, "watching", pid)
			elseif topic == "finish" then
				for _, pid in msg:payload():data() do
					process.terminate(pid)
				end
			end
		end
	end
end
return { main = main }
