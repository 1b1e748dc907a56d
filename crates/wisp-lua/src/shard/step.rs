//! One step of a process (`R.next`): how the previous step ended, the next ready process, its
//! mailbox items, the parked receive (`R.recv`) and the slice's policy.

use std::os::raw::c_int;
use std::sync::atomic::Ordering;
use std::time::Instant;

use wisp_core::{Envelope, Event, ExitResult, Message};
use wisp_mailbox::{ListenerId, Route};
use wisp_process::Effect;

use super::core::*;
use super::lifecycle::*;
use crate::convert::*;
use crate::protocol::*;
use crate::stack::*;

/// Pushes an event as the table a Lua program sees on `events()`.
///
/// # Safety
/// `state` must be a live Lua state, used on the thread running it, with room for four more
/// values (the table, a nested table, a value and its key); no Lua code runs.
pub(crate) unsafe fn push_event(state: *mut mlua::ffi::lua_State, core: &Core, event: &Event) -> Result<(), String> {
    use mlua::ffi;
    // SAFETY: `state` is live with room for the table (the caller's promise).
    unsafe { ffi::lua_createtable(state, 0, 4) };
    // SAFETY: room above the table for a value and its key (the caller's promise); each pair is
    // set, and popped, before the next.
    unsafe {
        push_str(state, event.kind().as_str());
        set_field(state, "kind");
        ffi::lua_pushnumber(state, now_seconds());
        set_field(state, "at");
    }
    match event {
        Event::Exit { from, result } | Event::LinkDown { from, result } => {
            // SAFETY: as above; the result table then sits on the event's table.
            unsafe {
                push_str(state, &core.kernel.render_pid(*from));
                set_field(state, "from");
                ffi::lua_createtable(state, 0, 1);
            }
            match result {
                ExitResult::Value(v) => {
                    // SAFETY: room above the result table for the value and its key (the
                    // caller's promise); `push_value` makes the room for deeper levels.
                    unsafe { push_value(state, v) }?;
                    // SAFETY: the value is on top, the result table below it.
                    unsafe { set_field(state, "value") };
                }
                ExitResult::Error(e) => {
                    // SAFETY: as above.
                    unsafe {
                        push_str(state, e);
                        set_field(state, "error");
                    }
                }
            }
            // SAFETY: the result table is on top, the event's table below it.
            unsafe { set_field(state, "result") };
        }
        Event::Cancel { from, reason } => {
            // SAFETY: room above the event's table for a value and its key (the caller's promise).
            unsafe {
                push_str(state, &from.map(|p| core.kernel.render_pid(p)).unwrap_or_default());
                set_field(state, "from");
            }
            // SAFETY: as above; `push_value` makes the room for deeper levels.
            unsafe { push_value(state, reason) }?;
            // SAFETY: the reason is on top, the event's table below it.
            unsafe { set_field(state, "reason") };
        }
    }
    Ok(())
}

/// How one envelope ends up: four values pushed for the driver, nothing (applied here), or a
/// kill (four values pushed, and the step stops there).
pub(crate) enum Pushed {
    Item,
    Nothing,
    Kill,
}

