use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use wisp_core::{HostIndex, Pid};
use wisp_security::{decide, Actor, Condition, ConditionOp, Effect, Pattern, Policy, Request, Scope};
use wisp_supervisor::{restart_delay, RestartPolicyParams, ServiceConfig};

/// A fresh temporary folder with the given files; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(files: &[(&str, &str)]) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wisp-registry-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn id(s: &str) -> EntryId {
    s.parse().unwrap()
}

const APP: &str = r#"version: "1.0"
namespace: app
entries:
  - name: processes
    kind: process.host
    host: { workers: 2, max_processes: 100000 }
    lifecycle: { auto_start: true }
  - name: terminal
    kind: terminal.host
  - name: worker
    kind: process.lua
    source: file://worker.lua
    modules: [time, os]
    imports: { util: app.lib:util }
  - name: svc
    kind: process.service
    process: app:worker
    host: app:processes
    input: [1, "two", {a: true}]
    lifecycle:
      auto_start: true
      requires: [app:processes]
      stop_timeout: 2s
      restart: { delay: 250ms, max_attempts: 3, max_delay: 1m30s }
      security:
        actor: { id: svc-actor, meta: { role: admin } }
        policies: [app:allow_all]
  - name: allow_all
    kind: security.policy
    policy: { actions: "*", resources: ["app.*"], effect: allow }
  - name: fancy
    kind: http.endpoint
"#;

const LIB: &str = "namespace: app.lib\nentries:\n- name: util\n  kind: library.lua\n  source: file://../lib/util.lua\n";

#[test]
fn loads_a_good_folder() {
    let dir = TempDir::new(&[
        ("app.yaml", APP),
        ("worker.lua", "return { main = function() end }"),
        ("sub/lib.yaml", LIB),
        ("lib/util.lua", "return {}"),
        ("notes.txt", "not yaml"),
    ]);
    let reg = Registry::load_dir(&dir.0).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<String> = reg.entries().map(|e| e.id.to_string()).collect();
    assert_eq!(
        ids,
        ["app:processes", "app:terminal", "app:worker", "app:svc", "app:allow_all", "app:fancy", "app.lib:util"]
    );
    let lines: Vec<usize> = reg.entries().map(|e| e.location.line).collect();
    assert_eq!(lines, [4, 8, 10, 15, 28, 31, 3]);

    let EntryKind::ProcessHost(h) = &reg.get(&id("app:processes")).unwrap().kind else { panic!() };
    assert_eq!((h.workers, h.max_processes), (Some(2), Some(100000)));
    assert!(h.lifecycle.auto_start);
    assert_eq!(h.lifecycle.stop_timeout, Duration::from_secs(10));

    let worker = reg.get(&id("app:worker")).unwrap().kind.lua().unwrap();
    assert_eq!(worker.method, "main");
    assert_eq!(worker.source_path, dir.0.join("worker.lua"));
    assert!(worker.source.contains("main"));
    assert_eq!(worker.imports["util"], id("app.lib:util"));
    let util = reg.get(&id("app.lib:util")).unwrap().kind.lua().unwrap();
    assert_eq!(util.source_path, dir.0.join("sub/../lib/util.lua"));

    let EntryKind::ProcessService(s) = &reg.get(&id("app:svc")).unwrap().kind else { panic!() };
    assert_eq!(s.process, id("app:worker"));
    assert_eq!(s.input.len(), 3);
    assert_eq!(s.input[1], Value::str("two"));
    let l = &s.lifecycle;
    assert_eq!(l.stop_timeout, Duration::from_secs(2));
    assert_eq!(l.stable_threshold, Duration::from_secs(5));
    assert_eq!(l.restart.initial_delay, Duration::from_millis(250));
    assert_eq!(l.restart.max_delay, Duration::from_secs(90));
    assert_eq!(l.restart.max_attempts, 3);
    assert_eq!(l.restart.backoff_factor, 2.0);
    let sec = l.security.as_ref().unwrap();
    assert_eq!(sec.actor.as_ref().unwrap().meta["role"], "admin");
    assert_eq!(sec.policies, [id("app:allow_all")]);

    let EntryKind::SecurityPolicy { policy: pol, groups } = &reg.get(&id("app:allow_all")).unwrap().kind else {
        panic!()
    };
    assert_eq!(pol.id, "app:allow_all");
    assert_eq!(pol.actions, [Pattern::Any]);
    assert_eq!(pol.resources, [Pattern::Prefix("app.".into())]);
    assert_eq!(pol.effect, Effect::Allow);
    assert!(groups.is_empty());

    let warnings: Vec<String> = reg.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("app.yaml:13: entry app:worker: module `os`")));
    assert!(warnings.iter().any(|w| w.contains("app.yaml:31: entry app:fancy: unknown kind `http.endpoint`")));
}

