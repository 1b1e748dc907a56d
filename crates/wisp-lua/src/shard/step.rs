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
pub(crate) unsafe fn push_event(state: *mut mlua::ffi::lua_State, core: &Core, event: &Event) -> Result<(), String> {
    use mlua::ffi;
    ffi::lua_createtable(state, 0, 4);
    push_str(state, event.kind().as_str());
    set_field(state, "kind");
    ffi::lua_pushnumber(state, now_seconds());
    set_field(state, "at");
    match event {
        Event::Exit { from, result } | Event::LinkDown { from, result } => {
            push_str(state, &core.kernel.render_pid(*from));
            set_field(state, "from");
            ffi::lua_createtable(state, 0, 1);
            match result {
                ExitResult::Value(v) => {
                    push_value(state, v)?;
                    set_field(state, "value");
                }
                ExitResult::Error(e) => {
                    push_str(state, e);
                    set_field(state, "error");
                }
            }
            set_field(state, "result");
        }
        Event::Cancel { from, reason } => {
            push_str(state, &from.map(|p| core.kernel.render_pid(p)).unwrap_or_default());
            set_field(state, "from");
            push_value(state, reason)?;
            set_field(state, "reason");
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
pub(crate) unsafe fn push_item(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    p: &mut LocalProc,
    envelope: Envelope,
) -> Result<Pushed, String> {
    use mlua::ffi;
    let kind = |k: u8| ffi::lua_pushnumber(state, k as f64);
    let kill = |text: &str| {
        kind(K_KILL);
        push_str(state, text);
        ffi::lua_pushnil(state);
        ffi::lua_pushnil(state);
        Pushed::Kill
    };
    Ok(match envelope {
        Envelope::Message(m) => match p.extra().router.route(&m.topic) {
            Route::Inbox => {
                kind(K_MESSAGE);
                crate::message::push_message(state, m);
                ffi::lua_pushnil(state);
                ffi::lua_pushnil(state);
                Pushed::Item
            }
            Route::Listener(ListenerId(id)) => {
                let whole_message = p.extra().message_listeners.contains(&id);
                kind(if whole_message { K_LISTENER_MESSAGE } else { K_LISTENER });
                ffi::lua_pushnumber(state, id as f64);
                if whole_message {
                    crate::message::push_message(state, m);
                    ffi::lua_pushnil(state);
                } else {
                    ffi::lua_pushnil(state);
                    push_payloads(state, &m.payloads)?;
                }
                Pushed::Item
            }
        },
        envelope @ (Envelope::Event(_) | Envelope::Signal { .. }) => {
            let effect = p.extra_mut().supervision.on_envelope(envelope, |pid| core.kernel.render_pid(pid));
            match effect {
                Some(Effect::Event(event)) => {
                    kind(K_EVENT);
                    ffi::lua_pushnil(state);
                    ffi::lua_pushnil(state);
                    push_event(state, core, &event)?;
                    Pushed::Item
                }
                Some(Effect::Exit(reason)) => kill(&reason),
                Some(Effect::Nothing) | None => Pushed::Nothing,
            }
        }
        Envelope::Timer(id) => {
            let Some(i) = p.extra().timers.iter().position(|(t, _)| *t == id) else {
                return Ok(Pushed::Nothing);
            };
            p.extra_mut().timers.swap_remove(i);
            kind(K_TIMER);
            ffi::lua_pushnumber(state, id as f64);
            ffi::lua_pushnil(state);
            ffi::lua_pushnumber(state, now_seconds());
            Pushed::Item
        }
    })
}

/// `R.next(prev, status, is_error, value)` as a raw C function (see the module docs for the
/// protocol). Returns nothing when the slice is over; otherwise a process's record slot, then
/// `nil` and four values per item, or `false, ok` and the results of a resume made here.
pub(crate) unsafe extern "C-unwind" fn raw_next(state: *mut mlua::ffi::lua_State) -> c_int {
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = core_of(state);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| next_onto_stack(state, core)));
    match outcome {
        Ok(Ok(results)) => results,
        Ok(Err(raise)) => complete(state, Ok(Err(raise)), None),
        Err(panic) => complete(state, Err(panic), None),
    }
}

pub(crate) unsafe fn next_onto_stack(state: *mut mlua::ffi::lua_State, core: &Core) -> Result<c_int, String> {
    use mlua::ffi;
    // The driver names the process of the previous step by its record's slot.
    let prev_record = ffi::lua_tonumber(state, 1) as i64;
    let status = ffi::lua_tonumber(state, 2) as u8;
    let prev =
        u32::try_from(prev_record - 1).ok().and_then(|key| core.record_slots.borrow_mut().get(key as usize).copied());
    if ffi::lua_checkstack(state, (2 + 4 * MAX_ITEMS_PER_STEP + 8) as c_int) == 0 {
        return Err("out of Lua stack".into());
    }
    // The driver's tables stay where it passed them (see `next_slot`).
    ffi::lua_settop(state, NEXT_ARGS + NEXT_TABLES);
    // A step that ended preempted was a long one: the clock is read before the next.
    let mut long_step = prev.is_some() && status == S_READY;
    if let Some(prev) = prev {
        // A step the interrupt ended (see `preempt.rs`) ends its process, whatever it returned.
        let killed = core.preempt.take_kill(state);
        match status {
            _ if killed.is_some() => {
                let text = killed.map(|kill| core.preempt.kill_text(kill).to_string()).unwrap_or_default();
                let ended = core.procs.borrow_mut().remove(&prev);
                if let Some(p) = ended {
                    drop_record(state, core, p.record);
                    finish(core, *p, ExitResult::Error(text));
                }
            }
            S_DONE => {
                let is_error = ffi::lua_toboolean(state, 3) != 0;
                let result = result_at(state, is_error, 4);
                let ended = core.procs.borrow_mut().remove(&prev);
                if let Some(p) = ended {
                    drop_record(state, core, p.record);
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
            match start_process(state, core, token)? {
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
                    match resume_parked(state, core, token, record, co, m)? {
                        Some(results) => return Ok(results),
                        None => continue,
                    }
                }
                // Events, signals and listener messages go through the driver; the inbox
                // message after them resumes the parked coroutine on a later step.
                Some(other) => p.set_stash(other),
            }
        }
        ffi::lua_pushnumber(state, p.record as f64);
        ffi::lua_pushnil(state);
        let base = ffi::lua_gettop(state);
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
            if let Pushed::Kill = push_item(state, core, p, envelope)? {
                break;
            }
        }
        if p.has_pending() {
            // More than one step's worth: come back after the others.
            core.ready.lock().push_back(token);
        }
        return Ok(ffi::lua_gettop(state) - base + 2);
    }
}

/// Resumes a main coroutine parked in `R.recv` with its next inbox message, without the driver.
/// Returns `None` when the step is over (it parked again, or returned a value: see
/// [`settle_return`]), or the number of values pushed for the driver (`token, false, ok,
/// results...`) when it did anything else: blocked on a channel, was preempted or failed.
pub(crate) unsafe fn resume_parked(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    token: u32,
    record: u32,
    co: *mut mlua::ffi::lua_State,
    message: Message,
) -> Result<Option<c_int>, String> {
    use mlua::ffi;
    crate::message::push_message(state, message);
    ffi::lua_rawgeti(state, next_slot(NEXT_PROCS), record as ffi::lua_Integer);
    // What R.recv yielded (its PARKED marker) is still on the coroutine's stack. It returns the
    // message and the process's record (see `raw_recv`).
    ffi::lua_settop(co, 0);
    ffi::lua_xmove(state, co, 2);
    let status = ffi::lua_resume_(co, state, 2);
    let parked_again = status == ffi::LUA_YIELD && core.procs.borrow_mut().get(&token).is_some_and(|p| p.parked);
    if parked_again {
        wait_or_requeue(core, token);
        return Ok(None);
    }
    if settle_return(state, core, token, co, status) {
        return Ok(None);
    }
    Ok(Some(hand_to_driver(state, record, co, status)?))
}

/// `R.recv()`: the running process's next inbox message, straight from its mailbox. Returns the
/// message (the driver's `CURRENT` is this process: nothing else ran since it was set); nothing
/// when the driver must take over (an event,
/// signal or listener message comes first, or a coroutine other than a lone main coroutine
/// waits); or parks the main coroutine: it yields the PARKED marker and is resumed by `R.next`
/// with the next inbox message and the process's record (the driver's `CURRENT` from then on,
/// given by Rust so no table a program makes can pass for it). Upvalue: the PARKED marker.
pub(crate) unsafe extern "C-unwind" fn raw_recv(state: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = core_of(state);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| recv_onto_stack(state, core)));
    match outcome {
        Ok(Ok(Received::Message)) => 1,
        Ok(Ok(Received::Nothing)) => 0,
        Ok(Ok(Received::Parked)) => {
            ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
            ffi::lua_yield(state, 1)
        }
        Ok(Err(raise)) => complete(state, Ok(Err(raise)), Some(2)),
        Err(panic) => complete(state, Err(panic), Some(2)),
    }
}

pub(crate) enum Received {
    /// The message is pushed.
    Message,
    Nothing,
    Parked,
}

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
    if ffi::lua_checkstack(state, 4) == 0 {
        return Err("out of Lua stack".into());
    }
    crate::message::push_message(state, message);
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
