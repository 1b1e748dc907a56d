//! Isolation between processes that share a Luau VM, proved by attack programs (the contract:
//! `lua-api.md`, sections "Isolation", "Messages" and "Hosts").
//!
//! # Cases
//!
//! Every `tests/isolation/*.lua` file is a case, read at run time: adding a file adds a case.
//! A case is an ordinary process entry (`return { main = main }`) run on the process host
//! `app:processes` by `process.exec` from `app:main` on the terminal host, with no arguments;
//! the case usually spawns its attackers, victims and neighbours itself, often as other roles of
//! its own file (`process.spawn(process.id(), "app:processes", "<role>", ...)`: its `main`
//! gets the role as its first argument). Programs several cases share (a victim, a spy) live in
//! `tests/isolation/common/`. Each Lua file `x.lua` of either folder is the entry `app:x`,
//! with `modules: [time, ctx, uuid, security]`.
//!
//! Each Lua file `x.lua` of `tests/isolation/common/lib/` is the `library.lua` entry `app:x`,
//! which every entry imports as `x`: `common/lib/harness.lua` holds the helpers most cases use
//! (`local h = require("harness")`: waiting on a channel with a timeout, EXIT events, the common
//! echo process, collecting problems into a verdict). A library is loaded once per process, so
//! its state (the EXIT events seen, the problems found) is each process's own.
//!
//! The case's first line says how it must end:
//!
//! ```text
//! -- expect: ok                     the case returns the string "ok"
//! -- expect error: <fragment>       the case ends with an error whose text contains <fragment>
//! ```
//!
//! The comment lines right after it may add, in any order:
//!
//! ```text
//! -- host: <YAML>        a line of the `host:` map of app:processes, e.g.
//!                        `-- host: limits: { max_step: 200ms }` (repeatable; not `workers`,
//!                        which the layout sets)
//! -- timeout: <seconds>  how long the case may run (default 30)
//! ```
//!
//! A case checks its own expectations and ends with an error that says what went wrong
//! (attack programs collect every problem they find and report them together).
//!
//! # Layouts
//!
//! Every case runs twice: on a process host of one worker with one shard (every process of the
//! case in one VM), and on a host of two workers with the default four shards per worker, where
//! `place` puts children next to their parent (cases let each child settle before spawning the
//! next, so that the parent's shard has nothing waiting and the child stays with it).
//!
//! # How a case runs
//!
//! The one `#[test]` runs each (case, layout) in a child process: this same test binary, started
//! with `WISP_ISOLATION_CHILD` set, runs that case alone and writes its outcome to a file. A
//! crash of the runtime (SIGSEGV, an abort) thus fails that case only, and is reported with the
//! signal. The child waits for `app:main`'s end with `recv_timeout` (the case's timeout; never a
//! sleep) and exits at once, without shutting the node down (a hung VM could hold its worker
//! forever); the parent kills a child that outlives its timeout by a grace period. A child runs
//! under an address-space limit (`ulimit -v`, 4 GiB), so a runaway copy ends that case with an
//! abort instead of exhausting the machine.
//!
//! Every failure of every case is collected and reported together, with the file names.
//! `WISP_ISOLATION_FILTER=<text>` runs only the cases whose file name contains `<text>` (several
//! texts separated by commas).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{App, Started};
use wisp_core::{ExitResult, Value};

const CASE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/isolation");
/// Set in a child: `<layout index>\t<case file name>\t<outcome file>`.
const CHILD_ENV: &str = "WISP_ISOLATION_CHILD";
const FILTER_ENV: &str = "WISP_ISOLATION_FILTER";
/// This test's name, which a child is started with.
const TEST_NAME: &str = "isolation_cases";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past its case's timeout a child may take to report before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(30);
/// The address space a child may use (`ulimit -v`, KiB).
const CHILD_MEMORY_KIB: u64 = 4 << 20;

/// `app:main`: runs the case entry it is given on the process host and ends as the case ended.
const MAIN: &str = r#"
local function main(entry: string)
	return process.exec(entry, "app:processes")
end
return { main = main }
"#;

/// A host shape every case runs on.
struct Layout {
    name: &'static str,
    workers: usize,
    /// `None`: the runtime's default.
    shards_per_worker: Option<usize>,
}

const LAYOUTS: &[Layout] = &[
    Layout { name: "1 worker, 1 shard", workers: 1, shards_per_worker: Some(1) },
    Layout { name: "2 workers, default shards", workers: 2, shards_per_worker: None },
];

/// How a case must end.
#[derive(Debug)]
enum Expect {
    Ok,
    Error(String),
}

/// A case file, parsed.
struct Case {
    file: String,
    stem: String,
    source: String,
    expect: Expect,
    /// Lines of the process host's `host:` map besides `workers`.
    host: Vec<String>,
    timeout: Duration,
}

