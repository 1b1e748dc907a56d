//! The process table as the contract describes it (docs/lua-api.md, `process` and Events), in
//! plain Rust: which processes live, their links, monitors, `trap_links` flags and names, and
//! what each operation returns and sets off.
//!
//! An operation is applied at once and answers with a [`Step`]: what the call returns, who ends
//! and how, and which events and notes reach whom. Some of that the contract leaves open, and a
//! step says so instead of guessing:
//! - a process ended by a LINK_DOWN names the linked process that failed, and when several
//!   linked processes fail in one cascade, which LINK_DOWN comes first is a race: its exit may
//!   name any of them ([`Death::LinkedFailed`]); what its monitors and links then hear is its
//!   actual exit, known only once observed ([`Cause::EndOf`]);
//! - a process that ends in a step may or may not see the events of that step before it ends
//!   (a LINK_DOWN ends it "before it can observe" anything after), nor finish reporting the
//!   call it was making: its events and reply in that step are optional.
//!
//! Where the contract is silent the model chooses: each `monitor` call is one monitor with its
//! own EXIT, as in Erlang (`unmonitor` removes one); a process may hold several names ("names
//! are released when their process ends"); `unregister` removes a name whoever holds it. The
//! generator never links or monitors a process to itself, nor terminates a dead one.
//!
//! Processes are numbered in the order they start, `p0`, `p1`, ...

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub type Proc = usize;

/// The names operations use: few, so that they collide.
pub const NAMES: [&str; 3] = ["a", "b", "c"];

pub fn proc_name(p: Proc) -> String {
    format!("p{p}")
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Value(String),
    Error(String),
}

impl Outcome {
    pub fn is_error(&self) -> bool {
        matches!(self, Outcome::Error(_))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Value(v) => write!(f, "value {v}"),
            Outcome::Error(e) => write!(f, "error \"{e}\""),
        }
    }
}

/// The puppet's normal end and its error end.
pub const NORMAL_VALUE: &str = "bye";
pub const ERROR_TEXT: &str = "boom";
pub const TERMINATED: &str = "terminated";
pub const NOPROC: &str = "noproc";
/// The error of the child `process.exec` runs when it is to fail.
pub const EXEC_ERROR: &str = "nope";

pub fn linked_failed(p: Proc) -> String {
    format!("linked process failed: {}", proc_name(p))
}

/// `spawn`, `spawn_monitored`, `spawn_linked` or `spawn_linked_monitored`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnFlags {
    pub monitor: bool,
    pub link: bool,
}

impl SpawnFlags {
    pub fn method(self) -> &'static str {
        match (self.link, self.monitor) {
            (false, false) => "spawn",
            (false, true) => "spawn_monitored",
            (true, false) => "spawn_linked",
            (true, true) => "spawn_linked_monitored",
        }
    }
}

/// Where a send goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    Pid(Proc),
    Name(&'static str),
}

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dest::Pid(p) => write!(f, "{}", proc_name(*p)),
            Dest::Name(n) => write!(f, "\"{n}\""),
        }
    }
}

