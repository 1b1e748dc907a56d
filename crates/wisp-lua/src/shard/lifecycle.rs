//! A process's life in its shard: admission, start (its coroutine, its record, its first
//! run), the chunks it runs, and its end.

use std::os::raw::c_int;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use wisp_core::{ExitResult, Value};
use wisp_process::{ProcessExit, Supervision};

use super::core::*;
use super::ready::lock;
use crate::convert::*;
use crate::protocol::*;
use crate::stack::*;
use crate::LuaCode;

/// Moves newly admitted processes into the shard's table.
pub(crate) fn admit_pending(core: &Core) {
    // An admission is pushed before the flag is set, and the flag before its token is queued:
    // a token popped for a process not in `procs` yet always finds its admission here.
    // A plain load first: this runs before every step, and the swap is a locked instruction.
    if !core.admitted.load(Ordering::SeqCst) || !core.admitted.swap(false, Ordering::SeqCst) {
        return;
    }
    // Swapped with a spare vector, whose room is kept: a fresh one per admission was an
    // allocation per spawn.
    let mut admitted = std::mem::take(&mut *lock(&core.admits_spare));
    std::mem::swap(&mut admitted, &mut *lock(&core.admits));
    if !admitted.is_empty() {
        let mut procs = core.procs.borrow_mut();
        for a in admitted.drain(..) {
            procs.insert(
                a.mailbox.token(),
                Box::new(LocalProc {
                    pid: a.pid,
                    mailbox: a.mailbox,
                    code: a.code,
                    init: Some(a.args.into_boxed_slice()),
                    extra: (!a.links.is_empty() || !a.monitors.is_empty()).then(|| {
                        let supervision =
                            Supervision { links: a.links, monitors: a.monitors, ..Supervision::default() };
                        Box::new(Extras { supervision, ..Extras::default() })
                    }),
                    context: a.context,
                    actor: a.actor,
                    scope: a.scope,
                    main: 0,
                    record: 0,
                    parked: false,
                    multi: false,
                    stash: None,
                    last_dest: None,
                    last_topic: None,
                }),
            );
        }
    }
    *lock(&core.admits_spare) = admitted;
}

