-- Terminates itself, in one of several ways, then tries to go on: nothing after the call may
-- happen.
local modes = {}
function modes.plain(parent)
	process.terminate(process.pid())
	process.send(parent, "after", "plain")
	return "returned"
end
function modes.pcall(parent)
	local ok = pcall(process.terminate, process.pid())
	if ok then
		process.send(parent, "after", "pcall returned true")
	end
	return "returned"
end
function modes.pcall_then_return(_)
	pcall(process.terminate, process.pid())
	return "returned"
end
function modes.by_name(parent)
	process.registry.register("self_terminating_" .. parent)
	process.terminate("self_terminating_" .. parent)
	process.send(parent, "after", "by_name")
	return "returned"
end
function modes.in_coroutine(parent)
	local co = coroutine.create(function()
		process.terminate(process.pid())
		process.send(parent, "after", "in_coroutine")
	end)
	coroutine.resume(co)
	process.send(parent, "after", "in_coroutine, resumed")
	return "returned"
end
function modes.in_spawned_coroutine(parent)
	local done = channel.new(0)
	coroutine.spawn(function()
		process.terminate(process.pid())
		process.send(parent, "after", "in_spawned_coroutine")
		done:send(true)
	end)
	done:receive()
	return "returned"
end
local function main(mode, parent)
	return modes[mode](parent)
end
return { main = main }
