//! Inbox messages as Lua sees them: a tagged userdata holding the Rust [`Message`].
//!
//! A message taken from the inbox is handed to Lua as it is, without building a table: its
//! payload becomes Lua values only when `data()` asks (rebuilt on each call, as a copy must
//! be), its sender becomes a PID string only when `from()` asks, and there is one object for
//! the collector instead of a table and its array. The methods are raw C functions found
//! through the tag's metatable, which programs can neither read nor change (`__metatable`).
//!
//! Listener channels opened with `{message = true}` receive the same userdata, and each part of
//! a message with several payloads is a one-payload message.

use std::ffi::c_void;
use std::os::raw::c_int;

use mlua::{ffi, Lua};
use wisp_core::Message;

use crate::convert::{message_at, push_payloads, MESSAGE_TAG};
use crate::shard::core::Core;
use crate::stack::{complete, push_str, Reply};

// A userdata's memory is aligned like `LUAI_USER_ALIGNMENT_T` (8 bytes on every target).
const _: () = assert!(std::mem::align_of::<Message>() <= 8);

/// Registers the message tag's destructor and metatable on a shard's VM. `core` is the raw
/// pointer the shard's other raw functions hold.
pub(crate) fn install(lua: &Lua, core: *const Core) -> mlua::Result<()> {
    let core = core as *mut c_void;
    // SAFETY: the closure runs on the VM's main state; every push below is balanced, and the
    // metatable is popped by `lua_setuserdatametatable`. The Core outlives the VM, so the
    // methods' upvalue stays valid.
    unsafe {
        lua.exec_raw::<()>((), move |state| {
            ffi::lua_setuserdatadtor(state, MESSAGE_TAG, Some(drop_message));
            ffi::lua_createtable(state, 0, 3); // the metatable
            ffi::lua_createtable(state, 0, 4); // its __index: the methods
            let methods: [(&std::ffi::CStr, ffi::lua_CFunction); 3] =
                [(c"topic", message_topic), (c"payload", message_payload), (c"data", message_data)];
            for (name, f) in methods {
                ffi::lua_pushcclosured(state, f, name.as_ptr(), 0);
                ffi::lua_rawsetfield(state, -2, name.as_ptr());
            }
            ffi::lua_pushlightuserdata(state, core);
            ffi::lua_pushcclosured(state, message_from, c"from".as_ptr(), 1);
            ffi::lua_rawsetfield(state, -2, c"from".as_ptr());
            ffi::lua_setreadonly(state, -1, 1);
            ffi::lua_rawsetfield(state, -2, c"__index".as_ptr());
            ffi::lua_pushstring(state, c"message".as_ptr());
            ffi::lua_rawsetfield(state, -2, c"__type".as_ptr());
            ffi::lua_pushboolean(state, 0);
            ffi::lua_rawsetfield(state, -2, c"__metatable".as_ptr());
            ffi::lua_setreadonly(state, -1, 1);
            ffi::lua_setuserdatametatable(state, MESSAGE_TAG);
        })
    }
}

/// Pushes `message` as a message userdata, which owns it from now on.
///
/// # Safety
/// `state` must have room for one more value; [`install`] must have run on its VM.
pub(crate) unsafe fn push_message(state: *mut ffi::lua_State, message: Message) {
    // SAFETY: `state` has room for the userdata, and its tag's metatable is installed (the
    // caller's promise).
    let data = unsafe { ffi::lua_newuserdatataggedwithmetatable(state, std::mem::size_of::<Message>(), MESSAGE_TAG) };
    // SAFETY: the block is fresh, big enough and aligned for a Message (checked above); the
    // destructor drops it when the collector frees the userdata.
    unsafe { (data as *mut Message).write(message) };
}

/// The destructor of message userdata (see [`install`]).
///
/// # Safety
/// Called by Luau only, once, as it frees a userdata of [`MESSAGE_TAG`]: `data` must hold a
/// Message written by [`push_message`] and not dropped yet.
unsafe extern "C" fn drop_message(_: *mut ffi::lua_State, data: *mut c_void) {
    // SAFETY: only userdata of MESSAGE_TAG get this destructor, and each holds a Message
    // written by `push_message`; the collector calls it once, when it frees the userdata.
    unsafe { std::ptr::drop_in_place(data as *mut Message) };
}

/// The message a method was called on (argument 1), if it is one.
///
/// # Safety
/// `state` must be the state of a running method call, with at least one argument; the
/// reference must not outlive the call (whose argument keeps the message alive).
unsafe fn this<'a>(state: *mut ffi::lua_State) -> Option<&'a Message> {
    // SAFETY: argument 1 is a valid index, on the stack for the whole call (the caller's
    // promise).
    unsafe { message_at(state, 1) }
}

