//! The protocol between Rust and the Luau half of a shard (`prelude/`): item kinds, step
//! outcomes, the fields of a process record and the slots of the driver's stack. Both sides
//! name the same numbers; the tests below read the prelude and fail when they drift.

use std::os::raw::c_int;

/// The Lua half of a shard, one chunk in parts (`prelude/*.luau`): each part sees the locals of
/// the parts before it.
pub(crate) const PRELUDE: &str = concat!(
    include_str!("prelude/base.luau"),
    include_str!("prelude/channels.luau"),
    include_str!("prelude/process.luau"),
    include_str!("prelude/time.luau"),
    include_str!("prelude/modules.luau"),
    include_str!("prelude/sandbox.luau"),
    include_str!("prelude/driver.luau"),
);

// Item kinds and step outcomes shared with the prelude.
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

/// A process record's fixed fields, its first array slots (the prelude's `MAIN, RECV, INBOX`).
/// No field names the process: callbacks take it from Rust (`Core::current`).
pub(crate) const RECORD_MAIN: mlua::ffi::lua_Integer = 1;
pub(crate) const RECORD_RECV: mlua::ffi::lua_Integer = 2;
pub(crate) const RECORD_FIELDS: usize = 3;

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

#[cfg(test)]
mod drift_tests {
    //! The prelude names the same numbers as this file, and the same modules as the registry.
    use super::*;

    /// The values of a Lua line `local A, B, C = 1, 2, 3` whose first name is `first`.
    fn lua_constants(first: &str) -> Vec<(String, mlua::ffi::lua_Integer)> {
        let line = PRELUDE
            .lines()
            .find(|l| l.starts_with(&format!("local {first},")))
            .unwrap_or_else(|| panic!("the prelude declares `local {first}, ...`"));
        let (names, values) = line.trim_start_matches("local ").split_once('=').expect("an assignment");
        let values = values.split("--").next().unwrap_or_default();
        let names = names.split(',').map(|n| n.trim().to_string());
        let values = values.split(',').map(|v| v.trim().parse::<mlua::ffi::lua_Integer>().expect("an integer"));
        names.zip(values).collect()
    }

    fn named(pairs: &[(&str, mlua::ffi::lua_Integer)]) -> Vec<(String, mlua::ffi::lua_Integer)> {
        pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn item_kinds_step_outcomes_and_record_fields_agree_with_the_prelude() {
        let cases = [
            (
                "K_MESSAGE",
                named(&[
                    ("K_MESSAGE", K_MESSAGE.into()),
                    ("K_LISTENER", K_LISTENER.into()),
                    ("K_LISTENER_MESSAGE", K_LISTENER_MESSAGE.into()),
                    ("K_EVENT", K_EVENT.into()),
                    ("K_TIMER", K_TIMER.into()),
                    ("K_KILL", K_KILL.into()),
                ]),
            ),
            (
                "S_WAITING",
                named(&[("S_WAITING", S_WAITING.into()), ("S_READY", S_READY.into()), ("S_DONE", S_DONE.into())]),
            ),
            (
                "MAIN",
                named(&[
                    ("MAIN", RECORD_MAIN),
                    ("RECV", RECORD_RECV),
                    ("INBOX", RECORD_FIELDS as mlua::ffi::lua_Integer),
                ]),
            ),
        ];
        for (first, rust) in cases {
            assert_eq!(lua_constants(first), rust, "the prelude's `{first}` line and protocol.rs");
        }
    }

    #[test]
    fn the_driver_passes_r_next_its_tables_in_the_order_of_the_next_slots() {
        let call = PRELUDE
            .lines()
            .map(str::trim)
            .find_map(|l| l.split_once("next_step(").map(|(_, args)| args.to_string()))
            .expect("the driver calls next_step(...)");
        let args: Vec<&str> = call.split(')').next().unwrap_or_default().split(',').map(str::trim).collect();
        let tables = &args[NEXT_ARGS as usize..];
        let expected = [
            (NEXT_BODY, "body"),
            (NEXT_ENV_MT, "env_mt"),
            (NEXT_CHUNKS, "chunks"),
            (NEXT_PROCS, "procs"),
            (NEXT_RECORD_TEMPLATE, "template"),
            (NEXT_GLOBALS, "globals"),
        ];
        assert_eq!(tables.len(), NEXT_TABLES as usize, "{args:?}");
        for (slot, name) in expected {
            assert_eq!(tables[(slot - NEXT_BODY) as usize], name, "slot {slot}");
        }
    }

    #[test]
    fn the_prelude_provides_the_modules_the_registry_lists() {
        let line = PRELUDE
            .lines()
            .find(|l| l.starts_with("local builtin_modules = {"))
            .expect("the prelude declares its builtin modules on one line");
        let mut in_lua: Vec<&str> = line
            .split(['{', '}'])
            .nth(1)
            .unwrap_or_default()
            .split(',')
            .filter_map(|pair| pair.split('=').next())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        let mut listed = wisp_registry::PROVIDED_MODULES.to_vec();
        in_lua.sort_unstable();
        listed.sort_unstable();
        assert_eq!(in_lua, listed);
    }
}
