//! Lua cases as files, each with its expected outcome in a header comment, run by a data-driven
//! harness: a folder of `tests/` is a [`Suite`] (`isolation/`, `lua_apps/`, `ordering/`).
//!
//! # Cases
//!
//! Each `x.lua` of the suite's folder is the case `x.lua`, the entry `app:x`. Each subfolder
//! `x/` (but `common/`) is the case `x/`: its `case.lua` is the case's entry `app:case`, and
//! each other Lua file `y.lua` of it an entry `app:y` of this case only. Each Lua file `y.lua`
//! of `common/` is an entry `app:y` of every case, and each `y.lua` of `common/lib/` the
//! `library.lua` entry `app:y`, which every entry imports as `y` (`require("y")`). A case's app
//! holds these and its own programs, no other case's. Every entry has
//! `modules: [time, ctx, uuid, security]`; names that would collide are refused.
//!
//! A case runs in an app (see [`super::App`]) whose `app:processes` is a process host with the
//! [`Layout`]'s workers, and whose `app:main`, the harness's, runs on the terminal host: it
//! runs the case's entry on `app:processes` with `process.exec` and the case's arguments, and
//! ends as the case ended. Nothing sleeps: the harness waits on `app:main`'s end with the case's
//! timeout.
//!
//! # The header
//!
//! The case's first line (of `case.lua`, for a folder) says how it must end:
//!
//! ```text
//! -- expect: ok                 the case returns the string "ok"
//! -- expect: 20000              ... that number
//! -- expect: "ok 66"            ... that string
//! -- expect: any string         ... a string (a Rust test that runs the case may check more)
//! -- expect error: <fragment>   the case ends with an error whose text contains <fragment>
//! ```
//!
//! The comment lines right after it may add, in any order (the header ends at the first line
//! that is not a comment; its other comments are the case's description):
//!
//! ```text
//! -- expect error: <fragment>  another fragment the error must contain (after a first line
//!                              `-- expect error:`; repeatable)
//! -- host: <YAML>              a line of the `host:` map of app:processes, e.g.
//!                              `-- host: limits: { max_step: 200ms }` (repeatable; not
//!                              `workers`, which the layout sets)
//! -- timeout: <seconds>        how long the case may run (default: the suite's)
//! -- args: <values>            the arguments of the case's entry, separated by commas: numbers
//!                              and "strings" (without escapes)
//! -- on: terminal              the case's entry is the app's entry itself: it runs on the
//!                              terminal host, started with the arguments (instead of by
//!                              app:main on app:processes)
//! -- setup: rust               the case needs Rust-side setup (a native process, arguments of
//!                              other types, several runs): [`Suite::run_all`] leaves it out, and
//!                              a `#[test]` runs it ([`Suite::run_checked`], [`Suite::run`])
//! ```

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use wisp_core::{ExitResult, Value};
use wisp_runtime::NodeBuilder;

use super::{App, Started};

/// `app:main`: runs the case entry it is given on the process host, with the arguments after
/// it, and ends as the case ended.
const MAIN: &str = r#"
local function main(entry: string, ...)
	return process.exec(entry, "app:processes", ...)
end
return { main = main }
"#;

/// Lua files as (file name, source).
pub type LuaFiles = Vec<(String, String)>;

/// A host shape cases run on.
pub struct Layout {
    pub name: &'static str,
    pub workers: usize,
    /// `None`: the runtime's default.
    pub shards_per_worker: Option<usize>,
}

/// Two workers with the runtime's default shards.
pub const TWO_WORKERS: Layout = Layout { name: "2 workers, default shards", workers: 2, shards_per_worker: None };

/// How a case must end.
#[derive(Debug, Clone)]
pub enum Expect {
    Value(Value),
    AnyString,
    /// The error text must contain every fragment.
    Error(Vec<String>),
}

/// A case, read and parsed.
#[derive(Clone)]
pub struct Case {
    /// `x.lua` or `x/`.
    pub name: String,
    /// `app:x`, or `app:case` for a folder.
    pub entry: String,
    /// The case's own programs.
    pub files: LuaFiles,
    pub expect: Expect,
    /// Lines of the process host's `host:` map besides `workers`.
    pub host: Vec<String>,
    pub timeout: Duration,
    pub args: Vec<Value>,
    pub on_terminal: bool,
    pub rust: bool,
}

/// A folder of cases.
pub struct Suite {
    /// The folder, relative to `tests/`.
    pub folder: &'static str,
    /// The case's timeout when its header gives none.
    pub default_timeout: Duration,
    /// The environment variable that selects cases: `<text>` runs only those whose name contains
    /// it (several texts separated by commas).
    pub filter_env: &'static str,
}

