//! Preemption of busy processes by a watchdog thread, like Go's `sysmon`.
//!
//! Luau calls the VM's interrupt at function calls, returns and loop back-edges when one is
//! set, and costs a load and a branch at each of those points when none is. An interrupt set
//! all the time was about a tenth of the instructions of a counted message, so it is set only
//! when a step has overrun.
//!
//! Protocol:
//! * The thread running a shard counts its steps ([`Preempt::step`]) and says when a run
//!   begins and ends. Only that thread writes them.
//! * The watchdog looks at every running shard once per tick. A shard whose step count has not
//!   moved since the look before has run one step for at least a tick: the watchdog *arms* its
//!   VM (sets the interrupt), noting the step it armed for.
//! * The interrupt runs on the shard's thread. If the shard has moved on to another step since
//!   (armed late), it disarms and returns. If the running coroutine is a process coroutine
//!   (its thread data is the shard's [`Preempt`]; threads a process creates inherit it) outside
//!   the runtime's own code, it disarms and yields the `preempted` mark, which the driver reads
//!   as "preempted: requeue" and a program's `coroutine.resume` passes up. Where it cannot yield
//!   (a metamethod, a sort comparator, a `gsub` callback, a pattern match) it disarms and the
//!   next look arms it again. In the driver or a channel operation of the prelude it stays
//!   armed and looks again at the next interrupt point.
//! * Ending a step that cannot yield: when a step has run past the shard's `max_step`, when
//!   the running process has a `terminate` waiting in its mailbox, or when the shard shuts
//!   down, the interrupt raises an error in the process's coroutine and stays armed: every later
//!   interrupt point of that step raises again, so `pcall` cannot keep the process alive. `R.next`
//!   then ends the process with that reason ([`Preempt::take_kill`]), whatever its step returned.
//! * A guard thread (the coroutine the driver turns an error value into text in) is never
//!   preempted; an interrupt armed after it has run for [`GUARD_BUDGET`], or after its step ran
//!   past `max_step`, ends it (the error value is then "not printable").
//! * The interrupt slot is the only word the watchdog writes into a VM. A shard forgets its
//!   slot under [`Preempt::slot`]'s lock before its VM is closed, and the watchdog arms only
//!   under that lock, so it never writes into a freed VM.
//! * The watchdog parks while no shard runs; a shard beginning a run unparks it (a store to
//!   `running`, a `SeqCst` fence, then a load of `idle`, against a store to `idle`, a fence,
//!   then a look at every `running`: one of the two sides sees the other; model-checked with
//!   loom).

use std::ffi::c_void;
use std::io;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize, Ordering};

// The flags of the run/sleep handshake, model-checked with loom (see `loom_tests`).
#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicBool as HandshakeFlag};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicBool as HandshakeFlag};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use mlua::ffi;
use wisp_core::{Envelope, Signal};
use wisp_mailbox::Mailbox;

/// The shortest wait between two looks of the watchdog: a busy process is preempted after one
/// to two ticks once the watchdog has found one (see [`next_tick`]).
pub const DEFAULT_TICK: Duration = Duration::from_micros(100);

/// What the watchdog sees of one shard.
pub(crate) struct Preempt {
    /// Steps begun on the shard (wrapping).
    steps: AtomicU32,
    /// True while the shard runs.
    running: HandshakeFlag,
    /// The step count the watchdog saw at its last look (only the watchdog writes it).
    seen: AtomicU32,
    /// The step the VM was last armed for.
    armed_for: AtomicU32,
    /// The address of the VM's interrupt slot (`lua_Callbacks::interrupt`); 0 before the VM is
    /// built and after it is closed.
    slot: Mutex<usize>,
    watchdog: WatchdogHandle,
    /// The longest a step may run where it cannot be preempted; `None`: no limit.
    max_step: Option<Duration>,
    /// The error a step ended for running past `max_step` ends its process with.
    step_limit_text: String,
    /// The watchdog's note of the step it saw running and when it first saw it.
    stuck: Mutex<Option<(u32, Instant)>>,
    /// The step that ran past `max_step` (valid while `overrun` is set; written by the watchdog).
    overrun_step: AtomicU32,
    overrun: AtomicBool,
    /// Set when the shard shuts down: every step still running is ended.
    shutting_down: AtomicBool,
    /// The mailbox of the process of the running step, for a look for a `terminate` (null
    /// between steps). The process outlives its step, so the pointer is valid during it.
    mailbox: AtomicPtr<Mailbox<Envelope>>,
    /// Why the interrupt is ending the step `killed_step` ([`Kill`] as a byte, 0: it is not).
    /// Only the shard's thread reads and writes them.
    killed: AtomicU8,
    killed_step: AtomicU32,
    /// When the running guard thread began (see [`GUARD_BUDGET`]).
    guard_since: Mutex<Option<Instant>>,
}

