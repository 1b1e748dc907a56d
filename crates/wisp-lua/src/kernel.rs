//! What a Lua process needs from the world outside its shard.

use std::sync::Arc;

use wisp_core::{Envelope, ExitResult, Message, Pid, Signal, Value};
use wisp_mailbox::Mailbox;

use crate::LuaCode;

/// A destination as a Lua program names it: a PID string or a registered name.
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
    /// The group of the shard the parent runs in (`ShardConfig::group`).
    pub parent_group: u32,
}

/// A process handed to a shard: its PID, its mailbox (already reachable by senders) and its code.
pub struct Admission {
    pub pid: Pid,
    pub mailbox: Arc<Mailbox<Envelope>>,
    pub code: Arc<LuaCode>,
    pub args: Vec<Value>,
    /// Processes the newcomer starts linked to (a `spawn_linked` parent).
    pub links: Vec<Pid>,
    /// Processes that monitor the newcomer from birth (a `spawn_monitored` parent).
    pub monitors: Vec<Pid>,
    pub context: Option<Arc<Value>>,
    pub actor: Option<Arc<Value>>,
    pub scope: Option<Arc<Value>>,
}

/// A process that has ended, handed to the runtime to release its names, notify its monitors
/// and links, and free its PID.
pub struct ProcessExit {
    pub pid: Pid,
    pub result: ExitResult,
    pub links: Vec<Pid>,
    pub monitors: Vec<Pid>,
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

/// The runtime as a shard sees it.
pub trait Kernel: Send + Sync + 'static {
    /// `{host|0x...}` for a PID of this runtime.
    fn render_pid(&self, pid: Pid) -> String;
    /// Appends what [`Kernel::render_pid`] returns to `out` (spawns reuse one buffer).
    fn write_pid(&self, pid: Pid, out: &mut String) {
        out.push_str(&self.render_pid(pid));
    }
    /// Reads a PID string; `None` when it is not one of this runtime's.
    fn parse_pid(&self, text: &str) -> Option<Pid>;
    fn send(&self, from: Pid, dest: Dest<'_>, message: Message) -> Result<(), SendError>;
    /// Delivers a control signal; returns the PID it reached.
    fn signal(&self, from: Pid, dest: Dest<'_>, signal: Signal) -> Result<Pid, SendError>;
    /// Pushes an envelope straight into a process's own mailbox (events the runtime makes up).
    fn deliver(&self, to: Pid, envelope: Envelope) -> bool;
    /// The mailbox of a live process, for a shard to push a process's messages to it directly
    /// while that process keeps sending to the same PID. `None` when there is no such process,
    /// or when its messages must go through [`Kernel::send`] every time.
    fn mailbox(&self, pid: Pid) -> Option<Arc<Mailbox<Envelope>>>;
    fn spawn(&self, request: SpawnRequest<'_>) -> Result<Pid, String>;
    fn exited(&self, exit: ProcessExit);
    fn register_name(&self, name: &str, pid: Pid) -> Result<(), String>;
    fn lookup_name(&self, name: &str) -> Option<Pid>;
    fn unregister_name(&self, name: &str) -> bool;
    /// A line a process printed.
    fn print(&self, pid: Pid, line: &str);
    /// The terminal, for processes of the terminal host.
    fn terminal(&self, pid: Pid) -> Option<Arc<dyn TerminalIo>>;
}
