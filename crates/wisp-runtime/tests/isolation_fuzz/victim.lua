-- A victim of the isolation fuzz (see ../isolation_fuzz.rs): lives on the attacker's shard and
-- answers app:main's pings. Started by main with (main's PID, its index), a context
-- {secret = "victim-secret-<i>"} and an actor "victim-<i>".
--
-- On each ("ping", n) it checks that what it sees is unchanged and that it keeps getting its own
-- messages, then answers ("pong", {i, n, problems}): `problems` lists every check that failed.
-- It checks:
-- - message order and sender: n is one more than the last, from main, with main's "side"
--   message (sent on a topic it listens to, just before the ping) carrying the same n;
-- - its identity: process.pid(), process.id(), coroutine.running(), its context and actor;
-- - its private state: a table, a closure's upvalue, a global of its own (or, in the copy that
--   reads the shared globals directly, that no such global appeared), a buffered channel
--   (a receive/send round trip of its five values), a helper coroutine waiting on a channel;
-- - the shared tables: every key, value, metatable and frozen flag of every table reachable
--   from _G, the string metatable, the modules and the metatables of its handles, as at its
--   start (compared raw, by identity);
-- - the library behaves: a few string, table and math calls, require, time, uuid, a timer.
-- Any message other than main's ping, side and stop is a problem too (nobody else knows it).
-- A pong also says how long the victim's 2 ms ticker went without firing since the last ping
-- (`stall`, ms): how long the shard was held by someone else.

local time = require("time")
local uuid = require("uuid")
local ctx = require("ctx")
local security = require("security")


