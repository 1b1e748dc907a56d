//! wisp-security: pure policy evaluation (no IO, no runtime).
//!
//! Every process runs as an [`Actor`] under a [`Scope`] (a set of [`Policy`]s).
//! [`decide`] answers whether a [`Request`] (an action on a resource) is allowed:
//! any matching deny wins, then any matching allow, and nothing matching is a deny.
//! Without an actor or a scope the answer depends on `strict_mode`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Who a process runs as.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub id: String,
    pub meta: BTreeMap<String, String>,
}

impl Actor {
    pub fn new(id: impl Into<String>) -> Actor {
        Actor { id: id.into(), meta: BTreeMap::new() }
    }
}

/// A pattern over action names or resource strings.
///
/// `*` matches everything, a pattern ending in `*` matches every string with the part
/// before the `*` as a prefix (including that prefix itself), anything else matches exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    Any,
    Exact(String),
    Prefix(String),
}

impl Pattern {
    pub fn parse(text: &str) -> Pattern {
        if text == "*" {
            Pattern::Any
        } else if let Some(prefix) = text.strip_suffix('*') {
            Pattern::Prefix(prefix.to_string())
        } else {
            Pattern::Exact(text.to_string())
        }
    }

    pub fn matches(&self, subject: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => s == subject,
            Pattern::Prefix(p) => subject.starts_with(p.as_str()),
        }
    }
}

impl From<&str> for Pattern {
    fn from(text: &str) -> Pattern {
        Pattern::parse(text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Any => f.write_str("*"),
            Pattern::Exact(s) => f.write_str(s),
            Pattern::Prefix(p) => write!(f, "{p}*"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// How a condition compares the field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ConditionOp {
    #[default]
    Eq,
    Ne,
}

/// A condition on the request. `field` is one of `actor.id`, `actor.meta.<key>`,
/// `meta.<key>` (the request's meta), `action` or `resource`.
/// A field that is absent makes the condition false (whatever the operator).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Condition {
    pub field: String,
    pub op: ConditionOp,
    pub value: String,
}

impl Condition {
    pub fn eq(field: impl Into<String>, value: impl Into<String>) -> Condition {
        Condition { field: field.into(), op: ConditionOp::Eq, value: value.into() }
    }

    fn holds(&self, actor: &Actor, request: &Request) -> bool {
        let found: Option<&str> = if self.field == "actor.id" {
            Some(actor.id.as_str())
        } else if self.field == "action" {
            Some(request.action)
        } else if self.field == "resource" {
            Some(request.resource)
        } else if let Some(key) = self.field.strip_prefix("actor.meta.") {
            actor.meta.get(key).map(String::as_str)
        } else if let Some(key) = self.field.strip_prefix("meta.") {
            request.meta.and_then(|m| m.get(key)).map(String::as_str)
        } else {
            None
        };
        match (found, self.op) {
            (None, _) => false,
            (Some(v), ConditionOp::Eq) => v == self.value,
            (Some(v), ConditionOp::Ne) => v != self.value,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: String,
    pub actions: Vec<Pattern>,
    pub resources: Vec<Pattern>,
    pub effect: Effect,
    pub conditions: Vec<Condition>,
}

impl Policy {
    /// True when the policy applies to the request: some action pattern and some resource
    /// pattern match, and every condition holds.
    pub fn applies(&self, actor: &Actor, request: &Request) -> bool {
        self.actions.iter().any(|p| p.matches(request.action))
            && self.resources.iter().any(|p| p.matches(request.resource))
            && self.conditions.iter().all(|c| c.holds(actor, request))
    }
}

/// The set of policies a process runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub policies: Vec<Arc<Policy>>,
}

impl Scope {
    pub fn new(policies: Vec<Arc<Policy>>) -> Scope {
        Scope { policies }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub actor: Option<&'a Actor>,
    pub action: &'a str,
    pub resource: &'a str,
    pub meta: Option<&'a BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Decides a request. Without an actor or a scope: allowed unless `strict_mode`.
/// Otherwise any applying deny wins, then any applying allow; nothing applying is a deny.
pub fn decide(scope: Option<&Scope>, request: &Request, strict_mode: bool) -> Decision {
    let (Some(scope), Some(actor)) = (scope, request.actor) else {
        return if strict_mode { Decision::Deny } else { Decision::Allow };
    };
    let mut allowed = false;
    for policy in &scope.policies {
        if policy.applies(actor, request) {
            match policy.effect {
                Effect::Deny => return Decision::Deny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

/// What a host lets its processes do, whatever the policies say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCapabilities {
    /// The `io` module (terminal input/output).
    pub io: bool,
    /// Spawning processes on hosts other than this one.
    pub spawn_other_hosts: bool,
    /// Hosts (by name) this host's processes may send to; default `*`.
    pub send_to_hosts: Vec<Pattern>,
    /// Hosts this host's processes may never send to; wins over `send_to_hosts`.
    pub deny_send_to_hosts: Vec<Pattern>,
}

impl Default for HostCapabilities {
    fn default() -> Self {
        HostCapabilities {
            io: true,
            spawn_other_hosts: true,
            send_to_hosts: vec![Pattern::Any],
            deny_send_to_hosts: Vec::new(),
        }
    }
}

impl HostCapabilities {
    /// A sandbox: no io, no spawning elsewhere, sending only to the same host is up to the caller.
    pub fn sandbox() -> Self {
        HostCapabilities {
            io: false,
            spawn_other_hosts: false,
            send_to_hosts: vec![Pattern::Any],
            deny_send_to_hosts: Vec::new(),
        }
    }

    pub fn can_send_to(&self, host: &str) -> bool {
        !self.deny_send_to_hosts.iter().any(|p| p.matches(host)) && self.send_to_hosts.iter().any(|p| p.matches(host))
    }
}

#[cfg(test)]
mod tests;
