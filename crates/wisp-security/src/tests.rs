use super::*;
use proptest::prelude::*;

fn policy(id: &str, actions: &[&str], resources: &[&str], effect: Effect) -> Arc<Policy> {
    Arc::new(Policy {
        id: id.into(),
        actions: actions.iter().map(|a| Pattern::parse(a)).collect(),
        resources: resources.iter().map(|r| Pattern::parse(r)).collect(),
        effect,
        conditions: Vec::new(),
    })
}

#[test]
fn patterns() {
    let rows: &[(&str, &str, bool)] = &[
        ("*", "", true),
        ("*", "anything", true),
        ("app.*", "app.worker", true),
        ("app.*", "app.", true),
        ("app.*", "app", false),
        ("app.*", "other.app.x", false),
        ("{app:system|*", "{app:system|0x00001}", true),
        ("{app:system|*", "{app:processes|0x00001}", false),
        ("process.spawn", "process.spawn", true),
        ("process.spawn", "process.spawn.linked", false),
        ("", "", true),
        ("", "x", false),
    ];
    for (pattern, subject, want) in rows {
        assert_eq!(Pattern::parse(pattern).matches(subject), *want, "{pattern} vs {subject}");
        assert_eq!(Pattern::parse(pattern).to_string(), *pattern);
    }
}

#[test]
fn decisions() {
    let actor = Actor::new("user");
    let allow_all = policy("a", &["*"], &["*"], Effect::Allow);
    let deny_system = policy("d", &["process.send"], &["{app:system|*"], Effect::Deny);
    let allow_spawn = policy("s", &["process.spawn"], &["app.*"], Effect::Allow);
    // (policies, actor?, action, resource, strict, expected)
    type Row<'a> = (Vec<Arc<Policy>>, bool, bool, &'a str, &'a str, bool, Decision);
    let rows: Vec<Row> = vec![
        (vec![], false, false, "x", "y", false, Decision::Allow),
        (vec![], false, false, "x", "y", true, Decision::Deny),
        (vec![allow_all.clone()], true, false, "x", "y", false, Decision::Allow),
        (vec![allow_all.clone()], true, false, "x", "y", true, Decision::Deny),
        (vec![], true, true, "x", "y", false, Decision::Deny),
        (vec![allow_all.clone()], true, true, "x", "y", true, Decision::Allow),
        (
            vec![allow_all.clone(), deny_system.clone()],
            true,
            true,
            "process.send",
            "{app:system|0x1}",
            false,
            Decision::Deny,
        ),
        (
            vec![deny_system.clone(), allow_all.clone()],
            true,
            true,
            "process.send",
            "{app:system|0x1}",
            false,
            Decision::Deny,
        ),
        (
            vec![allow_all.clone(), deny_system.clone()],
            true,
            true,
            "process.send",
            "{app:other|0x1}",
            false,
            Decision::Allow,
        ),
        (vec![allow_spawn.clone()], true, true, "process.spawn", "app.worker", true, Decision::Allow),
        (vec![allow_spawn.clone()], true, true, "process.spawn", "sys.worker", true, Decision::Deny),
        (vec![allow_spawn.clone()], true, true, "process.send", "app.worker", true, Decision::Deny),
    ];
    for (i, (policies, has_scope, has_actor, action, resource, strict, want)) in rows.into_iter().enumerate() {
        let scope = Scope::new(policies);
        let request = Request { actor: has_actor.then_some(&actor), action, resource, meta: None };
        let got = decide(has_scope.then_some(&scope), &request, strict);
        assert_eq!(got, want, "row {i}");
    }
}

