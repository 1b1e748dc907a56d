//! `uuid`: version 4 and 7 UUIDs as strings.

use std::sync::Arc;

use mlua::{Lua, Table};

use crate::shard::core::*;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, _core: &Arc<Core>) -> mlua::Result<()> {
    r.set(
        "uuid",
        lua.create_function(|_, version: u8| {
            Ok(match version {
                7 => uuid::Uuid::now_v7(),
                _ => uuid::Uuid::new_v4(),
            }
            .to_string())
        })?,
    )?;
    Ok(())
}
