//! `process.spawn*`, spawners (`with_*`) and `process.exec`'s spawn.

use std::os::raw::c_int;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mlua::{Lua, Table, Value as LuaValue, Variadic};
use wisp_core::{Pid, Value};
use wisp_process::{SpawnFlags, SpawnRequest};

use crate::convert::*;
use crate::shard::core::*;
use crate::stack::*;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    // `R.spawn[flags]` is `process.spawn*` itself (errors name its caller); `R.spawn.exec`, a
    // monitored spawn for `process.exec`, whose errors name exec's caller.
    let spawners = lua.create_table()?;
    for flags in 0..4u8 {
        let upvalues = vec![LuaValue::Number(flags as f64), LuaValue::Number(1.0)];
        spawners.raw_set(flags, raw_callback(lua, core, raw_spawn, c"spawn", upvalues)?)?;
    }
    let exec_upvalues = vec![LuaValue::Number(1.0), LuaValue::Number(2.0)];
    spawners.raw_set("exec", raw_callback(lua, core, raw_spawn, c"spawn", exec_upvalues)?)?;
    r.set("spawn", spawners)?;
    let c = core.clone();
    r.set(
        "spawn_with",
        lua.create_function(
            move |lua, (flags, opts, entry, host, args): (u8, Option<Table>, String, String, Variadic<LuaValue>)| {
                let token = running(&c);
                let (parent, parent_context, actor, scope) =
                    with_proc(&c, token, |p| (p.pid, p.context.clone(), p.actor.clone(), p.scope.clone()))?;
                let fail = |e: String| mlua::Error::runtime(format!("process.spawn: {e}"));
                let args = args_to_values(lua, &args).map_err(|e| fail(e.to_string()))?;
                let flags = SpawnFlags { monitor: flags & 1 != 0, link: flags & 2 != 0 };
                let mut request = SpawnRequest {
                    parent,
                    entry: &entry,
                    host: &host,
                    args,
                    flags,
                    name: None,
                    context: parent_context,
                    messages: Vec::new(),
                    actor,
                    scope,
                    burst: c.next_in_burst(),
                    parent_group: c.config.group,
                };
                if let Some(opts) = opts {
                    request.name = opts.get("name")?;
                    if let Some(context) = opts.get::<Option<Table>>("context")? {
                        let added = lua_to_value(lua, &LuaValue::Table(context)).map_err(|e| fail(e.to_string()))?;
                        request.context = Some(Arc::new(merge_context(request.context.as_deref(), added)));
                    }
                    for (field, slot) in [("actor", &mut request.actor), ("scope", &mut request.scope)] {
                        if let Some(t) = opts.get::<Option<Table>>(field)? {
                            *slot = Some(Arc::new(
                                lua_to_value(lua, &LuaValue::Table(t)).map_err(|e| fail(e.to_string()))?,
                            ));
                        }
                    }
                    if let Some(messages) = opts.get::<Option<Table>>("messages")? {
                        for m in messages.sequence_values::<Table>() {
                            let m = m?;
                            let topic: String = m.get(1)?;
                            let payloads: Variadic<LuaValue> =
                                m.get::<Table>(2)?.sequence_values().collect::<mlua::Result<_>>()?;
                            let payloads = args_to_values(lua, &payloads).map_err(|e| fail(e.to_string()))?;
                            request.messages.push((topic.into(), payloads));
                        }
                    }
                }
                match c.kernel.spawn(request) {
                    Ok(child) => {
                        record_child(&c, token, flags, child);
                        Ok((Some(c.kernel.render_pid(child)), None))
                    }
                    Err(e) => Ok((None, Some(e.to_string()))),
                }
            },
        )?,
    )?;
    Ok(())
}