/// Ends a method that pushed one value, or raises what stopped it at the caller's line.
///
/// # Safety
/// As [`complete`]: to be called last in a method (a `lua_CFunction`), with nothing owning heap
/// memory still alive; on success the one result must be on top of the stack.
unsafe fn pushed_one(state: *mut ffi::lua_State, outcome: std::thread::Result<Result<(), String>>) -> c_int {
    match outcome {
        Ok(Ok(())) => 1,
        // SAFETY: as the caller promises.
        Ok(Err(e)) => unsafe { complete(state, Ok(Err(e)), Some(1)) },
        // SAFETY: as the caller promises.
        Err(panic) => unsafe { complete(state, Err(panic), Some(1)) },
    }
}

/// Raises "message:<method> called on a non-message" at the caller's line.
///
/// # Safety
/// As [`complete`]: to be called last in a method (a `lua_CFunction`), with nothing owning heap
/// memory still alive.
unsafe fn not_a_message(state: *mut ffi::lua_State, method: &str) -> c_int {
    // SAFETY: as the caller promises; the message is moved into `complete`, which drops it
    // before it raises.
    unsafe { complete(state, Ok(Err(format!("message:{method} called on a non-message"))), Some(1)) }
}

/// `topic()`: the message's topic.
///
/// # Safety
/// Called by Luau only, as a method of the message metatable (see [`install`]).
unsafe extern "C-unwind" fn message_topic(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a method call, with its receiver as argument 1 for the whole call.
    match unsafe { this(state) } {
        Some(m) => {
            // SAFETY: a C function has room for its result.
            unsafe { push_str(state, &m.topic) };
            1
        }
        // SAFETY: the last call of this method; nothing it holds owns memory.
        None => unsafe { not_a_message(state, "topic") },
    }
}

/// `from()`: the sender's PID string ("" for a message the runtime sent).
///
/// # Safety
/// Called by Luau only, as a method of the message metatable (see [`install`]), whose first
/// upvalue is the shard's Core.
unsafe extern "C-unwind" fn message_from(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: the upvalue was set to the shard's Core by `install`, and the Core outlives the
    // VM.
    let core = unsafe { &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const Core) };
    // SAFETY: a method call, with its receiver as argument 1 for the whole call.
    let Some(m) = (unsafe { this(state) }) else {
        // SAFETY: the last call of this method; nothing it holds owns memory.
        return unsafe { not_a_message(state, "from") };
    };
    let text = m.from.map(|pid| core.kernel.render_pid(pid)).unwrap_or_default();
    // SAFETY: the last call of this method; the text is moved into `complete`, which drops it
    // before any raise.
    unsafe { complete(state, Ok(Ok(Reply::Str(text))), None) }
}

/// `payload()`: the message itself when it carries one payload (its `data()` reads it), a list
/// of payload objects when it carries several (each a message of one payload, so it can be
/// read or sent on like one), nil when none.
///
/// # Safety
/// Called by Luau only, as a method of the message metatable (see [`install`]).
unsafe extern "C-unwind" fn message_payload(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a method call, with its receiver as argument 1 for the whole call.
    let Some(m) = (unsafe { this(state) }) else {
        // SAFETY: the last call of this method; nothing it holds owns memory.
        return unsafe { not_a_message(state, "payload") };
    };
    match m.payloads.len() {
        // SAFETY: a C function has room for its result.
        0 => unsafe { ffi::lua_pushnil(state) },
        // SAFETY: as above; argument 1 is the message.
        1 => unsafe { ffi::lua_pushvalue(state, 1) },
        n => {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: `state` is the live state of this call.
                if unsafe { ffi::lua_checkstack(state, 4) } == 0 {
                    return Err("out of Lua stack".to_string());
                }
                // SAFETY: room for the list (made just above).
                unsafe { ffi::lua_createtable(state, n as c_int, 0) };
                for (i, v) in m.payloads.iter().enumerate() {
                    let part = Message {
                        from: m.from,
                        topic: m.topic.clone(),
                        payloads: std::iter::once(v.clone()).collect(),
                    };
                    // SAFETY: room for the part above the list (made above), and the message
                    // tag is installed on this VM (this method is one of its methods).
                    unsafe { push_message(state, part) };
                    // SAFETY: the part is on top, the list just below it.
                    unsafe { ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer) };
                }
                Ok::<(), String>(())
            }));
            // SAFETY: the last call of this method, with the list on top on success; the
            // outcome is moved into it.
            return unsafe { pushed_one(state, outcome) };
        }
    }
    1
}

/// `data()`: a fresh copy of the payload (of the payloads, as a list, when there are several).
///
/// # Safety
/// Called by Luau only, as a method of the message metatable (see [`install`]).
unsafe extern "C-unwind" fn message_data(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a method call, with its receiver as argument 1 for the whole call.
    let Some(m) = (unsafe { this(state) }) else {
        // SAFETY: the last call of this method; nothing it holds owns memory.
        return unsafe { not_a_message(state, "data") };
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: a C function's live state, with `LUA_MINSTACK` free slots for the list and
        // an element; `push_value` makes the room for deeper levels.
        unsafe { push_payloads(state, &m.payloads) }.map(drop)
    }));
    // SAFETY: the last call of this method, with the copy on top on success; the outcome is
    // moved into it.
    unsafe { pushed_one(state, outcome) }
}
