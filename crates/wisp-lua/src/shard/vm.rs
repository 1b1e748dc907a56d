//! A shard's Luau VM: built once (the prelude, the sandbox, the frozen shared tables, the
//! callbacks) and driven once per run.

use std::os::raw::c_int;
use std::sync::Arc;

use mlua::{Function, Lua, Table, Value as LuaValue, Variadic};

use super::core::*;
use super::step::*;
use crate::convert::*;
use crate::modules::register_callbacks;
use crate::preempt::{self};
use crate::protocol::*;

// Field order matters: handles into the VM drop before the VM.
pub(crate) struct Vm {
    /// The thread each run begins on (an address, like `LocalProc::main`; see `Vm::drive`).
    pub(crate) driver: usize,
    /// Keeps the driver thread in the VM's registry.
    pub(crate) _driver_ref: c_int,
    pub(crate) _lua: Lua,
    /// Raw callbacks and process coroutines point at the Core and its `preempt`: it must
    /// outlive the VM.
    pub(crate) core: Arc<Core>,
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Before the fields: the watchdog must not arm a VM being closed.
        self.core.preempt.forget_vm();
    }
}

pub(crate) fn build_vm(core: &Arc<Core>) -> mlua::Result<Vm> {
    let lua = Lua::new();
    let r = lua.create_table()?;
    register_callbacks(&lua, &r, core)?;
    // Builtins are never replaced, so calls like `type` and `setmetatable` may take Luau's fast
    // paths (they are only taken in a "safeenv" environment).
    lua.globals().set_safeenv(true);
    // Compiled once per runtime, like every chunk.
    let prelude_code = core.chunks.bytecode(&Arc::from(PRELUDE));
    let prelude: Table = lua.load(&prelude_code[..]).set_name(preempt::RUNTIME_CHUNK).call(r.clone())?;

    let globals = lua.globals();
    globals.set("process", prelude.get::<Table>("process")?)?;
    globals.set("channel", prelude.get::<Table>("channel")?)?;
    let coroutine: Table = globals.get("coroutine")?;
    coroutine.set("spawn", prelude.get::<Function>("coroutine_spawn")?)?;
    // A wait or a preemption inside a coroutine a program made is passed up to the coroutine
    // the driver runs (see `settle_resume` in the prelude).
    coroutine.set("resume", prelude.get::<Function>("coroutine_resume")?)?;
    coroutine.set("wrap", prelude.get::<Function>("coroutine_wrap")?)?;
    coroutine.set("close", prelude.get::<Function>("coroutine_close")?)?;
    let make_require: Function = prelude.get("make_require")?;
    globals.set("require", make_require.call::<Function>(lua.create_table()?)?)?;
    for pair in prelude.get::<Table>("casts")?.pairs::<String, Function>() {
        let (name, cast) = pair?;
        globals.set(name, cast)?;
    }
    let print_fn: Function = prelude.get("print")?;
    globals.set("print", print_fn)?;
    globals.set("debug", prelude.get::<Table>("debug")?)?;
    let string: Table = globals.get("string")?;
    string.set("rep", prelude.get::<Function>("string_rep")?)?;
    let os: Table = globals.get("os")?;
    os.set("time", prelude.get::<Function>("os_time")?)?;
    // The random generator's state is the VM's, shared by its processes: none may seed it.
    let math: Table = globals.get("math")?;
    math.set("randomseed", lua.create_function(|_, _: mlua::MultiValue| Ok(()))?)?;
    // `gcinfo` and `collectgarbage` report on (or act on) the heap of every process of the shard.
    for name in ["getfenv", "setfenv", "loadstring", "load", "dofile", "loadfile", "collectgarbage", "gcinfo"] {
        globals.set(name, LuaValue::Nil)?;
    }
    let env_mt = lua.create_table()?;
    env_mt.set("__index", globals.clone())?;
    env_mt.set("__metatable", false)?;
    let drive: Function = prelude.get("drive")?;

    lua.sandbox(true)?;
    env_mt.set_readonly(true);
    // Every table the processes of this shard share, frozen deep: the globals and libraries,
    // the string metatable (and what it reaches).
    let deep_freeze: Function = prelude.get("deep_freeze")?;
    deep_freeze.call::<()>(globals.clone())?;
    let string_mt: Option<Table> = lua.load("return getmetatable('')").set_name("=wisp").call(())?;
    deep_freeze.call::<()>(string_mt)?;
    // Handles' metatables, for the payload copy to refuse them (see `convert::raw_table`).
    crate::convert::install_handle_types(&lua, prelude.get::<Table>("handle_types")?)?;
    crate::preempt::inherit_thread_marks(&lua)?;
    core.preempt.watch_vm(&lua)?;
    let config = &core.config;
    lua.gc_set_mode(mlua::prelude::LuaGcMode::Incremental(
        mlua::prelude::LuaGcIncParams::default()
            .goal(config.gc_goal)
            .step_multiplier(config.gc_step_multiplier)
            .step_size(config.gc_step_size_kb),
    ));

    crate::message::install(&lua, Arc::as_ptr(core))?;
    let parked: LuaValue = prelude.get("parked")?;
    let recv = raw_callback(&lua, core, raw_recv, c"recv", vec![parked])?;
    prelude.get::<Function>("set_recv")?.call::<()>(recv)?;
    let next = raw_callback(&lua, core, raw_next, c"next", Vec::new())?;
    // What R.next works on (see NEXT_BODY), in that order: the driver's `body`, the environment
    // metatable, the chunk table, the driver's process records, the record template, and the
    // table the sandbox made read-only (not the main thread's own writable global table, which
    // the sandbox put in front of it).
    let chunks = lua.create_table()?;
    // `require` loads libraries into the same chunk table, reaching it (and the environment chunks
    // are loaded with) through the registry.
    crate::modules::require::install_chunk_tables(&lua, &chunks, &globals)?;
    let tables = [
        LuaValue::Function(prelude.get("body")?),
        LuaValue::Table(env_mt),
        LuaValue::Table(chunks),
        LuaValue::Table(prelude.get("procs")?),
        LuaValue::Table(record_template(&lua)?),
        LuaValue::Table(globals),
    ];
    let set_next: Function = prelude.get("set_next")?;
    set_next
        .call::<()>(Variadic::from_iter(std::iter::once(LuaValue::Function(next.clone())).chain(tables.clone())))?;
    let slots: Vec<LuaValue> = std::iter::once(LuaValue::Function(next))
        .chain(tables)
        .chain(std::iter::once(LuaValue::Function(drive)))
        .collect();
    debug_assert_eq!(slots.len() as c_int, DRIVER_DRIVE);
    // SAFETY: the closure runs on the VM's main thread with the driver thread's slots as its
    // arguments: they move to the new thread, which the registry reference keeps alive, and the
    // integer left is exec_raw's result.
    let (driver, driver_ref) = unsafe {
        use mlua::ffi;
        let mut driver = 0;
        let driver_ref = lua.exec_raw::<c_int>(Variadic::from_iter(slots), |state| {
            let thread = ffi::lua_newthread(state);
            let r = ffi::lua_ref(state, -1);
            ffi::lua_pop(state, 1);
            ffi::lua_xmove(state, thread, DRIVER_DRIVE);
            driver = thread as usize;
            ffi::lua_pushinteger(state, r as ffi::lua_Integer);
        })?;
        (driver, driver_ref)
    };
    Ok(Vm { driver, _driver_ref: driver_ref, _lua: lua, core: core.clone() })
}