/// How long a guard thread may run before it is ended: turning an error value into text
/// takes microseconds, and this much leaves room for a slow machine (or valgrind).
const GUARD_BUDGET: Duration = Duration::from_millis(100);

/// Why a step that could not yield was ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    StepLimit = 1,
    Terminated = 2,
}

impl Kill {
    fn from_byte(b: u8) -> Option<Kill> {
        match b {
            1 => Some(Kill::StepLimit),
            2 => Some(Kill::Terminated),
            _ => None,
        }
    }
}

/// The error text of a step ended for running past `max_step`.
fn step_limit_text(max_step: Option<Duration>) -> String {
    let limit = max_step.map(|d| format!("{d:?}")).unwrap_or_default();
    format!("step time limit exceeded ({limit})")
}

impl Preempt {
    /// A shard's counters, watched by `watchdog` from now on.
    pub(crate) fn new(watchdog: &WatchdogHandle, max_step: Option<Duration>) -> Arc<Preempt> {
        let preempt = Arc::new(Preempt {
            steps: AtomicU32::new(0),
            running: HandshakeFlag::new(false),
            seen: AtomicU32::new(0),
            armed_for: AtomicU32::new(0),
            slot: Mutex::new(0),
            watchdog: watchdog.clone(),
            max_step: max_step.filter(|d| !d.is_zero()),
            step_limit_text: step_limit_text(max_step),
            stuck: Mutex::new(None),
            overrun_step: AtomicU32::new(0),
            overrun: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            mailbox: AtomicPtr::new(std::ptr::null_mut()),
            killed: AtomicU8::new(0),
            killed_step: AtomicU32::new(0),
            guard_since: Mutex::new(None),
        });
        let mut shards = lock(&watchdog.shared.shards);
        shards.retain(|s| s.strong_count() > 0);
        shards.push(Arc::downgrade(&preempt));
        preempt
    }

    /// Lets the watchdog arm `lua`'s VM.
    pub(crate) fn watch_vm(&self, lua: &mlua::Lua) -> mlua::Result<()> {
        let mut slot = 0usize;
        // SAFETY: takes the address of a field of the VM's callbacks; nothing is pushed.
        unsafe {
            lua.exec_raw::<()>((), |state| {
                slot = std::ptr::addr_of_mut!((*ffi::lua_callbacks(state)).interrupt) as usize;
            })?;
        }
        *lock(&self.slot) = slot;
        Ok(())
    }

    /// The VM is about to be closed: the watchdog must not touch it any more.
    pub(crate) fn forget_vm(&self) {
        *lock(&self.slot) = 0;
    }

    /// The shard's thread begins a run.
    pub(crate) fn begin_run(&self) {
        if run_begins(&self.running, &self.watchdog.shared.idle) {
            if let Some(thread) = self.watchdog.shared.thread.get() {
                thread.unpark();
            }
        }
    }

