//! The mailbox and its wait/wake handshake.
//!
//! Protocol: the queue lives in a `Mutex<VecDeque<T>>`; `state` holds two flags,
//! `WAITING` and `CLOSED`.
//!
//! * `WAITING` and `CLOSED` are only *set* while holding the queue lock, so
//!   "queue empty, now waiting" (`prepare_wait`) and "append, then look for a
//!   waiter" (`push`) are atomic with respect to each other: either the push
//!   lands first and `prepare_wait` returns `false`, or the waiter is
//!   registered first and the push sees it.
//! * `WAITING` is *cleared* by `push` (under the lock) or by `cancel_wait`
//!   (without it, with `fetch_and`). Pushes are serialized by the lock, so only
//!   one push observes the flag set, and a wait yields at most one `wake`. Under
//!   the lock `push` and `prepare_wait` read and write `state` with plain loads
//!   and stores (a locked read-modify-write per message was measurable): nothing
//!   else sets a flag meanwhile, and a `cancel_wait` racing a push's load and
//!   store only clears what the push clears too (the push then counts as coming
//!   first, and wakes once).
//! * `push` calls [`Wake::wake`] after releasing the lock, so the hook may do
//!   anything, including pushing to this same mailbox.
//!
//! Per-sender FIFO holds because each push appends under the lock and a sender's
//! pushes are sequenced.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, PoisonError};

#[cfg(loom)]
use loom::sync::{
    atomic::{AtomicU8, Ordering},
    Mutex, MutexGuard,
};
#[cfg(not(loom))]
use std::sync::{
    atomic::{AtomicU8, Ordering},
    Mutex, MutexGuard,
};

/// Called when a push finds the owner waiting; the runtime makes the process ready.
pub trait Wake: Send + Sync + 'static {
    fn wake(&self, token: u32);
}

/// A push to a closed mailbox; hands the item back.
#[derive(Debug, thiserror::Error)]
#[error("mailbox is closed")]
pub struct Closed<T>(pub T);

const WAITING: u8 = 0b01;
const CLOSED: u8 = 0b10;

/// A multi-producer, single-consumer queue owned by one process.
pub struct Mailbox<T> {
    queue: Mutex<VecDeque<T>>,
    state: AtomicU8,
    token: u32,
    hook: Arc<dyn Wake>,
}

impl<T> Mailbox<T> {
    /// An open, empty mailbox whose wake-ups call `hook.wake(token)`.
    pub fn new(hook: Arc<dyn Wake>, token: u32) -> Self {
        Self { queue: Mutex::new(VecDeque::new()), state: AtomicU8::new(0), token, hook }
    }

    /// The token its wake-ups carry.
    pub fn token(&self) -> u32 {
        self.token
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        // A VecDeque is never left half-updated by a panic in our own code.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends; if the owner was waiting (see prepare_wait), clears that and calls hook.wake(token) exactly once.
    pub fn push(&self, item: T) -> Result<(), Closed<T>> {
        let mut queue = self.lock();
        let previous = self.state.load(Ordering::Acquire);
        if previous & CLOSED != 0 {
            return Err(Closed(item));
        }
        queue.push_back(item);
        if previous & WAITING != 0 {
            self.state.store(previous & !WAITING, Ordering::Release);
        }
        drop(queue);
        if previous & WAITING != 0 {
            self.hook.wake(self.token);
        }
        Ok(())
    }

    /// Owner: moves everything queued into `out` (in order), returns the count.
    pub fn drain_into(&self, out: &mut VecDeque<T>) -> usize {
        let mut queue = self.lock();
        let count = queue.len();
        if out.is_empty() {
            // Swapping keeps both buffers' allocations in circulation.
            std::mem::swap(out, &mut *queue);
        } else {
            out.extend(queue.drain(..));
        }
        count
    }

    /// Owner: takes the oldest item.
    pub fn pop(&self) -> Option<T> {
        self.lock().pop_front()
    }

    /// Owner: about to block. Returns false (and does not wait) if items are already queued; true means the next push wakes.
    pub fn prepare_wait(&self) -> bool {
        let queue = self.lock();
        if !queue.is_empty() || self.state.load(Ordering::Acquire) & CLOSED != 0 {
            // Nothing will ever be pushed to a closed mailbox, so never wait on one.
            return false;
        }
        let state = self.state.load(Ordering::Acquire);
        self.state.store(state | WAITING, Ordering::Release);
        true
    }

    /// Owner: no longer waiting (e.g. woke by a timer); a later push need not wake.
    pub fn cancel_wait(&self) {
        self.state.fetch_and(!WAITING, Ordering::AcqRel);
    }

    /// Whether the owner is registered as waiting.
    pub fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) & WAITING != 0
    }

    /// Refuses every later push and returns what was still queued, in order.
    pub fn close(&self) -> Vec<T> {
        let mut queue = self.lock();
        self.state.store(CLOSED, Ordering::Release);
        queue.drain(..).collect()
    }

    /// Whether [`Mailbox::close`] has been called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Whether some queued item satisfies `f` (for a look from another thread at what waits,
    /// such as a request to end the owner).
    pub fn any(&self, f: impl FnMut(&T) -> bool) -> bool {
        self.lock().iter().any(f)
    }

    /// Number of queued items.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

