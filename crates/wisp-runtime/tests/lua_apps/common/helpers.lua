-- Small processes the process-semantics cases spawn: `main(mode, ...)` runs `modes[mode](...)`.
local time = require("time")
local modes = {}
-- Waits for a CANCEL and returns its reason.
function modes.cancellable()
	local ev = process.events():receive()
	return ev.kind == process.event.CANCEL and ev.reason or ("got " .. tostring(ev.kind))
end
-- Waits for "go", then fails.
function modes.fail_on_go()
	process.inbox():receive()
	error("failing on request")
end
-- Links to a failing child without trapping: dies of it.
function modes.link_to_failing()
	process.spawn_linked("app:fails", "app:processes")
	process.events():receive()
	return "survived"
end
function modes.bad_options()
	process.set_options({ bogus = true })
end
function modes.nil_err()
	return nil, "bad input"
end
function modes.false_err()
	return false, "refused"
end
-- Starts a coroutine that waits forever, then returns: the process still ends normally.
function modes.leaves_coroutine()
	local ch = channel.new()
	coroutine.spawn(function()
		ch:receive()
	end)
	return "main done"
end
-- Parks on its inbox, then busy-loops long enough to be preempted, then answers and parks again.
function modes.busy_after_park(parent: string)
	local inbox = process.inbox()
	for _ = 1, 3 do
		local n = inbox:receive():payload():data()
		local x = 0
		for i = 1, n do
			x += i % 7
		end
		process.send(parent, "done", x)
	end
	return "busy done"
end
-- A second coroutine takes inbox messages while the main one waits on a local channel.
function modes.inbox_in_coroutine()
	local results = channel.new(10)
	coroutine.spawn(function()
		local inbox = process.inbox()
		for _ = 1, 3 do
			results:send(inbox:receive():payload():data())
		end
	end)
	local sum = 0
	for _ = 1, 3 do
		sum += results:receive()
	end
	return sum
end
-- Fails if a global another process set is visible here; then sets it.
function modes.fresh_globals()
	if leaked_global ~= nil then
		error("saw another process's global")
	end
	leaked_global = true
	return "fresh"
end
local function main(mode: string, ...)
	return modes[mode](...)
end
return { main = main }
