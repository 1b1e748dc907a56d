-- expect: ok
-- Finding 1, for every kind of object the runtime hands a process: a channel (fresh, holding a
-- value, with a receiver blocked on it), the inbox, events(), listen channels, a time.after
-- channel, a timer and a ticker (and their channels), spawners from with_name, with_context and
-- with_message, security actors and scopes, a Message and its Payload. For each: rawget of the
-- fields the runtime keeps reveals nothing (nil, or the call raises), next() hands out no table,
-- function or thread, rawset and setmetatable raise, its metatable (if it shows one) is frozen;
-- and afterwards every object still works.
local security = require("security")

local time = require("time")
local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of = h.HOST, h.within, h.exit_of
local start_echo, problem, verdict = h.start_echo, h.problem, h.verdict

-- Fields the runtime keeps (or kept) in its objects, and the first array slots.
local KEYS = {
	"rq", "sq", "n", "bh", "ext", "cap", "closed", "topic", "lid", "ticker", "timers", "ch", "id", "d",
	"p", "co", "sel", "value", "ok", "send", "name", "context", "messages", "actor", "scope", "_id",
	"_meta", "_policies", "pid", 1, 2, 3, 4, 5,
}

local function show(v): string
	local t = type(v)
	if t == "string" or t == "number" or t == "boolean" then
		return t .. " " .. tostring(v)
	end
	return t
end

local function is_reference(v): boolean
	local t = type(v)
	return t == "table" or t == "function" or t == "thread"
end

local function check_opaque(label: string, obj)
	-- (next raises on a non-table: nothing to see)
	pcall(function()
		for k, v in next, obj do
			if is_reference(k) or is_reference(v) then
				problem(label .. ": next() hands out " .. show(k) .. " = " .. show(v))
			end
		end
	end)
	for _, key in KEYS do
		local ok, v = pcall(rawget, obj, key)
		if ok and v ~= nil then
			problem(label .. ": rawget(obj, " .. show(key) .. ") reveals " .. show(v))
		end
	end
	if pcall(rawset, obj, "isolation_probe", true) then
		problem(label .. ": rawset did not raise")
		pcall(rawset, obj, "isolation_probe", nil)
	end
	-- Its own metatable again, so that a wrongly accepted call leaves the object working.
	local mt = getmetatable(obj)
	if pcall(setmetatable, obj, mt) then
		problem(label .. ": setmetatable did not raise")
	end
	if type(mt) == "table" and not table.isfrozen(mt) then
		problem(label .. ": its metatable is writable")
	end
end

-- Runs `f`; a raise is a problem named `what`.
local function works(what: string, f: () -> ())
	local ok, err = pcall(f)
	if not ok then
		problem(what .. " failed after the attempts: " .. tostring(err))
	end
end

local function case()
	-- A channel with a receiver blocked on it: a coroutine of the process, which runs (and
	-- blocks) while the main one waits for the echo process to start.
	local waited = channel.new()
	coroutine.spawn(function()
		waited:receive()
	end)
	local echo = start_echo()
	local me = process.pid()
	local inbox = process.inbox()

	-- A Message and its Payload, from a message to itself.
	process.send(me, "probe", "secret")
	local msg, got_msg = within(inbox, "5s")
	assert(got_msg, "a message to itself did not arrive")
	local payload = msg:payload()

	local fresh = channel.new()
	local buffered = channel.new(2)
	buffered:send("buffered secret")
	local events = process.events()
	local listened = process.listen("opaque.topic")
	local rich = process.listen("opaque.rich", { message = true })
	local later = time.after("1h")
	local soon = time.after("20ms")
	local timer = time.timer("1h")
	local ticker = time.ticker("1h")
	local by_name = process.with_name("iso-opaque-echo")
	local by_context = process.with_context({ k = "v" })
	local by_message = process.with_message("t", 1)
	local actor = security.new_actor("iso.actor", { role = "tester" })
	local scope = security.new_scope({})

	local objects = {
		{ "channel.new()", fresh },
		{ "a channel holding a value", buffered },
		{ "a channel with a blocked receiver", waited },
		{ "process.inbox()", inbox },
		{ "process.events()", events },
		{ "process.listen(topic)", listened },
		{ "process.listen(topic, {message=true})", rich },
		{ "time.after(d)", later },
		{ "another time.after(d)", soon },
		{ "time.timer(d)", timer },
		{ "timer:channel()", timer:channel() },
		{ "time.ticker(d)", ticker },
		{ "ticker:channel()", ticker:channel() },
		{ "process.with_name(n)", by_name },
		{ "process.with_context(t)", by_context },
		{ "process.with_message(t, v)", by_message },
		{ "security.new_actor(id)", actor },
		{ "security.new_scope()", scope },
		{ "a Message", msg },
		{ "a Payload", payload },
	}
	local own_actor, own_scope = security.actor(), security.scope()
	if own_actor ~= nil then
		objects[#objects + 1] = { "security.actor()", own_actor }
	end
	if own_scope ~= nil then
		objects[#objects + 1] = { "security.scope()", own_scope }
	end
	for _, o in objects do
		check_opaque(o[1], o[2])
	end

	-- Everything still works.
	works("a buffered channel", function()
		assert(buffered:receive() == "buffered secret", "lost its value")
		fresh = channel.new(1)
		fresh:send(1)
		assert(fresh:receive() == 1, "a new channel lost its value")
	end)
	works("the inbox", function()
		process.send(me, "again", 2)
		local again, ok = within(inbox, "5s")
		assert(ok, "a message to itself did not arrive")
		assert(again:topic() == "again" and again:payload():data() == 2, "the message came back changed")
	end)
	works("a listen channel", function()
		process.send(me, "opaque.topic", 3)
		local v, ok = within(listened, "5s")
		assert(ok and v == 3, "a message on a listened topic did not arrive")
	end)
	works("a time.after channel", function()
		local _, ok = within(soon, "5s")
		assert(ok, "it never fired")
	end)
	works("a timer and a ticker", function()
		assert(timer:stop() == true, "timer:stop() did not stop it")
		ticker:stop()
	end)
	works("a Message and its Payload", function()
		assert(msg:topic() == "probe" and payload:data() == "secret", "they changed")
	end)
	works("an actor", function()
		assert(actor:id() == "iso.actor", "its id changed")
	end)
	works("a with_name spawner", function()
		local ready = process.listen("ready")
		local named = assert(by_name:spawn("app:echo", HOST, me))
		local said, ok = within(ready, "10s")
		assert(ok and said == named, "the process it spawned did not start")
		process.send(named, "stop")
	end)
	works("process.events()", function()
		process.send(echo, "stop")
		local ev = exit_of(echo, "10s")
		assert(ev ~= nil, "the EXIT of a neighbour did not arrive")
	end)
	return verdict()
end

local function main()
	return case()
end

return { main = main }
