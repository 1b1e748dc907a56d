//! Preemption of busy processes, like BEAM reductions.
//!
//! Luau calls the interrupt at function calls, returns and loop back-edges: several times per
//! message, so its common path is a thread-local count and nothing else. Every
//! [`CHECK_EVERY`] interrupts it looks at the running coroutine. A process coroutine carries, as
//! its thread data, a pointer to its shard's [`Preempt`] counter; other threads (the shard's
//! main thread, a user's own `coroutine.create`) carry none and are never yielded. When the same
//! coroutine has been running at the looks spanning `budget` interrupts, it yields with no
//! values, which the driver reads as "preempted: requeue".

use std::cell::Cell;
use std::ffi::c_void;
use std::os::raw::c_int;

use mlua::ffi;

pub(crate) struct Preempt {
    last: Cell<*const c_void>,
    count: Cell<u32>,
    budget: u32,
}

// SAFETY: a Preempt is only touched by the interrupt, which runs on whichever worker thread is
// running its shard; the scheduler runs a shard on one worker at a time.
unsafe impl Send for Preempt {}

impl Preempt {
    pub(crate) fn new(budget: u32) -> Box<Preempt> {
        Box::new(Preempt { last: Cell::new(std::ptr::null()), count: Cell::new(0), budget })
    }
}

/// The raw address stored as thread data; `usize` so callbacks holding it stay `Send`.
#[derive(Clone, Copy)]
pub(crate) struct PreemptPtr(pub(crate) usize);

/// Installs the interrupt on a VM.
pub(crate) fn install(lua: &mlua::Lua) -> mlua::Result<()> {
    // SAFETY: sets a plain C callback on the VM's global state; it never calls back into mlua.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            (*ffi::lua_callbacks(state)).interrupt = Some(interrupt);
        })
    }
}

/// Marks the coroutine on top of `state`'s stack as a process coroutine of this shard.
///
/// # Safety
/// The top of the stack must be a thread, and `ptr` must outlive every thread of the VM.
pub(crate) unsafe fn mark_top(state: *mut ffi::lua_State, ptr: PreemptPtr) {
    let thread = ffi::lua_tothread(state, -1);
    if !thread.is_null() {
        ffi::lua_setthreaddata(thread, ptr.0 as *mut c_void);
    }
}

/// Interrupts between two looks at the running coroutine.
const CHECK_EVERY: u32 = 256;

thread_local! {
    /// Interrupts on this worker since the last look (shards move between workers; a count that
    /// carries over from another shard only brings the next look forward).
    static SINCE_LOOK: Cell<u32> = const { Cell::new(0) };
}

unsafe extern "C-unwind" fn interrupt(state: *mut ffi::lua_State, gc: c_int) {
    if gc >= 0 {
        return;
    }
    let since = SINCE_LOOK.get() + 1;
    if since < CHECK_EVERY {
        SINCE_LOOK.set(since);
        return;
    }
    SINCE_LOOK.set(0);
    // SAFETY: thread data is either null or a pointer set by `mark_top` to the shard's Preempt,
    // which lives as long as the VM (the shard drops its VM first).
    let data = ffi::lua_getthreaddata(state) as *const Preempt;
    if data.is_null() {
        return;
    }
    let preempt = &*data;
    let me = state as *const c_void;
    if preempt.last.get() != me {
        preempt.last.set(me);
        preempt.count.set(0);
        return;
    }
    let count = preempt.count.get() + CHECK_EVERY;
    if count < preempt.budget {
        preempt.count.set(count);
        return;
    }
    if in_runtime_code(state) {
        // Channel operations in the prelude must not be split by a preemption: try again at
        // the next look.
        preempt.count.set(preempt.budget.saturating_sub(1));
        return;
    }
    preempt.count.set(0);
    if ffi::lua_isyieldable(state) != 0 {
        ffi::lua_yield(state, 0);
    }
}

/// The chunk name of the runtime's own Lua code (see `shard.rs`).
pub(crate) const RUNTIME_CHUNK: &str = "=wisp";

/// True when the running function belongs to the runtime's prelude.
unsafe fn in_runtime_code(state: *mut ffi::lua_State) -> bool {
    let mut ar: ffi::lua_Debug = std::mem::zeroed();
    // SAFETY: level 0 is the running function; "s" fills `source` with a NUL-terminated string
    // owned by the function's prototype, which outlives this call.
    if ffi::lua_getinfo(state, 0, c"s".as_ptr(), &mut ar) == 0 || ar.source.is_null() {
        return false;
    }
    std::ffi::CStr::from_ptr(ar.source).to_bytes() == RUNTIME_CHUNK.as_bytes()
}