/// Starts a newly admitted process: makes its coroutine and the driver's record of it, and runs
/// it up to its first wait. Like [`resume_parked`], returns `None` when the step is over (it
/// parked on its inbox, returned a value, or its code did not load) and otherwise the values
/// pushed for the driver (`token, false, ok, results...`).
///
/// # Safety
/// `state` must be the live state of a running `R.next` (`raw_next`), on the thread running
/// `core`'s shard: the driver's tables in their [`next_slot`]s, and the room `R.next` makes for
/// a step (`next_onto_stack`).
pub(crate) unsafe fn start_process(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    token: u32,
) -> Result<Option<c_int>, String> {
    use mlua::ffi;
    // SAFETY: `state` is live (the caller's promise).
    let base = unsafe { ffi::lua_gettop(state) };
    // The code is read in place: its reference count is shared by every process of the entry
    // on every worker, and a clone here was two more atomic operations on one contended line.
    let loaded = {
        let mut procs = core.procs.borrow_mut();
        let Some(p) = procs.get_mut(&token) else {
            return Ok(None);
        };
        let Some(args) = p.init.take() else {
            return Ok(None);
        };
        // SAFETY: `state` is `R.next`'s, with the chunk table in its slot and room for the chunk
        // (the caller's promise).
        unsafe { push_chunk(state, core, &p.code) }.map(|chunk| (chunk, args))
    };
    let (pushed, args) = match loaded {
        Ok(loaded) => loaded,
        Err(load_error) => {
            if let Some(p) = core.procs.borrow_mut().remove(&token) {
                finish(core, *p, ExitResult::Error(load_error));
            }
            return Ok(None);
        }
    };
    let chunk = base + 1;
    // A new thread for every process: a coroutine serves one process for its whole life, so no
    // handle to it a program kept can reach a later process.
    // SAFETY: room for the thread on `state` (the caller's promise).
    let co = unsafe { ffi::lua_newthread(state) };
    // SAFETY: `co` is a live thread of the same VM, kept alive by its place on `state`'s stack.
    if unsafe { ffi::lua_checkstack(co, 4) } == 0 {
        return Err("out of Lua stack".into());
    }
    if pushed.own_globals {
        // A global table of its own, reading through to the shard's globals.
        // SAFETY: room on `state` for the table and its metatable (the caller's promise); the
        // environment metatable is in its slot, and the new table just below its copy.
        unsafe {
            ffi::lua_createtable(state, 0, 0);
            ffi::lua_pushvalue(state, next_slot(NEXT_ENV_MT));
            ffi::lua_setmetatable(state, -2);
            ffi::lua_setsafeenv(state, -1, 1);
        }
    } else {
        // Code that never assigns a global reads the shard's read-only globals directly (the
        // environment it was loaded with): no table, no clone of the chunk, and its functions
        // without upvalues are shared (`DUPCLOSURE` reuses a closure whose environment
        // matches).
        // SAFETY: the read-only globals are in their slot; room for the copy.
        unsafe { ffi::lua_pushvalue(state, next_slot(NEXT_GLOBALS)) };
    }
    // SAFETY: the globals are on top of `state`; `co` is a thread of the same VM with room for
    // them (made above), and they become its global table.
    unsafe {
        ffi::lua_xmove(state, co, 1);
        ffi::lua_replace(co, ffi::LUA_GLOBALSINDEX);
    }
    // Marks it a process coroutine of this shard (see `preempt.rs`).
    // SAFETY: `co` is live; the Preempt outlives the VM (the Core holds it, and outlives the VM).
    unsafe { ffi::lua_setthreaddata(co, Arc::as_ptr(&core.preempt) as *mut std::ffi::c_void) };
    // The driver's record (see `make_ready` in the prelude for the fields that come later), a
    // copy of a template whose array part holds the fixed fields.
    // SAFETY: the record template is in its slot; room for the copy.
    unsafe { ffi::lua_clonetable(state, next_slot(NEXT_RECORD_TEMPLATE)) };
    let record = base + 3;
    // SAFETY: the record is at `record` (above the chunk and the thread), with room above it for
    // one value at a time.
    unsafe {
        ffi::lua_pushvalue(state, base + 2);
        ffi::lua_rawseti(state, record, RECORD_MAIN);
    }
    let record_slot = core.record_slots.borrow_mut().insert(token) as u32 + 1;
    // SAFETY: as above; the driver's process records are in their slot.
    unsafe {
        ffi::lua_pushvalue(state, record);
        ffi::lua_rawseti(state, next_slot(NEXT_PROCS), record_slot as ffi::lua_Integer);
    }
    // body(record, chunk cloned into the new globals, method) runs the chunk in the coroutine
    // and returns the entry's function, which is then called on the emptied coroutine: the
    // body's frame stays off the stack, which then fits a process's first C calls without
    // growing (a grown stack is a reallocation now and another when the thread is reset).
    // SAFETY: the body (in its slot), the record and the chunk go to `co` one at a time, through
    // one slot of `state`; `co` has room for the three (made above).
    unsafe {
        ffi::lua_pushvalue(state, next_slot(NEXT_BODY));
        ffi::lua_xmove(state, co, 1);
        ffi::lua_pushvalue(state, record);
        ffi::lua_xmove(state, co, 1);
        ffi::lua_pushvalue(state, chunk);
        ffi::lua_xmove(state, co, 1);
    }
    if pushed.own_globals {
        // Cloned on the coroutine: the clone's environment is the coroutine's global table.
        // SAFETY: the chunk is on top of `co`, which has room for its clone (the fourth slot
        // made above); the clone replaces it.
        unsafe {
            ffi::lua_clonefunction(co, -1);
            ffi::lua_remove(co, -2);
        }
    }
    // SAFETY: the chunk table is in its slot, with the entry's method at `slot + 1` (see
    // `push_chunk`); it goes to `co`, which has room for it (the fourth slot made above).
    unsafe {
        ffi::lua_rawgeti(state, next_slot(NEXT_CHUNKS), pushed.slot + 1);
        ffi::lua_xmove(state, co, 1);
    }
    if let Some(p) = core.procs.borrow_mut().get_mut(&token) {
        p.main = co as usize;
        p.record = record_slot;
    }
    // SAFETY: `co` is a fresh thread of `state`'s VM holding the body and its three arguments;
    // `state` is running (`R.next`), so it may resume it.
    let mut status = unsafe { ffi::lua_resume_(co, state, 3) };
    if status == ffi::LUA_OK {
        // The chunk ran to its end: the entry's function is on the coroutine's stack.
        // SAFETY: `co` is live, and stopped (it returned).
        if unsafe { ffi::lua_checkstack(co, args.len() as c_int + 1) } == 0 {
            return Err("out of Lua stack".into());
        }
        for v in &args {
            // SAFETY: room on `co` for the argument (made just above).
            unsafe { push_value(co, v) }?;
        }
        // SAFETY: the entry's function and its arguments are on `co`'s stack, as above.
        status = unsafe { ffi::lua_resume_(co, state, args.len() as c_int) };
    } else if status == ffi::LUA_YIELD {
        // The chunk itself yielded (preempted, or waiting at its top level): the body calls
        // the function when it ends, with the arguments it finds in the record.
        // SAFETY: room on `state` for the table (the caller's promise).
        unsafe { ffi::lua_createtable(state, args.len() as c_int, 1) };
        for (i, v) in args.iter().enumerate() {
            // SAFETY: room for the argument above the table (the caller's promise).
            unsafe { push_value(state, v) }?;
            // SAFETY: the argument is on top, the table just below it.
            unsafe { ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer) };
        }
        // SAFETY: the table is on top, with room above it for the count, and the record is at
        // `record`.
        unsafe {
            ffi::lua_pushnumber(state, args.len() as f64);
            ffi::lua_rawsetfield(state, -2, c"n".as_ptr());
            ffi::lua_rawsetfield(state, record, c"args".as_ptr());
        }
    }
    drop(args);
    // SAFETY: as the caller promises; `co` ran with `status`, and the record is at `record`.
    let settled = unsafe { settle_first_run(state, core, token, co, status, record) };
    // SAFETY: drops what this call pushed on `state`.
    unsafe { ffi::lua_settop(state, base) };
    if settled {
        return Ok(None);
    }
    // SAFETY: as the caller promises; `co` ran with `status` and is referenced by its record.
    Ok(Some(unsafe { hand_to_driver(state, record_slot, co, status) }?))
}

