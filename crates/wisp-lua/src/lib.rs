//! The Lua state machine of Wisp.
//!
//! A [`Shard`] is one sandboxed Luau VM holding many processes, each a coroutine with its own
//! global environment. The scheduler runs shards, not processes: a worker takes a shard with
//! ready processes, steps a bounded batch of them and puts it back.
//!
//! Architecture invariants:
//! - This crate knows nothing of hosts, the process table or YAML: everything outside the shard
//!   is reached through the process contract's `wisp_process::Kernel`, which the runtime
//!   implements and tests fake.
//! - Rust never holds one mlua handle per process: process coroutines live in a Lua table keyed by
//!   a slot the shard reuses, and the driver loop that resumes them is Lua (see `prelude/`).
//! - No process sees another's tables: every payload is copied into a [`wisp_core::Value`] at
//!   `send` and rebuilt on the receiving side, even inside one shard.

mod code;
mod convert;
mod kernel;
mod message;
mod modules;
mod preempt;
mod protocol;
mod shard;
mod stack;

pub use code::{ChunkCache, LuaCode};
pub use convert::{lua_to_value, value_to_lua};
pub use kernel::Admission;
pub use preempt::{Watchdog, WatchdogHandle, DEFAULT_TICK as DEFAULT_PREEMPT_TICK};
pub use shard::{Shard, ShardConfig, DEFAULT_MAX_STEP};
