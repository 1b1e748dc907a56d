//! The worker pool.
//!
//! # Queues
//!
//! Every worker owns a FIFO [`crossbeam_deque::Worker`] queue; the pool has one
//! global [`Injector`]. [`Handle::schedule`] called on a worker thread of the same
//! pool pushes to that worker's local queue (the task's data is likely hot in that
//! core's cache); from any other thread it pushes to the injector.
//! [`Handle::schedule_global`] always uses the injector; [`Handle::schedule_yielded`],
//! for a task that yields after a long slice, uses it too unless nothing waits, so such a
//! task goes behind everything already waiting, and stays on its core when nothing does.
//!
//! A worker looks for its next task in this order:
//!
//! 0. the task in its LIFO slot, the last one it scheduled itself, at most
//!    [`take_lifo`] times in a row while other tasks wait in its queues; that slot
//!    cannot be stolen;
//! 1. every [`GLOBAL_POLL_INTERVAL`] tasks, the injector first (see
//!    [`should_check_global`]), so a worker busy with self-rescheduling local
//!    tasks cannot starve the injector;
//! 2. its local queue;
//! 3. the injector (`steal_batch_and_pop`, moving a batch to the local queue);
//! 4. the other workers' queues, starting at a random victim;
//! 5. otherwise it looks again, a bounded number of times ([`keep_spinning`]), then parks.
//!
//! # Parking protocol (no lost wake-ups)
//!
//! Sleep bookkeeping lives in `Mutex<Idle { sleeping, permits }>` plus a
//! `Condvar`; `sleepers` is an atomic mirror of `sleeping` so that `schedule`
//! does not take the lock when nobody sleeps.
//!
//! * Parking worker: lock; `sleeping += 1`; `sleepers += 1`; `fence(SeqCst)`;
//!   re-check the injector, all local queues and the shutdown flag. If anything
//!   is there, undo the counts and go back to work. Otherwise wait on the condvar
//!   (which releases the lock atomically) until `permits > 0` (take one) or
//!   shutdown.
//! * Scheduler: push the task; `fence(SeqCst)`; if `sleepers > 0`, lock and, if
//!   `sleeping > 0`, move one sleeper to a permit (`sleeping -= 1`,
//!   `permits += 1`) and `notify_one`.
//!
//! The two `SeqCst` fences order "push, then read `sleepers`" against
//! "bump `sleepers`, then read the queues": at least one side sees the other, so
//! either the worker finds the task before waiting or the scheduler sees the
//! sleeper. The worker holds the lock from bumping `sleeping` until it is inside
//! `wait`, so the scheduler's notify cannot fall between its check and its wait.
//! Each schedule converts at most one sleeper into a permit, so it wakes exactly
//! one worker; permits are fungible, so a spurious wake-up that takes a permit
//! just leaves another sleeper counted in `sleeping`.
//!
//! # Shutdown
//!
//! [`Pool::shutdown`] (or dropping the pool) sets the shutdown flag, then locks
//! and `notify_all`s. Workers finish the task they are running, stop, and drop
//! whatever is still queued (which also breaks `Arc` cycles of the form
//! task -> `Handle` -> pool). Later `schedule` calls drop the task.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::iter;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

/// A unit of schedulable work.
pub trait Task: Send + Sync + 'static {
    /// Runs a bounded slice of work on a worker thread. The task re-schedules itself (through a Handle) if it has more to do.
    fn run(self: Arc<Self>);
}

type TaskRef = Arc<dyn Task>;

/// How often (in tasks run by one worker) the global injector is polled before
/// the local queue. A prime, like tokio's 61, so it does not fall into step with
/// periodic task patterns.
pub const GLOBAL_POLL_INTERVAL: u32 = 61;

/// Whether the worker should look at the injector before its local queue on this tick.
pub fn should_check_global(tick: u32) -> bool {
    tick.is_multiple_of(GLOBAL_POLL_INTERVAL)
}

