//! `security`: the actor and scope a process runs as, and `security.can`, judged by wisp-security.

use std::collections::BTreeMap;
use std::sync::Arc;

use mlua::{Lua, Table, Value as LuaValue};
use wisp_core::{Key, Value};
use wisp_security::{decide, Actor, Effect as PolicyEffect, Pattern, Policy, Request, Scope};

use crate::convert::*;
use crate::shard::core::*;

/// Registers this module's callbacks in `r`.
pub(crate) fn register(lua: &Lua, r: &Table, core: &Arc<Core>) -> mlua::Result<()> {
    let c = core.clone();
    r.set(
        "security",
        lua.create_function(move |lua, ()| {
            let (actor, scope) = with_proc(&c, running(&c), |p| (p.actor.clone(), p.scope.clone()))?;
            let to_lua = |v: Option<Arc<Value>>| match v {
                Some(v) => value_to_lua(lua, &v),
                None => Ok(LuaValue::Nil),
            };
            Ok((to_lua(actor)?, to_lua(scope)?))
        })?,
    )?;
    let c = core.clone();
    r.set(
        "can",
        lua.create_function(move |_, (action, resource): (String, String)| {
            let (actor, scope) = with_proc(&c, running(&c), |p| (p.actor.clone(), p.scope.clone()))?;
            Ok(can(actor.as_deref(), scope.as_deref(), &action, &resource))
        })?,
    )?;
    Ok(())
}

fn field<'a>(table: &'a Value, name: &str) -> Option<&'a Value> {
    let Value::Table(t) = table else { return None };
    t.map.iter().find(|(k, _)| matches!(k, Key::Str(s) if &**s == name.as_bytes())).map(|(_, v)| v)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Str(s)) => vec![String::from_utf8_lossy(s).into_owned()],
        Some(Value::Table(t)) => t.array.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn actor_of(value: &Value) -> Actor {
    let mut actor = Actor::new(field(value, "id").and_then(Value::as_str).unwrap_or_default());
    if let Some(Value::Table(meta)) = field(value, "meta") {
        let pairs = meta.map.iter().filter_map(|(k, v)| match k {
            Key::Str(k) => Some((String::from_utf8_lossy(k).into_owned(), v.to_display_string())),
            _ => None,
        });
        actor.meta = pairs.collect::<BTreeMap<_, _>>();
    }
    actor
}

/// A policy given as a table `{id, actions, resources, effect}`; others are ignored.
fn policy_of(value: &Value) -> Option<Policy> {
    let effect = match field(value, "effect").and_then(Value::as_str)? {
        "allow" => PolicyEffect::Allow,
        "deny" => PolicyEffect::Deny,
        _ => return None,
    };
    Some(Policy {
        id: field(value, "id").and_then(Value::as_str).unwrap_or_default().to_owned(),
        actions: strings(field(value, "actions")).iter().map(|a| Pattern::parse(a)).collect(),
        resources: strings(field(value, "resources")).iter().map(|r| Pattern::parse(r)).collect(),
        effect,
        conditions: Vec::new(),
    })
}

/// Whether a process with this actor and scope may do `action` on `resource` (non-strict mode:
/// a process without an actor or a scope may do everything).
pub(crate) fn can(actor: Option<&Value>, scope: Option<&Value>, action: &str, resource: &str) -> bool {
    let actor = actor.map(actor_of);
    let scope = scope.map(|s| {
        let policies = match field(s, "policies") {
            Some(Value::Table(t)) => t.array.iter().filter_map(policy_of).map(Arc::new).collect(),
            _ => Vec::new(),
        };
        Scope::new(policies)
    });
    let request = Request { actor: actor.as_ref(), action, resource, meta: None };
    decide(scope.as_ref(), &request, false).is_allowed()
}
