//! The harness shared by the Lua-program tests: write an app folder (one YAML registry plus Lua
//! files), build a [`Node`] and start an entry of the app on its terminal host. Each Lua file
//! `x.lua` becomes the entry `app:x`; `app:processes` is a process host whose `host:` map the
//! caller gives. An app may also have libraries: each `x.lua` of them is the `library.lua` entry
//! `app:x`, which every entry of the app imports as `x` (`require("x")`). [`cases`] runs
//! folders of Lua cases, each with its expected outcome in a header comment, on this harness.

#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod cases;
pub mod child;

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};

use wisp_core::{ExitResult, Pid, Value};
use wisp_registry::Registry;
use wisp_runtime::{Node, NodeBuilder, TerminalIo};

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

/// An app started by [`App::start`]: its node, the started entry's PID, a receiver of its end,
/// its terminal output, and the app folder (removed when `dir` is dropped).
pub struct Started {
    pub node: Node,
    pub main: Pid,
    pub done: mpsc::Receiver<ExitResult>,
    pub io: Arc<Capture>,
    pub dir: tempfile::TempDir,
}

/// An app: its programs and the libraries every program imports.
pub struct App<'a> {
    pub files: &'a [(&'a str, &'a str)],
    pub libraries: &'a [(&'a str, &'a str)],
}

impl App<'_> {
    /// Writes the app folder; `host` is the `host:` map of `app:processes`, as YAML lines
    /// without indentation (e.g. `workers: 2`).
    pub fn write_with_host(&self, dir: &Path, host: &str) {
        let mut yaml = String::from(
            "version: \"1.0\"\nnamespace: app\n\nentries:\n  - name: processes\n    kind: process.host\n    host:\n",
        );
        for line in host.lines() {
            yaml.push_str("      ");
            yaml.push_str(line);
            yaml.push('\n');
        }
        yaml.push_str("\n  - name: terminal\n    kind: terminal.host\n");
        let stem = |name: &str| name.strip_suffix(".lua").expect("Lua files end in .lua").to_owned();
        let imports: Vec<String> = self.libraries.iter().map(|(name, _)| format!("{0}: app:{0}", stem(name))).collect();
        for (name, source) in self.files {
            std::fs::write(dir.join(name), source).unwrap();
            yaml.push_str(&format!(
                "\n  - name: {}\n    kind: process.lua\n    source: file://{name}\n    modules: [time, ctx, uuid, security]\n",
                stem(name)
            ));
            if !imports.is_empty() {
                yaml.push_str(&format!("    imports: {{ {} }}\n", imports.join(", ")));
            }
        }
        if !self.libraries.is_empty() {
            std::fs::create_dir(dir.join("lib")).unwrap();
        }
        for (name, source) in self.libraries {
            std::fs::write(dir.join("lib").join(name), source).unwrap();
            yaml.push_str(&format!(
                "\n  - name: {}\n    kind: library.lua\n    source: file://lib/{name}\n    modules: [time, ctx, uuid, security]\n",
                stem(name)
            ));
        }
        std::fs::write(dir.join("app.yaml"), yaml).unwrap();
    }

    /// Writes the app (with `host` as in [`App::write_with_host`]), builds a node `customize`
    /// may add to and starts `entry` with `args` on the terminal host, without waiting: the
    /// caller waits on [`Started::done`] and decides what to do with the node.
    pub fn start(
        &self,
        host: &str,
        entry: &str,
        args: Vec<Value>,
        customize: impl FnOnce(NodeBuilder) -> NodeBuilder,
    ) -> Started {
        let dir = tempfile::tempdir().unwrap();
        self.write_with_host(dir.path(), host);
        let registry = Registry::load_dir(dir.path()).unwrap_or_else(|e| panic!("registry does not load:\n{e}"));
        let io = Arc::new(Capture::default());
        let builder = Node::builder().registry(registry).terminal(io.clone()).default_workers(2);
        let node = customize(builder).build().expect("node builds");
        let host = node.terminal_host().expect("the app declares a terminal host").to_owned();
        assert_eq!(host, "app:terminal");
        let (main, done) = node.spawn_watched(entry, &host, args).unwrap_or_else(|e| panic!("{entry} spawns: {e}"));
        Started { node, main, done, io, dir }
    }
}
