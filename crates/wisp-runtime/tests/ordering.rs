//! Message ordering and loss, checked by Lua programs run on the runtime.
//!
//! The contract (docs/lua-api.md, "Messages"): messages from one sender to one receiver arrive
//! in the order sent, nothing is lost while both are alive, a send to a dead PID is `nil, err`,
//! and a monitor's EXIT comes after everything the process sent before it ended.
//!
//! The harness is `common/mod.rs`: each case writes an app folder (one YAML registry plus Lua
//! files), builds a node and runs `app:main` on the terminal host; the default `main.lua` runs
//! `app:case` on `app:processes` (a process host with two workers).
//! Lua checks what it can with `assert` and returns a summary string that Rust compares.

mod common;

use std::time::{Duration, Instant};

use common::App;
use proptest::prelude::*;
use wisp_core::{ExitResult, Value};

const TIMEOUT: Duration = Duration::from_secs(60);
/// The 8 x 100,000 case runs unoptimized Luau in debug builds.
const HEAVY_TIMEOUT: Duration = Duration::from_secs(300);

/// Programs present in every app of this file.
const COMMON: &[(&str, &str)] = &[
    ("main.lua", common::DEFAULT_MAIN),
    (
        "seq_sender.lua",
        r#"
-- Sends `n` messages {id, seq} (seq = 1..n) to `to`, then {id, n} on topic "end".
-- With yield_every > 0 it gives its turn away every yield_every sends, to vary interleavings.
local function main(to: string, id: number, n: number, yield_every: number?)
	local every = yield_every or 0
	for i = 1, n do
		local ok, err = process.send(to, "n", id, i)
		if not ok then
			error("send " .. i .. " failed: " .. tostring(err))
		end
		if every > 0 and i % every == 0 then
			coroutine.yield()
		end
	end
	process.send(to, "end", id, n)
end
return { main = main }
"#,
    ),
];

const RECEIVER: &str = r#"
-- plan: "id:count:yield_every,..." in spawn order. Spawns one seq_sender per item, receives until
-- every sender said "end", then drains what is left. Returns a summary the test compares.
local function main(plan: string)
	local me = process.pid()
	local inbox = process.inbox()
	local expected, last, count, ended_ids = {}, {}, {}, {}
	local senders, want_total = 0, 0
	for id, n in string.gmatch(plan, "(%d+):(%d+):%d+") do
		id, n = tonumber(id), tonumber(n)
		expected[id], last[id], count[id] = n, 0, 0
		senders += 1
		want_total += n
	end
	for id, n, every in string.gmatch(plan, "(%d+):(%d+):(%d+)") do
		process.spawn("app:seq_sender", "app:processes", me, tonumber(id), tonumber(n), tonumber(every))
	end
	local total, reordered, after_end, ended, short = 0, 0, 0, 0, 0
	local function take(msg)
		local parts = msg:payload()
		local id, seq = parts[1]:data(), parts[2]:data()
		if msg:topic() == "n" then
			if ended_ids[id] then
				after_end += 1
			end
			if seq ~= last[id] + 1 then
				reordered += 1
			end
			last[id] = seq
			count[id] += 1
			total += 1
		else
			ended += 1
			ended_ids[id] = true
			if count[id] ~= expected[id] then
				short += 1
			end
		end
	end
	while ended < senders do
		take(inbox:receive())
	end
	-- Anything still queued is a duplicate or came after its sender's "end".
	while true do
		local r = channel.select({ inbox:case_receive(), default = true })
		if r.default then
			break
		end
		take(r.value)
	end
	return string.format(
		"total=%d lost=%d reordered=%d after_end=%d short=%d",
		total, want_total - total, reordered, after_end, short
	)
end
return { main = main }
"#;

fn run_app_timeout(files: &[(&str, &str)], args: Vec<Value>, timeout: Duration) -> ExitResult {
    App { common: COMMON, files, libraries: &[] }.run(args, timeout)
}

fn run_app(files: &[(&str, &str)], args: Vec<Value>) -> ExitResult {
    run_app_timeout(files, args, TIMEOUT)
}

fn text(name: &str, result: ExitResult) -> String {
    match result {
        ExitResult::Value(Value::Str(s)) => String::from_utf8_lossy(&s).into_owned(),
        other => panic!("case {name}: expected a string value, got {other:?}"),
    }
}

/// `receiver.lua` as `app:case`, run with `plan`.
fn run_plan(plan: &str, timeout: Duration) -> String {
    // The receiver is the case itself: main execs app:case, here receiver.lua.
    let files: &[(&str, &str)] = &[("case.lua", RECEIVER)];
    text(plan, run_app_timeout(files, vec![Value::str(plan)], timeout))
}

