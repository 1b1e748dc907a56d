//! A shard: one sandboxed Luau VM running many processes.
//!
//! Protocol of a run (one scheduler slice):
//! 1. The worker calls [`Shard::run`]; it calls `R.next` on the shard's driver thread, and the
//!    Lua driver (`drive` in `prelude/driver.luau`) only if `R.next` hands a process over.
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

mod config;
pub(crate) mod core;
pub(crate) mod lifecycle;
pub(crate) mod ready;
mod step;
mod vm;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rustc_hash::FxHashMap;
use slab::Slab;
use wisp_core::Envelope;
use wisp_mailbox::{Mailbox, Wake};
use wisp_process::Kernel;
use wisp_scheduler::{Handle, ScheduleState, Task, TimerHandle};

use crate::kernel::Admission;
use crate::preempt::{Preempt, WatchdogHandle};
use crate::ChunkCache;
pub use config::{ShardConfig, DEFAULT_MAX_STEP};
use core::*;
use ready::*;
use vm::*;

pub struct Shard {
    pub(crate) core: Arc<Core>,
    pub(crate) vm: Mutex<Option<Vm>>,
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
        let task: Arc<dyn Task> = shard.clone();
        let _ = core.shard.set(Arc::downgrade(&task));
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
