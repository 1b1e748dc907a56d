//! A shard: one sandboxed Luau VM running many processes.
//!
//! Protocol of a run (one scheduler slice):
//! 1. The worker calls [`Shard::run`]; it calls `R.next` on the shard's driver thread, and the
//!    Lua driver (`drive` in `prelude.luau`) only if `R.next` hands a process over.
//! 2. The driver calls `R.next(prev, status, ...)` (with the tables `R.next` works on as its
//!    further arguments, see `NEXT_BODY`): Rust records how the previous process ended its
//!    step (waiting, ready again, done), admits newly spawned processes and pops ready tokens.
//!    A process not started yet is started here (`start_process`), and a main coroutine parked
//!    in `R.recv` is resumed here with its next inbox message (`resume_parked`); when either
//!    parks again or returns a value, `R.next` goes on to the next token without Lua. Otherwise
//!    it hands the process over (by the slot of its record in the driver's table, not its
//!    token) with the items drained from its mailbox, or with the outcome of the resume it
//!    made. Signals (links, monitors, terminate) are applied here, in Rust, and never reach Lua.
//! 3. The driver routes the items into the process's channels and resumes its ready coroutines.
//! 4. After `batch` steps, or when no process is ready, `R.next` returns nothing and the run
//!    ends; the shard re-queues itself if more is ready.
//!
//! A process waits by `Mailbox::prepare_wait`; a later push calls [`Wake::wake`] with the
//! process's token (a dense index the shard handed out with the mailbox), which queues the token here (in the LIFO slot when the push
//! came from this shard's own run) and schedules the shard.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mlua::{Function, Lua, Table, Thread, Value as LuaValue, Variadic};
use rustc_hash::FxHashMap;
use slab::Slab;
use wisp_core::{Envelope, Event, ExitResult, Key, Message, Pid, Signal, Value};
use wisp_mailbox::{ListenerId, Mailbox, Route, TopicRouter, Wake};
use wisp_scheduler::{Handle, ScheduleState, Task, TimerHandle, TimerId};

use crate::convert::{lua_to_value, value_to_lua};
use crate::kernel::Admission;
use crate::preempt::{self, Preempt, WatchdogHandle};
use crate::{ChunkCache, LuaCode};
use wisp_process::{Dest, Effect, Kernel, ProcessExit, SendError, SpawnFlags, SpawnRequest, Supervision, Undelivered};

const PRELUDE: &str = include_str!("prelude.luau");

// Item kinds and step outcomes shared with prelude.luau.
const K_MESSAGE: u8 = 1;
const K_LISTENER: u8 = 3;
const K_LISTENER_MESSAGE: u8 = 4;
const K_EVENT: u8 = 5;
const K_TIMER: u8 = 6;
const K_KILL: u8 = 7;
const S_WAITING: u8 = 0;
const S_READY: u8 = 1;
const S_DONE: u8 = 2;

/// Mailbox items handed to Lua per step; the rest wait for the next step so one flooded
/// process cannot hold its shard.
const MAX_ITEMS_PER_STEP: usize = 64;

/// Modules a process may name in `modules:` and get from `require`.
const BUILTIN_MODULES: &[&str] = &["time", "io", "ctx", "uuid", "security"];

#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The host's name, for log lines.
    pub host: String,
    /// This shard's place among its host's shards, which the kernel knows its processes by
    /// (`SpawnRequest::parent_group`).
    pub group: u32,
    /// Process steps per scheduler slice.
    pub batch: usize,
    /// Wall time after which a slice ends even if steps are left, so a shard full of busy
    /// processes hands its worker to other shards at least this often.
    pub slice: Duration,
    /// The VM's collector: heap size that starts a cycle, as a percentage of the live heap after
    /// the last one (Luau's `LUA_GCSETGOAL`), collector work per unit allocated (percent), and
    /// the size of one step in KB.
    pub gc_goal: i32,
    pub gc_step_multiplier: i32,
    pub gc_step_size_kb: i32,
    /// The longest one step may run where it cannot be preempted (a metamethod, a sort
    /// comparator, a pattern match); past it the process ends with `step time limit exceeded`.
    /// `None`: no limit.
    pub max_step: Option<Duration>,
}

/// The default of [`ShardConfig::max_step`] (the contract's `limits.max_step`).
pub const DEFAULT_MAX_STEP: Duration = Duration::from_secs(5);

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            host: "host".into(),
            group: 0,
            batch: 256,
            slice: Duration::from_micros(500),
            // Luau's defaults (200%, 200%, 1 KB) suit a game script's small heap; a shard's heap
            // holds thousands of processes, and marking it twice as often cost spawns about a
            // tenth of their time for a fifth less peak memory.
            gc_goal: 300,
            gc_step_multiplier: 300,
            gc_step_size_kb: 4,
            max_step: Some(DEFAULT_MAX_STEP),
        }
    }
}

pub struct Shard {
    core: Arc<Core>,
    vm: Mutex<Option<Vm>>,
}

/// What the Lua callbacks share with the shard; never holds the VM itself.
pub(crate) struct Core {
    pub(crate) kernel: Arc<dyn Kernel>,
    timers: TimerHandle,
    pool: Handle,
    config: ShardConfig,
    chunks: Arc<ChunkCache>,
    sched: ScheduleState,
    ready: Ready,
    admits: Mutex<Vec<Admission>>,
    /// An empty vector with room, swapped with `admits` by `admit_pending`.
    admits_spare: Mutex<Vec<Admission>>,
    /// Set after an admission is pushed, so `R.next` looks at `admits` only when there is one.
    admitted: AtomicBool,
    /// Boxed: a map of a million inline records would double in one step (a power-of-two table
    /// at 7/8 load), and idle processes would pay for the empty half.
    /// Hashed with Fx: looked up several times per message.
    procs: RunState<ProcSlots>,
    /// Tokens of this shard's mailboxes: handed out by `Shard::new_mailbox` (on any thread),
    /// taken back when a process ends.
    tokens: Mutex<Tokens>,
    loaded: RunState<HashMap<String, (Arc<str>, Function)>>,
    /// The source each entry's chunk in `R.init`'s chunk table was loaded from.
    raw_loaded: RunState<FxHashMap<String, LoadedChunk>>,
    /// Steps left in this slice, and when the slice must end (set at the slice's first look at
    /// the clock, see [`slice_over`]).
    steps_left: AtomicUsize,
    deadline: RunState<Option<Instant>>,
    shard: OnceLock<Weak<Shard>>,
    /// The process whose code runs now: set by `R.next` before it hands a process to the driver
    /// or resumes one, so callbacks like `process.send` need no token from Lua.
    current: AtomicU32,
    /// Processes the running process has spawned in its current step (see `SpawnRequest::burst`).
    spawned_in_step: AtomicU32,
    /// The PID string a process of this shard last sent to, parsed.
    last_dest: RunState<Option<KnownDest>>,
    /// The driver's table of process records is keyed by these reused slots (a record's slot
    /// minus one is its key here; the value is the process's token). Keyed by tokens, sparse
    /// across a host's process table, the table was a hash that Luau rebuilt every few dozen
    /// processes; dense slots keep it an array.
    record_slots: RunState<Slab<u32>>,
    /// What the watchdog sees of this shard; process coroutines point at it (thread data).
    preempt: Arc<Preempt>,
}

/// The shard's processes by mailbox token. Tokens are dense and reused (see [`Tokens`]), so
/// this is an array: a lookup is an index, not a probe into a hash table that, with a hundred
/// thousand processes, missed the cache on most steps.
#[derive(Default)]
struct ProcSlots {
    slots: Vec<Option<Box<LocalProc>>>,
}

impl ProcSlots {
    fn get(&self, token: &u32) -> Option<&LocalProc> {
        self.slots.get(*token as usize).and_then(|slot| slot.as_deref())
    }

    fn get_mut(&mut self, token: &u32) -> Option<&mut LocalProc> {
        self.slots.get_mut(*token as usize).and_then(|slot| slot.as_deref_mut())
    }

    fn contains_key(&self, token: &u32) -> bool {
        self.get(token).is_some()
    }

    fn insert(&mut self, token: u32, p: Box<LocalProc>) {
        let index = token as usize;
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(p);
    }

    fn remove(&mut self, token: &u32) -> Option<Box<LocalProc>> {
        self.slots.get_mut(*token as usize).and_then(Option::take)
    }

    fn drain(&mut self) -> impl Iterator<Item = Box<LocalProc>> {
        std::mem::take(&mut self.slots).into_iter().flatten()
    }
}

/// Mailbox tokens of a shard: the most recently freed first, so a new process reuses a slot
/// (and the memory around it) that was in use a moment ago.
#[derive(Default)]
struct Tokens {
    next: u32,
    free: Vec<u32>,
}

impl Tokens {
    fn take(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        })
    }

    fn give_back(&mut self, token: u32) {
        self.free.push(token);
    }
}

