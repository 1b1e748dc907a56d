use super::*;
use std::cell::RefCell;
use std::collections::HashSet;

const MS: fn(u64) -> Duration = Duration::from_millis;

#[test]
fn delays() {
    let p = RestartPolicyParams {
        initial_delay: MS(1000),
        max_delay: MS(90_000),
        backoff_factor: 2.0,
        jitter: 0.1,
        max_attempts: 0,
    };
    // (consecutive, jitter sample, expected ms)
    let rows: &[(u32, f64, u64)] = &[
        (0, 0.0, 1000),
        (1, 0.0, 1000),
        (2, 0.0, 2000),
        (3, 0.0, 4000),
        (7, 0.0, 64_000),
        (8, 0.0, 90_000),
        (1000, 0.0, 90_000),
        (u32::MAX, 0.0, 90_000),
        (1, 1.0, 1100),
        (1, -1.0, 900),
        (1, 5.0, 1100),
        (2, 0.5, 2100),
        (8, -1.0, 81_000),
        (1, f64::NAN, 1000),
    ];
    for &(k, sample, want) in rows {
        let got = restart_delay(&p, k, sample);
        assert!(
            got.as_secs_f64() * 1000.0 - want as f64 <= 1e-6 && want as f64 - got.as_secs_f64() * 1000.0 <= 1e-6,
            "k={k} sample={sample}: {got:?} != {want}ms"
        );
    }
    let flat = RestartPolicyParams { backoff_factor: 1.0, jitter: 0.0, ..p.clone() };
    assert_eq!(restart_delay(&flat, 50, 1.0), MS(1000));
}

#[test]
fn restart_limits() {
    // (restarts so far, max_attempts, allowed)
    let rows: &[(u32, u32, bool)] =
        &[(0, 0, true), (1_000_000, 0, true), (0, 1, true), (1, 1, false), (2, 3, true), (3, 3, false)];
    for &(n, max, want) in rows {
        assert_eq!(should_restart(n, max), want, "{n} {max}");
    }
}

fn nodes(spec: &[(&'static str, &[&'static str])]) -> Vec<(String, Vec<String>)> {
    spec.iter().map(|(k, deps)| (k.to_string(), deps.iter().map(|d| d.to_string()).collect())).collect()
}

#[test]
fn ordering() {
    type Spec = &'static [(&'static str, &'static [&'static str])];
    let rows: &[(Spec, Result<&[&str], &str>)] = &[
        (&[], Ok(&[])),
        (&[("a", &[]), ("b", &[])], Ok(&["a", "b"])),
        (&[("a", &["b"]), ("b", &[])], Ok(&["b", "a"])),
        (&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])], Ok(&["c", "b", "a"])),
        (&[("a", &["host"]), ("b", &["a"])], Ok(&["a", "b"])),
        (&[("a", &["a"])], Err("requires cycle: a -> a")),
        (&[("a", &["b"]), ("b", &["c"]), ("c", &["a"])], Err("requires cycle: a -> b -> c -> a")),
        (&[("x", &[]), ("a", &["b"]), ("b", &["a"])], Err("requires cycle: a -> b -> a")),
    ];
    for (spec, want) in rows {
        let got = start_order(&nodes(spec)).map_err(|e| e.to_string());
        match want {
            Ok(order) => assert_eq!(got, Ok(order.iter().map(|s| s.to_string()).collect())),
            Err(msg) => assert_eq!(got, Err(msg.to_string())),
        }
    }
}

#[derive(Default)]
struct FakeHost {
    failing: HashSet<String>,
    log: RefCell<Vec<String>>,
    next: RefCell<u32>,
}

impl ServiceHost for FakeHost {
    type Handle = u32;
    fn start(&self, service: &ServiceId) -> Result<u32, String> {
        self.log.borrow_mut().push(format!("start {service}"));
        if self.failing.contains(&service.0) {
            return Err("boom".into());
        }
        let mut n = self.next.borrow_mut();
        *n += 1;
        Ok(*n)
    }
    fn stop(&self, handle: &u32, reason: &str) {
        self.log.borrow_mut().push(format!("stop {handle} {reason}"));
    }
}