-- Every table reachable from `roots` (keys, values, metatables): table -> {copy, count, mt, frozen}.
local function snapshot(roots)
	local snap = {}
	local todo = {}
	for _, root in roots do
		if type(root) == "table" then
			todo[#todo + 1] = root
		end
	end
	while #todo > 0 do
		local t = table.remove(todo)
		if snap[t] == nil then
			local copy, count = {}, 0
			for k, v in next, t do
				copy[k] = v
				count += 1
				if type(k) == "table" and snap[k] == nil then
					todo[#todo + 1] = k
				end
				if type(v) == "table" and snap[v] == nil then
					todo[#todo + 1] = v
				end
			end
			local mt = getmetatable(t)
			snap[t] = { copy = copy, count = count, mt = mt, frozen = table.isfrozen(t) }
			if type(mt) == "table" and snap[mt] == nil then
				todo[#todo + 1] = mt
			end
		end
	end
	return snap
end

-- What changed in the tables of `snap` since it was taken (at most a few lines).
local function changes(snap, problems)
	local found = 0
	local function report(text)
		found += 1
		if found <= 5 then
			problems[#problems + 1] = text
		end
	end
	for t, was in snap do
		local count = 0
		for k, v in next, t do
			count += 1
			local before = was.copy[k]
			if not rawequal(before, v) and not (before ~= before and v ~= v) then
				report("shared table " .. tostring(t) .. ": key " .. tostring(k) .. " (" .. typeof(k) .. ") is now " .. tostring(v) .. ", was " .. tostring(before))
			end
		end
		if count ~= was.count then
			report("shared table " .. tostring(t) .. ": " .. count .. " keys, had " .. was.count)
		end
		if not rawequal(getmetatable(t), was.mt) then
			report("shared table " .. tostring(t) .. ": its metatable changed")
		end
		if table.isfrozen(t) ~= was.frozen then
			report("shared table " .. tostring(t) .. ": frozen was " .. tostring(was.frozen))
		end
	end
	return found
end

local function main(parent: string, index: number)
	local my_pid = process.pid()
	local my_co = coroutine.running()
	local secret = "victim-secret-" .. index
	local actor_id = "victim-" .. index
	local my_id = process.id()
	-- A global of its own: this process gets its own global table over the shared globals. The
	-- harness also runs a copy of this program without the lines marked `@own-globals`
	-- (app:victim_shared), which assigns no global and so reads the shared globals directly;
	-- there VICTIM_MARK must stay nil.
	local mark = { index = index }
	VICTIM_MARK = mark -- @own-globals
	local expected_mark = if rawequal(VICTIM_MARK, mark) then mark else nil

	-- Private state.
	local private = { a = 1, b = { c = "x" }, list = { "one", "two", "three" } }
	local calls = 0
	local function counter()
		calls += 1
		return calls
	end
	local mine = channel.new(8)
	for i = 1, 5 do
		mine:send(i)
	end
	local req, rep = channel.new(), channel.new()
	coroutine.spawn(function()
		while true do
			local v, ok = req:receive()
			if not ok then
				return
			end
			rep:send(v * 2)
		end
	end)
	-- A busy neighbour inside the victim: every 2 ms (while the attacker runs too) a round trip
	-- on a channel of its own and a look at its state; what goes wrong waits for the next ping.
	local busy_problems = {}
	local beats = 0
	local last_beat, max_gap = os.clock(), 0 -- the longest time between two beats since the last ping
	local beat_ch = channel.new(1)
	local beat_state = { token = index }
	local beat_ticker = time.ticker("2ms")
	coroutine.spawn(function()
		local ticks = beat_ticker:channel()
		while true do
			local _, ok = ticks:receive()
			if not ok then
				return
			end
			beats += 1
			local now = os.clock()
			max_gap = math.max(max_gap, now - last_beat)
			last_beat = now
			beat_ch:send(beats)
			local b = beat_ch:receive()
			if b ~= beats or beat_state.token ~= index or process.pid() ~= my_pid or not rawequal(VICTIM_MARK, expected_mark) then
				if #busy_problems < 5 then
					busy_problems[#busy_problems + 1] = "beat " .. beats .. ": its state changed (" .. tostring(b) .. ")"
				end
			end
		end
	end)
	local side = process.listen("side")
	local inbox = process.inbox()

	-- Shared tables, through the objects this process holds.
	local timer = time.timer("1h")
	local handles = {
		channel = mine,
		inbox = inbox,
		events = process.events(),
		listener = side,
		timer = timer,
		ticker = nil,
		spawner = process.with_name("victim-spawner"),
		actor = security.new_actor("x"),
		scope = security.new_scope({}),
	}
	local handle_mts = {}
	for name, h in handles do
		handle_mts[name] = getmetatable(h)
	end
	timer:stop()
	local roots = { _G, getmetatable(""), getmetatable(string), time, uuid, ctx, security, process, channel }
	for _, mt in handle_mts do
		roots[#roots + 1] = mt
	end
	local snap = snapshot(roots)
	local modules = { time = time, uuid = uuid, ctx = ctx, security = security }
	local message_mt = nil -- what getmetatable says of a message, from the first ping on
	local message_mt_seen = false

	local last = 0
	local last_beats, last_clock = 0, os.clock()
	local function check(n: number, msg, problems)
		local function expect(cond, what)
			if not cond then
				problems[#problems + 1] = what
			end
		end
		-- The message.
		expect(msg:from() == parent, "ping " .. n .. " from " .. tostring(msg:from()))
		local mt = getmetatable(msg)
		if not message_mt_seen then
			message_mt, message_mt_seen = mt, true
		end
		expect(rawequal(mt, message_mt), "a message's metatable changed")
		expect(n == last + 1, "ping " .. n .. " after ping " .. last)
		last = n
		local r = channel.select({ side:case_receive(), time.after("5s"):case_receive() })
		expect(r.channel == side and r.value == n, "side message: " .. tostring(r.value) .. ", wanted " .. n)
		-- Identity.
		expect(process.pid() == my_pid, "process.pid() is " .. tostring(process.pid()))
		expect(
			process.id() == my_id and (my_id == "app:victim" or my_id == "app:victim_shared"),
			"process.id() is " .. tostring(process.id())
		)
		expect(coroutine.running() == my_co, "coroutine.running() changed")
		expect(ctx.get("secret") == secret, "ctx secret is " .. tostring(ctx.get("secret")))
		local actor = security.actor()
		expect(actor ~= nil and actor:id() == actor_id, "actor is " .. tostring(actor and actor:id()))
		-- Private state.
		expect(
			private.a == 1 and private.b.c == "x" and #private.list == 3 and private.list[3] == "three",
			"private table changed"
		)
		expect(counter() == n, "closure counter is " .. calls .. ", wanted " .. n)
		expect(rawequal(VICTIM_MARK, expected_mark) and mark.index == index, "VICTIM_MARK is " .. tostring(VICTIM_MARK))
		expect(mine:len() == 5, "own channel holds " .. tostring(mine:len()))
		for i = 1, 5 do
			local v, ok = mine:receive()
			expect(ok and v == i, "own channel gave " .. tostring(v) .. ", wanted " .. i)
			mine:send(v)
		end
		req:send(n)
		local doubled = rep:receive()
		expect(doubled == n * 2, "helper coroutine answered " .. tostring(doubled))
		for name, h in handles do
			expect(rawequal(getmetatable(h), handle_mts[name]), "the metatable of its " .. name .. " changed")
			expect(next(h) == nil, "its " .. name .. " handle has contents")
		end
		expect(rawequal(getmetatable(channel.new()), handle_mts.channel), "channel.new()'s metatable changed")
		-- Modules and the library.
		for name, m in modules do
			expect(rawequal(require(name), m), "require(" .. name .. ") changed")
		end
		expect(type(time.now()) == "number", "time.now() is not a number")
		expect(string.match(uuid.v4(), "^%x+%-%x+%-%x+%-%x+%-%x+$") ~= nil, "uuid.v4() is malformed")
		expect(string.format("%d-%s", 42, "x") == "42-x", "string.format misbehaves")
		expect(("abc"):upper() == "ABC" and ("x"):rep(3) == "xxx", "string methods misbehave")
		expect(table.concat({ 1, 2, 3 }, ",") == "1,2,3", "table.concat misbehaves")
		expect(math.max(1, 5, 3) == 5 and math.floor(2.5) == 2, "math misbehaves")
		expect(select("#", 1, nil, 3) == 3 and tostring(12) == "12", "base library misbehaves")
		expect(process.event.EXIT == "pid.exit" and process.event.CANCEL == "pid.cancel", "process.event changed")
		if n % 5 == 0 then
			local v, ok = time.after("1ms"):receive()
			expect(ok and v ~= nil, "a timer did not fire")
		end
		changes(snap, problems)
		-- The busy neighbour.
		for _, p in busy_problems do
			problems[#problems + 1] = p
		end
		table.clear(busy_problems)
		local now = os.clock()
		if now - last_clock > 0.25 then
			expect(beats > last_beats, "its 2ms ticker did not fire in " .. math.floor((now - last_clock) * 1000) .. " ms")
			last_beats, last_clock = beats, now
		end
	end

	process.send(parent, "pong", { i = index, n = 0, problems = {} })
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "stop" and msg:from() == parent then
			break
		end
		local problems = {}
		local n = last + 1
		if topic == "ping" then
			local payload = msg:payload()
			n = payload and payload:data()
			if type(n) ~= "number" then
				problems[#problems + 1] = "ping without a number: " .. tostring(n)
				n = last + 1
			end
			local ok, err = pcall(check, n, msg, problems)
			if not ok then
				problems[#problems + 1] = "a check raised: " .. tostring(err)
			end
		else
			problems[#problems + 1] = "unexpected message " .. tostring(topic) .. " from " .. tostring(msg:from())
		end
		process.send(parent, "pong", { i = index, n = n, problems = problems, stall = math.floor(max_gap * 1000) })
		max_gap = 0
	end
	req:close()
	return "ok " .. last
end

return { main = main }
