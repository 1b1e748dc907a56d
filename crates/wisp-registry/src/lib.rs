//! wisp-registry: loads the YAML registry (the only Wisp crate that parses YAML) into typed
//! entries, and keeps the local name registry (name -> PID).
//!
//! A registry file has `version: "1.0"` (optional), `namespace: app.sub` and `entries: [...]`;
//! each entry has `name`, `kind` and kind-specific fields at its root. Entry IDs are
//! `namespace:name`. Every problem is reported with its file, line and entry.
//!
//! Entries carry the types of the crates that use them, not copies: a lifecycle's `restart` is
//! [`wisp_supervisor::RestartPolicyParams`], a `security.policy` entry's policy is a
//! [`wisp_security::Policy`] and a lifecycle's actor a [`wisp_security::Actor`].

mod duration;
mod load;
mod names;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

pub use duration::{parse_duration, parse_go_duration, DurationError};
pub use names::{Claim, ClaimError, NameError, NameRegistry};
pub use wisp_core::Value;
use wisp_security::{Actor, Policy};
use wisp_supervisor::RestartPolicyParams;

/// The `modules:` names Wisp provides to `require`.
pub const PROVIDED_MODULES: &[&str] = &["time", "io", "security", "uuid", "ctx"];

/// `namespace:name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId {
    pub namespace: String,
    pub name: String,
}