/// How a run of a case went: its result (`None`: it did not end within its timeout) and the
/// app's terminal output.
pub struct Run {
    pub result: Option<ExitResult>,
    pub output: String,
}

impl Suite {
    pub fn dir(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(self.folder)
    }

    /// Every case of the folder the filter selects, sorted by name, with `setup: rust` cases or
    /// without; a case that cannot be read is a failure (`<name>: <why>`).
    pub fn cases(&self, with_rust: bool) -> (Vec<Case>, Vec<String>) {
        let dir = self.dir();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|entry| entry.expect("a directory entry").path())
            .filter_map(|path| {
                let name = path.file_name()?.to_string_lossy().into_owned();
                if path.is_dir() {
                    (name != "common").then(|| format!("{name}/"))
                } else {
                    name.ends_with(".lua").then_some(name)
                }
            })
            .filter(|name| self.selected(name))
            .collect();
        names.sort();
        let (mut cases, mut failures) = (Vec::new(), Vec::new());
        for name in names {
            match self.case(&name) {
                Ok(case) if case.rust && !with_rust => {}
                Ok(case) => cases.push(case),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        (cases, failures)
    }

    fn selected(&self, name: &str) -> bool {
        match std::env::var(self.filter_env) {
            Ok(filter) if !filter.trim().is_empty() => {
                filter.split(',').map(str::trim).filter(|f| !f.is_empty()).any(|f| name.contains(f))
            }
            _ => true,
        }
    }

    /// The case `name` (`x.lua`, or `x/` or `x` for a folder).
    pub fn case(&self, name: &str) -> Result<Case, String> {
        let path = self.dir().join(name.trim_end_matches('/'));
        let (name, entry, files) = if path.is_dir() {
            let files = lua_files(&path);
            if !files.iter().any(|(file, _)| file == "case.lua") {
                return Err("a case folder needs a case.lua".into());
            }
            (format!("{}/", name.trim_end_matches('/')), "app:case".to_owned(), files)
        } else {
            let stem = name.strip_suffix(".lua").ok_or("not a .lua file or a folder")?;
            let source = std::fs::read_to_string(&path).map_err(|e| format!("cannot read it: {e}"))?;
            (name.to_owned(), format!("app:{stem}"), vec![(name.to_owned(), source)])
        };
        let main = if path.is_dir() { "case.lua" } else { name.as_str() };
        let (_, source) = files.iter().find(|(file, _)| file == main).expect("the case's file");
        let mut case = Case {
            name: name.clone(),
            entry,
            files: Vec::new(),
            expect: Expect::AnyString,
            host: Vec::new(),
            timeout: self.default_timeout,
            args: Vec::new(),
            on_terminal: false,
            rust: false,
        };
        parse_header(source, &mut case).map_err(|e| format!("bad case header: {e}"))?;
        let (common, libraries) = self.common();
        for (file, _) in &files {
            if file == "main.lua" {
                return Err("main.lua would replace the harness's app:main".into());
            }
            if common.iter().chain(&libraries).any(|(c, _)| c == file) {
                return Err(format!("{file} is also a program of common/ or common/lib/"));
            }
        }
        case.files = files;
        Ok(case)
    }

    /// The programs of `common/` and the libraries of `common/lib/`, checked not to collide.
    fn common(&self) -> (LuaFiles, LuaFiles) {
        let common = lua_files(&self.dir().join("common"));
        let libraries = lua_files(&self.dir().join("common/lib"));
        for (name, _) in &common {
            assert!(name != "main.lua", "common/main.lua would replace the harness's app:main");
            assert!(!libraries.iter().any(|(l, _)| l == name), "{name} is both a common program and a library");
        }
        assert!(!libraries.iter().any(|(l, _)| l == "main.lua"), "common/lib/main.lua would replace app:main");
        (common, libraries)
    }

    /// Runs `case` on `layout`, on a node `customize` may add to, and waits for its end. When it
    /// ends, the node is shut down if `shutdown` says so (a child about to exit leaves it); a node
    /// that did not end is left running (a stuck VM could hold its worker, and shutting down
    /// would join it).
    pub fn run(
        &self,
        case: &Case,
        layout: &Layout,
        shutdown: bool,
        customize: impl FnOnce(NodeBuilder) -> NodeBuilder,
    ) -> Run {
        let (common, libraries) = self.common();
        let main = ("main.lua".to_owned(), MAIN.to_owned());
        let programs: Vec<(&str, &str)> = std::iter::once(&main)
            .chain(&case.files)
            .chain(&common)
            .map(|(name, source)| (name.as_str(), source.as_str()))
            .collect();
        let libraries: Vec<(&str, &str)> =
            libraries.iter().map(|(name, source)| (name.as_str(), source.as_str())).collect();
        let app = App { files: &programs, libraries: &libraries };
        let mut host = format!("workers: {}", layout.workers);
        for line in &case.host {
            host.push('\n');
            host.push_str(line);
        }
        let (entry, args) = if case.on_terminal {
            (case.entry.as_str(), case.args.clone())
        } else {
            ("app:main", std::iter::once(Value::str(&case.entry)).chain(case.args.iter().cloned()).collect())
        };
        let shards = layout.shards_per_worker;
        let Started { node, done, io, dir, .. } = app.start(&host, entry, args, |builder| {
            let builder = customize(builder);
            match shards {
                Some(n) => builder.shards_per_worker(n),
                None => builder,
            }
        });
        let result = done.recv_timeout(case.timeout).ok();
        if result.is_some() && shutdown {
            node.shutdown();
        } else {
            std::mem::forget(node);
        }
        drop(dir);
        Run { result, output: io.text() }
    }

    /// Runs every case of the folder but the `setup: rust` ones on `layout`, in this process (so
    /// that a run under valgrind covers them), as many at once as libtest runs tests, and fails
    /// with every failure, by case name.
    pub fn run_all(&self, layout: &Layout) {
        let (cases, mut failures) = self.cases(false);
        assert!(!cases.is_empty() || !failures.is_empty(), "no case selected in {}", self.dir().display());
        let next = AtomicUsize::new(0);
        let found = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..test_threads().min(cases.len()) {
                scope.spawn(|| {
                    while let Some(case) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                        // A panic of the harness (an app that does not load) fails this case only.
                        let run = || self.run(case, layout, true, |b| b).verdict(case);
                        let verdict = std::panic::catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
                            let text = panic.downcast_ref::<String>().map(String::as_str);
                            let text = text.or_else(|| panic.downcast_ref::<&str>().copied());
                            Err(format!("the harness panicked: {}", text.unwrap_or("(no message)")))
                        });
                        self.progress(case, layout, &verdict);
                        if let Err(e) = verdict {
                            found.lock().unwrap().push(format!("{} [{}]: {e}", case.name, layout.name));
                        }
                    }
                });
            }
        });
        failures.extend(found.into_inner().unwrap());
        failures.sort();
        self.report(cases.len(), 1, &failures);
    }

    /// The case `name` (as [`Suite::case`]), or a failure.
    pub fn load(&self, name: &str) -> Case {
        self.case(name).unwrap_or_else(|e| panic!("{}/{name}: {e}", self.folder))
    }

    /// Runs `case` on two workers, on a node `customize` may add to, and returns its result;
    /// fails unless the case ends as its header says.
    pub fn run_checked(&self, case: &Case, customize: impl FnOnce(NodeBuilder) -> NodeBuilder) -> ExitResult {
        let run = self.run(case, &TWO_WORKERS, true, customize);
        match (run.verdict(case), run.result) {
            (Ok(()), Some(result)) => result,
            (verdict, _) => panic!("{}/{}: {}", self.folder, case.name, verdict.err().unwrap_or_default()),
        }
    }

    /// The progress line of one run.
    pub fn progress(&self, case: &Case, layout: &Layout, verdict: &Result<(), String>) {
        let verdict = match verdict {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("FAILED: {}", gist(e)),
        };
        eprintln!("{}: {} [{}]: {verdict}", self.folder, case.name, layout.name);
    }

    /// Fails with every failure of `cases` x `layouts` runs, if any.
    pub fn report(&self, cases: usize, layouts: usize, failures: &[String]) {
        assert!(
            failures.is_empty(),
            "{} {} failures ({cases} cases run x {layouts} layouts):\n\n{}\n",
            failures.len(),
            self.folder,
            failures.join("\n\n")
        );
    }
}

