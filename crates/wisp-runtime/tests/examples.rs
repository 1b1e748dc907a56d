//! The example apps in `examples/` load, and every auto-start service of each (what `wisp run`
//! starts) ends with a value, with its terminal output captured.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::Capture;
use wisp_core::ExitResult;
use wisp_registry::Registry;
use wisp_runtime::Node;

const TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn every_example_runs_its_services_to_the_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut apps = 0;
    for dir in std::fs::read_dir(&root).expect("examples/ exists") {
        let dir = dir.expect("readable").path();
        if !dir.is_dir() {
            continue;
        }
        apps += 1;
        let registry = Registry::load_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let services: Vec<_> = registry
            .auto_start_services()
            .map(|(id, s)| (id.to_string(), s.process.to_string(), s.host.to_string(), s.input.clone()))
            .collect();
        let terminal = Arc::new(Capture::default());
        let node = Node::builder().registry(registry).terminal(terminal.clone()).build().expect("node builds");
        for (id, process, host, input) in services {
            let (_, done) = node.spawn_watched(&process, &host, input).unwrap_or_else(|e| panic!("{id}: {e}"));
            match done.recv_timeout(TIMEOUT) {
                Ok(ExitResult::Value(_)) => {}
                Ok(ExitResult::Error(e)) => panic!("{} service {id} failed: {e}", dir.display()),
                Err(e) => panic!("{} service {id} did not end: {e}", dir.display()),
            }
        }
        node.shutdown();
        assert!(!terminal.text().contains("error"), "{}: error in the output: {}", dir.display(), terminal.text());
    }
    assert!(apps >= 3, "found only {apps} example apps");
}