/// Settles the first run of a process in Rust when it can: parked on its inbox (the driver's
/// record learns it), or returned a value with no other coroutine to close. False when the
/// driver must take over.
///
/// # Safety
/// As [`settle_return`], and `record` must be the absolute index of the process's record on
/// `state`'s stack, with room above it for one value.
pub(crate) unsafe fn settle_first_run(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    token: u32,
    co: *mut mlua::ffi::lua_State,
    status: c_int,
    record: c_int,
) -> bool {
    use mlua::ffi;
    let parked = core.procs.borrow_mut().get(&token).is_some_and(|p| p.parked);
    if status == ffi::LUA_YIELD && parked {
        // SAFETY: the record is at `record` of the live `state`, with room above it (the
        // caller's promise).
        unsafe {
            ffi::lua_pushboolean(state, 1);
            ffi::lua_rawseti(state, record, RECORD_RECV);
        }
        wait_or_requeue(core, token);
        return true;
    }
    // SAFETY: as the caller promises.
    unsafe { settle_return(state, core, token, co, status) }
}

/// Ends a process whose main coroutine returned a value, when it has no other coroutine to
/// close: its record and `LocalProc` go, and the kernel hears of the exit, without the driver.
/// Returns false (nothing done) for anything else, including `return nil, err` (an error exit
/// the driver words).
///
/// # Safety
/// `state` must be as for [`drop_record`], and `co` the main coroutine of the process `token`,
/// a live thread of the same VM just resumed from `state` with `status` as the outcome.
pub(crate) unsafe fn settle_return(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    token: u32,
    co: *mut mlua::ffi::lua_State,
    status: c_int,
) -> bool {
    use mlua::ffi;
    let multi = core.procs.borrow_mut().get(&token).is_none_or(|p| p.multi);
    // SAFETY: `co` is a live thread, stopped (the caller's promise); `idx` is below its top
    // (checked before each call below).
    let nil_or_false =
        |idx: c_int| unsafe { ffi::lua_type(co, idx) <= ffi::LUA_TBOOLEAN && ffi::lua_toboolean(co, idx) == 0 };
    // SAFETY: as above; index 2 is read only when the stack holds two values.
    let error_pair =
        unsafe { ffi::lua_gettop(co) } >= 2 && nil_or_false(1) && unsafe { ffi::lua_type(co, 2) } != ffi::LUA_TNIL;
    if status != ffi::LUA_OK || multi || error_pair {
        return false;
    }
    // SAFETY: as above.
    let result = if unsafe { ffi::lua_gettop(co) } == 0 {
        ExitResult::Value(Value::Nil)
    } else {
        // SAFETY: the coroutine returned: its first result is at absolute index 1.
        unsafe { result_at(co, false, 1) }
    };
    let ended = core.procs.borrow_mut().remove(&token);
    if let Some(p) = ended {
        // SAFETY: as the caller promises.
        unsafe { drop_record(state, core, p.record) };
        finish(core, *p, result);
    }
    true
}

