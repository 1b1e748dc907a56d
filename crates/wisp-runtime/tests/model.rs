//! The process table checked against a model: random sequences of operations (spawn, send,
//! exits, terminate, monitors, links, `trap_links`, names, `with_name`, `exec`) run on real Lua
//! processes and on the contract's model (`model/process_table.rs`), and every reply, every exit
//! and every event each process receives must agree.
//!
//! The real side: each process is a puppet (`model/puppet.lua`) that performs the commands the
//! test sends it with the real process API and reports to the recorder what each call returned,
//! every event it receives and every note it is sent; the recorder is a native process that
//! hands the reports to the test. The watcher (`model/watcher.lua`) monitors every puppet (each
//! asks it to as it starts) and reports its end. All reports go through the recorder's one
//! mailbox, so a puppet's own reports come before the report of its end.
//!
//! Each operation is synchronous: the test sends the command, then waits for every consequence
//! the model predicts (the replies, the exits, the events, the notes), with a timeout; anything
//! the model rules out fails at once. Within a step each process's events are compared as a
//! multiset (from several senders the order is open); the steps themselves are in order. Two
//! operations are not one call at a time on purpose: two processes calling `with_name` at once,
//! and an `exec` in a coroutine while the puppet's main coroutine waits on `events()`. A
//! sequence ends with a round trip to every live puppet (a command sent after a step's
//! consequences lands behind them, so nothing may be reported before its reply), then the
//! watcher terminates the puppets, and every name must then be free.
//!
//! `WISP_MODEL_CASES=<n>` sets the number of sequences (default 10,000, split over two threads,
//! each with a node of its own), `WISP_MODEL_SEED=<u64>` the seed (printed on failure: the same
//! seed and count replay the same sequences, up to the runtime's own timing), and
//! `WISP_MODEL_TRACE=1` prints every sequence as it ran. A failure is shrunk, and the failing
//! sequence is printed as the operations it ran with their results.

#[path = "model/process_table.rs"]
mod process_table;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};
use wisp_core::{format_number, Envelope, Pid, Table, Value};
use wisp_registry::Registry;
use wisp_runtime::{Context, Node, Process};

use process_table::{
    proc_name, Ack, Action, Cause, Dest, EventKind, ExpectedEvent, Model, Outcome, Proc, Reply, SpawnFlags, Step,
    NAMES, NOPROC,
};

const HOST: &str = "app:processes";
const PUPPET: &str = "app:puppet";
const WATCHER: &str = "app:watcher";
const RECORDER: &str = "app:recorder";

const DEFAULT_CASES: u32 = 10_000;
/// Test threads, each with its own node: a step is mostly waiting for wake-ups, so two nodes
/// keep two cores busier than one.
const THREADS: u32 = 2;
/// Workers of each node's process host: two, so that puppets on different shards really run at
/// the same time (two callers of `with_name` race).
const WORKERS: usize = 2;
/// How long one step may take to show every consequence the model predicts.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The same while a failure shrinks: the failing sequence runs again for every shrink step, and a
/// lost event would cost the whole timeout each time.
const SHRINK_STEP_TIMEOUT: Duration = Duration::from_secs(2);
/// Processes one sequence may start at most.
const MAX_PROCESSES: usize = 6;

/// Cases of the contract that runtimes got wrong before. Setting a flag to false makes the
/// generator leave its case out (the model still describes it): a way to look past a known
/// mismatch at what else differs.
///
/// `process.link` of a PID that is not alive: true and LINK_DOWN `noproc`.
const CHECK_LINK_TO_DEAD: bool = true;
/// `registry.register(name, pid)` of a PID that is not alive: `nil, err`.
const CHECK_REGISTER_DEAD_PID: bool = true;
/// `process.terminate(process.pid())`: ends the caller at the call.
const CHECK_TERMINATE_SELF: bool = true;
/// `process.exec` in one coroutine while another waits on `events()`: the child's EXIT goes to
/// the exec.
const CHECK_EXEC_BESIDE_EVENT_READER: bool = true;

// ---------------------------------------------------------------------------
// Operations as generated: processes chosen by index among the candidates at the time
// ---------------------------------------------------------------------------

/// A generated operation. Each `u8` picks a process among those that fit when the operation
/// runs (modulo their number), so that every sequence is runnable and shrinks cleanly.
#[derive(Clone, Debug)]
enum Op {
    Start,
    Spawn { by: u8, flags: SpawnFlags },
    SpawnNamed { by: u8, name: u8, flags: SpawnFlags },
    SpawnNamedTogether { by: u8, with: u8, name: u8, flags: SpawnFlags },
    Send { by: u8, to: u8, by_name: bool },
    Exit { who: u8, error: bool },
    Terminate { by: u8, target: u8 },
    Monitor { by: u8, target: u8 },
    Unmonitor { by: u8, target: u8 },
    Link { by: u8, target: u8 },
    Unlink { by: u8, target: u8 },
    Trap { who: u8, on: bool },
    Register { by: u8, name: u8, target: Option<u8> },
    Unregister { by: u8, name: u8 },
    Lookup { by: u8, name: u8 },
    Exec { by: u8, fails: bool, beside_reader: bool },
}

