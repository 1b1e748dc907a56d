//! The raw Lua stack: pushing strings, reading arguments, and ending a raw C callback with
//! its results or its error. The lowest layer of the crate: it imports nothing of it.

use std::os::raw::c_int;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// What a raw callback answers: `true`, or `nil, err` (a failure the program handles).
pub(crate) enum Reply {
    True,
    NilErr(String),
    Str(String),
}

/// Ends a raw callback: pushes its results, or raises its error. Raising happens only after
/// every Rust value of the call is gone, because the raise unwinds through this frame.
///
/// # Safety
/// To be called last in a `lua_CFunction`, with nothing owning heap memory still alive.
pub(crate) unsafe fn complete(
    state: *mut mlua::ffi::lua_State,
    outcome: std::thread::Result<Result<Reply, String>>,
    caller_level: Option<c_int>,
) -> c_int {
    use mlua::ffi;
    let raise = match outcome {
        Ok(Ok(Reply::True)) => {
            ffi::lua_pushboolean(state, 1);
            return 1;
        }
        Ok(Ok(Reply::Str(text))) => {
            push_str(state, &text);
            return 1;
        }
        Ok(Ok(Reply::NilErr(err))) => {
            ffi::lua_pushnil(state);
            push_str(state, &err);
            return 2;
        }
        Ok(Err(raise)) => raise,
        Err(_) => "internal error in the runtime (a bug): the call was abandoned".to_string(),
    };
    // Name the Lua program's line, as `error(msg, level)` would.
    if let Some(level) = caller_level {
        ffi::luaL_where(state, level);
    }
    push_str(state, &raise);
    drop(raise);
    if caller_level.is_some() {
        ffi::lua_concat(state, 2);
    }
    ffi::lua_error(state)
}

/// The UTF-8 string argument at `idx`, borrowed from the Lua stack (which holds it for the whole
/// call); otherwise `<expected>, got <what it is>`.
pub(crate) unsafe fn text_arg<'a>(
    state: *mut mlua::ffi::lua_State,
    idx: c_int,
    expected: &str,
) -> Result<&'a str, String> {
    if mlua::ffi::lua_type(state, idx) != mlua::ffi::LUA_TSTRING {
        return Err(format!("{expected}, got {}", type_name(state, idx)));
    }
    let bytes = crate::stack::raw_bytes(state, idx);
    // Names are nearly always ASCII, which is checked a word at a time, where UTF-8 validation
    // walks a short string byte by byte (twice per spawn: the entry and the host).
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Ok(std::str::from_utf8_unchecked(bytes));
    }
    std::str::from_utf8(bytes).map_err(|_| format!("{expected}, got bytes that are not UTF-8"))
}

/// The Lua type name of the value at `idx`, for error messages.
pub(crate) unsafe fn type_name(state: *mut mlua::ffi::lua_State, idx: c_int) -> String {
    let name = mlua::ffi::lua_typename(state, mlua::ffi::lua_type(state, idx));
    if name.is_null() {
        return "no value".into();
    }
    std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
}

pub(crate) unsafe fn push_str(state: *mut mlua::ffi::lua_State, s: &str) {
    push_bytes(state, s.as_bytes());
}

/// Pushes a Lua string with Luau's own `lua_pushlstring`: mlua's wrapper of the same name also
/// reads the string back (`lua_tostring`) to return a pointer nobody here uses.
pub(crate) unsafe fn push_bytes(state: *mut mlua::ffi::lua_State, bytes: &[u8]) {
    // A slice's pointer is never null, even when it is empty.
    mlua::ffi::lua_pushlstring_(state, bytes.as_ptr() as *const _, bytes.len());
}

/// Sets `t[key] = <top of stack>` on the table just below the top.
pub(crate) unsafe fn set_field(state: *mut mlua::ffi::lua_State, key: &str) {
    push_str(state, key);
    mlua::ffi::lua_insert(state, -2);
    mlua::ffi::lua_rawset(state, -3);
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
