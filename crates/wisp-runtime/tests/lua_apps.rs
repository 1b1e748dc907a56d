//! What a Lua program sees, tested by Lua programs run on the runtime.
//!
//! Every case writes a small app folder (one YAML registry plus Lua files), loads it with
//! `Registry::load_dir`, builds a node (`common/mod.rs`) and runs `app:main` on the terminal host. Each Lua file
//! `x.lua` becomes the entry `app:x` (with `modules: [time]`); `app:processes` is a process host
//! with two workers. A set of small helper programs (`pong`, `returns`, `fails`, `sleeper`,
//! `busy`) is part of every app, and the default `main.lua` runs `app:case` on the process host
//! with `process.exec`, so a case usually only supplies `case.lua`.
//!
//! Lua checks its own expectations with `assert` and returns a value; Rust checks the value or a
//! fragment of the error. Nothing sleeps: the harness waits on the exit with a generous timeout.

mod common;

use std::time::Duration;

use common::App;
use wisp_core::{Envelope, ExitResult, Value};
use wisp_runtime::{Context, NodeBuilder, Process, Step};

const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// How the entry must end.
enum Expect {
    Value(Value),
    /// The error text must contain every fragment.
    Error(&'static [&'static str]),
}

fn num(n: f64) -> Expect {
    Expect::Value(Value::Number(n))
}

fn ok() -> Expect {
    Expect::Value(Value::str("ok"))
}

/// Helper programs present in every app.
const COMMON: &[(&str, &str)] = &[
    ("main.lua", common::DEFAULT_MAIN),
    (
        "pong.lua",
        r#"
-- Answers every ping with the same payload until told to stop.
local function main(parent: string)
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		if msg:topic() == "stop" then
			return "stopped"
		end
		process.send(parent, "pong", msg:payload():data())
	end
end
return { main = main }
"#,
    ),
    (
        "returns.lua",
        r#"
local function main(n: number)
	return n * 2
end
return { main = main }
"#,
    ),
    (
        "fails.lua",
        r#"
local function main()
	error("child failed on purpose")
end
return { main = main }
"#,
    ),
    (
        "sleeper.lua",
        r#"
-- Waits for messages forever (not a deadlock: the inbox can always receive).
local function main()
	local inbox = process.inbox()
	while true do
		inbox:receive()
	end
end
return { main = main }
"#,
    ),
    (
        "busy.lua",
        r#"
local function main()
	while true do
	end
end
return { main = main }
"#,
    ),
];

/// Runs `app:main` of an app made of `files` (plus [`COMMON`]) and returns how it ended.
fn run_app_with(
    files: &[(&str, &str)],
    args: Vec<Value>,
    customize: impl FnOnce(NodeBuilder) -> NodeBuilder,
) -> ExitResult {
    App { common: COMMON, files, libraries: &[] }.run_with(args, TIMEOUT, customize)
}

fn run_app(files: &[(&str, &str)], args: Vec<Value>) -> ExitResult {
    run_app_with(files, args, |b| b)
}

fn check(name: &str, result: ExitResult, expect: &Expect) {
    match (expect, &result) {
        (Expect::Value(want), ExitResult::Value(got)) => {
            assert_eq!(got, want, "case {name}: wrong value")
        }
        (Expect::Error(fragments), ExitResult::Error(text)) => {
            for f in *fragments {
                assert!(text.contains(f), "case {name}: error {text:?} does not contain {f:?}");
            }
        }
        _ => panic!("case {name}: expected {}, got {result:?}", describe(expect)),
    }
}

fn describe(expect: &Expect) -> String {
    match expect {
        Expect::Value(v) => format!("value {v:?}"),
        Expect::Error(f) => format!("an error containing {f:?}"),
    }
}

/// A case of the common shape: some Lua files, the arguments of `app:main`, the expected end.
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: fn() -> Vec<Value>,
    expect: fn() -> Expect,
}

fn no_args() -> Vec<Value> {
    Vec::new()
}

fn run_case(case: &Case) {
    let result = run_app(case.files, (case.args)());
    check(case.name, result, &(case.expect)());
}

/// Declares one `#[test]` per case so that they run (and fail) independently.
macro_rules! lua_cases {
    ($($name:ident: files $files:expr, args $args:expr, expect $expect:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run_case(&Case { name: stringify!($name), files: $files, args: $args, expect: $expect });
            }
        )*
    };
}

// ---------------------------------------------------------------------------
// Messaging at volume
// ---------------------------------------------------------------------------

const PING_PONG: &[(&str, &str)] = &[(
    "main.lua",
    r#"
local function main(n: number)
	local pong = process.spawn("app:pong", "app:processes", process.pid())
	local inbox = process.inbox()
	for i = 1, n do
		process.send(pong, "ping", i)
		local msg = inbox:receive()
		assert(msg:topic() == "pong", "wrong topic " .. tostring(msg:topic()))
		local got = msg:payload():data()
		if got ~= i then
			error(string.format("round %d: got %s", i, tostring(got)))
		end
	end
	process.send(pong, "stop")
	return n
end
return { main = main }
"#,
)];

const COUNT: &[(&str, &str)] = &[
    (
        "main.lua",
        r#"
local function main(n: number)
	local me = process.pid()
	local counter = process.spawn_monitored("app:counter", "app:processes", me)
	process.spawn("app:sender", "app:processes", counter, n)
	-- The counter either reports its count or ends with an error (an out-of-order message).
	local r = channel.select({ process.inbox():case_receive(), process.events():case_receive() })
	if r.channel == process.events() then
		return nil, "counter ended early: " .. tostring(r.value.result.error)
	end
	assert(r.value:topic() == "count")
	return r.value:payload():data()
end
return { main = main }
"#,
    ),
    (
        "sender.lua",
        r#"
local function main(to: string, n: number)
	for i = 1, n do
		assert(process.send(to, "n", i))
	end
	process.send(to, "end")
end
return { main = main }
"#,
    ),
    (
        "counter.lua",
        r#"
-- Counts messages until "end"; they must arrive in the order sent.
local function main(parent: string)
	local inbox = process.inbox()
	local count = 0
	while true do
		local msg = inbox:receive()
		if msg:topic() == "end" then
			break
		end
		local v = msg:payload():data()
		count += 1
		if v ~= count then
			error(string.format("message %d arrived as number %d", v, count))
		end
	end
	process.send(parent, "count", count)
end
return { main = main }
"#,
    ),
];

