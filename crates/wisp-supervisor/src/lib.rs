//! wisp-supervisor: service supervision policy, without a runtime inside.
//!
//! The runtime implements [`ServiceHost`] (start a service process monitored, stop it) and
//! owns the clock: it calls [`Supervisor::on_exit`] when a service process ends, and
//! [`Supervisor::restart`] once the returned backoff delay has elapsed.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// The ID of a service (its registry entry ID, rendered `ns:name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceId(pub String);

impl fmt::Display for ServiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ServiceId {
    fn from(s: &str) -> Self {
        ServiceId(s.to_string())
    }
}

/// What the supervisor drives. Implemented by the runtime; faked in tests.
pub trait ServiceHost {
    type Handle: Clone + Send;
    /// Starts the service's process (monitored by the runtime).
    fn start(&self, service: &ServiceId) -> Result<Self::Handle, String>;
    /// Asks the service's process to stop (CANCEL with `reason`, terminate after the stop timeout).
    fn stop(&self, handle: &Self::Handle, reason: &str);
}

/// Restart parameters (the registry's `lifecycle.restart`).
#[derive(Debug, Clone, PartialEq)]
pub struct RestartPolicyParams {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    pub backoff_factor: f64,
    /// Relative spread: 0.1 means the delay varies by up to ±10%.
    pub jitter: f64,
    /// 0 = unlimited; N = at most 1 + N starts in a row.
    pub max_attempts: u32,
}

impl Default for RestartPolicyParams {
    fn default() -> Self {
        RestartPolicyParams {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(90),
            backoff_factor: 2.0,
            jitter: 0.1,
            max_attempts: 0,
        }
    }
}

/// Delay before the `consecutive`-th restart in a row (1-based; 0 is treated as 1):
/// `initial_delay * backoff_factor^(consecutive-1)`, capped at `max_delay`, then spread by
/// `jitter * jitter_sample` (`jitter_sample` in [-1, 1], clamped). The spread is applied after
/// the cap, so a capped delay can exceed `max_delay` by up to `jitter`.
pub fn restart_delay(policy: &RestartPolicyParams, consecutive: u32, jitter_sample: f64) -> Duration {
    let k = consecutive.max(1);
    let max = policy.max_delay.as_secs_f64();
    let factor =
        if policy.backoff_factor.is_finite() && policy.backoff_factor > 0.0 { policy.backoff_factor } else { 1.0 };
    let exp = i32::try_from(k - 1).unwrap_or(i32::MAX);
    let base = policy.initial_delay.as_secs_f64() * factor.powi(exp);
    let base = if base.is_finite() { base.min(max) } else { max };
    let jitter = if policy.jitter.is_finite() { policy.jitter.clamp(0.0, 1.0) } else { 0.0 };
    let sample = if jitter_sample.is_finite() { jitter_sample.clamp(-1.0, 1.0) } else { 0.0 };
    let spread = base * (1.0 + jitter * sample);
    Duration::try_from_secs_f64(spread.max(0.0)).unwrap_or(policy.max_delay)
}

