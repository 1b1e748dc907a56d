//! What a shard's callbacks share: the `Core` (never the VM itself), the Rust side of each
//! process (`LocalProc`) and the running process.

use std::cell::RefCell;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use mlua::{Function, Lua, Value as LuaValue, Variadic};
use rustc_hash::FxHashMap;
use slab::Slab;
use wisp_core::{Envelope, Message, Pid, Value};
use wisp_mailbox::{Mailbox, TopicRouter, Wake};
use wisp_process::{Dest, Kernel, SendError, Supervision, Undelivered};
use wisp_scheduler::{Handle, ScheduleState, Task, TimerHandle, TimerId};

use super::config::ShardConfig;
use super::ready::*;
use crate::kernel::Admission;
use crate::preempt::Preempt;
use crate::stack::*;
use crate::{ChunkCache, LuaCode};

/// What the Lua callbacks share with the shard; never holds the VM itself.
pub(crate) struct Core {
    pub(crate) kernel: Arc<dyn Kernel>,
    pub(crate) timers: TimerHandle,
    pub(crate) pool: Handle,
    pub(crate) config: ShardConfig,
    pub(crate) chunks: Arc<ChunkCache>,
    pub(crate) sched: ScheduleState,
    pub(crate) ready: Ready,
    pub(crate) admits: Mutex<Vec<Admission>>,
    /// An empty vector with room, swapped with `admits` by `admit_pending`.
    pub(crate) admits_spare: Mutex<Vec<Admission>>,
    /// Set after an admission is pushed, so `R.next` looks at `admits` only when there is one.
    pub(crate) admitted: AtomicBool,
    /// Boxed: a map of a million inline records would double in one step (a power-of-two table
    /// at 7/8 load), and idle processes would pay for the empty half.
    /// Hashed with Fx: looked up several times per message.
    pub(crate) procs: RunState<ProcSlots>,
    /// Tokens of this shard's mailboxes: handed out by `Shard::new_mailbox` (on any thread),
    /// taken back when a process ends.
    pub(crate) tokens: Mutex<Tokens>,
    /// The chunks in the shard's chunk table (entries' and imported libraries'), by entry, with
    /// the source each was loaded from.
    pub(crate) raw_loaded: RunState<FxHashMap<String, LoadedChunk>>,
    /// Steps left in this slice, and when the slice must end (set at the slice's first look at
    /// the clock, see [`slice_over`]).
    pub(crate) steps_left: AtomicUsize,
    pub(crate) deadline: RunState<Option<Instant>>,
    pub(crate) shard: OnceLock<Weak<dyn Task>>,
    /// The process whose code runs now: set by `R.next` before it hands a process to the driver
    /// or resumes one, so callbacks like `process.send` need no token from Lua.
    pub(crate) current: AtomicU32,
    /// Processes the running process has spawned in its current step (see `SpawnRequest::burst`).
    pub(crate) spawned_in_step: AtomicU32,
    /// The PID string a process of this shard last sent to, parsed.
    pub(crate) last_dest: RunState<Option<KnownDest>>,
    /// The driver's table of process records is keyed by these reused slots (a record's slot
    /// minus one is its key here; the value is the process's token). Keyed by tokens, sparse
    /// across a host's process table, the table was a hash that Luau rebuilt every few dozen
    /// processes; dense slots keep it an array.
    pub(crate) record_slots: RunState<Slab<u32>>,
    /// What the watchdog sees of this shard; process coroutines point at it (thread data).
    pub(crate) preempt: Arc<Preempt>,
}

/// An entry's chunk in `R.next`'s chunk table: the function at `slot`, its method name at
/// `slot + 1` (integer keys: no string to hash per process start).
pub(crate) struct LoadedChunk {
    pub(crate) source: Arc<str>,
    pub(crate) chunk: PushedChunk,
}

/// An entry's chunk: where it sits in `R.next`'s chunk table, and whether its processes need
/// a global table of their own (`ChunkCache::needs_own_globals`).
#[derive(Clone, Copy)]
pub(crate) struct PushedChunk {
    pub(crate) slot: mlua::ffi::lua_Integer,
    pub(crate) own_globals: bool,
}

