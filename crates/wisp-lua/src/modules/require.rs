//! `require`: the modules an entry may use, and libraries it imports. A library's chunk is
//! loaded into the shard's one chunk table, beside the entries' (`shard::lifecycle`).

use std::sync::Arc;

use mlua::{Function, Lua, Table};

use crate::shard::core::*;
use crate::shard::lifecycle::push_chunk_from;

/// Registry fields holding the shard's chunk table and the read-only globals chunks are loaded
/// with, for `require` (which runs outside `R.next`, where they are stack slots).
const CHUNKS: &std::ffi::CStr = c"wisp.chunks";
const GLOBALS: &std::ffi::CStr = c"wisp.globals";

/// Records the chunk table and the read-only globals for `require`.
pub(crate) fn install_chunk_tables(lua: &Lua, chunks: &Table, globals: &Table) -> mlua::Result<()> {
    // SAFETY: the two arguments are moved into registry fields; nothing is left on the stack.
    unsafe {
        lua.exec_raw::<()>((chunks.clone(), globals.clone()), |state| {
            mlua::ffi::lua_setfield(state, mlua::ffi::LUA_REGISTRYINDEX, GLOBALS.as_ptr());
            mlua::ffi::lua_setfield(state, mlua::ffi::LUA_REGISTRYINDEX, CHUNKS.as_ptr());
        })
    }
}

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    let c = core.clone();
    r.set(
        "require",
        lua.create_function(move |lua, name: String| {
            let code = with_proc(&c, running(&c), |p| p.code.clone())?;
            if let Some(library) = code.imports.get(&name) {
                let mut failed = None;
                // The chunk, cloned on the calling coroutine so the library sees the process's
                // globals.
                // SAFETY: the raw call starts with an empty stack (room for LUA_MINSTACK values);
                // it pushes the two tables, the chunk and its clone, and leaves the clone alone
                // (or nil when the chunk does not load).
                let clone: Option<Function> = unsafe {
                    lua.exec_raw((), |state| {
                        use mlua::ffi;
                        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, CHUNKS.as_ptr());
                        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, GLOBALS.as_ptr());
                        match push_chunk_from(state, &c, library, 1, 2) {
                            Ok(_) => {
                                ffi::lua_clonefunction(state, -1);
                                ffi::lua_replace(state, 1);
                            }
                            Err(e) => {
                                failed = Some(e);
                                ffi::lua_pushnil(state);
                                ffi::lua_replace(state, 1);
                            }
                        }
                        ffi::lua_settop(state, 1);
                    })?
                };
                return match (clone, failed) {
                    (Some(clone), None) => Ok(("library", Some(clone))),
                    (_, failed) => Err(mlua::Error::runtime(failed.unwrap_or_else(|| "library did not load".into()))),
                };
            }
            if code.modules.iter().any(|m| m == &name) && wisp_registry::PROVIDED_MODULES.contains(&name.as_str()) {
                return Ok(("builtin", None));
            }
            Err(mlua::Error::runtime(format!("module '{name}' is not available to {}", code.entry)))
        })?,
    )?;
    Ok(())
}