const RING: &[(&str, &str)] = &[
    (
        "main.lua",
        r#"
-- A ring of `size` processes passes a token `hops` times; the last holder reports the count.
local function main(size: number, hops: number)
	local me = process.pid()
	local nodes = {}
	for i = 1, size do
		nodes[i] = process.spawn("app:ring_node", "app:processes", me, hops)
	end
	for i = 1, size do
		process.send(nodes[i], "next", nodes[i % size + 1])
	end
	process.send(nodes[1], "token", 0)
	local msg = process.inbox():receive()
	assert(msg:topic() == "done")
	for i = 1, size do
		process.send(nodes[i], "stop")
	end
	return msg:payload():data()
end
return { main = main }
"#,
    ),
    (
        "ring_node.lua",
        r#"
local function main(parent: string, hops: number)
	local inbox = process.inbox()
	local next_pid = nil
	local held = nil
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "next" then
			next_pid = msg:payload():data()
		elseif topic == "token" then
			held = msg:payload():data()
		elseif topic == "stop" then
			return
		end
		-- A token can arrive before "next" (they come from different senders).
		if held ~= nil and next_pid ~= nil then
			local count = held
			held = nil
			if count >= hops then
				process.send(parent, "done", count)
			else
				process.send(next_pid, "token", count + 1)
			end
		end
	end
end
return { main = main }
"#,
    ),
];

const SKYNET: &[(&str, &str)] = &[
    (
        "main.lua",
        r#"
local function main(size: number)
	process.spawn("app:skynet", "app:processes", process.pid(), 0, size)
	local msg = process.inbox():receive()
	return msg:payload():data()
end
return { main = main }
"#,
    ),
    (
        "skynet.lua",
        r#"
-- Leaves send their number to the parent; inner nodes spawn 10 children and sum their answers.
local function main(parent: string, num: number, size: number)
	if size == 1 then
		process.send(parent, "n", num)
		return
	end
	local me = process.pid()
	local step = size // 10
	for i = 0, 9 do
		process.spawn("app:skynet", "app:processes", me, num + i * step, step)
	end
	local inbox = process.inbox()
	local sum = 0
	for _ = 1, 10 do
		sum += inbox:receive():payload():data()
	end
	process.send(parent, "n", sum)
end
return { main = main }
"#,
    ),
];

/// A process waiting on its inbox alone is resumed straight from the mailbox; whatever else
/// arrives meanwhile (listener messages, events, timers) must still reach its channels, in order.
const PARKED: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local function main()
	local me = process.pid()
	local worker = process.spawn("app:parked_worker", "app:processes", me)
	assert(process.inbox():receive():topic() == "ready")
	for i = 1, 500 do
		process.send(worker, "side", i)
		process.send(worker, "in", i)
		if i % 100 == 0 then
			process.send(worker, "both", i, i + 1)
		end
	end
	process.send(worker, "done")
	local report = process.inbox():receive()
	assert(report:topic() == "report", "got " .. tostring(report:topic()))
	return report:payload():data()
end
return { main = main }
"#,
    ),
    (
        "parked_worker.lua",
        r#"
local time = require("time")
local function main(parent: string)
	local side = process.listen("side")
	local child = process.spawn_monitored("app:returns", "app:processes", 1)
	local timer = time.after("1ms")
	local inbox = process.inbox()
	process.send(parent, "ready")
	local n, pairs_seen = 0, 0
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "done" then
			break
		elseif topic == "both" then
			local p = msg:payload()
			assert(p[1]:data() == n and p[2]:data() == n + 1, "multi payload out of place")
			pairs_seen += 1
		else
			assert(topic == "in", "unexpected topic " .. topic)
			assert(msg:from() == parent and msg:from() == parent, "sender " .. tostring(msg:from()))
			n += 1
			assert(msg:payload():data() == n, "inbox message " .. tostring(msg:payload():data()) .. " arrived as " .. n)
		end
	end
	-- everything sent on "side" waited in its channel, in order
	for i = 1, 500 do
		assert(side:receive() == i, "side message out of order")
	end
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.from == child and ev.result.value == 2, "EXIT lost")
	timer:receive()
	process.send(parent, "report", n + pairs_seen)
end
return { main = main }
"#,
    ),
];

lua_cases! {
    ping_pong_20000_round_trips_in_order:
        files PING_PONG, args || vec![Value::Number(20000.0)], expect || num(20000.0);
    one_sender_100000_messages_counted_exactly:
        files COUNT, args || vec![Value::Number(100000.0)], expect || num(100000.0);
    ring_of_100_passes_a_token_10000_times:
        files RING, args || vec![Value::Number(100.0), Value::Number(10000.0)], expect || num(10000.0);
    skynet_10000:
        files SKYNET, args || vec![Value::Number(10000.0)], expect || num(49995000.0);
    parked_receive_keeps_listeners_events_and_timers_in_order:
        files PARKED, args no_args, expect || num(505.0);
}

// ---------------------------------------------------------------------------
// Bad Lua ends only its own process
// ---------------------------------------------------------------------------

const BAD_MAIN: &str = r#"
-- Spawns `entry` monitored, checks its EXIT error, then proves the runtime still works.
local function main(entry: string, fragments: { string })
	local events = process.events()
	local child = process.spawn_monitored(entry, "app:processes")
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT, "expected EXIT, got " .. tostring(ev.kind))
	assert(ev.from == child, "EXIT from " .. tostring(ev.from) .. ", expected " .. tostring(child))
	local err = ev.result.error
	assert(type(err) == "string", "expected an error, got value " .. tostring(ev.result.value))
	for _, f in ipairs(fragments) do
		if not string.find(err, f, 1, true) then
			error("error " .. string.format("%q", err) .. " does not contain " .. string.format("%q", f))
		end
	end
	local v, e = process.exec("app:returns", "app:processes", 21)
	assert(v == 42, "runtime broken after a bad process: " .. tostring(e))
	return err
end
return { main = main }
"#;

