//! Work-stealing task pool and timer service for the Wisp runtime.
//!
//! This crate knows nothing about processes or Lua: it runs [`Task`]s, which are
//! `Arc`-shared objects that do a bounded slice of work per [`Task::run`] call and
//! re-schedule themselves through a [`Handle`] when they have more to do.
//!
//! * [`Pool`] / [`Handle`]: worker threads with per-worker FIFO queues, a global
//!   injector and work stealing (see the [`pool`] module docs for the protocol).
//! * [`ScheduleState`]: the per-task state machine that guarantees a task is queued
//!   at most once while still never losing a wake-up that arrives during a run.
//! * [`Timers`] / [`TimerHandle`]: one timer thread per runtime that runs short
//!   callbacks at deadlines.

pub mod pool;
mod state;
pub mod timer;

pub use pool::{Handle, Pool, PoolConfig, Task};
pub use state::ScheduleState;
pub use timer::{Clock, SystemClock, TimerHandle, TimerId, Timers};
