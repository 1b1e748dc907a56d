//! The link, monitor and `trap_links` rules: what a signal or an event does to a process, and
//! who hears of its end. Lua shards, native processes and the runtime's exit path all use these.
//!
//! - A monitor gets EXIT whenever the monitored process ends, however it ends.
//! - A link is bidirectional; an error exit (terminate included) sends LINK_DOWN to every link,
//!   a normal exit sends none.
//! - Without `trap_links`, a LINK_DOWN ends its receiver with `linked process failed: <pid>`;
//!   with it, the LINK_DOWN arrives as an event.
//! - An EXIT from a process this one no longer monitors, and a LINK_DOWN from one it is no
//!   longer linked to, are dropped (an unmonitor or unlink raced with the end).

use wisp_core::{Envelope, Event, ExitResult, Pid, Signal};

/// What a process holds of links and monitors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Supervision {
    /// Processes linked to this one.
    pub links: Vec<Pid>,
    /// Processes that monitor this one.
    pub monitors: Vec<Pid>,
    /// Processes this one monitors.
    pub monitoring: Vec<Pid>,
    /// LINK_DOWN arrives as an event instead of ending the process.
    pub trap_links: bool,
}

/// What an incoming signal or event does to a process.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing the program sees (the bookkeeping is done).
    Nothing,
    /// An event for the program (`process.events()`).
    Event(Event),
    /// The process ends with this error.
    Exit(String),
}

