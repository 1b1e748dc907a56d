//! The Rust side of the Lua modules: each file registers the callbacks (`R.*`) its module's Lua
//! half (in the prelude) calls, and holds what only it uses. Every callback acts for the process
//! Rust runs (`Core::current`), never for one a Lua value names.

mod ctx;
mod io;
mod names;
mod process;
pub(crate) mod require;
mod security;
mod spawn;
mod time;
mod uuid;

use std::sync::Arc;

use mlua::{Lua, Table};

use crate::shard::core::Core;

/// Registers every module's callbacks in `r` (the table the prelude receives as `R`).
pub(crate) fn register_callbacks(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    process::register(lua, r, core)?;
    spawn::register(lua, r, core)?;
    names::register(lua, r, core)?;
    time::register(lua, r, core)?;
    io::register(lua, r, core)?;
    ctx::register(lua, r, core)?;
    uuid::register(lua, r, core)?;
    security::register(lua, r, core)?;
    require::register(lua, r, core)?;
    Ok(())
}