#[test]
fn bad_lua_ends_only_its_process_with_file_and_line() {
    // (file, source, fragments the EXIT error must contain)
    let cases: &[(&str, &str, &[&str])] = &[
        ("syntax_err.lua", "local function main()\n\treturn 1 +\nend\nreturn { main = main }\n", &["syntax_err.lua:3"]),
        (
            "runtime_err.lua",
            "local function main()\n\terror(\"boom\")\nend\nreturn { main = main }\n",
            &["runtime_err.lua:2", "boom"],
        ),
        (
            "missing_method.lua",
            "local function main()\n\tlocal t = {}\n\tt:nope()\nend\nreturn { main = main }\n",
            &["missing_method.lua:3", "nope"],
        ),
        (
            "returns_nil_err.lua",
            "local function main()\n\treturn nil, \"bad\"\nend\nreturn { main = main }\n",
            &["bad"],
        ),
    ];
    let mut failures = Vec::new();
    for (file, source, fragments) in cases {
        let entry = format!("app:{}", file.strip_suffix(".lua").unwrap());
        let list = Value::Table(Box::new(wisp_core::Table {
            array: fragments.iter().map(Value::str).collect(),
            map: Vec::new(),
        }));
        let result = run_app(&[("main.lua", BAD_MAIN), (file, source)], vec![Value::str(&entry), list]);
        match result {
            ExitResult::Value(Value::Str(err)) => {
                eprintln!("{entry}: {}", String::from_utf8_lossy(&err));
            }
            other => failures.push(format!("{entry}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "failing bad-Lua cases:\n{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Preemption
// ---------------------------------------------------------------------------

const BUSY: &[(&str, &str)] = &[(
    "main.lua",
    r#"
-- Two busy loops per worker of app:processes, then a ping-pong on the same host.
local function main(workers: number, rounds: number)
	local events = process.events()
	local busy = {}
	for i = 1, 2 * workers do
		busy[i] = process.spawn_monitored("app:busy", "app:processes")
	end
	local pong = process.spawn("app:pong", "app:processes", process.pid())
	local inbox = process.inbox()
	for i = 1, rounds do
		process.send(pong, "ping", i)
		local got = inbox:receive():payload():data()
		assert(got == i, "round " .. i .. " got " .. tostring(got))
	end
	process.send(pong, "stop")
	for _, pid in ipairs(busy) do
		assert(process.terminate(pid) == true)
	end
	for _ = 1, #busy do
		local ev = events:receive()
		assert(ev.kind == process.event.EXIT and ev.result.error == "terminated", tostring(ev.result.error))
	end
	return rounds
end
return { main = main }
"#,
)];

lua_cases! {
    busy_loops_do_not_block_other_processes:
        files BUSY, args || vec![Value::Number(2.0), Value::Number(100.0)], expect || num(100.0);
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

const PAYLOAD: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local function main()
	local me = process.pid()
	local child = process.spawn("app:mutator", "app:processes", me)
	local t = { a = 1, list = { 1, 2, 3 }, nested = { x = { y = "z" } }, [10] = true, s = "bytes\0here" }
	assert(process.send(child, "t", t) == true)
	-- Mutating after the send does not change what was sent.
	t.a = 999
	local msg = process.inbox():receive()
	local theirs = msg:payload():data()
	assert(theirs.seen_a == 1, "the receiver saw a = " .. tostring(theirs.seen_a))
	assert(theirs.seen_s == "bytes\0here", "string bytes changed")
	assert(theirs.seen_10 == true, "numeric key lost")
	-- The receiver's mutations do not reach the sender.
	assert(theirs.list[4] == 4 and theirs.nested.x.y == "changed")
	assert(t.a == 999 and #t.list == 3 and t.nested.x.y == "z", "the sender's table changed")

	-- A table used twice is not a cycle: both places get a copy.
	local shared = { 1 }
	assert(process.send(child, "echo", { p = shared, q = shared }) == true)
	local back = process.inbox():receive():payload():data()
	assert(back.p[1] == 1 and back.q[1] == 1)

	-- Refused at send, with an error.
	local okf, errf = pcall(process.send, child, "f", function() end)
	assert(not okf and errf ~= nil, "sending a function must raise")
	local okn = pcall(process.send, child, "f", { inner = { fn = print } })
	assert(not okn, "sending a nested function must raise")
	local okc = pcall(process.send, child, "f", coroutine.create(function() end))
	assert(not okc, "sending a coroutine must raise")
	local cyc = {}
	cyc.self = cyc
	local okcy, errcy = pcall(process.send, child, "c", cyc)
	assert(not okcy and errcy ~= nil, "sending a cyclic table must raise")
	local deep = { a = { b = {} } }
	deep.a.b.c = deep
	assert(not pcall(process.send, child, "c", deep), "sending an indirect cycle must raise")

	-- The refused sends delivered nothing: the next message is the echo.
	process.send(child, "echo", "after")
	assert(process.inbox():receive():payload():data() == "after")
	process.send(child, "stop")
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "mutator.lua",
        r#"
local function main(parent: string)
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		local topic = msg:topic()
		if topic == "stop" then
			return
		elseif topic == "t" then
			local t = msg:payload():data()
			local seen_a = t.a
			t.a = 100
			table.insert(t.list, 4)
			t.nested.x.y = "changed"
			t.seen_a = seen_a
			t.seen_s = t.s
			t.seen_10 = t[10]
			process.send(parent, "back", t)
		elseif topic == "echo" then
			process.send(parent, "echo", msg:payload():data())
		else
			error("unexpected topic " .. topic)
		end
	end
end
return { main = main }
"#,
    ),
];

const MESSAGE_OBJECT: &[(&str, &str)] = &[(
    "case.lua",
    r#"
local function main()
	local me = process.pid()
	local inbox = process.inbox()
	process.send(me, "multi", { a = 1 }, 2)
	process.send(me, "one", { list = { 1, 2 } })
	process.send(me, "none")

	local multi = inbox:receive()
	assert(typeof(multi) == "message", "typeof " .. typeof(multi))
	assert(multi:topic() == "multi" and multi:from() == me)
	local parts = multi:payload()
	assert(#parts == 2 and parts[1]:data().a == 1 and parts[2]:data() == 2, "payload objects")
	local all = multi:data()
	assert(all[1].a == 1 and all[2] == 2, "data of several payloads")
	assert(getmetatable(parts[1]) == false, "the payload metatable is visible")
	-- A payload of several is sent on as its value too.
	process.send(me, "part", parts[2])

	-- Each data() is a fresh copy: changing one does not change the next.
	local one = inbox:receive()
	local first = one:payload():data()
	first.list[1] = 99
	assert(one:data().list[1] == 1, "data() handed out a shared table")

	local none = inbox:receive()
	assert(none:payload() == nil and none:data() == nil, "a message without payload")

	-- A Payload can be sent on as it is: the receiver gets its data.
	process.send(me, "forward", one:payload())
	assert(inbox:receive():payload():data() == 2, "a forwarded part of several payloads")
	local forwarded = inbox:receive():payload():data()
	assert(forwarded.list[1] == 1 and forwarded.list[2] == 2, "a forwarded payload")

	-- The methods are shared by every process of a shard: nobody may reach or change them.
	assert(getmetatable(one) == false, "the metatable is visible")
	local ok, err = pcall(one.topic, {})
	assert(not ok and string.find(err, "non%-message"), tostring(err))
	assert(not pcall(function() one.topic = nil end), "a message took a field")
	return "ok"
end
return { main = main }
"#,
)];

// An entry's chunk normally runs to its end and its function is then called on a fresh frame;
// a chunk that waits or is preempted at its top level must still get its arguments, in order.
const WAITING_CHUNK: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local function main()
	local me = process.pid()
	local waiting = process.spawn("app:waits_at_top", "app:processes", me, "a", { n = 2 }, 3)
	local busy = process.spawn("app:busy_at_top", "app:processes", me, "b", 5)
	process.send(waiting, "go", "first")
	local inbox = process.inbox()
	local got = {}
	for _ = 1, 2 do
		local msg = inbox:receive()
		got[msg:topic()] = msg:payload():data()
	end
	assert(got.waited == "first a 2 3", "waiting chunk: " .. tostring(got.waited))
	assert(got.busy == "b 5", "busy chunk: " .. tostring(got.busy))
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "waits_at_top.lua",
        r#"
-- Waits for a message before the module is even built.
local first = process.inbox():receive():payload():data()
local function main(parent: string, a: string, t, c: number)
	process.send(parent, "waited", string.format("%s %s %d %d", first, a, t.n, c))
end
return { main = main }
"#,
    ),
    (
        "busy_at_top.lua",
        r#"
-- Runs long enough at its top level to be preempted there.
local x = 0
for i = 1, 3000000 do
	x += i % 3
end
local function main(parent: string, b: string, n: number)
	assert(x > 0)
	process.send(parent, "busy", b .. " " .. n)
end
return { main = main }
"#,
    ),
];

// A program can rebuild a table that looks like another process's inbox (its PID gives the slot)
// and call the inbox's own `receive` on it: it must only ever reach its own mailbox.
// A program can rebuild a table that looks like another process's inbox (its PID gives the slot)
// and call the inbox's own `receive` on it: it must only ever reach its own mailbox, and stay
// itself. The metatables it reaches are shared by its shard's processes: it cannot change them.
const FORGED_INBOX: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local function main()
	local me = process.pid()
	local inbox = process.inbox()
	local victim = process.spawn("app:holder", "app:processes", me)
	assert(inbox:receive():topic() == "ready")
	-- The victim waits on its inbox now; this message waits for it in its mailbox.
	process.send(victim, "secret", "not yours")
	process.send(me, "mine", "own")
	local slot = tonumber(string.match(victim, "|0x(%x+)}"), 16) % 2 ^ 32
	local mt = getmetatable(inbox)
	assert(type(mt) == "table", "no metatable to forge with")
	local forged = setmetatable({ n = 0, bh = 1, ext = true, inbox = { token = slot } }, mt)
	-- A table made to look like a channel is none: refused, and nothing is taken.
	local ok_forged, err_forged = pcall(mt.__index.receive, forged)
	assert(not ok_forged and string.find(err_forged, "not a channel"), tostring(err_forged))
	assert(process.pid() == me, "the running process changed")
	assert(inbox:receive():topic() == "mine", "the caller's own message is still there")
	-- Called without a channel, the inbox's receive says so, at the caller's line.
	local ok_nil, err_nil = pcall(inbox.receive)
	assert(not ok_nil and string.find(err_nil, "not a channel"), tostring(err_nil))
	-- Nor can it change the methods every process of its shard shares.
	assert(not pcall(function() mt.__index.receive = function() end end), "the inbox's methods changed")
	local channel_mt = getmetatable(channel.new(1))
	assert(not pcall(function() channel_mt.send = function() end end), "a channel's methods changed")
	-- The victim still gets its message.
	assert(inbox:receive():payload():data() == "not yours", "the victim lost its message")
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "holder.lua",
        r#"
local function main(parent: string)
	process.send(parent, "ready", true)
	local msg = process.inbox():receive()
	process.send(parent, "got", msg:payload():data())
end
return { main = main }
"#,
    ),
];

lua_cases! {
    a_forged_inbox_reaches_only_the_callers_own_mailbox_and_methods_stay_fixed:
        files FORGED_INBOX, args no_args, expect ok;
    chunks_that_wait_or_are_preempted_at_top_level_get_their_arguments:
        files WAITING_CHUNK, args no_args, expect ok;
    payloads_are_deep_copies_and_functions_and_cycles_are_refused:
        files PAYLOAD, args no_args, expect ok;
    messages_copy_their_payload_on_each_read_and_keep_their_methods_private:
        files MESSAGE_OBJECT, args no_args, expect ok;
}

// ---------------------------------------------------------------------------
// Channels and time
// ---------------------------------------------------------------------------

const CHANNELS: &[(&str, &str)] = &[(
    "case.lua",
    r#"
local time = require("time")

local function main()
	-- Unbuffered: a spawned coroutine sends, the main coroutine receives, then close.
	local ch = channel.new()
	local done = channel.new(1)
	coroutine.spawn(function()
		for i = 1, 3 do
			ch:send(i)
		end
		ch:close()
		done:send("sender done")
	end)
	local got = {}
	while true do
		local v, ok = ch:receive()
		if not ok then
			break
		end
		got[#got + 1] = v
	end
	assert(#got == 3 and got[1] == 1 and got[2] == 2 and got[3] == 3, "unbuffered: got " .. #got)
	assert(done:receive() == "sender done")
	local v, ok = ch:receive()
	assert(v == nil and ok == false, "receive on a closed channel")

	-- Unbuffered send blocks until a receiver takes the value.
	local u = channel.new()
	local steps = {}
	coroutine.spawn(function()
		steps[#steps + 1] = "send"
		u:send("x")
		steps[#steps + 1] = "sent"
	end)
	local r0 = channel.select({ u:case_receive(), default = true })
	-- The spawned coroutine has not run yet or is blocked in send; either way receive completes.
	if r0.default then
		assert(u:receive() == "x")
	else
		assert(r0.value == "x")
	end

	-- Buffered: sends complete up to the capacity, then a send would block.
	local b = channel.new(2)
	b:send("a")
	b:send("b")
	local full = channel.select({ b:case_send("c"), default = true })
	assert(full.default == true, "a full channel accepted a send")
	assert(b:receive() == "a" and b:receive() == "b")

	-- A buffered channel is drained before receive reports closed.
	local d = channel.new(2)
	d:send(1)
	d:close()
	local v1, ok1 = d:receive()
	assert(v1 == 1 and ok1 == true)
	local v2, ok2 = d:receive()
	assert(v2 == nil and ok2 == false)
	assert(not pcall(d.send, d, 2), "send on a closed channel must raise")
	assert(not pcall(d.close, d), "closing twice must raise")

	-- Select with default on an empty channel.
	local e = channel.new()
	local r = channel.select({ e:case_receive(), default = true })
	assert(r.default == true)

	-- Select over a timer and a channel: a ready channel wins...
	local c2 = channel.new(1)
	c2:send(42)
	r = channel.select({ time.after("1s"):case_receive(), c2:case_receive() })
	assert(r.channel == c2 and r.value == 42 and r.ok == true)
	-- ...and the timer fires when the channel stays empty.
	local timer = time.after("10ms")
	r = channel.select({ e:case_receive(), timer:case_receive() })
	assert(r.channel == timer and r.ok == true, "timer did not win")

	-- A coroutine that sends later wakes a select.
	local late = channel.new()
	coroutine.spawn(function()
		time.sleep("5ms")
		late:send("late")
	end)
	r = channel.select({ late:case_receive(), time.after("10s"):case_receive() })
	assert(r.channel == late and r.value == "late")

	-- Select on a send case completes when a receiver shows up.
	local s = channel.new()
	local received = channel.new(1)
	coroutine.spawn(function()
		received:send(s:receive())
	end)
	r = channel.select({ s:case_send("hello") })
	assert(r.channel == s and r.ok == true)
	assert(received:receive() == "hello")
	return "ok"
end
return { main = main }
"#,
)];

const TIME: &[(&str, &str)] = &[(
    "case.lua",
    r#"
local time = require("time")

local function main()
	local t0 = os.clock()
	time.sleep("20ms")
	local slept = os.clock() - t0
	assert(slept >= 0.019, "sleep('20ms') took " .. slept .. " s")

	t0 = os.clock()
	time.sleep(5000000) -- nanoseconds
	slept = os.clock() - t0
	assert(slept >= 0.0045, "sleep(5000000) took " .. slept .. " s")

	for _, d in ipairs({ 0, "0s", -1, "-5ms" }) do
		local ok = pcall(time.sleep, d)
		assert(not ok, "time.sleep(" .. tostring(d) .. ") must raise")
	end
	assert(not pcall(time.sleep, "soon"), "an unparsable duration must raise")

	-- A compound duration parses; stopping its timer works.
	local t = time.timer("1m30s")
	assert(t:stop() == true)
	return "ok"
end
return { main = main }
"#,
)];

lua_cases! {
    channel_semantics:
        files CHANNELS, args no_args, expect ok;
    time_sleep_strings_nanoseconds_and_zero:
        files TIME, args no_args, expect ok;
}

// ---------------------------------------------------------------------------
// listen / unlisten
// ---------------------------------------------------------------------------

const LISTEN: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local function main()
	local me = process.pid()
	local data = process.listen("data")
	assert(process.listen("data") == data, "listen must return the same channel")
	local inbox = process.inbox()
	assert(process.inbox() == inbox, "inbox must return the same channel")

	local talker = process.spawn("app:talker", "app:processes", me)
	-- The talker sends "data" {x = 1}, then "other" "o".
	local v = data:receive()
	assert(type(v) == "table" and v.x == 1, "listen must give the raw payload")
	local m = inbox:receive()
	assert(m:topic() == "other" and m:payload():data() == "o" and m:from() == talker)

	-- Message objects with {message = true}.
	local rich = process.listen("rich", { message = true })
	process.send(me, "rich", 5)
	local rm = rich:receive()
	assert(rm:topic() == "rich" and rm:from() == me and rm:payload():data() == 5)

	-- After unlisten the topic goes to the inbox.
	assert(process.unlisten(data) == true)
	process.send(me, "data", 7)
	m = inbox:receive()
	assert(m:topic() == "data" and m:payload():data() == 7, "unlistened topic did not reach the inbox")

	-- Several payloads, and none.
	process.send(me, "multi", 1, "two")
	m = inbox:receive()
	local ps = m:payload()
	assert(#ps == 2 and ps[1]:data() == 1 and ps[2]:data() == "two", "several payloads")
	process.send(me, "none")
	m = inbox:receive()
	assert(m:topic() == "none" and m:payload() == nil, "no payload")
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "talker.lua",
        r#"
local function main(to: string)
	process.send(to, "data", { x = 1 })
	process.send(to, "other", "o")
end
return { main = main }
"#,
    ),
];

lua_cases! {
    listen_gets_raw_payloads_and_unlisten_returns_topic_to_inbox:
        files LISTEN, args no_args, expect ok;
}

// ---------------------------------------------------------------------------
// Monitors, links, registry, send errors, deadlock
// ---------------------------------------------------------------------------

const MONITOR: &[(&str, &str)] = &[(
    "case.lua",
    r#"
local function main()
	local events = process.events()
	assert(process.events() == events)

	local bad = process.spawn_monitored("app:fails", "app:processes")
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == bad, "EXIT of the failing child")
	assert(type(ev.result.error) == "string" and string.find(ev.result.error, "child failed on purpose", 1, true), tostring(ev.result.error))

	local good = process.spawn_monitored("app:returns", "app:processes", 21)
	ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == good, "EXIT of the returning child")
	assert(ev.result.value == 42 and ev.result.error == nil, "result.value " .. tostring(ev.result.value))

	-- Monitoring a dead PID gives EXIT with noproc at once.
	assert(process.monitor(good) == true)
	ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == good and ev.result.error == "noproc", tostring(ev.result.error))

	-- Monitor a live process, then terminate it.
	local sleeper = process.spawn("app:sleeper", "app:processes")
	assert(process.monitor(sleeper) == true)
	assert(process.terminate(sleeper) == true)
	ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == sleeper and ev.result.error == "terminated", tostring(ev.result.error))

	-- process.exec
	local v, err = process.exec("app:returns", "app:processes", 5)
	assert(v == 10, tostring(err))
	v, err = process.exec("app:fails", "app:processes")
	assert(v == nil and string.find(err, "child failed on purpose", 1, true))
	return "ok"
end
return { main = main }
"#,
)];

const LINK: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local function main()
	local events = process.events()
	-- Without trap_links the parent dies with the child.
	local p = process.spawn_monitored("app:link_parent", "app:processes", "no_trap")
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == p)
	local err = ev.result.error
	assert(type(err) == "string" and string.find(err, "linked process failed", 1, true), "untrapped: " .. tostring(err or ev.result.value))

	-- With trap_links the parent gets LINK_DOWN on events().
	local v, e = process.exec("app:link_parent", "app:processes", "trap")
	assert(v == "trapped", "trapped: " .. tostring(e))

	-- A normal exit of a linked child sends no LINK_DOWN.
	v, e = process.exec("app:link_parent", "app:processes", "normal")
	assert(v == "no link down", "normal: " .. tostring(e))
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "link_parent.lua",
        r#"
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
"#,
    ),
];

