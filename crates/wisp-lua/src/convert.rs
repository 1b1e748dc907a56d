//! Copies between Lua values and payload [`Value`]s.

use mlua::{Lua, Table as LuaTable, Value as LuaValue};
use wisp_core::{Key, Table, Value, ValueError};

/// How deep a payload may nest; deeper is refused rather than risking the Rust stack.
pub const MAX_DEPTH: usize = 64;

/// Copies a Lua value into a payload. Functions, threads, userdata and cycles are refused.
pub fn lua_to_value(value: &LuaValue) -> Result<Value, ValueError> {
    let mut path = Vec::new();
    to_value(value, &mut path)
}

fn to_value(value: &LuaValue, path: &mut Vec<*const std::ffi::c_void>) -> Result<Value, ValueError> {
    Ok(match value {
        LuaValue::Nil => Value::Nil,
        LuaValue::Boolean(b) => Value::Bool(*b),
        LuaValue::Integer(i) => Value::Number(*i as f64),
        LuaValue::Number(n) => Value::Number(*n),
        LuaValue::String(s) => Value::Str(s.as_bytes().to_vec().into_boxed_slice()),
        LuaValue::Table(t) => Value::Table(Box::new(table_to_value(t, path)?)),
        other => return Err(ValueError::Unsupported(other.type_name())),
    })
}

fn table_to_value(table: &LuaTable, path: &mut Vec<*const std::ffi::c_void>) -> Result<Table, ValueError> {
    let ptr = table.to_pointer();
    if path.contains(&ptr) {
        return Err(ValueError::Cycle);
    }
    if path.len() >= MAX_DEPTH {
        return Err(ValueError::TooDeep(MAX_DEPTH));
    }
    path.push(ptr);
    let len = table.raw_len();
    let mut out = Table { array: Vec::with_capacity(len), map: Vec::new() };
    for i in 1..=len {
        let v: LuaValue = table.raw_get(i).map_err(|_| ValueError::Unsupported("table"))?;
        out.array.push(to_value(&v, path)?);
    }
    for pair in table.pairs::<LuaValue, LuaValue>() {
        let (k, v) = pair.map_err(|_| ValueError::Unsupported("table"))?;
        let key = match &k {
            LuaValue::Integer(i) if *i >= 1 && (*i as usize) <= len => continue,
            LuaValue::Number(n) if n.fract() == 0.0 && *n >= 1.0 && (*n as usize) <= len => continue,
            LuaValue::Boolean(b) => Key::Bool(*b),
            LuaValue::Integer(i) => Key::Number(*i as f64),
            LuaValue::Number(n) => Key::Number(*n),
            LuaValue::String(s) => Key::Str(s.as_bytes().to_vec().into_boxed_slice()),
            other => return Err(ValueError::BadKey(other.type_name())),
        };
        out.map.push((key, to_value(&v, path)?));
    }
    path.pop();
    Ok(out)
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
    path: &mut Vec<*const std::ffi::c_void>,
) -> Result<Value, ValueError> {
    use mlua::ffi;
    Ok(match ffi::lua_type(state, idx) {
        ffi::LUA_TNIL => Value::Nil,
        ffi::LUA_TBOOLEAN => Value::Bool(ffi::lua_toboolean(state, idx) != 0),
        ffi::LUA_TNUMBER => Value::Number(ffi::lua_tonumber(state, idx)),
        ffi::LUA_TSTRING => Value::Str(raw_bytes(state, idx).into()),
        ffi::LUA_TTABLE => Value::Table(Box::new(raw_table(state, idx, path)?)),
        ffi::LUA_TFUNCTION => return Err(ValueError::Unsupported("function")),
        ffi::LUA_TTHREAD => return Err(ValueError::Unsupported("thread")),
        // A received message is its own Payload: forwarding it sends its data.
        _ => crate::message::data_of(state, idx).ok_or(ValueError::Unsupported("userdata"))?,
    })
}

/// The bytes of the string at `idx`.
///
/// # Safety
/// The value at `idx` must be a string; the slice lives as long as it stays on the stack.
pub(crate) unsafe fn raw_bytes<'a>(state: *mut mlua::ffi::lua_State, idx: std::os::raw::c_int) -> &'a [u8] {
    let mut len = 0usize;
    let ptr = mlua::ffi::lua_tolstring(state, idx, &mut len);
    if ptr.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(ptr as *const u8, len)
}