impl Op {
    /// The pick of the process that performs it (none: the test does).
    fn actor(&self) -> Option<u8> {
        match *self {
            Op::Start => None,
            Op::Exit { who, .. } | Op::Trap { who, .. } => Some(who),
            Op::Spawn { by, .. }
            | Op::SpawnNamed { by, .. }
            | Op::SpawnNamedTogether { by, .. }
            | Op::Send { by, .. }
            | Op::Terminate { by, .. }
            | Op::Monitor { by, .. }
            | Op::Unmonitor { by, .. }
            | Op::Link { by, .. }
            | Op::Unlink { by, .. }
            | Op::Register { by, .. }
            | Op::Unregister { by, .. }
            | Op::Lookup { by, .. }
            | Op::Exec { by, .. } => Some(by),
        }
    }
}

#[derive(Clone)]
struct Scenario {
    /// Puppets the test starts first.
    roots: usize,
    /// `None`: no operation (what an operation shrinks to).
    ops: Vec<Option<Op>>,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ops: Vec<&Op> = self.ops.iter().flatten().collect();
        write!(f, "{} puppet(s), then {ops:?}", self.roots)
    }
}

fn flags() -> impl Strategy<Value = SpawnFlags> {
    (any::<bool>(), any::<bool>()).prop_map(|(monitor, link)| SpawnFlags { monitor, link })
}

