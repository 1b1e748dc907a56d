//! The harness shared by the Lua-program tests: write an app folder (one YAML registry plus Lua
//! files), build a [`Node`], run `app:main` on the terminal host and wait for its end with a
//! timeout (never a sleep). Each Lua file `x.lua` becomes the entry `app:x`; `app:processes` is a
//! process host with two workers.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wisp_core::{ExitResult, Value};
use wisp_registry::Registry;
use wisp_runtime::{Node, NodeBuilder, TerminalIo};

/// The default entry of an app: runs `app:case` on the process host and returns its value (or
/// fails with its error).
pub const DEFAULT_MAIN: &str = r#"
local function main(...)
	return process.exec("app:case", "app:processes", ...)
end
return { main = main }
"#;

/// Terminal output captured in memory.
#[derive(Default)]
pub struct Capture {
    out: Mutex<Vec<u8>>,
}

impl TerminalIo for Capture {
    fn write(&self, bytes: &[u8]) {
        self.out.lock().unwrap().extend_from_slice(bytes);
    }
    fn flush(&self) {}
    fn read_line(&self) -> Option<String> {
        None
    }
}

impl Capture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }
}

/// An app: the programs every case of a test file shares, plus the case's own (same names win).
pub struct App<'a> {
    pub common: &'a [(&'a str, &'a str)],
    pub files: &'a [(&'a str, &'a str)],
}

impl App<'_> {
    fn write(&self, dir: &Path) {
        let mut yaml = String::from(
            "version: \"1.0\"\nnamespace: app\n\nentries:\n  - name: processes\n    kind: process.host\n    host:\n      workers: 2\n\n  - name: terminal\n    kind: terminal.host\n",
        );
        let mut all: Vec<(&str, &str)> = self.common.to_vec();
        for (name, source) in self.files {
            all.retain(|(n, _)| n != name);
            all.push((name, source));
        }
        for (name, source) in &all {
            std::fs::write(dir.join(name), source).unwrap();
            let stem = name.strip_suffix(".lua").expect("Lua files end in .lua");
            yaml.push_str(&format!(
                "\n  - name: {stem}\n    kind: process.lua\n    source: file://{name}\n    modules: [time, ctx, uuid, security]\n"
            ));
        }
        std::fs::write(dir.join("app.yaml"), yaml).unwrap();
    }

    /// Runs `app:main` with `args` on a node `customize` may add to; returns how it ended.
    pub fn run_with(
        &self,
        args: Vec<Value>,
        timeout: Duration,
        customize: impl FnOnce(NodeBuilder) -> NodeBuilder,
    ) -> ExitResult {
        let dir = tempfile::tempdir().unwrap();
        self.write(dir.path());
        let registry = Registry::load_dir(dir.path()).unwrap_or_else(|e| panic!("registry does not load:\n{e}"));
        let io = Arc::new(Capture::default());
        let builder = Node::builder().registry(registry).terminal(io.clone()).default_workers(2);
        let node = customize(builder).build().expect("node builds");
        let host = node.terminal_host().expect("the app declares a terminal host").to_owned();
        assert_eq!(host, "app:terminal");
        let (_, done) = node.spawn_watched("app:main", &host, args).expect("app:main spawns");
        let result = done.recv_timeout(timeout).unwrap_or_else(|e| {
            panic!("app:main did not end within {timeout:?} ({e}); terminal output:\n{}", io.text())
        });
        node.shutdown();
        result
    }

    pub fn run(&self, args: Vec<Value>, timeout: Duration) -> ExitResult {
        self.run_with(args, timeout, |b| b)
    }
}
