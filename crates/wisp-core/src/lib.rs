//! Plain data shared by every Wisp crate.
//!
//! Architecture invariant: this crate knows nothing of Lua, YAML, threads or IO.
//! Everything here is a value that can be copied between processes.

mod envelope;
mod exit;
mod pid;
mod value;

pub use envelope::{Envelope, Signal};
pub use exit::{Event, EventKind, ExitResult};
pub use pid::{HostIndex, Pid, PidParseError};
pub use value::{format_number, Key, Table, Value, ValueError};

/// A message between processes: a topic and copied payloads.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The sender, or `None` when the runtime itself sent it.
    pub from: Option<Pid>,
    /// Shared, not copied: a sender reuses the topic it sent last (`Arc` clones are cheap).
    pub topic: std::sync::Arc<str>,
    pub payloads: Payloads,
}

/// A message's payloads. Most messages carry one, held inline: a message is then one
/// allocation fewer (and one free fewer, often on another thread than the allocation's).
pub type Payloads = smallvec::SmallVec<[Value; 1]>;