/// (files besides `a.lua`, expected (file, line, fragment) of every error)
type Case = (&'static [(&'static str, &'static str)], &'static [(&'static str, usize, &'static str)]);

#[test]
fn reports_bad_registries() {
    let cases: &[Case] = &[
        (
            &[("a.yaml", "namespace: app\nentries:\n  - name: x\n    kind: [oops\n")],
            &[("a.yaml", 5, "invalid YAML")],
        ),
        (&[("a.yaml", "entries: []\n")], &[("a.yaml", 1, "missing `namespace`")]),
        (&[("a.yaml", "namespace: app\n")], &[("a.yaml", 1, "missing `entries`")]),
        (&[("a.yaml", "- 1\n")], &[("a.yaml", 1, "must be a mapping")]),
        (
            &[("a.yaml", "namespace: app\nentries:\n  - kind: process.host\n  - name: y\n")],
            &[
                ("a.yaml", 3, "entry without `name`"),
                ("a.yaml", 4, "entry app:y: entry without `kind`"),
            ],
        ),
        (
            &[(
                "a.yaml",
                "namespace: app\nentries:\n  - name: h\n    kind: process.host\n  - name: h\n    kind: terminal.host\n",
            )],
            &[("a.yaml", 5, "entry app:h: duplicate entry ID app:h (first defined at ")],
        ),
        (
            &[(
                "a.yaml",
                "namespace: app\nentries:\n  - name: p\n    kind: process.lua\n    source: file://missing.lua\n",
            )],
            &[("a.yaml", 5, "entry app:p: cannot read source file")],
        ),
        (
            &[(
                "a.yaml",
                "namespace: app\nentries:\n  - name: h\n    kind: process.host\n    host:\n      workers: many\n",
            )],
            &[("a.yaml", 6, "entry app:h: `host.workers` must be a non-negative integer, found a string")],
        ),
        (
            &[(
                "a.yaml",
                "namespace: app\nentries:\n  - name: h\n    kind: process.host\n    lifecycle:\n      auto_start: true\n      stop_timeout: soon\n",
            )],
            &[("a.yaml", 7, "`lifecycle.stop_timeout`: invalid duration `soon`")],
        ),
        (
            &[(
                "a.yaml",
                "namespace: app\nentries:\n  - name: p\n    kind: process.lua\n    source: file://a.lua\n    imports:\n      u: app:p\n      v: app:nope\n",
            )],
            &[
                ("a.yaml", 6, "entry app:p: import `u` names app:p, which is a process.lua, not a library.lua"),
                ("a.yaml", 6, "import `v` names app:nope, which is not defined"),
            ],
        ),
        (
            &[(
                "a.yaml",
                "namespace: app\nentries:\n  - name: s\n    kind: process.service\n    process: app:nope\n    host: app:s\n",
            )],
            &[
                ("a.yaml", 5, "`process` names app:nope, which is not defined"),
                ("a.yaml", 6, "`host` names app:s, which is a process.service, not a process.host or terminal.host"),
            ],
        ),
        (
            &[
                (
                    "a.yaml",
                    "namespace: app\nentries:\n  - name: a\n    kind: process.host\n    lifecycle:\n      requires: [app:b]\n",
                ),
                (
                    "b.yaml",
                    "namespace: app\nentries:\n  - name: b\n    kind: process.host\n    lifecycle: { requires: [app:a] }\n",
                ),
            ],
            &[("a.yaml", 6, "entry app:a: requires cycle: app:a -> app:b -> app:a")],
        ),
        (
            &[(
                "a.yaml",
                "namespace: app\nentries:\n  - name: s\n    kind: process.service\n    host: app:h\n  - name: h\n    kind: process.host\n    host: { workers: -1 }\n",
            )],
            &[
                ("a.yaml", 3, "entry app:s: missing `process`"),
                ("a.yaml", 8, "entry app:h: `host.workers` must be a non-negative integer"),
            ],
        ),
        (
            &[
                ("a.yaml", "namespace: app\nentries:\n  - name: pol\n    kind: security.policy\n    policy:\n      actions: '*'\n      effect: maybe\n"),
                ("b.yaml", "namespace: ok\nentries: []\n"),
            ],
            &[("a.yaml", 7, "`policy.effect` must be allow or deny, found `maybe`")],
        ),
        (
            &[(
                "a.yaml",
                "namespace: app\nentries:\n  - name: pol\n    kind: security.policy\n    policy:\n      effect: allow\n      conditions:\n        - field: actor.id\n          operator: gt\n          value: x\n",
            )],
            &[("a.yaml", 9, "entry app:pol: `conditions.operator` must be eq or ne, found `gt`")],
        ),
    ];
    for (i, (files, want)) in cases.iter().enumerate() {
        let mut all: Vec<(&str, &str)> = files.to_vec();
        all.push(("a.lua", "return {}"));
        let dir = TempDir::new(&all);
        let errors = match Registry::load_dir(&dir.0) {
            Ok(_) => panic!("case {i}: loaded"),
            Err(e) => e.0,
        };
        let rendered: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(errors.len(), want.len(), "case {i}: {rendered:#?}");
        for (file, line, fragment) in want.iter() {
            assert!(
                errors.iter().any(|d| d.location.file == dir.0.join(file)
                    && d.location.line == *line
                    && d.to_string().contains(fragment)),
                "case {i}: no {file}:{line} {fragment:?} in {rendered:#?}"
            );
        }
    }
}