fn op() -> impl Strategy<Value = Op> {
    let pick = any::<u8>;
    prop_oneof![
        1 => Just(Op::Start),
        4 => (pick(), flags()).prop_map(|(by, flags)| Op::Spawn { by, flags }),
        2 => (pick(), pick(), flags()).prop_map(|(by, name, flags)| Op::SpawnNamed { by, name, flags }),
        1 => (pick(), pick(), pick(), flags())
            .prop_map(|(by, with, name, flags)| Op::SpawnNamedTogether { by, with, name, flags }),
        3 => (pick(), pick(), any::<bool>()).prop_map(|(by, to, by_name)| Op::Send { by, to, by_name }),
        2 => (pick(), any::<bool>()).prop_map(|(who, error)| Op::Exit { who, error }),
        2 => (pick(), pick()).prop_map(|(by, target)| Op::Terminate { by, target }),
        3 => (pick(), pick()).prop_map(|(by, target)| Op::Monitor { by, target }),
        1 => (pick(), pick()).prop_map(|(by, target)| Op::Unmonitor { by, target }),
        3 => (pick(), pick()).prop_map(|(by, target)| Op::Link { by, target }),
        1 => (pick(), pick()).prop_map(|(by, target)| Op::Unlink { by, target }),
        // Mostly on: a LINK_DOWN is seen only by a trapping process.
        2 => (pick(), prop::bool::weighted(0.75)).prop_map(|(who, on)| Op::Trap { who, on }),
        3 => (pick(), pick(), prop::option::of(pick()))
            .prop_map(|(by, name, target)| Op::Register { by, name, target }),
        1 => (pick(), pick()).prop_map(|(by, name)| Op::Unregister { by, name }),
        2 => (pick(), pick()).prop_map(|(by, name)| Op::Lookup { by, name }),
        1 => (pick(), any::<bool>(), any::<bool>())
            .prop_map(|(by, fails, beside_reader)| Op::Exec { by, fails, beside_reader }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    // An operation shrinks to `None` (left out): a failing sequence shrinks below the shortest
    // length generated.
    let op = prop::option::weighted(0.98, op());
    (1..=3usize, prop::collection::vec(op, 5..=30)).prop_map(|(roots, ops)| Scenario { roots, ops })
}

fn choose(candidates: &[Proc], pick: u8) -> Option<Proc> {
    (!candidates.is_empty()).then(|| candidates[pick as usize % candidates.len()])
}

/// The action `op` is on `model` now (`number` numbers its note or exec), or why it is skipped.
fn resolve(op: &Op, model: &Model, number: u32) -> Result<Action, &'static str> {
    let live = model.live();
    let all: Vec<Proc> = (0..model.count()).collect();
    let others = |by: Proc, among: &[Proc]| -> Vec<Proc> { among.iter().copied().filter(|p| *p != by).collect() };
    let name = |n: u8| NAMES[n as usize % NAMES.len()];
    let room = model.count() < MAX_PROCESSES;
    let Some(actor) = op.actor() else {
        return if room { Ok(Action::Start) } else { Err("process limit reached") };
    };
    let by = match choose(&live, actor) {
        Some(by) => by,
        // Everybody ended: the sequence goes on with a new puppet.
        None if room => return Ok(Action::Start),
        None => return Err("no process alive and the process limit reached"),
    };
    let target_among = |among: &[Proc], pick: u8| choose(&others(by, among), pick).ok_or("no other process");
    Ok(match *op {
        Op::Start => unreachable!("an operation of the test has no actor"),
        Op::Spawn { flags, .. } if room => Action::Spawn { by, flags, name: None },
        Op::SpawnNamed { name: n, flags, .. } if room || model.holder(name(n)).is_some() => {
            Action::Spawn { by, flags, name: Some(name(n)) }
        }
        Op::SpawnNamedTogether { with, name: n, flags, .. } if room || model.holder(name(n)).is_some() => {
            let with = choose(&others(by, &live), with).ok_or("no other process alive")?;
            Action::SpawnNamedTogether { by: [by, with], flags, name: name(n) }
        }
        Op::Spawn { .. } | Op::SpawnNamed { .. } | Op::SpawnNamedTogether { .. } => {
            return Err("process limit reached")
        }
        Op::Send { to, by_name: true, .. } => Action::Send { by, to: Dest::Name(name(to)), number },
        Op::Send { to, by_name: false, .. } => {
            Action::Send { by, to: Dest::Pid(choose(&all, to).ok_or("no process")?), number }
        }
        Op::Exit { error, .. } => Action::Exit { who: by, error },
        Op::Terminate { target, .. } if CHECK_TERMINATE_SELF => {
            Action::Terminate { by, target: choose(&live, target).ok_or("no process alive")? }
        }
        Op::Terminate { target, .. } => Action::Terminate { by, target: target_among(&live, target)? },
        Op::Monitor { target, .. } => Action::Monitor { by, target: target_among(&all, target)? },
        Op::Unmonitor { target, .. } => Action::Unmonitor { by, target: target_among(&all, target)? },
        Op::Link { target, .. } if CHECK_LINK_TO_DEAD => Action::Link { by, target: target_among(&all, target)? },
        Op::Link { target, .. } => Action::Link { by, target: target_among(&live, target)? },
        Op::Unlink { target, .. } => Action::Unlink { by, target: target_among(&all, target)? },
        Op::Trap { on, .. } => Action::Trap { who: by, on },
        Op::Register { name: n, target: None, .. } => Action::Register { by, name: name(n), target: None },
        Op::Register { name: n, target: Some(t), .. } => {
            let among = if CHECK_REGISTER_DEAD_PID { &all } else { &live };
            Action::Register { by, name: name(n), target: Some(choose(among, t).ok_or("no process")?) }
        }
        Op::Unregister { name: n, .. } => Action::Unregister { by, name: name(n) },
        Op::Lookup { name: n, .. } => Action::Lookup { by, name: name(n) },
        Op::Exec { fails, beside_reader, .. } => {
            Action::Exec { by, fails, number, beside_reader: beside_reader && CHECK_EXEC_BESIDE_EVENT_READER }
        }
    })
}

// ---------------------------------------------------------------------------
// The node: puppets, the watcher and the recorder
// ---------------------------------------------------------------------------

/// A message to the recorder: its sender's PID (`""` for the runtime), topic and payloads.
#[derive(Debug)]
struct Report {
    from: String,
    topic: String,
    payloads: Vec<Value>,
}

impl Report {
    fn payload(&self, i: usize) -> &Value {
        self.payloads.get(i).unwrap_or(&Value::Nil)
    }
}

/// Hands every message it gets to the test.
struct Recorder {
    reports: mpsc::Sender<Report>,
}

impl Process for Recorder {
    fn handle(&mut self, cx: &mut Context<'_>, envelope: Envelope) -> wisp_runtime::Step {
        if let Envelope::Message(msg) = envelope {
            let from = msg.from.map(|p| cx.render_pid(p)).unwrap_or_default();
            // The test may have stopped listening (it failed): nothing to do then.
            let _ = self.reports.send(Report { from, topic: msg.topic.to_string(), payloads: msg.payloads.into_vec() });
        }
        wisp_runtime::Step::Wait
    }
}

/// One node with its recorder and watcher, kept across the sequences of a thread.
struct Harness {
    node: Node,
    reports: mpsc::Receiver<Report>,
    recorder: String,
    watcher: Pid,
    watcher_text: String,
    seq: u32,
    /// [`STEP_TIMEOUT`], or [`SHRINK_STEP_TIMEOUT`] once the thread has seen a failure.
    step_timeout: Duration,
}

impl Harness {
    fn build() -> Result<Harness, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("model");
        let registry = Registry::load_dir(&dir).map_err(|e| format!("the model's app does not load:\n{e}"))?;
        let (tx, reports) = mpsc::channel();
        let node = Node::builder()
            .registry(registry)
            .default_workers(WORKERS)
            .native(RECORDER, move |_| Box::new(Recorder { reports: tx.clone() }))
            .build()
            .map_err(|e| format!("the node does not build: {e}"))?;
        let recorder =
            node.spawn(RECORDER, HOST, Vec::new()).map_err(|e| format!("the recorder does not start: {e}"))?;
        let recorder = node.render_pid(recorder);
        let watcher = node
            .spawn(WATCHER, HOST, vec![Value::str(&recorder)])
            .map_err(|e| format!("the watcher does not start: {e}"))?;
        let watcher_text = node.render_pid(watcher);
        Ok(Harness { node, reports, recorder, watcher, watcher_text, seq: 0, step_timeout: STEP_TIMEOUT })
    }

    fn puppet_args(&self) -> Vec<Value> {
        let names = Table { array: NAMES.iter().map(Value::str).collect(), map: Vec::new() };
        vec![Value::str(&self.recorder), Value::str(&self.watcher_text), Value::Table(Box::new(names))]
    }
}