impl Vm {
    /// One run: calls `R.next` with nothing to report, on the driver thread, and the Lua driver
    /// only when it hands a process over. A run that resumes parked processes from Rust, the
    /// common run when processes of different shards talk, then runs no driver code, and nothing
    /// goes through mlua (whose `Function::call` moves a reference over from its reference
    /// thread and sets up an error handler and a guard).
    pub(crate) fn drive(&self) -> Result<(), String> {
        use mlua::ffi;
        let thread = self.driver as *mut ffi::lua_State;
        // SAFETY: the caller holds the shard's `vm` lock, so nothing else uses this VM; the
        // driver thread lives as long as `_lua` (its registry reference is never dropped), holds
        // its slots (see DRIVER_DRIVE) and is left with them alone.
        unsafe {
            let top = ffi::lua_gettop(thread);
            debug_assert_eq!(top, DRIVER_DRIVE);
            if ffi::lua_checkstack(thread, 1 + NEXT_ARGS + NEXT_TABLES) == 0 {
                return Err("out of Lua stack".into());
            }
            ffi::lua_pushvalue(thread, 1);
            ffi::lua_pushnumber(thread, -1.0);
            ffi::lua_pushnumber(thread, f64::from(S_WAITING));
            ffi::lua_pushboolean(thread, 0);
            ffi::lua_pushnil(thread);
            for slot in NEXT_BODY..=NEXT_GLOBALS {
                ffi::lua_pushvalue(thread, slot);
            }
            let mut status = ffi::lua_pcall(thread, NEXT_ARGS + NEXT_TABLES, ffi::LUA_MULTRET, 0);
            let handed = ffi::lua_gettop(thread) - top;
            if status == ffi::LUA_OK && handed > 0 {
                ffi::lua_pushvalue(thread, DRIVER_DRIVE);
                ffi::lua_insert(thread, top + 1);
                status = ffi::lua_pcall(thread, handed, 0, 0);
            }
            let outcome = if status == ffi::LUA_OK { Ok(()) } else { Err(error_text_at(thread, -1)) };
            ffi::lua_settop(thread, top);
            outcome
        }
    }
}

/// A process record's template: its fixed fields in an array part of exactly their size, so a
/// record is a copy of it with no hash part.
pub(crate) fn record_template(lua: &Lua) -> mlua::Result<Table> {
    let template = lua.create_table_with_capacity(RECORD_FIELDS, 0)?;
    for field in 1..=RECORD_FIELDS {
        template.raw_set(field, false)?;
    }
    Ok(template)
}