fn parse_case(file: &str, source: &str) -> Result<Case, String> {
    let stem = file.strip_suffix(".lua").ok_or("not a .lua file")?.to_owned();
    let mut lines = source.lines();
    let first = lines.next().unwrap_or("").trim();
    let expect = if first == "-- expect: ok" {
        Expect::Ok
    } else if let Some(fragment) = first.strip_prefix("-- expect error:") {
        let fragment = fragment.trim();
        if fragment.is_empty() {
            return Err("`-- expect error:` needs a fragment of the error text".into());
        }
        Expect::Error(fragment.to_owned())
    } else {
        return Err(format!(
            "the first line must be `-- expect: ok` or `-- expect error: <fragment>`, found {first:?}"
        ));
    };
    let mut host = Vec::new();
    let mut timeout = DEFAULT_TIMEOUT;
    for line in lines {
        let Some(comment) = line.trim().strip_prefix("--") else {
            break;
        };
        let comment = comment.trim();
        if let Some(yaml) = comment.strip_prefix("host:") {
            let yaml = yaml.trim();
            if yaml.starts_with("workers") {
                return Err("`workers` is the layout's: a case cannot set it".into());
            }
            host.push(yaml.to_owned());
        } else if let Some(secs) = comment.strip_prefix("timeout:") {
            let secs: u64 = secs.trim().parse().map_err(|_| format!("bad timeout {:?}", secs.trim()))?;
            timeout = Duration::from_secs(secs);
        }
    }
    Ok(Case { file: file.to_owned(), stem, source: source.to_owned(), expect, host, timeout })
}

/// Lua files as (file name, source).
type LuaFiles = Vec<(String, String)>;

/// The `.lua` files of `dir` (not of its subfolders), sorted by name.
fn lua_files(dir: &Path) -> LuaFiles {
    let mut files: LuaFiles = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
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

/// The shared helper programs and libraries, checked not to collide with a case, each other or
/// `main`.
fn common_files(cases: &[(String, String)]) -> (LuaFiles, LuaFiles) {
    let common = lua_files(&Path::new(CASE_DIR).join("common"));
    let libraries = lua_files(&Path::new(CASE_DIR).join("common/lib"));
    for (name, _) in &common {
        assert!(name != "main.lua", "common/main.lua would replace the harness's app:main");
        assert!(!cases.iter().any(|(c, _)| c == name), "{name} is both a case and a common program");
    }
    for (name, _) in &libraries {
        assert!(name != "main.lua", "common/lib/main.lua would replace the harness's app:main");
        assert!(!cases.iter().any(|(c, _)| c == name), "{name} is both a case and a library");
        assert!(!common.iter().any(|(c, _)| c == name), "{name} is both a common program and a library");
    }
    (common, libraries)
}

fn selected(file: &str) -> bool {
    match std::env::var(FILTER_ENV) {
        Ok(filter) if !filter.trim().is_empty() => {
            filter.split(',').map(str::trim).filter(|f| !f.is_empty()).any(|f| file.contains(f))
        }
        _ => true,
    }
}

#[test]
fn isolation_cases() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_child(&spec);
    }
    let files = lua_files(Path::new(CASE_DIR));
    common_files(&files);
    let mut failures = Vec::new();
    let mut cases = Vec::new();
    for (file, source) in &files {
        if !selected(file) {
            continue;
        }
        match parse_case(file, source) {
            Ok(case) => cases.push(case),
            Err(e) => failures.push(format!("{file}: bad case header: {e}")),
        }
    }
    assert!(!cases.is_empty() || !failures.is_empty(), "no isolation case selected in {CASE_DIR}");
    let runs = cases.len() * LAYOUTS.len();
    for (index, layout) in LAYOUTS.iter().enumerate() {
        for case in &cases {
            let outcome = run_in_child(index, case);
            let verdict = match &outcome {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("FAILED: {}", gist(e)),
            };
            eprintln!("isolation: {} [{}]: {verdict}", case.file, layout.name);
            if let Err(e) = outcome {
                failures.push(format!("{} [{}]: {e}", case.file, layout.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} isolation runs failed ({} cases x {} layouts):\n\n{}\n",
        failures.len(),
        cases.len(),
        LAYOUTS.len(),
        failures.join("\n\n")
    );
}

/// A failure on one line, shortened, for the progress lines.
fn gist(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

/// Runs one case in a child process (see the module's docs); `Err` says why it failed.
fn run_in_child(layout: usize, case: &Case) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch folder: {e}"))?;
    let outcome_path = scratch.path().join("outcome");
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut command = child_command(&exe);
    command
        .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{layout}\t{}\t{}", case.file, outcome_path.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().map_err(|e| format!("cannot start the child: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let limit = case.timeout + CHILD_GRACE;
    let output = match rx.recv_timeout(limit) {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("waiting for the child failed: {e}")),
        Err(_) => {
            // Our own child, by its id.
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let _ = rx.recv();
            return Err(format!("the child running the case did not end within {limit:?}; killed"));
        }
    };
    match std::fs::read_to_string(&outcome_path) {
        Ok(text) if text == "PASS" => Ok(()),
        Ok(text) => Err(text.strip_prefix("FAIL\n").unwrap_or(&text).to_owned()),
        Err(_) => Err(format!(
            "the child ended with {} before reporting{}",
            describe_status(&output.status),
            tail("stderr", &output.stderr)
        )),
    }
}

/// The command that starts the test binary as a child, under the address-space limit.
#[cfg(unix)]
fn child_command(exe: &Path) -> Command {
    let mut command = Command::new("/bin/sh");
    command.arg("-c").arg(format!("ulimit -v {CHILD_MEMORY_KIB} && exec \"$0\" \"$@\"")).arg(exe);
    command
}

#[cfg(not(unix))]
fn child_command(exe: &Path) -> Command {
    Command::new(exe)
}

/// How a child ended: a signal (a crash of the runtime) or its exit status.
fn describe_status(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                4 => "SIGILL",
                6 => "SIGABRT",
                7 => "SIGBUS",
                9 => "SIGKILL",
                11 => "SIGSEGV",
                _ => "a signal",
            };
            return format!("signal {signal} ({name}): the runtime crashed");
        }
    }
    status.to_string()
}

