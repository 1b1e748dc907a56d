//! Copies between Lua values and payload [`Value`]s.
//!
//! One copy each way: Lua to payload through the raw API ([`raw_to_value`], with
//! [`lua_to_value`] as its entry for mlua values), payload to Lua by [`value_to_lua`] and
//! `shard::push_value`. The copy reads tables with raw accesses only, so no program's code
//! runs while it copies; it refuses what cannot cross a process boundary (functions, threads,
//! userdata other than a message, cycles, the runtime's handles) and stops at
//! [`MAX_PAYLOAD_BYTES`].

use std::ffi::c_void;

use mlua::{Lua, Value as LuaValue};
use std::os::raw::c_int;
use wisp_core::{ExitResult, Message};

use crate::stack::*;
use wisp_core::{Key, Table, Value, ValueError};

/// How deep a payload may nest; deeper is refused rather than risking the Rust stack.
pub const MAX_DEPTH: usize = 64;

/// The most a payload's copy may hold: string bytes plus [`VALUE_COST`] per value and key.
/// Counted while copying, so a refusal costs time in proportion to this bound, not to the
/// payload (a table reached twice counts twice: `t = {t, t}` forty times over is 2^40 nodes).
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

/// What one value or key costs against [`MAX_PAYLOAD_BYTES`] beside its string bytes: about
/// what it takes in a `Value` tree.
const VALUE_COST: usize = 24;

/// The registry field holding the handles' metatables (metatable -> kind name), which the copy
/// refuses with the kind's name (see `prelude.luau`).
pub(crate) const HANDLE_TYPES: &std::ffi::CStr = c"wisp.handle_types";

/// The state of one copy: the tables on the path from the root (for cycles) and what is left
/// of the budget.
pub(crate) struct Copier {
    path: Vec<*const c_void>,
    left: usize,
}

impl Copier {
    pub(crate) fn new() -> Copier {
        Copier { path: Vec::new(), left: MAX_PAYLOAD_BYTES }
    }

    fn charge(&mut self, bytes: usize) -> Result<(), ValueError> {
        match self.left.checked_sub(VALUE_COST + bytes) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(ValueError::TooLarge(MAX_PAYLOAD_BYTES)),
        }
    }
}

/// Copies a Lua value into a payload (see [`raw_to_value`]).
pub fn lua_to_value(lua: &Lua, value: &LuaValue) -> Result<Value, ValueError> {
    let mut out = Err(ValueError::Unsupported("value"));
    // SAFETY: the one argument is at stack index 1 of the raw call, which runs no Lua code.
    let called = unsafe {
        lua.exec_raw::<()>(value.clone(), |state| {
            let mut copier = Copier::new();
            out = raw_to_value(state, 1, &mut copier);
        })
    };
    called.map_err(|_| ValueError::Unsupported("value"))?;
    out
}

/// Rebuilds a payload as a fresh Lua value owned by the receiving process.
pub fn value_to_lua(lua: &Lua, value: &Value) -> mlua::Result<LuaValue> {
    Ok(match value {
        Value::Nil => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => LuaValue::Number(*n),
        Value::Str(s) => LuaValue::String(lua.create_string(s)?),
        Value::Table(t) => {
            let table = lua.create_table_with_capacity(t.array.len(), t.map.len())?;
            for (i, v) in t.array.iter().enumerate() {
                table.raw_set(i + 1, value_to_lua(lua, v)?)?;
            }
            for (k, v) in &t.map {
                let key = match k {
                    Key::Bool(b) => LuaValue::Boolean(*b),
                    Key::Number(n) => LuaValue::Number(*n),
                    Key::Str(s) => LuaValue::String(lua.create_string(s)?),
                };
                table.raw_set(key, value_to_lua(lua, v)?)?;
            }
            LuaValue::Table(table)
        }
    })
}

