//! The process contract: what any process body (a Lua shard's process, a native Rust process)
//! sees of the runtime, and the one implementation of the link and monitor rules.
//!
//! A process body reaches the runtime through a few narrow traits, each for one concern:
//! [`Router`] (PIDs, messages and signals), [`Spawner`], [`Names`], [`Console`] (the log and the
//! terminal) and [`Exits`] (a process that ended). [`Kernel`] is all of them, for a body that
//! needs everything (a Lua shard); a native process's context needs the router alone.
//!
//! Failures are typed ([`SendError`], [`SpawnError`], [`NameError`]); a send that fails hands
//! its message back ([`Undelivered`]), as ractor does.
//!
//! Room is left for what comes next: every request names its caller (`from`, `parent`), where
//! security checks will read its identity, and [`ExitResult`] is what a supervisor reads of an
//! exit.
//!
//! **Architecture Invariant:** knows nothing of Lua, YAML, hosts or threads: it is the contract,
//! not an implementation. It depends on `wisp-core` (the data) and `wisp-mailbox` only.

mod supervision;

use std::sync::Arc;

pub use supervision::{Effect, Supervision};
use wisp_core::{Envelope, ExitResult, Message, Pid, Signal, Value};
use wisp_mailbox::Mailbox;

/// A destination as a program names it: a PID or a registered name.
#[derive(Debug, Clone, Copy)]
pub enum Dest<'a> {
    Pid(Pid),
    Name(&'a str),
}

/// Why a send or a signal did not reach its target.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    #[error("process {0} not found")]
    NoProcess(String),
    #[error("no process registered as `{0}`")]
    UnknownName(String),
    /// Refused by a policy or the sender's host (the security checks' answer).
    #[error("{0}")]
    Denied(String),
}

/// A send that failed, with the message it could not deliver.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Undelivered {
    pub reason: SendError,
    pub message: Message,
}

/// Why a spawn failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpawnError {
    #[error("unknown entry `{0}`")]
    UnknownEntry(String),
    #[error("entry `{0}` cannot run as a process")]
    NotRunnable(String),
    #[error("unknown host `{0}`")]
    UnknownHost(String),
    #[error("host `{host}` is full ({max} processes)")]
    HostFull { host: String, max: usize },
    /// A terminal host's one process is running.
    #[error("terminal host {0} runs one process")]
    TerminalBusy(String),
    /// `with_name`: the name lives on another host than the spawn's.
    #[error("name {name} is held by {holder}")]
    NameHeld { name: String, holder: String },
    /// `with_name` with a name no process may hold.
    #[error("{0}")]
    BadName(String),
    /// Refused by a policy or the caller's host.
    #[error("{0}")]
    Denied(String),
}

/// Why a name could not be bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NameError {
    #[error("invalid name `{name}`: {reason}")]
    Invalid { name: String, reason: &'static str },
    #[error("name is already registered to another process")]
    Taken(Pid),
    #[error("process {0} not found")]
    NoProcess(String),
    /// Refused by a policy.
    #[error("{0}")]
    Denied(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpawnFlags {
    pub monitor: bool,
    pub link: bool,
}

/// A request to start a process, as `process.spawn*` makes it.
#[derive(Debug, Clone)]
pub struct SpawnRequest<'a> {
    /// The caller.
    pub parent: Pid,
    pub entry: &'a str,
    pub host: &'a str,
    pub args: Vec<Value>,
    pub flags: SpawnFlags,
    /// A name to spawn under; if a live process holds it on that host, it is returned instead.
    pub name: Option<String>,
    /// The context the child's `ctx` module reads.
    pub context: Option<Arc<Value>>,
    /// The actor (`{id, meta}`) and scope (`{policies}`) the child runs as.
    pub actor: Option<Arc<Value>>,
    pub scope: Option<Arc<Value>>,
    /// Messages from the parent delivered to the child (new or found by name) right away.
    pub messages: Vec<(Box<str>, Vec<Value>)>,
    /// How many processes the parent spawned before this one in the same step (since it last
    /// waited or was preempted): placement keeps such a burst together in blocks.
    pub burst: u32,
    /// The group of the shard the parent runs in, for placement next to it.
    pub parent_group: u32,
}

/// A process that has ended, handed to the runtime to release its names, notify its monitors
/// and links, and free its PID.
pub struct ProcessExit {
    pub pid: Pid,
    pub result: ExitResult,
    /// Its links and monitors at the end.
    pub supervision: Supervision,
    /// Whatever was still queued when the mailbox closed (signals in it still need answers).
    pub leftover: Vec<Envelope>,
}

/// Standard input and output of the terminal host.
pub trait TerminalIo: Send + Sync + 'static {
    fn write(&self, bytes: &[u8]);
    fn flush(&self);
    /// One line without its newline, or `None` at end of input.
    fn read_line(&self) -> Option<String>;
}

/// PIDs as text, messages and signals.
pub trait Router: Send + Sync + 'static {
    /// `{host|0x...}` for a PID of this runtime.
    fn render_pid(&self, pid: Pid) -> String;
    /// Appends what [`Router::render_pid`] returns to `out` (spawns reuse one buffer).
    fn write_pid(&self, pid: Pid, out: &mut String) {
        out.push_str(&self.render_pid(pid));
    }
    /// Reads a PID string; `None` when it is not one of this runtime's.
    fn parse_pid(&self, text: &str) -> Option<Pid>;
    fn send(&self, from: Pid, dest: Dest<'_>, message: Message) -> Result<(), Undelivered>;
    /// Delivers a control signal; returns the PID it reached.
    fn signal(&self, from: Pid, dest: Dest<'_>, signal: Signal) -> Result<Pid, SendError>;
    /// Pushes an envelope straight into a process's own mailbox (events the runtime makes up).
    fn deliver(&self, to: Pid, envelope: Envelope) -> bool;
    /// The mailbox of a live process, for a sender to push to it directly while it keeps
    /// sending to the same PID. `None` when there is no such process, or when its messages must
    /// go through [`Router::send`] every time.
    fn mailbox(&self, pid: Pid) -> Option<Arc<Mailbox<Envelope>>>;
}

/// Starting processes.
pub trait Spawner: Send + Sync + 'static {
    fn spawn(&self, request: SpawnRequest<'_>) -> Result<Pid, SpawnError>;
}

/// The local name registry.
pub trait Names: Send + Sync + 'static {
    /// Binds `name` to `pid` on behalf of `caller`.
    fn register_name(&self, caller: Pid, name: &str, pid: Pid) -> Result<(), NameError>;
    fn lookup_name(&self, name: &str) -> Option<Pid>;
    /// Removes a binding on behalf of `caller`; whether there was one.
    fn unregister_name(&self, caller: Pid, name: &str) -> bool;
}

/// The log and the terminal.
pub trait Console: Send + Sync + 'static {
    /// A line a process printed.
    fn print(&self, pid: Pid, line: &str);
    /// The terminal, for processes of the terminal host.
    fn terminal(&self, pid: Pid) -> Option<Arc<dyn TerminalIo>>;
}

/// The end of a process.
pub trait Exits: Send + Sync + 'static {
    fn exited(&self, exit: ProcessExit);
}

/// Everything a process body may ask of the runtime.
pub trait Kernel: Router + Spawner + Names + Console + Exits {}

impl<T: Router + Spawner + Names + Console + Exits> Kernel for T {}
