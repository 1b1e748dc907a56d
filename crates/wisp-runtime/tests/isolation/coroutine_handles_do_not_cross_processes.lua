-- expect: ok
-- Finding 3: a coroutine serves one process only. A finished process's main coroutine went
-- back to a pool and became the next process's, so a handle kept by the first reached the
-- second (debug.traceback showed its stack, coroutine.resume ran it). Here a leaker tries every
-- way to leave handles to its coroutines where another process can find them (shared tables,
-- payloads, spawn arguments, context, spawner messages), starts a victim next to itself and
-- returns; the victim starts a thief next to itself and waits for messages; the thief looks for
-- thread handles everywhere it can reach and tries them. (Each spawns the next so that all three
-- share a shard, and the victim starts right after the leaker's end.) Nothing may reach the
-- victim: every leak is refused, the thief finds no handle, and the victim answers and ends
-- with its own value.
local ctx = require("ctx")
local uuid = require("uuid")
local security = require("security")

local time = require("time")
local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending = h.HOST, h.within, h.exit_of, h.ending
local round_trip, problem, verdict = h.round_trip, h.problem, h.verdict

local function shared_places()
	local places = {
		["process.registry"] = process.registry,
		["process.event"] = process.event,
		["process"] = process,
		["channel"] = channel,
		["coroutine"] = coroutine,
		["string"] = string,
		["table"] = table,
		["_G"] = _G,
		["require(\"time\")"] = time,
		["require(\"ctx\")"] = ctx,
		["require(\"uuid\")"] = uuid,
		["require(\"security\")"] = security,
	}
	if type(getmetatable(string)) == "table" then
		places["getmetatable(string)"] = getmetatable(string)
	end
	if type(getmetatable("")) == "table" then
		places["getmetatable(\"\")"] = getmetatable("")
	end
	return places
end

local function leaker(parent: string): string
	local handles = { main = coroutine.running(), created = coroutine.create(function() end) }
	local leaked = {}
	local function try(label: string, f: () -> ())
		if pcall(f) then
			leaked[#leaked + 1] = label
		end
	end
	for which, co in handles do
		for label, t in shared_places() do
			try(which .. " coroutine into " .. label, function()
				t["iso_leak_" .. which] = co
			end)
			try(which .. " coroutine into " .. label .. " (rawset)", function()
				rawset(t, "iso_leak_raw_" .. which, co)
			end)
		end
		try(which .. " coroutine sent to the parent", function()
			assert(process.send(parent, "leak", co))
		end)
		try(which .. " coroutine sent inside a table", function()
			assert(process.send(parent, "leak", { co = co }))
		end)
		try(which .. " coroutine as a spawn argument", function()
			assert(process.spawn(process.id(), HOST, "noop", co))
		end)
		try(which .. " coroutine in a spawner's context", function()
			assert(process.with_context({ co = co }):spawn(process.id(), HOST, "noop"))
		end)
		try(which .. " coroutine in a spawner's message", function()
			assert(process.with_message("leak", co):spawn(process.id(), HOST, "noop"))
		end)
	end
	-- The victim starts on this shard once this process has ended (on its first run: its
	-- main coroutine is free for the next process).
	process.spawn(process.id(), HOST, "victim", parent)
	return table.concat(leaked, "; ")
end

-- An ordinary process, which starts the thief next to itself, then answers pings until told to
-- stop and returns a value only it can produce.
local function victim(parent: string)
	-- The thief first: once the parent is woken, it waits on this shard and a spawn could go to
	-- an idle one.
	process.spawn(process.id(), HOST, "thief", parent)
	process.send(parent, "ready", process.pid())
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "stop" then
			return "victim " .. process.pid()
		elseif topic == "ping" then
			process.send(msg:from(), "pong", msg:payload():data())
		end
	end
end

-- Every thread handle reachable from the shared places, with where it was found.
local function find_threads()
	local found, seen = {}, {}
	local function visit(path: string, v, depth: number)
		if type(v) == "thread" then
			found[#found + 1] = { path, v }
			return
		end
		if type(v) ~= "table" or seen[v] or depth > 6 then
			return
		end
		seen[v] = true
		for k, x in next, v do
			visit(path .. "." .. tostring(k), x, depth + 1)
			visit(path .. " key", k, depth + 1)
		end
		visit("getmetatable(" .. path .. ")", getmetatable(v), depth + 1)
	end
	for label, t in shared_places() do
		visit(label, t, 0)
	end
	return found
end

local function thief(parent: string)
	local notes = {}
	for _, f in find_threads() do
		local path, co = f[1], f[2]
		local note = "a thread handle at " .. path .. " (" .. coroutine.status(co) .. ")"
		if debug and debug.traceback then
			local ok, trace = pcall(debug.traceback, co)
			if ok and type(trace) == "string" and trace:find("function victim", 1, true) then
				note ..= "; debug.traceback shows the victim's stack: " .. (trace:gsub("\n", " | "))
			end
		end
		local ok, resumed = pcall(coroutine.resume, co)
		if ok and resumed then
			note ..= "; coroutine.resume resumed it"
		end
		notes[#notes + 1] = note
	end
	process.send(parent, "stolen", table.concat(notes, "\n"))
end

local function case()
	local me = process.pid()
	local ready, stolen = process.listen("ready"), process.listen("stolen")
	local leaker_pid = process.spawn_monitored(process.id(), HOST, "leaker", me)
	local leaked = exit_of(leaker_pid, "10s")
	if ending(leaked) ~= "value " then
		problem("the leaker got thread handles out: " .. ending(leaked))
	end
	local victim_pid, started = within(ready, "10s")
	if not started then
		problem("the victim never started")
		return verdict()
	end
	process.monitor(victim_pid)
	local report, reported = within(stolen, "10s")
	if not reported then
		problem("the thief never reported")
	elseif report ~= "" then
		problem("the thief found:\n" .. report)
	end
	if not round_trip(victim_pid, 1) then
		problem("the victim stopped answering")
	end
	process.send(victim_pid, "stop")
	local ended = exit_of(victim_pid, "10s")
	if ending(ended) ~= "value victim " .. victim_pid then
		problem("the victim ended with " .. ending(ended) .. " instead of its own value")
	end
	return verdict()
end

local function main(role: string?, ...)
	if role == "leaker" then
		return leaker(...)
	elseif role == "victim" then
		return victim(...)
	elseif role == "thief" then
		return thief(...)
	elseif role == "noop" then
		return "noop"
	end
	return case()
end

return { main = main }