impl Run {
    /// Whether the run ended as `case` must; `Err` says how it did not.
    pub fn verdict(&self, case: &Case) -> Result<(), String> {
        let printed =
            if self.output.trim().is_empty() { String::new() } else { format!("\nterminal output:\n{}", self.output) };
        let Some(result) = &self.result else {
            return Err(format!(
                "did not end within {:?} (a hang: some process or VM never yielded){printed}",
                case.timeout
            ));
        };
        let met = match (&case.expect, result) {
            (Expect::Value(want), ExitResult::Value(got)) => got == want,
            (Expect::AnyString, ExitResult::Value(got)) => matches!(got, Value::Str(_)),
            (Expect::Error(fragments), ExitResult::Error(text)) => fragments.iter().all(|f| text.contains(f.as_str())),
            _ => false,
        };
        if met {
            Ok(())
        } else {
            Err(format!("expected {}, got {}{printed}", describe_expect(&case.expect), describe_result(result)))
        }
    }
}

/// Reads `source`'s header into `case`.
fn parse_header(source: &str, case: &mut Case) -> Result<(), String> {
    let mut lines = source.lines();
    let first = lines.next().unwrap_or("").trim();
    case.expect = if let Some(fragment) = first.strip_prefix("-- expect error:") {
        Expect::Error(vec![fragment_of(fragment)?])
    } else if let Some(value) = first.strip_prefix("-- expect:") {
        match value.trim() {
            "ok" => Expect::Value(Value::str("ok")),
            "any string" => Expect::AnyString,
            value => Expect::Value(parse_value(value)?),
        }
    } else {
        return Err(format!(
            "the first line must be `-- expect: <value>` or `-- expect error: <fragment>`, found {first:?}"
        ));
    };
    for line in lines {
        let Some(comment) = line.trim().strip_prefix("--") else {
            break;
        };
        let comment = comment.trim();
        if let Some(fragment) = comment.strip_prefix("expect error:") {
            let Expect::Error(fragments) = &mut case.expect else {
                return Err("`-- expect error:` after a first line that expects a value".into());
            };
            fragments.push(fragment_of(fragment)?);
        } else if let Some(yaml) = comment.strip_prefix("host:") {
            let yaml = yaml.trim();
            if yaml.starts_with("workers") {
                return Err("`workers` is the layout's: a case cannot set it".into());
            }
            case.host.push(yaml.to_owned());
        } else if let Some(secs) = comment.strip_prefix("timeout:") {
            let secs: u64 = secs.trim().parse().map_err(|_| format!("bad timeout {:?}", secs.trim()))?;
            case.timeout = Duration::from_secs(secs);
        } else if let Some(args) = comment.strip_prefix("args:") {
            case.args = split_list(args).into_iter().map(parse_value).collect::<Result<_, _>>()?;
        } else if let Some(on) = comment.strip_prefix("on:") {
            if on.trim() != "terminal" {
                return Err(format!("`-- on:` takes `terminal`, found {:?}", on.trim()));
            }
            case.on_terminal = true;
        } else if let Some(setup) = comment.strip_prefix("setup:") {
            if setup.trim() != "rust" {
                return Err(format!("`-- setup:` takes `rust`, found {:?}", setup.trim()));
            }
            case.rust = true;
        }
    }
    Ok(())
}