/// Copies the Lua value at stack index `idx` (absolute) into a payload, through the raw API:
/// for the hottest callbacks, which run as plain C functions (see `shard::raw_send`).
///
/// # Safety
/// `state` must be a live Lua state and `idx` a valid absolute stack index. No Lua code runs
/// (only raw accesses), so nothing can yield or raise except on memory exhaustion.
pub(crate) unsafe fn raw_to_value(
    state: *mut mlua::ffi::lua_State,
    idx: std::os::raw::c_int,
    copier: &mut Copier,
) -> Result<Value, ValueError> {
    use mlua::ffi;
    Ok(match ffi::lua_type(state, idx) {
        ffi::LUA_TNIL => Value::Nil,
        ffi::LUA_TBOOLEAN => Value::Bool(ffi::lua_toboolean(state, idx) != 0),
        ffi::LUA_TNUMBER => Value::Number(ffi::lua_tonumber(state, idx)),
        ffi::LUA_TSTRING => {
            let bytes = raw_bytes(state, idx);
            copier.charge(bytes.len())?;
            Value::Str(bytes.into())
        }
        ffi::LUA_TTABLE => Value::Table(Box::new(raw_table(state, idx, copier)?)),
        ffi::LUA_TFUNCTION => return Err(ValueError::Unsupported("function")),
        ffi::LUA_TTHREAD => return Err(ValueError::Unsupported("thread")),
        // A received message is its own Payload: forwarding it sends its data.
        _ => data_of(state, idx).ok_or(ValueError::Unsupported("userdata"))?,
    })
}

unsafe fn raw_table(
    state: *mut mlua::ffi::lua_State,
    idx: std::os::raw::c_int,
    copier: &mut Copier,
) -> Result<Table, ValueError> {
    use mlua::ffi;
    let ptr = ffi::lua_topointer(state, idx);
    if copier.path.contains(&ptr) {
        return Err(ValueError::Cycle);
    }
    if copier.path.len() >= MAX_DEPTH || ffi::lua_checkstack(state, 4) == 0 {
        return Err(ValueError::TooDeep(MAX_DEPTH));
    }
    if let Some(kind) = handle_kind(state, idx) {
        return Err(ValueError::Unsupported(kind));
    }
    copier.charge(0)?;
    copier.path.push(ptr);
    let len = ffi::lua_objlen(state, idx);
    let mut out = Table { array: Vec::with_capacity(len), map: Vec::new() };
    for i in 1..=len {
        ffi::lua_rawgeti(state, idx, i as ffi::lua_Integer);
        let v = raw_to_value(state, ffi::lua_gettop(state), copier);
        ffi::lua_pop(state, 1);
        out.array.push(v?);
    }
    ffi::lua_pushnil(state);
    while ffi::lua_next(state, idx) != 0 {
        let key_idx = ffi::lua_gettop(state) - 1;
        let key = match ffi::lua_type(state, key_idx) {
            ffi::LUA_TNUMBER => {
                let n = ffi::lua_tonumber(state, key_idx);
                if n.fract() == 0.0 && n >= 1.0 && (n as usize) <= len {
                    ffi::lua_pop(state, 1);
                    continue;
                }
                Key::Number(n)
            }
            ffi::LUA_TBOOLEAN => Key::Bool(ffi::lua_toboolean(state, key_idx) != 0),
            ffi::LUA_TSTRING => {
                let bytes = raw_bytes(state, key_idx);
                copier.charge(bytes.len())?;
                Key::Str(bytes.into())
            }
            ffi::LUA_TTABLE => return Err(ValueError::BadKey("table")),
            ffi::LUA_TFUNCTION => return Err(ValueError::BadKey("function")),
            _ => return Err(ValueError::BadKey("userdata")),
        };
        let v = raw_to_value(state, key_idx + 1, copier);
        ffi::lua_pop(state, 1);
        out.map.push((key, v?));
    }
    copier.path.pop();
    Ok(out)
}

