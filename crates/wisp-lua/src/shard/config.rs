//! A shard's settings.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ShardConfig {
    /// The host's name, for log lines.
    pub host: String,
    /// This shard's place among its host's shards, which the kernel knows its processes by
    /// (`SpawnRequest::parent_group`).
    pub group: u32,
    /// Process steps per scheduler slice.
    pub batch: usize,
    /// Wall time after which a slice ends even if steps are left, so a shard full of busy
    /// processes hands its worker to other shards at least this often.
    pub slice: Duration,
    /// The VM's collector: heap size that starts a cycle, as a percentage of the live heap after
    /// the last one (Luau's `LUA_GCSETGOAL`), collector work per unit allocated (percent), and
    /// the size of one step in KB.
    pub gc_goal: i32,
    pub gc_step_multiplier: i32,
    pub gc_step_size_kb: i32,
    /// The longest one step may run where it cannot be preempted (a metamethod, a sort
    /// comparator, a pattern match); past it the process ends with `step time limit exceeded`.
    /// `None`: no limit.
    pub max_step: Option<Duration>,
}

/// The default of [`ShardConfig::max_step`] (the contract's `limits.max_step`).
pub const DEFAULT_MAX_STEP: Duration = Duration::from_secs(5);

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig {
            host: "host".into(),
            group: 0,
            batch: 256,
            slice: Duration::from_micros(500),
            // Luau's defaults (200%, 200%, 1 KB) suit a game script's small heap; a shard's heap
            // holds thousands of processes, and marking it twice as often cost spawns about a
            // tenth of their time for a fifth less peak memory.
            gc_goal: 300,
            gc_step_multiplier: 300,
            gc_step_size_kb: 4,
            max_step: Some(DEFAULT_MAX_STEP),
        }
    }
}
