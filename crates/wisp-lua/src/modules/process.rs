//! `process`: sending, the running process's PID and entry, listeners, links and monitors (signals), options, and the marks of its coroutines.

use std::os::raw::c_int;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use mlua::{Lua, Table, Thread, Value as LuaValue};
use wisp_core::{Envelope, Event, ExitResult, Message, Signal};
use wisp_mailbox::ListenerId;
use wisp_process::{Dest, SendError};

use crate::convert::*;
use crate::preempt::{self};
use crate::shard::core::*;
use crate::stack::*;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    // `send` is the hottest callback: a plain C function, not an mlua closure (see `raw_send`).
    r.set("send", raw_callback(lua, core, raw_send, c"send", Vec::new())?)?;
    r.set("self", raw_callback(lua, core, raw_self, c"self", Vec::new())?)?;
    let c = core.clone();
    r.set("entry", lua.create_function(move |_, ()| with_proc(&c, running(&c), |p| p.code.entry.clone()))?)?;

    let c = core.clone();
    r.set(
        "listen",
        lua.create_function(move |_, (topic, as_message): (String, bool)| {
            with_proc(&c, running(&c), |p| {
                let extra = p.extra_mut();
                extra.next_listener += 1;
                let id = extra.next_listener;
                extra.router.listen(&topic, ListenerId(id)).map_err(|e| mlua::Error::runtime(e.to_string()))?;
                if as_message {
                    extra.message_listeners.push(id);
                }
                Ok(id)
            })?
        })?,
    )?;

    let c = core.clone();
    r.set(
        "unlisten",
        lua.create_function(move |_, topic: String| {
            with_proc(&c, running(&c), |p| {
                let extra = p.extra_mut();
                if let Some(ListenerId(id)) = extra.router.unlisten(&topic) {
                    extra.message_listeners.retain(|l| *l != id);
                }
            })
        })?,
    )?;

    let c = core.clone();
    r.set(
        "signal",
        lua.create_function(move |lua, (kind, dest, reason): (String, String, LuaValue)| {
            let token = running(&c);
            let me = with_proc(&c, token, |p| p.pid)?;
            let signal = match kind.as_str() {
                "monitor" => Signal::Monitor,
                "unmonitor" => Signal::Demonitor,
                "link" => Signal::Link,
                "unlink" => Signal::Unlink,
                "terminate" => Signal::Terminate,
                "cancel" => Signal::Cancel(
                    lua_to_value(lua, &reason).map_err(|e| mlua::Error::runtime(format!("process.cancel: {e}")))?,
                ),
                other => return Err(mlua::Error::runtime(format!("unknown signal {other}"))),
            };
            let target = parse_dest(&c, &dest);
            if matches!(signal, Signal::Terminate) && resolves_to(&c, target, me) {
                // Ended at this call, not when the signal would come round in the mailbox: the
                // step is killed (see `Preempt::kill_running`), so nothing after it runs.
                c.preempt.kill_running(preempt::Kill::Terminated);
                return Err(mlua::Error::runtime("terminated"));
            }
            let outcome = c.kernel.signal(me, target, signal.clone());
            let reached = match (&outcome, target) {
                (Ok(pid), _) => Some(*pid),
                (Err(_), Dest::Pid(pid)) => Some(pid),
                (Err(_), Dest::Name(_)) => None,
            };
            // A PID that names no live process: monitoring and linking it still succeed, and
            // the answer (EXIT or LINK_DOWN with `noproc`) comes as an event, as from a process
            // that ended right after the signal reached it.
            let dead = matches!(outcome, Err(SendError::NoProcess(_)));
            with_proc(&c, token, |p| {
                let supervision = &mut p.extra_mut().supervision;
                match (&signal, reached) {
                    (Signal::Monitor, Some(pid)) => supervision.monitor(pid),
                    (Signal::Demonitor, Some(pid)) => supervision.demonitor(pid),
                    (Signal::Link, Some(pid)) if outcome.is_ok() || dead => supervision.link(pid),
                    (Signal::Unlink, Some(pid)) => supervision.unlink(pid),
                    _ => {}
                }
            })?;
            match (outcome, &signal) {
                (Ok(_), _) => Ok((Some(true), None)),
                (Err(_), Signal::Monitor | Signal::Link) if dead => {
                    let from = reached.unwrap_or(me);
                    let result = ExitResult::Error("noproc".into());
                    let event = match signal {
                        Signal::Link => Event::LinkDown { from, result },
                        _ => Event::Exit { from, result },
                    };
                    c.kernel.deliver(me, Envelope::Event(event));
                    Ok((Some(true), None))
                }
                (Err(_), Signal::Demonitor | Signal::Unlink) => Ok((Some(true), None)),
                (Err(e), _) => Ok((None, Some(e.to_string()))),
            }
        })?,
    )?;

    let c = core.clone();
    r.set(
        "get_options",
        lua.create_function(move |lua, ()| {
            let trap = with_proc(&c, running(&c), |p| p.extra().supervision.trap_links)?;
            let t = lua.create_table()?;
            t.set("trap_links", trap)?;
            Ok(t)
        })?,
    )?;
    let c = core.clone();
    r.set(
        "set_options",
        lua.create_function(move |_, opts: Table| {
            let mut trap = None;
            for pair in opts.pairs::<LuaValue, LuaValue>() {
                let (k, v) = pair?;
                match (k.to_string()?.as_str(), v) {
                    ("trap_links", LuaValue::Boolean(b)) => trap = Some(b),
                    ("trap_links", other) => {
                        return Err(mlua::Error::runtime(format!(
                            "process.set_options: trap_links must be a boolean, got {}",
                            other.type_name()
                        )))
                    }
                    (key, _) => {
                        return Err(mlua::Error::runtime(format!("process.set_options: unknown option `{key}`")))
                    }
                }
            }
            with_proc(&c, running(&c), |p| {
                if let Some(t) = trap {
                    p.extra_mut().supervision.trap_links = t;
                }
            })?;
            Ok(true)
        })?,
    )?;

    // What the watchdog's interrupt yields (see `preempt::interrupt`): a light userdata, which
    // no program can make.
    r.set("preempted", LuaValue::LightUserData(mlua::LightUserData(preempt::preempted_mark())))?;
    let c = core.clone();
    r.set(
        "guard",
        lua.create_function(move |lua, co: Thread| {
            // SAFETY: the argument on top of the stack is the thread; the Preempt outlives the VM.
            unsafe { lua.exec_raw::<()>(co, |state| preempt::mark_guard_top(state, Arc::as_ptr(&c.preempt)))? };
            c.preempt.start_guard();
            Ok(())
        })?,
    )?;
    let c = core.clone();
    r.set(
        "mark_thread",
        lua.create_function(move |lua, co: Thread| {
            with_proc(&c, running(&c), |p| p.multi = true)?;
            // SAFETY: the argument on top of the stack is the thread; the Preempt outlives the VM.
            unsafe { lua.exec_raw::<()>(co, |state| preempt::mark_top(state, Arc::as_ptr(&c.preempt))) }
        })?,
    )?;
    Ok(())
}

