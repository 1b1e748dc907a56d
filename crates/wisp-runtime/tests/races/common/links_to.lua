-- Links to `pid` without trapping and waits on its events: a LINK_DOWN ends it first.
local function main(pid)
	assert(process.link(pid) == true)
	local ev = process.events():receive()
	return "survived " .. tostring(ev.kind)
end
return { main = main }