// Field order matters: handles into the VM drop before the VM.
struct Vm {
    /// The thread each run begins on (an address, like `LocalProc::main`; see `Vm::drive`).
    driver: usize,
    /// Keeps the driver thread in the VM's registry.
    _driver_ref: c_int,
    _lua: Lua,
    /// Raw callbacks and process coroutines point at the Core and its `preempt`: it must
    /// outlive the VM.
    core: Arc<Core>,
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Before the fields: the watchdog must not arm a VM being closed.
        self.core.preempt.forget_vm();
    }
}

/// An entry's chunk in `R.next`'s chunk table: the function at `slot`, its method name at
/// `slot + 1` (integer keys: no string to hash per process start).
struct LoadedChunk {
    source: Arc<str>,
    chunk: PushedChunk,
}

/// An entry's chunk: where it sits in `R.next`'s chunk table, and whether its processes need
/// a global table of their own (`ChunkCache::needs_own_globals`).
#[derive(Clone, Copy)]
struct PushedChunk {
    slot: mlua::ffi::lua_Integer,
    own_globals: bool,
}

/// The Rust side of one process of this shard.
struct LocalProc {
    pid: Pid,
    mailbox: Arc<Mailbox<Envelope>>,
    code: Arc<LuaCode>,
    /// The arguments of its entry's function, until it starts (a boxed slice: with it,
    /// `LocalProc` fits the allocator's 128-byte class instead of its 160-byte one).
    init: Option<Box<[Value]>>,
    /// Listeners, links, monitors and timers: allocated when a process first has any.
    extra: Option<Box<Extras>>,
    /// What `ctx` reads: given by the spawner, inherited by this process's own spawns.
    context: Option<Arc<Value>>,
    actor: Option<Arc<Value>>,
    scope: Option<Arc<Value>>,
    /// The main coroutine's `lua_State`, once started (kept alive by the driver's process record).
    main: usize,
    /// The slot of the driver's record of this process (see `Core::record_slots`); 0 until it
    /// starts.
    record: u32,
    /// The main coroutine is parked in `R.recv`: the next inbox message resumes it from Rust.
    parked: bool,
    /// The process has spawned coroutines: its main coroutine never parks (others may be ready).
    multi: bool,
    /// An envelope taken from the mailbox but not yet handled; it comes before the mailbox.
    stash: Option<Box<Envelope>>,
    /// The PID string this process last sent to, parsed.
    last_dest: Option<Box<KnownDest>>,
    /// The topic this process last sent on.
    last_topic: Option<Arc<str>>,
}

/// What many processes never use, kept out of line so an idle process stays small.
#[derive(Default)]
struct Extras {
    router: TopicRouter,
    message_listeners: Vec<u32>,
    next_listener: u32,
    supervision: Supervision,
    timers: Vec<(u64, TimerId)>,
    next_timer: u64,
}

static NO_EXTRAS: Extras = Extras {
    router: TopicRouter::new(),
    message_listeners: Vec::new(),
    next_listener: 0,
    supervision: Supervision { links: Vec::new(), monitors: Vec::new(), monitoring: Vec::new(), trap_links: false },
    timers: Vec::new(),
    next_timer: 0,
};

impl LocalProc {
    fn extra(&self) -> &Extras {
        self.extra.as_deref().unwrap_or(&NO_EXTRAS)
    }

    fn extra_mut(&mut self) -> &mut Extras {
        self.extra.get_or_insert_with(Default::default)
    }

    fn next_envelope(&mut self) -> Option<Envelope> {
        self.stash.take().map(|e| *e).or_else(|| self.mailbox.pop())
    }

    fn set_stash(&mut self, envelope: Envelope) {
        self.stash = Some(Box::new(envelope));
    }

    fn has_pending(&self) -> bool {
        self.stash.is_some() || !self.mailbox.is_empty()
    }
}

thread_local! {
    /// The shard whose driver runs on this thread, if any: a wake-up from it is a local one.
    static RUNNING_SHARD: std::cell::Cell<*const Core> = const { std::cell::Cell::new(std::ptr::null()) };
}

/// Consecutive turns a LIFO slot may take before the queue's head gets one.
const MAX_LIFO_STREAK: u32 = 3;

/// The shard's ready processes: a FIFO queue plus a LIFO slot for the process most recently
/// woken by a process of this same shard (as tokio's LIFO slot): a reply then runs next, while
/// the data it needs is still in cache, and a parent collecting its children's results runs
/// before more of the tree is started. The streak bound keeps the queue from starving.
#[derive(Default)]
struct ReadyQueue {
    queue: VecDeque<u32>,
    lifo: Option<u32>,
    streak: u32,
}

impl ReadyQueue {
    fn push_back(&mut self, token: u32) {
        self.queue.push_back(token);
    }

    fn push_front(&mut self, token: u32) {
        self.queue.push_front(token);
    }

    fn push_lifo(&mut self, token: u32) {
        if let Some(previous) = self.lifo.replace(token) {
            self.queue.push_back(previous);
        }
    }

    fn pop(&mut self) -> Option<u32> {
        if self.lifo.is_some() && (self.streak < MAX_LIFO_STREAK || self.queue.is_empty()) {
            self.streak += 1;
            return self.lifo.take();
        }
        self.streak = 0;
        self.queue.pop_front().or_else(|| self.lifo.take())
    }

    fn len(&self) -> usize {
        self.queue.len() + self.lifo.is_some() as usize
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ready queue behind its lock, with its length mirrored outside it: placement asks other
/// shards how busy they are on every spawn and needs no exact answer.
#[derive(Default)]
struct Ready {
    queue: Mutex<ReadyQueue>,
    len: AtomicUsize,
}

impl Ready {
    fn lock(&self) -> ReadyGuard<'_> {
        ReadyGuard { queue: lock(&self.queue), len: &self.len }
    }
}

/// Updates the mirrored length when the lock is released.
struct ReadyGuard<'a> {
    queue: MutexGuard<'a, ReadyQueue>,
    len: &'a AtomicUsize,
}

impl std::ops::Deref for ReadyGuard<'_> {
    type Target = ReadyQueue;
    fn deref(&self) -> &ReadyQueue {
        &self.queue
    }
}

impl std::ops::DerefMut for ReadyGuard<'_> {
    fn deref_mut(&mut self) -> &mut ReadyQueue {
        &mut self.queue
    }
}

impl Drop for ReadyGuard<'_> {
    fn drop(&mut self) {
        self.len.store(self.queue.len(), Ordering::Relaxed);
    }
}

/// Shard state that only the thread running the shard touches. Every access happens while that
/// thread holds the shard's `vm` lock (in a run, or in `shutdown`), so no lock of its own is
/// needed: a `RefCell`'s flag turns an accidental re-entry into a panic. (These were mutexes:
/// two locked instructions per access, several accesses per step.)
struct RunState<T>(RefCell<T>);

// SAFETY: accesses are serialized by the `vm` mutex, whose release and acquire also order them
// across the workers a shard moves between; `T: Send` as the value moves between threads.
unsafe impl<T: Send> Sync for RunState<T> {}

impl<T> RunState<T> {
    fn new(value: T) -> RunState<T> {
        RunState(RefCell::new(value))
    }

    fn borrow_mut(&self) -> std::cell::RefMut<'_, T> {
        self.0.borrow_mut()
    }

    fn borrow(&self) -> std::cell::Ref<'_, T> {
        self.0.borrow()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard lock is already reported by the worker; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl Shard {
    pub fn new(
        kernel: Arc<dyn Kernel>,
        pool: Handle,
        timers: TimerHandle,
        watchdog: &WatchdogHandle,
        chunks: Arc<ChunkCache>,
        config: ShardConfig,
    ) -> mlua::Result<Arc<Shard>> {
        let preempt = Preempt::new(watchdog, config.max_step);
        let core = Arc::new(Core {
            kernel,
            timers,
            pool,
            config,
            chunks,
            sched: ScheduleState::new(),
            ready: Ready::default(),
            admits: Mutex::new(Vec::new()),
            admits_spare: Mutex::new(Vec::new()),
            admitted: AtomicBool::new(false),
            procs: RunState::new(ProcSlots::default()),
            tokens: Mutex::new(Tokens::default()),
            loaded: RunState::new(HashMap::new()),
            raw_loaded: RunState::new(FxHashMap::default()),
            steps_left: AtomicUsize::new(0),
            deadline: RunState::new(None),
            shard: OnceLock::new(),
            current: AtomicU32::new(u32::MAX),
            spawned_in_step: AtomicU32::new(0),
            last_dest: RunState::new(None),
            record_slots: RunState::new(Slab::new()),
            preempt,
        });
        let vm = build_vm(&core)?;
        let shard = Arc::new(Shard { core: core.clone(), vm: Mutex::new(Some(vm)) });
        let _ = core.shard.set(Arc::downgrade(&shard));
        Ok(shard)
    }

    /// A mailbox for a process that will be admitted here: it wakes this shard with a token of
    /// its own, a dense index into the shard's processes. Each admission must bring a mailbox
    /// made here, and each such mailbox belongs to one admission.
    pub fn new_mailbox(&self) -> Arc<Mailbox<Envelope>> {
        let token = lock(&self.core.tokens).take();
        Arc::new(Mailbox::new(self.core.clone(), token))
    }

    /// Takes in a newly spawned process; it starts at the shard's next run.
    pub fn admit(&self, admission: Admission) {
        let token = admission.mailbox.token();
        lock(&self.core.admits).push(admission);
        self.core.admitted.store(true, Ordering::SeqCst);
        self.core.wake(token);
    }

    /// Takes in a process spawned by one of this shard's own processes and runs it next
    /// (last in, first out): a spawn tree is then walked depth-first, which keeps few
    /// processes alive at once, and parent and child stay warm in cache.
    pub fn admit_next(&self, admission: Admission) {
        let token = admission.mailbox.token();
        lock(&self.core.admits).push(admission);
        self.core.admitted.store(true, Ordering::SeqCst);
        self.core.ready.lock().push_front(token);
        if !self.core.runs_here() {
            self.core.schedule_if_idle();
        }
    }

    /// Processes waiting for their turn on this shard.
    pub fn ready_len(&self) -> usize {
        self.core.ready.len.load(Ordering::Relaxed)
    }

    /// Drops the VM and every process in it; their mailboxes close. Breaks the reference cycle
    /// between the shard and its Lua callbacks.
    pub fn shutdown(&self) {
        // A step that cannot yield is ended at its next interrupt point, so the lock comes free.
        self.core.preempt.shut_down();
        let mut vm = lock(&self.vm);
        drop(vm.take());
        // Still under the `vm` lock: `procs` is `RunState`.
        let procs: Vec<Box<LocalProc>> = self.core.procs.borrow_mut().drain().collect();
        // The shard's last destination holds a mailbox, which may hold this Core as its hook.
        *self.core.last_dest.borrow_mut() = None;
        drop(vm);
        for p in procs {
            p.mailbox.close();
        }
        for a in lock(&self.core.admits).drain(..) {
            a.mailbox.close();
        }
    }
}