/// `process.send(dest, topic, ...)` as a raw C function: reads its arguments straight off the
/// stack and copies the payloads with the raw API, without mlua's per-call wrapping.
///
/// # Safety
/// Called by Luau only, as a raw callback of a shard made by `raw_callback` (its first upvalue
/// is the shard's Core), inside that shard's run.
pub(crate) unsafe extern "C-unwind" fn raw_send(state: *mut mlua::ffi::lua_State) -> c_int {
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = unsafe { core_of(state) };
    // SAFETY: the live state of this call, with its arguments on the stack, on the shard's thread.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { send_from_stack(state, core) }));
    // `process.send` is this function: level 1 is the program that called it.
    // SAFETY: the last call of this callback; the outcome is moved into it, and nothing else
    // it holds owns memory.
    unsafe { complete(state, outcome, Some(1)) }
}

/// Sends from the arguments of `process.send(dest, topic, ...)`: the reply the program gets;
/// `Err` for bad arguments, raised.
///
/// # Safety
/// `state` must be the live state of a raw callback's call, with the call's arguments on its
/// stack, on the thread running `core`'s shard.
pub(crate) unsafe fn send_from_stack(state: *mut mlua::ffi::lua_State, core: &Core) -> Result<Reply, String> {
    use mlua::ffi;
    const DEST: &str = "process.send: destination must be a PID or a name";
    // SAFETY: `state` is live (the caller's promise).
    let top = unsafe { ffi::lua_gettop(state) };
    let token = core.current.load(Ordering::Relaxed);
    // SAFETY: as above; index 1 is acceptable in a C function (`LUA_TNONE` if there is no
    // argument).
    if unsafe { ffi::lua_type(state, 1) } != ffi::LUA_TSTRING {
        // SAFETY: as above.
        unsafe { text_arg(state, 1, DEST) }?;
    }
    // SAFETY: argument 1 is a string (checked above: `text_arg` fails on anything else), held
    // by the stack for the whole call.
    let dest_bytes = unsafe { crate::stack::raw_bytes(state, 1) };
    const TOPIC: &str = "process.send: topic must be a string";
    // SAFETY: as above, for argument 2.
    if unsafe { ffi::lua_type(state, 2) } != ffi::LUA_TSTRING {
        // SAFETY: as above.
        unsafe { text_arg(state, 2, TOPIC) }?;
    }
    // SAFETY: argument 2 is a string (checked above), held by the stack for the whole call.
    let topic_bytes = unsafe { crate::stack::raw_bytes(state, 2) };
    let mut payloads = wisp_core::Payloads::with_capacity((top - 2).max(0) as usize);
    let mut path = crate::convert::Copier::new();
    for idx in 3..=top {
        // SAFETY: `idx` is the absolute index of an argument.
        let value =
            unsafe { crate::convert::raw_to_value(state, idx, &mut path) }.map_err(|e| format!("process.send: {e}"))?;
        payloads.push(value);
    }
    // A process usually sends to the same PID on the same topic again and again, and processes
    // of a shard often to the same PID (children to their parent): the last PID string parsed,
    // with the mailbox it reaches, is kept by each, and the last topic by each process. A topic
    // equal to the last one is valid and not reserved (the last one was checked), so only a new
    // topic is checked.
    let (from, topic, known_here) = {
        let mut procs = core.procs.borrow_mut();
        let p = procs.get_mut(&token).ok_or("process is not running")?;
        let topic = match &p.last_topic {
            Some(last) if last.as_bytes() == topic_bytes => last.clone(),
            _ => {
                // SAFETY: argument 2 is on the stack for the whole call.
                let topic_text = unsafe { text_arg(state, 2, TOPIC) }?;
                if topic_text.starts_with('@') {
                    return Err(format!("process.send: topic `{topic_text}` is reserved"));
                }
                let shared: Arc<str> = topic_text.into();
                p.last_topic = Some(shared.clone());
                shared
            }
        };
        (p.pid, topic, p.last_dest.as_deref().is_some_and(|known| known.is(dest_bytes)))
    };
    let message = Message { from: Some(from), topic, payloads };
    // The push into a known mailbox happens under a shared borrow of where it is kept: a push
    // wakes a shard (its ready queue, the pool), never this shard's process records.
    let pushed = if known_here {
        let procs = core.procs.borrow();
        let known = procs.get(&token).and_then(|p| p.last_dest.as_deref());
        known.map(|known| known.push(core, from, message))
    } else {
        let shard_known = core.last_dest.borrow();
        match shard_known.as_ref().filter(|known| known.is(dest_bytes)) {
            Some(known) => Some(known.push(core, from, message)),
            None => {
                drop(shard_known);
                // SAFETY: argument 1 is on the stack for the whole call.
                let text = unsafe { text_arg(state, 1, DEST) }?;
                match parse_dest(core, text) {
                    Dest::Pid(pid) => {
                        let known = KnownDest { text: text.into(), pid, mailbox: core.kernel.mailbox(pid) };
                        if let Some(p) = core.procs.borrow_mut().get_mut(&token) {
                            p.last_dest = Some(Box::new(known.clone()));
                        }
                        let reply = known.push(core, from, message);
                        *core.last_dest.borrow_mut() = Some(known);
                        Some(reply)
                    }
                    dest => Some(send_reply(core.kernel.send(from, dest, message))),
                }
            }
        }
    };
    pushed.ok_or_else(|| "process is not running".to_string())
}

