//! `time`: timers (the Lua half keeps their channels) and the clock.

use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, Table, Value as LuaValue};
use wisp_core::Envelope;

use crate::shard::core::*;
use crate::stack::*;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    let c = core.clone();
    r.set(
        "timer",
        lua.create_function(move |_, delay: LuaValue| {
            let delay = parse_delay(&delay)?;
            let timers = c.timers.clone();
            with_proc(&c, running(&c), move |p| {
                let extra = p.extra_mut();
                extra.next_timer += 1;
                let id = extra.next_timer;
                let mailbox = p.mailbox.clone();
                let timer = timers.after(
                    delay,
                    Box::new(move || {
                        // A closed mailbox means the process ended: nothing to do.
                        let _ = mailbox.push(Envelope::Timer(id));
                    }),
                );
                p.extra_mut().timers.insert(id, timer);
                id
            })
        })?,
    )?;
    let c = core.clone();
    r.set(
        "cancel_timer",
        lua.create_function(move |_, id: u64| {
            let timer = with_proc(&c, running(&c), |p| p.extra_mut().timers.remove(&id)).ok().flatten();
            if let Some(timer) = timer {
                c.timers.cancel(timer);
            }
            Ok(())
        })?,
    )?;
    r.set("now", lua.create_function(|_, ()| Ok(now_seconds()))?)?;
    Ok(())
}

/// A number of nanoseconds or a Go-style duration string; zero or negative is refused.
pub(crate) fn parse_delay(value: &LuaValue) -> mlua::Result<Duration> {
    let nanos = match value {
        LuaValue::Integer(n) => *n as f64,
        LuaValue::Number(n) => *n,
        LuaValue::String(s) => {
            let text = s.to_str()?.to_string();
            return match wisp_registry::parse_go_duration(&text) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(mlua::Error::runtime(format!("duration must be positive: {text}"))),
                Err(e) => Err(mlua::Error::runtime(format!("bad duration `{text}`: {e}"))),
            };
        }
        other => return Err(mlua::Error::runtime(format!("expected a duration, got {}", other.type_name()))),
    };
    if nanos.is_nan() || nanos <= 0.0 || nanos.is_infinite() {
        return Err(mlua::Error::runtime("duration must be positive"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}
