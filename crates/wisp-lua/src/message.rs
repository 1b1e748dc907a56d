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
    let data = ffi::lua_newuserdatataggedwithmetatable(state, std::mem::size_of::<Message>(), MESSAGE_TAG);
    // SAFETY: the block is fresh, big enough and aligned for a Message (checked above); the
    // destructor drops it when the collector frees the userdata.
    (data as *mut Message).write(message);
}

unsafe extern "C" fn drop_message(_: *mut ffi::lua_State, data: *mut c_void) {
    // SAFETY: only userdata of MESSAGE_TAG get this destructor, and each holds a Message
    // written by `push_message`; the collector calls it once, when it frees the userdata.
    std::ptr::drop_in_place(data as *mut Message);
}

/// The message a method was called on (argument 1), if it is one.
unsafe fn this<'a>(state: *mut ffi::lua_State) -> Option<&'a Message> {
    message_at(state, 1)
}

/// Ends a method that pushed one value, or raises what stopped it at the caller's line.
unsafe fn pushed_one(state: *mut ffi::lua_State, outcome: std::thread::Result<Result<(), String>>) -> c_int {
    match outcome {
        Ok(Ok(())) => 1,
        Ok(Err(e)) => complete(state, Ok(Err(e)), Some(1)),
        Err(panic) => complete(state, Err(panic), Some(1)),
    }
}

/// Raises "message:<method> called on a non-message" at the caller's line.
unsafe fn not_a_message(state: *mut ffi::lua_State, method: &str) -> c_int {
    complete(state, Ok(Err(format!("message:{method} called on a non-message"))), Some(1))
}

unsafe extern "C-unwind" fn message_topic(state: *mut ffi::lua_State) -> c_int {
    match this(state) {
        Some(m) => {
            push_str(state, &m.topic);
            1
        }
        None => not_a_message(state, "topic"),
    }
}

/// `from()`: the sender's PID string ("" for a message the runtime sent).
unsafe extern "C-unwind" fn message_from(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: the upvalue was set to the shard's Core by `install`.
    let core = &*(ffi::lua_touserdata(state, ffi::lua_upvalueindex(1)) as *const Core);
    let Some(m) = this(state) else {
        return not_a_message(state, "from");
    };
    let text = m.from.map(|pid| core.kernel.render_pid(pid)).unwrap_or_default();
    complete(state, Ok(Ok(Reply::Str(text))), None)
}

/// `payload()`: the message itself when it carries one payload (its `data()` reads it), a list
/// of payload objects when it carries several (each a message of one payload, so it can be
/// read or sent on like one), nil when none.
unsafe extern "C-unwind" fn message_payload(state: *mut ffi::lua_State) -> c_int {
    let Some(m) = this(state) else {
        return not_a_message(state, "payload");
    };
    match m.payloads.len() {
        0 => ffi::lua_pushnil(state),
        1 => ffi::lua_pushvalue(state, 1),
        n => {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if ffi::lua_checkstack(state, 4) == 0 {
                    return Err("out of Lua stack".to_string());
                }
                ffi::lua_createtable(state, n as c_int, 0);
                for (i, v) in m.payloads.iter().enumerate() {
                    let part = Message {
                        from: m.from,
                        topic: m.topic.clone(),
                        payloads: std::iter::once(v.clone()).collect(),
                    };
                    push_message(state, part);
                    ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
                }
                Ok::<(), String>(())
            }));
            return pushed_one(state, outcome);
        }
    }
    1
}

/// `data()`: a fresh copy of the payload (of the payloads, as a list, when there are several).
unsafe extern "C-unwind" fn message_data(state: *mut ffi::lua_State) -> c_int {
    let Some(m) = this(state) else {
        return not_a_message(state, "data");
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| push_payloads(state, &m.payloads).map(drop)));
    pushed_one(state, outcome)
}