/// Turns one envelope into the four values of a driver item on the stack, or applies it here.
///
/// # Safety
/// `state` must be a live thread of a shard's VM (where the message tag is installed), used on
/// the thread running it, with room for seven more values (an item, and the three more an
/// event's table takes); no Lua code runs.
pub(crate) unsafe fn push_item(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    p: &mut LocalProc,
    envelope: Envelope,
) -> Result<Pushed, String> {
    use mlua::ffi;
    // SAFETY: `state` is live with room for the item's values (the caller's promise).
    let kind = |k: u8| unsafe { ffi::lua_pushnumber(state, k as f64) };
    let kill = |text: &str| {
        kind(K_KILL);
        // SAFETY: as above.
        unsafe {
            push_str(state, text);
            ffi::lua_pushnil(state);
            ffi::lua_pushnil(state);
        }
        Pushed::Kill
    };
    Ok(match envelope {
        Envelope::Message(m) => match p.extra().router.route(&m.topic) {
            Route::Inbox => {
                kind(K_MESSAGE);
                // SAFETY: room for the item's values (the caller's promise), on a shard's VM,
                // where the message tag is installed.
                unsafe {
                    crate::message::push_message(state, m);
                    ffi::lua_pushnil(state);
                    ffi::lua_pushnil(state);
                }
                Pushed::Item
            }
            Route::Listener(ListenerId(id)) => {
                let whole_message = p.extra().message_listeners.contains(&id);
                kind(if whole_message { K_LISTENER_MESSAGE } else { K_LISTENER });
                // SAFETY: as above.
                unsafe { ffi::lua_pushnumber(state, id as f64) };
                if whole_message {
                    // SAFETY: as above.
                    unsafe {
                        crate::message::push_message(state, m);
                        ffi::lua_pushnil(state);
                    }
                } else {
                    // SAFETY: as above.
                    unsafe { ffi::lua_pushnil(state) };
                    // SAFETY: as above: the payloads are the fourth value, with room for an
                    // array and one element; `push_value` makes the room for deeper levels.
                    unsafe { push_payloads(state, &m.payloads) }?;
                }
                Pushed::Item
            }
        },
        envelope @ (Envelope::Event(_) | Envelope::Signal { .. }) => {
            let effect = p.extra_mut().supervision.on_envelope(envelope, |pid| core.kernel.render_pid(pid));
            match effect {
                Some(Effect::Event(event)) => {
                    kind(K_EVENT);
                    // SAFETY: as above.
                    unsafe {
                        ffi::lua_pushnil(state);
                        ffi::lua_pushnil(state);
                    }
                    // SAFETY: as above: the event's table is the fourth value, with room for
                    // the four values it takes.
                    unsafe { push_event(state, core, &event) }?;
                    Pushed::Item
                }
                Some(Effect::Exit(reason)) => kill(&reason),
                Some(Effect::Nothing) | None => Pushed::Nothing,
            }
        }
        Envelope::Timer(id) => {
            if p.extra().timers.is_empty() || p.extra_mut().timers.remove(&id).is_none() {
                return Ok(Pushed::Nothing); // cancelled after it fired
            }
            kind(K_TIMER);
            // SAFETY: as above.
            unsafe {
                ffi::lua_pushnumber(state, id as f64);
                ffi::lua_pushnil(state);
                ffi::lua_pushnumber(state, now_seconds());
            }
            Pushed::Item
        }
    })
}

/// `R.next(prev, status, is_error, value)` as a raw C function (see the module docs for the
/// protocol). Returns nothing when the slice is over; otherwise a process's record slot, then
/// `nil` and four values per item, or `false, ok` and the results of a resume made here.
///
/// # Safety
/// Called by Luau only, as `R.next`: a raw callback of a shard made by `raw_callback` (its
/// first upvalue is the shard's Core), called on the driver thread inside that shard's run with
/// its four arguments and the driver's tables (see [`next_slot`]).
pub(crate) unsafe extern "C-unwind" fn raw_next(state: *mut mlua::ffi::lua_State) -> c_int {
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = unsafe { core_of(state) };
    // SAFETY: the live state of this call, with the driver's arguments and tables, on the shard's thread.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { next_onto_stack(state, core) }));
    match outcome {
        Ok(Ok(results)) => results,
        // SAFETY: the last call of this callback; what it raises is moved into it, and nothing
        // else it holds owns memory.
        Ok(Err(raise)) => unsafe { complete(state, Ok(Err(raise)), None) },
        // SAFETY: as above.
        Err(panic) => unsafe { complete(state, Err(panic), None) },
    }
}

