//! The timer service: one thread per runtime running short callbacks at deadlines.
//!
//! Protocol: all state sits behind one mutex — a min-heap of `(deadline, id)` and a
//! map `id -> callback`. The timer thread waits on a condvar until the earliest
//! deadline (or indefinitely when there is none). `after` inserts into both and
//! notifies the thread only when the new deadline becomes the earliest.
//! `cancel` removes the callback from the map (O(1)); the heap entry is skipped
//! lazily when it reaches the top, and the heap is rebuilt whenever stale
//! entries outnumber live ones, so cancelled timers do not pile up.
//!
//! A due callback is removed from the map under the lock and run after
//! releasing it, so callbacks may call `after`/`cancel` themselves. A panicking
//! callback is caught and logged. Shutdown stops the thread and drops (never
//! runs) the callbacks still pending.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Identifies a timer for [`TimerHandle::cancel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

type Callback = Box<dyn FnOnce() + Send>;

/// Owns the timer thread. Dropping it shuts the service down.
pub struct Timers {
    shared: Arc<TimerShared>,
    thread: Option<JoinHandle<()>>,
}

/// A cheap, cloneable reference used to arm and cancel timers.
#[derive(Clone)]
pub struct TimerHandle {
    shared: Arc<TimerShared>,
}

struct TimerShared {
    clock: Arc<dyn Clock>,
    state: Mutex<TimerState>,
    changed: Condvar,
}

#[derive(Default)]
struct TimerState {
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: HashMap<u64, Callback>,
    next_id: u64,
    shutdown: bool,
}

/// Heap size below which stale (cancelled) entries are not worth a rebuild.
const MIN_HEAP_FOR_COMPACTION: usize = 64;

impl Timers {
    /// Starts the thread "wisp-timers" on the system clock.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn the thread; see [`Timers::with_clock`].
    #[allow(clippy::new_without_default)] // spawning a thread is not a "default"
    pub fn new() -> Timers {
        match Self::with_clock(Arc::new(SystemClock)) {
            Ok(timers) => timers,
            Err(error) => panic!("wisp-scheduler: cannot spawn timer thread: {error}"),
        }
    }

    /// Starts the timer thread with the given clock. Deadlines are computed and
    /// checked with `clock`; the thread waits in real time for `deadline - now`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> io::Result<Timers> {
        let shared = Arc::new(TimerShared { clock, state: Mutex::new(TimerState::default()), changed: Condvar::new() });
        let thread = {
            let shared = shared.clone();
            thread::Builder::new().name("wisp-timers".into()).spawn(move || shared.run())?
        };
        Ok(Timers { shared, thread: Some(thread) })
    }

    /// A handle for arming and cancelling timers.
    pub fn handle(&self) -> TimerHandle {
        TimerHandle { shared: self.shared.clone() }
    }

    /// Stops the timer thread; pending callbacks are dropped, not run.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Timers {
    fn drop(&mut self) {
        let pending = {
            let mut state = self.shared.lock();
            state.shutdown = true;
            state.deadlines.clear();
            std::mem::take(&mut state.pending)
        };
        self.shared.changed.notify_all();
        // Dropped outside the lock: a callback's drop may touch the timers.
        drop(pending);
        if let Some(thread) = self.thread.take() {
            // A callback that drops the service must not join its own thread.
            if thread.thread().id() != thread::current().id() && thread.join().is_err() {
                tracing::error!("timer thread panicked");
            }
        }
    }
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timers").finish_non_exhaustive()
    }
}

impl TimerHandle {
    /// Runs `callback` on the timer thread once `delay` has passed (callbacks must be short: they typically push to a mailbox).
    pub fn after(&self, delay: Duration, callback: Box<dyn FnOnce() + Send>) -> TimerId {
        let deadline = self.shared.clock.now().checked_add(delay);
        let mut state = self.shared.lock();
        let id = state.next_id;
        state.next_id += 1;
        if state.shutdown {
            drop(state);
            drop(callback);
            return TimerId(id);
        }
        state.pending.insert(id, callback);
        // A delay too large for `Instant` never fires; it stays until cancelled.
        if let Some(deadline) = deadline {
            let becomes_earliest = state.deadlines.peek().is_none_or(|Reverse((earliest, _))| deadline < *earliest);
            state.deadlines.push(Reverse((deadline, id)));
            drop(state);
            if becomes_earliest {
                self.shared.changed.notify_one();
            }
        }
        TimerId(id)
    }

    /// Cancels a pending timer; true if it had not fired.
    pub fn cancel(&self, id: TimerId) -> bool {
        let mut state = self.shared.lock();
        let callback = state.pending.remove(&id.0);
        state.compact_if_mostly_stale();
        drop(state);
        callback.is_some()
    }

    /// Number of timers armed and not yet fired or cancelled.
    pub fn pending(&self) -> usize {
        self.shared.lock().pending.len()
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle").finish_non_exhaustive()
    }
}

impl TimerState {
    /// Drops heap entries of cancelled timers once they outnumber live ones
    /// (amortised O(1) per cancel).
    fn compact_if_mostly_stale(&mut self) {
        let heap_len = self.deadlines.len();
        if heap_len > MIN_HEAP_FOR_COMPACTION && heap_len > 2 * self.pending.len() {
            let pending = &self.pending;
            self.deadlines.retain(|Reverse((_, id))| pending.contains_key(id));
        }
    }
}

