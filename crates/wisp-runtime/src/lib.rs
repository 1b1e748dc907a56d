//! The composition root of Wisp: hosts with their worker pools and shards, the process table,
//! routing of sends and signals, exit propagation and the embedding API ([`Node::builder`]).
//!
//! Architecture invariants:
//! - Every process, Lua or native, is reached only through its mailbox in the process table;
//!   links and monitors are signals in that mailbox, so they keep send order with messages.
//! - On exit: names are released, the slot is freed, then EXIT goes to monitors and LINK_DOWN
//!   (error exits only) to links.
//! - This crate prints nothing: the terminal is a [`TerminalIo`] the embedder passes in, and log
//!   lines go through `tracing`.

mod native;
mod table;

use rustc_hash::FxHashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use wisp_core::{Envelope, ExitResult, HostIndex, Message, Payloads, Pid, Signal, Value};
use wisp_lua::{Admission, ChunkCache, LuaCode, Shard, ShardConfig, Watchdog, DEFAULT_MAX_STEP};
use wisp_mailbox::Mailbox;
use wisp_process::{
    Console, Dest, Exits, Kernel, NameError, Names, ProcessExit, Router, SendError, SpawnFlags, SpawnRequest, Spawner,
    Undelivered,
};
use wisp_registry::{Claim, ClaimError, EntryId, EntryKind, NameRegistry, Registry};
use wisp_scheduler::{Pool, PoolConfig, SystemClock, Timers};

pub use native::{Context, NativeFactory, Process, Step};
pub use wisp_process::{SpawnError, TerminalIo};

use native::{NativeTask, NativeWaker};
use table::{ProcessTable, Slot};

/// Why a node could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("entry {entry}: {message}")]
    Entry { entry: String, message: String },
    #[error("cannot start host {host}: {message}")]
    Host { host: String, message: String },
    #[error("cannot start the preemption watchdog: {0}")]
    Watchdog(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    Process,
    Terminal,
}

/// A host to create: its name (an entry ID), workers and kind.
#[derive(Debug, Clone)]
pub struct HostDef {
    pub name: String,
    pub kind: HostKind,
    pub workers: usize,
    pub shards: usize,
    pub max_processes: Option<usize>,
    /// The longest one process may run where it cannot be preempted (`limits.max_step`);
    /// `None` or zero: no limit.
    pub max_step: Option<Duration>,
}

enum Code {
    Lua(Arc<LuaCode>),
    /// A `library.lua` entry: imported by others, never run as a process.
    Library,
    Native(NativeFactory),
}

struct Host {
    name: String,
    kind: HostKind,
    max_processes: Option<usize>,
    pool: Mutex<Option<Pool>>,
    handle: wisp_scheduler::Handle,
    /// The host's timers, on a thread of their own: hosts never wait on each other's timers.
    timers: Mutex<Option<Timers>>,
    shards: OnceLock<Vec<Arc<Shard>>>,
    table: ProcessTable,
    /// Held across the look and the insert of a spawn onto a terminal host, which runs one
    /// process at a time.
    terminal_admission: Mutex<()>,
    next_shard: AtomicUsize,
    /// Per shard, where the current block of a burst of spawns goes: see [`place`].
    burst_targets: Box<[BurstTarget]>,
}

struct NodeInner {
    hosts: Vec<Host>,
    /// Hashed with Fx: looked up on every send by PID.
    host_names: FxHashMap<String, HostIndex>,
    code: FxHashMap<String, Code>,
    names: NameRegistry,
    /// Preempts busy Lua processes of every host (stopped at shutdown).
    watchdog: Mutex<Option<Watchdog>>,
    watchers: Mutex<FxHashMap<Pid, mpsc::Sender<ExitResult>>>,
    terminal: Option<Arc<dyn TerminalIo>>,
    me: OnceLock<std::sync::Weak<NodeInner>>,
}

/// A running Wisp runtime.
pub struct Node {
    inner: Arc<NodeInner>,
}