/// The last lines of a child's output, for a report.
fn tail(what: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = lines.len().saturating_sub(12);
    format!("; last lines of its {what}:\n    {}", lines[start..].join("\n    "))
}

/// In a child: runs the case `spec` names, writes its outcome and exits.
fn run_child(spec: &str) -> ! {
    let mut parts = spec.split('\t');
    let (Some(layout), Some(file), Some(outcome_path)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {CHILD_ENV}: {spec:?}");
    };
    let layout = &LAYOUTS[layout.parse::<usize>().expect("a layout index")];
    let outcome = run_case(layout, file);
    let text = match outcome {
        Ok(()) => "PASS".to_owned(),
        Err(e) => format!("FAIL\n{e}"),
    };
    std::fs::write(PathBuf::from(outcome_path), text).expect("the outcome file is writable");
    // No shutdown: a VM stuck in a loop would hold its worker, and joining it would hang.
    std::process::exit(0);
}

fn run_case(layout: &Layout, file: &str) -> Result<(), String> {
    let files = lua_files(Path::new(CASE_DIR));
    let (common, libraries) = common_files(&files);
    let (_, source) = files.iter().find(|(name, _)| name == file).ok_or_else(|| format!("no case {file}"))?;
    let case = parse_case(file, source)?;
    let mut programs: Vec<(&str, &str)> = vec![("main.lua", MAIN), (case.file.as_str(), case.source.as_str())];
    programs.extend(common.iter().map(|(name, source)| (name.as_str(), source.as_str())));
    let mut host = format!("workers: {}", layout.workers);
    for line in &case.host {
        host.push('\n');
        host.push_str(line);
    }
    let libraries: Vec<(&str, &str)> =
        libraries.iter().map(|(name, source)| (name.as_str(), source.as_str())).collect();
    let app = App { common: &[], files: &programs, libraries: &libraries };
    let entry = format!("app:{}", case.stem);
    let shards = layout.shards_per_worker;
    let Started { node, done, io, dir, .. } = app.start(&host, vec![Value::str(&entry)], |builder| match shards {
        Some(n) => builder.shards_per_worker(n),
        None => builder,
    });
    let result = done.recv_timeout(case.timeout);
    // The node is left running (the process exits next): dropping it would shut it down, which
    // joins workers a stuck VM may hold forever.
    std::mem::forget(node);
    drop(dir);
    let output = io.text();
    let printed = if output.trim().is_empty() { String::new() } else { format!("\nterminal output:\n{output}") };
    let Ok(result) = result else {
        return Err(format!(
            "did not end within {:?} (a hang: some process or VM never yielded){printed}",
            case.timeout
        ));
    };
    match (&case.expect, &result) {
        (Expect::Ok, ExitResult::Value(v)) if v.as_str() == Some("ok") => Ok(()),
        (Expect::Error(fragment), ExitResult::Error(text)) if text.contains(fragment.as_str()) => Ok(()),
        (expect, _) => Err(format!("expected {}, got {}{printed}", describe_expect(expect), describe_result(&result))),
    }
}

fn describe_expect(expect: &Expect) -> String {
    match expect {
        Expect::Ok => "the value \"ok\"".into(),
        Expect::Error(fragment) => format!("an error containing {fragment:?}"),
    }
}

fn describe_result(result: &ExitResult) -> String {
    match result {
        ExitResult::Value(v @ Value::Str(_)) => format!("the value {:?}", v.to_display_string()),
        ExitResult::Value(v) => format!("the value {v:?}"),
        ExitResult::Error(text) => format!("the error:\n    {}", text.replace('\n', "\n    ")),
    }
}
