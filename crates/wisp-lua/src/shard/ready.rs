//! A shard's queues: the ready queue of process tokens (with its LIFO slot), the free
//! mailbox tokens and the processes by token.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Mailbox tokens of a shard: the most recently freed first, so a new process reuses a slot
/// (and the memory around it) that was in use a moment ago.
#[derive(Default)]
pub(crate) struct Tokens {
    pub(crate) next: u32,
    pub(crate) free: Vec<u32>,
}

impl Tokens {
    pub(crate) fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }

    pub(crate) fn give_back(&mut self, token: u32) {
        self.free.push(token);
    }
}

/// Consecutive turns a LIFO slot may take before the queue's head gets one.
pub(crate) const MAX_LIFO_STREAK: u32 = 3;

/// The shard's ready processes: a FIFO queue plus a LIFO slot for the process most recently
/// woken by a process of this same shard (as tokio's LIFO slot): a reply then runs next, while
/// the data it needs is still in cache, and a parent collecting its children's results runs
/// before more of the tree is started. The streak bound keeps the queue from starving.
#[derive(Default)]
pub(crate) struct ReadyQueue {
    pub(crate) queue: VecDeque<u32>,
    pub(crate) lifo: Option<u32>,
    pub(crate) streak: u32,
}

impl ReadyQueue {
    pub(crate) fn push_back(&mut self, token: u32) {
        self.queue.push_back(token);
    }

    pub(crate) fn push_front(&mut self, token: u32) {
        self.queue.push_front(token);
    }

    pub(crate) fn push_lifo(&mut self, token: u32) {
        if let Some(previous) = self.lifo.replace(token) {
            self.queue.push_back(previous);
        }
    }

    pub(crate) fn pop(&mut self) -> Option<u32> {
        if self.lifo.is_some() && (self.streak < MAX_LIFO_STREAK || self.queue.is_empty()) {
            self.streak += 1;
            return self.lifo.take();
        }
        self.streak = 0;
        self.queue.pop_front().or_else(|| self.lifo.take())
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len() + self.lifo.is_some() as usize
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ready queue behind its lock, with its length mirrored outside it: placement asks other
/// shards how busy they are on every spawn and needs no exact answer.
#[derive(Default)]
pub(crate) struct Ready {
    pub(crate) queue: Mutex<ReadyQueue>,
    pub(crate) len: AtomicUsize,
}

impl Ready {
    pub(crate) fn lock(&self) -> ReadyGuard<'_> {
        ReadyGuard { queue: lock(&self.queue), len: &self.len }
    }
}

/// Updates the mirrored length when the lock is released.
pub(crate) struct ReadyGuard<'a> {
    pub(crate) queue: MutexGuard<'a, ReadyQueue>,
    pub(crate) len: &'a AtomicUsize,
}

impl std::ops::Deref for ReadyGuard<'_> {
    type Target = ReadyQueue;
    fn deref(&self) -> &ReadyQueue {
        &self.queue
    }
}

impl std::ops::DerefMut for ReadyGuard<'_> {
    fn deref_mut(&mut self) -> &mut ReadyQueue {
        &mut self.queue
    }
}

impl Drop for ReadyGuard<'_> {
    fn drop(&mut self) {
        self.len.store(self.queue.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn tokens_are_dense_and_the_last_freed_comes_back_first() {
        let mut tokens = Tokens::default();
        let first: Vec<u32> = (0..4).map(|_| tokens.take()).collect();
        assert_eq!(first, vec![0, 1, 2, 3]);
        tokens.give_back(1);
        tokens.give_back(3);
        assert_eq!([tokens.take(), tokens.take(), tokens.take()], [3, 1, 4]);
    }
}

#[cfg(test)]
mod ready_queue_tests {
    use super::*;

    #[test]
    fn the_lifo_slot_goes_first_but_not_forever() {
        let mut q = ReadyQueue::default();
        q.push_back(1);
        q.push_back(2);
        // Each wake-up from the shard itself takes the slot; the one it displaces queues.
        let mut order = Vec::new();
        for woken in 10..16 {
            q.push_lifo(woken);
            order.push(q.pop().expect("not empty"));
        }
        // Three LIFO turns, then the queue's head, and so on.
        assert_eq!(order, vec![10, 11, 12, 1, 14, 15]);
        assert_eq!(q.len(), 2);
        let rest: Vec<u32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, vec![2, 13]);
        assert!(q.is_empty());
    }

    #[test]
    fn push_lifo_keeps_the_displaced_token() {
        let mut q = ReadyQueue::default();
        q.push_lifo(1);
        q.push_lifo(2);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), None);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard lock is already reported by the worker; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