/// The Rust side of one process of this shard.
pub(crate) struct LocalProc {
    pub(crate) pid: Pid,
    pub(crate) mailbox: Arc<Mailbox<Envelope>>,
    pub(crate) code: Arc<LuaCode>,
    /// The arguments of its entry's function, until it starts (a boxed slice: with it,
    /// `LocalProc` fits the allocator's 128-byte class instead of its 160-byte one).
    pub(crate) init: Option<Box<[Value]>>,
    /// Listeners, links, monitors and timers: allocated when a process first has any.
    pub(crate) extra: Option<Box<Extras>>,
    /// What `ctx` reads: given by the spawner, inherited by this process's own spawns.
    pub(crate) context: Option<Arc<Value>>,
    pub(crate) actor: Option<Arc<Value>>,
    pub(crate) scope: Option<Arc<Value>>,
    /// The main coroutine's `lua_State`, once started (kept alive by the driver's process record).
    pub(crate) main: usize,
    /// The slot of the driver's record of this process (see `Core::record_slots`); 0 until it
    /// starts.
    pub(crate) record: u32,
    /// The main coroutine is parked in `R.recv`: the next inbox message resumes it from Rust.
    pub(crate) parked: bool,
    /// The process has spawned coroutines: its main coroutine never parks (others may be ready).
    pub(crate) multi: bool,
    /// An envelope taken from the mailbox but not yet handled; it comes before the mailbox.
    pub(crate) stash: Option<Box<Envelope>>,
    /// The PID string this process last sent to, parsed.
    pub(crate) last_dest: Option<Box<KnownDest>>,
    /// The topic this process last sent on.
    pub(crate) last_topic: Option<Arc<str>>,
}

/// What many processes never use, kept out of line so an idle process stays small.
#[derive(Default)]
pub(crate) struct Extras {
    pub(crate) router: TopicRouter,
    pub(crate) message_listeners: Vec<u32>,
    pub(crate) next_listener: u32,
    pub(crate) supervision: Supervision,
    /// Pending timers by the id Lua knows them by: armed, fired and cancelled in O(1), and all
    /// cancelled at the end in O(their number).
    pub(crate) timers: FxHashMap<u64, TimerId>,
    pub(crate) next_timer: u64,
}

pub(crate) static NO_EXTRAS: Extras = Extras {
    router: TopicRouter::new(),
    message_listeners: Vec::new(),
    next_listener: 0,
    supervision: Supervision { links: Vec::new(), monitors: Vec::new(), monitoring: Vec::new(), trap_links: false },
    timers: FxHashMap::with_hasher(rustc_hash::FxBuildHasher),
    next_timer: 0,
};

impl LocalProc {
    pub(crate) fn extra(&self) -> &Extras {
        self.extra.as_deref().unwrap_or(&NO_EXTRAS)
    }

    pub(crate) fn extra_mut(&mut self) -> &mut Extras {
        self.extra.get_or_insert_with(Default::default)
    }

    pub(crate) fn next_envelope(&mut self) -> Option<Envelope> {
        self.stash.take().map(|e| *e).or_else(|| self.mailbox.pop())
    }

    pub(crate) fn set_stash(&mut self, envelope: Envelope) {
        self.stash = Some(Box::new(envelope));
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.stash.is_some() || !self.mailbox.is_empty()
    }
}

thread_local! {
    /// The shard whose driver runs on this thread, if any: a wake-up from it is a local one.
    pub(crate) static RUNNING_SHARD: std::cell::Cell<*const Core> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// Shard state that only the thread running the shard touches. Every access happens while that
/// thread holds the shard's `vm` lock (in a run, or in `shutdown`), so no lock of its own is
/// needed: a `RefCell`'s flag turns an accidental re-entry into a panic. (These were mutexes:
/// two locked instructions per access, several accesses per step.)
pub(crate) struct RunState<T>(RefCell<T>);

// SAFETY: accesses are serialized by the `vm` mutex, whose release and acquire also order them
// across the workers a shard moves between; `T: Send` as the value moves between threads.
unsafe impl<T: Send> Sync for RunState<T> {}

impl<T> RunState<T> {
    pub(crate) fn new(value: T) -> RunState<T> {
        RunState(RefCell::new(value))
    }

    pub(crate) fn borrow_mut(&self) -> std::cell::RefMut<'_, T> {
        self.0.borrow_mut()
    }

    pub(crate) fn borrow(&self) -> std::cell::Ref<'_, T> {
        self.0.borrow()
    }
}