// ---------------------------------------------------------------------------
// Running one sequence
// ---------------------------------------------------------------------------

/// What a step showed.
#[derive(Default)]
struct Observed {
    /// Each actor's reply: its two results.
    replies: BTreeMap<Proc, (Value, Value)>,
    ends: BTreeMap<Proc, Outcome>,
    /// Events and notes each process reported, rendered.
    events: BTreeMap<Proc, Vec<String>>,
    notes: BTreeMap<Proc, Vec<String>>,
    /// PIDs the watcher began to watch.
    watching: Vec<String>,
}

/// How many events and notes each process is to receive in a step (at most, for one that ends
/// in it).
struct Due {
    events: BTreeMap<Proc, usize>,
    notes: BTreeMap<Proc, usize>,
}

impl Due {
    fn of(step: &Step) -> Due {
        let mut due = Due { events: BTreeMap::new(), notes: BTreeMap::new() };
        for e in &step.events {
            *due.events.entry(e.to).or_default() += 1;
        }
        for (to, _, _) in &step.notes {
            *due.notes.entry(*to).or_default() += 1;
        }
        due
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Nil => None,
        other => Some(other.to_display_string()),
    }
}

fn render_event(kind: &str, from: &str, error: Option<&str>, value: Option<&str>, held: &str) -> String {
    let mut text = format!("{kind} from {from}");
    if let Some(e) = error {
        let _ = write!(text, " error \"{e}\"");
    }
    if let Some(v) = value {
        let _ = write!(text, " value {v}");
    }
    if !held.is_empty() {
        let _ = write!(text, " (its names still bound: {held})");
    }
    text
}

fn render_note(from: &str, number: &str) -> String {
    format!("note {number} from {from}")
}

/// `a` holds every element of `b`, at least as often.
fn includes(a: &[String], b: &[String]) -> bool {
    let mut rest = a.to_vec();
    b.iter().all(|x| match rest.iter().position(|y| y == x) {
        Some(i) => {
            rest.remove(i);
            true
        }
        None => false,
    })
}

struct Run<'h> {
    harness: &'h mut Harness,
    model: Model,
    pids: Vec<Pid>,
    pid_texts: Vec<String>,
    procs: HashMap<String, Proc>,
    trace: Vec<String>,
}