unsafe fn raw_table(
    state: *mut mlua::ffi::lua_State,
    idx: std::os::raw::c_int,
    path: &mut Vec<*const std::ffi::c_void>,
) -> Result<Table, ValueError> {
    use mlua::ffi;
    let ptr = ffi::lua_topointer(state, idx);
    if path.contains(&ptr) {
        return Err(ValueError::Cycle);
    }
    if path.len() >= MAX_DEPTH || ffi::lua_checkstack(state, 3) == 0 {
        return Err(ValueError::TooDeep(MAX_DEPTH));
    }
    path.push(ptr);
    let len = ffi::lua_objlen(state, idx);
    let mut out = Table { array: Vec::with_capacity(len), map: Vec::new() };
    for i in 1..=len {
        ffi::lua_rawgeti(state, idx, i as ffi::lua_Integer);
        let v = raw_to_value(state, ffi::lua_gettop(state), path);
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
            ffi::LUA_TSTRING => Key::Str(raw_bytes(state, key_idx).into()),
            ffi::LUA_TTABLE => return Err(ValueError::BadKey("table")),
            ffi::LUA_TFUNCTION => return Err(ValueError::BadKey("function")),
            _ => return Err(ValueError::BadKey("userdata")),
        };
        let v = raw_to_value(state, key_idx + 1, path);
        ffi::lua_pop(state, 1);
        out.map.push((key, v?));
    }
    path.pop();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_nested_tables() {
        let lua = Lua::new();
        let v: LuaValue = lua.load(r#"return {1, 2, "x", {a = true, [10] = 5}, name = "n"}"#).eval().unwrap();
        let copied = lua_to_value(&v).unwrap();
        let back = value_to_lua(&lua, &copied).unwrap();
        assert_eq!(lua_to_value(&back).unwrap(), copied);
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
        ];
        for (src, want) in cases {
            let v: LuaValue = lua.load(src).eval().unwrap();
            assert_eq!(lua_to_value(&v), Err(want), "{src}");
        }
    }

    #[test]
    fn shared_subtables_are_copied_not_refused() {
        let lua = Lua::new();
        let v: LuaValue = lua.load("local s = {1} return {s, s}").eval().unwrap();
        assert!(lua_to_value(&v).is_ok());
    }

    #[test]
    fn refuses_deep_nesting() {
        let lua = Lua::new();
        let v: LuaValue = lua.load("local t = {} for i = 1, 100 do t = {t} end return t").eval().unwrap();
        assert_eq!(lua_to_value(&v), Err(ValueError::TooDeep(MAX_DEPTH)));
    }

    /// The raw copy (used by `send`) and the mlua copy agree, refusals included.
    #[test]
    fn raw_copy_matches_the_mlua_copy() {
        let lua = Lua::new();
        let sources = [
            "return 1",
            "return 'text'",
            "return {1, 2, 'x', {a = true, [10] = 5}, name = 'n'}",
            "return {[1.5] = 1, [true] = 'yes', {}, {{}}}",
            "return function() end",
            "local t = {} t.self = t return t",
            "return {[{}] = 1}",
            "local t = {} for i = 1, 100 do t = {t} end return t",
        ];
        for src in sources {
            let v: LuaValue = lua.load(src).eval().unwrap();
            let by_mlua = lua_to_value(&v);
            // SAFETY: the one argument is at stack index 1 of the protected call.
            let by_raw = unsafe {
                let mut out = None;
                lua.exec_raw::<()>(v, |state| {
                    let mut path = Vec::new();
                    out = Some(raw_to_value(state, 1, &mut path));
                })
                .unwrap();
                out.unwrap()
            };
            match (&by_mlua, &by_raw) {
                (Ok(a), Ok(b)) => assert_eq!(normalized(a), normalized(b), "{src}"),
                (Err(a), Err(b)) => assert_eq!(a, b, "{src}"),
                _ => panic!("{src}: mlua {by_mlua:?}, raw {by_raw:?}"),
            }
        }
    }

    /// Map parts compared regardless of traversal order.
    fn normalized(v: &Value) -> String {
        match v {
            Value::Table(t) => {
                let mut map: Vec<String> = t.map.iter().map(|(k, v)| format!("{k:?}={}", normalized(v))).collect();
                map.sort();
                let array: Vec<String> = t.array.iter().map(normalized).collect();
                format!("[{}|{}]", array.join(","), map.join(","))
            }
            other => format!("{other:?}"),
        }
    }
}