const TYPED: &str = r#"namespace: app
entries:
  - name: hosts
    kind: process.host
  - name: worker
    kind: process.lua
    source: file://worker.lua
  - name: svc
    kind: process.service
    process: app:worker
    host: app:hosts
    lifecycle:
      restart:
        initial_delay: 2s
        max_delay: 30s
        backoff_factor: 1.5
        jitter: 0.25
        max_attempts: 4
      security:
        actor: { id: svc-actor, meta: { role: admin, level: 3 } }
        policies: [app:no_admin_kill]
        groups: [ops]
  - name: plain
    kind: process.service
    process: app:worker
    host: app:hosts
  - name: no_admin_kill
    kind: security.policy
    groups: [ops, audit]
    policy:
      actions: [process.terminate, "process.spawn*"]
      resources: "*"
      effect: deny
      conditions:
        - { field: actor.meta.role, value: admin }
        - { field: meta.pid, operator: ne, value: 7 }
"#;

/// A service's `restart` block arrives as the supervisor's own type and a policy as the security
/// crate's, with the YAML's values, and each works unchanged where its crate uses it.
#[test]
fn entries_are_the_supervisor_and_security_types() {
    let dir = TempDir::new(&[("app.yaml", TYPED), ("worker.lua", "return {}")]);
    let reg = Registry::load_dir(&dir.0).unwrap_or_else(|e| panic!("{e}"));

    let EntryKind::ProcessService(svc) = &reg.get(&id("app:svc")).unwrap().kind else { panic!() };
    let restart: &RestartPolicyParams = &svc.lifecycle.restart;
    assert_eq!(
        *restart,
        RestartPolicyParams {
            initial_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(30),
            backoff_factor: 1.5,
            jitter: 0.25,
            max_attempts: 4,
        }
    );
    assert_eq!(restart_delay(restart, 3, 0.0), Duration::from_secs_f64(4.5));
    let config = ServiceConfig { restart: restart.clone(), ..ServiceConfig::new("app:svc") };
    assert_eq!(config.restart.max_attempts, 4);

    // No `restart:` block: the contract's defaults.
    let EntryKind::ProcessService(plain) = &reg.get(&id("app:plain")).unwrap().kind else { panic!() };
    assert_eq!(
        plain.lifecycle.restart,
        RestartPolicyParams {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(90),
            backoff_factor: 2.0,
            jitter: 0.1,
            max_attempts: 0,
        }
    );
    assert_eq!(plain.lifecycle.restart, RestartPolicyParams::default());

    let sec = svc.lifecycle.security.as_ref().unwrap();
    let actor: &Actor = sec.actor.as_ref().unwrap();
    assert_eq!(actor.id, "svc-actor");
    assert_eq!(actor.meta, [("level".into(), "3".into()), ("role".into(), "admin".into())].into());
    assert_eq!(sec.policies, [id("app:no_admin_kill")]);
    // A group named without a namespace is the entry's namespace's.
    assert_eq!(sec.groups, ["app:ops"]);

    let entry = reg.get(&id("app:no_admin_kill")).unwrap();
    let EntryKind::SecurityPolicy { policy, groups } = &entry.kind else { panic!() };
    assert_eq!(groups, &["app:ops", "app:audit"]);
    let policy: &Policy = policy;
    assert_eq!(entry.kind.policy(), Some(policy));
    assert_eq!(
        *policy,
        Policy {
            id: "app:no_admin_kill".into(),
            actions: vec![Pattern::Exact("process.terminate".into()), Pattern::Prefix("process.spawn".into())],
            resources: vec![Pattern::Any],
            effect: Effect::Deny,
            conditions: vec![
                Condition::eq("actor.meta.role", "admin"),
                Condition { field: "meta.pid".into(), op: ConditionOp::Ne, value: "7".into() },
            ],
        }
    );

    // The loaded actor and policy decide requests as they are.
    let allow_all = Policy {
        id: "test:allow_all".into(),
        actions: vec![Pattern::Any],
        resources: vec![Pattern::Any],
        effect: Effect::Allow,
        conditions: Vec::new(),
    };
    let scope = Scope::new(vec![std::sync::Arc::new(policy.clone()), std::sync::Arc::new(allow_all)]);
    let meta = |pid: &str| [("pid".to_string(), pid.to_string())].into();
    let (m1, m7) = (meta("1"), meta("7"));
    let ask = |action, meta| decide(Some(&scope), &Request { actor: Some(actor), action, resource: "x", meta }, true);
    assert!(!ask("process.terminate", Some(&m1)).is_allowed());
    assert!(!ask("process.spawn.linked", Some(&m1)).is_allowed());
    assert!(ask("process.terminate", Some(&m7)).is_allowed());
    assert!(ask("process.send", Some(&m1)).is_allowed());
}