/// The body of `R.next` ([`raw_next`]): settles the previous step, then hands the driver the
/// next process to run, or runs it here. Returns the number of values pushed for the driver.
///
/// # Safety
/// `state` must be the live state of a running `R.next`, on the thread running `core`'s shard:
/// its four arguments, then the driver's tables in their [`next_slot`]s. Makes its own room.
pub(crate) unsafe fn next_onto_stack(state: *mut mlua::ffi::lua_State, core: &Core) -> Result<c_int, String> {
    use mlua::ffi;
    // The driver names the process of the previous step by its record's slot.
    // SAFETY: arguments 1 and 2 are on the live stack (the caller's promise).
    let prev_record = unsafe { ffi::lua_tonumber(state, 1) } as i64;
    // SAFETY: as above.
    let status = unsafe { ffi::lua_tonumber(state, 2) } as u8;
    let prev =
        u32::try_from(prev_record - 1).ok().and_then(|key| core.record_slots.borrow_mut().get(key as usize).copied());
    // SAFETY: `state` is live.
    if unsafe { ffi::lua_checkstack(state, (2 + 4 * MAX_ITEMS_PER_STEP + 8) as c_int) } == 0 {
        return Err("out of Lua stack".into());
    }
    // The driver's tables stay where it passed them (see `next_slot`).
    // SAFETY: the arguments and the tables fill the stack up to this top (the caller's promise).
    unsafe { ffi::lua_settop(state, NEXT_ARGS + NEXT_TABLES) };
    // A step that ended preempted was a long one: the clock is read before the next.
    let mut long_step = prev.is_some() && status == S_READY;
    if let Some(prev) = prev {
        // A step the interrupt ended (see `preempt.rs`) ends its process, whatever it returned.
        // SAFETY: `state` is a thread of this shard's live VM, on the shard's thread.
        let killed = unsafe { core.preempt.take_kill(state) };
        match status {
            _ if killed.is_some() => {
                let text = killed.map(|kill| core.preempt.kill_text(kill).to_string()).unwrap_or_default();
                let ended = core.procs.borrow_mut().remove(&prev);
                if let Some(p) = ended {
                    // SAFETY: `state` is `R.next`'s, with its tables in their slots and the
                    // room made above.
                    unsafe { drop_record(state, core, p.record) };
                    finish(core, *p, ExitResult::Error(text));
                }
            }
            S_DONE => {
                // SAFETY: argument 3 is on the stack.
                let is_error = unsafe { ffi::lua_toboolean(state, 3) } != 0;
                // SAFETY: argument 4, the step's result, is at absolute index 4.
                let result = unsafe { result_at(state, is_error, 4) };
                let ended = core.procs.borrow_mut().remove(&prev);
                if let Some(p) = ended {
                    // SAFETY: as above.
                    unsafe { drop_record(state, core, p.record) };
                    finish(core, *p, result);
                }
            }
            S_WAITING => wait_or_requeue(core, prev),
            S_READY => core.ready.lock().push_back(prev),
            _ => {}
        }
    }
    loop {
        admit_pending(core);
        if slice_over(core, std::mem::take(&mut long_step)) {
            return Ok(0);
        }
        let Some(token) = core.ready.lock().pop() else {
            return Ok(0);
        };
        let mut procs = core.procs.borrow_mut();
        if !procs.contains_key(&token) {
            // Admitted after this step took the admissions: an admission is queued before its
            // token, so it is there now.
            drop(procs);
            admit_pending(core);
            procs = core.procs.borrow_mut();
        }
        let Some(p) = procs.get_mut(&token) else {
            continue; // a wake-up for a process that already ended
        };
        core.current.store(token, Ordering::Relaxed);
        core.spawned_in_step.store(0, Ordering::Relaxed);
        core.preempt.step(&p.mailbox);
        if p.init.is_some() {
            drop(procs);
            // SAFETY: `state` is `R.next`'s, holding its arguments and tables and nothing else
            // yet, with the room made above.
            match unsafe { start_process(state, core, token) }? {
                Some(results) => return Ok(results),
                None => continue,
            }
        }
        if p.parked {
            match p.next_envelope() {
                None => {
                    drop(procs);
                    wait_or_requeue(core, token);
                    continue;
                }
                Some(Envelope::Message(m)) if matches!(p.extra().router.route(&m.topic), Route::Inbox) => {
                    p.parked = false;
                    let co = p.main as *mut ffi::lua_State;
                    let record = p.record;
                    drop(procs);
                    // SAFETY: `co` is the process's main coroutine, parked in `R.recv` (kept
                    // alive by its record); `state` is `R.next`'s, with the room made above.
                    match unsafe { resume_parked(state, core, token, record, co, m) }? {
                        Some(results) => return Ok(results),
                        None => continue,
                    }
                }
                // Events, signals and listener messages go through the driver; the inbox
                // message after them resumes the parked coroutine on a later step.
                Some(other) => p.set_stash(other),
            }
        }
        // SAFETY: room for the record slot and the nil (made above).
        unsafe {
            ffi::lua_pushnumber(state, p.record as f64);
            ffi::lua_pushnil(state);
        }
        // SAFETY: as above.
        let base = unsafe { ffi::lua_gettop(state) };
        for _ in 0..MAX_ITEMS_PER_STEP {
            let Some(envelope) = p.next_envelope() else { break };
            if p.parked {
                if let Envelope::Message(m) = &envelope {
                    if matches!(p.extra().router.route(&m.topic), Route::Inbox) {
                        // The parked coroutine takes it itself, in order.
                        p.set_stash(envelope);
                        break;
                    }
                }
            }
            // SAFETY: `state` is `R.next`'s, on a shard's VM, with room for the step's items
            // (made above: four values each, and eight more for the last one's event table).
            if let Pushed::Kill = unsafe { push_item(state, core, p, envelope) }? {
                break;
            }
        }
        if p.has_pending() {
            // More than one step's worth: come back after the others.
            core.ready.lock().push_back(token);
        }
        // SAFETY: as above.
        return Ok(unsafe { ffi::lua_gettop(state) } - base + 2);
    }
}