/// An operation with every process it involves chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// The test itself starts a puppet.
    Start,
    /// `by` spawns a puppet; with a name, through `process.with_name(name)`.
    Spawn {
        by: Proc,
        flags: SpawnFlags,
        name: Option<&'static str>,
    },
    /// Two processes call `process.with_name(name):<spawn>` at once: one process holds the
    /// name after, and both get its PID (the contract: "concurrent callers get one process").
    SpawnNamedTogether {
        by: [Proc; 2],
        flags: SpawnFlags,
        name: &'static str,
    },
    /// `by` sends `to` a note numbered `number`.
    Send {
        by: Proc,
        to: Dest,
        number: u32,
    },
    /// `who` returns from its main function: `"bye"`, or `nil, "boom"` when `error`.
    Exit {
        who: Proc,
        error: bool,
    },
    Terminate {
        by: Proc,
        target: Proc,
    },
    Monitor {
        by: Proc,
        target: Proc,
    },
    Unmonitor {
        by: Proc,
        target: Proc,
    },
    Link {
        by: Proc,
        target: Proc,
    },
    Unlink {
        by: Proc,
        target: Proc,
    },
    Trap {
        who: Proc,
        on: bool,
    },
    /// `registry.register(name)`, or `registry.register(name, pid)` with a target.
    Register {
        by: Proc,
        name: &'static str,
        target: Option<Proc>,
    },
    Unregister {
        by: Proc,
        name: &'static str,
    },
    Lookup {
        by: Proc,
        name: &'static str,
    },
    /// `process.exec` of a child that returns `number`, or fails with `"nope"`; `beside_reader`:
    /// called in a coroutine of its own while the main coroutine waits on `events()`.
    Exec {
        by: Proc,
        fails: bool,
        number: u32,
        beside_reader: bool,
    },
}

impl Action {
    /// The processes the command goes to (none for [`Action::Start`]).
    pub fn actors(&self) -> Vec<Proc> {
        match *self {
            Action::Start => Vec::new(),
            Action::SpawnNamedTogether { by, .. } => by.to_vec(),
            Action::Spawn { by, .. }
            | Action::Send { by, .. }
            | Action::Terminate { by, .. }
            | Action::Monitor { by, .. }
            | Action::Unmonitor { by, .. }
            | Action::Link { by, .. }
            | Action::Unlink { by, .. }
            | Action::Register { by, .. }
            | Action::Unregister { by, .. }
            | Action::Lookup { by, .. }
            | Action::Exec { by, .. } => vec![by],
            Action::Exit { who, .. } | Action::Trap { who, .. } => vec![who],
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |p: &Proc| proc_name(*p);
        match self {
            Action::Start => write!(f, "test: start a puppet"),
            Action::Spawn { by, flags, name: None } => write!(f, "{}: process.{}(puppet)", n(by), flags.method()),
            Action::Spawn { by, flags, name: Some(name) } => {
                write!(f, "{}: process.with_name(\"{name}\"):{}(puppet)", n(by), flags.method())
            }
            Action::SpawnNamedTogether { by: [a, b], flags, name } => {
                write!(f, "{} and {} at once: process.with_name(\"{name}\"):{}(puppet)", n(a), n(b), flags.method())
            }
            Action::Send { by, to, number } => write!(f, "{}: process.send({to}, \"note\", {number})", n(by)),
            Action::Exit { who, error: false } => write!(f, "{}: return \"{NORMAL_VALUE}\"", n(who)),
            Action::Exit { who, error: true } => write!(f, "{}: return nil, \"{ERROR_TEXT}\"", n(who)),
            Action::Terminate { by, target } => write!(f, "{}: process.terminate({})", n(by), n(target)),
            Action::Monitor { by, target } => write!(f, "{}: process.monitor({})", n(by), n(target)),
            Action::Unmonitor { by, target } => write!(f, "{}: process.unmonitor({})", n(by), n(target)),
            Action::Link { by, target } => write!(f, "{}: process.link({})", n(by), n(target)),
            Action::Unlink { by, target } => write!(f, "{}: process.unlink({})", n(by), n(target)),
            Action::Trap { who, on } => write!(f, "{}: process.set_options{{trap_links = {on}}}", n(who)),
            Action::Register { by, name, target: None } => write!(f, "{}: registry.register(\"{name}\")", n(by)),
            Action::Register { by, name, target: Some(t) } => {
                write!(f, "{}: registry.register(\"{name}\", {})", n(by), n(t))
            }
            Action::Unregister { by, name } => write!(f, "{}: registry.unregister(\"{name}\")", n(by)),
            Action::Lookup { by, name } => write!(f, "{}: registry.lookup(\"{name}\")", n(by)),
            Action::Exec { by, fails, number, beside_reader } => {
                let child = if *fails { "fails".to_owned() } else { format!("returns, {number}") };
                let apart = if *beside_reader { " in a coroutine, main waiting on events()" } else { "" };
                write!(f, "{}: process.exec({child}){apart}", n(by))
            }
        }
    }
}

/// What a call returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    True,
    False,
    /// The PID of this process (a spawn, a lookup).
    Pid(Proc),
    Number(u32),
    /// `nil` and an error text: this one, where the contract gives it.
    Err(Option<&'static str>),
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::True => write!(f, "true"),
            Reply::False => write!(f, "false"),
            Reply::Pid(p) => write!(f, "{}", proc_name(*p)),
            Reply::Number(k) => write!(f, "{k}"),
            Reply::Err(None) => write!(f, "nil, <error>"),
            Reply::Err(Some(e)) => write!(f, "nil, \"{e}\""),
        }
    }
}