/// Removes an ended process's record from the driver's table and frees its slot.
///
/// # Safety
/// `state` must be the live state of a running `R.next` (`raw_next`), on the thread running
/// `core`'s shard, with the driver's tables in their [`next_slot`]s and room for one more value.
pub(crate) unsafe fn drop_record(state: *mut mlua::ffi::lua_State, core: &Core, record: u32) {
    use mlua::ffi;
    if record == 0 {
        return;
    }
    // SAFETY: the driver's process records are in their slot of the live `state`, which has room
    // for the nil (the caller's promise).
    unsafe {
        ffi::lua_pushnil(state);
        ffi::lua_rawseti(state, next_slot(NEXT_PROCS), record as ffi::lua_Integer);
    }
    core.record_slots.borrow_mut().try_remove(record as usize - 1);
}

/// Pushes `record, false, ok, results...` for the driver, moving the coroutine's results.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, and `co` a live thread of
/// the same VM just resumed from it with `status` as the outcome (its results on its stack, or
/// its error object on top).
pub(crate) unsafe fn hand_to_driver(
    state: *mut mlua::ffi::lua_State,
    record: u32,
    co: *mut mlua::ffi::lua_State,
    status: c_int,
) -> Result<c_int, String> {
    use mlua::ffi;
    let ok = status == ffi::LUA_OK || status == ffi::LUA_YIELD;
    // SAFETY: `co` is a live thread, stopped (the caller's promise).
    let results = if ok { unsafe { ffi::lua_gettop(co) } } else { 1 };
    // SAFETY: `state` is live (the caller's promise).
    if unsafe { ffi::lua_checkstack(state, results + 3) } == 0 {
        return Err("out of Lua stack".into());
    }
    // SAFETY: room for the three values and the results (made just above).
    unsafe {
        ffi::lua_pushnumber(state, record as f64);
        ffi::lua_pushboolean(state, 0);
        ffi::lua_pushboolean(state, ok as c_int);
    }
    // SAFETY: `co` is a thread of the same VM with `results` values on top (its results, or its
    // error object), and `state` has room for them (made above).
    unsafe { ffi::lua_xmove(co, state, results) };
    Ok(results + 3)
}