impl Task for Shard {
    fn run(self: Arc<Self>) {
        let core = &self.core;
        core.sched.begin_run();
        core.preempt.begin_run();
        core.steps_left.store(core.config.batch, Ordering::Relaxed);
        {
            let vm = lock(&self.vm);
            if let Some(vm) = vm.as_ref() {
                *core.deadline.borrow_mut() = None;
                // A failure here is a runtime bug, not a program's: log it and keep the shard
                // schedulable (end_run below must always run, or the shard would never run again).
                let previous = RUNNING_SHARD.with(|running| running.replace(Arc::as_ptr(core)));
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| vm.drive()));
                RUNNING_SHARD.with(|running| running.set(previous));
                match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => tracing::error!(host = %core.config.host, "shard driver failed: {err}"),
                    Err(_) => tracing::error!(host = %core.config.host, "shard driver panicked"),
                }
            }
        }
        core.preempt.end_run();
        let more = !core.ready.lock().is_empty() || !lock(&core.admits).is_empty();
        if core.sched.end_run(more) {
            // A full batch used the slice: go behind others so busy shards cannot starve them
            // (or stay on this worker when none wait).
            core.pool.schedule_yielded(self.clone());
        }
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
        mlua::ffi::lua_touserdata(state, mlua::ffi::lua_upvalueindex(1)) as *const Core
    } else {
        running
    };
    debug_assert!(std::ptr::eq(core, mlua::ffi::lua_touserdata(state, mlua::ffi::lua_upvalueindex(1)) as *const Core));
    &*core
}

impl Core {
    /// The running process's spawns so far in this step, counting this one. Only the thread
    /// running the shard spawns from it: a plain load and store, not a locked increment.
    fn next_in_burst(&self) -> u32 {
        let n = self.spawned_in_step.load(Ordering::Relaxed);
        self.spawned_in_step.store(n.saturating_add(1), Ordering::Relaxed);
        n
    }

    /// True on the thread running this shard, inside its run: what it queues now is taken by
    /// the same run (`R.next` looks at the ready queue and admissions until the slice ends, and
    /// the run's end requeues the shard if any is left), so it needs no notify. A notify would
    /// mark the running shard as woken, and its run would end by queueing it again for nothing,
    /// where an idle worker would steal it: the shard would move to the other core.
    fn runs_here(&self) -> bool {
        RUNNING_SHARD.with(|running| std::ptr::eq(running.get(), self))
    }

