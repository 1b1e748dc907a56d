//! What a shard is handed to run: a process's admission. Everything else a shard needs from
//! the runtime is the process contract (`wisp-process`).

use std::sync::Arc;

use wisp_core::{Envelope, Pid, Value};
use wisp_mailbox::Mailbox;

use crate::LuaCode;

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
