//! `ctx`: the context a process was spawned with.

use std::sync::Arc;

use mlua::{Lua, Table, Value as LuaValue};

use crate::convert::*;
use crate::shard::core::*;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    let c = core.clone();
    r.set(
        "context",
        lua.create_function(move |lua, ()| {
            let context = with_proc(&c, running(&c), |p| p.context.clone())?;
            match context {
                Some(v) => value_to_lua(lua, &v),
                None => Ok(LuaValue::Table(lua.create_table()?)),
            }
        })?,
    )?;
    Ok(())
}
