//! The timer service: a thread running short callbacks at deadlines (the runtime starts one per host).
//!
//! Structure: a hierarchical timing wheel (`Wheel`) behind one mutex, so that arming,
//! cancelling and firing a timer cost the same however many are pending. Time is counted in
//! nanoseconds since the service started and the wheel moves in ticks of `RESOLUTION_NS`
//! (1 ms). Level `l` has 64 slots of `64^l` ticks each; a timer is linked into the level of
//! the highest bit in which its deadline's tick differs from the wheel's current tick (6
//! levels reach about 795 days; later deadlines wait in an overflow list looked at again once
//! per top-level rotation). Slots are intrusive doubly linked lists over a slab, so `cancel`
//! unlinks in O(1); a [`TimerId`] carries a serial checked on cancel, so a stale id never
//! cancels the timer that reused its slab entry.
//!
//! Protocol: the timer thread advances the wheel to `now` (moving a higher level's slot down
//! to lower levels when its time comes), then waits on a condvar until the next occupied
//! slot's time, found from one occupancy bitmap per level, or indefinitely when no timer can
//! fire. `after` notifies the thread only when the new deadline is earlier than the time it
//! sleeps towards. A timer fires no earlier than its deadline and at most one tick after it
//! (plus the thread's scheduling delay); the timers due in one advance fire in deadline order,
//! equal deadlines in arming order.
//!
//! Due callbacks are removed from the wheel under the lock and run after releasing it, so
//! callbacks may call `after`/`cancel` themselves. A panicking callback is caught and logged.
//! Shutdown stops the thread and drops (never runs) the callbacks still pending.

use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use slab::Slab;

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
pub struct TimerId {
    /// The timer's slab entry; reused once the timer fires or is cancelled.
    key: usize,
    /// Unique per timer: tells this timer from a later one in the same slab entry.
    serial: u64,
}

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
    /// Time zero of the wheel.
    origin: Instant,
    state: Mutex<TimerState>,
    changed: Condvar,
    /// Written under `state`'s lock (so `after` and the thread's wait see it in order); also
    /// read without it between callbacks, to stop running a due batch promptly.
    shutdown: AtomicBool,
}

struct TimerState {
    wheel: Wheel<Callback>,
    /// The time (ns since `origin`) the thread sleeps towards: `AWAKE` while it is not
    /// waiting (it looks at the wheel before it waits again), `u64::MAX` when it waits for a
    /// new timer. `after` notifies it only for an earlier deadline.
    wake_at: u64,
}

const AWAKE: u64 = 0;

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
        let origin = clock.now();
        let shared = Arc::new(TimerShared {
            clock,
            origin,
            state: Mutex::new(TimerState { wheel: Wheel::new(), wake_at: AWAKE }),
            changed: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
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
            self.shared.shutdown.store(true, Ordering::Relaxed);
            state.wheel.clear()
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
        let shared = &*self.shared;
        // `None`: too far for `Instant` (or for the wheel's 584 years of nanoseconds); such a
        // timer never fires and stays until cancelled.
        let deadline = shared.clock.now().checked_add(delay).and_then(|deadline| shared.nanos_since_origin(deadline));
        let mut state = shared.lock();
        if shared.shutdown.load(Ordering::Relaxed) {
            let id = state.wheel.unarmed_id();
            drop(state);
            drop(callback);
            return id;
        }
        let id = state.wheel.insert(deadline, callback);
        if let Some(fires_at) = deadline.map(tick_start) {
            if fires_at < state.wake_at {
                // Later arms before the thread wakes need not notify it again.
                state.wake_at = fires_at;
                drop(state);
                shared.changed.notify_one();
            }
        }
        id
    }

    /// Cancels a pending timer; true if it had not fired.
    pub fn cancel(&self, id: TimerId) -> bool {
        let callback = self.shared.lock().wheel.cancel(id);
        // Dropped outside the lock: a callback's drop may touch the timers.
        callback.is_some()
    }

    /// Number of timers armed and not yet fired or cancelled.
    pub fn pending(&self) -> usize {
        self.shared.lock().wheel.len()
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle").finish_non_exhaustive()
    }
}