/// Resumes a main coroutine parked in `R.recv` with its next inbox message, without the driver.
/// Returns `None` when the step is over (it parked again, or returned a value: see
/// [`settle_return`]), or the number of values pushed for the driver (`token, false, ok,
/// results...`) when it did anything else: blocked on a channel, was preempted or failed.
///
/// # Safety
/// `state` must be the live state of a running `R.next` (`raw_next`), on the thread running
/// `core`'s shard, with the driver's tables in their [`next_slot`]s and room for two more
/// values. `co` must be the main coroutine of the process `token`, parked in `R.recv` (it
/// yielded there and was not resumed since), and `record` its slot in the driver's records.
pub(crate) unsafe fn resume_parked(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    token: u32,
    record: u32,
    co: *mut mlua::ffi::lua_State,
    message: Message,
) -> Result<Option<c_int>, String> {
    use mlua::ffi;
    // SAFETY: room for the message (the caller's promise), on a shard's VM, where the message
    // tag is installed.
    unsafe { crate::message::push_message(state, message) };
    // SAFETY: room for the record; the driver's records are in their slot (the caller's promise).
    unsafe { ffi::lua_rawgeti(state, next_slot(NEXT_PROCS), record as ffi::lua_Integer) };
    // What R.recv yielded (its PARKED marker) is still on the coroutine's stack. It returns the
    // message and the process's record (see `raw_recv`).
    // SAFETY: `co` is a suspended thread of the same VM (the caller's promise), whose stack
    // held `R.recv`'s frame: emptied, it has room for the two values moved from `state`.
    unsafe {
        ffi::lua_settop(co, 0);
        ffi::lua_xmove(state, co, 2);
    }
    // SAFETY: `co` yielded in `R.recv` and holds what that yield returns; `state` is running,
    // so it may resume it.
    let status = unsafe { ffi::lua_resume_(co, state, 2) };
    let parked_again = status == ffi::LUA_YIELD && core.procs.borrow_mut().get(&token).is_some_and(|p| p.parked);
    if parked_again {
        wait_or_requeue(core, token);
        return Ok(None);
    }
    // SAFETY: as the caller promises; `co` was just resumed from `state`, with `status`.
    if unsafe { settle_return(state, core, token, co, status) } {
        return Ok(None);
    }
    // SAFETY: as above.
    Ok(Some(unsafe { hand_to_driver(state, record, co, status) }?))
}