/// The Core of the shard whose raw callback runs on `state`: the shard this thread is running
/// (a callback runs only inside its shard's run, which sets `RUNNING_SHARD`), else the
/// callback's first upvalue. The thread-local is a plain read where the upvalue is an
/// out-of-line pseudo-index lookup, on every send and receive.
///
/// # Safety
/// `state` must be running a raw callback made by `raw_callback` (its first upvalue is the
/// Core, which outlives the VM).
pub(crate) unsafe fn core_of<'a>(state: *mut mlua::ffi::lua_State) -> &'a Core {
    let running = RUNNING_SHARD.with(|running| running.get());
    let core = if running.is_null() {
        // SAFETY: `state` runs a raw callback (the caller's promise), whose first upvalue is
        // the Core's light userdata.
        unsafe { mlua::ffi::lua_touserdata(state, mlua::ffi::lua_upvalueindex(1)) as *const Core }
    } else {
        running
    };
    // SAFETY: as above.
    debug_assert!(std::ptr::eq(core, unsafe {
        mlua::ffi::lua_touserdata(state, mlua::ffi::lua_upvalueindex(1)) as *const Core
    }));
    // SAFETY: the Core of the callback's shard (its upvalue, or the shard this thread runs,
    // which is the same one: a callback runs only inside its shard's run), which outlives the VM.
    unsafe { &*core }
}

impl Core {
    /// The running process's spawns so far in this step, counting this one. Only the thread
    /// running the shard spawns from it: a plain load and store, not a locked increment.
    pub(crate) fn next_in_burst(&self) -> u32 {
        let n = self.spawned_in_step.load(Ordering::Relaxed);
        self.spawned_in_step.store(n.saturating_add(1), Ordering::Relaxed);
        n
    }

    /// True on the thread running this shard, inside its run: what it queues now is taken by
    /// the same run (`R.next` looks at the ready queue and admissions until the slice ends, and
    /// the run's end requeues the shard if any is left), so it needs no notify. A notify would
    /// mark the running shard as woken, and its run would end by queueing it again for nothing,
    /// where an idle worker would steal it: the shard would move to the other core.
    pub(crate) fn runs_here(&self) -> bool {
        RUNNING_SHARD.with(|running| std::ptr::eq(running.get(), self))
    }

    /// Schedules the shard if it was idle (a running or queued shard sees the new work).
    pub(crate) fn schedule_if_idle(&self) {
        if self.sched.notify() {
            if let Some(shard) = self.shard.get().and_then(Weak::upgrade) {
                self.pool.schedule(shard);
            }
        }
    }
}

impl Wake for Core {
    fn wake(&self, token: u32) {
        if self.runs_here() {
            self.ready.lock().push_lifo(token);
        } else {
            self.ready.lock().push_back(token);
            self.schedule_if_idle();
        }
    }
}

/// The token of the process whose code runs now: Rust's own record (set by `R.next` before any
/// of the process's code runs), never a value a program could make.
pub(crate) fn running(core: &Core) -> u32 {
    core.current.load(Ordering::Relaxed)
}

/// Looks up a process of this shard by token.
pub(crate) fn with_proc<R>(core: &Core, token: u32, f: impl FnOnce(&mut LocalProc) -> R) -> mlua::Result<R> {
    let mut procs = core.procs.borrow_mut();
    match procs.get_mut(&token) {
        Some(p) => Ok(f(p)),
        None => Err(mlua::Error::runtime("process is not running")),
    }
}

pub(crate) fn send_reply(sent: Result<(), Undelivered>) -> Reply {
    match sent {
        Ok(()) => Reply::True,
        Err(undelivered) => Reply::NilErr(undelivered.reason.to_string()),
    }
}

