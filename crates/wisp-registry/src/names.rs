//! The local name registry: name -> PID, with a reverse index for cheap release on exit.
//!
//! Protocol with the process table (the caller's, reached through `is_alive`): a process's exit
//! first removes it from the table, then calls [`NameRegistry::release_all`]. A binding is made
//! under the registry's write lock after `is_alive` says the process is in the table, with
//! `bound` raised *before* that look. So either the look comes after the removal (the binding is
//! refused), or the exit's later read of `bound` sees it raised and takes the lock, waiting for
//! the binding to finish and then releasing it. No name stays bound to a process that has ended.

use std::collections::HashMap;

#[cfg(loom)]
use loom::sync::{
    atomic::{AtomicUsize, Ordering},
    RwLock, RwLockReadGuard, RwLockWriteGuard,
};
#[cfg(not(loom))]
use std::sync::{
    atomic::{AtomicUsize, Ordering},
    RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use wisp_core::Pid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid name `{name}`: {reason}")]
    Invalid { name: String, reason: &'static str },
    #[error("name is already registered to another process")]
    NameTaken(Pid),
    /// The process to bind is not alive.
    #[error("process not found")]
    NoProcess(Pid),
}

/// What [`NameRegistry::claim`] found or made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A live process already held the name.
    Held(Pid),
    /// The name was free: the process `start` made now holds it.
    Started(Pid),
}

/// Why [`NameRegistry::claim`] bound nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError<E> {
    #[error(transparent)]
    Name(NameError),
    /// `start` failed; the name stays free.
    #[error(transparent)]
    Start(E),
}

#[derive(Default)]
struct Inner {
    names: HashMap<String, Pid>,
    by_pid: HashMap<Pid, Vec<String>>,
}

impl Inner {
    fn unbind(&mut self, name: &str, pid: Pid) {
        if let Some(list) = self.by_pid.get_mut(&pid) {
            list.retain(|n| n != name);
            if list.is_empty() {
                self.by_pid.remove(&pid);
            }
        }
    }
}

/// Local names of processes. All operations are atomic with respect to each other.
#[derive(Default)]
pub struct NameRegistry {
    inner: RwLock<Inner>,
    /// Names bound, mirrored outside the lock: most processes hold none, and every exit asks.
    bound: AtomicUsize,
}

fn validate(name: &str) -> Result<(), NameError> {
    let reason = if name.is_empty() {
        "a name must not be empty"
    } else if name.starts_with('{') {
        "a name must not look like a PID (start with `{`)"
    } else {
        return Ok(());
    };
    Err(NameError::Invalid { name: name.to_string(), reason })
}