/// Pushes the entry's compiled chunk, loading it on first use (or when its source changed);
/// returns its slot in the chunk table.
///
/// # Safety
/// `state` must be the live state of a running `R.next` (`raw_next`), on the thread running
/// `core`'s shard, with the driver's tables in their [`next_slot`]s and room for two more
/// values.
pub(crate) unsafe fn push_chunk(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    code: &LuaCode,
) -> Result<PushedChunk, String> {
    // SAFETY: inside `R.next` the chunk table and the read-only globals are in their slots (the
    // caller's promise).
    unsafe { push_chunk_from(state, core, code, next_slot(NEXT_CHUNKS), next_slot(NEXT_GLOBALS)) }
}

/// Pushes the entry's (or library's) compiled chunk from the shard's one chunk table at stack
/// index `chunks`, loading it there on first use (or when its source changed) with the table at
/// `env` as its environment.
///
/// # Safety
/// `state` must be a live thread of the shard's VM with room for two more values; `chunks` and
/// `env` absolute indices of the chunk table and the read-only globals.
pub(crate) unsafe fn push_chunk_from(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    code: &LuaCode,
    chunks: c_int,
    env: c_int,
) -> Result<PushedChunk, String> {
    use mlua::ffi;
    let known = core
        .raw_loaded
        .borrow_mut()
        .get(code.entry.as_str())
        .map(|loaded| (Arc::ptr_eq(&loaded.source, &code.source), loaded.chunk));
    let slot = match known {
        Some((true, pushed)) => {
            // SAFETY: the chunk table is in its slot of the live `state`, which has room for the
            // chunk (the caller's promise).
            unsafe { ffi::lua_rawgeti(state, chunks, pushed.slot) };
            return Ok(pushed);
        }
        Some((false, pushed)) => pushed.slot,
        None => 1 + 2 * core.raw_loaded.borrow_mut().len() as ffi::lua_Integer,
    };
    let bytecode = core.chunks.bytecode(&code.source);
    let name = std::ffi::CString::new(format!("={}", code.chunk_name)).map_err(|_| "bad chunk name")?;
    // Loaded with the read-only globals as its environment: a process of code that assigns no
    // global runs the chunk itself, so a write the scan missed would fail there.
    // SAFETY: `state` is live with room for the chunk or the error (the caller's promise);
    // Luau copies the name and the bytecode, which outlive the call; `env` is a table's slot.
    if unsafe { ffi::luau_load(state, name.as_ptr(), bytecode.as_ptr() as *const _, bytecode.len(), env) } != 0 {
        // SAFETY: a failed load pushed its error message, a string.
        let text = String::from_utf8_lossy(unsafe { crate::stack::raw_bytes(state, -1) }).into_owned();
        // SAFETY: pops the message.
        unsafe { ffi::lua_pop(state, 1) };
        return Err(text);
    }
    // SAFETY: the chunk is on top, the chunk table in its slot, and there is room above the
    // chunk for one value at a time (the caller's promise).
    unsafe {
        ffi::lua_pushvalue(state, -1);
        ffi::lua_rawseti(state, chunks, slot);
        push_str(state, &code.method);
        ffi::lua_rawseti(state, chunks, slot + 1);
    }
    let chunk = PushedChunk { slot, own_globals: core.chunks.needs_own_globals(code) };
    core.raw_loaded.borrow_mut().insert(code.entry.clone(), LoadedChunk { source: code.source.clone(), chunk });
    Ok(chunk)
}

/// Ends a process on the Rust side: stops its timers, closes its mailbox, hands it to the kernel.
pub(crate) fn finish(core: &Core, p: LocalProc, result: ExitResult) {
    for timer in p.extra().timers.values() {
        core.timers.cancel(*timer);
    }
    let mut leftover = p.mailbox.close();
    // Closed: no wake-up carries the token from now on (one already queued finds the slot
    // empty, or its next occupant, which then looks at its mailbox for nothing).
    lock(&core.tokens).give_back(p.mailbox.token());
    if let Some(first) = p.stash {
        leftover.insert(0, *first);
    }
    let supervision = p.extra.map(|e| e.supervision).unwrap_or_default();
    core.kernel.exited(ProcessExit { pid: p.pid, result, supervision, leftover });
}