fn fragment_of(text: &str) -> Result<String, String> {
    let fragment = text.trim();
    if fragment.is_empty() {
        return Err("`-- expect error:` needs a fragment of the error text".into());
    }
    Ok(fragment.to_owned())
}

/// `text` split at the commas outside "strings", trimmed.
fn split_list(text: &str) -> Vec<&str> {
    let (mut items, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(text[start..].trim());
    items
}

/// A number or a "string".
fn parse_value(text: &str) -> Result<Value, String> {
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        if !inner.contains('"') {
            return Ok(Value::str(inner));
        }
    }
    text.parse::<f64>().map(Value::Number).map_err(|_| format!("{text:?} is neither a number nor a \"string\""))
}

/// The `.lua` files of `dir` (not of its subfolders; none if it does not exist), sorted by name.
fn lua_files(dir: &Path) -> LuaFiles {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: LuaFiles = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|x| x == "lua"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {name}: {e}"));
            (name, source)
        })
        .collect();
    files.sort();
    files
}

/// How many tests libtest runs at once: `--test-threads`, else `RUST_TEST_THREADS`, else the
/// available parallelism.
fn test_threads() -> usize {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().enumerate().find_map(|(i, arg)| match arg.strip_prefix("--test-threads") {
        Some("") => args.get(i + 1).cloned(),
        Some(rest) => rest.strip_prefix('=').map(str::to_owned),
        None => None,
    });
    from_args
        .or_else(|| std::env::var("RUST_TEST_THREADS").ok())
        .and_then(|n| n.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A failure on one line, shortened, for the progress lines.
pub fn gist(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

fn describe_expect(expect: &Expect) -> String {
    match expect {
        Expect::Value(v @ Value::Str(_)) => format!("the value {:?}", v.to_display_string()),
        Expect::Value(v) => format!("the value {v:?}"),
        Expect::AnyString => "a string value".into(),
        Expect::Error(fragments) => format!("an error containing {fragments:?}"),
    }
}

pub fn describe_result(result: &ExitResult) -> String {
    match result {
        ExitResult::Value(v @ Value::Str(_)) => format!("the value {:?}", v.to_display_string()),
        ExitResult::Value(v) => format!("the value {v:?}"),
        ExitResult::Error(text) => format!("the error:\n    {}", text.replace('\n', "\n    ")),
    }
}
