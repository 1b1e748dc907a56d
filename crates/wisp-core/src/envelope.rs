use crate::{Event, Message, Pid, Value};

/// What a process's mailbox carries: messages, lifecycle events, control signals and timer firings,
/// all in one queue so that everything one process sends another arrives in the order it was sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Envelope {
    Message(Message),
    Event(Event),
    Signal {
        from: Pid,
        signal: Signal,
    },
    /// A timer the process started has fired.
    Timer(u64),
}

/// A control request from one process to another, handled by the runtime on the receiver's side.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Link,
    Unlink,
    Monitor,
    Demonitor,
    /// End the receiver now with error `terminated`.
    Terminate,
    /// Deliver a CANCEL event; the receiver decides when to exit.
    Cancel(Value),
}