impl<T> fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("token", &self.token)
            .field("len", &self.len())
            .field("waiting", &self.is_waiting())
            .field("closed", &self.is_closed())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Condvar;
    use std::thread;
    use std::time::Duration;

    /// Counts wake-ups and lets a thread block until one arrives.
    #[derive(Default)]
    struct WakeCounter {
        pending: std::sync::Mutex<usize>,
        arrived: Condvar,
        total: AtomicUsize,
    }

    impl Wake for WakeCounter {
        fn wake(&self, token: u32) {
            assert_eq!(token, 7);
            self.total.fetch_add(1, Ordering::SeqCst);
            *self.pending.lock().unwrap_or_else(PoisonError::into_inner) += 1;
            self.arrived.notify_one();
        }
    }

    impl WakeCounter {
        /// Takes one wake-up, failing the test if none comes within the timeout.
        fn wait_for_wake(&self) {
            let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            let (mut pending, timeout) = self
                .arrived
                .wait_timeout_while(pending, Duration::from_secs(5), |pending| *pending == 0)
                .unwrap_or_else(PoisonError::into_inner);
            assert!(!timeout.timed_out(), "lost wake-up");
            *pending -= 1;
        }
    }

    fn mailbox<T>() -> (Mailbox<T>, Arc<WakeCounter>) {
        let counter = Arc::new(WakeCounter::default());
        (Mailbox::new(counter.clone(), 7), counter)
    }

    #[test]
    fn mailbox_is_small() {
        assert!(std::mem::size_of::<Mailbox<u64>>() <= 80);
    }

    #[test]
    fn push_pop_drain_in_order() {
        let (mailbox, counter) = mailbox();
        for i in 0..5 {
            mailbox.push(i).expect("open");
        }
        assert_eq!(mailbox.len(), 5);
        assert_eq!(mailbox.pop(), Some(0));
        let mut out = VecDeque::from([100]);
        assert_eq!(mailbox.drain_into(&mut out), 4);
        assert_eq!(out, [100, 1, 2, 3, 4]);
        assert!(mailbox.is_empty());
        let mut out = VecDeque::new();
        mailbox.push(9).expect("open");
        assert_eq!(mailbox.drain_into(&mut out), 1);
        assert_eq!(out, [9]);
        assert_eq!(counter.total.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn push_after_close_returns_the_item() {
        let (mailbox, _) = mailbox();
        mailbox.push("a".to_string()).expect("open");
        mailbox.push("b".to_string()).expect("open");
        assert_eq!(mailbox.close(), ["a", "b"]);
        assert!(mailbox.is_closed());
        let Closed(item) = mailbox.push("c".to_string()).expect_err("closed");
        assert_eq!(item, "c");
        assert!(mailbox.is_empty());
        assert!(!mailbox.prepare_wait());
        assert_eq!(Closed(1).to_string(), "mailbox is closed");
    }

    #[test]
    fn exactly_one_wake_per_wait() {
        let (mailbox, counter) = mailbox();
        assert!(mailbox.prepare_wait());
        assert!(mailbox.is_waiting());
        mailbox.push(1).expect("open");
        mailbox.push(2).expect("open");
        assert!(!mailbox.is_waiting());
        assert_eq!(counter.total.load(Ordering::SeqCst), 1);
        // Items queued: the owner must not wait.
        assert!(!mailbox.prepare_wait());
        assert_eq!(mailbox.drain_into(&mut VecDeque::new()), 2);
        // A cancelled wait is not woken.
        assert!(mailbox.prepare_wait());
        mailbox.cancel_wait();
        mailbox.push(3).expect("open");
        assert_eq!(counter.total.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wake_up_race_with_threads() {
        const SENDERS: usize = 3;
        const PER_SENDER: usize = 3000;
        let (mailbox, counter) = mailbox::<(usize, usize)>();
        let mut received = VecDeque::new();
        let mut waits = 0;
        thread::scope(|scope| {
            for sender in 0..SENDERS {
                let mailbox = &mailbox;
                scope.spawn(move || {
                    for seq in 0..PER_SENDER {
                        mailbox.push((sender, seq)).expect("open");
                    }
                });
            }
            while received.len() < SENDERS * PER_SENDER {
                if mailbox.drain_into(&mut received) == 0 && mailbox.prepare_wait() {
                    waits += 1;
                    counter.wait_for_wake();
                }
            }
        });
        assert_eq!(counter.total.load(Ordering::SeqCst), waits);
        let mut next = [0; SENDERS];
        for (sender, seq) in received {
            assert_eq!(seq, next[sender], "sender {sender} out of order");
            next[sender] += 1;
        }
    }

    proptest! {
        /// `script` interleaves senders (values 0..4 push for that sender) with owner
        /// actions (4 = pop, 5 = drain); every sender's items arrive in order, none lost.
        #[test]
        fn per_sender_fifo_for_any_interleaving(script in prop::collection::vec(0u8..6, 0..300)) {
            let (mailbox, _) = mailbox::<(u8, u32)>();
            let mut sent = [0u32; 4];
            let mut received = Vec::new();
            for step in script {
                match step {
                    4 => received.extend(mailbox.pop()),
                    5 => {
                        let mut out = VecDeque::new();
                        mailbox.drain_into(&mut out);
                        received.extend(out);
                    }
                    sender => {
                        let index = usize::from(sender);
                        mailbox.push((sender, sent[index])).expect("open");
                        sent[index] += 1;
                    }
                }
            }
            received.extend(mailbox.close());
            let mut next = [0u32; 4];
            for (sender, seq) in received {
                let index = usize::from(sender);
                prop_assert_eq!(seq, next[index]);
                next[index] += 1;
            }
            prop_assert_eq!(next, sent);
        }
    }

    proptest! {
        // Thread spawning per case is slow; fewer cases keep the suite fast.
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Real threads: each sender pushes a generated number of items.
        #[test]
        fn per_sender_fifo_with_threads(counts in prop::collection::vec(0usize..200, 1..4)) {
            let (mailbox, _) = mailbox::<(usize, usize)>();
            let total: usize = counts.iter().sum();
            let mut received = VecDeque::new();
            thread::scope(|scope| {
                for (sender, &count) in counts.iter().enumerate() {
                    let mailbox = &mailbox;
                    scope.spawn(move || {
                        for seq in 0..count {
                            mailbox.push((sender, seq)).expect("open");
                        }
                    });
                }
                while received.len() < total {
                    if mailbox.drain_into(&mut received) == 0 {
                        thread::yield_now();
                    }
                }
            });
            let mut next = vec![0; counts.len()];
            for (sender, seq) in received {
                prop_assert_eq!(seq, next[sender]);
                next[sender] += 1;
            }
            prop_assert_eq!(next, counts);
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicUsize;
    use loom::thread;

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(&self, _token: u32) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn setup() -> (loom::sync::Arc<Mailbox<u32>>, Arc<CountWakes>) {
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let mailbox = loom::sync::Arc::new(Mailbox::new(wakes.clone(), 0));
        (mailbox, wakes)
    }

    #[test]
    fn loom_prepare_wait_racing_push() {
        loom::model(|| {
            let (mailbox, wakes) = setup();
            let sender = {
                let mailbox = mailbox.clone();
                thread::spawn(move || mailbox.push(1).expect("open"))
            };
            let waited = mailbox.prepare_wait();
            sender.join().expect("sender panicked");
            let woken = wakes.0.load(Ordering::SeqCst);
            if waited {
                // Registered before the push: the push must have woken us.
                assert_eq!(woken, 1);
            } else {
                // The push came first: no wake, and the item is there to take.
                assert_eq!(woken, 0);
            }
            assert!(!mailbox.is_waiting());
            assert_eq!(mailbox.pop(), Some(1));
        });
    }

    #[test]
    fn loom_two_pushes_wake_once() {
        loom::model(|| {
            let (mailbox, wakes) = setup();
            assert!(mailbox.prepare_wait());
            let senders: Vec<_> = (0..2)
                .map(|i| {
                    let mailbox = mailbox.clone();
                    thread::spawn(move || mailbox.push(i).expect("open"))
                })
                .collect();
            for sender in senders {
                sender.join().expect("sender panicked");
            }
            assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
            assert_eq!(mailbox.len(), 2);
        });
    }

    #[test]
    fn loom_cancel_wait_racing_push() {
        loom::model(|| {
            let (mailbox, wakes) = setup();
            assert!(mailbox.prepare_wait());
            let sender = {
                let mailbox = mailbox.clone();
                thread::spawn(move || mailbox.push(1).expect("open"))
            };
            mailbox.cancel_wait();
            sender.join().expect("sender panicked");
            // Either the push saw the wait (one wake) or the cancel came first (none).
            assert!(wakes.0.load(Ordering::SeqCst) <= 1);
            assert!(!mailbox.is_waiting());
            assert_eq!(mailbox.pop(), Some(1));
        });
    }
}