/// The kind of runtime handle the table at `idx` is (a channel, a timer...), or `None` for a
/// program's own table. Raw reads only.
///
/// # Safety
/// `state` must be a live Lua state with room for three more values; `idx` is absolute.
unsafe fn handle_kind(state: *mut mlua::ffi::lua_State, idx: std::os::raw::c_int) -> Option<&'static str> {
    use mlua::ffi;
    if ffi::lua_getmetatable(state, idx) == 0 {
        return None;
    }
    ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, HANDLE_TYPES.as_ptr());
    if ffi::lua_type(state, -1) != ffi::LUA_TTABLE {
        ffi::lua_pop(state, 2);
        return None;
    }
    ffi::lua_pushvalue(state, -2);
    ffi::lua_rawget(state, -2);
    let kind = if ffi::lua_type(state, -1) == ffi::LUA_TSTRING {
        Some(match raw_bytes(state, -1) {
            b"channel" => "channel",
            b"timer" => "timer",
            b"ticker" => "ticker",
            b"spawner" => "spawner",
            b"actor" => "actor",
            b"scope" => "scope",
            _ => "runtime object",
        })
    } else {
        None
    };
    ffi::lua_pop(state, 3);
    kind
}

/// Records the handles' metatables (metatable -> kind name) for [`handle_kind`].
pub(crate) fn install_handle_types(lua: &Lua, types: mlua::Table) -> mlua::Result<()> {
    // SAFETY: the one argument, the table, is moved into the registry field.
    unsafe {
        lua.exec_raw::<()>(types, |state| {
            mlua::ffi::lua_setfield(state, mlua::ffi::LUA_REGISTRYINDEX, HANDLE_TYPES.as_ptr());
        })
    }
}

/// Pushes a payload as a fresh Lua value owned by the receiving process.
///
/// # Safety
/// `state` must be a live Lua state with room for two more values per level of `value`
/// (checked here); no Lua code runs.
pub(crate) unsafe fn push_value(state: *mut mlua::ffi::lua_State, value: &Value) -> Result<(), String> {
    use mlua::ffi;
    match value {
        Value::Nil => ffi::lua_pushnil(state),
        Value::Bool(b) => ffi::lua_pushboolean(state, *b as c_int),
        Value::Number(n) => ffi::lua_pushnumber(state, *n),
        Value::Str(s) => push_bytes(state, s),
        Value::Table(t) => {
            if ffi::lua_checkstack(state, 3) == 0 {
                return Err("payload too deep to rebuild".into());
            }
            ffi::lua_createtable(state, t.array.len() as c_int, t.map.len() as c_int);
            for (i, v) in t.array.iter().enumerate() {
                push_value(state, v)?;
                ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
            }
            for (k, v) in &t.map {
                match k {
                    Key::Bool(b) => ffi::lua_pushboolean(state, *b as c_int),
                    Key::Number(n) => ffi::lua_pushnumber(state, *n),
                    Key::Str(s) => push_bytes(state, s),
                }
                push_value(state, v)?;
                ffi::lua_rawset(state, -3);
            }
        }
    }
    Ok(())
}

/// Pushes the payloads of a message: one value, or an array when there are several.
/// Returns whether it was several.
pub(crate) unsafe fn push_payloads(state: *mut mlua::ffi::lua_State, payloads: &[Value]) -> Result<bool, String> {
    match payloads {
        [] => {
            mlua::ffi::lua_pushnil(state);
            Ok(false)
        }
        [one] => {
            push_value(state, one)?;
            Ok(false)
        }
        many => {
            mlua::ffi::lua_createtable(state, many.len() as c_int, 0);
            for (i, v) in many.iter().enumerate() {
                push_value(state, v)?;
                mlua::ffi::lua_rawseti(state, -2, (i + 1) as mlua::ffi::lua_Integer);
            }
            Ok(true)
        }
    }
}

/// An ended process's result, read from the stack at `idx`.
pub(crate) unsafe fn result_at(state: *mut mlua::ffi::lua_State, is_error: bool, idx: c_int) -> ExitResult {
    if !is_error {
        let mut path = crate::convert::Copier::new();
        return ExitResult::Value(
            crate::convert::raw_to_value(state, idx, &mut path).unwrap_or_else(|e| Value::from(e.to_string())),
        );
    }
    ExitResult::Error(error_text_at(state, idx))
}

/// The text of the error object at `idx`: the string itself, or what kind of value it is.
pub(crate) unsafe fn error_text_at(state: *mut mlua::ffi::lua_State, idx: c_int) -> String {
    if mlua::ffi::lua_type(state, idx) == mlua::ffi::LUA_TSTRING {
        return String::from_utf8_lossy(crate::stack::raw_bytes(state, idx)).into_owned();
    }
    format!("error object is a {}", type_name(state, idx))
}