/// Whether the actor's call comes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ack {
    /// The call ends the actor (`return` from main, `terminate(self)`): no reply may come.
    NotReturning,
    /// The call returns this (optional when the actor ends in the same step).
    Returns(Reply),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Exit,
    LinkDown,
}

impl EventKind {
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Exit => "EXIT",
            EventKind::LinkDown => "LINK_DOWN",
        }
    }
}

/// What an event's `result` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The process was not alive when linked or monitored.
    Noproc,
    /// The process ended in this step: its actual outcome.
    EndOf(Proc),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedEvent {
    pub to: Proc,
    pub kind: EventKind,
    pub from: Proc,
    pub cause: Cause,
}

/// How a process ending in a step may end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Death {
    Exactly(Outcome),
    /// `linked process failed: <pid>`, naming one of these.
    LinkedFailed(BTreeSet<Proc>),
}

impl Death {
    pub fn allows(&self, outcome: &Outcome) -> bool {
        match self {
            Death::Exactly(o) => o == outcome,
            Death::LinkedFailed(set) => set.iter().any(|p| *outcome == Outcome::Error(linked_failed(*p))),
        }
    }
}

impl fmt::Display for Death {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Death::Exactly(o) => write!(f, "{o}"),
            Death::LinkedFailed(set) => {
                let names: Vec<String> = set.iter().map(|p| proc_name(*p)).collect();
                write!(f, "error \"linked process failed: {}\"", names.join(" or "))
            }
        }
    }
}

/// What one operation does, as far as the contract says.
#[derive(Clone, Debug, Default)]
pub struct Step {
    /// What each actor's call does (`None`: the test itself acts, `Start`).
    pub ack: Option<Ack>,
    /// The process this step starts.
    pub started: Option<Proc>,
    pub deaths: BTreeMap<Proc, Death>,
    pub events: Vec<ExpectedEvent>,
    /// (receiver, sender, number) of a note sent.
    pub notes: Vec<(Proc, Proc, u32)>,
}

impl Step {
    fn returns(reply: Reply) -> Step {
        Step { ack: Some(Ack::Returns(reply)), ..Step::default() }
    }

