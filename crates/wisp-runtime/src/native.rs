//! Native Rust processes: state machines on the same scheduler as Lua shards.
//!
//! A native process is its own scheduler task. It is stepped whenever its mailbox wakes it, and
//! says after each step whether it waits for more or is done.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use wisp_core::{Envelope, ExitResult, Message, Payloads, Pid, Value};
use wisp_mailbox::{Mailbox, Wake};
use wisp_process::{Dest, Effect, Kernel, ProcessExit, Router, Supervision, Undelivered};
use wisp_scheduler::{Handle, ScheduleState, Task};

/// What a native process does after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Wait for the next envelope.
    Wait,
    /// The process is done.
    Done(ExitResult),
}

/// A process written in Rust. Signals (links, monitors, terminate) follow the same rules as for
/// Lua processes (`wisp_process::Supervision`); the process sees messages, the events those
/// rules let through (a CANCEL; a LINK_DOWN only with `trap_links`) and its own timers.
pub trait Process: Send + 'static {
    /// Runs once when the process starts.
    fn init(&mut self, cx: &mut Context<'_>) -> Step {
        let _ = cx;
        Step::Wait
    }
    /// Handles one envelope from the mailbox.
    fn handle(&mut self, cx: &mut Context<'_>, envelope: Envelope) -> Step;
}

/// Builds a native process from its spawn arguments.
pub type NativeFactory = Arc<dyn Fn(Vec<Value>) -> Box<dyn Process> + Send + Sync>;

/// A native process's view of the runtime: its PID and the message router.
pub struct Context<'a> {
    pid: Pid,
    router: &'a dyn Router,
}

impl Context<'_> {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn render_pid(&self, pid: Pid) -> String {
        self.router.render_pid(pid)
    }

    pub fn parse_pid(&self, text: &str) -> Option<Pid> {
        self.router.parse_pid(text)
    }

    /// Sends to a PID; a failed send hands the message back.
    pub fn send(&self, to: Pid, topic: &str, payloads: impl Into<Payloads>) -> Result<(), Undelivered> {
        let message = Message { from: Some(self.pid), topic: topic.into(), payloads: payloads.into() };
        self.router.send(self.pid, Dest::Pid(to), message)
    }

    /// Sends to a registered name; a failed send hands the message back.
    pub fn send_to_name(&self, name: &str, topic: &str, payloads: impl Into<Payloads>) -> Result<(), Undelivered> {
        let message = Message { from: Some(self.pid), topic: topic.into(), payloads: payloads.into() };
        self.router.send(self.pid, Dest::Name(name), message)
    }
}

pub(crate) struct NativeTask {
    waker: Arc<NativeWaker>,
    pid: Pid,
    mailbox: Arc<Mailbox<Envelope>>,
    sched: ScheduleState,
    pool: Handle,
    kernel: Arc<dyn Kernel>,
    state: Mutex<NativeState>,
}

struct NativeState {
    process: Option<Box<dyn Process>>,
    started: bool,
    supervision: Supervision,
}

/// The mailbox hook of a native process. It owns the task while the process lives (an idle
/// task is referenced by nothing else); the task clears it when it finishes, ending the cycle
/// task -> mailbox -> hook -> task.
pub(crate) struct NativeWaker(pub(crate) Mutex<Option<Arc<NativeTask>>>);

impl Wake for NativeWaker {
    fn wake(&self, _token: u32) {
        let task = self.0.lock().ok().and_then(|w| w.clone());
        if let Some(task) = task {
            if task.sched.notify() {
                task.pool.clone().schedule(task);
            }
        }
    }
}

impl NativeTask {
    // One call site, which has every part at hand; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start(
        pid: Pid,
        mailbox: Arc<Mailbox<Envelope>>,
        waker: Arc<NativeWaker>,
        process: Box<dyn Process>,
        pool: Handle,
        kernel: Arc<dyn Kernel>,
        links: Vec<Pid>,
        monitors: Vec<Pid>,
    ) {
        let task = Arc::new(NativeTask {
            waker: waker.clone(),
            pid,
            mailbox,
            sched: ScheduleState::new(),
            pool,
            kernel,
            state: Mutex::new(NativeState {
                process: Some(process),
                started: false,
                supervision: Supervision { links, monitors, ..Supervision::default() },
            }),
        });
        if let Ok(mut w) = waker.0.lock() {
            *w = Some(task.clone());
        }
        if task.sched.notify() {
            task.pool.clone().schedule(task);
        }
    }

    fn finish(&self, state: &mut NativeState, result: ExitResult) {
        state.process = None;
        if let Ok(mut w) = self.waker.0.lock() {
            *w = None;
        }
        let leftover = self.mailbox.close();
        self.kernel.exited(ProcessExit {
            pid: self.pid,
            result,
            supervision: std::mem::take(&mut state.supervision),
            leftover,
        });
    }
}

/// Envelopes a native process handles per run before yielding the worker.
const NATIVE_BATCH: usize = 64;

impl Task for NativeTask {
    fn run(self: Arc<Self>) {
        self.sched.begin_run();
        let mut more = false;
        {
            let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let state = &mut *guard;
            if let Some(mut process) = state.process.take() {
                let mut cx = Context { pid: self.pid, router: &*self.kernel };
                let mut outcome = Step::Wait;
                if !state.started {
                    state.started = true;
                    outcome = process.init(&mut cx);
                }
                let mut queue = VecDeque::new();
                let mut handled = 0;
                while outcome == Step::Wait && handled < NATIVE_BATCH {
                    let Some(envelope) = queue.pop_front().or_else(|| self.mailbox.pop()) else {
                        break;
                    };
                    handled += 1;
                    outcome = match envelope {
                        envelope @ (Envelope::Signal { .. } | Envelope::Event(_)) => {
                            match state.supervision.on_envelope(envelope, |pid| self.kernel.render_pid(pid)) {
                                Some(Effect::Event(event)) => process.handle(&mut cx, Envelope::Event(event)),
                                Some(Effect::Exit(reason)) => Step::Done(ExitResult::Error(reason)),
                                Some(Effect::Nothing) | None => Step::Wait,
                            }
                        }
                        other => process.handle(&mut cx, other),
                    };
                }
                match outcome {
                    Step::Done(result) => self.finish(state, result),
                    Step::Wait => {
                        state.process = Some(process);
                        more = handled == NATIVE_BATCH || !self.mailbox.prepare_wait();
                    }
                }
            }
        }
        if self.sched.end_run(more) {
            self.pool.clone().schedule_yielded(self.clone());
        }
    }
}