/// The userdata tag of inbox messages (mlua tags none of its userdata).
pub(crate) const MESSAGE_TAG: c_int = 1;

/// The message at `idx`, if it is one.
///
/// # Safety
/// `idx` must be a valid index of `state`; the reference must not outlive the value's place on
/// the stack.
pub(crate) unsafe fn message_at<'a>(state: *mut mlua::ffi::lua_State, idx: std::os::raw::c_int) -> Option<&'a Message> {
    // SAFETY: a userdata of MESSAGE_TAG holds a live Message (see `push_message`), kept alive
    // by its place on the stack.
    (mlua::ffi::lua_touserdatatagged(state, idx, MESSAGE_TAG) as *const Message).as_ref()
}

/// The data of the message at `idx`, as `data()` would return it, if it is a message (a copy
/// for `process.send`: a message with one payload is that payload's Payload object).
///
/// # Safety
/// `idx` must be a valid index of `state`.
pub(crate) unsafe fn data_of(state: *mut mlua::ffi::lua_State, idx: std::os::raw::c_int) -> Option<Value> {
    let m = message_at(state, idx)?;
    Some(match m.payloads.as_slice() {
        [] => Value::Nil,
        [one] => one.clone(),
        many => Value::Table(Box::new(wisp_core::Table { array: many.to_vec(), map: Vec::new() })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(lua: &Lua, src: &str) -> Result<Value, ValueError> {
        let v: LuaValue = lua.load(src).eval().unwrap();
        lua_to_value(lua, &v)
    }

    #[test]
    fn round_trips_nested_tables() {
        let lua = Lua::new();
        let copied = copy(&lua, r#"return {1, 2, "x", {a = true, [10] = 5}, name = "n"}"#).unwrap();
        let back = value_to_lua(&lua, &copied).unwrap();
        assert_eq!(lua_to_value(&lua, &back).unwrap(), copied);
        let Value::Table(t) = copied else { panic!("not a table") };
        assert_eq!(t.array.len(), 4);
        assert_eq!(t.map.len(), 1);
    }

    #[test]
    fn refuses_what_cannot_be_copied() {
        let lua = Lua::new();
        let cases = [
            ("return function() end", ValueError::Unsupported("function")),
            ("local t = {} t.self = t return t", ValueError::Cycle),
            ("return {f = print}", ValueError::Unsupported("function")),
            ("return {[{}] = 1}", ValueError::BadKey("table")),
            ("return coroutine.create(print)", ValueError::Unsupported("thread")),
            ("local t = {} for i = 1, 100 do t = {t} end return t", ValueError::TooDeep(MAX_DEPTH)),
            // 2^40 nodes: refused once the budget is spent, not after copying them all.
            ("local t = {1} for _ = 1, 40 do t = {t, t} end return t", ValueError::TooLarge(MAX_PAYLOAD_BYTES)),
            ("return string.rep('x', 65 * 1024 * 1024)", ValueError::TooLarge(MAX_PAYLOAD_BYTES)),
        ];
        for (src, want) in cases {
            assert_eq!(copy(&lua, src), Err(want), "{src}");
        }
    }

    #[test]
    fn shared_subtables_are_copied_not_refused() {
        let lua = Lua::new();
        assert!(copy(&lua, "local s = {1} return {s, s}").is_ok());
    }

    #[test]
    fn a_table_with_a_handle_metatable_is_refused_by_its_kind() {
        let lua = Lua::new();
        let types: mlua::Table = lua.load("local mt = {} _G.handle_mt = mt return {[mt] = 'channel'}").eval().unwrap();
        install_handle_types(&lua, types).unwrap();
        assert_eq!(copy(&lua, "return setmetatable({}, handle_mt)"), Err(ValueError::Unsupported("channel")));
        assert_eq!(copy(&lua, "return {inner = setmetatable({}, handle_mt)}"), Err(ValueError::Unsupported("channel")));
        assert!(copy(&lua, "return setmetatable({1}, {})").is_ok(), "a program's own metatable is not a handle's");
    }
}
