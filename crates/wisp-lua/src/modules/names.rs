//! `process.registry`: the local name registry.

use std::sync::Arc;

use mlua::{Lua, Table};

use crate::shard::core::*;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    let c = core.clone();
    r.set(
        "register",
        lua.create_function(move |_, (name, pid): (String, Option<String>)| {
            let me = with_proc(&c, running(&c), |p| p.pid)?;
            let target = match pid {
                None => me,
                Some(text) => match c.kernel.parse_pid(&text) {
                    Some(pid) => pid,
                    None => return Ok((None, Some(format!("not a PID: {text}")))),
                },
            };
            Ok(match c.kernel.register_name(me, &name, target) {
                Ok(()) => (Some(true), None),
                Err(e) => (None, Some(e.to_string())),
            })
        })?,
    )?;
    let c = core.clone();
    r.set(
        "lookup",
        lua.create_function(move |_, name: String| {
            Ok(match c.kernel.lookup_name(&name) {
                Some(pid) => (Some(c.kernel.render_pid(pid)), None),
                None => (None, Some(format!("no process registered as `{name}`"))),
            })
        })?,
    )?;
    let c = core.clone();
    r.set(
        "unregister",
        lua.create_function(move |_, name: String| {
            let me = with_proc(&c, running(&c), |p| p.pid)?;
            Ok(c.kernel.unregister_name(me, &name))
        })?,
    )?;
    Ok(())
}
