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
/// `state` must be the state the function was called with, with room for two more values
/// (a C function starts with `LUA_MINSTACK` free slots).
pub(crate) unsafe fn complete(
    state: *mut mlua::ffi::lua_State,
    outcome: std::thread::Result<Result<Reply, String>>,
    caller_level: Option<c_int>,
) -> c_int {
    use mlua::ffi;
    let raise = match outcome {
        Ok(Ok(Reply::True)) => {
            // SAFETY: `state` is the callback's live state, with room for a result.
            unsafe { ffi::lua_pushboolean(state, 1) };
            return 1;
        }
        Ok(Ok(Reply::Str(text))) => {
            // SAFETY: as above.
            unsafe { push_str(state, &text) };
            return 1;
        }
        Ok(Ok(Reply::NilErr(err))) => {
            // SAFETY: as above, with room for the two results.
            unsafe {
                ffi::lua_pushnil(state);
                push_str(state, &err);
            }
            return 2;
        }
        Ok(Err(raise)) => raise,
        Err(_) => "internal error in the runtime (a bug): the call was abandoned".to_string(),
    };
    // Name the Lua program's line, as `error(msg, level)` would.
    if let Some(level) = caller_level {
        // SAFETY: `state` is the callback's live state, with room for the location string.
        unsafe { ffi::luaL_where(state, level) };
    }
    // SAFETY: as above, with room for the message beside the location.
    unsafe { push_str(state, &raise) };
    drop(raise);
    if caller_level.is_some() {
        // SAFETY: the two strings just pushed are the top two values.
        unsafe { ffi::lua_concat(state, 2) };
    }
    // SAFETY: called last in a C function called by Lua, with the message on top; `raise` is
    // dropped and the caller holds nothing else that owns memory (its promise), so the unwind
    // leaks nothing.
    unsafe { ffi::lua_error(state) }
}

/// The UTF-8 string argument at `idx`, borrowed from the Lua stack (which holds it for the whole
/// call); otherwise `<expected>, got <what it is>`.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, and `idx` a valid index of
/// its stack. The `&str` borrows the string in place: it must not outlive the value's place on
/// the stack.
pub(crate) unsafe fn text_arg<'a>(
    state: *mut mlua::ffi::lua_State,
    idx: c_int,
    expected: &str,
) -> Result<&'a str, String> {
    // SAFETY: `state` is live and `idx` valid (the caller's promise).
    if unsafe { mlua::ffi::lua_type(state, idx) } != mlua::ffi::LUA_TSTRING {
        // SAFETY: as above.
        return Err(format!("{expected}, got {}", unsafe { type_name(state, idx) }));
    }
    // SAFETY: the value at `idx` is a string (just checked); the caller keeps it on the stack
    // for as long as the result lives.
    let bytes = unsafe { crate::stack::raw_bytes(state, idx) };
    // Names are nearly always ASCII, which is checked a word at a time, where UTF-8 validation
    // walks a short string byte by byte (twice per spawn: the entry and the host).
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).map_err(|_| format!("{expected}, got bytes that are not UTF-8"))
}

/// The Lua type name of the value at `idx`, for error messages.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, and `idx` a valid (or
/// acceptable: then "no value") index of its stack.
pub(crate) unsafe fn type_name(state: *mut mlua::ffi::lua_State, idx: c_int) -> String {
    // SAFETY: `state` is live and `idx` acceptable (the caller's promise); `lua_typename` only
    // reads a static table.
    let name = unsafe { mlua::ffi::lua_typename(state, mlua::ffi::lua_type(state, idx)) };
    if name.is_null() {
        return "no value".into();
    }
    // SAFETY: a non-null type name is a static NUL-terminated string of Luau's.
    unsafe { std::ffi::CStr::from_ptr(name) }.to_string_lossy().into_owned()
}

/// Pushes `s` as a Lua string.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, with room for one more
/// value.
pub(crate) unsafe fn push_str(state: *mut mlua::ffi::lua_State, s: &str) {
    // SAFETY: as the caller promises.
    unsafe { push_bytes(state, s.as_bytes()) };
}

/// Pushes a Lua string with Luau's own `lua_pushlstring`: mlua's wrapper of the same name also
/// reads the string back (`lua_tostring`) to return a pointer nobody here uses.
///
/// # Safety
/// As [`push_str`].
pub(crate) unsafe fn push_bytes(state: *mut mlua::ffi::lua_State, bytes: &[u8]) {
    // SAFETY: `state` is live with room for the string (the caller's promise); a slice's pointer
    // is never null, even when it is empty, and Luau copies the bytes.
    unsafe { mlua::ffi::lua_pushlstring_(state, bytes.as_ptr() as *const _, bytes.len()) };
}

/// Sets `t[key] = <top of stack>` on the table just below the top.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, with a table just below
/// the top of its stack and room for one more value. The value is popped.
pub(crate) unsafe fn set_field(state: *mut mlua::ffi::lua_State, key: &str) {
    // SAFETY: the caller promises the room for the key and the table below the value: after the
    // insert the stack is `table, key, value`, and the raw set pops the two.
    unsafe {
        push_str(state, key);
        mlua::ffi::lua_insert(state, -2);
        mlua::ffi::lua_rawset(state, -3);
    }
}

/// The bytes of the string at `idx`.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, and the value at `idx` a
/// string; the slice lives as long as it stays on the stack.
pub(crate) unsafe fn raw_bytes<'a>(state: *mut mlua::ffi::lua_State, idx: std::os::raw::c_int) -> &'a [u8] {
    let mut len = 0usize;
    // SAFETY: the value at `idx` is a string (the caller's promise), so nothing is converted.
    let ptr = unsafe { mlua::ffi::lua_tolstring(state, idx, &mut len) };
    if ptr.is_null() {
        return &[];
    }
    // SAFETY: Luau's string holds `len` bytes at `ptr`, and stays while the value stays on the
    // stack (the caller's promise for the lifetime).
    unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
}