/// Builds a [`Node`] from a registry and native processes.
pub struct NodeBuilder {
    registry: Option<Registry>,
    hosts: Vec<HostDef>,
    natives: Vec<(String, NativeFactory)>,
    terminal: Option<Arc<dyn TerminalIo>>,
    default_workers: usize,
    shards_per_worker: usize,
}

/// The host `wisp exec` runs in when the registry declares no terminal host.
pub const DEFAULT_TERMINAL_HOST: &str = "wisp:terminal";

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

impl Node {
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            registry: None,
            hosts: Vec::new(),
            natives: Vec::new(),
            terminal: None,
            default_workers: cores(),
            shards_per_worker: 4,
        }
    }

    /// Starts `entry` on `host` with `args`; the caller is the runtime itself (no parent).
    pub fn spawn(&self, entry: &str, host: &str, args: Vec<Value>) -> Result<Pid, SpawnError> {
        self.inner.spawn_with(entry, host, args, Birth::default())
    }

    /// Starts `entry` on `host` and returns a receiver of its exit result.
    pub fn spawn_watched(
        &self,
        entry: &str,
        host: &str,
        args: Vec<Value>,
    ) -> Result<(Pid, mpsc::Receiver<ExitResult>), SpawnError> {
        let (tx, rx) = mpsc::channel();
        let birth = Birth { watcher: Some(tx), ..Birth::default() };
        let pid = self.inner.spawn_with(entry, host, args, birth)?;
        Ok((pid, rx))
    }

    /// Runs `entry` on `host` to its end and returns how it ended (`None` on timeout).
    pub fn exec(
        &self,
        entry: &str,
        host: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Option<ExitResult>, SpawnError> {
        let (_, rx) = self.spawn_watched(entry, host, args)?;
        Ok(rx.recv_timeout(timeout).ok())
    }

    /// Sends a message from the runtime (its sender is `""` to the receiver).
    pub fn send(&self, to: Pid, topic: &str, payloads: impl Into<Payloads>) -> Result<(), SendError> {
        let message = Message { from: None, topic: topic.into(), payloads: payloads.into() };
        self.inner.push(to, Envelope::Message(message))
    }

    pub fn render_pid(&self, pid: Pid) -> String {
        self.inner.render_pid(pid)
    }

    pub fn parse_pid(&self, text: &str) -> Option<Pid> {
        self.inner.parse_pid(text)
    }

    pub fn lookup_name(&self, name: &str) -> Option<Pid> {
        self.inner.names.lookup(name)
    }

    /// Live processes across all hosts.
    pub fn process_count(&self) -> usize {
        self.inner.hosts.iter().map(|h| h.table.len()).sum()
    }

    /// The name of the terminal host (where `wisp exec` runs its entry).
    pub fn terminal_host(&self) -> Option<&str> {
        self.inner.hosts.iter().find(|h| h.kind == HostKind::Terminal).map(|h| h.name.as_str())
    }

    pub fn host_names(&self) -> Vec<String> {
        self.inner.hosts.iter().map(|h| h.name.clone()).collect()
    }

    /// Stops every process and every worker.
    pub fn shutdown(&self) {
        let inner = &self.inner;
        for host in &inner.hosts {
            for shard in host.shards.get().into_iter().flatten() {
                shard.shutdown();
            }
            for slot in host.table.all() {
                slot.mailbox.close();
            }
        }
        for host in &inner.hosts {
            let pool = host.pool.lock().ok().and_then(|mut p| p.take());
            if let Some(pool) = pool {
                pool.shutdown();
            }
        }
        for host in &inner.hosts {
            let timers = host.timers.lock().ok().and_then(|mut t| t.take());
            if let Some(timers) = timers {
                timers.shutdown();
            }
        }
        drop(inner.watchdog.lock().ok().and_then(|mut w| w.take()));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl NodeBuilder {
    /// Takes hosts and Lua entries from a loaded registry.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Loads the registry folder `dir`.
    pub fn registry_dir(self, dir: &Path) -> Result<Self, wisp_registry::LoadErrors> {
        Ok(self.registry(Registry::load_dir(dir)?))
    }

    pub fn host(mut self, def: HostDef) -> Self {
        self.hosts.push(def);
        self
    }

    /// A process host with `workers` workers.
    pub fn process_host(self, name: &str, workers: usize) -> Self {
        let shards = workers * self.shards_per_worker;
        self.host(HostDef {
            name: name.into(),
            kind: HostKind::Process,
            workers,
            shards,
            max_processes: None,
            max_step: Some(DEFAULT_MAX_STEP),
        })
    }

    /// Registers a native process under an entry ID.
    pub fn native(
        mut self,
        entry: &str,
        factory: impl Fn(Vec<Value>) -> Box<dyn Process> + Send + Sync + 'static,
    ) -> Self {
        self.natives.push((entry.into(), Arc::new(factory)));
        self
    }

    pub fn terminal(mut self, io: Arc<dyn TerminalIo>) -> Self {
        self.terminal = Some(io);
        self
    }

    /// Workers of hosts that do not say (default: one per core).
    pub fn default_workers(mut self, workers: usize) -> Self {
        self.default_workers = workers.max(1);
        self
    }

    /// Shards (Luau VMs) of each process host per worker (default 4; at least 1). Hosts from the
    /// registry get theirs at `build`; [`NodeBuilder::process_host`] reads it when called, so
    /// set this first.
    pub fn shards_per_worker(mut self, shards: usize) -> Self {
        self.shards_per_worker = shards.max(1);
        self
    }

    pub fn build(self) -> Result<Node, BuildError> {
        let mut defs = self.hosts;
        let mut code = FxHashMap::default();
        if let Some(registry) = &self.registry {
            for entry in registry.entries() {
                let id = entry.id.to_string();
                match &entry.kind {
                    EntryKind::ProcessHost(spec) => {
                        let workers = spec.workers.unwrap_or(self.default_workers).max(1);
                        defs.push(HostDef {
                            name: id,
                            kind: HostKind::Process,
                            workers,
                            shards: workers * self.shards_per_worker,
                            max_processes: spec.max_processes,
                            max_step: Some(spec.limits.max_step.unwrap_or(DEFAULT_MAX_STEP)),
                        });
                    }
                    EntryKind::TerminalHost(_) => defs.push(HostDef {
                        name: id,
                        kind: HostKind::Terminal,
                        workers: 1,
                        shards: 1,
                        max_processes: None,
                        max_step: Some(DEFAULT_MAX_STEP),
                    }),
                    EntryKind::ProcessLua(_) | EntryKind::FunctionLua(_) => {
                        let lua = lua_code(registry, &entry.id, &mut Vec::new())?;
                        code.insert(id, Code::Lua(lua));
                    }
                    EntryKind::LibraryLua(_) => {
                        code.insert(id, Code::Library);
                    }
                    _ => {}
                }
            }
        }
        if !defs.iter().any(|d| d.kind == HostKind::Terminal) {
            defs.push(HostDef {
                name: DEFAULT_TERMINAL_HOST.into(),
                kind: HostKind::Terminal,
                workers: 1,
                shards: 1,
                max_processes: None,
                max_step: Some(DEFAULT_MAX_STEP),
            });
        }
        for (entry, factory) in self.natives {
            code.insert(entry, Code::Native(factory));
        }
        let watchdog =
            Watchdog::start(wisp_lua::DEFAULT_PREEMPT_TICK).map_err(|e| BuildError::Watchdog(e.to_string()))?;
        let watchdog_handle = watchdog.handle();
        let mut hosts = Vec::new();
        let mut timer_handles = Vec::new();
        let mut host_names = FxHashMap::default();
        for (i, def) in defs.iter().enumerate() {
            let index = HostIndex(i as u16);
            let pool = Pool::try_new(PoolConfig { name: def.name.clone(), workers: def.workers.max(1) })
                .map_err(|e| BuildError::Host { host: def.name.clone(), message: e.to_string() })?;
            let timers = Timers::with_clock(Arc::new(SystemClock))
                .map_err(|e| BuildError::Host { host: def.name.clone(), message: e.to_string() })?;
            timer_handles.push(timers.handle());
            host_names.insert(def.name.clone(), index);
            hosts.push(Host {
                name: def.name.clone(),
                kind: def.kind,
                max_processes: def.max_processes,
                handle: pool.handle(),
                pool: Mutex::new(Some(pool)),
                timers: Mutex::new(Some(timers)),
                shards: OnceLock::new(),
                table: ProcessTable::new(index),
                terminal_admission: Mutex::new(()),
                next_shard: AtomicUsize::new(0),
                burst_targets: (0..def.shards.max(1)).map(|_| BurstTarget::default()).collect(),
            });
        }
        let inner = Arc::new(NodeInner {
            hosts,
            host_names,
            code,
            names: NameRegistry::new(),
            watchdog: Mutex::new(Some(watchdog)),
            watchers: Mutex::new(FxHashMap::default()),
            terminal: self.terminal,
            me: OnceLock::new(),
        });
        let _ = inner.me.set(Arc::downgrade(&inner));
        let chunks = Arc::new(ChunkCache::new());
        for ((host, def), timer_handle) in inner.hosts.iter().zip(&defs).zip(timer_handles) {
            let mut shards = Vec::new();
            for _ in 0..def.shards.max(1) {
                let kernel: Arc<dyn Kernel> = inner.clone();
                let group = shards.len() as u32;
                let config =
                    ShardConfig { host: def.name.clone(), group, max_step: def.max_step, ..ShardConfig::default() };
                let shard = Shard::new(
                    kernel,
                    host.handle.clone(),
                    timer_handle.clone(),
                    &watchdog_handle,
                    chunks.clone(),
                    config,
                )
                .map_err(|e| BuildError::Host { host: def.name.clone(), message: e.to_string() })?;
                shards.push(shard);
            }
            let _ = host.shards.set(shards);
        }
        Ok(Node { inner })
    }
}

/// Resolves a Lua entry and, recursively, its imports.
fn lua_code(registry: &Registry, id: &EntryId, path: &mut Vec<EntryId>) -> Result<Arc<LuaCode>, BuildError> {
    let err = |message: String| BuildError::Entry { entry: id.to_string(), message };
    let entry = registry.get(id).ok_or_else(|| err("no such entry".into()))?;
    let lua = entry.kind.lua().ok_or_else(|| err(format!("is a {}, not Lua code", entry.kind.name())))?;
    if path.contains(id) {
        return Err(err("imports form a cycle".into()));
    }
    path.push(id.clone());
    let mut imports = std::collections::BTreeMap::new();
    for (alias, target) in &lua.imports {
        imports.insert(alias.clone(), lua_code(registry, target, path)?);
    }
    path.pop();
    Ok(Arc::new(LuaCode {
        entry: id.to_string(),
        chunk_name: lua.source_path.display().to_string(),
        source: lua.source.clone(),
        method: lua.method.clone(),
        modules: lua.modules.clone(),
        imports,
    }))
}

/// Where a spawned process goes. By default next to its parent, run before what is already
/// queued there: parent and child then message each other without crossing workers, and a
/// spawn tree is walked depth-first, keeping few processes alive. When the parent's shard
/// already has others waiting and the next shard in turn has nothing to run, the child goes
/// there instead, so idle workers find work to steal (top levels of a tree spread out, deep
/// levels stay local).
///
/// A long burst of spawns in one step (a ring, a pipeline, a fork-join) goes in blocks of
/// [`BURST_BLOCK`] consecutive children, each block to one shard: processes spawned one after
/// another often talk to each other, and spread one by one over the shards an idle worker keeps
/// emptying, nearly every message between them would wake another shard.
fn place(host: &Host, parent_group: Option<u32>, burst: u32, shard_count: usize) -> Placement {
    // The shared turn counter is touched only when a shard must be chosen: every worker
    // spawning would otherwise pull its cache line back and forth.
    let next_in_turn = || host.next_shard.fetch_add(1, Ordering::Relaxed) % shard_count;
    let (Some(group), Some(shards)) = (parent_group, host.shards.get()) else {
        return Placement { group: next_in_turn(), next_to_parent: false };
    };
    let g = group as usize;
    let Some(block_target) = host.burst_targets.get(g).filter(|_| g < shard_count) else {
        return Placement { group: next_in_turn(), next_to_parent: false };
    };
    choose_shard(g, burst, |s| shards[s].ready_len(), next_in_turn, block_target)
}

/// The policy of [`place`] for a child of a process on shard `parent`, given how many
/// processes wait on each shard and the turn of shards to spill to.
fn choose_shard(
    parent: usize,
    burst: u32,
    waiting: impl Fn(usize) -> usize,
    mut next_in_turn: impl FnMut() -> usize,
    block_target: &BurstTarget,
) -> Placement {
    let idle_other = |candidate: usize| candidate != parent && waiting(candidate) == 0;
    if burst >= BURST_BLOCK {
        if burst.is_multiple_of(BURST_BLOCK) {
            let candidate = next_in_turn();
            block_target.set(if idle_other(candidate) { candidate } else { parent });
        }
        let target = block_target.get().unwrap_or(parent);
        return Placement { group: target, next_to_parent: target == parent };
    }
    if waiting(parent) > 0 {
        let candidate = next_in_turn();
        if idle_other(candidate) {
            return Placement { group: candidate, next_to_parent: false };
        }
    }
    Placement { group: parent, next_to_parent: true }
}

/// Children of one burst of spawns placed together (see [`place`]).
const BURST_BLOCK: u32 = 16;

/// The shard the current block of a shard's burst of spawns goes to. Only the worker running
/// the parent's shard places its children, so this needs no read-modify-write.
#[derive(Default)]
struct BurstTarget(AtomicUsize);

impl BurstTarget {
    fn set(&self, target: usize) {
        self.0.store(target + 1, Ordering::Relaxed);
    }

    fn get(&self) -> Option<usize> {
        self.0.load(Ordering::Relaxed).checked_sub(1)
    }
}

/// How a process comes to be: who spawned it (none for the runtime), how it is tied to its
/// parent, who waits for its end from Rust, and what it inherits.
#[derive(Default)]
struct Birth {
    parent: Option<Pid>,
    /// The parent's earlier spawns in the same step (see `SpawnRequest::burst`).
    burst: u32,
    /// The group the parent runs in, when the spawn says (else the process table is asked).
    parent_group: Option<u32>,
    flags: wisp_process::SpawnFlags,
    watcher: Option<mpsc::Sender<ExitResult>>,
    inherited: Inherited,
}

/// What a child takes from its spawner: context, actor and scope.
#[derive(Default)]
struct Inherited {
    context: Option<Arc<Value>>,
    actor: Option<Arc<Value>>,
    scope: Option<Arc<Value>>,
}

#[derive(Debug, PartialEq, Eq)]
struct Placement {
    group: usize,
    next_to_parent: bool,
}

impl NodeInner {
    fn host(&self, index: HostIndex) -> Option<&Host> {
        self.hosts.get(index.0 as usize)
    }

    fn slot(&self, pid: Pid) -> Option<Slot> {
        self.host(pid.host)?.table.get(pid)
    }

    fn push(&self, to: Pid, envelope: Envelope) -> Result<(), SendError> {
        self.push_or_return(to, envelope).map_err(|(reason, _)| reason)
    }

    /// Pushes `envelope` into the mailbox of `to`; a failure hands the envelope back.
    fn push_or_return(&self, to: Pid, envelope: Envelope) -> Result<(), (SendError, Envelope)> {
        let mut envelope = Some(envelope);
        let pushed = self.host(to.host).and_then(|h| {
            h.table.with(to, |slot| match envelope.take() {
                Some(e) => slot.mailbox.push(e).map_err(|closed| closed.0),
                None => Ok(()),
            })
        });
        match (pushed, envelope) {
            (Some(Ok(())), _) => Ok(()),
            (Some(Err(returned)), _) | (None, Some(returned)) => {
                Err((SendError::NoProcess(self.render_pid(to)), returned))
            }
            (None, None) => Ok(()),
        }
    }

    fn resolve(&self, dest: Dest<'_>) -> Result<Pid, SendError> {
        match dest {
            Dest::Pid(pid) => Ok(pid),
            Dest::Name(name) => self.names.lookup(name).ok_or_else(|| SendError::UnknownName(name.into())),
        }
    }

    fn spawn_with(&self, entry: &str, host_name: &str, args: Vec<Value>, birth: Birth) -> Result<Pid, SpawnError> {
        let Birth { parent, burst, parent_group, flags, watcher, inherited: Inherited { context, actor, scope } } =
            birth;
        let code = self.code.get(entry).ok_or_else(|| SpawnError::UnknownEntry(entry.into()))?;
        let index = *self.host_names.get(host_name).ok_or_else(|| SpawnError::UnknownHost(host_name.into()))?;
        let host = self.host(index).ok_or_else(|| SpawnError::UnknownHost(host_name.into()))?;
        if let Some(max) = host.max_processes {
            if host.table.len() >= max {
                return Err(SpawnError::HostFull { host: host.name.clone(), max });
            }
        }
        let links: Vec<Pid> = parent.filter(|_| flags.link).into_iter().collect();
        let monitors: Vec<Pid> = parent.filter(|_| flags.monitor).into_iter().collect();
        let parent_group =
            parent.filter(|p| p.host == index).and_then(|p| parent_group.or_else(|| host.table.with(p, |s| s.group)));
        let watched = watcher.is_some();
        // A terminal host runs one process: the look and the insert below are one step.
        let _admission = match host.kind {
            HostKind::Terminal => {
                let guard = host.terminal_admission.lock().unwrap_or_else(|p| p.into_inner());
                if host.table.len() > 0 {
                    return Err(SpawnError::TerminalBusy(host.name.clone()));
                }
                Some(guard)
            }
            HostKind::Process => None,
        };
        match code {
            Code::Library => Err(SpawnError::NotRunnable(entry.into())),
            Code::Lua(code) => {
                let shards = host.shards.get().ok_or_else(|| SpawnError::UnknownHost(host_name.into()))?;
                let Placement { group, next_to_parent } = place(host, parent_group, burst, shards.len());
                let shard = &shards[group];
                let mailbox = shard.new_mailbox();
                let pid = host.table.insert(group, |_| Slot { mailbox: mailbox.clone(), group: group as u32, watched });
                if let Some(tx) = watcher {
                    self.lock_watchers().insert(pid, tx);
                }
                let admission =
                    Admission { pid, mailbox, code: code.clone(), args, links, monitors, context, actor, scope };
                if next_to_parent {
                    shard.admit_next(admission);
                } else {
                    shard.admit(admission);
                }
                Ok(pid)
            }
            Code::Native(factory) => {
                let waker = Arc::new(NativeWaker(Mutex::new(None)));
                let hook: Arc<dyn wisp_mailbox::Wake> = waker.clone();
                let mut mailbox = None;
                let group = host.next_shard.fetch_add(1, Ordering::Relaxed);
                let pid = host.table.insert(group, |pid| {
                    let m = Arc::new(Mailbox::new(hook, pid.slot));
                    mailbox = Some(m.clone());
                    Slot { mailbox: m, group: u32::MAX, watched }
                });
                if let Some(tx) = watcher {
                    self.lock_watchers().insert(pid, tx);
                }
                let mailbox = mailbox.expect("insert always builds the slot");
                let kernel: Arc<dyn Kernel> = self.self_arc();
                NativeTask::start(pid, mailbox, waker, factory(args), host.handle.clone(), kernel, links, monitors);
                Ok(pid)
            }
        }
    }

    fn name_error(&self, error: wisp_registry::NameError) -> NameError {
        match error {
            wisp_registry::NameError::Invalid { name, reason } => NameError::Invalid { name, reason },
            wisp_registry::NameError::NameTaken(holder) => NameError::Taken(holder),
            wisp_registry::NameError::NoProcess(pid) => NameError::NoProcess(self.render_pid(pid)),
        }
    }

    /// Hands an existing holder of a `with_name` name the spawn's monitor, link and messages.
    fn adopt(&self, existing: Pid, parent: Pid, flags: SpawnFlags) {
        if flags.monitor {
            let _ = self.push(existing, Envelope::Signal { from: parent, signal: Signal::Monitor });
        }
        if flags.link {
            let _ = self.push(existing, Envelope::Signal { from: parent, signal: Signal::Link });
        }
    }

    fn lock_watchers(&self) -> std::sync::MutexGuard<'_, FxHashMap<Pid, mpsc::Sender<ExitResult>>> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An `Arc` of this node, for native processes that outlive the call that starts them.
    fn self_arc(&self) -> Arc<NodeInner> {
        self.me.get().and_then(std::sync::Weak::upgrade).expect("the node is alive while it spawns")
    }
}

impl Router for NodeInner {
    fn render_pid(&self, pid: Pid) -> String {
        let mut out = String::new();
        self.write_pid(pid, &mut out);
        out
    }

    fn write_pid(&self, pid: Pid, out: &mut String) {
        let host = self.host(pid.host).map_or("?", |h| h.name.as_str());
        pid.display(host).write_to(out);
    }

    fn parse_pid(&self, text: &str) -> Option<Pid> {
        let (host, serial) = Pid::parse_parts(text).ok()?;
        let index = *self.host_names.get(host)?;
        Some(Pid::from_serial(index, serial))
    }

    fn send(&self, _from: Pid, dest: Dest<'_>, message: Message) -> Result<(), Undelivered> {
        let to = match self.resolve(dest) {
            Ok(to) => to,
            Err(reason) => return Err(Undelivered { reason, message }),
        };
        self.push_or_return(to, Envelope::Message(message)).map_err(|(reason, envelope)| match envelope {
            Envelope::Message(message) => Undelivered { reason, message },
            _ => unreachable!("the envelope handed back is the message pushed"),
        })
    }

    fn signal(&self, from: Pid, dest: Dest<'_>, signal: Signal) -> Result<Pid, SendError> {
        let to = self.resolve(dest)?;
        self.push(to, Envelope::Signal { from, signal })?;
        Ok(to)
    }

    fn deliver(&self, to: Pid, envelope: Envelope) -> bool {
        self.push(to, envelope).is_ok()
    }

    fn mailbox(&self, pid: Pid) -> Option<Arc<Mailbox<Envelope>>> {
        self.slot(pid).map(|slot| slot.mailbox)
    }
}

impl Spawner for NodeInner {
    fn spawn(&self, request: SpawnRequest<'_>) -> Result<Pid, SpawnError> {
        let SpawnRequest {
            parent,
            entry,
            host,
            args,
            flags,
            name,
            context,
            messages,
            actor,
            scope,
            burst,
            parent_group,
        } = request;
        let deliver = |to: Pid| {
            for (topic, payloads) in messages {
                let _ = self.push(
                    to,
                    Envelope::Message(Message { from: Some(parent), topic: topic.into(), payloads: payloads.into() }),
                );
            }
        };
        let birth = Birth {
            parent: Some(parent),
            burst,
            parent_group: Some(parent_group),
            flags,
            watcher: None,
            inherited: Inherited { context, actor, scope },
        };
        let Some(name) = name else {
            let pid = self.spawn_with(entry, host, args, birth)?;
            deliver(pid);
            return Ok(pid);
        };
        // with_name: the name is claimed and the process started in one step, so concurrent
        // callers get one process; a live holder on that host is reused, one elsewhere refused.
        let on_host = self.host_names.get(host).copied();
        let claim = self.names.claim(&name, |p| self.slot(p).is_some(), || self.spawn_with(entry, host, args, birth));
        match claim {
            Ok(Claim::Started(pid)) => {
                deliver(pid);
                Ok(pid)
            }
            Ok(Claim::Held(existing)) if Some(existing.host) == on_host => {
                self.adopt(existing, parent, flags);
                deliver(existing);
                Ok(existing)
            }
            Ok(Claim::Held(holder)) => Err(SpawnError::NameHeld { name, holder: self.render_pid(holder) }),
            Err(ClaimError::Start(e)) => Err(e),
            Err(ClaimError::Name(e)) => Err(SpawnError::BadName(self.name_error(e).to_string())),
        }
    }
}

impl Exits for NodeInner {
    fn exited(&self, exit: ProcessExit) {
        let ProcessExit { pid, result, supervision, leftover } = exit;
        // Out of the table first, then its names: a binding racing with this exit either sees
        // it gone or is released here (see wisp_registry's names module).
        let watched = self.host(pid.host).and_then(|host| host.table.remove(pid)).is_some_and(|slot| slot.watched);
        self.names.release_all(pid);
        if let ExitResult::Error(e) = &result {
            tracing::debug!(pid = %self.render_pid(pid), "process failed: {e}");
        }
        for (to, event) in supervision.exit_notices(pid, &result, leftover) {
            let _ = self.push(to, Envelope::Event(event));
        }
        if watched {
            if let Some(tx) = self.lock_watchers().remove(&pid) {
                let _ = tx.send(result);
            }
        }
    }
}

impl Names for NodeInner {
    fn register_name(&self, _caller: Pid, name: &str, pid: Pid) -> Result<(), NameError> {
        self.names.register(name, pid, |p| self.slot(p).is_some()).map_err(|e| self.name_error(e))
    }

    fn lookup_name(&self, name: &str) -> Option<Pid> {
        self.names.lookup(name)
    }

    fn unregister_name(&self, _caller: Pid, name: &str) -> bool {
        self.names.unregister(name)
    }
}

impl Console for NodeInner {
    fn print(&self, pid: Pid, line: &str) {
        match (self.host(pid.host).map(|h| h.kind), &self.terminal) {
            (Some(HostKind::Terminal), Some(term)) => {
                let mut bytes = Vec::with_capacity(line.len() + 1);
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                term.write(&bytes);
            }
            _ => tracing::info!(pid = %self.render_pid(pid), "{line}"),
        }
    }

    fn terminal(&self, pid: Pid) -> Option<Arc<dyn TerminalIo>> {
        match self.host(pid.host)?.kind {
            HostKind::Terminal => self.terminal.clone(),
            HostKind::Process => None,
        }
    }
}

#[cfg(test)]
mod placement_tests {
    use super::*;

    /// Places `children` spawned in one step by a process on shard 0 of four, where `waiting`
    /// gives each shard's queue and the turn of shards to spill to goes 1, 2, 3, 0, 1, ...
    fn place_burst(children: u32, waiting: [usize; 4]) -> Vec<usize> {
        let target = BurstTarget::default();
        let mut turn = 0;
        (0..children)
            .map(|burst| {
                let next_in_turn = || {
                    turn += 1;
                    turn % 4
                };
                choose_shard(0, burst, |s| waiting[s], next_in_turn, &target).group
            })
            .collect()
    }

    #[test]
    fn a_child_stays_with_its_parent_unless_the_parent_is_busy_and_another_shard_idle() {
        let cases: [([usize; 4], usize); 4] = [
            ([0, 0, 0, 0], 0), // parent idle
            ([3, 0, 0, 0], 1), // parent busy, shard 1 idle
            ([3, 1, 0, 0], 0), // parent busy, the shard in turn busy too
            ([0, 1, 1, 1], 0),
        ];
        for (waiting, expected) in cases {
            let placed = choose_shard(0, 0, |s| waiting[s], || 1, &BurstTarget::default());
            assert_eq!(placed, Placement { group: expected, next_to_parent: expected == 0 }, "waiting {waiting:?}");
        }
    }

    #[test]
    fn a_long_burst_goes_in_blocks_of_consecutive_children() {
        let n = BURST_BLOCK as usize;
        // Shards 1-3 idle: past the first block, each block goes whole to the next shard in turn.
        let placed = place_burst(4 * BURST_BLOCK, [5, 0, 0, 0]);
        for (b, block) in placed[n..].chunks(n).enumerate() {
            assert!(block.iter().all(|&s| s == block[0]), "block {b} split: {block:?}");
        }
        let firsts: Vec<usize> = placed[n..].chunks(n).map(|block| block[0]).collect();
        assert_eq!(firsts.len(), 3);
        assert!(firsts.iter().all(|&s| s != 0), "idle shards take the blocks: {firsts:?}");
        // Every other shard busy: the whole burst stays with its parent.
        assert!(place_burst(3 * BURST_BLOCK, [5, 2, 2, 2]).iter().all(|&s| s == 0));
    }
}
