local time = require("time")

local function main(mode: string)
	if mode ~= "no_trap" then
		process.set_options({ trap_links = true })
		assert(process.get_options().trap_links == true)
	end
	if mode == "normal" then
		local child = process.spawn_linked("app:returns", "app:processes", 1)
		local r = channel.select({ process.events():case_receive(), time.after("100ms"):case_receive() })
		if r.channel == process.events() then
			return nil, "unexpected event " .. tostring(r.value.kind)
		end
		return "no link down"
	end
	local child = process.spawn_linked("app:fails", "app:processes")
	local ev = process.events():receive()
	if mode == "no_trap" then
		return nil, "survived a failed link: got " .. tostring(ev.kind)
	end
	assert(ev.kind == process.event.LINK_DOWN, "got " .. tostring(ev.kind))
	assert(ev.from == child, "LINK_DOWN from " .. tostring(ev.from))
	assert(string.find(ev.result.error, "child failed on purpose", 1, true), tostring(ev.result.error))
	return "trapped"
end
return { main = main }