#[test]
fn durations() {
    let ms = Duration::from_millis;
    let rows: &[(&str, Option<Duration>)] = &[
        ("1s", Some(ms(1000))),
        ("250ms", Some(ms(250))),
        ("1m30s", Some(ms(90_000))),
        ("90s", Some(ms(90_000))),
        ("2h", Some(ms(7_200_000))),
        ("1.5h", Some(ms(5_400_000))),
        ("1h2m3s4ms5us6ns", Some(Duration::new(3723, 4_005_006))),
        ("10", Some(ms(10_000))),
        ("0.5", Some(ms(500))),
        ("0", Some(Duration::ZERO)),
        (" 3s ", Some(ms(3000))),
        (".5s", Some(ms(500))),
        ("", None),
        ("s", None),
        ("1x", None),
        ("-1s", None),
        ("1.2.3s", None),
        ("1s2", None),
        ("99999999999999999999999h", None),
    ];
    for (text, want) in rows {
        assert_eq!(parse_duration(text).ok(), *want, "{text:?}");
    }
    assert_eq!(parse_go_duration("10").ok(), None);
    assert_eq!(parse_go_duration("10ms").ok(), Some(ms(10)));
}

#[test]
fn entry_ids() {
    for good in ["app:x", "app.sub:worker-1"] {
        assert_eq!(id(good).to_string(), good);
    }
    for bad in ["", "app", ":x", "app:", "a:b:c", "a b:c"] {
        assert!(bad.parse::<EntryId>().is_err(), "{bad}");
    }
}

#[test]
fn name_registry() {
    let pid = |n| Pid::new(HostIndex(0), n, 0);
    let names = NameRegistry::default();
    let alive = |_| true;
    let dead = |_| false;
    assert!(names.register("a", pid(1), alive).is_ok());
    assert!(names.register("a", pid(1), alive).is_ok());
    assert_eq!(names.register("a", pid(2), alive), Err(NameError::NameTaken(pid(1))));
    assert!(names.register("b", pid(1), alive).is_ok());
    assert!(matches!(names.register("", pid(1), alive), Err(NameError::Invalid { .. })));
    assert!(matches!(names.register("{app|0x1}", pid(1), alive), Err(NameError::Invalid { .. })));
    // A process that is not alive gets no name.
    assert_eq!(names.register("c", pid(3), dead), Err(NameError::NoProcess(pid(3))));
    assert_eq!(names.lookup("c"), None);
    // A dead holder's name is taken over.
    assert!(names.register("a", pid(2), |p| p != pid(1)).is_ok());
    assert_eq!(names.lookup("a"), Some(pid(2)));
    assert_eq!(names.names_of(pid(1)), ["b"]);
    assert_eq!(names.release_all(pid(1)), ["b"]);
    assert_eq!(names.lookup("b"), None);
    assert!(names.unregister("a"));
    assert!(!names.unregister("a"));
    assert!(names.is_empty());
    assert!(names.release_all(pid(2)).is_empty());
}