#[test]
fn supervisor_lifecycle() {
    let mut db = ServiceConfig::new("app:db");
    db.restart.max_attempts = 2;
    db.restart.jitter = 0.0;
    let mut web = ServiceConfig::new("app:web");
    web.requires = vec!["app:db".into()];
    let mut manual = ServiceConfig::new("app:manual");
    manual.auto_start = false;
    let mut sup = Supervisor::new(FakeHost::default(), vec![web, db, manual]).unwrap();
    assert!(sup.start_all(0.0).is_empty());
    assert_eq!(*sup.host().log.borrow(), vec!["start app:db".to_string(), "start app:web".to_string()]);
    let db_id = ServiceId::from("app:db");
    assert_eq!(sup.state(&db_id), Some(ServiceState::Running));
    assert_eq!(sup.state(&"app:manual".into()), Some(ServiceState::Stopped));

    // Crashes in a row: 1s, 2s, then failed (max_attempts 2 = 3 starts in a row).
    let crash = |sup: &mut Supervisor<FakeHost>, ran: Duration| sup.on_exit(&db_id, ran, Some("crash"), 0.0);
    assert_eq!(crash(&mut sup, MS(10)), Some(ExitOutcome::Restart { after: MS(1000) }));
    assert_eq!(sup.state(&db_id), Some(ServiceState::Backoff));
    assert_eq!(sup.restart(&db_id, 0.0), None);
    assert_eq!(crash(&mut sup, MS(10)), Some(ExitOutcome::Restart { after: MS(2000) }));
    assert_eq!(sup.restart(&db_id, 0.0), None);
    // A stable run resets the count.
    assert_eq!(crash(&mut sup, MS(6000)), Some(ExitOutcome::Restart { after: MS(1000) }));
    assert_eq!(sup.restart(&db_id, 0.0), None);
    assert_eq!(crash(&mut sup, MS(1)), Some(ExitOutcome::Restart { after: MS(2000) }));
    assert_eq!(sup.restart(&db_id, 0.0), None);
    assert_eq!(crash(&mut sup, MS(1)), Some(ExitOutcome::Failed { error: "crash".into() }));
    assert_eq!(sup.state(&db_id), Some(ServiceState::Failed));

    // A normal exit is not restarted.
    let web_id = ServiceId::from("app:web");
    assert_eq!(sup.on_exit(&web_id, MS(1), None, 0.0), Some(ExitOutcome::Stopped));
    assert!(!sup.any_alive());
    assert_eq!(sup.on_exit(&"nope".into(), MS(1), None, 0.0), None);
}

#[test]
fn stop_in_reverse_order_and_failed_start() {
    let a = ServiceConfig::new("a");
    let mut b = ServiceConfig::new("b");
    b.requires = vec!["a".into()];
    let mut c = ServiceConfig::new("c");
    c.restart.max_attempts = 1;
    let host = FakeHost { failing: ["c".to_string()].into_iter().collect(), ..FakeHost::default() };
    let mut sup = Supervisor::new(host, vec![b, a, c]).unwrap();
    assert_eq!(sup.start_order(), vec!["a".into(), "b".into(), "c".into()]);
    let failed = sup.start_all(0.0);
    assert_eq!(failed.len(), 1);
    assert!(matches!(failed[0].1, ExitOutcome::Restart { .. }));
    assert!(matches!(sup.restart(&"c".into(), 0.0), Some(ExitOutcome::Failed { .. })));
    sup.host().log.borrow_mut().clear();
    assert_eq!(sup.stop_all("service stopping"), vec!["b".into(), "a".into()]);
    assert_eq!(*sup.host().log.borrow(), vec!["stop 2 service stopping", "stop 1 service stopping"]);
    // Exits reported after stopping are not restarted.
    assert_eq!(sup.on_exit(&"a".into(), MS(1), Some("terminated"), 0.0), Some(ExitOutcome::Stopped));
}

#[test]
fn cycle_rejected_by_supervisor() {
    let mut a = ServiceConfig::new("a");
    a.requires = vec!["b".into()];
    let mut b = ServiceConfig::new("b");
    b.requires = vec!["a".into()];
    let err = Supervisor::new(FakeHost::default(), vec![a, b]).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("requires cycle: a -> b -> a"));
}