/// `R.self()`: the PID string of the running process (rendered when first asked for).
///
/// # Safety
/// Called by Luau only, as a raw callback of a shard made by `raw_callback` (its first upvalue
/// is the shard's Core), inside that shard's run.
pub(crate) unsafe extern "C-unwind" fn raw_self(state: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = unsafe { core_of(state) };
    let pid = core.procs.borrow_mut().get(&core.current.load(Ordering::Relaxed)).map(|p| p.pid);
    let text = pid.map(|pid| core.kernel.render_pid(pid));
    match text {
        // SAFETY: a C function has room for its result.
        Some(text) => unsafe { push_str(state, &text) },
        // SAFETY: as above.
        None => unsafe { ffi::lua_pushnil(state) },
    }
    1
}

pub(crate) fn parse_dest<'a>(core: &Core, dest: &'a str) -> Dest<'a> {
    if dest.starts_with('{') {
        match core.kernel.parse_pid(dest) {
            Some(pid) => Dest::Pid(pid),
            None => Dest::Name(dest),
        }
    } else {
        Dest::Name(dest)
    }
}

/// Whether `dest` names the process `me`.
fn resolves_to(core: &Core, dest: Dest<'_>, me: wisp_core::Pid) -> bool {
    match dest {
        Dest::Pid(pid) => pid == me,
        Dest::Name(name) => core.kernel.lookup_name(name) == Some(me),
    }
}
