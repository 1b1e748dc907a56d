use crate::{Pid, Value};

/// How a process ended: its first return value, or an error text.
#[derive(Debug, Clone, PartialEq)]
pub enum ExitResult {
    Value(Value),
    Error(String),
}

impl ExitResult {
    pub fn is_error(&self) -> bool {
        matches!(self, ExitResult::Error(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Exit,
    LinkDown,
    Cancel,
}

impl EventKind {
    /// The `kind` string a Lua program sees (`process.event.*`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Exit => "pid.exit",
            EventKind::LinkDown => "pid.link.down",
            EventKind::Cancel => "pid.cancel",
        }
    }
}

/// A lifecycle event delivered on a process's `events()` channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Exit { from: Pid, result: ExitResult },
    LinkDown { from: Pid, result: ExitResult },
    Cancel { from: Option<Pid>, reason: Value },
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Exit { .. } => EventKind::Exit,
            Event::LinkDown { .. } => EventKind::LinkDown,
            Event::Cancel { .. } => EventKind::Cancel,
        }
    }
}