impl NameRegistry {
    pub fn new() -> NameRegistry {
        NameRegistry::default()
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Raises `bound` above the names now bound, before a binding looks at the process table
    /// (see the module docs); the caller holds the write lock.
    fn announce_binding(&self, inner: &Inner) {
        self.bound.store(inner.names.len() + 1, Ordering::SeqCst);
    }

    fn bind(&self, inner: &mut Inner, name: &str, pid: Pid) {
        inner.names.insert(name.to_string(), pid);
        inner.by_pid.entry(pid).or_default().push(name.to_string());
    }

    /// Binds `name` to `pid`. Re-binding a name to the same pid is Ok. A `pid` for which
    /// `is_alive` is false -> `Err(NoProcess)`. If the name is held by another pid for which
    /// `is_alive(other)` is true -> `Err(NameTaken(other))`; if the holder is dead the name is
    /// taken over. `is_alive` runs under the registry's lock: it must not call back into this
    /// registry.
    pub fn register(&self, name: &str, pid: Pid, is_alive: impl Fn(Pid) -> bool) -> Result<(), NameError> {
        validate(name)?;
        let mut inner = self.write();
        self.announce_binding(&inner);
        let result = self.register_locked(&mut inner, name, pid, &is_alive);
        self.bound.store(inner.names.len(), Ordering::SeqCst);
        result
    }

    fn register_locked(
        &self,
        inner: &mut Inner,
        name: &str,
        pid: Pid,
        is_alive: &impl Fn(Pid) -> bool,
    ) -> Result<(), NameError> {
        if !is_alive(pid) {
            return Err(NameError::NoProcess(pid));
        }
        if let Some(&holder) = inner.names.get(name) {
            if holder == pid {
                return Ok(());
            }
            if is_alive(holder) {
                return Err(NameError::NameTaken(holder));
            }
            inner.unbind(name, holder);
        }
        self.bind(inner, name, pid);
        Ok(())
    }

    /// The live holder of `name`, or else a process `start` makes, bound to `name` before any
    /// other claim or registration of it can look: concurrent claims of one name start one
    /// process. `start` and `is_alive` run under the registry's lock: they must not call back
    /// into this registry (`start` may well be slow: it blocks only name operations).
    pub fn claim<E>(
        &self,
        name: &str,
        is_alive: impl Fn(Pid) -> bool,
        start: impl FnOnce() -> Result<Pid, E>,
    ) -> Result<Claim, ClaimError<E>> {
        validate(name).map_err(ClaimError::Name)?;
        let mut inner = self.write();
        if let Some(&holder) = inner.names.get(name) {
            if is_alive(holder) {
                return Ok(Claim::Held(holder));
            }
            inner.unbind(name, holder);
            inner.names.remove(name);
        }
        // Announced before `start` puts the process in the table: it may end at once on another
        // thread, and its exit must then wait for this binding and undo it.
        self.announce_binding(&inner);
        let result = match start() {
            Ok(pid) => {
                self.bind(&mut inner, name, pid);
                Ok(Claim::Started(pid))
            }
            Err(e) => Err(ClaimError::Start(e)),
        };
        self.bound.store(inner.names.len(), Ordering::SeqCst);
        result
    }

    pub fn lookup(&self, name: &str) -> Option<Pid> {
        self.read().names.get(name).copied()
    }

    /// Removes the binding of `name`; true if there was one.
    pub fn unregister(&self, name: &str) -> bool {
        let mut inner = self.write();
        let removed = match inner.names.remove(name) {
            Some(pid) => {
                inner.unbind(name, pid);
                true
            }
            None => false,
        };
        self.bound.store(inner.names.len(), Ordering::SeqCst);
        removed
    }

    /// Removes every name bound to `pid` (called when a process exits, after it left the
    /// process table and before its exit signals go out); returns them in the order they were
    /// registered.
    pub fn release_all(&self, pid: Pid) -> Vec<String> {
        // A binding of `pid` that saw it alive raised `bound` before that look, and the look
        // came before `pid` left the table: it is counted here by now (see the module docs).
        if self.bound.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        // Most exiting processes hold no name even where some are bound: they share the read
        // lock instead of taking turns at the write lock.
        if !self.read().by_pid.contains_key(&pid) {
            return Vec::new();
        }
        let mut inner = self.write();
        let names = inner.by_pid.remove(&pid).unwrap_or_default();
        for name in &names {
            inner.names.remove(name);
        }
        self.bound.store(inner.names.len(), Ordering::SeqCst);
        names
    }

    /// The names bound to `pid`.
    pub fn names_of(&self, pid: Pid) -> Vec<String> {
        self.read().by_pid.get(&pid).cloned().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.read().names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Mutex};
    use loom::thread;
    use std::collections::HashSet;

    fn pid(slot: u32) -> Pid {
        Pid::new(wisp_core::HostIndex(0), slot, 1)
    }

    /// The model's process table: the live processes, as the runtime's table would say.
    #[derive(Default)]
    struct Table(Mutex<HashSet<Pid>>);

    impl Table {
        fn insert(&self, pid: Pid) {
            self.0.lock().expect("table").insert(pid);
        }

        fn is_alive(&self, pid: Pid) -> bool {
            self.0.lock().expect("table").contains(&pid)
        }

        /// A process's exit as the runtime does it: out of the table, then its names released.
        fn exit(&self, names: &NameRegistry, pid: Pid) {
            self.0.lock().expect("table").remove(&pid);
            names.release_all(pid);
        }
    }

    struct World {
        names: NameRegistry,
        table: Table,
    }

    fn world() -> Arc<World> {
        Arc::new(World { names: NameRegistry::new(), table: Table::default() })
    }

    /// Claims `svc`, starting `candidate` (put into the table) if the name is free.
    fn claim(world: &World, candidate: Pid) -> Claim {
        world
            .names
            .claim(
                "svc",
                |p| world.table.is_alive(p),
                || {
                    world.table.insert(candidate);
                    Ok::<_, ()>(candidate)
                },
            )
            .expect("claim")
    }

    #[test]
    fn loom_two_claims_of_one_name_start_one_process() {
        loom::model(|| {
            let world = world();
            let other = {
                let world = world.clone();
                thread::spawn(move || claim(&world, pid(2)))
            };
            let mine = claim(&world, pid(1));
            let theirs = other.join().expect("claiming thread panicked");
            let holder = match (mine, theirs) {
                (Claim::Started(a), Claim::Held(b)) | (Claim::Held(b), Claim::Started(a)) => {
                    assert_eq!(a, b, "the loser must see the winner's process");
                    a
                }
                other => panic!("two claims must start exactly one process: {other:?}"),
            };
            assert_eq!(world.names.lookup("svc"), Some(holder));
            assert_eq!(world.table.0.lock().expect("table").len(), 1, "one process started");
        });
    }

    /// `register(name, p)` racing the exit of `p`; `p` may already hold another name, so the exit
    /// goes past `bound` to the reverse index. Whatever register returned, no name is left
    /// bound to the ended process.
    fn register_racing_exit(already_named: bool) {
        loom::model(move || {
            let world = world();
            let p = pid(1);
            world.table.insert(p);
            if already_named {
                world.names.register("first", p, |q| world.table.is_alive(q)).expect("alive");
            }
            let exit = {
                let world = world.clone();
                thread::spawn(move || world.table.exit(&world.names, p))
            };
            match world.names.register("svc", p, |q| world.table.is_alive(q)) {
                Ok(()) | Err(NameError::NoProcess(_)) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
            exit.join().expect("exit thread panicked");
            assert_eq!(world.names.lookup("svc"), None, "a name outlived its process");
            assert_eq!(world.names.lookup("first"), None);
            assert!(world.names.is_empty());
        });
    }

    #[test]
    fn loom_register_racing_exit() {
        register_racing_exit(false);
    }

    #[test]
    fn loom_register_racing_exit_of_a_named_process() {
        register_racing_exit(true);
    }

    #[test]
    fn loom_claimed_process_exiting_at_once() {
        loom::model(|| {
            let world = world();
            let started = Arc::new(AtomicBool::new(false));
            let p = pid(1);
            let exit = {
                let world = world.clone();
                let started = started.clone();
                thread::spawn(move || {
                    // The new process runs as soon as it is in the table and ends at once.
                    while !started.load(Ordering::Acquire) {
                        thread::yield_now();
                    }
                    world.table.exit(&world.names, p);
                })
            };
            let claimed = world.names.claim(
                "svc",
                |q| world.table.is_alive(q),
                || {
                    world.table.insert(p);
                    started.store(true, Ordering::Release);
                    Ok::<_, ()>(p)
                },
            );
            assert_eq!(claimed, Ok(Claim::Started(p)));
            exit.join().expect("exit thread panicked");
            assert_eq!(world.names.lookup("svc"), None, "the name outlived its process");
            assert!(world.names.is_empty());
        });
    }
}
