//! Process semantics under races, checked by Lua programs run on the runtime.
//!
//! Each case of `tests/races/` (the format is the shared harness's, `common/cases.rs`) runs a
//! race many times in one run, enough rounds that code with the race fails it on every run:
//! `exec` beside other readers of `events()`, concurrent `with_name` callers, `terminate` of
//! oneself, names bound to processes that are ending, `link` to the dead, waits on stopped
//! timers, spawns onto a busy terminal host, `select` among several ready cases.
//!
//! The two timer cases (`-- setup: rust`) bound a wait by the clock, so they have tests of
//! their own here, with sizes and bounds as arguments: how many timers are pending, how late a
//! sleep may be, and how much of its pace a loop may lose once its timers fire. The bounds are
//! loose (seconds where a correct runtime takes milliseconds, a sixth of the pace where it keeps
//! a third under a loaded machine, and code whose timers cost more with their number keeps a
//! twentieth); the figures themselves come from `cargo xtask bench`.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::cases::{Suite, TWO_WORKERS};
use wisp_core::Value;

const SUITE: Suite =
    Suite { folder: "races", default_timeout: Duration::from_secs(120), filter_env: "WISP_RACES_FILTER" };

/// Held by each test: the clock-bound timer cases never share the machine with the race cases'
/// rounds (libtest runs the tests of a binary at once).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn race_cases() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    SUITE.run_all(&TWO_WORKERS);
}

#[test]
fn timer_pace_with_many_timers_pending() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut case = SUITE.load("many_pending_timers_do_not_slow_a_sleep.lua");
    case.args = vec![Value::Number(200_000.0), Value::Number(2.0)];
    SUITE.run_checked(&case, |b| b);

    let mut case = SUITE.load("the_timeout_idiom_keeps_pace.lua");
    case.args = vec![Value::Number(5.0), Value::Number(0.15), Value::Number(1.0)];
    SUITE.run_checked(&case, |b| b);
}
