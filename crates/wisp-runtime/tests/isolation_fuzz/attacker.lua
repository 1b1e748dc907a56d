-- The attacker of the isolation fuzz (see ../isolation_fuzz.rs). Started by app:main with
-- (seed, sequences, ops_per_sequence, verbose); knows no other process's PID (neither the
-- victims' nor main's), so any effect on another process is a breach of isolation.
--
-- It gathers every object and table the API hands a process, then runs `sequences` sequences
-- of `ops_per_sequence` random operations on them (rawget, rawset, getmetatable, setmetatable,
-- assignment, reads, next, debug.info, debug.traceback, coroutine operations, calls of every
-- function found with odd arguments, metamethod-triggering operators, table library mutators,
-- sends to itself, selects), every one inside pcall. The choices come from a seeded xorshift32,
-- so a seed names a run and `verbose` replays it with every operation printed before it runs.
--
-- Each sequence runs in a coroutine of its own (coroutine.spawn): an operation that blocks
-- (a receive on an empty channel of its own, time.sleep of a huge duration, ...) blocks that
-- sequence only; the harness gives up on it after BLOCK_AFTER seconds and goes on.
--
-- It returns {sequences, ops, op_errors, blocked, findings, last_ops}: `findings` are what it
-- saw itself that the contract forbids (a runtime function handed out by debug.info, a write
-- to a shared table or a handle that succeeded, an unfrozen table inside a frozen shared one).

local time = require("time")
local ctx = require("ctx")
local uuid = require("uuid")
local security = require("security")

-- Everything the harness uses, captured before any operation runs.
local bxor, lshift, rshift = bit32.bxor, bit32.lshift, bit32.rshift
local pcall, type, typeof, tostring, select = pcall, type, typeof, tostring, select
local rawget, rawset, rawequal, rawlen = rawget, rawset, rawequal, rawlen
local getmetatable, setmetatable, next = getmetatable, setmetatable, next
local newproxy = newproxy
local co_running, co_status, co_resume, co_close, co_create, co_wrap, co_spawn, co_yield =
	coroutine.running,
	coroutine.status,
	coroutine.resume,
	coroutine.close,
	coroutine.create,
	coroutine.wrap,
	coroutine.spawn,
	coroutine.yield
local debug_info, debug_traceback = debug.info, debug.traceback
local t_concat, t_unpack, t_pack, t_freeze, t_isfrozen, t_clone, t_insert, t_remove, t_clear, t_move, t_sort, t_find =
	table.concat,
	table.unpack,
	table.pack,
	table.freeze,
	table.isfrozen,
	table.clone,
	table.insert,
	table.remove,
	table.clear,
	table.move,
	table.sort,
	table.find
local s_format, s_sub = string.format, string.sub
local os_clock = os.clock
local chan_new, chan_select = channel.new, channel.select
local send, pid_of, listen = process.send, process.pid, process.listen
local ticker = time.ticker
local print = print

local HARNESS = {} -- passed to the harness's own functions, which ignore calls without it
local BLOCK_AFTER = 0.02 -- seconds a sequence may wait before the harness gives up on it
local RING = 24 -- how many of the last operations are kept for a report
local FOUND_CAP = 256 -- values found by the operations that are kept for later ones
local MAX_FINDINGS = 20

---------------------------------------------------------------------------
-- The random generator: xorshift32 on bit32 integers (math.random's seed is the VM's).
---------------------------------------------------------------------------

local rng = 0x9E3779B9
local function seed_rng(seed: number)
	rng = seed % 4294967296
	if rng == 0 then
		rng = 0x9E3779B9
	end
	for _ = 1, 8 do
		rng = bxor(rng, lshift(rng, 13))
		rng = bxor(rng, rshift(rng, 17))
		rng = bxor(rng, lshift(rng, 5))
	end
end

local function rnd(): number
	local x = rng
	x = bxor(x, lshift(x, 13))
	x = bxor(x, rshift(x, 17))
	x = bxor(x, lshift(x, 5))
	rng = x
	return x
end

local function pick(n: number): number
	return rnd() % n + 1
end

local function chance(percent: number): boolean
	return rnd() % 100 < percent
end

---------------------------------------------------------------------------
-- Pools: what the operations work on, each with a label for the reports.
---------------------------------------------------------------------------