/// `R.recv()`: the running process's next inbox message, straight from its mailbox. Returns the
/// message (the driver's `CURRENT` is this process: nothing else ran since it was set); nothing
/// when the driver must take over (an event,
/// signal or listener message comes first, or a coroutine other than a lone main coroutine
/// waits); or parks the main coroutine: it yields the PARKED marker and is resumed by `R.next`
/// with the next inbox message and the process's record (the driver's `CURRENT` from then on,
/// given by Rust so no table a program makes can pass for it). Upvalue: the PARKED marker.
///
/// # Safety
/// Called by Luau only, as `R.recv`: a raw callback of a shard made by `raw_callback` (its
/// first upvalue is the shard's Core, its second the PARKED marker), inside that shard's run.
pub(crate) unsafe extern "C-unwind" fn raw_recv(state: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = unsafe { core_of(state) };
    // SAFETY: the live state of this call, on the shard's thread.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { recv_onto_stack(state, core) }));
    match outcome {
        Ok(Ok(Received::Message)) => 1,
        Ok(Ok(Received::Nothing)) => 0,
        Ok(Ok(Received::Parked)) => {
            // SAFETY: upvalue 2 is the PARKED marker, and a C function has room for it; the
            // yield is this function's result, as Luau requires of a C function's yield.
            unsafe {
                ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
                ffi::lua_yield(state, 1)
            }
        }
        // SAFETY: the last call of this callback; what it raises is moved into it, and nothing
        // else it holds owns memory.
        Ok(Err(raise)) => unsafe { complete(state, Ok(Err(raise)), Some(2)) },
        // SAFETY: as above.
        Err(panic) => unsafe { complete(state, Err(panic), Some(2)) },
    }
}

pub(crate) enum Received {
    /// The message is pushed.
    Message,
    Nothing,
    Parked,
}

/// The body of `R.recv` ([`raw_recv`]): pushes the running process's next inbox message, or
/// says why it did not.
///
/// # Safety
/// `state` must be the live state of a running raw callback's call, a thread of `core`'s
/// shard's VM (where the message tag is installed), on the thread running that shard.
pub(crate) unsafe fn recv_onto_stack(state: *mut mlua::ffi::lua_State, core: &Core) -> Result<Received, String> {
    use mlua::ffi;
    let token = core.current.load(Ordering::Relaxed);
    let message = {
        let mut procs = core.procs.borrow_mut();
        let Some(p) = procs.get_mut(&token) else {
            return Ok(Received::Nothing);
        };
        match p.next_envelope() {
            Some(Envelope::Message(m)) if matches!(p.extra().router.route(&m.topic), Route::Inbox) => m,
            Some(other) => {
                p.set_stash(other);
                return Ok(Received::Nothing);
            }
            None if !p.multi && p.main == state as usize => {
                p.parked = true;
                return Ok(Received::Parked);
            }
            None => return Ok(Received::Nothing),
        }
    };
    // SAFETY: `state` is live (the caller's promise).
    if unsafe { ffi::lua_checkstack(state, 4) } == 0 {
        return Err("out of Lua stack".into());
    }
    // SAFETY: room for the message (made just above), on a shard's VM, where the message tag is
    // installed.
    unsafe { crate::message::push_message(state, message) };
    Ok(Received::Message)
}

/// Steps between two looks at the clock.
pub(crate) const CLOCK_EVERY: usize = 8;

/// Calls of [`slice_over`] in a slice before its first look at the clock: a run that hands
/// one message to one process calls it twice (the second finds nothing else ready).
pub(crate) const FIRST_LOOK: usize = 2;

/// Counts one step; the slice is over after its steps or its time, whichever comes first. The
/// time is read every few steps, and after every step that ended preempted (`after_long_step`):
/// other steps take microseconds.
///
/// The slice's time counts from its first look, at its third step: a run that hands a message
/// to a process, the common run when processes of different shards talk, then reads no clock
/// at all (a clock read is a good part of such a run on a virtual machine), and the two steps
/// before the look are each shorter than the watchdog's preemption. A step that ended preempted
/// before that look ends the slice: it ran for at least a watchdog tick, and counting the slice
/// from after it let busy shards hold their workers half as long again (ping-pong beside busy
/// loops, p50 1.6 -> 2.4 ms).
pub(crate) fn slice_over(core: &Core, after_long_step: bool) -> bool {
    let left = core.steps_left.load(Ordering::Relaxed);
    if left == 0 {
        return true;
    }
    core.steps_left.store(left - 1, Ordering::Relaxed);
    let taken = core.config.batch.saturating_sub(left);
    if !(after_long_step || taken % CLOCK_EVERY == FIRST_LOOK) {
        return false;
    }
    let mut deadline = core.deadline.borrow_mut();
    match *deadline {
        Some(deadline) => Instant::now() >= deadline,
        None if after_long_step => true,
        None => {
            *deadline = Some(Instant::now() + core.config.slice);
            false
        }
    }
}