impl TimerShared {
    fn lock(&self) -> MutexGuard<'_, TimerState> {
        // No callback runs or is dropped under the lock: only a bug in the wheel could panic
        // there, and poisoning would then stop every timer user too.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `instant` as the wheel counts time; `None` past `u64::MAX` nanoseconds.
    fn nanos_since_origin(&self, instant: Instant) -> Option<u64> {
        u64::try_from(instant.saturating_duration_since(self.origin).as_nanos()).ok()
    }

    /// The timer thread's loop.
    fn run(&self) {
        let mut due = Vec::new();
        let mut state = self.lock();
        loop {
            if self.shutdown.load(Ordering::Relaxed) {
                return;
            }
            let now = self.nanos_since_origin(self.clock.now()).unwrap_or(u64::MAX);
            state.wheel.advance_to(now, &mut due);
            if !due.is_empty() {
                state.wake_at = AWAKE;
                drop(state);
                for callback in due.drain(..) {
                    // Shut down meanwhile: the rest of the batch is dropped, not run.
                    if self.shutdown.load(Ordering::Relaxed) {
                        break;
                    }
                    run_callback(callback);
                }
                state = self.lock();
                continue;
            }
            state = match state.wheel.next_expiration() {
                None => {
                    state.wake_at = u64::MAX;
                    self.changed.wait(state).unwrap_or_else(PoisonError::into_inner)
                }
                Some(at) => {
                    // `at` is after `now`: every expiration up to `now` was just processed.
                    state.wake_at = at;
                    let timeout = Duration::from_nanos(at.saturating_sub(now));
                    self.changed.wait_timeout(state, timeout).unwrap_or_else(PoisonError::into_inner).0
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

/// Nanoseconds per wheel tick: a timer fires at most this long after its deadline.
const RESOLUTION_NS: u64 = 1_000_000;

/// Slots per level, as a power of two: the low bits of a tick pick the slot.
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
const LEVELS: usize = 6;
/// Ticks one rotation of the top level spans (64^6 ms, about 795 days).
const WHEEL_RANGE: u64 = 1 << (SLOT_BITS as usize * LEVELS);
/// `lists` index of the timers beyond the current top-level rotation.
const OVERFLOW: usize = LEVELS * SLOTS;
/// No entry: the end of a list.
const NIL: usize = usize::MAX;
/// `Entry::list` of a timer that never fires, linked in no list.
const NO_LIST: u16 = u16::MAX;

/// The tick-aligned time (ns) at which a timer due at `deadline` fires.
fn tick_start(deadline: u64) -> u64 {
    deadline.div_ceil(RESOLUTION_NS).saturating_mul(RESOLUTION_NS)
}

/// A hierarchical timing wheel over a manual clock: the data structure of the timer service,
/// with no thread or lock. Exposed for the benches; not a stable API.
///
/// Times are nanoseconds from an origin of the caller's choosing. Arming, cancelling and
/// finding the next expiration are O(1); each timer moves down at most `LEVELS - 1` times
/// before it fires (plus once per top-level rotation it waits in the overflow list).
#[doc(hidden)]
pub struct Wheel<T> {
    entries: Slab<Entry<T>>,
    /// Head and tail of each slot's list, level by level, then the overflow list.
    lists: Vec<List>,
    /// Bit `s` of `occupied[l]`: level `l`'s slot `s` holds timers.
    occupied: [u64; LEVELS],
    /// The first tick not processed yet. Invariant: every linked timer's slot starts at or
    /// after it, within the current rotation of its level (so no slot behind it is occupied).
    elapsed: u64,
    /// The tick at which the overflow list is looked at again (while it is not empty): the start
    /// of the next top-level rotation, from which its timers are within reach.
    overflow_at: u64,
    next_serial: u64,
    /// The current `advance_to`'s due timers as (deadline, serial, value), sorted before they
    /// are handed out.
    due: Vec<(u64, u64, T)>,
}

struct Entry<T> {
    /// Nanoseconds since the origin (unused for a timer that never fires).
    deadline: u64,
    serial: u64,
    prev: usize,
    next: usize,
    /// Index into `Wheel::lists`, or `NO_LIST`.
    list: u16,
    value: T,
}

#[derive(Clone, Copy)]
struct List {
    head: usize,
    tail: usize,
}

const EMPTY: List = List { head: NIL, tail: NIL };

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Wheel<T> {
    /// An empty wheel at time 0.
    pub fn new() -> Self {
        Wheel {
            entries: Slab::new(),
            lists: vec![EMPTY; OVERFLOW + 1],
            occupied: [0; LEVELS],
            elapsed: 0,
            overflow_at: 0,
            next_serial: 0,
            due: Vec::new(),
        }
    }

    /// Timers armed and neither fired nor cancelled.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Arms a timer due at `deadline` (ns); `None` never fires but counts until cancelled.
    /// A deadline already passed fires at the next tick the wheel reaches.
    pub fn insert(&mut self, deadline: Option<u64>, value: T) -> TimerId {
        let serial = self.next_serial;
        self.next_serial += 1;
        let entry =
            Entry { deadline: deadline.unwrap_or(u64::MAX), serial, prev: NIL, next: NIL, list: NO_LIST, value };
        let key = self.entries.insert(entry);
        if deadline.is_some() {
            self.link(key);
        }
        TimerId { key, serial }
    }

    /// Removes a pending timer; `None` if `id` fired, was cancelled or is not from this wheel.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let entry = self.entries.get(id.key)?;
        // The slab entry may hold a later timer since.
        if entry.serial != id.serial {
            return None;
        }
        if entry.list != NO_LIST {
            self.unlink(id.key);
        }
        Some(self.entries.remove(id.key).value)
    }

    /// When the wheel next has something to do (ns, tick-aligned): a timer to fire, or a slot
    /// of a higher level to move down (at or before its earliest timer's deadline). `None`
    /// when no timer can fire.
    pub fn next_expiration(&self) -> Option<u64> {
        self.next_event().map(|(tick, _)| tick.saturating_mul(RESOLUTION_NS))
    }

    /// Fires every timer whose deadline is at most `now` (rounded down to a tick) and appends
    /// the values to `due`, in deadline order, equal deadlines in arming order.
    pub fn advance_to(&mut self, now: u64, due: &mut Vec<T>) {
        let now_tick = now / RESOLUTION_NS;
        while let Some((tick, list)) = self.next_event().filter(|&(tick, _)| tick <= now_tick) {
            self.elapsed = tick;
            let mut key = self.take_list(list);
            while key != NIL {
                let next = self.entries[key].next;
                if list < SLOTS {
                    let entry = self.entries.remove(key);
                    debug_assert!(entry.deadline.div_ceil(RESOLUTION_NS) <= tick, "a timer fired early");
                    self.due.push((entry.deadline, entry.serial, entry.value));
                } else {
                    // A higher level's slot (or the overflow list) reached: its timers are now
                    // close enough for a lower level (the overflow's, within the top level).
                    self.link(key);
                }
                key = next;
            }
        }
        // No event before `now_tick`: the wheel may jump there.
        self.elapsed = self.elapsed.max(now_tick.saturating_add(1));
        self.due.sort_unstable_by_key(|&(deadline, serial, _)| (deadline, serial));
        due.extend(self.due.drain(..).map(|(_, _, value)| value));
    }

    /// An id no timer has, for a timer refused (after shutdown).
    fn unarmed_id(&mut self) -> TimerId {
        let serial = self.next_serial;
        self.next_serial += 1;
        TimerId { key: NIL, serial }
    }

    /// Removes every timer; the caller drops them (outside its lock).
    fn clear(&mut self) -> Slab<Entry<T>> {
        self.lists.fill(EMPTY);
        self.occupied = [0; LEVELS];
        std::mem::take(&mut self.entries)
    }

    /// The earliest tick at which a list needs processing, and that list.
    fn next_event(&self) -> Option<(u64, usize)> {
        let mut next: Option<(u64, usize)> = None;
        for level in 0..LEVELS {
            let occupied = self.occupied[level];
            if occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let current = (self.elapsed >> shift) as usize % SLOTS;
            debug_assert_eq!(occupied & ((1 << current) - 1), 0, "an occupied slot behind the wheel's position");
            let slot = (occupied >> current).trailing_zeros() as usize + current;
            let level_start = self.elapsed & !((1 << (shift + SLOT_BITS)) - 1);
            let tick = level_start + ((slot as u64) << shift);
            if next.is_none_or(|(earliest, _)| tick < earliest) {
                next = Some((tick, level * SLOTS + slot));
            }
        }
        if self.lists[OVERFLOW].head != NIL && next.is_none_or(|(earliest, _)| self.overflow_at < earliest) {
            next = Some((self.overflow_at, OVERFLOW));
        }
        next
    }

    /// Links an armed timer at the tail of the list its deadline falls in, as seen from
    /// `elapsed`.
    fn link(&mut self, key: usize) {
        // A deadline already passed is due at the first tick not processed yet.
        let tick = self.entries[key].deadline.div_ceil(RESOLUTION_NS).max(self.elapsed);
        // The highest bit in which `tick` differs from `elapsed` picks the level: `tick` is
        // then in that level's current rotation, in a slot ahead of the wheel's position (or,
        // on level 0, at it).
        let differing = (tick ^ self.elapsed) | (SLOTS as u64 - 1);
        let level = (u64::BITS - 1 - differing.leading_zeros()) as usize / SLOT_BITS as usize;
        let list = if level < LEVELS {
            let slot = (tick >> (SLOT_BITS as usize * level)) as usize % SLOTS;
            self.occupied[level] |= 1 << slot;
            level * SLOTS + slot
        } else {
            if self.lists[OVERFLOW].head == NIL {
                self.overflow_at = (self.elapsed | (WHEEL_RANGE - 1)).saturating_add(1);
            }
            OVERFLOW
        };
        let tail = self.lists[list].tail;
        let entry = &mut self.entries[key];
        entry.list = list as u16;
        entry.prev = tail;
        entry.next = NIL;
        match tail {
            NIL => self.lists[list].head = key,
            tail => self.entries[tail].next = key,
        }
        self.lists[list].tail = key;
    }

    /// Unlinks a timer from its list.
    fn unlink(&mut self, key: usize) {
        let entry = &self.entries[key];
        let (prev, next, list) = (entry.prev, entry.next, usize::from(entry.list));
        match prev {
            NIL => self.lists[list].head = next,
            prev => self.entries[prev].next = next,
        }
        match next {
            NIL => self.lists[list].tail = prev,
            next => self.entries[next].prev = prev,
        }
        if self.lists[list].head == NIL && list != OVERFLOW {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
    }

    /// Empties a list, returning its former head (the rest follows through `next`).
    fn take_list(&mut self, list: usize) -> usize {
        let head = self.lists[list].head;
        self.lists[list] = EMPTY;
        if list != OVERFLOW {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
        head
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::mpsc;

    const TIMEOUT: Duration = Duration::from_secs(5);
    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000 * MS;
    const DAY: u64 = 86_400 * SEC;

    fn send_on_fire(tx: &mpsc::Sender<u32>, value: u32) -> Box<dyn FnOnce() + Send> {
        let tx = tx.clone();
        Box::new(move || {
            let _ = tx.send(value);
        })
    }

    impl<T> Wheel<T> {
        /// Checks the lists against the slab and the bitmaps, and the wheel's invariant.
        fn check_invariants(&self) {
            let mut linked = 0;
            for (list, ends) in self.lists.iter().enumerate() {
                let (mut prev, mut key) = (NIL, ends.head);
                while key != NIL {
                    let entry = &self.entries[key];
                    assert_eq!((usize::from(entry.list), entry.prev), (list, prev), "broken link");
                    let tick = entry.deadline.div_ceil(RESOLUTION_NS);
                    if list < OVERFLOW {
                        let shift = SLOT_BITS * (list / SLOTS) as u32;
                        let level_start = self.elapsed & !((1 << (shift + SLOT_BITS)) - 1);
                        let slot_start = level_start + (((list % SLOTS) as u64) << shift);
                        assert!(slot_start >= self.elapsed, "an occupied slot behind the wheel's position");
                        assert!(tick < slot_start + (1 << shift), "a timer in a slot after its deadline's");
                    } else {
                        assert!(tick >= self.overflow_at, "an overflow timer looked at too late");
                    }
                    linked += 1;
                    (prev, key) = (key, entry.next);
                }
                assert_eq!(ends.tail, prev, "tail is not the last entry");
                if list < OVERFLOW {
                    let occupied = self.occupied[list / SLOTS] & (1 << (list % SLOTS)) != 0;
                    assert_eq!(occupied, ends.head != NIL, "occupancy bit out of date");
                }
            }
            let never = self.entries.iter().filter(|(_, entry)| entry.list == NO_LIST).count();
            assert_eq!(linked + never, self.entries.len(), "an armed timer is in no list");
        }

        fn advance(&mut self, now: u64) -> Vec<T> {
            let mut due = Vec::new();
            self.advance_to(now, &mut due);
            self.check_invariants();
            due
        }
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
            // Long timers, cancelled at once: nothing of them may stay behind.
            let id = handle.after(Duration::from_secs(3600), send_on_fire(&tx, i));
            assert!(handle.cancel(id));
        }
        let mut fired: Vec<u32> =
            (0..expected.len()).map(|_| rx.recv_timeout(TIMEOUT).expect("timer did not fire")).collect();
        fired.sort_unstable();
        assert!(fired == expected, "fired timers differ from the uncancelled ones");
        assert!(rx.try_recv().is_err(), "a cancelled timer fired");
        assert_eq!(handle.pending(), 0);
        let state = timers.shared.lock();
        assert!(state.wheel.is_empty(), "the slab kept {} entries", state.wheel.len());
        assert!(state.wheel.lists.iter().all(|list| list.head == NIL), "a list kept entries");
        assert_eq!(state.wheel.occupied, [0; LEVELS]);
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

    #[test]
    fn timer_armed_by_a_callback_fires() {
        let timers = Timers::new();
        let handle = timers.handle();
        let (tx, rx) = mpsc::channel();
        let (inner_handle, inner_tx) = (handle.clone(), tx.clone());
        handle.after(
            Duration::ZERO,
            Box::new(move || {
                inner_handle.after(Duration::from_millis(1), send_on_fire(&inner_tx, 2));
                let _ = inner_tx.send(1);
            }),
        );
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok(1));
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok(2));
    }

    #[test]
    fn earlier_timer_wakes_the_sleeping_thread() {
        let timers = Timers::new();
        let handle = timers.handle();
        let (tx, rx) = mpsc::channel();
        // The thread goes to sleep towards the hour-long timer's slot...
        handle.after(Duration::from_secs(3600), send_on_fire(&tx, 1));
        let start = Instant::now();
        while timers.shared.lock().wake_at == AWAKE {
            assert!(start.elapsed() < TIMEOUT, "the timer thread never went to sleep");
            thread::yield_now();
        }
        // ...and must wake for this one.
        handle.after(Duration::from_millis(5), send_on_fire(&tx, 2));
        assert_eq!(rx.recv_timeout(TIMEOUT), Ok(2));
        assert_eq!(handle.pending(), 1);
    }

    #[test]
    fn stale_id_does_not_cancel_a_newer_timer() {
        let timers = Timers::new();
        let handle = timers.handle();
        let old = handle.after(Duration::from_secs(3600), Box::new(|| {}));
        assert!(handle.cancel(old));
        let new = handle.after(Duration::from_secs(3600), Box::new(|| {}));
        assert_eq!(old.key, new.key, "the slab entry should be reused");
        assert_ne!(old, new);
        assert!(!handle.cancel(old));
        assert_eq!(handle.pending(), 1);
        assert!(handle.cancel(new));
    }

    #[test]
    fn wheel_stale_id_after_slot_reuse_does_nothing() {
        let mut wheel = Wheel::new();
        let old = wheel.insert(Some(10 * MS), 1);
        assert_eq!(wheel.cancel(old), Some(1));
        let new = wheel.insert(Some(10 * MS), 2);
        assert_eq!(old.key, new.key);
        assert_eq!(wheel.cancel(old), None);
        // Also after the newer timer fired and the entry was reused once more.
        assert_eq!(wheel.advance(10 * MS), vec![2]);
        assert_eq!(wheel.cancel(new), None);
        let newest = wheel.insert(Some(20 * MS), 3);
        assert_eq!(newest.key, new.key);
        assert_eq!((wheel.cancel(old), wheel.cancel(new)), (None, None));
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.advance(20 * MS), vec![3]);
    }

    #[test]
    fn wheel_fires_on_the_tick_after_the_deadline() {
        let mut wheel = Wheel::new();
        wheel.insert(Some(5 * MS + 300), 'a');
        wheel.insert(Some(5 * MS), 'b');
        assert_eq!(wheel.next_expiration(), Some(5 * MS));
        assert_eq!(wheel.advance(5 * MS - 1), vec![]);
        assert_eq!(wheel.advance(5 * MS), vec!['b']);
        assert_eq!(wheel.next_expiration(), Some(6 * MS));
        assert_eq!(wheel.advance(6 * MS - 1), vec![]);
        assert_eq!(wheel.advance(6 * MS), vec!['a']);
        assert_eq!(wheel.next_expiration(), None);
        // A deadline already passed fires at the next tick.
        wheel.insert(Some(MS), 'c');
        assert_eq!(wheel.next_expiration(), Some(7 * MS));
        assert_eq!(wheel.advance(7 * MS), vec!['c']);
    }

    #[test]
    fn wheel_fires_a_batch_in_deadline_then_arming_order() {
        let mut wheel = Wheel::new();
        for (deadline, value) in [(3_900_000, 3), (3_100_000, 0), (3_500_000, 2), (3_100_000, 1), (70 * MS, 5)] {
            wheel.insert(Some(deadline), value);
        }
        wheel.insert(Some(65 * MS), 4);
        assert_eq!(wheel.advance(100 * MS), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn wheel_never_timer_counts_until_cancelled() {
        let mut wheel = Wheel::new();
        let never = wheel.insert(None, ());
        assert_eq!(wheel.next_expiration(), None);
        assert_eq!(wheel.advance(u64::MAX), vec![]);
        assert_eq!(wheel.len(), 1);
        assert_eq!(wheel.cancel(never), Some(()));
        assert!(wheel.is_empty());
    }

    /// Sleeping until `next_expiration` and advancing there, as the thread does: a far timer
    /// costs a wake-up per level at most, not one per tick, and fires on time.
    #[test]
    fn wheel_sleeps_from_slot_to_slot() {
        for deadline in [3 * MS, 100 * MS, 3_600 * SEC + 7 * MS, 700 * DAY, 5 * 365 * DAY + 13 * MS] {
            let mut wheel = Wheel::new();
            wheel.insert(Some(deadline), ());
            let mut wake_ups = 0;
            let fired_at = loop {
                let at = wheel.next_expiration().expect("a pending timer has an expiration");
                assert!(at <= tick_start(deadline), "would sleep past the deadline");
                wake_ups += 1;
                if !wheel.advance(at).is_empty() {
                    break at;
                }
            };
            assert_eq!(fired_at, tick_start(deadline));
            // The overflow list costs a wake-up per top-level rotation on top.
            let rotations = (deadline / RESOLUTION_NS / WHEEL_RANGE) as usize;
            assert!(wake_ups <= LEVELS + rotations, "{wake_ups} wake-ups for a timer at {deadline} ns");
        }
    }

    #[test]
    fn wheel_far_timers_wait_in_overflow() {
        let mut wheel = Wheel::new();
        let range = WHEEL_RANGE * RESOLUTION_NS;
        let deadlines = [range - 1, range, range + 5 * MS, 2 * range + 1, 3 * range - MS];
        for (i, &deadline) in deadlines.iter().enumerate() {
            wheel.insert(Some(deadline), i);
        }
        assert!(wheel.lists[OVERFLOW].head != NIL);
        let mut fired = Vec::new();
        let mut now = 0;
        while now < 4 * range {
            now += 37 * DAY + 11 * SEC;
            for i in wheel.advance(now) {
                assert!(deadlines[i] <= now && now - deadlines[i] < 37 * DAY + 11 * SEC + RESOLUTION_NS);
                fired.push(i);
            }
        }
        assert_eq!(fired, vec![0, 1, 2, 3, 4]);
    }

    /// A deterministic spread of 20,000 timers over 0..5 s, a third cancelled, on a manual
    /// clock advanced in uneven steps.
    #[test]
    fn wheel_many_timers_at_varied_delays() {
        let mut wheel = Wheel::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let deadlines: Vec<u64> = (0..20_000).map(|_| random(5 * SEC)).collect();
        let ids: Vec<TimerId> = deadlines.iter().enumerate().map(|(i, &d)| wheel.insert(Some(d), i)).collect();
        let mut cancelled = vec![false; deadlines.len()];
        for i in (0..deadlines.len()).step_by(3) {
            assert_eq!(wheel.cancel(ids[i]), Some(i));
            cancelled[i] = true;
        }
        let mut fired = vec![false; deadlines.len()];
        let (mut now, mut last_deadline) = (0, 0);
        while now <= 5 * SEC + RESOLUTION_NS {
            now += random(40 * MS);
            for i in wheel.advance(now) {
                assert!(!cancelled[i] && !fired[i], "timer {i} fired twice or after cancellation");
                assert!(deadlines[i] <= now, "timer {i} fired early");
                assert!(deadlines[i] >= last_deadline, "timers fired out of deadline order");
                last_deadline = deadlines[i];
                fired[i] = true;
            }
            for (i, &deadline) in deadlines.iter().enumerate() {
                assert!(cancelled[i] || fired[i] || deadline + RESOLUTION_NS > now, "timer {i} is late");
            }
        }
        assert!(wheel.is_empty());
        assert!(fired.iter().zip(&cancelled).all(|(&f, &c)| f != c));
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Deadline relative to the clock (ns, may be in the past); `None` never fires.
        Arm(Option<i64>),
        /// Cancels the `n % armed`-th timer armed so far (fired or not).
        Cancel(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (-10 * MS as i64..5 * SEC as i64).prop_map(|d| Op::Arm(Some(d))),
            1 => (0..(3 * 365 * DAY) as i64).prop_map(|d| Op::Arm(Some(d))),
            1 => Just(Op::Arm(None)),
            3 => any::<usize>().prop_map(Op::Cancel),
            4 => (0..50 * MS).prop_map(Op::Advance),
            2 => (0..3 * SEC).prop_map(Op::Advance),
            1 => (0..1000 * DAY).prop_map(Op::Advance),
        ]
    }

    #[derive(Debug, PartialEq)]
    enum State {
        Pending,
        Fired,
        Cancelled,
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Each timer fires exactly once unless cancelled first, never before its deadline, and
        /// by one tick after it (after it was armed, for a deadline already passed then).
        #[test]
        fn wheel_fires_each_uncancelled_timer_once_on_time(
            start in 0..10 * SEC,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut wheel = Wheel::new();
            let mut now = start;
            wheel.advance(now);
            // (id, deadline, fire-by time, state) per timer armed; the wheel's values index it.
            let mut timers: Vec<(TimerId, Option<u64>, u64, State)> = Vec::new();
            for op in ops.into_iter().chain([Op::Advance(3 * 365 * DAY + 5 * SEC)]) {
                match op {
                    Op::Arm(offset) => {
                        let deadline = offset.map(|offset| now.saturating_add_signed(offset));
                        let fire_by = deadline.map_or(u64::MAX, |d| d.max(now) + RESOLUTION_NS);
                        let id = wheel.insert(deadline, timers.len());
                        timers.push((id, deadline, fire_by, State::Pending));
                    }
                    Op::Cancel(n) if !timers.is_empty() => {
                        let i = n % timers.len();
                        let cancelled = wheel.cancel(timers[i].0);
                        prop_assert_eq!(cancelled, (timers[i].3 == State::Pending).then_some(i));
                        if cancelled.is_some() {
                            timers[i].3 = State::Cancelled;
                        }
                    }
                    Op::Cancel(_) => {}
                    Op::Advance(step) => {
                        now += step;
                        for i in wheel.advance(now) {
                            let (_, deadline, _, state) = &mut timers[i];
                            prop_assert_eq!(&*state, &State::Pending, "timer {} fired twice or after cancel", i);
                            prop_assert!(deadline.is_some_and(|d| d <= now), "timer {} fired early", i);
                            *state = State::Fired;
                        }
                        for (i, (_, _, fire_by, state)) in timers.iter().enumerate() {
                            prop_assert!(*state != State::Pending || now < *fire_by, "timer {} is late", i);
                        }
                    }
                }
                let pending = timers.iter().filter(|t| t.3 == State::Pending).count();
                prop_assert_eq!(wheel.len(), pending);
            }
            for (i, (_, deadline, _, state)) in timers.iter().enumerate() {
                prop_assert!(*state != State::Pending || deadline.is_none(), "timer {} left pending", i);
            }
        }
    }
}