fn remove(list: &mut Vec<Pid>, pid: Pid) -> bool {
    match list.iter().position(|p| *p == pid) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

fn add_once(list: &mut Vec<Pid>, pid: Pid) {
    if !list.contains(&pid) {
        list.push(pid);
    }
}

impl Supervision {
    /// Applies a control signal from `from`.
    pub fn on_signal(&mut self, from: Pid, signal: Signal) -> Effect {
        match signal {
            Signal::Link => add_once(&mut self.links, from),
            Signal::Unlink => {
                remove(&mut self.links, from);
            }
            Signal::Monitor => self.monitors.push(from),
            Signal::Demonitor => {
                remove(&mut self.monitors, from);
            }
            Signal::Terminate => return Effect::Exit("terminated".into()),
            Signal::Cancel(reason) => return Effect::Event(Event::Cancel { from: Some(from), reason }),
        }
        Effect::Nothing
    }

    /// Applies an event addressed to this process; `render` writes a PID for an exit reason.
    pub fn on_event(&mut self, event: Event, render: impl FnOnce(Pid) -> String) -> Effect {
        match &event {
            Event::Exit { from, .. } => {
                if !remove(&mut self.monitoring, *from) {
                    return Effect::Nothing;
                }
            }
            Event::LinkDown { from, .. } => {
                if !remove(&mut self.links, *from) {
                    return Effect::Nothing;
                }
                if !self.trap_links {
                    return Effect::Exit(format!("linked process failed: {}", render(*from)));
                }
            }
            Event::Cancel { .. } => {}
        }
        Effect::Event(event)
    }

    /// Applies an envelope: a signal or an event (a message or a timer is none of this
    /// module's business and is `None`).
    pub fn on_envelope(&mut self, envelope: Envelope, render: impl FnOnce(Pid) -> String) -> Option<Effect> {
        match envelope {
            Envelope::Signal { from, signal } => Some(self.on_signal(from, signal)),
            Envelope::Event(event) => Some(self.on_event(event, render)),
            Envelope::Message(_) | Envelope::Timer(_) => None,
        }
    }

    /// This process now monitors `pid` (it asked to, or spawned it monitored).
    pub fn monitor(&mut self, pid: Pid) {
        self.monitoring.push(pid);
    }

    pub fn demonitor(&mut self, pid: Pid) {
        remove(&mut self.monitoring, pid);
    }

    /// This process is now linked to `pid` (it asked to, or spawned it linked).
    pub fn link(&mut self, pid: Pid) {
        add_once(&mut self.links, pid);
    }

    pub fn unlink(&mut self, pid: Pid) {
        remove(&mut self.links, pid);
    }

    /// Who hears of the end of `pid` and what: EXIT to every monitor, LINK_DOWN to every link on
    /// an error exit. Signals left in the mailbox after the last step (`leftover`) count: a
    /// monitor or a link that arrived then still gets its answer.
    pub fn exit_notices(mut self, pid: Pid, result: &ExitResult, leftover: Vec<Envelope>) -> Vec<(Pid, Event)> {
        for envelope in leftover {
            if let Envelope::Signal { from, signal } = envelope {
                if matches!(signal, Signal::Link | Signal::Unlink | Signal::Monitor | Signal::Demonitor) {
                    self.on_signal(from, signal);
                }
            }
        }
        let mut notices: Vec<(Pid, Event)> =
            self.monitors.into_iter().map(|m| (m, Event::Exit { from: pid, result: result.clone() })).collect();
        if result.is_error() {
            notices.extend(self.links.into_iter().map(|l| (l, Event::LinkDown { from: pid, result: result.clone() })));
        }
        notices
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_core::Value;

    fn pid(n: u32) -> Pid {
        Pid::new(wisp_core::HostIndex(0), n, 1)
    }

    fn render(p: Pid) -> String {
        format!("<{}>", p.slot)
    }

    #[test]
    fn signals_keep_the_books_and_terminate_and_cancel_reach_the_process() {
        let mut s = Supervision::default();
        let cases = [
            (Signal::Link, Effect::Nothing),
            (Signal::Link, Effect::Nothing),
            (Signal::Monitor, Effect::Nothing),
            (Signal::Terminate, Effect::Exit("terminated".into())),
            (
                Signal::Cancel(Value::str("stop")),
                Effect::Event(Event::Cancel { from: Some(pid(1)), reason: Value::str("stop") }),
            ),
        ];
        for (signal, want) in cases {
            assert_eq!(s.on_signal(pid(1), signal.clone()), want, "{signal:?}");
        }
        assert_eq!(s.links, vec![pid(1)], "a link is held once");
        assert_eq!(s.monitors, vec![pid(1)]);
        s.on_signal(pid(1), Signal::Unlink);
        s.on_signal(pid(1), Signal::Demonitor);
        assert!(s.links.is_empty() && s.monitors.is_empty());
    }

    #[test]
    fn events_pass_only_from_what_the_process_holds() {
        let exit = |from| Event::Exit { from, result: ExitResult::Value(Value::Nil) };
        let down = |from| Event::LinkDown { from, result: ExitResult::Error("boom".into()) };
        let mut s = Supervision::default();
        assert_eq!(s.on_event(exit(pid(2)), render), Effect::Nothing, "not monitored");
        s.monitor(pid(2));
        assert_eq!(s.on_event(exit(pid(2)), render), Effect::Event(exit(pid(2))));
        assert_eq!(s.on_event(exit(pid(2)), render), Effect::Nothing, "one EXIT per monitor");
        assert_eq!(s.on_event(down(pid(3)), render), Effect::Nothing, "not linked");
        s.link(pid(3));
        assert_eq!(s.on_event(down(pid(3)), render), Effect::Exit("linked process failed: <3>".into()));
        s.trap_links = true;
        s.link(pid(3));
        assert_eq!(s.on_event(down(pid(3)), render), Effect::Event(down(pid(3))));
    }

    #[test]
    fn an_exit_tells_every_monitor_and_on_error_every_link_counting_late_signals() {
        let mut s = Supervision::default();
        s.monitors.push(pid(1));
        s.links.push(pid(2));
        let late = vec![
            Envelope::Signal { from: pid(3), signal: Signal::Monitor },
            Envelope::Signal { from: pid(2), signal: Signal::Unlink },
            Envelope::Signal { from: pid(4), signal: Signal::Link },
        ];
        let error = ExitResult::Error("x".into());
        let notices = s.clone().exit_notices(pid(9), &error, late.clone());
        let to: Vec<(u32, &str)> = notices
            .iter()
            .map(|(p, e)| (p.slot, if matches!(e, Event::Exit { .. }) { "exit" } else { "down" }))
            .collect();
        assert_eq!(to, vec![(1, "exit"), (3, "exit"), (4, "down")]);
        let normal = s.exit_notices(pid(9), &ExitResult::Value(Value::Nil), late);
        assert!(normal.iter().all(|(_, e)| matches!(e, Event::Exit { .. })), "no LINK_DOWN on a normal exit");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::thread;
    use std::sync::Arc;
    use wisp_core::Value;
    use wisp_mailbox::{Mailbox, Wake};

    struct NoWake;

    impl Wake for NoWake {
        fn wake(&self, _token: u32) {}
    }

    fn pid(n: u32) -> Pid {
        Pid::new(wisp_core::HostIndex(0), n, 1)
    }

    /// `watcher` sends `signal` to a process that ends with `result` meanwhile (the push races
    /// the exit's close of the mailbox). Returns what the watcher heard in total: the runtime's
    /// `noproc` answer to a refused push, or the exit notices of a signal that got in.
    fn race_signal_with_exit(signal: Signal, result: ExitResult) -> Vec<Event> {
        let watcher = pid(1);
        let dying = pid(2);
        let mailbox = loom::sync::Arc::new(Mailbox::<Envelope>::new(Arc::new(NoWake), 0));
        let sender = {
            let mailbox = mailbox.clone();
            let signal = signal.clone();
            thread::spawn(move || mailbox.push(Envelope::Signal { from: watcher, signal }).is_err())
        };
        let leftover = mailbox.close();
        let notices = Supervision::default().exit_notices(dying, &result, leftover);
        let refused = sender.join().expect("sender panicked");
        let mut heard: Vec<Event> = notices.into_iter().filter(|(to, _)| *to == watcher).map(|(_, e)| e).collect();
        if refused {
            let noproc = ExitResult::Error("noproc".into());
            heard.push(match signal {
                Signal::Monitor => Event::Exit { from: dying, result: noproc },
                Signal::Link => Event::LinkDown { from: dying, result: noproc },
                other => unreachable!("not modelled: {other:?}"),
            });
        }
        heard
    }

    #[test]
    fn loom_monitor_racing_exit_gets_one_exit() {
        loom::model(|| {
            let heard = race_signal_with_exit(Signal::Monitor, ExitResult::Value(Value::Nil));
            assert_eq!(heard.len(), 1, "a monitor gets exactly one EXIT: {heard:?}");
            assert!(matches!(heard[0], Event::Exit { .. }));
        });
    }

    #[test]
    fn loom_link_racing_error_exit_gets_one_link_down() {
        loom::model(|| {
            let heard = race_signal_with_exit(Signal::Link, ExitResult::Error("boom".into()));
            assert_eq!(heard.len(), 1, "a link gets exactly one LINK_DOWN: {heard:?}");
            assert!(matches!(heard[0], Event::LinkDown { .. }));
        });
    }
}