    /// Schedules the shard if it was idle (a running or queued shard sees the new work).
    fn schedule_if_idle(&self) {
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

fn build_vm(core: &Arc<Core>) -> mlua::Result<Vm> {
    let lua = Lua::new();
    let r = lua.create_table()?;
    register_callbacks(&lua, &r, core)?;
    // Builtins are never replaced, so calls like `type` and `setmetatable` may take Luau's fast
    // paths (they are only taken in a "safeenv" environment).
    lua.globals().set_safeenv(true);
    // Compiled once per runtime, like every chunk.
    let prelude_code = core.chunks.bytecode(&Arc::from(PRELUDE));
    let prelude: Table = lua.load(&prelude_code[..]).set_name(preempt::RUNTIME_CHUNK).call(r.clone())?;

    let globals = lua.globals();
    globals.set("process", prelude.get::<Table>("process")?)?;
    globals.set("channel", prelude.get::<Table>("channel")?)?;
    let coroutine: Table = globals.get("coroutine")?;
    coroutine.set("spawn", prelude.get::<Function>("coroutine_spawn")?)?;
    // A wait or a preemption inside a coroutine a program made is passed up to the coroutine
    // the driver runs (see `settle_resume` in the prelude).
    coroutine.set("resume", prelude.get::<Function>("coroutine_resume")?)?;
    coroutine.set("wrap", prelude.get::<Function>("coroutine_wrap")?)?;
    coroutine.set("close", prelude.get::<Function>("coroutine_close")?)?;
    let make_require: Function = prelude.get("make_require")?;
    globals.set("require", make_require.call::<Function>(lua.create_table()?)?)?;
    for pair in prelude.get::<Table>("casts")?.pairs::<String, Function>() {
        let (name, cast) = pair?;
        globals.set(name, cast)?;
    }
    let print_fn: Function = prelude.get("print")?;
    globals.set("print", print_fn)?;
    globals.set("debug", prelude.get::<Table>("debug")?)?;
    let string: Table = globals.get("string")?;
    string.set("rep", prelude.get::<Function>("string_rep")?)?;
    let os: Table = globals.get("os")?;
    os.set("time", prelude.get::<Function>("os_time")?)?;
    // The random generator's state is the VM's, shared by its processes: none may seed it.
    let math: Table = globals.get("math")?;
    math.set("randomseed", lua.create_function(|_, _: mlua::MultiValue| Ok(()))?)?;
    // `gcinfo` and `collectgarbage` report on (or act on) the heap of every process of the shard.
    for name in ["getfenv", "setfenv", "loadstring", "load", "dofile", "loadfile", "collectgarbage", "gcinfo"] {
        globals.set(name, LuaValue::Nil)?;
    }
    let env_mt = lua.create_table()?;
    env_mt.set("__index", globals.clone())?;
    env_mt.set("__metatable", false)?;
    let drive: Function = prelude.get("drive")?;

    lua.sandbox(true)?;
    env_mt.set_readonly(true);
    // Every table the processes of this shard share, frozen deep: the globals and libraries,
    // the string metatable (and what it reaches).
    let deep_freeze: Function = prelude.get("deep_freeze")?;
    deep_freeze.call::<()>(globals.clone())?;
    let string_mt: Option<Table> = lua.load("return getmetatable('')").set_name("=wisp").call(())?;
    deep_freeze.call::<()>(string_mt)?;
    // Handles' metatables, for the payload copy to refuse them (see `convert::raw_table`).
    crate::convert::install_handle_types(&lua, prelude.get::<Table>("handle_types")?)?;
    crate::preempt::inherit_thread_marks(&lua)?;
    core.preempt.watch_vm(&lua)?;
    let config = &core.config;
    lua.gc_set_mode(mlua::prelude::LuaGcMode::Incremental(
        mlua::prelude::LuaGcIncParams::default()
            .goal(config.gc_goal)
            .step_multiplier(config.gc_step_multiplier)
            .step_size(config.gc_step_size_kb),
    ));

    crate::message::install(&lua, Arc::as_ptr(core))?;
    let parked: LuaValue = prelude.get("parked")?;
    let recv = raw_callback(&lua, core, raw_recv, c"recv", vec![parked])?;
    prelude.get::<Function>("set_recv")?.call::<()>(recv)?;
    let next = raw_callback(&lua, core, raw_next, c"next", Vec::new())?;
    // What R.next works on (see NEXT_BODY), in that order: the driver's `body`, the environment
    // metatable, the chunk table, the driver's process records, the record template, and the table the sandbox made read-only (not the main thread's own writable
    // global table, which the sandbox put in front of it).
    let tables = [
        LuaValue::Function(prelude.get("body")?),
        LuaValue::Table(env_mt),
        LuaValue::Table(lua.create_table()?),
        LuaValue::Table(prelude.get("procs")?),
        LuaValue::Table(record_template(&lua)?),
        LuaValue::Table(globals),
    ];
    let set_next: Function = prelude.get("set_next")?;
    set_next
        .call::<()>(Variadic::from_iter(std::iter::once(LuaValue::Function(next.clone())).chain(tables.clone())))?;
    let slots: Vec<LuaValue> = std::iter::once(LuaValue::Function(next))
        .chain(tables)
        .chain(std::iter::once(LuaValue::Function(drive)))
        .collect();
    debug_assert_eq!(slots.len() as c_int, DRIVER_DRIVE);
    // SAFETY: the closure runs on the VM's main thread with the driver thread's slots as its
    // arguments: they move to the new thread, which the registry reference keeps alive, and the
    // integer left is exec_raw's result.
    let (driver, driver_ref) = unsafe {
        use mlua::ffi;
        let mut driver = 0;
        let driver_ref = lua.exec_raw::<c_int>(Variadic::from_iter(slots), |state| {
            let thread = ffi::lua_newthread(state);
            let r = ffi::lua_ref(state, -1);
            ffi::lua_pop(state, 1);
            ffi::lua_xmove(state, thread, DRIVER_DRIVE);
            driver = thread as usize;
            ffi::lua_pushinteger(state, r as ffi::lua_Integer);
        })?;
        (driver, driver_ref)
    };
    Ok(Vm { driver, _driver_ref: driver_ref, _lua: lua, core: core.clone() })
}

/// The driver thread's stack: `R.next` in slot 1, the tables it works on in `NEXT_BODY..=
/// NEXT_GLOBALS` (slots 2 to 7), and the prelude's `drive` in this slot.
const DRIVER_DRIVE: c_int = NEXT_GLOBALS + 1;

impl Vm {
    /// One run: calls `R.next` with nothing to report, on the driver thread, and the Lua driver
    /// only when it hands a process over. A run that resumes parked processes from Rust, the
    /// common run when processes of different shards talk, then runs no driver code, and nothing
    /// goes through mlua (whose `Function::call` moves a reference over from its reference
    /// thread and sets up an error handler and a guard).
    fn drive(&self) -> Result<(), String> {
        use mlua::ffi;
        let thread = self.driver as *mut ffi::lua_State;
        // SAFETY: the caller holds the shard's `vm` lock, so nothing else uses this VM; the
        // driver thread lives as long as `_lua` (its registry reference is never dropped), holds
        // its slots (see DRIVER_DRIVE) and is left with them alone.
        unsafe {
            let top = ffi::lua_gettop(thread);
            debug_assert_eq!(top, DRIVER_DRIVE);
            if ffi::lua_checkstack(thread, 1 + NEXT_ARGS + NEXT_TABLES) == 0 {
                return Err("out of Lua stack".into());
            }
            ffi::lua_pushvalue(thread, 1);
            ffi::lua_pushnumber(thread, -1.0);
            ffi::lua_pushnumber(thread, f64::from(S_WAITING));
            ffi::lua_pushboolean(thread, 0);
            ffi::lua_pushnil(thread);
            for slot in NEXT_BODY..=NEXT_GLOBALS {
                ffi::lua_pushvalue(thread, slot);
            }
            let mut status = ffi::lua_pcall(thread, NEXT_ARGS + NEXT_TABLES, ffi::LUA_MULTRET, 0);
            let handed = ffi::lua_gettop(thread) - top;
            if status == ffi::LUA_OK && handed > 0 {
                ffi::lua_pushvalue(thread, DRIVER_DRIVE);
                ffi::lua_insert(thread, top + 1);
                status = ffi::lua_pcall(thread, handed, 0, 0);
            }
            let outcome = if status == ffi::LUA_OK { Ok(()) } else { Err(error_text_at(thread, -1)) };
            ffi::lua_settop(thread, top);
            outcome
        }
    }
}

/// A process record's fixed fields, its first array slots (keep in sync with the prelude's
/// `TOKEN, MAIN, RECV, INBOX`).
const RECORD_TOKEN: mlua::ffi::lua_Integer = 1;
const RECORD_MAIN: mlua::ffi::lua_Integer = 2;
const RECORD_RECV: mlua::ffi::lua_Integer = 3;
const RECORD_FIELDS: usize = 4;

/// A process record's template: its fixed fields in an array part of exactly their size, so a
/// record is a copy of it with no hash part.
fn record_template(lua: &Lua) -> mlua::Result<Table> {
    let template = lua.create_table_with_capacity(RECORD_FIELDS, 0)?;
    for field in 1..=RECORD_FIELDS {
        template.raw_set(field, false)?;
    }
    Ok(template)
}

/// The token of the process whose code runs now: Rust's own record (set by `R.next` before any
/// of the process's code runs), never a value a program could make.
fn running(core: &Core) -> u32 {
    core.current.load(Ordering::Relaxed)
}

/// Looks up a process of this shard by token.
fn with_proc<R>(core: &Core, token: u32, f: impl FnOnce(&mut LocalProc) -> R) -> mlua::Result<R> {
    let mut procs = core.procs.borrow_mut();
    match procs.get_mut(&token) {
        Some(p) => Ok(f(p)),
        None => Err(mlua::Error::runtime("process is not running")),
    }
}

fn parse_dest<'a>(core: &Core, dest: &'a str) -> Dest<'a> {
    if dest.starts_with('{') {
        match core.kernel.parse_pid(dest) {
            Some(pid) => Dest::Pid(pid),
            None => Dest::Name(dest),
        }
    } else {
        Dest::Name(dest)
    }
}

fn args_to_values(lua: &Lua, args: &[LuaValue]) -> Result<Vec<Value>, wisp_core::ValueError> {
    args.iter().map(|v| lua_to_value(lua, v)).collect()
}

