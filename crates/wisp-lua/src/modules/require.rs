//! `require`: the modules an entry may use, and libraries it imports.

use std::sync::Arc;

use mlua::{Function, Lua, Table};

use crate::shard::core::*;
use crate::LuaCode;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    let c = core.clone();
    r.set(
        "require",
        lua.create_function(move |lua, name: String| {
            let code = with_proc(&c, running(&c), |p| p.code.clone())?;
            if let Some(library) = code.imports.get(&name) {
                let chunk = load_chunk(lua, &c, library)?;
                // Clone the chunk on the calling coroutine so the library sees the process's globals.
                // SAFETY: the only argument is a Lua function, replaced on the stack by its clone.
                let clone: Function = unsafe {
                    lua.exec_raw(chunk, |state| {
                        mlua::ffi::lua_clonefunction(state, -1);
                        mlua::ffi::lua_remove(state, -2);
                    })?
                };
                return Ok(("library", Some(clone)));
            }
            if code.modules.iter().any(|m| m == &name) && wisp_registry::PROVIDED_MODULES.contains(&name.as_str()) {
                return Ok(("builtin", None));
            }
            Err(mlua::Error::runtime(format!("module '{name}' is not available to {}", code.entry)))
        })?,
    )?;
    Ok(())
}

pub(crate) fn load_chunk(lua: &Lua, core: &Core, code: &LuaCode) -> mlua::Result<Function> {
    let mut loaded = core.loaded.borrow_mut();
    if let Some((source, f)) = loaded.get(&code.entry) {
        if Arc::ptr_eq(source, &code.source) {
            return Ok(f.clone());
        }
    }
    let bytecode = core.chunks.bytecode(&code.source);
    let f = lua.load(&bytecode[..]).set_name(format!("={}", code.chunk_name)).into_function()?;
    loaded.insert(code.entry.clone(), (code.source.clone(), f.clone()));
    Ok(f)
}