-- What the operations work on, by kind; `label_of` names each value in the reports.
local objects = {} -- runtime objects (handles, messages, payloads, events), threads, userdata, own tables
local tables = {} -- shared tables (the libraries, the modules, the handles' metatables and methods)
local api_fns = {} -- functions of the runtime's API (process, channel, time, ..., handle methods)
local lib_fns = {} -- the rest of the standard library
local label_of = {} -- value -> label, for everything pooled or found
local found = {} -- values the operations found (a ring of FOUND_CAP)
local found_next = 1
local own = setmetatable({}, { __mode = "k" }) -- tables (and userdata) this program made itself
local guarded = {} -- shared tables and handles: a write to one that succeeds is a finding
local public = {} -- functions reachable from the API's tables (debug.info may hand out no other runtime function)

local findings = {}
local function finding(text: string)
	if #findings < MAX_FINDINGS then
		findings[#findings + 1] = text
	end
end

local function poolable(v): boolean
	local t = type(v)
	return t == "table" or t == "function" or t == "thread" or t == "userdata" or t == "buffer"
end

-- Pools `v` in `list` (once).
local function add(list, label: string, v)
	if not poolable(v) or label_of[v] ~= nil then
		return
	end
	label_of[v] = label
	list[#list + 1] = v
end

local function add_found(label: string, v)
	if not poolable(v) or label_of[v] ~= nil then
		return
	end
	if #label > 80 then
		label = s_sub(label, 1, 77) .. "..."
	end
	label_of[v] = label
	local old = found[found_next]
	if old ~= nil then
		label_of[old] = nil
	end
	found[found_next] = v
	found_next = found_next % FOUND_CAP + 1
end

-- Walks `v` to `depth`, pooling every table and function reachable through keys, values,
-- metatables and their __index. Tables reached are shared (and guarded) when `shared`; functions
-- are the API's when `api`.
local function crawl(label: string, v, depth: number, shared: boolean, api: boolean, seen)
	if not poolable(v) or seen[v] then
		return
	end
	seen[v] = true
	if type(v) == "function" then
		public[v] = true
		add(api and api_fns or lib_fns, label, v)
		return
	end
	if type(v) == "table" and shared then
		guarded[v] = true
		add(tables, label, v)
	else
		add(objects, label, v)
	end
	local ok, mt = pcall(getmetatable, v)
	if ok and type(mt) == "table" then
		crawl("getmetatable(" .. label .. ")", mt, depth, shared, api, seen)
		local oki, index = pcall(rawget, mt, "__index")
		if oki and poolable(index) then
			crawl("getmetatable(" .. label .. ").__index", index, depth, shared, api, seen)
		end
	end
	if depth <= 0 or type(v) ~= "table" then
		return
	end
	local k, x = nil, nil
	for _ = 1, 400 do
		local okn, nk, nx = pcall(next, v, k)
		if not okn or nk == nil then
			break
		end
		k, x = nk, nx
		crawl(label .. "." .. tostring(k), x, depth - 1, shared, api, seen)
		if poolable(k) then
			crawl(label .. "[key]", k, depth - 1, shared, api, seen)
		end
	end
end

---------------------------------------------------------------------------
-- Odd values
---------------------------------------------------------------------------

local NUMS = {
	0,
	1,
	2,
	3,
	4,
	5,
	6,
	-1,
	0.5,
	-0.5,
	1e4,
	2 ^ 31,
	2 ^ 32,
	2 ^ 53,
	-2 ^ 53,
	2 ^ 63,
	1e300,
	-1e300,
	math.huge,
	-math.huge,
	0 / 0,
	1e-300,
}
local STRS = {
	"",
	"rq",
	"sq",
	"p",
	"n",
	"bh",
	"ext",
	"closed",
	"cap",
	"kind",
	"ch",
	"co",
	"st",
	"id",
	"lid",
	"tick",
	"tid",
	"topic",
	"runner",
	"chans",
	"objs",
	"subs",
	"held",
	"timers",
	"listeners",
	"__index",
	"__newindex",
	"__metatable",
	"__call",
	"__mode",
	"__iter",
	"__tostring",
	"__len",
	"__eq",
	"send",
	"receive",
	"close",
	"k",
	"kv",
	"%s%d%q",
	"%",
	"(.-)",
	"%f[",
	"1ms",
	"1h",
	"10ms",
	"-1s",
	"1e300s",
	"9999999999h",
	"1ns",
	"@topic",
	"pid.exit",
	"\0",
	"sfnla",
	"f",
	"s",
	"*t",
	"!%c",
	"{app:none|0x00001}",
	"{|}",
	"not-a-name",
	"ÿþ",
	string.rep("x", 300),
}
local KEY_STRS = {
	"rq",
	"sq",
	"p",
	"n",
	"bh",
	"ext",
	"closed",
	"cap",
	"kind",
	"ch",
	"co",
	"st",
	"id",
	"value",
	"ok",
	"send",
	"__index",
	"__metatable",
	"__newindex",
	"__call",
	"__mode",
	"receive",
	"pid",
	"inbox",
}

local function show_string(s: string): string
	if #s > 24 then
		return s_format("%q..(%d bytes)", s_sub(s, 1, 12), #s)
	end
	return s_format("%q", s)
end

-- A value's text for a report.
local function show(v): string
	local t = type(v)
	if t == "string" then
		return show_string(v)
	elseif t == "number" or t == "boolean" or t == "nil" then
		return tostring(v)
	end
	return label_of[v] or ("<" .. typeof(v) .. ">")
end

local self_pid, self_id = "", ""

local function from(list)
	return list[pick(#list)]
end

-- Any function: mostly the runtime's API, then the rest of the library, then found ones.
local function any_function()
	local r = pick(100)
	if r <= 55 then
		return from(api_fns)
	elseif r <= 85 or found[1] == nil then
		return from(lib_fns)
	end
	for _ = 1, 4 do
		local v = found[pick(#found)]
		if type(v) == "function" then
			return v
		end
	end
	return from(api_fns)
end

-- Any pooled or found value: mostly runtime objects, then shared tables, found values, functions.
local function any_object()
	local r = pick(100)
	if r <= 45 then
		return from(objects)
	elseif r <= 70 then
		return from(tables)
	elseif r <= 88 and found[1] ~= nil then
		return found[pick(#found)]
	end
	return any_function()
end

local function any_table()
	for _ = 1, 8 do
		local v = any_object()
		if type(v) == "table" then
			return v
		end
	end
	return from(tables)
end

-- A fresh table of this program's own, sometimes with odd contents or a metatable.
local function fresh_table()
	local r = pick(6)
	local t
	if r == 1 then
		t = {}
	elseif r == 2 then
		t = { 1, 2, 3 }
	elseif r == 3 then
		t = { any_object(), k = any_object() }
	elseif r == 4 then
		t = setmetatable({}, { __index = any_object(), __newindex = any_object(), __call = any_function() })
	elseif r == 5 then
		t = { ch = any_object(), send = chance(50), value = any_object() }
	else
		t = { [any_object()] = any_object(), nested = { any_object() } }
	end
	own[t] = true
	label_of[t] = label_of[t] or "{fresh}"
	return t
end

-- An odd argument.
local function odd()
	local r = pick(12)
	if r == 1 then
		return nil
	elseif r == 2 then
		return chance(50)
	elseif r == 3 or r == 4 then
		return NUMS[pick(#NUMS)]
	elseif r == 5 or r == 6 then
		return STRS[pick(#STRS)]
	elseif r == 7 then
		return fresh_table()
	elseif r == 8 then
		return chance(50) and self_pid or self_id
	elseif r == 9 then
		return any_function()
	end
	return any_object()
end

local function odd_key()
	local r = pick(6)
	if r <= 3 then
		return KEY_STRS[pick(#KEY_STRS)]
	elseif r == 4 then
		return pick(6)
	elseif r == 5 then
		return any_object()
	end
	return odd()
end

local function odd_args(max: number)
	local n = rnd() % (max + 1)
	local args = { n = n }
	for i = 1, n do
		args[i] = odd()
	end
	return args
end

-- An error in a coroutine of coroutine.spawn ends the whole process (as the contract says): a
-- function the operations spawn runs inside pcall (and so do the functions it spawns), so that
-- the attacker lives on.
local guarded_pcall
local function guard_spawn(f, args)
	if rawequal(f, co_spawn) and type(args[1]) == "function" then
		local g = args[1]
		args[1] = function(...)
			return guarded_pcall(g, ...)
		end
	end
end
function guarded_pcall(f, ...)
	local args = t_pack(...)
	guard_spawn(f, args)
	return pcall(f, t_unpack(args, 1, args.n))
end

local function show_args(args): string
	local parts = {}
	for i = 1, args.n do
		parts[i] = show(args[i])
	end
	return t_concat(parts, ", ")
end

---------------------------------------------------------------------------
-- Operations
---------------------------------------------------------------------------

local ring, ring_next = {}, 1
local verbose = false
local op_count, op_errors = 0, 0

local function note(text: string)
	ring[ring_next] = text
	ring_next = ring_next % RING + 1
	op_count += 1
	if verbose then
		print("op " .. op_count .. ": " .. text)
	end
end

local function last_ops()
	local out = {}
	for i = 0, RING - 1 do
		local text = ring[(ring_next - 1 + i) % RING + 1]
		if text then
			out[#out + 1] = text
		end
	end
	return out
end

local function is_runtime_function(f): boolean
	local ok, source = pcall(debug_info, f, "s")
	return ok and (source == "=wisp" or source == "wisp" or source == "[C]" or source == "=[C]")
end

-- Results of an operation: interesting values are kept for later operations.
local function keep(label: string, ok: boolean, ...)
	if not ok then
		op_errors += 1
		return
	end
	for i = 1, math.min(select("#", ...), 4) do
		local v = select(i, ...)
		if poolable(v) then
			add_found(label .. "#" .. i, v)
		end
	end
end

-- A table `x` read raw out of container `c`: inside a frozen shared table, it must be frozen.
local function check_frozen_child(what: string, c, x)
	if guarded[c] and type(c) == "table" and t_isfrozen(c) and type(x) == "table" and not own[x] and not t_isfrozen(x) then
		finding("unfrozen table inside the frozen shared table " .. show(c) .. ", by " .. what)
	end
end

-- A write that succeeded on a shared table or a handle.
local function check_write(what: string, ok: boolean, target)
	if ok and guarded[target] then
		finding("a write to the shared table or handle " .. show(target) .. " succeeded: " .. what)
	end
end

-- Functions found on stacks by debug.info: no runtime function may be handed out.
local function check_stack_functions(what: string, ok: boolean, ...)
	if not ok then
		return
	end
	for i = 1, select("#", ...) do
		local v = select(i, ...)
		if type(v) == "function" and not public[v] and is_runtime_function(v) then
			local _, source, line, name = pcall(debug_info, v, "sln")
			finding(
				s_format("%s handed out a runtime function (%s:%s %s)", what, tostring(source), tostring(line), tostring(name))
			)
		end
	end
end

local OPS = {}
local function op(weight: number, f)
	for _ = 1, weight do
		OPS[#OPS + 1] = f
	end
end

-- rawget
op(6, function()
	local o, k = any_object(), odd_key()
	local what = s_format("rawget(%s, %s)", show(o), show(k))
	note(what)
	local ok, x = pcall(rawget, o, k)
	if ok then
		check_frozen_child(what, o, x)
	end
	keep(what, ok, x)
end)

-- rawset
op(6, function()
	local o, k, v = any_object(), odd_key(), odd()
	local what = s_format("rawset(%s, %s, %s)", show(o), show(k), show(v))
	note(what)
	local ok = pcall(rawset, o, k, v)
	check_write(what, ok, o)
	keep(what, ok)
end)

-- getmetatable
op(5, function()
	local o = chance(80) and any_object() or odd()
	local what = s_format("getmetatable(%s)", show(o))
	note(what)
	local ok, mt = pcall(getmetatable, o)
	if ok then
		check_frozen_child(what, o, mt)
		if guarded[o] and type(mt) == "table" and not own[mt] and not t_isfrozen(mt) then
			finding("the metatable of the shared object " .. show(o) .. " is not frozen")
		end
	end
	keep(what, ok, mt)
end)

-- setmetatable
op(5, function()
	local o = any_object()
	local r = pick(5)
	local mt
	if r == 1 then
		mt = nil
	elseif r == 2 then
		mt = {
			__index = odd(),
			__newindex = odd(),
			__call = any_function(),
			__tostring = any_function(),
			__len = any_function(),
			__eq = any_function(),
			__iter = any_function(),
		}
		own[mt] = true
	elseif r == 3 then
		mt = any_table()
	elseif r == 4 then
		mt = { __metatable = odd(), __mode = "kv" }
		own[mt] = true
	else
		mt = fresh_table()
	end
	local what = s_format("setmetatable(%s, %s)", show(o), show(mt))
	note(what)
	local ok = pcall(setmetatable, o, mt)
	check_write(what, ok, o)
	keep(what, ok)
end)

-- assignment o[k] = v (metamethods included)
op(5, function()
	local o, k, v = any_object(), odd_key(), odd()
	local what = s_format("%s[%s] = %s", show(o), show(k), show(v))
	note(what)
	local ok = pcall(function()
		o[k] = v
	end)
	if ok and guarded[o] and type(o) == "table" and rawget(o, k) == v and v ~= nil then
		-- (an __newindex of a handle's metatable could store elsewhere; a raw change is a breach)
		finding("assignment changed the shared table or handle " .. show(o) .. ": " .. what)
	end
	keep(what, ok)
end)

-- read o[k] (metamethods included)
op(5, function()
	local o = any_object()
	local k = chance(50) and odd_key() or STRS[pick(#STRS)]
	local what = s_format("%s[%s]", show(o), show(k))
	note(what)
	local ok, x = pcall(function()
		return o[k]
	end)
	keep(what, ok, x)
end)

-- next(t, k)
op(4, function()
	local o = any_object()
	local k = chance(60) and nil or odd_key()
	local what = s_format("next(%s, %s)", show(o), show(k))
	note(what)
	local ok, nk, nv = pcall(next, o, k)
	if ok then
		check_frozen_child(what, o, nk)
		check_frozen_child(what, o, nv)
	end
	keep(what, ok, nk, nv)
end)

-- debug.info(level, options), from a Lua function of this program so that levels pass through
-- its own frames and whatever runtime frames lie below them
local INFO_OPTIONS = { "sfnla", "f", "s", "l", "n", "a", "sl", "fn", "ff" }
op(6, function()
	local level = pick(10)
	local options = INFO_OPTIONS[pick(#INFO_OPTIONS)]
	local what = s_format("debug.info(%d, %q)", level, options)
	note(what)
	local results = t_pack(pcall(function()
		return debug_info(level, options)
	end))
	check_stack_functions(what, t_unpack(results, 1, results.n))
	keep(what, t_unpack(results, 1, results.n))
end)

-- debug.info on a function or a thread
op(4, function()
	local o = chance(70) and any_object() or odd()
	local options = INFO_OPTIONS[pick(#INFO_OPTIONS)]
	local level = pick(10)
	local what, results
	if type(o) == "thread" and chance(70) then
		what = s_format("debug.info(%s, %d, %q)", show(o), level, options)
		note(what)
		results = t_pack(pcall(debug_info, o, level, options))
		check_stack_functions(what, t_unpack(results, 1, results.n))
	else
		what = s_format("debug.info(%s, %q)", show(o), options)
		note(what)
		results = t_pack(pcall(debug_info, o, options))
	end
	keep(what, t_unpack(results, 1, results.n))
end)

-- debug.traceback in its forms
op(3, function()
	local r = pick(4)
	local args
	if r == 1 then
		args = { n = 0 }
	elseif r == 2 then
		args = { odd(), n = 1 }
	elseif r == 3 then
		args = { odd(), NUMS[pick(#NUMS)], n = 2 }
	else
		args = { any_object(), odd(), pick(10), n = 3 }
	end
	local what = "debug.traceback(" .. show_args(args) .. ")"
	note(what)
	local ok, text = pcall(debug_traceback, t_unpack(args, 1, args.n))
	if ok and type(text) == "string" and #text > 1e6 then
		finding("debug.traceback returned " .. #text .. " bytes")
	end
	keep(what, ok)
end)

-- coroutine operations on the threads found so far
local threads_seen = {}
op(5, function()
	local r = pick(8)
	local th = any_object()
	if type(th) ~= "thread" then
		th = threads_seen[1] and threads_seen[pick(#threads_seen)] or co_running()
	end
	local what, ok, a, b
	if r == 1 then
		what = "coroutine.running()"
		note(what)
		ok, a, b = pcall(co_running)
		if ok and type(a) == "thread" and not threads_seen[a] then
			threads_seen[#threads_seen + 1] = a
			threads_seen[a] = true
		end
	elseif r == 2 then
		what = s_format("coroutine.status(%s)", show(th))
		note(what)
		ok, a = pcall(co_status, th)
	elseif r == 3 or r == 4 then
		local args = odd_args(3)
		what = s_format("coroutine.resume(%s, %s)", show(th), show_args(args))
		note(what)
		ok, a, b = pcall(co_resume, th, t_unpack(args, 1, args.n))
	elseif r == 5 then
		what = s_format("coroutine.close(%s)", show(th))
		note(what)
		ok, a, b = pcall(co_close, th)
	elseif r == 6 then
		local f = any_function()
		what = s_format("coroutine.create(%s)", show(f))
		note(what)
		ok, a = pcall(co_create, f)
	elseif r == 7 then
		local f = any_function()
		what = s_format("coroutine.wrap(%s)", show(f))
		note(what)
		ok, a = pcall(co_wrap, f)
	else
		local f = any_function()
		local args = odd_args(2)
		what = s_format("coroutine.spawn(%s, %s)", show(f), show_args(args))
		note(what)
		ok, a = pcall(co_spawn, function(...)
			return guarded_pcall(f, ...)
		end, t_unpack(args, 1, args.n))
	end
	keep(what, ok, a, b)
end)

-- a call of any function found, with odd arguments
op(14, function()
	local f = chance(90) and any_function() or any_object()
	local args = odd_args(4)
	local what = s_format("%s(%s)", show(f), show_args(args))
	note(what)
	guard_spawn(f, args)
	keep(what, pcall(f, t_unpack(args, 1, args.n)))
end)

-- a method call through an object's metatable, on itself or on another object (type confusion)
local METHODS = {
	"send",
	"receive",
	"close",
	"case_send",
	"case_receive",
	"len",
	"channel",
	"stop",
	"reset",
	"with_context",
	"with_name",
	"with_message",
	"with_actor",
	"with_scope",
	"spawn",
	"spawn_monitored",
	"spawn_linked",
	"spawn_linked_monitored",
	"id",
	"meta",
	"policies",
	"with",
	"without",
	"evaluate",
	"contains",
	"topic",
	"from",
	"payload",
	"data",
}
op(10, function()
	local o = any_object()
	local name = METHODS[pick(#METHODS)]
	local self_arg = chance(75) and o or odd()
	local args = odd_args(3)
	local what = s_format("%s.%s(%s, %s)", show(o), name, show(self_arg), show_args(args))
	note(what)
	local ok, m = pcall(function()
		return o[name]
	end)
	if not ok or m == nil then
		op_errors += 1
		return
	end
	local full = { self_arg, t_unpack(args, 1, args.n) }
	full.n = args.n + 1
	guard_spawn(m, full)
	keep(what, pcall(m, t_unpack(full, 1, full.n)))
end)

-- operators that run metamethods
op(4, function()
	local o, x = any_object(), odd()
	local r = pick(9)
	local names = { "tostring", "#", "==", "<", "..", "unary -", "+", "call", "iterate" }
	local what = s_format("%s %s %s", show(o), names[r], show(x))
	note(what)
	keep(
		what,
		pcall(function()
			if r == 1 then
				return tostring(o)
			elseif r == 2 then
				return #o
			elseif r == 3 then
				return o == x
			elseif r == 4 then
				return o < x
			elseif r == 5 then
				return o .. x
			elseif r == 6 then
				return -o
			elseif r == 7 then
				return o + x
			elseif r == 8 then
				return o(x)
			else
				local n, last = 0, nil
				for k, v in o do
					n += 1
					last = v
					if n >= 3 then
						break
					end
				end
				return last
			end
		end)
	)
end)

-- table library mutators and readers on any object
op(5, function()
	local o, v = any_object(), odd()
	local r = pick(11)
	local names = {
		"table.insert",
		"table.remove",
		"table.clear",
		"table.freeze",
		"table.clone",
		"table.move",
		"table.sort",
		"table.concat",
		"table.unpack",
		"table.find",
		"rawlen",
	}
	local what = s_format("%s(%s, %s)", names[r], show(o), show(v))
	note(what)
	local ok, a, b = pcall(function()
		if r == 1 then
			return t_insert(o, v)
		elseif r == 2 then
			return t_remove(o, chance(50) and 1 or nil)
		elseif r == 3 then
			return t_clear(o)
		elseif r == 4 then
			return t_freeze(o)
		elseif r == 5 then
			return t_clone(o)
		elseif r == 6 then
			return t_move(o, 1, 3, 2)
		elseif r == 7 then
			return t_sort(o, chance(50) and any_function() or nil)
		elseif r == 8 then
			return t_concat(o, ",")
		elseif r == 9 then
			return t_unpack(o, 1, 4)
		elseif r == 10 then
			return t_find(o, v)
		end
		return rawlen(o)
	end)
	if ok and (r == 1 or r == 3 or r == 4) then
		check_write(what, true, o)
	end
	keep(what, ok, a, b)
end)

-- a message to itself (odd payloads), then a look at its inbox and listeners without waiting
local TOPICS = { "m", "rq", "sq", "@x", "", "pid.exit" }
op(4, function()
	local topic = TOPICS[pick(#TOPICS)]
	local args = odd_args(3)
	local what = s_format("process.send(self, %q, %s)", topic, show_args(args))
	note(what)
	keep(what, pcall(send, self_pid, topic, t_unpack(args, 1, args.n)))
	local ch = any_object()
	local what2 = s_format("channel.select{%s:case_receive(), default = true}", show(ch))
	note(what2)
	local ok, r = pcall(function()
		return chan_select({ ch:case_receive(), default = true })
	end)
	if ok and type(r) == "table" then
		keep(what2, true, r.value)
		if typeof(r.value) == "message" then
			keep(what2 .. ":payload()", pcall(r.value.payload, r.value))
		end
	else
		keep(what2, false)
	end
end)

-- a select over odd cases
op(3, function()
	local cases = { default = chance(80) }
	for i = 1, pick(3) do
		local ch = any_object()
		if chance(50) then
			cases[i] = { ch = ch, send = chance(50), value = odd() }
		else
			cases[i] = odd()
		end
	end
	own[cases] = true
	local what = s_format("channel.select{%s, %s, default=%s}", show(cases[1]), show(cases[2]), tostring(cases.default))
	note(what)
	local ok, r = pcall(chan_select, cases)
	keep(what, ok, r)
end)

-- new runtime objects
op(3, function()
	local r = pick(8)
	local x = odd()
	local names = {
		"channel.new",
		"time.after",
		"time.timer",
		"time.ticker",
		"process.listen",
		"process.with_name",
		"security.new_actor",
		"security.new_scope",
	}
	local what = s_format("%s(%s)", names[r], show(x))
	note(what)
	keep(
		what,
		pcall(function()
			if r == 1 then
				return chan_new(x)
			elseif r == 2 then
				return time.after(x)
			elseif r == 3 then
				return time.timer(x)
			elseif r == 4 then
				-- (a real period: a ticker of a nanosecond would keep the process busy for nothing)
				return time.ticker(type(x) == "number" and math.max(x, 1e6) or x)
			elseif r == 5 then
				return listen(x, chance(50) and { message = true } or nil)
			elseif r == 6 then
				return process.with_name(x)
			elseif r == 7 then
				return security.new_actor(x, chance(50) and { m = x } or nil)
			else
				return security.new_scope(x)
			end
		end)
	)
end)

---------------------------------------------------------------------------
-- Gathering
---------------------------------------------------------------------------

-- The next value of `ch` within a second, or nil.
local function take(ch)
	local r = chan_select({ ch:case_receive(), time.after("1s"):case_receive() })
	if r.channel == ch then
		return r.value
	end
	return nil
end

local function gather()
	local seen = {}
	-- The shared tables: everything reachable from them is public and guarded. The API's first
	-- (what a table reached from two roots counts as is decided by the first).
	for _, root in
		{
			{ "process", process, true },
			{ "channel", channel, true },
			{ "process.registry", process.registry, true },
			{ "process.event", process.event, true },
			{ "coroutine", coroutine, true },
			{ "debug", debug, true },
			{ "time", time, true },
			{ "ctx", ctx, true },
			{ "uuid", uuid, true },
			{ "security", security, true },
			{ "getmetatable(string)", getmetatable(string), true },
			{ "_G", _G, false },
			{ "string", string, false },
			{ 'getmetatable("")', getmetatable(""), false },
			{ "math", math, false },
			{ "table", table, false },
			{ "os", os, false },
			{ "bit32", bit32, false },
			{ "utf8", utf8, false },
			{ "buffer", buffer, false },
		}
	do
		crawl(root[1], root[2], 3, true, root[3], seen)
	end

	-- Runtime objects (handles): opaque, frozen, shared metatables.
	local gathered = {}
	local function object(label: string, v)
		if v ~= nil then
			gathered[#gathered + 1] = { label, v }
		end
		return v
	end
	object("channel.new()", chan_new())
	local ch3 = object("channel.new(3)", chan_new(3))
	ch3:send(1)
	ch3:send({ "two" })
	local closed = object("closed channel", chan_new(1))
	closed:close()
	local inbox = object("process.inbox()", process.inbox())
	local events = object("process.events()", process.events())
	object('process.listen("rq")', listen("rq"))
	local sq = object('process.listen("sq", {message=true})', listen("sq", { message = true }))
	object('time.after("1ms")', time.after("1ms"))
	local timer = object('time.timer("1h")', time.timer("1h"))
	object("timer:channel()", timer:channel())
	local tick = object('time.ticker("50ms")', ticker("50ms"))
	object("ticker:channel()", tick:channel())
	object('process.with_name("n")', process.with_name("n"))
	object("process.with_context({...})", process.with_context({ a = { b = 1 } }))
	object('process.with_message("t", ...)', process.with_message("t", 1, { x = 2 }))
	object("spawner chain", process.with_name("n"):with_context({ c = 1 }):with_message("m", "v"))
	local actor = object("security.new_actor(...)", security.new_actor("fuzz-actor", { m = { 1 } }))
	local scope = object("security.new_scope({})", security.new_scope({}))
	object("scope:with({})", scope:with({}))
	object("process.with_actor(actor)", process.with_actor(actor))
	object("process.with_scope(scope)", process.with_scope(scope))
	object("security.actor()", security.actor())
	object("security.scope()", security.scope())
	-- Messages and payloads: from itself, through the inbox and a message listener.
	send(self_pid, "m", 1, { x = { 1, 2 } }, "three")
	send(self_pid, "one", "payload")
	send(self_pid, "sq", "to the listener")
	local m1 = take(inbox)
	local m2 = take(inbox)
	local m3 = take(sq)
	for i, m in { m1, m2, m3 } do
		object("message" .. i, m)
		if m ~= nil then
			local p = m:payload()
			object("message" .. i .. ":payload()", p)
			if type(p) == "table" then
				for j, part in p do
					object("message" .. i .. ":payload()[" .. j .. "]", part)
				end
			end
			for _, method in { "topic", "from", "payload", "data" } do
				local ok, f = pcall(function()
					return m[method]
				end)
				if ok and type(f) == "function" then
					public[f] = true
					add(api_fns, "message." .. method, f)
				end
			end
		end
	end
	-- An event of its own.
	process.cancel(self_pid, "fuzz")
	object("a CANCEL event", take(events))
	-- Threads: its main coroutine, a suspended one, a dead one, one waiting on a channel, a wrap.
	object("coroutine.running()", co_running())
	local suspended = co_create(function(...)
		local args = { ... }
		while true do
			args = { co_yield(t_unpack(args)) }
		end
	end)
	co_resume(suspended, 1)
	object("a suspended coroutine", suspended)
	local dead = co_create(function()
		return 1
	end)
	co_resume(dead)
	object("a dead coroutine", dead)
	object(
		"a spawned coroutine waiting on a channel",
		co_spawn(function()
			chan_new():receive()
		end)
	)
	object(
		"coroutine.wrap(...)",
		co_wrap(function(...)
			while true do
				co_yield(...)
			end
		end)
	)
	-- Userdata and its own tables.
	local proxy = newproxy(true)
	getmetatable(proxy).__index = function(_, k)
		return k
	end
	own[proxy] = true
	object("newproxy(true)", proxy)
	object("buffer.create(16)", buffer.create(16))
	for i, t in { {}, { 1, 2, 3 }, t_freeze({ 1 }), setmetatable({}, { __index = string }) } do
		own[t] = true
		object("own table " .. i, t)
	end

	for _, entry in gathered do
		local label, v = entry[1], entry[2]
		-- Handles (frozen tables the runtime made) and their metatables are shared by the shard;
		-- a handle is an object, its metatable and methods shared tables and API functions.
		local handle = type(v) == "table" and not own[v] and t_isfrozen(v)
		if handle then
			guarded[v] = true
		end
		add(objects, label, v)
		seen[v] = true
		local ok, mt = pcall(getmetatable, v)
		if ok and poolable(mt) then
			crawl("getmetatable(" .. label .. ")", mt, 2, handle, true, seen)
		end
		if type(v) == "table" then
			for k, x in next, v do
				crawl(label .. "." .. tostring(k), x, 1, false, false, seen)
			end
		end
	end
end

---------------------------------------------------------------------------
-- The harness
---------------------------------------------------------------------------

local function run_sequence(token, ops: number, done, index: number)
	if token ~= HARNESS then
		return
	end
	for _ = 1, ops do
		OPS[pick(#OPS)]()
	end
	done:send(index)
end

local started = false

local function main(seed: number, sequences: number, ops: number, loud: boolean?)
	if started then
		return nil
	end
	started = true
	seed_rng(seed)
	verbose = loud == true
	self_pid, self_id = pid_of(), process.id()
	gather()
	local done = chan_new(sequences + 1)
	local tick = ticker("5ms"):channel()
	local blocked = 0
	for index = 1, sequences do
		if verbose then
			print("sequence " .. index)
		end
		co_spawn(run_sequence, HARNESS, ops, done, index)
		local since = os_clock()
		while true do
			local r = chan_select({ done:case_receive(), tick:case_receive() })
			if r.channel == done and r.value == index then
				break
			elseif r.channel == tick and os_clock() - since > BLOCK_AFTER then
				blocked += 1
				break
			end
		end
	end
	return {
		sequences = sequences,
		ops = op_count,
		op_errors = op_errors,
		blocked = blocked,
		findings = findings,
		last_ops = last_ops(),
	}
end

return { main = main }
