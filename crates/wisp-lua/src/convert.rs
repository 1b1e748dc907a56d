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
/// refuses with the kind's name (see `prelude/`).
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
    let mut failed = None;
    // SAFETY: the raw call starts with an empty stack and returns the one value pushed;
    // `push_value` runs no Lua code and checks the stack room it needs.
    let pushed = unsafe {
        lua.exec_raw::<LuaValue>((), |state| {
            if let Err(e) = push_value(state, value) {
                mlua::ffi::lua_pushnil(state);
                failed = Some(e);
            }
        })
    }?;
    match failed {
        Some(e) => Err(mlua::Error::runtime(e)),
        None => Ok(pushed),
    }
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
    // SAFETY: `state` is live and `idx` valid (the caller's promise).
    Ok(match unsafe { ffi::lua_type(state, idx) } {
        ffi::LUA_TNIL => Value::Nil,
        // SAFETY: as above.
        ffi::LUA_TBOOLEAN => Value::Bool(unsafe { ffi::lua_toboolean(state, idx) } != 0),
        // SAFETY: as above.
        ffi::LUA_TNUMBER => Value::Number(unsafe { ffi::lua_tonumber(state, idx) }),
        ffi::LUA_TSTRING => {
            // SAFETY: the value is a string, and stays on the stack while its bytes are copied.
            let bytes = unsafe { raw_bytes(state, idx) };
            copier.charge(bytes.len())?;
            Value::Str(bytes.into())
        }
        // SAFETY: the value is a table, at a valid absolute index of the live state.
        ffi::LUA_TTABLE => Value::Table(Box::new(unsafe { raw_table(state, idx, copier) }?)),
        ffi::LUA_TFUNCTION => return Err(ValueError::Unsupported("function")),
        ffi::LUA_TTHREAD => return Err(ValueError::Unsupported("thread")),
        // A received message is its own Payload: forwarding it sends its data.
        // SAFETY: `idx` is valid (the caller's promise).
        _ => unsafe { data_of(state, idx) }.ok_or(ValueError::Unsupported("userdata"))?,
    })
}