/// A PID string a process (or any process of the shard) sent to last: parsed, with the mailbox
/// the kernel gave for it.
#[derive(Clone)]
pub(crate) struct KnownDest {
    pub(crate) text: Box<str>,
    pub(crate) pid: Pid,
    /// `None` when the kernel had no mailbox to give: the send then goes through the kernel.
    pub(crate) mailbox: Option<Arc<Mailbox<Envelope>>>,
}

impl KnownDest {
    pub(crate) fn is(&self, text: &[u8]) -> bool {
        self.text.as_bytes() == text
    }

    /// Sends `message` from `from` to this PID: straight into its mailbox when there is one (a
    /// closed one means the process has ended: the same answer the kernel gives).
    pub(crate) fn push(&self, core: &Core, from: Pid, message: Message) -> Reply {
        let Some(mailbox) = &self.mailbox else {
            return send_reply(core.kernel.send(from, Dest::Pid(self.pid), message));
        };
        match mailbox.push(Envelope::Message(message)) {
            Ok(()) => Reply::True,
            Err(_) => Reply::NilErr(SendError::NoProcess(core.kernel.render_pid(self.pid)).to_string()),
        }
    }
}

/// A process that has nothing to do waits for its mailbox; if something is already there, it
/// goes back in the ready queue.
pub(crate) fn wait_or_requeue(core: &Core, token: u32) {
    let pending = core.procs.borrow_mut().get(&token).is_some_and(|p| p.stash.is_some() || !p.mailbox.prepare_wait());
    if pending {
        core.ready.lock().push_back(token);
    }
}

/// The shard's processes by mailbox token. Tokens are dense and reused (see [`Tokens`]), so
/// this is an array: a lookup is an index, not a probe into a hash table that, with a hundred
/// thousand processes, missed the cache on most steps.
#[derive(Default)]
pub(crate) struct ProcSlots {
    pub(crate) slots: Vec<Option<Box<LocalProc>>>,
}

impl ProcSlots {
    pub(crate) fn get(&self, token: &u32) -> Option<&LocalProc> {
        self.slots.get(*token as usize).and_then(|slot| slot.as_deref())
    }

    pub(crate) fn get_mut(&mut self, token: &u32) -> Option<&mut LocalProc> {
        self.slots.get_mut(*token as usize).and_then(|slot| slot.as_deref_mut())
    }

    pub(crate) fn contains_key(&self, token: &u32) -> bool {
        self.get(token).is_some()
    }

    pub(crate) fn insert(&mut self, token: u32, p: Box<LocalProc>) {
        let index = token as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(p);
    }

    pub(crate) fn remove(&mut self, token: &u32) -> Option<Box<LocalProc>> {
        self.slots.get_mut(*token as usize).and_then(Option::take)
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Box<LocalProc>> {
        std::mem::take(&mut self.slots).into_iter().flatten()
    }
}

/// A raw C callback of this shard: `f` finds the shard's Core in its first upvalue and the
/// given tables in the next ones.
pub(crate) fn raw_callback(
    lua: &Lua,
    core: &Arc<Core>,
    f: mlua::ffi::lua_CFunction,
    name: &'static std::ffi::CStr,
    upvalues: Vec<LuaValue>,
) -> mlua::Result<Function> {
    let core_ptr = Arc::as_ptr(core) as *mut std::ffi::c_void;
    let n = upvalues.len() as c_int;
    // SAFETY: the tables are the only arguments on the stack; the light userdata goes below them
    // and the closure takes all as upvalues. The Core outlives the VM (the Vm holds an Arc of
    // it), so the pointer is valid whenever the closure runs.
    unsafe {
        lua.exec_raw(Variadic::from_iter(upvalues), move |state| {
            mlua::ffi::lua_pushlightuserdata(state, core_ptr);
            mlua::ffi::lua_insert(state, -(n + 1));
            mlua::ffi::lua_pushcclosured(state, f, name.as_ptr(), n + 1);
        })
    }
}

#[cfg(test)]
mod layout_tests {
    #[test]
    fn a_local_proc_fits_128_bytes() {
        // An idle process's Rust side; 129 bytes would take the allocator's next class, 160.
        assert!(std::mem::size_of::<super::LocalProc>() <= 128);
    }
}