impl TimerShared {
    fn lock(&self) -> MutexGuard<'_, TimerState> {
        // The heap and map stay consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The timer thread's loop.
    fn run(&self) {
        let mut state = self.lock();
        loop {
            if state.shutdown {
                return;
            }
            let now = self.clock.now();
            let next = state.deadlines.peek().map(|Reverse(entry)| *entry);
            state = match next {
                None => self.changed.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some((deadline, _)) if deadline > now => {
                    self.changed.wait_timeout(state, deadline - now).unwrap_or_else(PoisonError::into_inner).0
                }
                Some((_, id)) => {
                    state.deadlines.pop();
                    state.compact_if_mostly_stale();
                    // Absent when cancelled: the entry was stale.
                    match state.pending.remove(&id) {
                        Some(callback) => {
                            drop(state);
                            run_callback(callback);
                            self.lock()
                        }
                        None => state,
                    }
                }
            };
        }
    }
}

fn run_callback(callback: Callback) {
    if panic::catch_unwind(AssertUnwindSafe(callback)).is_err() {
        tracing::error!("timer callback panicked");
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn send_on_fire(tx: &mpsc::Sender<u32>, value: u32) -> Box<dyn FnOnce() + Send> {
        let tx = tx.clone();
        Box::new(move || {
            let _ = tx.send(value);
        })
    }

    #[test]
    fn fires_in_deadline_order() {
        let timers = Timers::new();
        let handle = timers.handle();
        let (tx, rx) = mpsc::channel();
        // Armed out of order; equal deadlines fire in arming order.
        handle.after(Duration::from_millis(75), send_on_fire(&tx, 3));
        handle.after(Duration::from_millis(25), send_on_fire(&tx, 1));
        handle.after(Duration::from_millis(50), send_on_fire(&tx, 2));
        handle.after(Duration::ZERO, send_on_fire(&tx, 0));
        let fired: Vec<u32> = (0..4).map(|_| rx.recv_timeout(TIMEOUT).expect("timer did not fire")).collect();
        assert_eq!(fired, vec![0, 1, 2, 3]);
        assert_eq!(handle.pending(), 0);
    }

    #[test]
    fn cancel_prevents_firing() {
        let timers = Timers::new();
        let handle = timers.handle();
        let (tx, rx) = mpsc::channel();
        let cancelled = handle.after(Duration::from_millis(20), send_on_fire(&tx, 1));
        handle.after(Duration::from_millis(40), send_on_fire(&tx, 2));
        assert!(handle.cancel(cancelled));
        assert!(!handle.cancel(cancelled));
        // The later timer firing proves the earlier deadline has passed.
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok(2));
        assert!(rx.try_recv().is_err());
        let fired = handle.after(Duration::ZERO, send_on_fire(&tx, 3));
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok(3));
        assert!(!handle.cancel(fired));
    }

    #[test]
    fn many_timers_and_cancellations_do_not_leak() {
        let timers = Timers::new();
        let handle = timers.handle();
        let (tx, rx) = mpsc::channel();
        let mut expected = Vec::new();
        for i in 0..2000u32 {
            let id = handle.after(Duration::from_millis(u64::from(i % 20)), send_on_fire(&tx, i));
            // A short timer may fire before the cancel; then cancel reports false.
            if i % 2 == 1 || !handle.cancel(id) {
                expected.push(i);
            }
        }
        for i in 0..1000u32 {
            // Long timers, cancelled at once: the heap must be compacted.
            let id = handle.after(Duration::from_secs(3600), send_on_fire(&tx, i));
            assert!(handle.cancel(id));
        }
        let mut fired: Vec<u32> =
            (0..expected.len()).map(|_| rx.recv_timeout(TIMEOUT).expect("timer did not fire")).collect();
        fired.sort_unstable();
        assert!(fired == expected, "fired timers differ from the uncancelled ones");
        assert!(rx.try_recv().is_err(), "a cancelled timer fired");
        assert_eq!(handle.pending(), 0);
        let heap_len = timers.shared.lock().deadlines.len();
        assert!(heap_len <= MIN_HEAP_FOR_COMPACTION, "heap kept {heap_len} stale entries");
    }

    #[test]
    fn huge_delay_never_fires_but_cancels() {
        let timers = Timers::new();
        let handle = timers.handle();
        let id = handle.after(Duration::MAX, Box::new(|| panic!("must not fire")));
        assert_eq!(handle.pending(), 1);
        assert!(handle.cancel(id));
    }

    #[test]
    fn panicking_callback_does_not_stop_timers() {
        let timers = Timers::new();
        let handle = timers.handle();
        let (tx, rx) = mpsc::channel();
        handle.after(Duration::ZERO, Box::new(|| panic!("deliberate test panic")));
        handle.after(Duration::from_millis(1), send_on_fire(&tx, 7));
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok(7));
    }

    #[test]
    fn shutdown_drops_pending_callbacks() {
        let timers = Timers::new();
        let handle = timers.handle();
        let (tx, rx) = mpsc::channel();
        handle.after(Duration::from_secs(3600), send_on_fire(&tx, 1));
        drop(tx);
        timers.shutdown();
        // The callback (and its sender) was dropped without running.
        assert_eq!(rx.recv_timeout(TIMEOUT), Err(mpsc::RecvTimeoutError::Disconnected));
        // Arming after shutdown drops the callback at once.
        let (tx, rx) = mpsc::channel();
        handle.after(Duration::ZERO, send_on_fire(&tx, 2));
        drop(tx);
        assert_eq!(rx.recv_timeout(TIMEOUT), Err(mpsc::RecvTimeoutError::Disconnected));
    }
}