const NAMES: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local function main()
	local me = process.pid()
	local inbox = process.inbox()
	local events = process.events()
	assert(process.registry.register("case.me") == true)
	assert(process.registry.register("case.me") == true, "re-registering one's own name is fine")
	assert(process.registry.lookup("case.me") == me)
	assert(process.send("case.me", "hi", 1) == true)
	local m = inbox:receive()
	assert(m:topic() == "hi" and m:payload():data() == 1)

	-- A child takes a name; others cannot; the name is released when the child ends.
	local child = process.spawn_monitored("app:namer", "app:processes", "case.child", me)
	m = inbox:receive()
	assert(m:topic() == "registered")
	assert(process.registry.lookup("case.child") == child)
	local okr, errr = process.registry.register("case.child")
	assert(okr == nil and type(errr) == "string", "took a live process's name")
	assert(process.send("case.child", "quit") == true)
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == child and ev.result.value == "bye")
	local pid, errl = process.registry.lookup("case.child")
	assert(pid == nil and type(errl) == "string", "the name outlived its process")
	local oks, errs = process.send("case.child", "x")
	assert(oks == nil and type(errs) == "string", "send to a released name")

	-- Free again: register, unregister.
	assert(process.registry.register("case.child") == true)
	assert(process.registry.unregister("case.child") == true)
	assert(process.registry.unregister("case.child") == false)
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "namer.lua",
        r#"