    /// The shard's thread ends a run.
    pub(crate) fn end_run(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// The shard's thread begins a step of the process whose mailbox is `mailbox`. Only that
    /// thread writes the count: a plain load and store.
    pub(crate) fn step(&self, mailbox: &Arc<Mailbox<Envelope>>) {
        self.mailbox.store(Arc::as_ptr(mailbox) as *mut _, Ordering::Relaxed);
        self.steps.store(self.steps.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    /// A guard thread begins (on the shard's thread).
    pub(crate) fn start_guard(&self) {
        *lock(&self.guard_since) = Some(Instant::now());
    }

    /// Whether the step `step` has run past `max_step`.
    fn overran(&self, step: u32) -> bool {
        self.overrun.load(Ordering::Acquire) && self.overrun_step.load(Ordering::Relaxed) == step
    }

    /// Whether the running guard thread has used up its [`GUARD_BUDGET`].
    fn guard_overdue(&self) -> bool {
        lock(&self.guard_since).is_some_and(|since| since.elapsed() >= GUARD_BUDGET)
    }

    /// The shard shuts down: steps still running are ended at their next interrupt point, and
    /// the watchdog arms the VM at its next look.
    pub(crate) fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Whether the step just over was ended by the interrupt, and why; forgets it and disarms
    /// the VM (it stayed armed to end the step). Called by the shard's thread between steps.
    ///
    /// # Safety
    /// `state` must be a thread of this shard's live VM, on the shard's thread.
    pub(crate) unsafe fn take_kill(&self, state: *mut ffi::lua_State) -> Option<Kill> {
        // A plain load first: this runs after every step, and a swap is a locked instruction.
        if self.killed.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let kill = Kill::from_byte(self.killed.swap(0, Ordering::Relaxed))?;
        if self.killed_step.load(Ordering::Relaxed) != self.steps.load(Ordering::Relaxed) {
            return None;
        }
        self.mailbox.store(std::ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: as the caller promises.
        unsafe { disarm(state) };
        Some(kill)
    }

    /// Ends the running step now (on the shard's thread, from a callback of the step): every
    /// later interrupt point of the step raises, so `pcall` cannot keep it going, and `R.next`
    /// ends its process with `kill`'s text whatever the step returned.
    pub(crate) fn kill_running(&self, kill: Kill) {
        let step = self.steps.load(Ordering::Relaxed);
        self.killed_step.store(step, Ordering::Relaxed);
        self.killed.store(kill as u8, Ordering::Relaxed);
        self.armed_for.store(step, Ordering::Relaxed);
        let slot = lock(&self.slot);
        if *slot != 0 {
            // SAFETY: as in `look`: the address of the live VM's interrupt field.
            let field = unsafe { AtomicUsize::from_ptr(*slot as *mut usize) };
            field.store(INTERRUPT as usize, Ordering::Release);
        }
    }

    /// The text a kill ends its process with.
    pub(crate) fn kill_text(&self, kill: Kill) -> &str {
        match kill {
            Kill::StepLimit => &self.step_limit_text,
            Kill::Terminated => "terminated",
        }
    }

    /// Whether the step `step` must end now, and why (on the shard's thread, in the interrupt).
    fn kill_due(&self, step: u32, may_look_at_mailbox: bool) -> Option<Kill> {
        if self.killed_step.load(Ordering::Relaxed) == step {
            if let Some(kill) = Kill::from_byte(self.killed.load(Ordering::Relaxed)) {
                return Some(kill);
            }
        }
        if self.overran(step) {
            return Some(Kill::StepLimit);
        }
        if self.shutting_down.load(Ordering::Relaxed) {
            return Some(Kill::Terminated);
        }
        if may_look_at_mailbox && self.terminate_waits() {
            return Some(Kill::Terminated);
        }
        None
    }

    /// Whether the running process has a `terminate` waiting in its mailbox.
    fn terminate_waits(&self) -> bool {
        let mailbox = self.mailbox.load(Ordering::Relaxed);
        // SAFETY: set by `step` to the running process's mailbox, which outlives the step (its
        // `LocalProc` holds it); this runs only during a step of that process.
        let Some(mailbox) = (unsafe { mailbox.as_ref() }) else {
            return false;
        };
        mailbox.any(|e| matches!(e, Envelope::Signal { signal: Signal::Terminate, .. }))
    }

    /// The watchdog's look: arms the VM if the shard has been in one step since the last look
    /// (or shuts down), and notes a step that ran past `max_step`.
    fn look(&self, now: Instant) -> Look {
        let running = self.running.load(Ordering::SeqCst);
        let steps = self.steps.load(Ordering::Relaxed);
        let seen = self.seen.swap(steps, Ordering::Relaxed);
        let shutting_down = self.shutting_down.load(Ordering::Relaxed);
        if !running || (steps != seen && !shutting_down) {
            *lock(&self.stuck) = Some((steps, now));
            return Look { running, armed: false };
        }
        if let Some(max_step) = self.max_step {
            let mut stuck = lock(&self.stuck);
            let since = match *stuck {
                Some((step, since)) if step == steps => since,
                _ => {
                    *stuck = Some((steps, now));
                    now
                }
            };
            if now.duration_since(since) >= max_step {
                self.overrun_step.store(steps, Ordering::Relaxed);
                self.overrun.store(true, Ordering::Release);
            }
        }
        let slot = lock(&self.slot);
        if *slot == 0 {
            return Look { running, armed: false };
        }
        self.armed_for.store(steps, Ordering::Relaxed);
        // The shard's thread reads the field without synchronisation at every interrupt point;
        // a word-sized aligned store is seen whole, as either the old or the new value.
        // SAFETY: `slot` is the address of the VM's interrupt field, an aligned pointer-sized
        // word; the VM is alive while its address is set (`forget_vm` clears it under this lock).
        let field = unsafe { AtomicUsize::from_ptr(*slot as *mut usize) };
        field.store(INTERRUPT as usize, Ordering::Release);
        Look { running, armed: true }
    }
}

/// What one look at one or all shards found.
#[derive(Default)]
struct Look {
    running: bool,
    armed: bool,
}

/// Owns the watchdog thread. Dropping it stops the thread.
pub struct Watchdog {
    shared: Arc<WatchdogShared>,
    thread: Option<JoinHandle<()>>,
}

/// What shards keep of the watchdog: where to register and whom to wake.
#[derive(Clone)]
pub struct WatchdogHandle {
    shared: Arc<WatchdogShared>,
}

struct WatchdogShared {
    tick: Duration,
    shards: Mutex<Vec<Weak<Preempt>>>,
    /// True while the thread parks because no shard runs.
    idle: HandshakeFlag,
    stop: AtomicBool,
    thread: std::sync::OnceLock<Thread>,
}

impl Watchdog {
    /// Starts the thread "wisp-watchdog", looking at running shards every `tick`.
    pub fn start(tick: Duration) -> io::Result<Watchdog> {
        let shared = Arc::new(WatchdogShared {
            tick,
            shards: Mutex::new(Vec::new()),
            idle: HandshakeFlag::new(false),
            stop: AtomicBool::new(false),
            thread: std::sync::OnceLock::new(),
        });
        let thread = {
            let shared = shared.clone();
            thread::Builder::new().name("wisp-watchdog".into()).spawn(move || shared.run())?
        };
        let _ = shared.thread.set(thread.thread().clone());
        Ok(Watchdog { shared, thread: Some(thread) })
    }

    /// A handle for the shards it watches.
    pub fn handle(&self) -> WatchdogHandle {
        WatchdogHandle { shared: self.shared.clone() }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

impl WatchdogShared {
    fn run(&self) {
        let mut tick = self.tick;
        while !self.stop.load(Ordering::SeqCst) {
            let look = self.look_all();
            if look.running {
                tick = next_tick(tick, self.tick, look.armed);
                thread::sleep(tick);
                continue;
            }
            // Looked at again after `idle` is visible: a run that began before it was would
            // not have unparked this thread.
            if may_park(&self.idle, || self.look_all().running) && !self.stop.load(Ordering::SeqCst) {
                thread::park();
            }
            self.idle.store(false, Ordering::SeqCst);
            tick = self.tick * MAX_TICKS;
        }
    }

    /// Looks at every shard.
    fn look_all(&self) -> Look {
        let mut all = Look::default();
        let now = Instant::now();
        for shard in lock(&self.shards).iter().filter_map(Weak::upgrade) {
            let look = shard.look(now);
            all.running |= look.running;
            all.armed |= look.armed;
        }
        all
    }
}

/// Shard side of the run/sleep handshake, as a run begins: marks the shard running and says
/// whether the watchdog may be parked (then it must be unparked). Each side stores its own
/// flag, then a `SeqCst` fence, then loads the other's: at least one of them sees the other,
/// so a run never begins unseen by a watchdog going to sleep.
fn run_begins(running: &HandshakeFlag, idle: &HandshakeFlag) -> bool {
    running.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    idle.load(Ordering::SeqCst)
}

/// Watchdog side of the handshake: marks it idle, then says whether it may park, which it may
/// only if it sees no shard running afterwards (`any_running` loads each `running` flag).
fn may_park(idle: &HandshakeFlag, any_running: impl FnOnce() -> bool) -> bool {
    idle.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    !any_running()
}

/// The longest wait between two looks, in ticks.
const MAX_TICKS: u32 = 16;

/// The wait before the next look: one tick after a look that armed a VM (busy processes are
/// about, and each should be preempted soon after its tick), else twice the last wait, up to
/// [`MAX_TICKS`]. Like Go's `sysmon`, the watchdog then wakes rarely where nothing overruns:
/// each wake-up takes a core from a worker for a few microseconds.
fn next_tick(last: Duration, tick: Duration, armed: bool) -> Duration {
    if armed {
        tick
    } else {
        (last * 2).min(tick * MAX_TICKS)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The low bit of a thread's mark (its thread data, otherwise the shard's `Preempt`): a guard
/// thread, ended by the first interrupt armed for its step.
const GUARD_TAG: usize = 1;
const _: () = assert!(std::mem::align_of::<Preempt>() > GUARD_TAG);

/// What the interrupt yields when it preempts: the address of this static, as a light
/// userdata (no program can make one).
static PREEMPTED: u8 = 0;

/// The `preempted` mark's address (see [`PREEMPTED`]).
pub(crate) fn preempted_mark() -> *mut c_void {
    std::ptr::addr_of!(PREEMPTED) as *mut c_void
}

/// The text a guard thread ends with.
pub(crate) const NOT_PRINTABLE: &str = "error value is not printable";

/// Marks the coroutine on top of `state`'s stack as a process coroutine of this shard.
///
/// # Safety
/// The top of the stack must be a thread, and `preempt` must outlive every thread of the VM.
pub(crate) unsafe fn mark_top(state: *mut ffi::lua_State, preempt: *const Preempt) {
    // SAFETY: as the caller promises.
    unsafe { set_top_mark(state, preempt as usize) }
}

/// Marks the coroutine on top of `state`'s stack as a guard thread of this shard.
///
/// # Safety
/// As [`mark_top`].
pub(crate) unsafe fn mark_guard_top(state: *mut ffi::lua_State, preempt: *const Preempt) {
    // SAFETY: as the caller promises.
    unsafe { set_top_mark(state, preempt as usize | GUARD_TAG) }
}

/// # Safety
/// As [`mark_top`].
unsafe fn set_top_mark(state: *mut ffi::lua_State, mark: usize) {
    // SAFETY: the caller promises a thread on top of a live state's stack.
    unsafe {
        let thread = ffi::lua_tothread(state, -1);
        if !thread.is_null() {
            ffi::lua_setthreaddata(thread, mark as *mut c_void);
        }
    }
}

/// Makes every thread created from a marked thread inherit its mark: a coroutine a process
/// makes is that process's, preempted and ended like its main coroutine.
pub(crate) fn inherit_thread_marks(lua: &mlua::Lua) -> mlua::Result<()> {
    // SAFETY: sets a field of the VM's callbacks; nothing is pushed.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            (*ffi::lua_callbacks(state)).userthread = Some(inherit_mark);
        })
    }
}

/// The VM's `userthread` callback (see [`inherit_thread_marks`]): gives `child` the thread data
/// of `parent`.
///
/// # Safety
/// Called by Luau only: as it creates `child` from `parent`, both live threads of one VM (or
/// with a null `parent` as it frees `child`).
unsafe extern "C-unwind" fn inherit_mark(parent: *mut ffi::lua_State, child: *mut ffi::lua_State) {
    if parent.is_null() {
        return; // a thread being freed
    }
    // SAFETY: both are live threads of one VM (Luau calls this as it creates `child`).
    unsafe { ffi::lua_setthreaddata(child, ffi::lua_getthreaddata(parent)) };
}

/// Clears the interrupt of `state`'s VM (on the VM's own thread).
///
/// # Safety
/// `state` must be a thread of a live VM, on the thread running it.
pub(crate) unsafe fn disarm(state: *mut ffi::lua_State) {
    // SAFETY: the field is an aligned pointer-sized word of the live VM; the watchdog's stores
    // to it are atomic too (see `Preempt::look`).
    unsafe {
        let slot = std::ptr::addr_of_mut!((*ffi::lua_callbacks(state)).interrupt).cast::<usize>();
        AtomicUsize::from_ptr(slot).store(0, Ordering::Release);
    }
}

/// The interrupt as the VM's callback slot holds it.
const INTERRUPT: unsafe extern "C-unwind" fn(*mut ffi::lua_State, c_int) = interrupt;

/// The VM's interrupt, set by the watchdog (see the module docs).
///
/// # Safety
/// Called by Luau only, as the interrupt of a VM whose process coroutines carry a live
/// [`Preempt`] as their thread data: `state` is the thread running, on this thread.
unsafe extern "C-unwind" fn interrupt(state: *mut ffi::lua_State, gc: c_int) {
    if gc >= 0 {
        return; // the collector's steps: not a place to yield
    }
    // SAFETY: thread data is either null or a mark set by `set_top_mark` or `inherit_mark`: the
    // shard's Preempt (with the guard bit), which lives as long as the VM (the shard's Core
    // holds it, and outlives the VM).
    let mark = unsafe { ffi::lua_getthreaddata(state) } as usize;
    // SAFETY: as above: null or a live Preempt.
    let Some(preempt) = (unsafe { ((mark & !GUARD_TAG) as *const Preempt).as_ref() }) else {
        return; // not a process coroutine: look again at the next interrupt point
    };
    let step = preempt.steps.load(Ordering::Relaxed);
    if mark & GUARD_TAG != 0 {
        // A guard is never preempted (its resume would read as a failure), and whatever ends it
        // (its own budget, or its step's time limit) makes the error value "not printable"; the
        // watchdog arms the VM again at its next look while the step lasts.
        // SAFETY: `state` is running, on this thread.
        unsafe {
            disarm(state);
            if preempt.guard_overdue() || preempt.overran(step) {
                raise(state, NOT_PRINTABLE);
            }
        }
        return;
    }
    let armed_for_step = preempt.armed_for.load(Ordering::Relaxed) == step;
    // SAFETY: `state` is running, on this thread.
    let yieldable = unsafe { ffi::lua_isyieldable(state) } != 0;
    if let Some(kill) = preempt.kill_due(step, armed_for_step && !yieldable) {
        // Stays armed: each later interrupt point of this step raises again.
        preempt.killed_step.store(step, Ordering::Relaxed);
        preempt.killed.store(kill as u8, Ordering::Relaxed);
        // SAFETY: raising from the interrupt unwinds the running Lua code; this frame holds
        // nothing that needs dropping.
        unsafe { raise(state, preempt.kill_text(kill)) };
    }
    if !armed_for_step {
        // SAFETY: on the VM's own thread.
        unsafe { disarm(state) }; // the step it was armed for is over
        return;
    }
    // SAFETY: `state` is running, on this thread.
    if unsafe { in_runtime_code(state) } {
        // Channel operations in the prelude must not be split by a preemption.
        return;
    }
    // SAFETY: as above; the mark is pushed only where the stack has room for it.
    unsafe {
        disarm(state);
        if yieldable && ffi::lua_checkstack(state, 1) != 0 {
            ffi::lua_pushlightuserdata(state, preempted_mark());
            ffi::lua_yield(state, 1);
        }
    }
}

/// Raises `text` as a Lua error on `state`.
///
/// # Safety
/// `state` must be running Lua code on this thread, with no Rust value to drop above the
/// catching frame.
unsafe fn raise(state: *mut ffi::lua_State, text: &str) -> ! {
    // SAFETY: as the caller promises; the text is copied into the VM before the raise.
    unsafe {
        ffi::lua_pushlstring_(state, text.as_ptr() as *const _, text.len());
        ffi::lua_error(state)
    }
}

/// The chunk name of the runtime's own Lua code (see `shard.rs`).
pub(crate) const RUNTIME_CHUNK: &str = "=wisp";

/// True when the running function belongs to the runtime's prelude.
///
/// # Safety
/// `state` must be a thread of a live VM running Lua code, on the thread running it.
unsafe fn in_runtime_code(state: *mut ffi::lua_State) -> bool {
    // SAFETY: `lua_Debug` is a plain C struct (integers, pointers, arrays), for which all zeros
    // is a valid value.
    let mut ar: ffi::lua_Debug = unsafe { std::mem::zeroed() };
    // SAFETY: level 0 is the running function of the live `state` (the caller's promise); "s"
    // fills `source` with a NUL-terminated string owned by the function's prototype, which
    // outlives this call.
    if unsafe { ffi::lua_getinfo(state, 0, c"s".as_ptr(), &mut ar) } == 0 || ar.source.is_null() {
        return false;
    }
    // SAFETY: `source` is non-null and NUL-terminated (see above).
    unsafe { std::ffi::CStr::from_ptr(ar.source) }.to_bytes() == RUNTIME_CHUNK.as_bytes()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn the_wait_between_looks_shrinks_after_an_arming_and_doubles_up_to_its_limit() {
        let tick = Duration::from_micros(100);
        let cases = [
            (tick * 16, true, tick),
            (tick, true, tick),
            (tick, false, tick * 2),
            (tick * 8, false, tick * 16),
            (tick * 16, false, tick * 16),
        ];
        for (last, armed, expected) in cases {
            assert_eq!(next_tick(last, tick, armed), expected, "after {last:?}, armed: {armed}");
        }
    }

    struct NoWake;
    impl wisp_mailbox::Wake for NoWake {
        fn wake(&self, _: u32) {}
    }

    fn test_mailbox() -> Arc<Mailbox<Envelope>> {
        Arc::new(Mailbox::new(Arc::new(NoWake), 0))
    }

    /// Waits until `slot` holds the interrupt, or the timeout.
    fn armed_within_timeout(slot: &AtomicUsize) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            if slot.load(Ordering::Acquire) == INTERRUPT as usize {
                return true;
            }
            thread::yield_now();
        }
        false
    }

    #[test]
    fn a_step_that_outlasts_a_look_gets_the_interrupt_for_that_step() {
        let watchdog = Watchdog::start(Duration::from_micros(100)).expect("the watchdog starts");
        let preempt = Preempt::new(&watchdog.handle(), None);
        let mailbox = test_mailbox();
        // Stands in for a VM's interrupt slot.
        let slot = AtomicUsize::new(0);
        *lock(&preempt.slot) = slot.as_ptr() as usize;
        // The steps are counted before the run begins: a look between the two would arm for the
        // step before (the runtime copes, the interrupt disarms itself; this test would not).
        preempt.step(&mailbox);
        preempt.step(&mailbox);
        preempt.begin_run();
        assert!(armed_within_timeout(&slot), "a running step is armed");
        assert_eq!(preempt.armed_for.load(Ordering::Relaxed), 2, "armed for the step that runs");
        preempt.end_run();
        preempt.forget_vm();
    }

    #[test]
    fn a_shard_that_begins_a_run_wakes_a_parked_watchdog() {
        let watchdog = Watchdog::start(Duration::from_micros(100)).expect("the watchdog starts");
        let preempt = Preempt::new(&watchdog.handle(), None);
        let mailbox = test_mailbox();
        let slot = AtomicUsize::new(0);
        *lock(&preempt.slot) = slot.as_ptr() as usize;
        // Nothing runs: the watchdog parks.
        let deadline = Instant::now() + TIMEOUT;
        while !watchdog.shared.idle.load(Ordering::SeqCst) && Instant::now() < deadline {
            thread::yield_now();
        }
        assert!(watchdog.shared.idle.load(Ordering::SeqCst), "the watchdog parks while nothing runs");
        preempt.begin_run();
        preempt.step(&mailbox);
        assert!(armed_within_timeout(&slot), "the woken watchdog arms the long step");
        preempt.end_run();
        preempt.forget_vm();
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    #[test]
    fn a_run_that_begins_as_the_watchdog_goes_to_sleep_always_wakes_it() {
        loom::model(|| {
            let running = Arc::new(HandshakeFlag::new(false));
            let idle = Arc::new(HandshakeFlag::new(false));
            let watchdog = {
                let (running, idle) = (running.clone(), idle.clone());
                thread::spawn(move || {
                    if may_park(&idle, || running.load(Ordering::SeqCst)) {
                        // Parked for good unless the run below unparks it: loom reports that
                        // as a deadlock.
                        thread::park();
                    }
                    idle.store(false, Ordering::SeqCst);
                })
            };
            if run_begins(&running, &idle) {
                watchdog.thread().unpark();
            }
            watchdog.join().unwrap();
        });
    }
}
