//! `print` and `io` (the terminal host's standard input and output).

use std::sync::Arc;

use mlua::{Lua, Table, Value as LuaValue, Variadic};

use crate::shard::core::*;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    let c = core.clone();
    r.set(
        "print",
        lua.create_function(move |_, line: mlua::LuaString| {
            let pid = with_proc(&c, running(&c), |p| p.pid)?;
            c.kernel.print(pid, &line.to_string_lossy());
            Ok(())
        })?,
    )?;

    let c = core.clone();
    r.set(
        "io",
        lua.create_function(move |_, (op, args): (String, Variadic<LuaValue>)| {
            let pid = with_proc(&c, running(&c), |p| p.pid)?;
            let Some(term) = c.kernel.terminal(pid) else {
                return Err(mlua::Error::runtime("io is only available in the terminal host"));
            };
            let text = || -> mlua::Result<Vec<u8>> {
                let mut out = Vec::new();
                for (i, a) in args.iter().enumerate() {
                    if i > 0 && op == "print" {
                        out.push(b'\t');
                    }
                    match a {
                        LuaValue::String(s) => out.extend_from_slice(&s.as_bytes()),
                        other => out.extend_from_slice(other.to_string()?.as_bytes()),
                    }
                }
                Ok(out)
            };
            match op.as_str() {
                "write" => term.write(&text()?),
                "print" => {
                    let mut line = text()?;
                    line.push(b'\n');
                    term.write(&line);
                }
                "flush" => term.flush(),
                "readline" => return Ok(term.read_line()),
                other => return Err(mlua::Error::runtime(format!("io: unknown operation {other}"))),
            }
            Ok(None)
        })?,
    )?;
    Ok(())
}
