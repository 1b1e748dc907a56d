//! The process table of one host: a slab of mailboxes with generation-tagged slots.
//!
//! The table is split into stripes, each its own lock, so spawns and sends from different
//! workers rarely meet. A slot number is `key * STRIPES + stripe`; a slot's generation grows
//! each time it is freed, so a stale PID never reaches the slot's next occupant.

use std::sync::{Arc, Mutex, MutexGuard};

use slab::Slab;
use wisp_core::{Envelope, HostIndex, Pid};
use wisp_mailbox::Mailbox;

const STRIPES: usize = 16;

/// What the table knows of a live process.
#[derive(Clone)]
pub(crate) struct Slot {
    pub(crate) mailbox: Arc<Mailbox<Envelope>>,
    /// The process group (Lua shard, or native process) the process lives in.
    pub(crate) group: u32,
    /// Somebody waits for its exit result (`Node::exec`): only then does its exit look at the
    /// node's map of watchers, a lock every worker would otherwise take on every exit.
    pub(crate) watched: bool,
}

struct Occupied {
    slot: Slot,
    generation: u32,
}

#[derive(Default)]
struct Stripe {
    slots: Slab<Occupied>,
    generations: Vec<u32>,
}

pub(crate) struct ProcessTable {
    host: HostIndex,
    stripes: Box<[Mutex<Stripe>]>,
}

fn lock(stripe: &Mutex<Stripe>) -> MutexGuard<'_, Stripe> {
    stripe.lock().unwrap_or_else(|p| p.into_inner())
}

impl ProcessTable {
    pub(crate) fn new(host: HostIndex) -> ProcessTable {
        ProcessTable { host, stripes: (0..STRIPES).map(|_| Mutex::new(Stripe::default())).collect() }
    }

    /// Reserves a PID; `make` builds the slot knowing its PID (the mailbox needs it as token).
    pub(crate) fn insert(&self, hint: usize, make: impl FnOnce(Pid) -> Slot) -> Pid {
        let stripe_index = hint % STRIPES;
        let mut stripe = lock(&self.stripes[stripe_index]);
        let key = stripe.slots.vacant_key();
        if stripe.generations.len() <= key {
            stripe.generations.resize(key + 1, 0);
        }
        let generation = stripe.generations[key];
        let pid = Pid::new(self.host, (key * STRIPES + stripe_index) as u32, generation);
        stripe.slots.insert(Occupied { slot: make(pid), generation });
        pid
    }

    fn locate(&self, pid: Pid) -> Option<(usize, usize)> {
        if pid.host != self.host {
            return None;
        }
        let slot = pid.slot as usize;
        Some((slot % STRIPES, slot / STRIPES))
    }

    pub(crate) fn get(&self, pid: Pid) -> Option<Slot> {
        let (stripe, key) = self.locate(pid)?;
        let stripe = lock(&self.stripes[stripe]);
        match stripe.slots.get(key) {
            Some(o) if o.generation == pid.generation => Some(o.slot.clone()),
            _ => None,
        }
    }

    /// Runs `f` on the live slot of `pid` under its stripe lock (avoids cloning the Arc on sends).
    pub(crate) fn with<R>(&self, pid: Pid, f: impl FnOnce(&Slot) -> R) -> Option<R> {
        let (stripe, key) = self.locate(pid)?;
        let stripe = lock(&self.stripes[stripe]);
        match stripe.slots.get(key) {
            Some(o) if o.generation == pid.generation => Some(f(&o.slot)),
            _ => None,
        }
    }

    pub(crate) fn remove(&self, pid: Pid) -> Option<Slot> {
        let (stripe, key) = self.locate(pid)?;
        let mut stripe = lock(&self.stripes[stripe]);
        match stripe.slots.get(key) {
            Some(o) if o.generation == pid.generation => {
                let removed = stripe.slots.remove(key);
                stripe.generations[key] = removed.generation.wrapping_add(1);
                Some(removed.slot)
            }
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.stripes.iter().map(|s| lock(s).slots.len()).sum()
    }

    pub(crate) fn all(&self) -> Vec<Slot> {
        self.stripes
            .iter()
            .flat_map(|s| lock(s).slots.iter().map(|(_, o)| o.slot.clone()).collect::<Vec<_>>())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_mailbox::Wake;

    struct NoWake;
    impl Wake for NoWake {
        fn wake(&self, _: u32) {}
    }

    fn slot(pid: Pid) -> Slot {
        Slot { mailbox: Arc::new(Mailbox::new(Arc::new(NoWake), pid.slot)), group: 0, watched: false }
    }

    #[test]
    fn stale_pid_never_reaches_the_next_occupant() {
        let table = ProcessTable::new(HostIndex(0));
        let first = table.insert(3, slot);
        assert!(table.remove(first).is_some());
        let second = table.insert(3, slot);
        assert_eq!(first.slot, second.slot);
        assert_ne!(first, second);
        assert!(table.get(first).is_none());
        assert!(table.get(second).is_some());
        assert!(table.remove(first).is_none());
    }

    #[test]
    fn slots_are_unique_across_stripes() {
        let table = ProcessTable::new(HostIndex(0));
        let pids: Vec<Pid> = (0..100).map(|i| table.insert(i, slot)).collect();
        let mut slots: Vec<u32> = pids.iter().map(|p| p.slot).collect();
        slots.sort();
        slots.dedup();
        assert_eq!(slots.len(), 100);
        assert_eq!(table.len(), 100);
        assert!(pids.iter().all(|p| table.get(*p).is_some()));
    }

    #[test]
    fn other_hosts_pids_are_unknown() {
        let table = ProcessTable::new(HostIndex(0));
        let pid = table.insert(0, slot);
        assert!(table.get(Pid::new(HostIndex(1), pid.slot, pid.generation)).is_none());
    }
}