impl EntryId {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> EntryId {
        EntryId { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid entry ID `{0}`: expected namespace:name")]
pub struct EntryIdError(pub String);

impl FromStr for EntryId {
    type Err = EntryIdError;
    fn from_str(s: &str) -> Result<EntryId, EntryIdError> {
        let bad = || EntryIdError(s.to_string());
        let (ns, name) = s.split_once(':').ok_or_else(bad)?;
        let ok = |part: &str| !part.is_empty() && !part.contains(char::is_whitespace) && !part.contains(':');
        if !ok(ns) || !ok(name) {
            return Err(bad());
        }
        Ok(EntryId::new(ns, name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EntryKind {
    ProcessLua(LuaEntry),
    FunctionLua(LuaEntry),
    LibraryLua(LuaEntry),
    ProcessHost(HostSpec),
    TerminalHost(HostSpec),
    ProcessService(ServiceSpec),
    /// A `security.policy` entry: its `policy:` (with the entry ID, `ns:name`, as its `id`) and
    /// the entry's `groups`.
    SecurityPolicy {
        policy: Policy,
        groups: Vec<String>,
    },
    /// A kind Wisp does not know (a warning at load).
    Other {
        kind: String,
    },
}

impl EntryKind {
    /// The YAML `kind:` string.
    pub fn name(&self) -> &str {
        match self {
            EntryKind::ProcessLua(_) => "process.lua",
            EntryKind::FunctionLua(_) => "function.lua",
            EntryKind::LibraryLua(_) => "library.lua",
            EntryKind::ProcessHost(_) => "process.host",
            EntryKind::TerminalHost(_) => "terminal.host",
            EntryKind::ProcessService(_) => "process.service",
            EntryKind::SecurityPolicy { .. } => "security.policy",
            EntryKind::Other { kind } => kind,
        }
    }

    /// The Lua code of `process.lua`, `function.lua` and `library.lua` entries.
    pub fn lua(&self) -> Option<&LuaEntry> {
        match self {
            EntryKind::ProcessLua(l) | EntryKind::FunctionLua(l) | EntryKind::LibraryLua(l) => Some(l),
            _ => None,
        }
    }

    /// The lifecycle of hosts and services.
    pub fn lifecycle(&self) -> Option<&Lifecycle> {
        match self {
            EntryKind::ProcessHost(h) | EntryKind::TerminalHost(h) => Some(&h.lifecycle),
            EntryKind::ProcessService(s) => Some(&s.lifecycle),
            _ => None,
        }
    }

    /// The policy of a `security.policy` entry.
    pub fn policy(&self) -> Option<&Policy> {
        match self {
            EntryKind::SecurityPolicy { policy, .. } => Some(policy),
            _ => None,
        }
    }

    /// Entries that can run as processes (`process.lua`, `function.lua`).
    pub fn is_runnable(&self) -> bool {
        matches!(self, EntryKind::ProcessLua(_) | EntryKind::FunctionLua(_))
    }

    pub fn is_host(&self) -> bool {
        matches!(self, EntryKind::ProcessHost(_) | EntryKind::TerminalHost(_))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LuaEntry {
    /// Resolved relative to the YAML file's folder.
    pub source_path: PathBuf,
    /// The file's contents, read at load.
    pub source: Arc<str>,
    /// Default `main` (meaningless for libraries).
    pub method: String,
    pub modules: Vec<String>,
    pub imports: BTreeMap<String, EntryId>,
    /// Scalars as their text; nested values as compact YAML.
    pub meta: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostSpec {
    /// `None`: one per core.
    pub workers: Option<usize>,
    pub max_processes: Option<usize>,
    pub limits: HostLimits,
    pub lifecycle: Lifecycle,
}

/// A process host's `limits:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostLimits {
    /// The longest one process may run without yielding where it cannot be preempted; `None`:
    /// not given (the runtime's default), zero: no limit.
    pub max_step: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    pub process: EntryId,
    pub host: EntryId,
    /// The arguments the service's method is called with.
    pub input: Vec<Value>,
    pub lifecycle: Lifecycle,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub auto_start: bool,
    pub requires: Vec<EntryId>,
    pub start_timeout: Option<Duration>,
    pub stop_timeout: Duration,
    pub stable_threshold: Duration,
    /// `lifecycle.restart`, as the supervisor takes it; absent fields keep
    /// [`RestartPolicyParams::default`] (the contract's defaults).
    pub restart: RestartPolicyParams,
    pub security: Option<SecuritySpec>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            auto_start: false,
            requires: Vec::new(),
            start_timeout: None,
            stop_timeout: Duration::from_secs(10),
            stable_threshold: Duration::from_secs(5),
            restart: RestartPolicyParams::default(),
            security: None,
        }
    }
}

/// `lifecycle.security`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecuritySpec {
    pub actor: Option<Actor>,
    pub policies: Vec<EntryId>,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: EntryId,
    pub kind: EntryKind,
    pub location: Location,
}

/// A problem (or warning) found while loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub entry: Option<EntryId>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.entry {
            Some(id) => write!(f, "{}: entry {}: {}", self.location, id, self.message),
            None => write!(f, "{}: {}", self.location, self.message),
        }
    }
}

/// Every error found while loading (not just the first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadErrors(pub Vec<Diagnostic>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// The outcome of [`Registry::check_dir`]: every error and every warning.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// The loaded entries of an app.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: Vec<Entry>,
    index: HashMap<EntryId, usize>,
    warnings: Vec<Diagnostic>,
}

impl Registry {
    /// Loads every `*.yaml` file under `dir` (recursively, sorted by path).
    pub fn load_dir(dir: &Path) -> Result<Registry, LoadErrors> {
        let (registry, errors) = load::load_dir(dir);
        if errors.is_empty() {
            Ok(registry)
        } else {
            Err(LoadErrors(errors))
        }
    }

    /// Loads `dir` and returns every error and warning (for `wisp check`).
    pub fn check_dir(dir: &Path) -> CheckReport {
        let (registry, errors) = load::load_dir(dir);
        CheckReport { errors, warnings: registry.warnings }
    }

    pub fn get(&self, id: &EntryId) -> Option<&Entry> {
        self.index.get(id).map(|&i| &self.entries[i])
    }

    /// In file order (files sorted by path, entries as written).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// The services to start with the app (`lifecycle.auto_start`), in file order, with their
    /// entry IDs.
    pub fn auto_start_services(&self) -> impl Iterator<Item = (&EntryId, &ServiceSpec)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::ProcessService(s) if s.lifecycle.auto_start => Some((&e.id, s)),
            _ => None,
        })
    }

    /// Unknown kinds; modules Wisp does not provide.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests;