impl Run<'_> {
    fn bind(&mut self, p: Proc, text: String) -> Result<(), String> {
        let pid = self.harness.node.parse_pid(&text).ok_or_else(|| format!("not a PID: {text}"))?;
        if let Some(other) = self.procs.get(&text) {
            return Err(format!("the new process {} got the PID of {}", proc_name(p), proc_name(*other)));
        }
        debug_assert_eq!(self.pids.len(), p);
        self.pids.push(pid);
        self.pid_texts.push(text.clone());
        self.procs.insert(text, p);
        Ok(())
    }

    fn name_of(&self, pid: &str) -> String {
        self.procs.get(pid).map_or_else(|| format!("no puppet {pid}"), |p| proc_name(*p))
    }

    /// `text` with every known PID written as its process's name.
    fn rename(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (p, pid) in self.pid_texts.iter().enumerate() {
            if out.contains(pid.as_str()) {
                out = out.replace(pid.as_str(), &proc_name(p));
            }
        }
        out
    }

    fn describe_reply(&self, (a, b): &(Value, Value)) -> String {
        let show = |v: &Value| match v {
            Value::Str(_) => {
                let text = v.to_display_string();
                match self.procs.get(&text) {
                    Some(p) => proc_name(*p),
                    None if self.harness.node.parse_pid(&text).is_some() => format!("the PID of no puppet {text}"),
                    None => format!("\"{}\"", self.rename(&text)),
                }
            }
            other => other.to_display_string(),
        };
        match b {
            Value::Nil => show(a),
            _ => format!("{}, {}", show(a), show(b)),
        }
    }

    fn reply_matches(&self, expected: &Reply, (a, b): &(Value, Value)) -> bool {
        match expected {
            Reply::True => *a == Value::Bool(true) && *b == Value::Nil,
            Reply::False => *a == Value::Bool(false) && *b == Value::Nil,
            Reply::Pid(p) => self.pid_texts.get(*p).is_some_and(|t| a.as_str() == Some(t)) && *b == Value::Nil,
            Reply::Number(k) => *a == Value::Number(f64::from(*k)) && *b == Value::Nil,
            Reply::Err(text) => *a == Value::Nil && text.map_or(matches!(b, Value::Str(_)), |t| b.as_str() == Some(t)),
        }
    }

    fn command(&mut self, to: Proc, op: &str, args: Vec<Value>) -> Result<u32, String> {
        self.harness.seq += 1;
        let seq = self.harness.seq;
        let mut array = vec![Value::str(op), Value::Number(f64::from(seq))];
        array.extend(args);
        let command = Value::Table(Box::new(Table { array, map: Vec::new() }));
        self.harness
            .node
            .send(self.pids[to], "cmd", vec![command])
            .map_err(|e| format!("the command to {} was not delivered: {e}", proc_name(to)))?;
        Ok(seq)
    }

    /// Sends the command of `action` to its actors; (actor, command number) of each.
    fn send_command(&mut self, action: &Action) -> Result<Vec<(Proc, u32)>, String> {
        let pid = |p: Proc| Value::str(&self.pid_texts[p]);
        let (op, args) = match *action {
            Action::Start => return Ok(Vec::new()),
            Action::Spawn { flags, name: None, .. } => ("spawn", vec![Value::str(flags.method())]),
            Action::Spawn { flags, name: Some(name), .. } | Action::SpawnNamedTogether { flags, name, .. } => {
                ("spawn_named", vec![Value::str(flags.method()), Value::str(name)])
            }
            Action::Send { to, number, .. } => {
                let dest = match to {
                    Dest::Pid(p) => pid(p),
                    Dest::Name(n) => Value::str(n),
                };
                ("send", vec![dest, Value::Number(f64::from(number))])
            }
            Action::Exit { error, .. } => ("exit", vec![Value::Bool(error)]),
            Action::Terminate { target, .. } => ("terminate", vec![pid(target)]),
            Action::Monitor { target, .. } => ("monitor", vec![pid(target)]),
            Action::Unmonitor { target, .. } => ("unmonitor", vec![pid(target)]),
            Action::Link { target, .. } => ("link", vec![pid(target)]),
            Action::Unlink { target, .. } => ("unlink", vec![pid(target)]),
            Action::Trap { on, .. } => ("trap", vec![Value::Bool(on)]),
            Action::Register { name, target, .. } => {
                let mut args = vec![Value::str(name)];
                args.extend(target.map(pid));
                ("register", args)
            }
            Action::Unregister { name, .. } => ("unregister", vec![Value::str(name)]),
            Action::Lookup { name, .. } => ("lookup", vec![Value::str(name)]),
            Action::Exec { fails, number, beside_reader, .. } => {
                let entry = if fails { "app:fails" } else { "app:returns" };
                let args = vec![Value::str(entry), Value::Number(f64::from(number)), Value::Bool(beside_reader)];
                ("exec", args)
            }
        };
        // Sent back to back: several actors run their calls at the same time.
        action.actors().into_iter().map(|a| Ok((a, self.command(a, op, args.clone())?))).collect()
    }

    /// Runs one action on both sides; the trace line of the step, or what went wrong (with
    /// what the step had shown by then).
    fn act(&mut self, action: &Action) -> Result<String, String> {
        let step = self.model.apply(action);
        let mut seen = Observed::default();
        let outcome = self
            .begin(action, &step)
            .and_then(|commands| self.observe(&commands, &step, &mut seen))
            .and_then(|()| self.check(&step, &seen));
        let summary = self.summary(action, &step, &seen);
        match outcome {
            Ok(()) => Ok(summary),
            Err(problem) => Err(format!("{summary}\n      MISMATCH: {problem}")),
        }
    }

    /// Sends the commands, or starts the puppet; (actor, command number) of each command.
    fn begin(&mut self, action: &Action, step: &Step) -> Result<Vec<(Proc, u32)>, String> {
        let commands = self.send_command(action)?;
        if let (Action::Start, Some(p)) = (action, step.started) {
            let pid = self
                .harness
                .node
                .spawn(PUPPET, HOST, self.harness.puppet_args())
                .map_err(|e| format!("the puppet does not start: {e}"))?;
            let text = self.harness.node.render_pid(pid);
            self.bind(p, text)?;
        }
        Ok(commands)
    }

    fn summary(&self, action: &Action, step: &Step, seen: &Observed) -> String {
        let mut line = action.to_string();
        let replies: Vec<String> = seen.replies.values().map(|r| self.describe_reply(r)).collect();
        if !replies.is_empty() {
            let _ = write!(line, " -> {}", replies.join(" | "));
        } else if let (Action::Start, Some(p)) = (action, step.started) {
            let _ = write!(line, " -> {}", proc_name(p));
        }
        for (p, outcome) in &seen.ends {
            let _ = write!(line, "\n        {} ends: {outcome}", proc_name(*p));
        }
        for (p, events) in &seen.events {
            for e in events {
                let _ = write!(line, "\n        {} <- {e}", proc_name(*p));
            }
        }
        for (p, notes) in &seen.notes {
            for n in notes {
                let _ = write!(line, "\n        {} <- {n}", proc_name(*p));
            }
        }
        line
    }

    /// Collects reports until everything `step` predicts has shown; a report the model rules
    /// out fails at once.
    fn observe(&mut self, commands: &[(Proc, u32)], step: &Step, seen: &mut Observed) -> Result<(), String> {
        let timeout = self.harness.step_timeout;
        let deadline = Instant::now() + timeout;
        let due = Due::of(step);
        loop {
            let missing = self.missing(commands, step, &due, seen);
            if missing.is_empty() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let report =
                self.harness.reports.recv_timeout(left).map_err(|_| {
                    format!("nothing more within {timeout:?}; still waiting for: {}", missing.join("; "))
                })?;
            self.take(report, commands, step, &due, seen)?;
        }
    }

    /// What `step` predicts that has not shown yet.
    fn missing(&self, commands: &[(Proc, u32)], step: &Step, due: &Due, seen: &Observed) -> Vec<String> {
        let mut missing = Vec::new();
        for (actor, _) in commands {
            if let Some(reply) = step.required_reply(*actor) {
                if !seen.replies.contains_key(actor) {
                    missing.push(format!("the reply of {} ({reply})", proc_name(*actor)));
                }
            }
        }
        if let Some(p) = step.started {
            let watched = self.pid_texts.get(p).is_some_and(|t| seen.watching.contains(t));
            if !watched {
                missing.push(format!("the watcher watching {}", proc_name(p)));
            }
        }
        for (p, death) in &step.deaths {
            if !seen.ends.contains_key(p) {
                missing.push(format!("the end of {} ({death})", proc_name(*p)));
            }
        }
        for (p, n) in &due.events {
            let got = seen.events.get(p).map_or(0, Vec::len);
            if got < *n && !step.deaths.contains_key(p) {
                missing.push(format!("{} more event(s) at {}", n - got, proc_name(*p)));
            }
        }
        for (p, n) in &due.notes {
            let got = seen.notes.get(p).map_or(0, Vec::len);
            if got < *n {
                missing.push(format!("{} more note(s) at {}", n - got, proc_name(*p)));
            }
        }
        missing
    }

    /// Adds `report` to what the step showed; a report the model rules out is the error.
    fn take(
        &mut self,
        report: Report,
        commands: &[(Proc, u32)],
        step: &Step,
        due: &Due,
        seen: &mut Observed,
    ) -> Result<(), String> {
        let text = |v: &Value| value_text(v).unwrap_or_default();
        if report.from == self.harness.watcher_text {
            let pid = text(report.payload(0));
            return match report.topic.as_str() {
                "watching" if step.started.is_some_and(|c| self.procs.get(&pid).is_none_or(|p| *p == c)) => {
                    seen.watching.push(pid);
                    Ok(())
                }
                "watching" => {
                    Err(format!("the watcher was asked to watch {}, a process not just started", self.name_of(&pid)))
                }
                "exit" => {
                    let outcome = match value_text(report.payload(1)) {
                        Some(error) => Outcome::Error(self.rename(&error)),
                        None => Outcome::Value(text(report.payload(2))),
                    };
                    let who = self.name_of(&pid);
                    match self.procs.get(&pid) {
                        Some(p) if step.deaths.contains_key(p) && !seen.ends.contains_key(p) => {
                            seen.ends.insert(*p, outcome);
                            Ok(())
                        }
                        Some(p) if seen.ends.contains_key(p) => Err(format!("{who} ended twice")),
                        _ => Err(format!("{who} ended with {outcome}, but the model has it alive")),
                    }
                }
                other => Err(format!("the watcher reported {other} {:?}", report.payloads)),
            };
        }
        let from = match self.procs.get(&report.from) {
            Some(p) => *p,
            None => {
                return Err(format!(
                    "a report from {}: {} {:?}",
                    self.name_of(&report.from),
                    report.topic,
                    report.payloads
                ))
            }
        };
        let who = proc_name(from);
        match report.topic.as_str() {
            "ack" => {
                let reply = (report.payload(1).clone(), report.payload(2).clone());
                let got = self.describe_reply(&reply);
                let Some(&(_, seq)) = commands.iter().find(|(a, _)| *a == from) else {
                    return Err(format!("{who} replied {got}, but it was given no command"));
                };
                if report.payload(0).as_number() != Some(f64::from(seq)) {
                    return Err(format!("{who} replied {got} to command {:?}, not to {seq}", report.payload(0)));
                }
                match &step.ack {
                    Some(Ack::NotReturning) => {
                        return Err(format!("the call returned {got}, but it must end {who} instead"));
                    }
                    None => return Err(format!("{who} replied {got} to no call")),
                    Some(Ack::Returns(_)) if seen.replies.contains_key(&from) => {
                        return Err(format!("{who} replied twice (now {got})"));
                    }
                    Some(Ack::Returns(expected)) => {
                        let unbound = step.started.filter(|child| self.pids.len() <= *child);
                        if let (Some(child), Some(pid)) = (unbound, reply.0.as_str()) {
                            self.bind(child, pid.to_owned())?;
                        }
                        if !self.reply_matches(expected, &reply) {
                            return Err(format!("{who}'s call returned {got}, the model says {expected}"));
                        }
                    }
                }
                seen.replies.insert(from, reply);
                Ok(())
            }
            "event" => {
                let kind = match text(report.payload(0)).as_str() {
                    "pid.exit" => EventKind::Exit.label().to_owned(),
                    "pid.link.down" => EventKind::LinkDown.label().to_owned(),
                    other => other.to_owned(),
                };
                let error = value_text(report.payload(2)).map(|e| self.rename(&e));
                let event = render_event(
                    &kind,
                    &self.name_of(&text(report.payload(1))),
                    error.as_deref(),
                    value_text(report.payload(3)).as_deref(),
                    &text(report.payload(4)),
                );
                let list = seen.events.entry(from).or_default();
                list.push(event.clone());
                let n = due.events.get(&from).copied().unwrap_or(0);
                if list.len() > n {
                    return Err(format!("{who} received {event}: more events than the model's {n} in this step"));
                }
                Ok(())
            }
            "note" => {
                let note = render_note(&self.name_of(&text(report.payload(0))), &text(report.payload(1)));
                let list = seen.notes.entry(from).or_default();
                list.push(note.clone());
                let n = due.notes.get(&from).copied().unwrap_or(0);
                if list.len() > n {
                    return Err(format!("{who} received {note}: more notes than the model's {n} in this step"));
                }
                Ok(())
            }
            other => Err(format!("{who} reported {other} {:?}", report.payloads)),
        }
    }

    /// Compares what the step showed with the model, once everything predicted has shown.
    fn check(&self, step: &Step, seen: &Observed) -> Result<(), String> {
        let mut problems = Vec::new();
        for (p, death) in &step.deaths {
            if let Some(outcome) = seen.ends.get(p) {
                if !death.allows(outcome) {
                    problems.push(format!("{} ended with {outcome}, the model says {death}", proc_name(*p)));
                }
            }
        }
        let result_of = |cause: Cause| -> (Option<String>, Option<String>) {
            let outcome = match cause {
                Cause::Noproc => return (Some(NOPROC.to_owned()), None),
                Cause::EndOf(d) => seen.ends.get(&d).cloned(),
            };
            match outcome {
                Some(Outcome::Error(e)) => (Some(e), None),
                Some(Outcome::Value(v)) => (None, Some(v)),
                None => (Some("<unknown>".into()), None),
            }
        };
        let render_expected = |e: &ExpectedEvent| {
            let (error, value) = result_of(e.cause);
            render_event(e.kind.label(), &proc_name(e.from), error.as_deref(), value.as_deref(), "")
        };
        let mut expected_events: BTreeMap<Proc, Vec<String>> = BTreeMap::new();
        for e in &step.events {
            expected_events.entry(e.to).or_default().push(render_expected(e));
        }
        let mut expected_notes: BTreeMap<Proc, Vec<String>> = BTreeMap::new();
        for (to, from, number) in &step.notes {
            expected_notes
                .entry(*to)
                .or_default()
                .push(render_note(&proc_name(*from), &format_number(f64::from(*number))));
        }
        for (what, expected, got) in
            [("events", &expected_events, &seen.events), ("notes", &expected_notes, &seen.notes)]
        {
            let receivers: std::collections::BTreeSet<Proc> = expected.keys().chain(got.keys()).copied().collect();
            for p in receivers {
                let mut want = expected.get(&p).cloned().unwrap_or_default();
                let mut have = got.get(&p).cloned().unwrap_or_default();
                want.sort();
                have.sort();
                // A process that ends in the step may miss what came in the meantime.
                let fine = if step.deaths.contains_key(&p) { includes(&want, &have) } else { want == have };
                if !fine {
                    problems.push(format!("{} received {what} {have:?}, the model says {want:?}", proc_name(p)));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n      "))
        }
    }

    /// A round trip to every live puppet: nothing may come before the replies.
    fn sync_all(&mut self) -> Result<(), String> {
        let mut waiting = BTreeMap::new();
        for p in self.model.live() {
            waiting.insert(self.command(p, "sync", Vec::new())?, p);
        }
        let deadline = Instant::now() + self.harness.step_timeout;
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let report = self.harness.reports.recv_timeout(left).map_err(|_| {
                let names: Vec<String> = waiting.values().map(|p| proc_name(*p)).collect();
                format!("no reply to the final round trip from {}", names.join(", "))
            })?;
            let seq = report.payload(0).as_number().map(|n| n as u32);
            let sender = self.procs.get(&report.from).copied();
            match (report.topic.as_str(), seq.and_then(|s| waiting.get(&s).copied())) {
                ("ack", Some(p)) if sender == Some(p) => {
                    waiting.retain(|_, q| *q != p);
                }
                _ => {
                    let source = if report.from == self.harness.watcher_text {
                        "the watcher".to_owned()
                    } else {
                        self.name_of(&report.from)
                    };
                    let payloads: Vec<String> =
                        report.payloads.iter().map(|v| self.rename(&v.to_display_string())).collect();
                    return Err(format!(
                        "after the last step, before the final round trip: {source} reported {} {}",
                        report.topic,
                        payloads.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// Terminates the live puppets (through the watcher) and waits for their ends; every name
    /// must then be free.
    fn finish(&mut self) -> Result<(), String> {
        let live = self.model.live();
        if !live.is_empty() {
            let pids = Table { array: live.iter().map(|p| Value::str(&self.pid_texts[*p])).collect(), map: Vec::new() };
            self.harness
                .node
                .send(self.harness.watcher, "finish", vec![Value::Table(Box::new(pids))])
                .map_err(|e| format!("the watcher is gone: {e}"))?;
        }
        let mut left: Vec<String> = live.iter().map(|p| self.pid_texts[*p].clone()).collect();
        let deadline = Instant::now() + self.harness.step_timeout;
        while !left.is_empty() {
            let wait = deadline.saturating_duration_since(Instant::now());
            let report = self.harness.reports.recv_timeout(wait).map_err(|_| {
                let names: Vec<String> = left.iter().map(|t| self.name_of(t)).collect();
                format!("terminated at the end, {} did not end", names.join(", "))
            })?;
            if report.from == self.harness.watcher_text && report.topic == "exit" {
                let pid = value_text(report.payload(0)).unwrap_or_default();
                left.retain(|t| *t != pid);
            }
        }
        for name in NAMES {
            if let Some(pid) = self.harness.node.lookup_name(name) {
                let holder = self.name_of(&self.harness.node.render_pid(pid));
                return Err(format!("name \"{name}\" is still bound to {holder} after every puppet ended"));
            }
        }
        Ok(())
    }
}

/// Runs `scenario` on the harness's node; on failure, the trace of the steps and the mismatch.
fn run_scenario(harness: &mut Harness, scenario: &Scenario) -> Result<(), String> {
    let mut run = Run {
        harness,
        model: Model::default(),
        pids: Vec::new(),
        pid_texts: Vec::new(),
        procs: HashMap::new(),
        trace: Vec::new(),
    };
    let starts = std::iter::repeat_n(Op::Start, scenario.roots);
    for (i, op) in starts.chain(scenario.ops.iter().flatten().cloned()).enumerate() {
        let number = i as u32 + 1;
        match resolve(&op, &run.model, number) {
            Ok(action) => match run.act(&action) {
                Ok(line) => run.trace.push(format!("{number:>3}. {line}")),
                Err(problem) => return Err(format!("{}\n{number:>3}. {problem}", run.trace.join("\n"))),
            },
            Err(why) => run.trace.push(format!("{number:>3}. ({op:?} skipped: {why})")),
        }
    }
    if std::env::var_os("WISP_MODEL_TRACE").is_some() {
        eprintln!("sequence:\n{}", run.trace.join("\n"));
    }
    let end = run.sync_all().and_then(|()| run.finish());
    end.map_err(|problem| format!("{}\n  end: MISMATCH: {problem}", run.trace.join("\n")))
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(text.trim().parse().unwrap_or_else(|_| panic!("{name}={text} is not a number")))
}

/// Runs `cases` sequences with `seed` on a node of its own; a failure, shrunk and described.
fn run_share(cases: u32, seed: u64) -> Result<(), String> {
    if cases == 0 {
        return Ok(());
    }
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        // A failing sequence runs again for every shrink step: a bound keeps a timeout-class
        // failure from shrinking for hours.
        max_shrink_iters: 1024,
        max_shrink_time: 120_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let kept: RefCell<Option<Harness>> = RefCell::new(None);
    let failed = Cell::new(false);
    let result = runner.run(&scenario(), |scenario| {
        // Taken out while the sequence runs, and put back only if it passes: what a failed (or
        // panicked) sequence left running could disturb the next one, which gets a fresh node.
        let mut harness = match kept.take() {
            Some(h) => h,
            None => Harness::build().map_err(TestCaseError::fail)?,
        };
        if failed.get() {
            harness.step_timeout = SHRINK_STEP_TIMEOUT;
        }
        let outcome = run_scenario(&mut harness, &scenario);
        match outcome {
            Ok(()) => *kept.borrow_mut() = Some(harness),
            Err(_) => failed.set(true),
        }
        outcome.map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => Ok(()),
        Err(TestError::Fail(why, scenario)) => Err(format!("{why}\nthe sequence as generated: {scenario:?}")),
        Err(TestError::Abort(why)) => Err(format!("aborted: {why}")),
    }
}

#[test]
fn the_process_table_follows_the_model() {
    let cases = env_number("WISP_MODEL_CASES")
        .map_or(DEFAULT_CASES, |n| u32::try_from(n).unwrap_or_else(|_| panic!("WISP_MODEL_CASES={n} is too many")));
    let seed = env_number("WISP_MODEL_SEED").unwrap_or_else(|| {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(Instant::now())
    });
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let share = cases / THREADS + u32::from(t < cases % THREADS);
            let thread_seed = seed.wrapping_add(u64::from(t));
            std::thread::spawn(move || (t, run_share(share, thread_seed)))
        })
        .collect();
    let mut failures = Vec::new();
    for thread in threads {
        match thread.join() {
            Ok((_, Ok(()))) => {}
            Ok((t, Err(failure))) => failures.push(format!("thread {t}:\n{failure}")),
            Err(_) => failures.push("a test thread panicked".to_owned()),
        }
    }
    eprintln!("process-table model: {cases} sequences in {:.1?} (seed {seed})", started.elapsed());
    assert!(
        failures.is_empty(),
        "the runtime disagrees with the model (replay: WISP_MODEL_SEED={seed} WISP_MODEL_CASES={cases}):\n{}",
        failures.join("\n\n")
    );
}