local function main(name: string, parent: string)
	assert(process.registry.register(name) == true)
	process.send(parent, "registered", name)
	local inbox = process.inbox()
	while true do
		if inbox:receive():topic() == "quit" then
			return "bye"
		end
	end
end
return { main = main }
"#,
    ),
];

const SEND_ERRORS: &[(&str, &str)] = &[(
    "case.lua",
    r#"
local function main()
	local child = process.spawn_monitored("app:returns", "app:processes", 1)
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.from == child)
	local ok, err = process.send(child, "x", 1)
	assert(ok == nil and type(err) == "string" and #err > 0, "send to a dead pid: " .. tostring(ok))
	local okn, errn = process.send("no.such.name", "x", 1)
	assert(okn == nil and type(errn) == "string", "send to an unknown name")
	-- A topic is checked whenever it differs from the last one sent on, so a reserved or
	-- non-string topic raises after valid sends too, and every time.
	assert(process.send(process.pid(), "x", 1) == true, "a send to itself")
	for _ = 1, 2 do
		local raised = pcall(process.send, process.pid(), "@system", 1)
		assert(not raised, "a topic starting with @ must raise")
	end
	assert(not pcall(process.send, process.pid(), 42, 1), "a topic must be a string")
	assert(process.send(process.pid(), "x", 2) == true, "the last valid topic again")
	return "ok"
end
return { main = main }
"#,
)];