/// A number of nanoseconds or a Go-style duration string; zero or negative is refused.
fn parse_delay(value: &LuaValue) -> mlua::Result<Duration> {
    let nanos = match value {
        LuaValue::Integer(n) => *n as f64,
        LuaValue::Number(n) => *n,
        LuaValue::String(s) => {
            let text = s.to_str()?.to_string();
            return match wisp_registry::parse_go_duration(&text) {
                Ok(d) if !d.is_zero() => Ok(d),
                Ok(_) => Err(mlua::Error::runtime(format!("duration must be positive: {text}"))),
                Err(e) => Err(mlua::Error::runtime(format!("bad duration `{text}`: {e}"))),
            };
        }
        other => return Err(mlua::Error::runtime(format!("expected a duration, got {}", other.type_name()))),
    };
    if nanos.is_nan() || nanos <= 0.0 || nanos.is_infinite() {
        return Err(mlua::Error::runtime("duration must be positive"));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

fn register_callbacks(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    // `send` is the hottest callback: a plain C function, not an mlua closure (see `raw_send`).
    r.set("send", raw_callback(lua, core, raw_send, c"send", Vec::new())?)?;
    r.set("self", raw_callback(lua, core, raw_self, c"self", Vec::new())?)?;

    // `R.spawn[flags]` is `process.spawn*` itself (errors name its caller); `R.spawn.exec`, a
    // monitored spawn for `process.exec`, whose errors name exec's caller.
    let spawners = lua.create_table()?;
    for flags in 0..4u8 {
        let upvalues = vec![LuaValue::Number(flags as f64), LuaValue::Number(1.0)];
        spawners.raw_set(flags, raw_callback(lua, core, raw_spawn, c"spawn", upvalues)?)?;
    }
    let exec_upvalues = vec![LuaValue::Number(1.0), LuaValue::Number(2.0)];
    spawners.raw_set("exec", raw_callback(lua, core, raw_spawn, c"spawn", exec_upvalues)?)?;
    r.set("spawn", spawners)?;
    let c = core.clone();
    r.set(
        "spawn_with",
        lua.create_function(
            move |lua, (flags, opts, entry, host, args): (u8, Option<Table>, String, String, Variadic<LuaValue>)| {
                let token = running(&c);
                let (parent, parent_context, actor, scope) =
                    with_proc(&c, token, |p| (p.pid, p.context.clone(), p.actor.clone(), p.scope.clone()))?;
                let fail = |e: String| mlua::Error::runtime(format!("process.spawn: {e}"));
                let args = args_to_values(lua, &args).map_err(|e| fail(e.to_string()))?;
                let flags = SpawnFlags { monitor: flags & 1 != 0, link: flags & 2 != 0 };
                let mut request = SpawnRequest {
                    parent,
                    entry: &entry,
                    host: &host,
                    args,
                    flags,
                    name: None,
                    context: parent_context,
                    messages: Vec::new(),
                    actor,
                    scope,
                    burst: c.next_in_burst(),
                    parent_group: c.config.group,
                };
                if let Some(opts) = opts {
                    request.name = opts.get("name")?;
                    if let Some(context) = opts.get::<Option<Table>>("context")? {
                        let added = lua_to_value(lua, &LuaValue::Table(context)).map_err(|e| fail(e.to_string()))?;
                        request.context = Some(Arc::new(merge_context(request.context.as_deref(), added)));
                    }
                    for (field, slot) in [("actor", &mut request.actor), ("scope", &mut request.scope)] {
                        if let Some(t) = opts.get::<Option<Table>>(field)? {
                            *slot = Some(Arc::new(
                                lua_to_value(lua, &LuaValue::Table(t)).map_err(|e| fail(e.to_string()))?,
                            ));
                        }
                    }
                    if let Some(messages) = opts.get::<Option<Table>>("messages")? {
                        for m in messages.sequence_values::<Table>() {
                            let m = m?;
                            let topic: String = m.get(1)?;
                            let payloads: Variadic<LuaValue> =
                                m.get::<Table>(2)?.sequence_values().collect::<mlua::Result<_>>()?;
                            let payloads = args_to_values(lua, &payloads).map_err(|e| fail(e.to_string()))?;
                            request.messages.push((topic.into(), payloads));
                        }
                    }
                }
                match c.kernel.spawn(request) {
                    Ok(child) => {
                        record_child(&c, token, flags, child);
                        Ok((Some(c.kernel.render_pid(child)), None))
                    }
                    Err(e) => Ok((None, Some(e.to_string()))),
                }
            },
        )?,
    )?;

    let c = core.clone();
    r.set(
        "context",
        lua.create_function(move |lua, ()| {
            let context = with_proc(&c, running(&c), |p| p.context.clone())?;
            match context {
                Some(v) => value_to_lua(lua, &v),
                None => Ok(LuaValue::Table(lua.create_table()?)),
            }
        })?,
    )?;
    let c = core.clone();
    r.set(
        "security",
        lua.create_function(move |lua, ()| {
            let (actor, scope) = with_proc(&c, running(&c), |p| (p.actor.clone(), p.scope.clone()))?;
            let to_lua = |v: Option<Arc<Value>>| match v {
                Some(v) => value_to_lua(lua, &v),
                None => Ok(LuaValue::Nil),
            };
            Ok((to_lua(actor)?, to_lua(scope)?))
        })?,
    )?;
    let c = core.clone();
    r.set(
        "can",
        lua.create_function(move |_, (action, resource): (String, String)| {
            let (actor, scope) = with_proc(&c, running(&c), |p| (p.actor.clone(), p.scope.clone()))?;
            Ok(crate::security::can(actor.as_deref(), scope.as_deref(), &action, &resource))
        })?,
    )?;
    let c = core.clone();
    r.set("entry", lua.create_function(move |_, ()| with_proc(&c, running(&c), |p| p.code.entry.clone()))?)?;
    r.set(
        "uuid",
        lua.create_function(|_, version: u8| {
            Ok(match version {
                7 => uuid::Uuid::now_v7(),
                _ => uuid::Uuid::new_v4(),
            }
            .to_string())
        })?,
    )?;

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
            let outcome = c.kernel.signal(me, target, signal.clone());
            let reached = match (&outcome, target) {
                (Ok(pid), _) => Some(*pid),
                (Err(_), Dest::Pid(pid)) => Some(pid),
                (Err(_), Dest::Name(_)) => None,
            };
            with_proc(&c, token, |p| {
                let supervision = &mut p.extra_mut().supervision;
                match (&signal, reached) {
                    (Signal::Monitor, Some(pid)) => supervision.monitor(pid),
                    (Signal::Demonitor, Some(pid)) => supervision.demonitor(pid),
                    (Signal::Link, Some(pid)) if outcome.is_ok() => supervision.link(pid),
                    (Signal::Unlink, Some(pid)) => supervision.unlink(pid),
                    _ => {}
                }
            })?;
            match (outcome, &signal) {
                (Ok(_), _) => Ok((Some(true), None)),
                (Err(_), Signal::Monitor) if reached.is_some() => {
                    // Monitoring a dead process reports its end at once.
                    let from = reached.unwrap_or(me);
                    c.kernel
                        .deliver(me, Envelope::Event(Event::Exit { from, result: ExitResult::Error("noproc".into()) }));
                    Ok((Some(true), None))
                }
                (Err(_), Signal::Demonitor | Signal::Unlink) => Ok((Some(true), None)),
                (Err(e), _) => Ok((None, Some(e.to_string()))),
            }
        })?,
    )?;

    let c = core.clone();
    r.set(
        "register",
        lua.create_function(move |_, (name, pid): (String, Option<String>)| {
            let me = with_proc(&c, running(&c), |p| p.pid)?;
            let target = match pid {
                None => me,
                Some(text) => match c.kernel.parse_pid(&text) {
                    Some(pid) => pid,
                    None => return Ok((None, Some(format!("not a PID: {text}")))),
                },
            };
            Ok(match c.kernel.register_name(me, &name, target) {
                Ok(()) => (Some(true), None),
                Err(e) => (None, Some(e.to_string())),
            })
        })?,
    )?;
    let c = core.clone();
    r.set(
        "lookup",
        lua.create_function(move |_, name: String| {
            Ok(match c.kernel.lookup_name(&name) {
                Some(pid) => (Some(c.kernel.render_pid(pid)), None),
                None => (None, Some(format!("no process registered as `{name}`"))),
            })
        })?,
    )?;
    let c = core.clone();
    r.set(
        "unregister",
        lua.create_function(move |_, name: String| {
            let me = with_proc(&c, running(&c), |p| p.pid)?;
            Ok(c.kernel.unregister_name(me, &name))
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

    let c = core.clone();
    r.set(
        "timer",
        lua.create_function(move |_, delay: LuaValue| {
            let delay = parse_delay(&delay)?;
            let timers = c.timers.clone();
            with_proc(&c, running(&c), move |p| {
                let extra = p.extra_mut();
                extra.next_timer += 1;
                let id = extra.next_timer;
                let mailbox = p.mailbox.clone();
                let timer = timers.after(
                    delay,
                    Box::new(move || {
                        // A closed mailbox means the process ended: nothing to do.
                        let _ = mailbox.push(Envelope::Timer(id));
                    }),
                );
                p.extra_mut().timers.push((id, timer));
                id
            })
        })?,
    )?;
    let c = core.clone();
    r.set(
        "cancel_timer",
        lua.create_function(move |_, id: u64| {
            let timer = with_proc(&c, running(&c), |p| {
                let timers = &mut p.extra_mut().timers;
                let i = timers.iter().position(|(t, _)| *t == id)?;
                Some(timers.swap_remove(i).1)
            })
            .ok()
            .flatten();
            if let Some(timer) = timer {
                c.timers.cancel(timer);
            }
            Ok(())
        })?,
    )?;
    r.set("now", lua.create_function(|_, ()| Ok(now_seconds()))?)?;

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

    let c = core.clone();
    r.set(
        "require",
        lua.create_function(move |lua, name: String| {
            let code = with_proc(&c, running(&c), |p| p.code.clone())?;
            if let Some(library) = code.imports.get(&name) {
                let chunk = load_chunk(lua, &c, library)?;
                // Clone the chunk on the calling coroutine so the library sees the process's globals.
                // SAFETY: the only argument is a Lua function, replaced on the stack by its clone.
                let clone: Function = unsafe {
                    lua.exec_raw(chunk, |state| {
                        mlua::ffi::lua_clonefunction(state, -1);
                        mlua::ffi::lua_remove(state, -2);
                    })?
                };
                return Ok(("library", Some(clone)));
            }
            if code.modules.iter().any(|m| m == &name) && BUILTIN_MODULES.contains(&name.as_str()) {
                return Ok(("builtin", None));
            }
            Err(mlua::Error::runtime(format!("module '{name}' is not available to {}", code.entry)))
        })?,
    )?;

    let c = core.clone();
    r.set(
        "print",
        lua.create_function(move |_, line: mlua::LuaString| {
            let pid = with_proc(&c, running(&c), |p| p.pid)?;
            c.kernel.print(pid, &line.to_string_lossy());
            Ok(())
        })?,
    )?;

    let c = core.clone();
    r.set(
        "io",
        lua.create_function(move |_, (op, args): (String, Variadic<LuaValue>)| {
            let pid = with_proc(&c, running(&c), |p| p.pid)?;
            let Some(term) = c.kernel.terminal(pid) else {
                return Err(mlua::Error::runtime("io is only available in the terminal host"));
            };
            let text = || -> mlua::Result<Vec<u8>> {
                let mut out = Vec::new();
                for (i, a) in args.iter().enumerate() {
                    if i > 0 && op == "print" {
                        out.push(b'\t');
                    }
                    match a {
                        LuaValue::String(s) => out.extend_from_slice(&s.as_bytes()),
                        other => out.extend_from_slice(other.to_string()?.as_bytes()),
                    }
                }
                Ok(out)
            };
            match op.as_str() {
                "write" => term.write(&text()?),
                "print" => {
                    let mut line = text()?;
                    line.push(b'\n');
                    term.write(&line);
                }
                "flush" => term.flush(),
                "readline" => return Ok(term.read_line()),
                other => return Err(mlua::Error::runtime(format!("io: unknown operation {other}"))),
            }
            Ok(None)
        })?,
    )?;
    Ok(())
}

fn load_chunk(lua: &Lua, core: &Core, code: &LuaCode) -> mlua::Result<Function> {
    let mut loaded = core.loaded.borrow_mut();
    if let Some((source, f)) = loaded.get(&code.entry) {
        if Arc::ptr_eq(source, &code.source) {
            return Ok(f.clone());
        }
    }
    let bytecode = core.chunks.bytecode(&code.source);
    let f = lua.load(&bytecode[..]).set_name(format!("={}", code.chunk_name)).into_function()?;
    loaded.insert(code.entry.clone(), (code.source.clone(), f.clone()));
    Ok(f)
}

/// A raw C callback of this shard: `f` finds the shard's Core in its first upvalue and the
/// given tables in the next ones.
fn raw_callback(
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

/// `process.send(dest, topic, ...)` as a raw C function: reads its arguments straight off the
/// stack and copies the payloads with the raw API, without mlua's per-call wrapping.
unsafe extern "C-unwind" fn raw_send(state: *mut mlua::ffi::lua_State) -> c_int {
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = core_of(state);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| send_from_stack(state, core)));
    // `process.send` is this function: level 1 is the program that called it.
    complete(state, outcome, Some(1))
}

unsafe fn send_from_stack(state: *mut mlua::ffi::lua_State, core: &Core) -> Result<Reply, String> {
    use mlua::ffi;
    const DEST: &str = "process.send: destination must be a PID or a name";
    let top = ffi::lua_gettop(state);
    let token = core.current.load(Ordering::Relaxed);
    if ffi::lua_type(state, 1) != ffi::LUA_TSTRING {
        text_arg(state, 1, DEST)?;
    }
    let dest_bytes = crate::convert::raw_bytes(state, 1);
    const TOPIC: &str = "process.send: topic must be a string";
    if ffi::lua_type(state, 2) != ffi::LUA_TSTRING {
        text_arg(state, 2, TOPIC)?;
    }
    let topic_bytes = crate::convert::raw_bytes(state, 2);
    let mut payloads = wisp_core::Payloads::with_capacity((top - 2).max(0) as usize);
    let mut path = crate::convert::Copier::new();
    for idx in 3..=top {
        let value = crate::convert::raw_to_value(state, idx, &mut path).map_err(|e| format!("process.send: {e}"))?;
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
                let topic_text = text_arg(state, 2, TOPIC)?;
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
                let text = text_arg(state, 1, DEST)?;
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

fn send_reply(sent: Result<(), Undelivered>) -> Reply {
    match sent {
        Ok(()) => Reply::True,
        Err(undelivered) => Reply::NilErr(undelivered.reason.to_string()),
    }
}

/// A PID string a process (or any process of the shard) sent to last: parsed, with the mailbox
/// the kernel gave for it.
#[derive(Clone)]
struct KnownDest {
    text: Box<str>,
    pid: Pid,
    /// `None` when the kernel had no mailbox to give: the send then goes through the kernel.
    mailbox: Option<Arc<Mailbox<Envelope>>>,
}

impl KnownDest {
    fn is(&self, text: &[u8]) -> bool {
        self.text.as_bytes() == text
    }

    /// Sends `message` from `from` to this PID: straight into its mailbox when there is one (a
    /// closed one means the process has ended: the same answer the kernel gives).
    fn push(&self, core: &Core, from: Pid, message: Message) -> Reply {
        let Some(mailbox) = &self.mailbox else {
            return send_reply(core.kernel.send(from, Dest::Pid(self.pid), message));
        };
        match mailbox.push(Envelope::Message(message)) {
            Ok(()) => Reply::True,
            Err(_) => Reply::NilErr(SendError::NoProcess(core.kernel.render_pid(self.pid)).to_string()),
        }
    }
}

/// The UTF-8 string argument at `idx`, borrowed from the Lua stack (which holds it for the whole
/// call); otherwise `<expected>, got <what it is>`.
unsafe fn text_arg<'a>(state: *mut mlua::ffi::lua_State, idx: c_int, expected: &str) -> Result<&'a str, String> {
    if mlua::ffi::lua_type(state, idx) != mlua::ffi::LUA_TSTRING {
        return Err(format!("{expected}, got {}", type_name(state, idx)));
    }
    let bytes = crate::convert::raw_bytes(state, idx);
    // Names are nearly always ASCII, which is checked a word at a time, where UTF-8 validation
    // walks a short string byte by byte (twice per spawn: the entry and the host).
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Ok(std::str::from_utf8_unchecked(bytes));
    }
    std::str::from_utf8(bytes).map_err(|_| format!("{expected}, got bytes that are not UTF-8"))
}

/// The Lua type name of the value at `idx`, for error messages.
unsafe fn type_name(state: *mut mlua::ffi::lua_State, idx: c_int) -> String {
    let name = mlua::ffi::lua_typename(state, mlua::ffi::lua_type(state, idx));
    if name.is_null() {
        return "no value".into();
    }
    std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
}

/// A context table: the parent's keys overlaid with those a spawner added.
fn merge_context(parent: Option<&Value>, added: Value) -> Value {
    let (Some(Value::Table(base)), Value::Table(extra)) = (parent, &added) else {
        return added;
    };
    let mut merged = (**base).clone();
    for (key, value) in &extra.map {
        match merged.map.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.clone(),
            None => merged.map.push((key.clone(), value.clone())),
        }
    }
    Value::Table(Box::new(merged))
}

/// Ends a process on the Rust side: stops its timers, closes its mailbox, hands it to the kernel.
fn finish(core: &Core, p: LocalProc, result: ExitResult) {
    for (_, timer) in &p.extra().timers {
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

/// Pushes a payload as a fresh Lua value owned by the receiving process.
///
/// # Safety
/// `state` must be a live Lua state with room for two more values per level of `value`
/// (checked here); no Lua code runs.
unsafe fn push_value(state: *mut mlua::ffi::lua_State, value: &Value) -> Result<(), String> {
    use mlua::ffi;
    match value {
        Value::Nil => ffi::lua_pushnil(state),
        Value::Bool(b) => ffi::lua_pushboolean(state, *b as c_int),
        Value::Number(n) => ffi::lua_pushnumber(state, *n),
        Value::Str(s) => push_bytes(state, s),
        Value::Table(t) => {
            if ffi::lua_checkstack(state, 3) == 0 {
                return Err("payload too deep to rebuild".into());
            }
            ffi::lua_createtable(state, t.array.len() as c_int, t.map.len() as c_int);
            for (i, v) in t.array.iter().enumerate() {
                push_value(state, v)?;
                ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
            }
            for (k, v) in &t.map {
                match k {
                    Key::Bool(b) => ffi::lua_pushboolean(state, *b as c_int),
                    Key::Number(n) => ffi::lua_pushnumber(state, *n),
                    Key::Str(s) => push_bytes(state, s),
                }
                push_value(state, v)?;
                ffi::lua_rawset(state, -3);
            }
        }
    }
    Ok(())
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
unsafe fn set_field(state: *mut mlua::ffi::lua_State, key: &str) {
    push_str(state, key);
    mlua::ffi::lua_insert(state, -2);
    mlua::ffi::lua_rawset(state, -3);
}

/// Pushes an event as the table a Lua program sees on `events()`.
unsafe fn push_event(state: *mut mlua::ffi::lua_State, core: &Core, event: &Event) -> Result<(), String> {
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

/// Pushes the payloads of a message: one value, or an array when there are several.
/// Returns whether it was several.
pub(crate) unsafe fn push_payloads(state: *mut mlua::ffi::lua_State, payloads: &[Value]) -> Result<bool, String> {
    match payloads {
        [] => {
            mlua::ffi::lua_pushnil(state);
            Ok(false)
        }
        [one] => {
            push_value(state, one)?;
            Ok(false)
        }
        many => {
            mlua::ffi::lua_createtable(state, many.len() as c_int, 0);
            for (i, v) in many.iter().enumerate() {
                push_value(state, v)?;
                mlua::ffi::lua_rawseti(state, -2, (i + 1) as mlua::ffi::lua_Integer);
            }
            Ok(true)
        }
    }
}

/// How one envelope ends up: four values pushed for the driver, nothing (applied here), or a
/// kill (four values pushed, and the step stops there).
enum Pushed {
    Item,
    Nothing,
    Kill,
}

/// Turns one envelope into the four values of a driver item on the stack, or applies it here.
unsafe fn push_item(
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
unsafe extern "C-unwind" fn raw_next(state: *mut mlua::ffi::lua_State) -> c_int {
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

/// An ended process's result, read from the stack at `idx`.
unsafe fn result_at(state: *mut mlua::ffi::lua_State, is_error: bool, idx: c_int) -> ExitResult {
    if !is_error {
        let mut path = crate::convert::Copier::new();
        return ExitResult::Value(
            crate::convert::raw_to_value(state, idx, &mut path).unwrap_or_else(|e| Value::from(e.to_string())),
        );
    }
    ExitResult::Error(error_text_at(state, idx))
}

/// The text of the error object at `idx`: the string itself, or what kind of value it is.
unsafe fn error_text_at(state: *mut mlua::ffi::lua_State, idx: c_int) -> String {
    if mlua::ffi::lua_type(state, idx) == mlua::ffi::LUA_TSTRING {
        return String::from_utf8_lossy(crate::convert::raw_bytes(state, idx)).into_owned();
    }
    format!("error object is a {}", type_name(state, idx))
}

unsafe fn next_onto_stack(state: *mut mlua::ffi::lua_State, core: &Core) -> Result<c_int, String> {
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
unsafe fn resume_parked(
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

/// A process that has nothing to do waits for its mailbox; if something is already there, it
/// goes back in the ready queue.
fn wait_or_requeue(core: &Core, token: u32) {
    let pending = core.procs.borrow_mut().get(&token).is_some_and(|p| p.stash.is_some() || !p.mailbox.prepare_wait());
    if pending {
        core.ready.lock().push_back(token);
    }
}

/// `R.recv()`: the running process's next inbox message, straight from its mailbox. Returns the
/// message (the driver's `CURRENT` is this process: nothing else ran since it was set); nothing
/// when the driver must take over (an event,
/// signal or listener message comes first, or a coroutine other than a lone main coroutine
/// waits); or parks the main coroutine: it yields the PARKED marker and is resumed by `R.next`
/// with the next inbox message and the process's record (the driver's `CURRENT` from then on,
/// given by Rust so no table a program makes can pass for it). Upvalue: the PARKED marker.
unsafe extern "C-unwind" fn raw_recv(state: *mut mlua::ffi::lua_State) -> c_int {
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

enum Received {
    /// The message is pushed.
    Message,
    Nothing,
    Parked,
}

unsafe fn recv_onto_stack(state: *mut mlua::ffi::lua_State, core: &Core) -> Result<Received, String> {
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

/// `R.self()`: the PID string of the running process (rendered when first asked for).
unsafe extern "C-unwind" fn raw_self(state: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = core_of(state);
    let pid = core.procs.borrow_mut().get(&core.current.load(Ordering::Relaxed)).map(|p| p.pid);
    let text = pid.map(|pid| core.kernel.render_pid(pid));
    match text {
        Some(text) => push_str(state, &text),
        None => ffi::lua_pushnil(state),
    }
    1
}

/// Moves newly admitted processes into the shard's table.
fn admit_pending(core: &Core) {
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

/// Steps between two looks at the clock.
const CLOCK_EVERY: usize = 8;

/// Calls of [`slice_over`] in a slice before its first look at the clock: a run that hands
/// one message to one process calls it twice (the second finds nothing else ready).
const FIRST_LOOK: usize = 2;

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
fn slice_over(core: &Core, after_long_step: bool) -> bool {
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

/// What the driver passes `R.next` after the previous step's outcome (its arguments 5 to 11,
/// numbered by their slots on the driver thread, see `DRIVER_DRIVE`): the driver's `body`, the
/// environment metatable, the table of loaded chunks by entry, the driver's table of process
/// records, the template of a process record and the shard's
/// read-only globals.
const NEXT_BODY: c_int = 2;
const NEXT_ENV_MT: c_int = 3;
const NEXT_CHUNKS: c_int = 4;
const NEXT_PROCS: c_int = 5;
const NEXT_RECORD_TEMPLATE: c_int = 6;
const NEXT_GLOBALS: c_int = 7;

/// `R.next`'s arguments: the previous step's record slot, status, and exit (is_error, value).
const NEXT_ARGS: c_int = 4;
/// The driver's tables `NEXT_BODY..=NEXT_GLOBALS`, passed after the arguments.
const NEXT_TABLES: c_int = NEXT_GLOBALS - NEXT_BODY + 1;

/// Where `R.next` finds the driver's table `table` during a call. They are arguments, not
/// upvalues: a stack slot is reached directly while an upvalue index goes through Luau's
/// out-of-line pseudo-index lookup, a dozen times per process started (copying them to the
/// stack on every call was about 8% of the instructions of a message between shards). Only code
/// running inside `R.next` (on its `state`) may use these slots.
const fn next_slot(table: c_int) -> c_int {
    NEXT_ARGS + table - NEXT_BODY + 1
}

/// Starts a newly admitted process: makes its coroutine and the driver's record of it, and runs
/// it up to its first wait. Like [`resume_parked`], returns `None` when the step is over (it
/// parked on its inbox, returned a value, or its code did not load) and otherwise the values
/// pushed for the driver (`token, false, ok, results...`).
unsafe fn start_process(state: *mut mlua::ffi::lua_State, core: &Core, token: u32) -> Result<Option<c_int>, String> {
    use mlua::ffi;
    let base = ffi::lua_gettop(state);
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
        push_chunk(state, core, &p.code).map(|chunk| (chunk, args))
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
    let co = ffi::lua_newthread(state);
    if ffi::lua_checkstack(co, 4) == 0 {
        return Err("out of Lua stack".into());
    }
    if pushed.own_globals {
        // A global table of its own, reading through to the shard's globals.
        ffi::lua_createtable(state, 0, 0);
        ffi::lua_pushvalue(state, next_slot(NEXT_ENV_MT));
        ffi::lua_setmetatable(state, -2);
        ffi::lua_setsafeenv(state, -1, 1);
    } else {
        // Code that never assigns a global reads the shard's read-only globals directly (the
        // environment it was loaded with): no table, no clone of the chunk, and its functions
        // without upvalues are shared (`DUPCLOSURE` reuses a closure whose environment
        // matches).
        ffi::lua_pushvalue(state, next_slot(NEXT_GLOBALS));
    }
    ffi::lua_xmove(state, co, 1);
    ffi::lua_replace(co, ffi::LUA_GLOBALSINDEX);
    // Marks it a process coroutine of this shard (see `preempt.rs`).
    ffi::lua_setthreaddata(co, Arc::as_ptr(&core.preempt) as *mut std::ffi::c_void);
    // The driver's record (see `make_ready` in the prelude for the fields that come later), a
    // copy of a template whose array part holds the fixed fields.
    ffi::lua_clonetable(state, next_slot(NEXT_RECORD_TEMPLATE));
    let record = base + 3;
    ffi::lua_pushnumber(state, token as f64);
    ffi::lua_rawseti(state, record, RECORD_TOKEN);
    ffi::lua_pushvalue(state, base + 2);
    ffi::lua_rawseti(state, record, RECORD_MAIN);
    let record_slot = core.record_slots.borrow_mut().insert(token) as u32 + 1;
    ffi::lua_pushvalue(state, record);
    ffi::lua_rawseti(state, next_slot(NEXT_PROCS), record_slot as ffi::lua_Integer);
    // body(record, chunk cloned into the new globals, method) runs the chunk in the coroutine
    // and returns the entry's function, which is then called on the emptied coroutine: the
    // body's frame stays off the stack, which then fits a process's first C calls without
    // growing (a grown stack is a reallocation now and another when the thread is reset).
    ffi::lua_pushvalue(state, next_slot(NEXT_BODY));
    ffi::lua_xmove(state, co, 1);
    ffi::lua_pushvalue(state, record);
    ffi::lua_xmove(state, co, 1);
    ffi::lua_pushvalue(state, chunk);
    ffi::lua_xmove(state, co, 1);
    if pushed.own_globals {
        // Cloned on the coroutine: the clone's environment is the coroutine's global table.
        ffi::lua_clonefunction(co, -1);
        ffi::lua_remove(co, -2);
    }
    ffi::lua_rawgeti(state, next_slot(NEXT_CHUNKS), pushed.slot + 1);
    ffi::lua_xmove(state, co, 1);
    if let Some(p) = core.procs.borrow_mut().get_mut(&token) {
        p.main = co as usize;
        p.record = record_slot;
    }
    let mut status = ffi::lua_resume_(co, state, 3);
    if status == ffi::LUA_OK {
        // The chunk ran to its end: the entry's function is on the coroutine's stack.
        if ffi::lua_checkstack(co, args.len() as c_int + 1) == 0 {
            return Err("out of Lua stack".into());
        }
        for v in &args {
            push_value(co, v)?;
        }
        status = ffi::lua_resume_(co, state, args.len() as c_int);
    } else if status == ffi::LUA_YIELD {
        // The chunk itself yielded (preempted, or waiting at its top level): the body calls
        // the function when it ends, with the arguments it finds in the record.
        ffi::lua_createtable(state, args.len() as c_int, 1);
        for (i, v) in args.iter().enumerate() {
            push_value(state, v)?;
            ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
        }
        ffi::lua_pushnumber(state, args.len() as f64);
        ffi::lua_rawsetfield(state, -2, c"n".as_ptr());
        ffi::lua_rawsetfield(state, record, c"args".as_ptr());
    }
    drop(args);
    let settled = settle_first_run(state, core, token, co, status, record);
    ffi::lua_settop(state, base);
    if settled {
        return Ok(None);
    }
    Ok(Some(hand_to_driver(state, record_slot, co, status)?))
}

/// Settles the first run of a process in Rust when it can: parked on its inbox (the driver's
/// record learns it), or returned a value with no other coroutine to close. False when the
/// driver must take over.
unsafe fn settle_first_run(
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
        ffi::lua_pushboolean(state, 1);
        ffi::lua_rawseti(state, record, RECORD_RECV);
        wait_or_requeue(core, token);
        return true;
    }
    settle_return(state, core, token, co, status)
}

/// Ends a process whose main coroutine returned a value, when it has no other coroutine to
/// close: its record and `LocalProc` go, and the kernel hears of the exit, without the driver.
/// Returns false (nothing done) for anything else, including `return nil, err` (an error exit
/// the driver words).
unsafe fn settle_return(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    token: u32,
    co: *mut mlua::ffi::lua_State,
    status: c_int,
) -> bool {
    use mlua::ffi;
    let multi = core.procs.borrow_mut().get(&token).is_none_or(|p| p.multi);
    let nil_or_false = |idx: c_int| ffi::lua_type(co, idx) <= ffi::LUA_TBOOLEAN && ffi::lua_toboolean(co, idx) == 0;
    let error_pair = ffi::lua_gettop(co) >= 2 && nil_or_false(1) && ffi::lua_type(co, 2) != ffi::LUA_TNIL;
    if status != ffi::LUA_OK || multi || error_pair {
        return false;
    }
    let result = if ffi::lua_gettop(co) == 0 { ExitResult::Value(Value::Nil) } else { result_at(co, false, 1) };
    let ended = core.procs.borrow_mut().remove(&token);
    if let Some(p) = ended {
        drop_record(state, core, p.record);
        finish(core, *p, result);
    }
    true
}

/// Removes an ended process's record from the driver's table and frees its slot.
unsafe fn drop_record(state: *mut mlua::ffi::lua_State, core: &Core, record: u32) {
    use mlua::ffi;
    if record == 0 {
        return;
    }
    ffi::lua_pushnil(state);
    ffi::lua_rawseti(state, next_slot(NEXT_PROCS), record as ffi::lua_Integer);
    core.record_slots.borrow_mut().try_remove(record as usize - 1);
}

/// Pushes `record, false, ok, results...` for the driver, moving the coroutine's results.
unsafe fn hand_to_driver(
    state: *mut mlua::ffi::lua_State,
    record: u32,
    co: *mut mlua::ffi::lua_State,
    status: c_int,
) -> Result<c_int, String> {
    use mlua::ffi;
    let ok = status == ffi::LUA_OK || status == ffi::LUA_YIELD;
    let results = if ok { ffi::lua_gettop(co) } else { 1 };
    if ffi::lua_checkstack(state, results + 3) == 0 {
        return Err("out of Lua stack".into());
    }
    ffi::lua_pushnumber(state, record as f64);
    ffi::lua_pushboolean(state, 0);
    ffi::lua_pushboolean(state, ok as c_int);
    ffi::lua_xmove(co, state, results);
    Ok(results + 3)
}

/// Pushes the entry's compiled chunk, loading it on first use (or when its source changed);
/// returns its slot in the chunk table.
unsafe fn push_chunk(state: *mut mlua::ffi::lua_State, core: &Core, code: &LuaCode) -> Result<PushedChunk, String> {
    use mlua::ffi;
    let chunks = next_slot(NEXT_CHUNKS);
    let known = core
        .raw_loaded
        .borrow_mut()
        .get(code.entry.as_str())
        .map(|loaded| (Arc::ptr_eq(&loaded.source, &code.source), loaded.chunk));
    let slot = match known {
        Some((true, pushed)) => {
            ffi::lua_rawgeti(state, chunks, pushed.slot);
            return Ok(pushed);
        }
        Some((false, pushed)) => pushed.slot,
        None => 1 + 2 * core.raw_loaded.borrow_mut().len() as ffi::lua_Integer,
    };
    let bytecode = core.chunks.bytecode(&code.source);
    let name = std::ffi::CString::new(format!("={}", code.chunk_name)).map_err(|_| "bad chunk name")?;
    // Loaded with the read-only globals as its environment: a process of code that assigns no
    // global runs the chunk itself, so a write the scan missed would fail there.
    let env = next_slot(NEXT_GLOBALS);
    if ffi::luau_load(state, name.as_ptr(), bytecode.as_ptr() as *const _, bytecode.len(), env) != 0 {
        let text = String::from_utf8_lossy(crate::convert::raw_bytes(state, -1)).into_owned();
        ffi::lua_pop(state, 1);
        return Err(text);
    }
    ffi::lua_pushvalue(state, -1);
    ffi::lua_rawseti(state, chunks, slot);
    push_str(state, &code.method);
    ffi::lua_rawseti(state, chunks, slot + 1);
    let chunk = PushedChunk { slot, own_globals: core.chunks.needs_own_globals(code) };
    core.raw_loaded.borrow_mut().insert(code.entry.clone(), LoadedChunk { source: code.source.clone(), chunk });
    Ok(chunk)
}

/// `process.spawn*(entry, host, ...)` as a raw C function; upvalues: the spawn flags (1 monitor,
/// 2 link) and the level of the Lua frame its errors name. A spawn without spawner options
/// (those go through `R.spawn_with`). Returns the child's PID, or `nil, err`.
unsafe extern "C-unwind" fn raw_spawn(state: *mut mlua::ffi::lua_State) -> c_int {
    use mlua::ffi;
    // SAFETY: `state` belongs to a shard's VM, and its raw callbacks have that shard's Core as
    // first upvalue (see `core_of`).
    let core = core_of(state);
    let flags = ffi::lua_tonumber(state, ffi::lua_upvalueindex(2)) as u8;
    let level = ffi::lua_tonumber(state, ffi::lua_upvalueindex(3)) as c_int;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spawn_from_stack(state, core, flags)));
    match outcome {
        Ok(Ok(Ok(child))) => {
            // The child's PID string, rendered into a buffer this thread keeps rather than a
            // String per spawn.
            PID_TEXT.with_borrow_mut(|text| {
                text.clear();
                core.kernel.write_pid(child, text);
                push_str(state, text);
            });
            1
        }
        Ok(Ok(Err(failed))) => complete(state, Ok(Ok(Reply::NilErr(failed))), Some(level)),
        Ok(Err(raise)) => complete(state, Ok(Err(raise)), Some(level)),
        Err(panic) => complete(state, Err(panic), Some(level)),
    }
}

thread_local! {
    static PID_TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Spawns from the arguments of `process.spawn*`: the child, or the failure the program gets as
/// `nil, err`; `Err` for bad arguments, raised.
unsafe fn spawn_from_stack(
    state: *mut mlua::ffi::lua_State,
    core: &Core,
    flags: u8,
) -> Result<Result<Pid, String>, String> {
    use mlua::ffi;
    let top = ffi::lua_gettop(state);
    let entry = text_arg(state, 1, "process.spawn: the entry must be a string")?;
    let host = text_arg(state, 2, "process.spawn: the host must be a string")?;
    let mut args = Vec::with_capacity((top - 2).max(0) as usize);
    let mut path = crate::convert::Copier::new();
    for idx in 3..=top {
        args.push(crate::convert::raw_to_value(state, idx, &mut path).map_err(|e| format!("process.spawn: {e}"))?);
    }
    let token = core.current.load(Ordering::Relaxed);
    let (parent, context, actor, scope) = {
        let procs = core.procs.borrow_mut();
        let p = procs.get(&token).ok_or("process is not running")?;
        (p.pid, p.context.clone(), p.actor.clone(), p.scope.clone())
    };
    let flags = SpawnFlags { monitor: flags & 1 != 0, link: flags & 2 != 0 };
    let request = SpawnRequest {
        parent,
        entry,
        host,
        args,
        flags,
        name: None,
        context,
        messages: Vec::new(),
        actor,
        scope,
        burst: core.next_in_burst(),
        parent_group: core.config.group,
    };
    Ok(match core.kernel.spawn(request) {
        Ok(child) => {
            record_child(core, token, flags, child);
            Ok(child)
        }
        Err(e) => Err(e.to_string()),
    })
}

/// What a parent keeps of a child it spawned monitored or linked.
fn record_child(core: &Core, token: u32, flags: SpawnFlags, child: Pid) {
    if let Some(p) = core.procs.borrow_mut().get_mut(&token) {
        let supervision = &mut p.extra_mut().supervision;
        if flags.monitor {
            supervision.monitor(child);
        }
        if flags.link {
            supervision.link(child);
        }
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

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn tokens_are_dense_and_the_last_freed_comes_back_first() {
        let mut tokens = Tokens::default();
        let first: Vec<u32> = (0..4).map(|_| tokens.take()).collect();
        assert_eq!(first, vec![0, 1, 2, 3]);
        tokens.give_back(1);
        tokens.give_back(3);
        assert_eq!([tokens.take(), tokens.take(), tokens.take()], [3, 1, 4]);
    }
}

#[cfg(test)]
mod ready_queue_tests {
    use super::*;

    #[test]
    fn the_lifo_slot_goes_first_but_not_forever() {
        let mut q = ReadyQueue::default();
        q.push_back(1);
        q.push_back(2);
        // Each wake-up from the shard itself takes the slot; the one it displaces queues.
        let mut order = Vec::new();
        for woken in 10..16 {
            q.push_lifo(woken);
            order.push(q.pop().expect("not empty"));
        }
        // Three LIFO turns, then the queue's head, and so on.
        assert_eq!(order, vec![10, 11, 12, 1, 14, 15]);
        assert_eq!(q.len(), 2);
        let rest: Vec<u32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, vec![2, 13]);
        assert!(q.is_empty());
    }

    #[test]
    fn push_lifo_keeps_the_displaced_token() {
        let mut q = ReadyQueue::default();
        q.push_lifo(1);
        q.push_lifo(2);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), None);
    }
}