/// Whether a service that failed may be restarted, given how many restarts it already had in a
/// row (0 after its first start failed). `max_attempts` 0 means unlimited; N allows N restarts,
/// i.e. at most 1 + N starts in a row.
pub fn should_restart(restarts_in_a_row: u32, max_attempts: u32) -> bool {
    max_attempts == 0 || restarts_in_a_row < max_attempts
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceState {
    Stopped,
    Starting,
    Running,
    /// Waiting for the restart delay to elapse.
    Backoff,
    /// Gave up after `max_attempts`; left down.
    Failed,
}

/// A `requires` cycle, named in order: `a -> b -> a`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("requires cycle: {}", .cycle.join(" -> "))]
pub struct CycleError {
    pub cycle: Vec<String>,
}

/// Orders nodes so that every node comes after the nodes it requires (start order; reverse it
/// to stop). Deterministic: follows input order where the requirements leave a choice.
/// Requirements naming IDs that are not among `nodes` are ignored.
pub fn start_order<K>(nodes: &[(K, Vec<K>)]) -> Result<Vec<K>, CycleError>
where
    K: Eq + std::hash::Hash + Clone + fmt::Display,
{
    let index: HashMap<&K, usize> = nodes.iter().enumerate().map(|(i, (k, _))| (k, i)).collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; nodes.len()];
    let mut order = Vec::with_capacity(nodes.len());
    for root in 0..nodes.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative DFS: stack of (node, next requirement to look at).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::Active;
        while let Some(top) = stack.last_mut() {
            let (node, next) = *top;
            let reqs = &nodes[node].1;
            if next < reqs.len() {
                top.1 += 1;
                let Some(&dep) = index.get(&reqs[next]) else {
                    continue;
                };
                match marks[dep] {
                    Mark::Done => {}
                    Mark::New => {
                        marks[dep] = Mark::Active;
                        stack.push((dep, 0));
                    }
                    Mark::Active => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            stack[from..].iter().map(|(n, _)| nodes[*n].0.to_string()).collect();
                        cycle.push(nodes[dep].0.to_string());
                        return Err(CycleError { cycle });
                    }
                }
            } else {
                marks[node] = Mark::Done;
                order.push(nodes[node].0.clone());
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// One supervised service's configuration.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub id: ServiceId,
    pub requires: Vec<ServiceId>,
    pub auto_start: bool,
    pub stable_threshold: Duration,
    pub restart: RestartPolicyParams,
}

impl ServiceConfig {
    pub fn new(id: impl Into<String>) -> ServiceConfig {
        ServiceConfig {
            id: ServiceId(id.into()),
            requires: Vec::new(),
            auto_start: true,
            stable_threshold: Duration::from_secs(5),
            restart: RestartPolicyParams::default(),
        }
    }
}

/// What the runtime should do after a service's process ended (or failed to start).
#[derive(Debug, Clone, PartialEq)]
pub enum ExitOutcome {
    /// Call [`Supervisor::restart`] after this delay.
    Restart { after: Duration },
    /// Ended normally, or was being stopped: not restarted.
    Stopped,
    /// Out of attempts: left down.
    Failed { error: String },
}

struct Slot<H> {
    config: ServiceConfig,
    state: ServiceState,
    handle: Option<H>,
    restarts_in_a_row: u32,
}

/// Drives services through a [`ServiceHost`]. Holds no clock and no threads.
pub struct Supervisor<H: ServiceHost> {
    host: H,
    slots: Vec<Slot<H::Handle>>,
    index: HashMap<ServiceId, usize>,
    /// Indices into `slots` in start order.
    order: Vec<usize>,
}

impl<H: ServiceHost> Supervisor<H> {
    pub fn new(host: H, configs: Vec<ServiceConfig>) -> Result<Self, CycleError> {
        let nodes: Vec<(ServiceId, Vec<ServiceId>)> =
            configs.iter().map(|c| (c.id.clone(), c.requires.clone())).collect();
        let ordered = start_order(&nodes)?;
        let index: HashMap<ServiceId, usize> = configs.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
        let order = ordered.iter().filter_map(|id| index.get(id).copied()).collect();
        let slots = configs
            .into_iter()
            .map(|config| Slot { config, state: ServiceState::Stopped, handle: None, restarts_in_a_row: 0 })
            .collect();
        Ok(Supervisor { host, slots, index, order })
    }

    pub fn host(&self) -> &H {
        &self.host
    }

    /// Service IDs in start order.
    pub fn start_order(&self) -> Vec<ServiceId> {
        self.order.iter().map(|&i| self.slots[i].config.id.clone()).collect()
    }

    pub fn state(&self, id: &ServiceId) -> Option<ServiceState> {
        self.index.get(id).map(|&i| self.slots[i].state)
    }

    pub fn handle(&self, id: &ServiceId) -> Option<&H::Handle> {
        self.index.get(id).and_then(|&i| self.slots[i].handle.as_ref())
    }

    /// True while some service is running, starting or waiting to restart.
    pub fn any_alive(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s.state, ServiceState::Running | ServiceState::Starting | ServiceState::Backoff))
    }

    /// Starts every `auto_start` service in start order. Returns the services whose start failed,
    /// with what to do about them (as [`Supervisor::on_exit`] would).
    pub fn start_all(&mut self, jitter_sample: f64) -> Vec<(ServiceId, ExitOutcome)> {
        let mut failed = Vec::new();
        for pos in 0..self.order.len() {
            let i = self.order[pos];
            if !self.slots[i].config.auto_start || self.slots[i].state != ServiceState::Stopped {
                continue;
            }
            if let Some(outcome) = self.start_slot(i, jitter_sample) {
                failed.push((self.slots[i].config.id.clone(), outcome));
            }
        }
        failed
    }

    /// Starts (or restarts after a backoff) one service. `None` when it is running, or the
    /// outcome of its failed start.
    pub fn restart(&mut self, id: &ServiceId, jitter_sample: f64) -> Option<ExitOutcome> {
        let &i = self.index.get(id)?;
        if matches!(self.slots[i].state, ServiceState::Running | ServiceState::Starting) {
            return None;
        }
        self.start_slot(i, jitter_sample)
    }

    fn start_slot(&mut self, i: usize, jitter_sample: f64) -> Option<ExitOutcome> {
        self.slots[i].state = ServiceState::Starting;
        match self.host.start(&self.slots[i].config.id) {
            Ok(handle) => {
                let slot = &mut self.slots[i];
                slot.handle = Some(handle);
                slot.state = ServiceState::Running;
                None
            }
            Err(error) => Some(self.failed(i, error, Duration::ZERO, jitter_sample)),
        }
    }

    fn failed(&mut self, i: usize, error: String, ran_for: Duration, jitter_sample: f64) -> ExitOutcome {
        let slot = &mut self.slots[i];
        slot.handle = None;
        if ran_for >= slot.config.stable_threshold {
            slot.restarts_in_a_row = 0;
        }
        if should_restart(slot.restarts_in_a_row, slot.config.restart.max_attempts) {
            slot.restarts_in_a_row += 1;
            slot.state = ServiceState::Backoff;
            ExitOutcome::Restart { after: restart_delay(&slot.config.restart, slot.restarts_in_a_row, jitter_sample) }
        } else {
            slot.state = ServiceState::Failed;
            ExitOutcome::Failed { error }
        }
    }

    /// Reports that a service's process ended after running for `ran_for`, normally
    /// (`error == None`) or with an error. `None` for an unknown service.
    pub fn on_exit(
        &mut self,
        id: &ServiceId,
        ran_for: Duration,
        error: Option<&str>,
        jitter_sample: f64,
    ) -> Option<ExitOutcome> {
        let &i = self.index.get(id)?;
        let slot = &mut self.slots[i];
        if slot.state == ServiceState::Stopped || error.is_none() {
            slot.handle = None;
            slot.state = ServiceState::Stopped;
            return Some(ExitOutcome::Stopped);
        }
        let error = error.unwrap_or_default().to_string();
        Some(self.failed(i, error, ran_for, jitter_sample))
    }

    /// Stops every service in reverse start order (services waiting to restart are simply
    /// marked stopped). Returns the IDs asked to stop, in order.
    pub fn stop_all(&mut self, reason: &str) -> Vec<ServiceId> {
        let mut stopped = Vec::new();
        for pos in (0..self.order.len()).rev() {
            let i = self.order[pos];
            let slot = &mut self.slots[i];
            if let Some(handle) = slot.handle.take() {
                self.host.stop(&handle, reason);
                stopped.push(slot.config.id.clone());
            }
            slot.state = ServiceState::Stopped;
        }
        stopped
    }
}

#[cfg(test)]
mod tests;