#[test]
fn a_claim_starts_one_process_per_name_and_keeps_it_while_it_lives() {
    use crate::{Claim, ClaimError};
    let pid = |n| Pid::new(HostIndex(0), n, 0);
    let names = NameRegistry::default();
    let started = names.claim("svc", |_| true, || Ok::<_, ()>(pid(1)));
    assert_eq!(started, Ok(Claim::Started(pid(1))));
    let again = names.claim("svc", |_| true, || -> Result<Pid, ()> { panic!("the name is held: nothing starts") });
    assert_eq!(again, Ok(Claim::Held(pid(1))));
    // A failed start binds nothing; a dead holder's name is claimed anew.
    assert_eq!(names.claim("other", |_| true, || Err::<Pid, _>("no entry")), Err(ClaimError::Start("no entry")));
    assert_eq!(names.lookup("other"), None);
    assert_eq!(names.claim("svc", |p| p != pid(1), || Ok::<_, ()>(pid(2))), Ok(Claim::Started(pid(2))));
    assert_eq!(names.names_of(pid(1)), Vec::<String>::new());
    assert!(matches!(names.claim("{x", |_| true, || Ok::<_, ()>(pid(3))), Err(ClaimError::Name(_))));
}

#[test]
fn name_registry_concurrent() {
    let names = std::sync::Arc::new(NameRegistry::default());
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let names = names.clone();
            std::thread::spawn(move || {
                let me = Pid::new(HostIndex(0), t, 0);
                let mut won = 0;
                for i in 0..200 {
                    if names.register(&format!("n{i}"), me, |_| true).is_ok() {
                        won += 1;
                    }
                }
                won
            })
        })
        .collect();
    let total: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 200);
    let released: usize = (0..4).map(|t| names.release_all(Pid::new(HostIndex(0), t, 0)).len()).sum();
    assert_eq!(released, 200);
    assert!(names.is_empty());
}

proptest::proptest! {
    #[test]
    fn go_durations_round_trip(h in 0u64..100, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
        let text = format!("{h}h{m}m{s}s{ms}ms");
        let want = Duration::from_millis(((h * 60 + m) * 60 + s) * 1000 + ms);
        proptest::prop_assert_eq!(parse_duration(&text), Ok(want));
    }
}

#[test]
fn depends_on_merges_into_requires_and_security_names_default_to_the_entrys_namespace() {
    let yaml = r#"namespace: app.svc
entries:
  - name: host
    kind: process.host
  - name: worker
    kind: process.lua
    source: file://worker.lua
  - name: svc
    kind: process.service
    process: app.svc:worker
    host: app.svc:host
    lifecycle:
      requires: [app.svc:host]
      depends_on: [app.svc:host, app.svc:other]
      security:
        policies: [local_policy, app.svc:local_policy]
        groups: [admins, other.ns:ops]
  - name: other
    kind: process.service
    process: app.svc:worker
    host: app.svc:host
  - name: local_policy
    kind: security.policy
    groups: [admins]
    policy: { actions: "*", resources: "*", effect: allow }
"#;
    let dir = TempDir::new(&[("app.yaml", yaml), ("worker.lua", "return { main = function() end }")]);
    let reg = Registry::load_dir(&dir.0).unwrap_or_else(|e| panic!("{e}"));
    let EntryKind::ProcessService(s) = &reg.get(&id("app.svc:svc")).unwrap().kind else { panic!("not a service") };
    assert_eq!(s.lifecycle.requires, [id("app.svc:host"), id("app.svc:other")]);
    let security = s.lifecycle.security.as_ref().expect("a security block");
    assert_eq!(security.policies, [id("app.svc:local_policy"), id("app.svc:local_policy")]);
    assert_eq!(security.groups, ["app.svc:admins", "other.ns:ops"]);
    let EntryKind::SecurityPolicy { groups, .. } = &reg.get(&id("app.svc:local_policy")).unwrap().kind else {
        panic!("not a policy")
    };
    assert_eq!(groups, &["app.svc:admins"]);
}

#[test]
fn a_requires_cycle_through_depends_on_is_reported_at_its_line() {
    let yaml = "namespace: app\nentries:\n  - name: a\n    kind: process.host\n    lifecycle:\n      depends_on: [app:b]\n  - name: b\n    kind: process.host\n    lifecycle: { requires: [app:a] }\n";
    let dir = TempDir::new(&[("a.yaml", yaml)]);
    let errors = Registry::load_dir(&dir.0).expect_err("a cycle is an error").to_string();
    assert!(errors.contains("a.yaml:6") && errors.contains("requires cycle: app:a -> app:b -> app:a"), "{errors}");
}