const DEADLOCK: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local function main()
	-- Waiting on a local channel that a sleeping coroutine will fill is not a deadlock.
	local v, err = process.exec("app:late_sender", "app:processes")
	assert(v == "late", "late sender: " .. tostring(err))
	-- Nobody can ever send: deadlock.
	v, err = process.exec("app:stuck", "app:processes")
	assert(v == nil and type(err) == "string", "stuck returned " .. tostring(v))
	assert(string.find(err, "deadlock", 1, true), "stuck: " .. err)
	-- Two coroutines waiting on each other: deadlock too.
	v, err = process.exec("app:stuck_pair", "app:processes")
	assert(v == nil and string.find(err, "deadlock", 1, true), "stuck pair: " .. tostring(err))
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "stuck.lua",
        r#"
local function main()
	local ch = channel.new()
	ch:receive()
	return "unreachable"
end
return { main = main }
"#,
    ),
    (
        "stuck_pair.lua",
        r#"
local function main()
	local a, b = channel.new(), channel.new()
	coroutine.spawn(function()
		a:receive()
		b:send(1)
	end)
	b:receive()
	a:send(1)
	return "unreachable"
end
return { main = main }
"#,
    ),
    (
        "late_sender.lua",
        r#"
local time = require("time")
local function main()
	local ch = channel.new()
	coroutine.spawn(function()
		time.sleep("10ms")
		ch:send("late")
	end)
	return ch:receive()
end
return { main = main }
"#,
    ),
];

lua_cases! {
    monitor_events_and_noproc:
        files MONITOR, args no_args, expect ok;
    links_kill_unless_trapped:
        files LINK, args no_args, expect ok;
    registry_names:
        files NAMES, args no_args, expect ok;
    send_to_dead_pid_and_reserved_topic:
        files SEND_ERRORS, args no_args, expect ok;
    blocked_forever_is_a_deadlock_error:
        files DEADLOCK, args no_args, expect ok;
}

/// The deadlock error also ends the entry that `wisp exec` runs (on the terminal host).
#[test]
fn deadlocked_entry_fails() {
    let result = run_app(
        &[("main.lua", "local function main()\n\tchannel.new():receive()\nend\nreturn { main = main }\n")],
        Vec::new(),
    );
    check("deadlocked_entry_fails", result, &Expect::Error(&["deadlock"]));
}

// ---------------------------------------------------------------------------
// A native Rust process talking to Lua
// ---------------------------------------------------------------------------

/// Answers `ping` with `pong` and the same payloads; ends on `stop` with the number of pings.
struct Echo {
    pings: u32,
}

impl Process for Echo {
    fn handle(&mut self, cx: &mut Context<'_>, envelope: Envelope) -> Step {
        match envelope {
            Envelope::Message(msg) => match &*msg.topic {
                "ping" => {
                    self.pings += 1;
                    if let Some(from) = msg.from {
                        let _ = cx.send(from, "pong", msg.payloads);
                    }
                    Step::Wait
                }
                "stop" => Step::Done(ExitResult::Value(Value::Number(self.pings as f64))),
                other => Step::Done(ExitResult::Error(format!("echo: unexpected topic {other}"))),
            },
            _ => Step::Wait,
        }
    }
}

const NATIVE: &[(&str, &str)] = &[(
    "main.lua",
    r#"
local time = require("time")

-- Receives from ch, or fails naming what it waited for.
local function recv(ch, what: string)
	local r = channel.select({ ch:case_receive(), time.after("10s"):case_receive() })
	if r.channel ~= ch then
		error("timed out waiting for " .. what, 2)
	end
	return r.value
end

local function main()
	local echo = process.spawn_monitored("app:echo", "app:processes")
	assert(type(echo) == "string", "spawn of the native process: " .. tostring(echo))
	local inbox = process.inbox()
	for i = 1, 3 do
		assert(process.send(echo, "ping", { n = i, text = "hello" }) == true)
		local m = recv(inbox, "pong " .. i)
		assert(m:topic() == "pong" and m:from() == echo, "reply from " .. tostring(m:from()))
		local t = m:payload():data()
		assert(t.n == i and t.text == "hello")
	end
	process.send(echo, "stop")
	local ev = recv(process.events(), "EXIT of the native process")
	assert(ev.kind == process.event.EXIT and ev.from == echo and ev.result.value == 3, tostring(ev.result.error))
	return "ok"
end
return { main = main }
"#,
)];

