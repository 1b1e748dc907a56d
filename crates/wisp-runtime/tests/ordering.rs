//! Message ordering and loss, checked by Lua programs run on the runtime.
//!
//! The contract (docs/lua-api.md, "Messages"): messages from one sender to one receiver arrive
//! in the order sent, nothing is lost while both are alive, a send to a dead PID is `nil, err`,
//! and a monitor's EXIT comes after everything the process sent before it ended.
//!
//! The Lua programs are in `tests/ordering/`, one case per file or folder with its expected
//! outcome in a header comment, and `seq_sender.lua`, which every case's app has, in
//! `tests/ordering/common/`: the format, and how a case's app is made, are those of the shared
//! harness, `common/cases.rs` (`app:processes` has two workers). The cases are ordering and
//! stress checks the `#[test]`s here run with their own arguments, rounds and timeouts: Lua
//! checks what it can with `assert` and returns a summary string that Rust compares.

mod common;

use std::time::{Duration, Instant};

use common::cases::Suite;
use proptest::prelude::*;
use wisp_core::{ExitResult, Value};

const SUITE: Suite =
    Suite { folder: "ordering", default_timeout: Duration::from_secs(60), filter_env: "WISP_ORDERING_FILTER" };
/// The 8 x 100,000 case runs unoptimized Luau in debug builds.
const HEAVY_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs the case `name` with `args` (and `timeout`, if given) and returns the string it returned.
fn run_text(name: &str, args: Vec<Value>, timeout: Option<Duration>) -> String {
    let mut case = SUITE.load(name);
    case.args = args;
    case.timeout = timeout.unwrap_or(case.timeout);
    match SUITE.run_checked(&case, |b| b) {
        ExitResult::Value(Value::Str(s)) => String::from_utf8_lossy(&s).into_owned(),
        other => panic!("case {name}: expected a string value, got {other:?}"),
    }
}

/// `senders_arrive_in_order_and_complete.lua` run with `plan`.
fn run_plan(plan: &str, timeout: Option<Duration>) -> String {
    run_text("senders_arrive_in_order_and_complete.lua", vec![Value::str(plan)], timeout)
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
    let got = run_plan(&plan.join(","), Some(HEAVY_TIMEOUT));
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
        let got = run_plan(&text.join(","), None);
        prop_assert_eq!(got, summary(total));
    }
}

// ---------------------------------------------------------------------------
// Terminating a receiver in the middle of a stream
// ---------------------------------------------------------------------------

#[test]
fn terminated_receiver_handles_a_prefix_and_nothing_after_its_exit() {
    for round in 0..5 {
        let got = run_text("terminated_receiver_handles_a_prefix_and_nothing_after_its_exit/", Vec::new(), None);
        assert_eq!(got, "ok", "round {round}");
    }
}

// ---------------------------------------------------------------------------
// Messages sent just before an exit arrive before the EXIT
// ---------------------------------------------------------------------------

#[test]
fn messages_sent_before_an_exit_arrive_before_the_exit() {
    let got = run_text("messages_sent_before_an_exit_arrive_before_the_exit/", Vec::new(), None);
    assert_eq!(got, "ok 66");
}