/// Copies the table at `idx` (see [`raw_to_value`]): its array part, then its other keys.
///
/// # Safety
/// As [`raw_to_value`], and the value at `idx` must be a table. Makes its own room on the stack
/// (refused as too deep when there is none); on an error it may leave values pushed above
/// `idx`, for the caller's raw call to discard.
unsafe fn raw_table(
    state: *mut mlua::ffi::lua_State,
    idx: std::os::raw::c_int,
    copier: &mut Copier,
) -> Result<Table, ValueError> {
    use mlua::ffi;
    // SAFETY: `state` is live and `idx` the absolute index of a table (the caller's promise).
    let ptr = unsafe { ffi::lua_topointer(state, idx) };
    if copier.path.contains(&ptr) {
        return Err(ValueError::Cycle);
    }
    // SAFETY: as above.
    if copier.path.len() >= MAX_DEPTH || unsafe { ffi::lua_checkstack(state, 4) } == 0 {
        return Err(ValueError::TooDeep(MAX_DEPTH));
    }
    // SAFETY: as above, with room for the three values it pushes (just made).
    if let Some(kind) = unsafe { handle_kind(state, idx) } {
        return Err(ValueError::Unsupported(kind));
    }
    copier.charge(0)?;
    copier.path.push(ptr);
    // SAFETY: the value at `idx` is a table.
    let len = unsafe { ffi::lua_objlen(state, idx) };
    let mut out = Table { array: Vec::with_capacity(len), map: Vec::new() };
    for i in 1..=len {
        // SAFETY: the value at `idx` is a table, and the stack has room for the element (made
        // above; each element is popped before the next).
        unsafe { ffi::lua_rawgeti(state, idx, i as ffi::lua_Integer) };
        // SAFETY: the element is on top of the live stack, at an absolute index.
        let v = unsafe { raw_to_value(state, ffi::lua_gettop(state), copier) };
        // SAFETY: pops the element (the copy leaves the stack as it found it).
        unsafe { ffi::lua_pop(state, 1) };
        out.array.push(v?);
    }
    // SAFETY: room for the first key of the traversal (made above).
    unsafe { ffi::lua_pushnil(state) };
    // SAFETY: `idx` is an absolute index of the table, and the traversal's key is on top.
    while unsafe { ffi::lua_next(state, idx) } != 0 {
        // SAFETY: `lua_next` pushed a key and its value.
        let key_idx = unsafe { ffi::lua_gettop(state) } - 1;
        // SAFETY: `key_idx` is the key just pushed.
        let key = match unsafe { ffi::lua_type(state, key_idx) } {
            ffi::LUA_TNUMBER => {
                // SAFETY: the key is a number (read without changing it, so the traversal goes on).
                let n = unsafe { ffi::lua_tonumber(state, key_idx) };
                if n.fract() == 0.0 && n >= 1.0 && (n as usize) <= len {
                    // SAFETY: pops the value, leaving the key for `lua_next`.
                    unsafe { ffi::lua_pop(state, 1) };
                    continue;
                }
                Key::Number(n)
            }
            // SAFETY: the key is a boolean.
            ffi::LUA_TBOOLEAN => Key::Bool(unsafe { ffi::lua_toboolean(state, key_idx) } != 0),
            ffi::LUA_TSTRING => {
                // SAFETY: the key is a string, on the stack while its bytes are copied.
                let bytes = unsafe { raw_bytes(state, key_idx) };
                copier.charge(bytes.len())?;
                Key::Str(bytes.into())
            }
            ffi::LUA_TTABLE => return Err(ValueError::BadKey("table")),
            ffi::LUA_TFUNCTION => return Err(ValueError::BadKey("function")),
            _ => return Err(ValueError::BadKey("userdata")),
        };
        // SAFETY: the value is just above its key, at an absolute index of the live stack.
        let v = unsafe { raw_to_value(state, key_idx + 1, copier) };
        // SAFETY: pops the value, leaving the key for `lua_next`.
        unsafe { ffi::lua_pop(state, 1) };
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
    // SAFETY: `state` is live with room for three values and `idx` is valid (the caller's
    // promise).
    if unsafe { ffi::lua_getmetatable(state, idx) } == 0 {
        return None;
    }
    // SAFETY: as above; the registry has no metatable, so the read runs no code, and the field
    // name is a NUL-terminated constant.
    unsafe { ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, HANDLE_TYPES.as_ptr()) };
    // SAFETY: as above.
    if unsafe { ffi::lua_type(state, -1) } != ffi::LUA_TTABLE {
        // SAFETY: pops the metatable and the field, pushed above.
        unsafe { ffi::lua_pop(state, 2) };
        return None;
    }
    // SAFETY: the kinds table is on top and the metatable below it; the copy of the metatable
    // is the third value of the caller's room, replaced by the raw read.
    unsafe {
        ffi::lua_pushvalue(state, -2);
        ffi::lua_rawget(state, -2);
    }
    // SAFETY: as above.
    let kind = if unsafe { ffi::lua_type(state, -1) } == ffi::LUA_TSTRING {
        // SAFETY: the value on top is a string, and stays there while it is matched.
        Some(match unsafe { raw_bytes(state, -1) } {
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
    // SAFETY: pops the three values pushed above.
    unsafe { ffi::lua_pop(state, 3) };
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
        // SAFETY: `state` is live with room for the value (the caller's promise).
        Value::Nil => unsafe { ffi::lua_pushnil(state) },
        // SAFETY: as above.
        Value::Bool(b) => unsafe { ffi::lua_pushboolean(state, *b as c_int) },
        // SAFETY: as above.
        Value::Number(n) => unsafe { ffi::lua_pushnumber(state, *n) },
        // SAFETY: as above.
        Value::Str(s) => unsafe { push_bytes(state, s) },
        Value::Table(t) => {
            // SAFETY: `state` is live (the caller's promise).
            if unsafe { ffi::lua_checkstack(state, 3) } == 0 {
                return Err("payload too deep to rebuild".into());
            }
            // SAFETY: room for the table (made just above).
            unsafe { ffi::lua_createtable(state, t.array.len() as c_int, t.map.len() as c_int) };
            for (i, v) in t.array.iter().enumerate() {
                // SAFETY: room for the element above the table (made above; each is popped
                // before the next).
                unsafe { push_value(state, v) }?;
                // SAFETY: the element is on top, the table just below it.
                unsafe { ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer) };
            }
            for (k, v) in &t.map {
                match k {
                    // SAFETY: room for the key above the table (made above).
                    Key::Bool(b) => unsafe { ffi::lua_pushboolean(state, *b as c_int) },
                    // SAFETY: as above.
                    Key::Number(n) => unsafe { ffi::lua_pushnumber(state, *n) },
                    // SAFETY: as above.
                    Key::Str(s) => unsafe { push_bytes(state, s) },
                }
                // SAFETY: room for the value above its key (made above).
                unsafe { push_value(state, v) }?;
                // SAFETY: the value is on top, its key below it and the table below that.
                unsafe { ffi::lua_rawset(state, -3) };
            }
        }
    }
    Ok(())
}

/// Pushes the payloads of a message: one value, or an array when there are several.
/// Returns whether it was several.
///
/// # Safety
/// As [`push_value`]: `state` must be a live Lua state with room for two more values (the
/// array and one element), and for two more per level of each payload.
pub(crate) unsafe fn push_payloads(state: *mut mlua::ffi::lua_State, payloads: &[Value]) -> Result<bool, String> {
    match payloads {
        [] => {
            // SAFETY: `state` is live with room for the value (the caller's promise).
            unsafe { mlua::ffi::lua_pushnil(state) };
            Ok(false)
        }
        [one] => {
            // SAFETY: as above.
            unsafe { push_value(state, one) }?;
            Ok(false)
        }
        many => {
            // SAFETY: as above.
            unsafe { mlua::ffi::lua_createtable(state, many.len() as c_int, 0) };
            for (i, v) in many.iter().enumerate() {
                // SAFETY: room for the element above the array (the caller's promise; each is
                // popped before the next).
                unsafe { push_value(state, v) }?;
                // SAFETY: the element is on top, the array just below it.
                unsafe { mlua::ffi::lua_rawseti(state, -2, (i + 1) as mlua::ffi::lua_Integer) };
            }
            Ok(true)
        }
    }
}

/// An ended process's result, read from the stack at `idx`.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, and `idx` a valid absolute
/// index of its stack (see [`raw_to_value`]).
pub(crate) unsafe fn result_at(state: *mut mlua::ffi::lua_State, is_error: bool, idx: c_int) -> ExitResult {
    if !is_error {
        let mut path = crate::convert::Copier::new();
        return ExitResult::Value(
            // SAFETY: as the caller promises.
            unsafe { crate::convert::raw_to_value(state, idx, &mut path) }
                .unwrap_or_else(|e| Value::from(e.to_string())),
        );
    }
    // SAFETY: as the caller promises.
    ExitResult::Error(unsafe { error_text_at(state, idx) })
}

/// The text of the error object at `idx`: the string itself, or what kind of value it is.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, and `idx` a valid index of
/// its stack.
pub(crate) unsafe fn error_text_at(state: *mut mlua::ffi::lua_State, idx: c_int) -> String {
    // SAFETY: `state` is live and `idx` valid (the caller's promise).
    if unsafe { mlua::ffi::lua_type(state, idx) } == mlua::ffi::LUA_TSTRING {
        // SAFETY: the value is a string, on the stack while its bytes are copied.
        return String::from_utf8_lossy(unsafe { crate::stack::raw_bytes(state, idx) }).into_owned();
    }
    // SAFETY: as above.
    format!("error object is a {}", unsafe { type_name(state, idx) })
}

/// The userdata tag of inbox messages (mlua tags none of its userdata).
pub(crate) const MESSAGE_TAG: c_int = 1;

/// The message at `idx`, if it is one.
///
/// # Safety
/// `idx` must be a valid index of `state`; the reference must not outlive the value's place on
/// the stack.
pub(crate) unsafe fn message_at<'a>(state: *mut mlua::ffi::lua_State, idx: std::os::raw::c_int) -> Option<&'a Message> {
    // SAFETY: `idx` is valid (the caller's promise); a userdata of MESSAGE_TAG holds a live
    // Message (see `push_message`), kept alive by its place on the stack.
    unsafe { (mlua::ffi::lua_touserdatatagged(state, idx, MESSAGE_TAG) as *const Message).as_ref() }
}

/// The data of the message at `idx`, as `data()` would return it, if it is a message (a copy
/// for `process.send`: a message with one payload is that payload's Payload object).
///
/// # Safety
/// `idx` must be a valid index of `state`.
pub(crate) unsafe fn data_of(state: *mut mlua::ffi::lua_State, idx: std::os::raw::c_int) -> Option<Value> {
    // SAFETY: `idx` is valid (the caller's promise); the reference is not kept past the copy.
    let m = unsafe { message_at(state, idx) }?;
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