#[test]
fn conditions() {
    let mut admin = Actor::new("root");
    admin.meta.insert("role".into(), "admin".into());
    let guest = Actor::new("guest");
    let mut req_meta = BTreeMap::new();
    req_meta.insert("tenant".into(), "t1".into());
    let rows: &[(Condition, &Actor, bool)] = &[
        (Condition::eq("actor.meta.role", "admin"), &admin, true),
        (Condition::eq("actor.meta.role", "admin"), &guest, false),
        (Condition::eq("actor.id", "guest"), &guest, true),
        (Condition::eq("meta.tenant", "t1"), &guest, true),
        (Condition::eq("meta.tenant", "t2"), &guest, false),
        (Condition::eq("action", "act"), &guest, true),
        (Condition::eq("resource", "res"), &guest, true),
        (Condition::eq("nonsense", "res"), &guest, false),
        (Condition { field: "actor.meta.role".into(), op: ConditionOp::Ne, value: "admin".into() }, &admin, false),
        (Condition { field: "actor.meta.role".into(), op: ConditionOp::Ne, value: "guest".into() }, &admin, true),
    ];
    for (cond, actor, want) in rows {
        let mut p = (*policy("c", &["*"], &["*"], Effect::Allow)).clone();
        p.conditions.push(cond.clone());
        let scope = Scope::new(vec![Arc::new(p)]);
        let req = Request { actor: Some(actor), action: "act", resource: "res", meta: Some(&req_meta) };
        let want = if *want { Decision::Allow } else { Decision::Deny };
        assert_eq!(decide(Some(&scope), &req, true), want, "{cond:?}");
    }
}

#[test]
fn host_capabilities() {
    let mut caps = HostCapabilities::default();
    assert!(caps.can_send_to("app:system"));
    caps.deny_send_to_hosts.push(Pattern::parse("app:sys*"));
    assert!(!caps.can_send_to("app:system"));
    assert!(caps.can_send_to("app:processes"));
    caps.send_to_hosts = vec![Pattern::parse("app:proc*")];
    assert!(!caps.can_send_to("other"));
    assert!(!HostCapabilities::sandbox().io);
}

// Reference model: a direct re-statement of the rules over raw strings.
fn model_match(pattern: &str, s: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => s.len() >= prefix.len() && &s[..prefix.len()] == prefix,
        None => pattern == s,
    }
}

type RawPolicy = (Vec<String>, Vec<String>, bool);

fn model_decide(
    policies: Option<&[RawPolicy]>,
    has_actor: bool,
    action: &str,
    resource: &str,
    strict: bool,
) -> Decision {
    let Some(policies) = policies.filter(|_| has_actor) else {
        return if strict { Decision::Deny } else { Decision::Allow };
    };
    let matching: Vec<bool> = policies
        .iter()
        .filter(|(a, r, _)| a.iter().any(|p| model_match(p, action)) && r.iter().any(|p| model_match(p, resource)))
        .map(|(_, _, allow)| *allow)
        .collect();
    if matching.contains(&false) {
        Decision::Deny
    } else if matching.contains(&true) {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    prop_oneof![Just("*".to_string()), "[ab.]{0,3}\\*?"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn decide_matches_model(
        raw in proptest::option::of(proptest::collection::vec(
            (proptest::collection::vec(pattern_strategy(), 0..3),
             proptest::collection::vec(pattern_strategy(), 0..3),
             any::<bool>()),
            0..4)),
        has_actor in any::<bool>(),
        action in "[ab.]{0,4}",
        resource in "[ab.]{0,4}",
        strict in any::<bool>(),
    ) {
        let actor = Actor::new("p");
        let scope = raw.as_ref().map(|ps| Scope::new(ps.iter().enumerate().map(|(i, (a, r, allow))| Arc::new(Policy {
            id: i.to_string(),
            actions: a.iter().map(|p| Pattern::parse(p)).collect(),
            resources: r.iter().map(|p| Pattern::parse(p)).collect(),
            effect: if *allow { Effect::Allow } else { Effect::Deny },
            conditions: vec![],
        })).collect()));
        let req = Request { actor: has_actor.then_some(&actor), action: &action, resource: &resource, meta: None };
        let got = decide(scope.as_ref(), &req, strict);
        let want = model_decide(raw.as_deref(), has_actor, &action, &resource, strict);
        prop_assert_eq!(got, want);
    }
}