/// Configuration of a [`Pool`].
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Thread name prefix; workers are named `{name}-{index}`.
    pub name: String,
    /// Number of worker threads (0 is treated as 1).
    pub workers: usize,
}

/// Owns the worker threads. Dropping it shuts the pool down.
pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// A cheap, cloneable reference used to queue tasks on a [`Pool`].
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    injector: Injector<TaskRef>,
    stealers: Vec<Stealer<TaskRef>>,
    /// Lock-free mirror of `Idle::sleeping` (see the module docs).
    sleepers: AtomicUsize,
    idle: Mutex<Idle>,
    wakeup: Condvar,
    shutdown: AtomicBool,
}

struct Idle {
    /// Workers waiting on the condvar that no scheduler has claimed yet.
    sleeping: usize,
    /// Wake-ups handed out but not yet taken by a waiting worker.
    permits: usize,
}

/// What a worker thread knows about itself, reachable from `Handle::schedule`.
struct WorkerContext {
    pool_id: usize,
    local: Worker<TaskRef>,
    /// The task this worker scheduled last, run right after the current one (see `Handle::schedule`).
    lifo: RefCell<Option<TaskRef>>,
}

thread_local! {
    static CURRENT_WORKER: RefCell<Option<Rc<WorkerContext>>> = const { RefCell::new(None) };
}

impl Pool {
    /// Starts the worker threads.
    ///
    /// # Panics
    ///
    /// If the OS refuses to spawn a thread; use [`Pool::try_new`] to handle that.
    pub fn new(config: PoolConfig) -> Pool {
        match Self::try_new(config) {
            Ok(pool) => pool,
            Err(error) => panic!("wisp-scheduler: cannot spawn worker thread: {error}"),
        }
    }

