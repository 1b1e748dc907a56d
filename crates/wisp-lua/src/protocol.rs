//! The protocol between Rust and the Luau half of a shard (`prelude.luau`): item kinds, step
//! outcomes, the fields of a process record and the slots of the driver's stack. Both sides
//! name the same numbers; the tests below read the prelude and fail when they drift.

use std::os::raw::c_int;

pub(crate) const PRELUDE: &str = include_str!("prelude.luau");

// Item kinds and step outcomes shared with prelude.luau.
pub(crate) const K_MESSAGE: u8 = 1;

pub(crate) const K_LISTENER: u8 = 3;

pub(crate) const K_LISTENER_MESSAGE: u8 = 4;

pub(crate) const K_EVENT: u8 = 5;

pub(crate) const K_TIMER: u8 = 6;

pub(crate) const K_KILL: u8 = 7;

pub(crate) const S_WAITING: u8 = 0;

pub(crate) const S_READY: u8 = 1;

pub(crate) const S_DONE: u8 = 2;

/// Mailbox items handed to Lua per step; the rest wait for the next step so one flooded
/// process cannot hold its shard.
pub(crate) const MAX_ITEMS_PER_STEP: usize = 64;

/// The driver thread's stack: `R.next` in slot 1, the tables it works on in `NEXT_BODY..=
/// NEXT_GLOBALS` (slots 2 to 7), and the prelude's `drive` in this slot.
pub(crate) const DRIVER_DRIVE: c_int = NEXT_GLOBALS + 1;

/// A process record's fixed fields, its first array slots (keep in sync with the prelude's
/// `TOKEN, MAIN, RECV, INBOX`).
pub(crate) const RECORD_TOKEN: mlua::ffi::lua_Integer = 1;

pub(crate) const RECORD_MAIN: mlua::ffi::lua_Integer = 2;

pub(crate) const RECORD_RECV: mlua::ffi::lua_Integer = 3;

pub(crate) const RECORD_FIELDS: usize = 4;

/// What the driver passes `R.next` after the previous step's outcome (its arguments 5 to 11,
/// numbered by their slots on the driver thread, see `DRIVER_DRIVE`): the driver's `body`, the
/// environment metatable, the table of loaded chunks by entry, the driver's table of process
/// records, the template of a process record and the shard's
/// read-only globals.
pub(crate) const NEXT_BODY: c_int = 2;

pub(crate) const NEXT_ENV_MT: c_int = 3;

pub(crate) const NEXT_CHUNKS: c_int = 4;

pub(crate) const NEXT_PROCS: c_int = 5;

pub(crate) const NEXT_RECORD_TEMPLATE: c_int = 6;

pub(crate) const NEXT_GLOBALS: c_int = 7;

/// `R.next`'s arguments: the previous step's record slot, status, and exit (is_error, value).
pub(crate) const NEXT_ARGS: c_int = 4;

/// The driver's tables `NEXT_BODY..=NEXT_GLOBALS`, passed after the arguments.
pub(crate) const NEXT_TABLES: c_int = NEXT_GLOBALS - NEXT_BODY + 1;

/// Where `R.next` finds the driver's table `table` during a call. They are arguments, not
/// upvalues: a stack slot is reached directly while an upvalue index goes through Luau's
/// out-of-line pseudo-index lookup, a dozen times per process started (copying them to the
/// stack on every call was about 8% of the instructions of a message between shards). Only code
/// running inside `R.next` (on its `state`) may use these slots.
pub(crate) const fn next_slot(table: c_int) -> c_int {
    NEXT_ARGS + table - NEXT_BODY + 1
}
