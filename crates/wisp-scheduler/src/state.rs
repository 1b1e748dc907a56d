//! Per-task schedule state.
//!
//! Protocol (one `AtomicU8`, all transitions are read-modify-write so that the
//! release/acquire chain from a waker to the next run is never broken):
//!
//! ```text
//!            notify() -> true                  begin_run()
//!   Idle ───────────────────────▶ Scheduled ─────────────────▶ Running
//!    ▲                               ▲  ▲                        │   │
//!    │ end_run(false)                │  │ end_run(true)          │   │ notify() -> false
//!    └───────────────────────────────┼──┴────────────────────────┘   ▼
//!                                    └─────── end_run(_) ─── RunningNotified
//! ```
//!
//! * `notify` returns `true` only on `Idle -> Scheduled`, so exactly one waker
//!   queues the task. In every other state it returns `false`: `Scheduled` is
//!   already queued (the coming run will see the waker's data), and a notify during
//!   `Running` is recorded as `RunningNotified`.
//! * `end_run` turns `RunningNotified` (or `more_work`) into `Scheduled` and tells
//!   the task to queue itself again, so a wake-up that raced with the run is never
//!   lost; otherwise the task becomes `Idle` and the next `notify` queues it.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const RUNNING_NOTIFIED: u8 = 3;

/// Ensures a task is queued at most once while letting wakers during a run re-queue it afterwards.
/// States: Idle, Scheduled, Running, RunningNotified (atomic u8).
pub struct ScheduleState {
    state: AtomicU8,
}

impl ScheduleState {
    /// A state for a task that is not queued (`Idle`).
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self { state: AtomicU8::new(IDLE) }
    }

    /// A state for a task that is not queued (`Idle`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self { state: AtomicU8::new(IDLE) }
    }

    /// A state for a task that its creator queues right away (`Scheduled`),
    /// so wakers before its first run do not queue it a second time.
    #[cfg(not(loom))]
    pub const fn new_scheduled() -> Self {
        Self { state: AtomicU8::new(SCHEDULED) }
    }

    /// A state for a task that its creator queues right away (`Scheduled`).
    #[cfg(loom)]
    pub fn new_scheduled() -> Self {
        Self { state: AtomicU8::new(SCHEDULED) }
    }

    /// A waker calls this; true means the caller must now schedule the task (it was Idle).
    pub fn notify(&self) -> bool {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            let next = match current {
                IDLE => SCHEDULED,
                RUNNING => RUNNING_NOTIFIED,
                // Already queued or already told to re-queue: nothing to do.
                _ => return false,
            };
            match self.state.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return current == IDLE,
                Err(actual) => current = actual,
            }
        }
    }

    /// The task calls this at the start of run().
    pub fn begin_run(&self) {
        let previous = self.state.swap(RUNNING, Ordering::AcqRel);
        debug_assert!(previous == SCHEDULED || previous == IDLE, "begin_run while already running (state {previous})");
    }

    /// The task calls this at the end of run(); `more_work` says whether the task itself knows it has more.
    /// Returns true when the task must be scheduled again (more_work or a notify came during the run);
    /// in that case the state is Scheduled; otherwise it is Idle.
    pub fn end_run(&self, more_work: bool) -> bool {
        if more_work {
            // A swap (not a store) keeps a racing notifier's release in the chain.
            self.state.swap(SCHEDULED, Ordering::AcqRel);
            return true;
        }
        match self.state.compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => false,
            Err(RUNNING_NOTIFIED) => {
                // Only the running task leaves RunningNotified, so this cannot race.
                self.state.swap(SCHEDULED, Ordering::AcqRel);
                true
            }
            Err(other) => {
                debug_assert!(false, "end_run without begin_run (state {other})");
                false
            }
        }
    }
}

impl Default for ScheduleState {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ScheduleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.state.load(Ordering::Relaxed) {
            IDLE => "Idle",
            SCHEDULED => "Scheduled",
            RUNNING => "Running",
            _ => "RunningNotified",
        };
        f.debug_tuple("ScheduleState").field(&name).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn notify_when_idle_schedules_once() {
        let state = ScheduleState::new();
        assert!(state.notify());
        assert!(!state.notify());
        state.begin_run();
        assert!(!state.end_run(false));
        assert!(state.notify());
    }

    #[test]
    fn notify_during_run_requeues_after_run() {
        let state = ScheduleState::new();
        assert!(state.notify());
        state.begin_run();
        assert!(!state.notify());
        assert!(!state.notify());
        assert!(state.end_run(false));
        // Now Scheduled: wakers must not queue it again.
        assert!(!state.notify());
        state.begin_run();
        assert!(!state.end_run(false));
    }

    #[test]
    fn more_work_requeues() {
        let state = ScheduleState::new_scheduled();
        assert!(!state.notify());
        state.begin_run();
        assert!(state.end_run(true));
        assert!(!state.notify());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;

    struct Shared {
        state: ScheduleState,
        /// Stands in for a mailbox: a waker sets it before notifying, a run clears it.
        pending: AtomicBool,
        /// Set by whoever holds the one permitted queued/running copy of the task.
        claimed: AtomicBool,
    }

    fn claim(shared: &Shared) {
        assert!(!shared.claimed.swap(true, Ordering::AcqRel), "task scheduled twice");
    }

    /// Runs the task until it goes Idle, the way a worker would.
    fn drive(shared: &Shared) {
        loop {
            shared.state.begin_run();
            shared.pending.swap(false, Ordering::AcqRel);
            shared.claimed.store(false, Ordering::Release);
            if !shared.state.end_run(false) {
                return;
            }
            claim(shared);
        }
    }

    fn wake(shared: &Shared) {
        // An RMW like a mailbox lock would be, so the run that empties it is ordered.
        shared.pending.swap(true, Ordering::AcqRel);
        if shared.state.notify() {
            claim(shared);
            drive(shared);
        }
    }

    fn check(wakers: usize) {
        let mut builder = loom::model::Builder::new();
        // Three threads explode the exhaustive search; a bound of 3 preemptions
        // still covers every interleaving of the handful of transitions that matter.
        builder.preemption_bound.get_or_insert(3);
        builder.check(move || {
            let shared = Arc::new(Shared {
                state: ScheduleState::new(),
                pending: AtomicBool::new(false),
                claimed: AtomicBool::new(false),
            });
            assert!(shared.state.notify());
            claim(&shared);
            let threads: Vec<_> = (0..wakers)
                .map(|_| {
                    let shared = shared.clone();
                    thread::spawn(move || wake(&shared))
                })
                .collect();
            drive(&shared);
            for thread in threads {
                thread.join().expect("waker thread panicked");
            }
            assert!(!shared.pending.load(Ordering::Acquire), "lost wake-up: pending work but the task is idle");
            assert!(!shared.claimed.load(Ordering::Acquire));
            // Back to Idle: the next notify must queue it.
            assert!(shared.state.notify());
        });
    }

    #[test]
    fn loom_notify_racing_end_run() {
        check(1);
    }

    #[test]
    fn loom_two_notifiers_racing_end_run() {
        check(2);
    }

    #[test]
    fn loom_more_work_and_notify() {
        loom::model(|| {
            let state = Arc::new(ScheduleState::new_scheduled());
            let waker = {
                let state = state.clone();
                thread::spawn(move || state.notify())
            };
            state.begin_run();
            assert!(state.end_run(true));
            // Scheduled again: whatever the waker saw, it must not have queued a copy.
            let waker_queued = waker.join().expect("waker thread panicked");
            assert!(!waker_queued);
            state.begin_run();
            assert!(!state.end_run(false));
        });
    }
}