#[test]
fn native_rust_process_answers_lua() {
    let result = run_app_with(NATIVE, Vec::new(), |b| b.native("app:echo", |_args| Box::new(Echo { pings: 0 })));
    check("native_rust_process_answers_lua", result, &ok());
}

const SPAWNER: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local ctx = require("ctx")
local uuid = require("uuid")
local function main()
	local inbox = process.inbox()
	local events = process.events()

	-- with_context: the child reads it with ctx; its own spawns inherit it unless overridden.
	local base = process.with_context({ tenant = "t1", level = 1 })
	local child = base:with_context({ level = 2 }):spawn_monitored("app:reads_ctx", "app:processes", process.pid())
	local msg = inbox:receive()
	assert(msg:topic() == "ctx", msg:topic())
	local got = msg:payload():data()
	assert(got.tenant == "t1" and got.level == 2 and got.inherited_tenant == "t1", "context seen by child and grandchild")
	assert(events:receive().from == child)

	-- with_name + with_message: spawns once, then finds the live process and delivers to it.
	local named = process.with_name("the-collector"):with_message("hello", 1)
	local a = named:spawn("app:collector", "app:processes", process.pid())
	local b = named:with_message("hello", 2):spawn("app:collector", "app:processes", process.pid())
	assert(a == b, "with_name reuses the live process: " .. tostring(a) .. " " .. tostring(b))
	assert(process.registry.lookup("the-collector") == a)
	process.send(a, "report")
	local report = inbox:receive():payload():data()
	assert(report == "hello:1,hello:1,hello:2", tostring(report))

	-- spawners are immutable
	local s1 = process.with_context({ x = 1 })
	local s2 = s1:with_context({ x = 2 })
	assert(s1 ~= s2)

	local ok_ctx, no = ctx.get("missing")
	assert(ok_ctx == nil and type(no) == "string")
	local id4, id7 = uuid.v4(), uuid.v7()
	assert(#id4 == 36 and #id7 == 36 and id4 ~= id7)
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "reads_ctx.lua",
        r#"
local ctx = require("ctx")
local function main(parent)
	local all = ctx.all()
	local inherited = process.exec("app:grandchild", "app:processes")
	all.inherited_tenant = inherited
	process.send(parent, "ctx", all)
end
return { main = main }
"#,
    ),
    (
        "grandchild.lua",
        r#"
local ctx = require("ctx")
local function main()
	return (ctx.get("tenant"))
end
return { main = main }
"#,
    ),
    (
        "collector.lua",
        r#"
local function main(parent)
	local seen = {}
	local inbox = process.inbox()
	while true do
		local m = inbox:receive()
		if m:topic() == "report" then
			process.send(parent, "report", table.concat(seen, ","))
			return
		end
		seen[#seen + 1] = m:topic() .. ":" .. tostring(m:payload():data())
	end
end
return { main = main }
"#,
    ),
];

lua_cases! {
    spawner_context_name_and_messages:
        files SPAWNER, args no_args, expect ok;
}

const WIPPY_EXTRAS: &[(&str, &str)] = &[
    (
        "case.lua",
        r#"
local time = require("time")
local security = require("security")
local function main()
	-- type casts
	assert(string("x") == "x" and string(5) == "5")
	assert(integer("7") == 7 and number("2.5") == 2.5 and boolean(true) == true)
	assert(not pcall(integer, 2.5) and not pcall(boolean, "yes") and not pcall(string, {}))
	-- select default carries ok = true
	local r = channel.select({ channel.new(0):case_receive(), default = true })
	assert(r.default == true and r.ok == true)
	-- duration constants in nanoseconds
	assert(time.MILLISECOND == 1e6 and time.SECOND == 1e9)
	time.sleep(2 * time.MILLISECOND)
	-- actors and scopes pass to children and are inherited by theirs
	assert(security.actor() == nil)
	local actor = security.new_actor("user-1", { role = "admin" })
	local scope = security.new_scope({ { id = "p", actions = { "data.*" }, resources = { "*" }, effect = "allow" } })
	local got = process.with_actor(actor):with_scope(scope):spawn_monitored("app:who", "app:processes", process.pid())
	local seen = process.inbox():receive():payload():data()
	assert(seen.id == "user-1" and seen.role == "admin" and seen.grandchild == "user-1", "actor seen")
	assert(seen.can_read == true and seen.can_write == false, "scope judged")
	assert(process.events():receive().from == got)
	return "ok"
end
return { main = main }
"#,
    ),
    (
        "who.lua",
        r#"
local security = require("security")
local function main(parent)
	local a = security.actor()
	process.send(parent, "who", {
		id = a:id(),
		role = a:meta().role,
		grandchild = process.exec("app:who_inner", "app:processes"),
		can_read = security.can("data.read", "x"),
		can_write = security.can("admin.write", "x"),
	})
end
return { main = main }
"#,
    ),
    (
        "who_inner.lua",
        r#"
local security = require("security")
return { main = function() return security.actor():id() end }
"#,
    ),
];

lua_cases! {
    casts_select_default_durations_and_security:
        files WIPPY_EXTRAS, args no_args, expect ok;
}

// ---------------------------------------------------------------------------
// One row of the process semantics per case: each `case.lua` runs on the process host and
// returns "ok" when the row holds.
// ---------------------------------------------------------------------------

macro_rules! semantics_rows {
    ($($name:ident: $source:expr;)*) => {
        $(
            #[test]
            fn $name() {
                let files: &[(&str, &str)] = &[("case.lua", $source), ("helpers.lua", SEMANTICS_HELPERS)];
                check(stringify!($name), run_app(files, no_args()), &ok());
            }
        )*
    };
}

/// Small processes the rows spawn.
const SEMANTICS_HELPERS: &str = r#"
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
"#;

semantics_rows! {
    a_parked_process_resumed_from_rust_can_be_preempted_and_park_again: r#"
local function main()
	local child = process.spawn_monitored("app:helpers", "app:processes", "busy_after_park", process.pid())
	local inbox = process.inbox()
	local expected = 0
	for i = 1, 2000000 do
		expected += i % 7
	end
	for _ = 1, 3 do
		assert(process.send(child, "n", 2000000))
		local got = inbox:receive():payload():data()
		assert(got == expected, "got " .. tostring(got))
	end
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.result.value == "busy done", tostring(ev.result.error))
	return "ok"
end
return { main = main }
"#;
    a_coroutine_other_than_main_receives_from_the_inbox: r#"