/// `process.spawn*(entry, host, ...)` as a raw C function; upvalues: the spawn flags (1 monitor,
/// 2 link) and the level of the Lua frame its errors name. A spawn without spawner options
/// (those go through `R.spawn_with`). Returns the child's PID, or `nil, err`.
///
/// # Safety
/// Called by Luau only, as a raw callback of a shard made by `raw_callback` with the two
/// upvalues above after the shard's Core, inside that shard's run.
pub(crate) unsafe extern "C-unwind" fn raw_spawn(state: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = unsafe { core_of(state) };
    // SAFETY: upvalues 2 and 3 are the numbers `register` gave the callback.
    let flags = unsafe { ffi::lua_tonumber(state, ffi::lua_upvalueindex(2)) } as u8;
    // SAFETY: as above.
    let level = unsafe { ffi::lua_tonumber(state, ffi::lua_upvalueindex(3)) } as c_int;
    // SAFETY: the live state of this call, with its arguments on the stack, on the shard's thread.
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { spawn_from_stack(state, core, flags) }));
    match outcome {
        Ok(Ok(Ok(child))) => {
            // The child's PID string, rendered into a buffer this thread keeps rather than a
            // String per spawn.
            PID_TEXT.with_borrow_mut(|text| {
                text.clear();
                core.kernel.write_pid(child, text);
                // SAFETY: a C function has room for its result.
                unsafe { push_str(state, text) };
            });
            1
        }
        // SAFETY: the last call of this callback; what it raises or returns is moved into it,
        // and nothing else it holds owns memory.
        Ok(Ok(Err(failed))) => unsafe { complete(state, Ok(Ok(Reply::NilErr(failed))), Some(level)) },
        // SAFETY: as above.
        Ok(Err(raise)) => unsafe { complete(state, Ok(Err(raise)), Some(level)) },
        // SAFETY: as above.
        Err(panic) => unsafe { complete(state, Err(panic), Some(level)) },
    }
}

thread_local! {
    static PID_TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Spawns from the arguments of `process.spawn*`: the child, or the failure the program gets as
/// `nil, err`; `Err` for bad arguments, raised.
///
/// # Safety
/// `state` must be the live state of a raw callback's call, with the call's arguments on its
/// stack, on the thread running `core`'s shard. The entry and host names borrow arguments 1
/// and 2, which the stack holds for the whole call.
pub(crate) unsafe fn spawn_from_stack(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    flags: u8,
) -> Result<Result<Pid, String>, String> {
    use mlua::ffi;
    // SAFETY: `state` is live (the caller's promise).
    let top = unsafe { ffi::lua_gettop(state) };
    // SAFETY: as above; indices 1 and 2 are acceptable in a C function, and their strings stay
    // on the stack while the request borrows them.
    let entry = unsafe { text_arg(state, 1, "process.spawn: the entry must be a string") }?;
    // SAFETY: as above.
    let host = unsafe { text_arg(state, 2, "process.spawn: the host must be a string") }?;
    let mut args = Vec::with_capacity((top - 2).max(0) as usize);
    let mut path = crate::convert::Copier::new();
    for idx in 3..=top {
        // SAFETY: `idx` is the absolute index of an argument.
        args.push(
            unsafe { crate::convert::raw_to_value(state, idx, &mut path) }
                .map_err(|e| format!("process.spawn: {e}"))?,
        );
    }
    let token = core.current.load(Ordering::Relaxed);
    let (parent, context, actor, scope) = {
        let procs = core.procs.borrow_mut();
        let p = procs.get(&token).ok_or("process is not running")?;
        (p.pid, p.context.clone(), p.actor.clone(), p.scope.clone())
    };
    let flags = SpawnFlags { monitor: flags & 1 != 0, link: flags & 2 != 0 };
    let request = SpawnRequest {
        parent,
        entry,
        host,
        args,
        flags,
        name: None,
        context,
        messages: Vec::new(),
        actor,
        scope,
        burst: core.next_in_burst(),
        parent_group: core.config.group,
    };
    Ok(match core.kernel.spawn(request) {
        Ok(child) => {
            record_child(core, token, flags, child);
            Ok(child)
        }
        Err(e) => Err(e.to_string()),
    })
}

/// What a parent keeps of a child it spawned monitored or linked.
pub(crate) fn record_child(core: &Core, token: u32, flags: SpawnFlags, child: Pid) {
    if let Some(p) = core.procs.borrow_mut().get_mut(&token) {
        let supervision = &mut p.extra_mut().supervision;
        if flags.monitor {
            supervision.monitor(child);
        }
        if flags.link {
            supervision.link(child);
        }
    }
}

/// A context table: the parent's keys overlaid with those a spawner added.
pub(crate) fn merge_context(parent: Option<&Value>, added: Value) -> Value {
    let (Some(Value::Table(base)), Value::Table(extra)) = (parent, &added) else {
        return added;
    };
    let mut merged = (**base).clone();
    for (key, value) in &extra.map {
        match merged.map.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => merged.map.push((key.clone(), value.clone())),
        }
    }
    Value::Table(Box::new(merged))
}

pub(crate) fn args_to_values(lua: &Lua, args: &[LuaValue]) -> Result<Vec<Value>, wisp_core::ValueError> {
    args.iter().map(|v| lua_to_value(lua, v)).collect()
}