fn summary(total: usize) -> String {
    format!("total={total} lost=0 reordered=0 after_end=0 short=0")
}

// ---------------------------------------------------------------------------
// 8 senders x 100,000 messages into one receiver
// ---------------------------------------------------------------------------

#[test]
fn eight_senders_100k_each_arrive_in_order_and_complete() {
    const SENDERS: usize = 8;
    const N: usize = 100_000;
    let plan: Vec<String> = (1..=SENDERS).map(|id| format!("{id}:{N}:0")).collect();
    let started = Instant::now();
    let got = run_plan(&plan.join(","), HEAVY_TIMEOUT);
    let took = started.elapsed();
    eprintln!("8 x 100k ordering: {took:?}");
    assert_eq!(got, summary(SENDERS * N));
}

// ---------------------------------------------------------------------------
// Random small interleavings
// ---------------------------------------------------------------------------

/// (count, yield_every) per sender, in spawn order of a shuffled list of ids.
fn plans() -> impl Strategy<Value = Vec<(usize, usize, usize)>> {
    prop::collection::vec((1usize..=50, 0usize..=5), 1..=5).prop_flat_map(|senders| {
        let n = senders.len();
        Just((1..=n).collect::<Vec<usize>>()).prop_shuffle().prop_map(move |order| {
            order.iter().map(|&id| (id, senders[id - 1].0, senders[id - 1].1)).collect::<Vec<_>>()
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn random_interleavings_keep_per_sender_order_and_count(plan in plans()) {
        let total: usize = plan.iter().map(|(_, n, _)| n).sum();
        let text: Vec<String> = plan.iter().map(|(id, n, every)| format!("{id}:{n}:{every}")).collect();
        let got = run_plan(&text.join(","), TIMEOUT);
        prop_assert_eq!(got, summary(total));
    }
}

// ---------------------------------------------------------------------------
// Terminating a receiver in the middle of a stream
// ---------------------------------------------------------------------------

const KILL: &[(&str, &str)] = &[
    (
        "forwarder.lua",
        r#"
-- Forwards every number it handles to its parent, in the order handled.
local function main(parent: string)
	local inbox = process.inbox()
	while true do
		local msg = inbox:receive()
		if msg:topic() == "n" then
			process.send(parent, "handled", msg:payload():data())
		else
			process.send(parent, "late_handled", msg:payload():data())
		end
	end
end
return { main = main }
"#,
    ),
    (
        "flooder.lua",
        r#"
-- Sends 1, 2, 3, ... to `to` (10 per millisecond) until a send fails, then reports.
local time = require("time")
local function main(to: string, parent: string)
	for i = 1, 1000000 do
		local ok, err = process.send(to, "n", i)
		if not ok then
			assert(ok == nil, "a failed send returns nil, not " .. tostring(ok))
			local again, err2 = process.send(to, "n", i + 1)
			process.send(parent, "sender_done", {
				first_failed = i,
				err = tostring(err),
				again_nil = again == nil and err2 ~= nil,
			})
			return
		end
		if i % 10 == 0 then
			time.sleep("1ms")
		end
	end
	process.send(parent, "sender_done", { first_failed = -1, err = "never failed", again_nil = false })
end
return { main = main }
"#,
    ),
    (
        "case.lua",
        r#"
local KILL_AFTER = 100

local function main()
	local me = process.pid()
	local inbox, events = process.inbox(), process.events()
	local receiver = process.spawn_monitored("app:forwarder", "app:processes", me)
	process.spawn("app:flooder", "app:processes", receiver, me)

	local handled = {}
	local killed, exit_ev, report = false, nil, nil
	local after_exit, late_handled, late_sent = 0, 0, 0
	local function on_message(msg)
		local topic = msg:topic()
		if topic == "handled" then
			if exit_ev then
				after_exit += 1
			end
			handled[#handled + 1] = msg:payload():data()
			if not killed and #handled >= KILL_AFTER then
				assert(process.terminate(receiver) == true)
				killed = true
				-- These queue behind the terminate signal (same sender, same mailbox):
				-- they must never be handled, whether the send itself succeeds or not.
				for i = 1, 3 do
					if process.send(receiver, "late", i) then
						late_sent += 1
					end
				end
			end
		elseif topic == "late_handled" then
			late_handled += 1
		elseif topic == "sender_done" then
			report = msg:payload():data()
		else
			error("unexpected topic " .. topic)
		end
	end

	-- Inbox first: a select takes the first ready case, so an EXIT can only be seen before a
	-- forwarded number if the runtime delivered it earlier.
	while exit_ev == nil or report == nil do
		local r = channel.select({ inbox:case_receive(), events:case_receive() })
		if r.channel == inbox then
			on_message(r.value)
		else
			local ev = r.value
			assert(ev.kind == process.event.EXIT, "unexpected event " .. tostring(ev.kind))
			assert(ev.from == receiver, "EXIT from " .. tostring(ev.from))
			exit_ev = ev
		end
	end
	while true do
		local r = channel.select({ inbox:case_receive(), events:case_receive(), default = true })
		if r.default then
			break
		end
		assert(r.channel == inbox, "a second event")
		on_message(r.value)
	end

	assert(killed, "the receiver died before it was killed")
	assert(exit_ev.result.error == "terminated", "EXIT error: " .. tostring(exit_ev.result.error))
	assert(after_exit == 0, after_exit .. " forwarded numbers arrived after the EXIT")
	assert(late_handled == 0, late_handled .. " messages sent after terminate were handled")
	for i, n in handled do
		assert(n == i, "forwarded number " .. i .. " is " .. tostring(n) .. " (not a prefix 1..k in order)")
	end
	local k = #handled
	assert(k >= KILL_AFTER, "only " .. k .. " handled")
	assert(report.first_failed > k, "send " .. report.first_failed .. " failed, but " .. k .. " were handled")
	assert(string.find(report.err, "not found", 1, true), "send to a dead pid: " .. report.err)
	assert(report.again_nil, "a second send to the dead pid did not return nil, err")
	local ok, err = process.send(receiver, "n", -1)
	assert(ok == nil and err ~= nil, "send after EXIT returned " .. tostring(ok))
	assert(string.find(err, "not found", 1, true), "send after EXIT: " .. tostring(err))
	return "ok"
end
return { main = main }
"#,
    ),
];

#[test]
fn terminated_receiver_handles_a_prefix_and_nothing_after_its_exit() {
    for round in 0..5 {
        let got = text("kill", run_app(KILL, Vec::new()));
        assert_eq!(got, "ok", "round {round}");
    }
}

// ---------------------------------------------------------------------------
// Messages sent just before an exit arrive before the EXIT
// ---------------------------------------------------------------------------

const BEFORE_EXIT: &[(&str, &str)] = &[
    (
        "child.lua",
        r#"
-- Sends k numbered messages to its parent, then ends (normally, or with an error).
local function main(parent: string, k: number, fail: boolean)
	for i = 1, k do
		process.send(parent, "m", i)
	end
	if fail then
		error("child fails after sending")
	end
	return k
end
return { main = main }
"#,
    ),
    (
        "case.lua",
        r#"
-- For each k: spawn a monitored child that sends k messages and ends; wait for its EXIT, then
-- check that the k messages were all delivered before it, in order: they are in the inbox
-- already. (A select over both channels would pick among ready cases at random.)
local function round(k: number, fail: boolean)
	local inbox, events = process.inbox(), process.events()
	local child = process.spawn_monitored("app:child", "app:processes", process.pid(), k, fail)
	local ev = events:receive()
	assert(ev.kind == process.event.EXIT and ev.from == child, "unexpected event")
	if fail then
		assert(string.find(tostring(ev.result.error), "child fails after sending", 1, true))
	else
		assert(ev.result.value == k, "EXIT value " .. tostring(ev.result.value))
	end
	local seen = {}
	while true do
		local r = channel.select({ inbox:case_receive(), default = true })
		if r.default then
			break
		end
		seen[#seen + 1] = r.value:payload():data()
	end
	assert(#seen == k,
		string.format("k=%d fail=%s: %d messages before the EXIT", k, tostring(fail), #seen))
	for i = 1, k do
		assert(seen[i] == i, "message " .. i .. " is " .. tostring(seen[i]))
	end
end

local function main()
	local rounds = 0
	for _, k in { 1, 2, 10, 63, 64, 65, 200, 1000 } do
		round(k, false)
		round(k, true)
		rounds += 2
	end
	for _ = 1, 50 do
		round(20, false)
		rounds += 1
	end
	return "ok " .. rounds
end
return { main = main }
"#,
    ),
];

#[test]
fn messages_sent_before_an_exit_arrive_before_the_exit() {
    let got = text("before_exit", run_app(BEFORE_EXIT, Vec::new()));
    assert_eq!(got, "ok 66");
}