    /// The reply of `actor`, if it must come: a reply is optional when the actor ends in the
    /// step.
    pub fn required_reply(&self, actor: Proc) -> Option<&Reply> {
        match &self.ack {
            Some(Ack::Returns(reply)) if !self.deaths.contains_key(&actor) => Some(reply),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct ProcState {
    alive: bool,
    trap_links: bool,
}

/// The process table of the contract.
#[derive(Clone, Debug, Default)]
pub struct Model {
    procs: Vec<ProcState>,
    /// Links as (lower, higher).
    links: BTreeSet<(Proc, Proc)>,
    /// (watcher, watched) -> how many monitors: each `monitor` call is one (as in Erlang), each
    /// gets its EXIT, and `unmonitor` removes one.
    monitors: BTreeMap<(Proc, Proc), u32>,
    names: BTreeMap<&'static str, Proc>,
}

fn link_key(a: Proc, b: Proc) -> (Proc, Proc) {
    (a.min(b), a.max(b))
}

impl Model {
    pub fn count(&self) -> usize {
        self.procs.len()
    }

    pub fn is_alive(&self, p: Proc) -> bool {
        self.procs.get(p).is_some_and(|s| s.alive)
    }

    pub fn live(&self) -> Vec<Proc> {
        (0..self.procs.len()).filter(|p| self.procs[*p].alive).collect()
    }

    pub fn holder(&self, name: &str) -> Option<Proc> {
        self.names.get(name).copied()
    }

    fn new_proc(&mut self) -> Proc {
        self.procs.push(ProcState { alive: true, trap_links: false });
        self.procs.len() - 1
    }

    fn links_of(&self, p: Proc) -> Vec<Proc> {
        self.links
            .iter()
            .filter_map(|&(a, b)| {
                if a == p {
                    Some(b)
                } else if b == p {
                    Some(a)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Applies `action` and says what it does.
    pub fn apply(&mut self, action: &Action) -> Step {
        match *action {
            Action::Start => {
                let p = self.new_proc();
                Step { started: Some(p), ..Step::default() }
            }
            Action::Spawn { by, flags, name } => self.spawn(&[by], flags, name),
            Action::SpawnNamedTogether { by, flags, name } => self.spawn(&by, flags, Some(name)),
            Action::Send { by, to, number } => {
                let receiver = match to {
                    Dest::Pid(p) => Some(p).filter(|p| self.is_alive(*p)),
                    Dest::Name(n) => self.holder(n),
                };
                match receiver {
                    Some(r) => Step { notes: vec![(r, by, number)], ..Step::returns(Reply::True) },
                    None => Step::returns(Reply::Err(None)),
                }
            }
            Action::Exit { who, error } => {
                let outcome =
                    if error { Outcome::Error(ERROR_TEXT.into()) } else { Outcome::Value(NORMAL_VALUE.into()) };
                let mut step = Step { ack: Some(Ack::NotReturning), ..Step::default() };
                self.end(&mut step, who, outcome);
                step
            }
            Action::Terminate { by, target } => {
                // terminate(self) does not return.
                let ack = if by == target { Ack::NotReturning } else { Ack::Returns(Reply::True) };
                let mut step = Step { ack: Some(ack), ..Step::default() };
                self.end(&mut step, target, Outcome::Error(TERMINATED.into()));
                step
            }
            Action::Monitor { by, target } => {
                let mut step = Step::returns(Reply::True);
                if self.is_alive(target) {
                    *self.monitors.entry((by, target)).or_default() += 1;
                } else {
                    step.events.push(ExpectedEvent {
                        to: by,
                        kind: EventKind::Exit,
                        from: target,
                        cause: Cause::Noproc,
                    });
                }
                step
            }
            Action::Unmonitor { by, target } => {
                if let Some(count) = self.monitors.get_mut(&(by, target)) {
                    *count -= 1;
                    if *count == 0 {
                        self.monitors.remove(&(by, target));
                    }
                }
                Step::returns(Reply::True)
            }
            Action::Link { by, target } => {
                let mut step = Step::returns(Reply::True);
                if self.is_alive(target) {
                    self.links.insert(link_key(by, target));
                } else if self.procs[by].trap_links {
                    step.events.push(ExpectedEvent {
                        to: by,
                        kind: EventKind::LinkDown,
                        from: target,
                        cause: Cause::Noproc,
                    });
                } else {
                    // LINK_DOWN noproc ends the linker, naming the dead target.
                    self.end(&mut step, by, Outcome::Error(linked_failed(target)));
                }
                step
            }
            Action::Unlink { by, target } => {
                self.links.remove(&link_key(by, target));
                Step::returns(Reply::True)
            }
            Action::Trap { who, on } => {
                self.procs[who].trap_links = on;
                Step::returns(Reply::True)
            }
            Action::Register { by, name, target } => {
                let target = target.unwrap_or(by);
                let taken = self.holder(name).is_some_and(|h| h != target);
                if !self.is_alive(target) || taken {
                    return Step::returns(Reply::Err(None));
                }
                self.names.insert(name, target);
                Step::returns(Reply::True)
            }
            Action::Unregister { name, .. } => {
                Step::returns(if self.names.remove(name).is_some() { Reply::True } else { Reply::False })
            }
            Action::Lookup { name, .. } => Step::returns(match self.holder(name) {
                Some(p) => Reply::Pid(p),
                None => Reply::Err(None),
            }),
            Action::Exec { fails, number, .. } => {
                Step::returns(if fails { Reply::Err(Some(EXEC_ERROR)) } else { Reply::Number(number) })
            }
        }
    }

    /// `callers` spawn a puppet with `flags` (with `name`, through `with_name`: a live holder of
    /// the name is the answer instead, tied to the callers as `flags` ask).
    fn spawn(&mut self, callers: &[Proc], flags: SpawnFlags, name: Option<&'static str>) -> Step {
        let (target, started) = match name.and_then(|n| self.holder(n)) {
            Some(holder) => (holder, None),
            None => {
                let child = self.new_proc();
                if let Some(n) = name {
                    self.names.insert(n, child);
                }
                (child, Some(child))
            }
        };
        for &by in callers.iter().filter(|by| **by != target) {
            if flags.monitor {
                *self.monitors.entry((by, target)).or_default() += 1;
            }
            if flags.link {
                self.links.insert(link_key(by, target));
            }
        }
        Step { started, ..Step::returns(Reply::Pid(target)) }
    }

    /// Ends `first` with `outcome` and everything that follows: who else ends (untrapped links
    /// of every process ending with an error, transitively), and the events sent.
    fn end(&mut self, step: &mut Step, first: Proc, outcome: Outcome) {
        let alive_before: Vec<bool> = self.procs.iter().map(|s| s.alive).collect();
        let mut errors = BTreeSet::new();
        let mut dying = vec![first];
        if outcome.is_error() {
            errors.insert(first);
        }
        let mut i = 0;
        while i < dying.len() {
            let d = dying[i];
            i += 1;
            if !errors.contains(&d) {
                continue;
            }
            for l in self.links_of(d) {
                if alive_before[l] && !self.procs[l].trap_links && !dying.contains(&l) {
                    dying.push(l);
                    errors.insert(l);
                }
            }
        }
        step.deaths.insert(first, Death::Exactly(outcome));
        for &d in &dying[1..] {
            // Ended by the LINK_DOWN of whichever failing linked process reached it first.
            let causes = self.links_of(d).into_iter().filter(|l| errors.contains(l)).collect();
            step.deaths.insert(d, Death::LinkedFailed(causes));
        }
        for &d in &dying {
            for (&(watcher, watched), &count) in &self.monitors {
                if watched == d && watcher != d && alive_before[watcher] {
                    for _ in 0..count {
                        step.events.push(ExpectedEvent {
                            to: watcher,
                            kind: EventKind::Exit,
                            from: d,
                            cause: Cause::EndOf(d),
                        });
                    }
                }
            }
            if errors.contains(&d) {
                for l in self.links_of(d) {
                    // An untrapped link ends instead (it is among `dying`); a trapping one that
                    // ends in this step anyway may or may not see it first.
                    if alive_before[l] && self.procs[l].trap_links {
                        step.events.push(ExpectedEvent {
                            to: l,
                            kind: EventKind::LinkDown,
                            from: d,
                            cause: Cause::EndOf(d),
                        });
                    }
                }
            }
        }
        for &d in &dying {
            self.procs[d].alive = false;
            self.names.retain(|_, holder| *holder != d);
            self.links.retain(|&(a, b)| a != d && b != d);
            self.monitors.retain(|&(watcher, watched), _| watcher != d && watched != d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(model: &mut Model, n: usize) {
        for _ in 0..n {
            model.apply(&Action::Start);
        }
    }

    #[test]
    fn an_error_cascades_through_untrapped_links_and_stops_at_trapping_ones() {
        let mut m = Model::default();
        start(&mut m, 4);
        m.apply(&Action::Link { by: 0, target: 1 });
        m.apply(&Action::Link { by: 1, target: 2 });
        m.apply(&Action::Link { by: 2, target: 3 });
        m.apply(&Action::Trap { who: 3, on: true });
        m.apply(&Action::Monitor { by: 3, target: 1 });
        let step = m.apply(&Action::Terminate { by: 3, target: 0 });
        assert_eq!(step.deaths.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(step.deaths[&0], Death::Exactly(Outcome::Error(TERMINATED.into())));
        assert_eq!(step.deaths[&1], Death::LinkedFailed([0, 2].into()));
        let to_3: Vec<_> = step.events.iter().filter(|e| e.to == 3).map(|e| (e.kind, e.from)).collect();
        assert_eq!(to_3, vec![(EventKind::Exit, 1), (EventKind::LinkDown, 2)]);
        assert_eq!(m.live(), vec![3]);
    }

    #[test]
    fn a_normal_exit_tells_monitors_only_and_releases_names() {
        let mut m = Model::default();
        start(&mut m, 2);
        m.apply(&Action::Link { by: 0, target: 1 });
        m.apply(&Action::Monitor { by: 0, target: 1 });
        m.apply(&Action::Monitor { by: 0, target: 1 });
        assert_eq!(
            m.apply(&Action::Register { by: 0, name: "a", target: Some(1) }).ack,
            Some(Ack::Returns(Reply::True))
        );
        let step = m.apply(&Action::Exit { who: 1, error: false });
        assert_eq!(step.events.len(), 2, "one EXIT per monitor");
        assert!(step.events.iter().all(|e| e.kind == EventKind::Exit));
        assert_eq!(m.holder("a"), None);
        assert_eq!(
            m.apply(&Action::Register { by: 0, name: "a", target: Some(1) }).ack,
            Some(Ack::Returns(Reply::Err(None)))
        );
    }

    #[test]
    fn with_name_gives_concurrent_callers_one_process_tied_to_both() {
        let mut m = Model::default();
        start(&mut m, 2);
        let flags = SpawnFlags { monitor: true, link: true };
        let step = m.apply(&Action::SpawnNamedTogether { by: [0, 1], flags, name: "a" });
        assert_eq!(step.started, Some(2));
        assert_eq!(step.ack, Some(Ack::Returns(Reply::Pid(2))));
        let step = m.apply(&Action::Exit { who: 2, error: true });
        assert_eq!(step.deaths.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        let step = m.apply(&Action::Start);
        assert_eq!(step.started, Some(3));
    }

    #[test]
    fn linking_or_monitoring_a_dead_process_reports_noproc() {
        let mut m = Model::default();
        start(&mut m, 3);
        m.apply(&Action::Exit { who: 0, error: false });
        let step = m.apply(&Action::Monitor { by: 1, target: 0 });
        assert_eq!(step.events, vec![ExpectedEvent { to: 1, kind: EventKind::Exit, from: 0, cause: Cause::Noproc }]);
        m.apply(&Action::Link { by: 1, target: 2 });
        let step = m.apply(&Action::Link { by: 1, target: 0 });
        assert_eq!(step.deaths[&1], Death::Exactly(Outcome::Error(linked_failed(0))));
        assert_eq!(step.deaths[&2], Death::LinkedFailed([1].into()));
        assert_eq!(step.required_reply(1), None, "the linker may end before it replies");
    }
}