local function main()
	local child = process.spawn_monitored("app:helpers", "app:processes", "inbox_in_coroutine")
	for i = 1, 3 do
		assert(process.send(child, "n", i * 10))
	end
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.result.value == 60, tostring(ev.result.error or ev.result.value))
	return "ok"
end
return { main = main }
"#;
    processes_started_on_reused_threads_see_fresh_globals: r#"
local function main()
	-- One after another, so each can start on the thread the previous one ended on.
	for i = 1, 200 do
		local v, err = process.exec("app:helpers", "app:processes", "fresh_globals")
		assert(v == "fresh", "process " .. i .. ": " .. tostring(err))
	end
	return "ok"
end
return { main = main }
"#;
    terminate_reaches_a_parked_process: r#"
local function main()
	local child = process.spawn_monitored("app:sleeper", "app:processes")
	-- a round trip through another process so the sleeper has surely parked
	assert(process.exec("app:returns", "app:processes", 1) == 2)
	assert(process.send(child, "wake", 1))
	assert(process.terminate(child) == true)
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.result.error == "terminated", tostring(ev.result.error))
	return "ok"
end
return { main = main }
"#;
}

/// Assigns no global: its processes read the shard's globals directly, with no table of their own.
const GLOBALS_READER: &str = r#"
local function main()
	return leaked_global == nil and type(string.format) == "function"
end
return { main = main }
"#;

#[test]
fn code_that_assigns_no_global_never_sees_another_process_global() {
    let case = r#"
local function main()
	-- Writers and readers in turn, each started after the one before ended: they run on
	-- reused threads.
	for i = 1, 100 do
		local v, err = process.exec("app:helpers", "app:processes", "fresh_globals")
		assert(v == "fresh", "writer " .. i .. ": " .. tostring(err))
		local seen, err2 = process.exec("app:reader", "app:processes")
		assert(seen == true, "reader " .. i .. ": " .. tostring(seen) .. " " .. tostring(err2))
	end
	return "ok"
end
return { main = main }
"#;
    let files: &[(&str, &str)] =
        &[("case.lua", case), ("helpers.lua", SEMANTICS_HELPERS), ("reader.lua", GLOBALS_READER)];
    check("code_that_assigns_no_global_never_sees_another_process_global", run_app(files, no_args()), &ok());
}

semantics_rows! {
    argument_errors_name_the_calling_line: r#"
local time = require("time")
local function main()
	local cases = {
		{ function() process.spawn(nil, "app:processes") end, "process.spawn: the entry must be a string" },
		{ function() process.send(nil, "t") end, "process.send: destination must be a PID or a name" },
		{ function() process.send(process.pid(), "t", print) end, "process.send: cannot send a function" },
		{ function() time.sleep(0) end, "duration must be positive" },
		{ function() process.set_options({ bogus = 1 }) end, "process.set_options: unknown option `bogus`" },
	}
	for i, case in cases do
		local ok, err = pcall(case[1])
		assert(not ok, "case " .. i .. " raised")
		local text = tostring(err)
		assert(string.find(text, case[2], 1, true), "case " .. i .. ": " .. text)
	end
	-- The EXIT of a process that dies of such an error names its file and line, not the runtime's.
	local child = process.spawn_monitored("app:helpers", "app:processes", "bad_options")
	local ev = process.events():receive()
	assert(ev.from == child)
	assert(string.match(ev.result.error, "helpers%.lua:%d+: process%.set_options: unknown option"), ev.result.error)
	return "ok"
end
return { main = main }
"#;
    cancel_delivers_its_reason: r#"
local function main()
	local child = process.spawn_monitored("app:helpers", "app:processes", "cancellable")
	assert(process.cancel(child, "shutting down") == true)
	local ev = process.events():receive()
	assert(ev.kind == process.event.EXIT and ev.result.value == "shutting down", tostring(ev.result.value))
	return "ok"
end
return { main = main }
"#;
    no_exit_after_unmonitor: r#"
local time = require("time")
local function main()
	local child = process.spawn("app:sleeper", "app:processes")
	assert(process.monitor(child) == true)
	assert(process.unmonitor(child) == true)
	assert(process.terminate(child) == true)
	local r = channel.select({ process.events():case_receive(), time.after("100ms"):case_receive() })
	assert(r.channel ~= process.events(), "late EXIT after unmonitor")
	return "ok"
end
return { main = main }
"#;
    no_link_down_after_unlink: r#"
local time = require("time")
local function main()
	process.set_options({ trap_links = true })
	local child = process.spawn_linked("app:helpers", "app:processes", "fail_on_go")
	assert(process.unlink(child) == true)
	process.send(child, "go")
	local r = channel.select({ process.events():case_receive(), time.after("100ms"):case_receive() })
	assert(r.channel ~= process.events(), "late LINK_DOWN after unlink")
	return "ok"
end
return { main = main }
"#;
    return_nil_or_false_with_error_is_an_error_exit: r#"
local function main()
	local v, err = process.exec("app:helpers", "app:processes", "nil_err")
	assert(v == nil and err == "bad input", tostring(err))
	v, err = process.exec("app:helpers", "app:processes", "false_err")
	assert(v == nil and err == "refused", tostring(err))
	return "ok"
end
return { main = main }
"#;
    coroutines_end_when_main_returns: r#"
local function main()
	local v, err = process.exec("app:helpers", "app:processes", "leaves_coroutine")
	assert(v == "main done", tostring(err))
	return "ok"
end
return { main = main }
"#;
    unknown_options_are_refused: r#"
local function main()
	local ok, err = pcall(process.set_options, { trap_links = true, nope = 1 })
	assert(not ok and string.find(tostring(err), "unknown option", 1, true), tostring(err))
	local ok2 = pcall(process.set_options, { trap_links = "yes" })
	assert(not ok2, "trap_links must be a boolean")
	assert(process.get_options().trap_links == false, "a refused call changes nothing")
	return "ok"
end
return { main = main }
"#;
    linking_a_dead_process_fails: r#"
local function main()
	local child = process.spawn_monitored("app:returns", "app:processes", 1)
	assert(process.events():receive().from == child)
	local ok, err = process.link(child)
	assert(ok == nil and type(err) == "string", "link to a dead process")
	return "ok"
end
return { main = main }
"#;
    linked_error_exit_kills_untrapped_peer_with_its_pid: r#"
local function main()
	local parent = process.spawn_monitored("app:helpers", "app:processes", "link_to_failing")
	local ev = process.events():receive()
	assert(ev.from == parent)
	assert(string.match(ev.result.error, "^linked process failed: {app:processes|0x%x+}$"), ev.result.error)
	return "ok"
end
return { main = main }
"#;
}