    /// Starts the worker threads, reporting a failure to spawn one.
    pub fn try_new(config: PoolConfig) -> io::Result<Pool> {
        let workers = config.workers.max(1);
        let locals: Vec<Worker<TaskRef>> = (0..workers).map(|_| Worker::new_fifo()).collect();
        let shared = Arc::new(Shared {
            name: config.name,
            injector: Injector::new(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            sleepers: AtomicUsize::new(0),
            idle: Mutex::new(Idle { sleeping: 0, permits: 0 }),
            wakeup: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let mut pool = Pool { shared: shared.clone(), threads: Vec::with_capacity(workers) };
        for (index, local) in locals.into_iter().enumerate() {
            let shared = shared.clone();
            let thread = thread::Builder::new()
                .name(format!("{}-{index}", shared.name))
                .spawn(move || run_worker(shared, index, local))?;
            // On error, dropping `pool` stops the threads already started.
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// A handle for queueing tasks.
    pub fn handle(&self) -> Handle {
        Handle { shared: self.shared.clone() }
    }

    /// Stops accepting tasks, lets workers finish the task they run, and joins them.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.begin_shutdown();
        let current = thread::current().id();
        for thread in self.threads.drain(..) {
            // A task that drops the pool must not join its own thread.
            if thread.thread().id() == current {
                continue;
            }
            if thread.join().is_err() {
                tracing::error!(pool = %self.shared.name, "worker thread panicked");
            }
        }
        self.shared.drop_injected();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("name", &self.shared.name).field("workers", &self.threads.len()).finish()
    }
}

impl Handle {
    /// Queue a task. On a worker thread of this same pool it goes to that worker's LIFO slot and
    /// runs right after the current task, on the same core (a message's receiver runs while the
    /// message is in cache; a chain of hand-offs does not migrate between workers); a task the
    /// slot already held moves to the local queue, where other workers may steal it. From any
    /// other thread it goes to the pool's global injector. Wakes one parked worker if there is
    /// new stealable work.
    pub fn schedule(&self, task: Arc<dyn Task>) {
        if self.shared.is_shut_down() {
            return;
        }
        match self.current_worker() {
            Some(worker) => {
                // The newest task takes the LIFO slot; the one it displaces becomes stealable.
                let displaced = worker.lifo.borrow_mut().replace(task);
                match displaced {
                    Some(previous) => worker.local.push(previous),
                    // Nothing another worker could take: this worker runs the slot next.
                    None => return,
                }
            }
            None => self.shared.injector.push(task),
        }
        self.shared.wake_one();
    }

    /// Queue on the global injector always (used for fairness when a task yields after a long slice).
    pub fn schedule_global(&self, task: Arc<dyn Task>) {
        if self.shared.is_shut_down() {
            return;
        }
        self.shared.injector.push(task);
        self.shared.wake_one();
    }

    /// Queue a task that has used up its slice: behind every task already waiting (on the
    /// global injector, like [`Handle::schedule_global`]); but when nothing waits, neither in
    /// this worker's queues nor in the injector, straight back into this worker's LIFO slot.
    /// Going through the injector then would only wake a parked worker to steal the task, and
    /// a busy task would hop to the other core (its cache cold) at every slice.
    pub fn schedule_yielded(&self, task: Arc<dyn Task>) {
        if self.shared.is_shut_down() {
            return;
        }
        if let Some(worker) = self.current_worker() {
            let mut lifo = worker.lifo.borrow_mut();
            if lifo.is_none() && !self.shared.others_waiting(&worker.local) {
                *lifo = Some(task);
                return;
            }
        }
        self.shared.injector.push(task);
        self.shared.wake_one();
    }

    /// Number of worker threads.
    pub fn workers(&self) -> usize {
        self.shared.stealers.len()
    }

    /// True when the current thread is a worker of this pool.
    pub fn is_worker_thread(&self) -> bool {
        self.current_worker().is_some()
    }

    /// The current thread's worker context, if it is a worker of this pool.
    fn current_worker(&self) -> Option<Rc<WorkerContext>> {
        let pool_id = self.shared.id();
        CURRENT_WORKER
            .try_with(|current| current.borrow().as_ref().filter(|worker| worker.pool_id == pool_id).cloned())
            .ok()
            .flatten()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("pool", &self.shared.name).finish()
    }
}

impl Shared {
    /// Identifies the pool; stable while any `Arc<Shared>` is alive.
    fn id(&self) -> usize {
        self as *const Shared as usize
    }

    fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    fn lock_idle(&self) -> MutexGuard<'_, Idle> {
        // The guarded counters stay consistent even if a holder panicked.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Scheduler side of the parking protocol (see module docs).
    fn wake_one(&self) {
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut idle = self.lock_idle();
        if idle.sleeping > 0 {
            idle.sleeping -= 1;
            idle.permits += 1;
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            drop(idle);
            self.wakeup.notify_one();
        }
    }

    /// Worker side of the parking protocol (see module docs).
    fn park(&self) {
        let mut idle = self.lock_idle();
        idle.sleeping += 1;
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if self.has_queued_work() || self.shutdown.load(Ordering::SeqCst) {
            idle.sleeping -= 1;
            self.sleepers.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        loop {
            idle = self.wakeup.wait(idle).unwrap_or_else(PoisonError::into_inner);
            if idle.permits > 0 {
                idle.permits -= 1;
                return;
            }
            if self.shutdown.load(Ordering::SeqCst) {
                idle.sleeping = idle.sleeping.saturating_sub(1);
                self.sleepers.fetch_sub(1, Ordering::SeqCst);
                return;
            }
        }
    }

    /// Tasks queued for this worker besides its LIFO slot: its local queue or the injector.
    fn others_waiting(&self, local: &Worker<TaskRef>) -> bool {
        !local.is_empty() || !self.injector.is_empty()
    }

    fn has_queued_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|stealer| !stealer.is_empty())
    }

    fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // Taking the lock orders this after any worker's check-then-wait.
        let _idle = self.lock_idle();
        self.wakeup.notify_all();
    }

    /// Drops tasks left in the injector, breaking task -> Handle -> pool cycles.
    fn drop_injected(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(task) => drop(task),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
    }

    fn find_task(&self, index: usize, local: &Worker<TaskRef>, tick: u32, random: &mut XorShift) -> Option<TaskRef> {
        if should_check_global(tick) {
            if let Some(task) = self.steal_from_injector(local) {
                return Some(task);
            }
        }
        local.pop().or_else(|| self.steal_from_injector(local)).or_else(|| self.steal_from_peers(index, local, random))
    }

    fn steal_from_injector(&self, local: &Worker<TaskRef>) -> Option<TaskRef> {
        iter::repeat_with(|| self.injector.steal_batch_and_pop(local))
            .find(|steal| !steal.is_retry())
            .and_then(Steal::success)
    }

    fn steal_from_peers(&self, index: usize, local: &Worker<TaskRef>, random: &mut XorShift) -> Option<TaskRef> {
        let count = self.stealers.len();
        if count <= 1 {
            return None;
        }
        let start = random.below(count);
        loop {
            let mut retry = false;
            for offset in 0..count {
                let victim = (start + offset) % count;
                if victim == index {
                    continue;
                }
                match self.stealers[victim].steal_batch_and_pop(local) {
                    Steal::Success(task) => return Some(task),
                    Steal::Retry => retry = true,
                    Steal::Empty => {}
                }
            }
            if !retry {
                return None;
            }
        }
    }
}

fn run_worker(shared: Arc<Shared>, index: usize, local: Worker<TaskRef>) {
    let context = Rc::new(WorkerContext { pool_id: shared.id(), local, lifo: RefCell::new(None) });
    CURRENT_WORKER.with(|current| *current.borrow_mut() = Some(context.clone()));
    let mut random = XorShift::seeded(index);
    let mut tick: u32 = 0;
    let mut idle_rounds = 0;
    let mut lifo_streak = 0;
    while !shared.is_shut_down() {
        let slot = context.lifo.borrow_mut().take();
        let next = match slot {
            Some(task) if take_lifo(lifo_streak, || shared.others_waiting(&context.local)) => {
                // Unbounded now that nothing else may be waiting: saturate rather than wrap.
                lifo_streak = lifo_streak.saturating_add(1);
                Some(task)
            }
            other => {
                if let Some(task) = other {
                    // Too many in a row: let the queues have a turn.
                    context.local.push(task);
                }
                lifo_streak = 0;
                shared.find_task(index, &context.local, tick, &mut random)
            }
        };
        match next {
            Some(task) => {
                idle_rounds = 0;
                tick = tick.wrapping_add(1);
                run_task(&shared.name, task);
            }
            None if keep_spinning(idle_rounds) => {
                idle_rounds += 1;
                spin_round(idle_rounds);
            }
            None => {
                idle_rounds = 0;
                shared.park();
            }
        }
    }
    CURRENT_WORKER.with(|current| current.borrow_mut().take());
    drop(context.lifo.borrow_mut().take());
    while let Some(task) = context.local.pop() {
        drop(task);
    }
}

/// Tasks a worker runs from its LIFO slot in a row before it looks at its queues (as tokio).
const MAX_LIFO_STREAK: u32 = 3;

/// Whether the task in the LIFO slot runs next, after `streak` LIFO runs in a row. Past the
/// streak it gives way only to tasks that wait (`others_waiting`, asked only then): with none,
/// moving it to the local queue would only let an idle worker steal it, and a chain of
/// hand-offs (a token passed around a ring of processes) would then hop between cores.
pub fn take_lifo(streak: u32, others_waiting: impl FnOnce() -> bool) -> bool {
    streak < MAX_LIFO_STREAK || !others_waiting()
}

/// Rounds of looking for work an idle worker makes before it parks: about 20-50 µs. A message
/// hop between workers is far shorter than a futex wake-up, and while a worker spins the
/// scheduler side finds no sleeper and skips the lock and the system call.
const SPIN_ROUNDS: u32 = 64;

/// Whether an idle worker that has looked `idle_rounds` times already looks once more.
pub fn keep_spinning(idle_rounds: u32) -> bool {
    idle_rounds < SPIN_ROUNDS
}

/// The pause between two looks: a few CPU spin hints, then yielding the thread to the OS.
fn spin_round(idle_rounds: u32) {
    if idle_rounds < SPIN_ROUNDS / 2 {
        for _ in 0..32 {
            std::hint::spin_loop();
        }
    } else {
        thread::yield_now();
    }
}

fn run_task(pool: &str, task: TaskRef) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| task.run())) {
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("<non-string panic payload>");
        tracing::error!(pool, "task panicked: {message}");
    }
}

