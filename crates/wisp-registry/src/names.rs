//! The local name registry: name -> PID, with a reverse index for cheap release on exit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use wisp_core::Pid;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid name `{name}`: {reason}")]
    Invalid { name: String, reason: &'static str },
    #[error("name is already registered to another process")]
    NameTaken(Pid),
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

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds `name` to `pid`. Re-binding a name to the same pid is Ok. If the name is held by
    /// another pid for which `is_alive(other)` is true -> `Err(NameTaken(other))`; if the holder
    /// is dead the name is taken over. `is_alive` runs under the registry's lock: it must not
    /// call back into this registry.
    pub fn register(&self, name: &str, pid: Pid, is_alive: impl Fn(Pid) -> bool) -> Result<(), NameError> {
        validate(name)?;
        let mut inner = self.write();
        if let Some(&holder) = inner.names.get(name) {
            if holder == pid {
                return Ok(());
            }
            if is_alive(holder) {
                return Err(NameError::NameTaken(holder));
            }
            inner.unbind(name, holder);
        }
        inner.names.insert(name.to_string(), pid);
        inner.by_pid.entry(pid).or_default().push(name.to_string());
        self.bound.store(inner.names.len(), Ordering::SeqCst);
        Ok(())
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

    /// Removes every name bound to `pid` (called when a process exits, before its exit signals
    /// go out); returns them in the order they were registered.
    pub fn release_all(&self, pid: Pid) -> Vec<String> {
        // A binding of `pid` was made before its exit (by the process itself or its spawner),
        // so it is counted here by now.
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
