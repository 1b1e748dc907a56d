//! Per-process mailboxes and topic routing for the Wisp runtime.
//!
//! [`Mailbox`] is a multi-producer, single-consumer queue owned by one process.
//! It contains no scheduler: when a push finds the owner waiting it calls the
//! [`Wake`] hook, and the runtime makes the process ready.
//!
//! [`TopicRouter`] maps exact topics to listeners on the owner's side; unknown
//! topics go to the inbox.

mod mailbox;
mod router;

pub use mailbox::{Closed, Mailbox, Wake};
pub use router::{AlreadyListening, ListenerId, Route, TopicRouter};