/// Tiny per-worker PRNG for picking the first steal victim; quality does not matter.
struct XorShift(u64);

impl XorShift {
    fn seeded(index: usize) -> Self {
        // Any non-zero seed works; spread workers apart.
        XorShift((index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, bound: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x % bound as u64) as usize
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn pool(workers: usize) -> Pool {
        Pool::new(PoolConfig { name: "test-pool".into(), workers })
    }

    /// Sends its id when run; counts runs.
    struct Report {
        id: usize,
        runs: AtomicUsize,
        done: Mutex<mpsc::Sender<usize>>,
    }

    impl Task for Report {
        fn run(self: Arc<Self>) {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let _ = self.done.lock().unwrap_or_else(PoisonError::into_inner).send(self.id);
        }
    }

    fn report(id: usize, done: &mpsc::Sender<usize>) -> Arc<Report> {
        Arc::new(Report { id, runs: AtomicUsize::new(0), done: Mutex::new(done.clone()) })
    }

    #[test]
    fn global_poll_policy() {
        assert!(should_check_global(0));
        assert!(!should_check_global(1));
        assert!(should_check_global(GLOBAL_POLL_INTERVAL));
    }

    #[test]
    fn lifo_and_spin_policies() {
        let cases = [
            (0, true, true),
            (MAX_LIFO_STREAK - 1, true, true),
            (MAX_LIFO_STREAK, true, false),
            (MAX_LIFO_STREAK, false, true),
            (MAX_LIFO_STREAK * 10, false, true),
        ];
        for (streak, others_waiting, expected) in cases {
            assert_eq!(take_lifo(streak, || others_waiting), expected, "take_lifo({streak}, {others_waiting})");
        }
        for (rounds, expected) in [(0, true), (SPIN_ROUNDS - 1, true), (SPIN_ROUNDS, false)] {
            assert_eq!(keep_spinning(rounds), expected, "keep_spinning({rounds})");
        }
    }

    /// Schedules `next` from its worker and reports the worker thread it ran on.
    struct Hop {
        handle: Handle,
        next: Option<Arc<Hop>>,
        ran_on: Mutex<mpsc::Sender<thread::ThreadId>>,
    }

    impl Task for Hop {
        fn run(self: Arc<Self>) {
            if let Some(next) = &self.next {
                self.handle.schedule(next.clone());
            }
            let _ = self.ran_on.lock().unwrap_or_else(PoisonError::into_inner).send(thread::current().id());
        }
    }

    #[test]
    fn a_task_scheduled_from_a_worker_runs_next_on_that_worker() {
        let pool = pool(2);
        let (ran_on, threads) = mpsc::channel();
        let second = Arc::new(Hop { handle: pool.handle(), next: None, ran_on: Mutex::new(ran_on.clone()) });
        let first = Arc::new(Hop { handle: pool.handle(), next: Some(second), ran_on: Mutex::new(ran_on) });
        pool.handle().schedule(first);
        let a = threads.recv_timeout(TIMEOUT).expect("first task did not run");
        let b = threads.recv_timeout(TIMEOUT).expect("second task did not run");
        assert_eq!(a, b, "the LIFO slot cannot be stolen: the same worker runs both");
        pool.shutdown();
    }

    #[test]
    fn many_tasks_from_many_threads_run_exactly_once() {
        let pool = pool(2);
        let (done, results) = mpsc::channel();
        const THREADS: usize = 4;
        const PER_THREAD: usize = 500;
        let tasks: Vec<Arc<Report>> = (0..THREADS * PER_THREAD).map(|id| report(id, &done)).collect();
        thread::scope(|scope| {
            for chunk in tasks.chunks(PER_THREAD) {
                let handle = pool.handle();
                scope.spawn(move || {
                    for task in chunk {
                        handle.schedule(task.clone());
                    }
                });
            }
        });
        let mut seen = vec![false; tasks.len()];
        for _ in 0..tasks.len() {
            let id = results.recv_timeout(TIMEOUT).expect("task did not run");
            assert!(!seen[id], "task {id} ran twice");
            seen[id] = true;
        }
        pool.shutdown();
        assert!(tasks.iter().all(|t| t.runs.load(Ordering::SeqCst) == 1));
    }

    /// Re-schedules itself from the worker `remaining` times.
    struct Chain {
        handle: Handle,
        remaining: AtomicUsize,
        on_worker: AtomicBool,
        done: Mutex<mpsc::Sender<()>>,
    }

    impl Task for Chain {
        fn run(self: Arc<Self>) {
            if !self.handle.is_worker_thread() {
                self.on_worker.store(false, Ordering::SeqCst);
            }
            if self.remaining.fetch_sub(1, Ordering::SeqCst) > 1 {
                let handle = self.handle.clone();
                handle.schedule(self);
            } else {
                let _ = self.done.lock().unwrap_or_else(PoisonError::into_inner).send(());
            }
        }
    }

    #[test]
    fn task_scheduled_from_worker_runs() {
        let pool = pool(2);
        let handle = pool.handle();
        assert!(!handle.is_worker_thread());
        assert_eq!(handle.workers(), 2);
        let (done, finished) = mpsc::channel();
        let chain = Arc::new(Chain {
            handle: handle.clone(),
            remaining: AtomicUsize::new(1000),
            on_worker: AtomicBool::new(true),
            done: Mutex::new(done),
        });
        handle.schedule(chain.clone());
        finished.recv_timeout(TIMEOUT).expect("chain did not finish");
        assert!(chain.on_worker.load(Ordering::SeqCst));
        assert_eq!(chain.remaining.load(Ordering::SeqCst), 0);
    }

    /// Yields its slice until `remaining` runs are done (`schedule_yielded`), reporting its
    /// thread each run; on its first run it queues `first_behind` on the injector.
    struct Yielder {
        handle: Handle,
        remaining: Arc<AtomicUsize>,
        first_behind: Mutex<Option<Arc<dyn Task>>>,
        ran_on: Mutex<mpsc::Sender<thread::ThreadId>>,
    }

    impl Task for Yielder {
        fn run(self: Arc<Self>) {
            if let Some(other) = self.first_behind.lock().unwrap_or_else(PoisonError::into_inner).take() {
                self.handle.schedule_global(other);
            }
            let _ = self.ran_on.lock().unwrap_or_else(PoisonError::into_inner).send(thread::current().id());
            if self.remaining.fetch_sub(1, Ordering::SeqCst) > 1 {
                let handle = self.handle.clone();
                handle.schedule_yielded(self);
            }
        }
    }

    /// Reports the runs a yielder has left when it runs.
    struct Probe {
        remaining: Arc<AtomicUsize>,
        seen: Mutex<mpsc::Sender<usize>>,
    }

    impl Task for Probe {
        fn run(self: Arc<Self>) {
            let _ =
                self.seen.lock().unwrap_or_else(PoisonError::into_inner).send(self.remaining.load(Ordering::SeqCst));
        }
    }

    #[test]
    fn a_yielding_task_with_nothing_else_waiting_stays_on_its_worker() {
        let pool = pool(2);
        let (ran_on, threads) = mpsc::channel();
        let task = Arc::new(Yielder {
            handle: pool.handle(),
            remaining: Arc::new(AtomicUsize::new(200)),
            first_behind: Mutex::new(None),
            ran_on: Mutex::new(ran_on),
        });
        pool.handle().schedule(task);
        let first = threads.recv_timeout(TIMEOUT).expect("the task runs");
        for run in 1..200 {
            let next = threads.recv_timeout(TIMEOUT).expect("the task runs again");
            assert_eq!(next, first, "run {run} moved to another worker");
        }
        pool.shutdown();
    }

    #[test]
    fn a_yielding_task_goes_behind_a_waiting_one() {
        let pool = pool(1);
        let remaining = Arc::new(AtomicUsize::new(3));
        let (seen, probed) = mpsc::channel();
        let probe = Arc::new(Probe { remaining: remaining.clone(), seen: Mutex::new(seen) });
        let (ran_on, threads) = mpsc::channel();
        let task = Arc::new(Yielder {
            handle: pool.handle(),
            remaining,
            first_behind: Mutex::new(Some(probe)),
            ran_on: Mutex::new(ran_on),
        });
        pool.handle().schedule(task);
        assert_eq!(probed.recv_timeout(TIMEOUT), Ok(2), "the waiting task ran after one run of the yielder");
        for _ in 0..3 {
            threads.recv_timeout(TIMEOUT).expect("the yielder runs all its runs");
        }
        pool.shutdown();
    }

    #[test]
    fn parked_workers_wake_on_schedule() {
        let pool = pool(2);
        let handle = pool.handle();
        let (done, results) = mpsc::channel();
        for round in 0..50 {
            // Wait until both workers are asleep, so this schedule must wake one.
            let deadline = std::time::Instant::now() + TIMEOUT;
            while pool.shared.sleepers.load(Ordering::SeqCst) < 2 {
                assert!(std::time::Instant::now() < deadline, "workers never parked");
                thread::yield_now();
            }
            handle.schedule(report(round, &done));
            assert_eq!(results.recv_timeout(TIMEOUT), Ok(round));
        }
    }

    struct Panics;

    impl Task for Panics {
        fn run(self: Arc<Self>) {
            panic!("deliberate test panic");
        }
    }

    #[test]
    fn panicking_task_does_not_kill_the_pool() {
        let pool = pool(1);
        let handle = pool.handle();
        let (done, results) = mpsc::channel();
        for id in 0..3 {
            handle.schedule(Arc::new(Panics));
            handle.schedule_global(report(id, &done));
            assert_eq!(results.recv_timeout(TIMEOUT), Ok(id));
        }
    }

    /// Blocks in run until released, to prove shutdown waits for a running task.
    struct Blocks {
        started: Mutex<mpsc::Sender<()>>,
        release: Mutex<mpsc::Receiver<()>>,
        finished: AtomicBool,
    }

    impl Task for Blocks {
        fn run(self: Arc<Self>) {
            let _ = self.started.lock().unwrap_or_else(PoisonError::into_inner).send(());
            let _ = self.release.lock().unwrap_or_else(PoisonError::into_inner).recv_timeout(TIMEOUT);
            self.finished.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn shutdown_joins_after_running_task_finishes() {
        let pool = pool(2);
        let handle = pool.handle();
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let task = Arc::new(Blocks {
            started: Mutex::new(started_tx),
            release: Mutex::new(release_rx),
            finished: AtomicBool::new(false),
        });
        handle.schedule(task.clone());
        started.recv_timeout(TIMEOUT).expect("task did not start");
        let shutdown = thread::spawn(move || pool.shutdown());
        release.send(()).expect("task is waiting");
        shutdown.join().expect("shutdown panicked");
        assert!(task.finished.load(Ordering::SeqCst));
        // Scheduling after shutdown drops the task instead of queueing it.
        let (done, _results) = mpsc::channel();
        let late = report(0, &done);
        handle.schedule(late.clone());
        assert_eq!(Arc::strong_count(&late), 1);
    }
}
