//! Randomized isolation test (the contract: `lua-api.md`, section "Isolation"): one process
//! applies random sequences of rawget, rawset, getmetatable, setmetatable, debug.info,
//! debug.traceback, coroutine operations, assignments and calls with odd arguments to every
//! object and table the API hands it, while victim processes on the same shard check that what
//! they see is unchanged and that they keep getting their own messages.
//!
//! # The programs (`tests/isolation_fuzz/`)
//!
//! - `main.lua` (`app:main`, on the terminal host: a VM of its own, so the referee is out of
//!   the attacker's reach) starts the victims, then attackers one after another, each with the
//!   next seed, and pings every victim every 25 ms while an attacker runs and once after it
//!   ends (with a timeout: a hung victim is a failure, not a hang), until at least
//!   [`MIN_SEQUENCES`] sequences ran in attackers that finished. It stops at the first attacker
//!   after which anything went wrong and returns `sequences=<n> breaches=<n> attackers=<n> ...`
//!   and the details, among them how long a victim's 2 ms ticker went silent at most
//!   (`max_stall_ms`: how long one step held the shard; bounded by `max_step`, 1 s here).
//! - `victim.lua` (`app:victim`; `app:victim_shared` is the same program without its lines
//!   marked `-- @own-globals`, so it reads the shared globals directly instead of having a
//!   global table of its own) answers pings after checking its identity, private state,
//!   channels, coroutines (one of them busy on a 2 ms ticker all along), context, actor, the
//!   shared tables (deep, by identity), message order and sender. Any other message is a breach:
//!   nobody but main knows its PID.
//! - `attacker.lua` (`app:attacker`) knows no other PID. It gathers every object and table the
//!   API hands it and runs `per_attacker` sequences of `ops` random operations on them, chosen
//!   by a seeded xorshift32 (so a seed names a run), each in pcall. What it finds itself (a
//!   runtime function from debug.info, a write to a shared table that succeeded, an unfrozen
//!   table inside a frozen shared one) is reported as a finding.
//!
//! The process host `app:processes` has one worker and one shard: the attacker and every victim
//! share one Luau VM. Its `max_step` is 1 s (default 5 s), to bound what a step that cannot be
//! preempted costs the run.
//!
//! # How it runs
//!
//! The test runs each base seed in a child process (this test binary again, with
//! `WISP_FUZZ_CHILD` set) under an address-space limit, so that a crash of the runtime (SIGSEGV,
//! an abort) is reported with its signal and the seed of the attacker that was running, instead
//! of taking the test harness down. After a crash, a breach, a finding or a hang, the attacker's
//! seed is replayed in another child with every operation logged before it runs (a `print`,
//! written to stderr at once), and the report shows the last ones.
//! The child waits for `app:main`'s end with a timeout (never a sleep), checks that no process
//! is left, and shuts the node down (also with a timeout).
//!
//! Fails on any breach, finding, hung attacker, crash, leftover process, a shutdown that does
//! not finish, or fewer than [`MIN_SEQUENCES`] sequences.
//!
//! # Knobs
//!
//! - `WISP_FUZZ_SEEDS=3,4,5`: the base seeds (default [`DEFAULT_SEEDS`]).
//! - `WISP_FUZZ_SEQUENCES=n`: sequences per base seed (default [`MIN_SEQUENCES`]).
//! - `WISP_FUZZ_REPLAY=<attacker seed>`: runs only that attacker, verbose, with the victims,
//!   and prints its outcome and last operations (a seed from a failure report or an `early:`
//!   line; run with `--nocapture`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use wisp_core::{ExitResult, Value};
use wisp_registry::Registry;
use wisp_runtime::{Node, TerminalIo};

mod common;
use common::child::{describe_status, output_within, tail, test_binary_child};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/isolation_fuzz");
const TEST_NAME: &str = "isolation_fuzz";
/// Set in a child: `run\t<base seed>\t<sequences>\t<outcome file>` or
/// `replay\t<attacker seed>\t<outcome file>`.
const CHILD_ENV: &str = "WISP_FUZZ_CHILD";
const SEEDS_ENV: &str = "WISP_FUZZ_SEEDS";
const SEQUENCES_ENV: &str = "WISP_FUZZ_SEQUENCES";
const REPLAY_ENV: &str = "WISP_FUZZ_REPLAY";

const DEFAULT_SEEDS: &[u64] = &[20261202, 7];
const MIN_SEQUENCES: u64 = 10_000;
/// Sequences each attacker process runs (then main pings every victim).
const PER_ATTACKER: u64 = 100;
/// Random operations per sequence.
const OPS_PER_SEQUENCE: u64 = 40;
const VICTIMS: u64 = 4;

/// How long app:main may take in a child, and how long the shutdown may take after it.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long past RUN_TIMEOUT + SHUTDOWN_TIMEOUT a child may take before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(30);
/// The address space a child may use (`ulimit -v`, KiB).
const CHILD_MEMORY_KIB: u64 = 4 << 20;

#[test]
fn isolation_fuzz() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_child(&spec);
    }
    if let Ok(seed) = std::env::var(REPLAY_ENV) {
        let seed: u64 = seed.trim().parse().expect("WISP_FUZZ_REPLAY is an attacker seed");
        let replay = replay(seed);
        eprintln!("{replay}");
        return;
    }
    let seeds: Vec<u64> = match std::env::var(SEEDS_ENV) {
        Ok(text) if !text.trim().is_empty() => {
            text.split(',').map(|s| s.trim().parse().expect("WISP_FUZZ_SEEDS: numbers separated by commas")).collect()
        }
        _ => DEFAULT_SEEDS.to_vec(),
    };
    let sequences = match std::env::var(SEQUENCES_ENV) {
        Ok(text) => text.trim().parse().expect("WISP_FUZZ_SEQUENCES is a number"),
        Err(_) => MIN_SEQUENCES,
    };
    let mut failures = Vec::new();
    for seed in seeds {
        let started = Instant::now();
        let outcome = run_in_child(&format!("run\t{seed}\t{sequences}"));
        let elapsed = started.elapsed();
        match judge(seed, sequences, outcome) {
            Ok(summary) => eprintln!("isolation_fuzz: base seed {seed}: ok in {elapsed:.1?}: {summary}"),
            Err(failure) => {
                eprintln!("isolation_fuzz: base seed {seed}: FAILED in {elapsed:.1?}");
                failures.push(format!("base seed {seed}: {failure}"));
            }
        }
    }
    assert!(failures.is_empty(), "isolation fuzz failed:\n\n{}\n", failures.join("\n\n"));
}

/// How a child ended.
struct ChildOutcome {
    /// The outcome file's text, if the child wrote one.
    report: Option<String>,
    status: String,
    crashed: bool,
    stderr: String,
}

/// The verdict on one base seed: the summary line, or why it failed.
fn judge(seed: u64, sequences: u64, outcome: Result<ChildOutcome, String>) -> Result<String, String> {
    let outcome = outcome?;
    let Some(report) = outcome.report else {
        let mut text = format!("the child ended with {} before reporting", outcome.status);
        if let Some(attacker) = last_attacker_seed(&outcome.stderr) {
            let _ = write!(text, "\nthe attacker running then had seed {attacker}; its replay:\n{}", replay(attacker));
        }
        text.push_str(&tail("stderr", &outcome.stderr, 30));
        return Err(text);
    };
    let Some(result) = report.strip_prefix("PASS\n") else {
        let mut text = report.strip_prefix("FAIL\n").unwrap_or(&report).to_owned();
        if outcome.crashed {
            let _ = write!(text, "\n(and then the child ended with {})", outcome.status);
        }
        let _ = seed;
        return Err(text);
    };
    let head = result.lines().next().unwrap_or("");
    let field = |name: &str| -> Option<u64> {
        head.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
    };
    let mut problems = Vec::new();
    match field("sequences") {
        Some(n) if n >= sequences => {}
        Some(n) => problems.push(format!("only {n} sequences ran, wanted {sequences}")),
        None => problems.push("no sequence count in the summary".into()),
    }
    for (name, what) in [("breaches", "breaches"), ("findings", "findings of the attacker"), ("hung", "hung attackers")]
    {
        match field(name) {
            Some(0) => {}
            Some(n) => problems.push(format!("{what}: {n}")),
            None => problems.push(format!("no {name} count in the summary")),
        }
    }
    if outcome.crashed {
        problems.push(format!("the child ended with {}", outcome.status));
    }
    if problems.is_empty() {
        let details: Vec<&str> = result.lines().skip(1).filter(|l| !l.trim().is_empty()).collect();
        if details.is_empty() {
            Ok(head.to_owned())
        } else {
            Ok(format!("{head}\n    {}", details.join("\n    ")))
        }
    } else {
        let mut text = format!("{}\n{result}", problems.join("; "));
        if let Some(attacker) = first_failing_seed(result) {
            let _ = write!(text, "\nthe replay of attacker seed={attacker}:\n{}", replay(attacker));
        }
        Err(text)
    }
}

/// The seed of the attacker named by the first breach, finding or hang of a summary.
fn first_failing_seed(summary: &str) -> Option<u64> {
    summary
        .lines()
        .filter(|l| l.starts_with("BREACH") || l.starts_with("FINDING") || l.starts_with("hung"))
        .find_map(|l| l.split("seed=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
}

/// Runs an attacker seed again, verbose, in a child; returns its last operations and outcome.
fn replay(attacker: u64) -> String {
    match run_in_child(&format!("replay\t{attacker}")) {
        Err(e) => format!("    (the replay could not run: {e})"),
        Ok(outcome) => {
            let ops: Vec<&str> = outcome
                .stderr
                .lines()
                .filter_map(|l| l.find("op ").map(|i| &l[i..]))
                .filter(|l| l.starts_with("op ") && l[3..].starts_with(|c: char| c.is_ascii_digit()))
                .map(|l| l.rsplit_once(" pid=").map_or(l, |(op, _)| op))
                .collect();
            let start = ops.len().saturating_sub(40);
            let how = match (&outcome.report, outcome.crashed) {
                (_, true) => format!("the replay crashed too ({})", outcome.status),
                (Some(r), false) => {
                    format!("the replay ended: {}", r.lines().take(8).collect::<Vec<_>>().join("\n    "))
                }
                (None, false) => format!("the replay ended with {} before reporting", outcome.status),
            };
            format!(
                "    {how}; its last {} of {} operations:\n      {}",
                ops.len() - start,
                ops.len(),
                ops[start..].join("\n      ")
            )
        }
    }
}

/// The seed of the last attacker main announced in a child's output.
fn last_attacker_seed(stderr: &str) -> Option<u64> {
    stderr.lines().rev().find_map(|l| l.split("seed=").nth(1)?.split_whitespace().next()?.parse().ok())
}

/// Runs this test binary as a child with `spec` (see [`CHILD_ENV`]).
fn run_in_child(spec: &str) -> Result<ChildOutcome, String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch folder: {e}"))?;
    let outcome_path = scratch.path().join("outcome");
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut command = test_binary_child(&exe, TEST_NAME, CHILD_MEMORY_KIB);
    command.env(CHILD_ENV, format!("{spec}\t{}", outcome_path.display())).env_remove(REPLAY_ENV);
    let output = output_within(command, RUN_TIMEOUT + SHUTDOWN_TIMEOUT + CHILD_GRACE)?;
    let (status, crashed) = describe_status(&output.status);
    Ok(ChildOutcome {
        report: std::fs::read_to_string(&outcome_path).ok(),
        status,
        crashed,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

// ---------------------------------------------------------------------------------------------
// The child
// ---------------------------------------------------------------------------------------------

/// Terminal output (main's prints): written to stderr at once, so that it survives a crash.
#[derive(Default)]
struct Terminal {
    out: Mutex<Vec<u8>>,
}

impl TerminalIo for Terminal {
    fn write(&self, bytes: &[u8]) {
        use std::io::Write;
        let _ = std::io::stderr().write_all(bytes);
        self.out.lock().unwrap().extend_from_slice(bytes);
    }
    fn flush(&self) {}
    fn read_line(&self) -> Option<String> {
        None
    }
}

/// Writes each log event (a `print` of a process of the process host is one) to stderr at
/// once: the replay's operations must survive a crash.
struct StderrLog;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?} ");
        } else {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value} ");
        } else {
            let _ = write!(self.0, "{}={value} ", field.name());
        }
    }
}

impl tracing::Subscriber for StderrLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        eprintln!("[{}] {}", event.metadata().level(), fields.0.trim_end());
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

const YAML: &str = r#"version: "1.0"
namespace: app

entries:
  - name: processes
    kind: process.host
    host:
      workers: 1
      limits: { max_step: 1s }

  - name: terminal
    kind: terminal.host
"#;

/// Writes the app folder: the registry and the programs. `app:victim_shared` is `victim.lua`
/// without its lines ending in `-- @own-globals`: it assigns no global, so it reads the shared
/// globals directly where `app:victim` has a global table of its own.
fn write_app(dir: &Path) {
    let read = |file: &str| {
        std::fs::read_to_string(Path::new(DIR).join(file)).unwrap_or_else(|e| panic!("cannot read {DIR}/{file}: {e}"))
    };
    let victim = read("victim.lua");
    let shared: String =
        victim.lines().filter(|l| !l.trim_end().ends_with("-- @own-globals")).map(|l| format!("{l}\n")).collect();
    assert!(shared.len() < victim.len(), "victim.lua has no line marked `-- @own-globals`");
    let programs =
        [("main", read("main.lua")), ("victim", victim), ("victim_shared", shared), ("attacker", read("attacker.lua"))];
    let mut yaml = String::from(YAML);
    for (name, source) in programs {
        let file = format!("{name}.lua");
        std::fs::write(dir.join(&file), source).unwrap();
        let _ = write!(
            yaml,
            "\n  - name: {name}\n    kind: process.lua\n    source: file://{file}\n    modules: [time, ctx, uuid, security]\n"
        );
    }
    std::fs::write(dir.join("app.yaml"), yaml).unwrap();
}

/// In a child: runs what `spec` says, writes the outcome file and exits.
fn run_child(spec: &str) -> ! {
    let parts: Vec<&str> = spec.split('\t').collect();
    let (args, outcome_path) = match parts.as_slice() {
        ["run", seed, sequences, path] => {
            let seed: f64 = seed.parse().expect("a base seed");
            let sequences: f64 = sequences.parse().expect("a sequence count");
            (vec![seed, sequences, PER_ATTACKER as f64, OPS_PER_SEQUENCE as f64, VICTIMS as f64, f64::NAN], *path)
        }
        ["replay", attacker, path] => {
            let _ = tracing::subscriber::set_global_default(StderrLog);
            let attacker: f64 = attacker.parse().expect("an attacker seed");
            (vec![0.0, 0.0, PER_ATTACKER as f64, OPS_PER_SEQUENCE as f64, VICTIMS as f64, attacker], *path)
        }
        _ => panic!("bad {CHILD_ENV}: {spec:?}"),
    };
    let args: Vec<Value> = args.into_iter().map(|n| if n.is_nan() { Value::Nil } else { Value::Number(n) }).collect();
    let text = match run_app(args) {
        Ok(summary) => format!("PASS\n{summary}"),
        Err(e) => format!("FAIL\n{e}"),
    };
    std::fs::write(PathBuf::from(outcome_path), text).expect("the outcome file is writable");
    std::process::exit(0);
}

fn run_app(args: Vec<Value>) -> Result<String, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no app folder: {e}"))?;
    write_app(dir.path());
    let registry = Registry::load_dir(dir.path()).map_err(|e| format!("the registry does not load:\n{e}"))?;
    let io = Arc::new(Terminal::default());
    let node = Node::builder()
        .registry(registry)
        .terminal(io.clone())
        .default_workers(1)
        .shards_per_worker(1)
        .build()
        .map_err(|e| format!("the node does not build: {e}"))?;
    let (_, done) = node.spawn_watched("app:main", "app:terminal", args).map_err(|e| format!("app:main: {e:?}"))?;
    let result = done.recv_timeout(RUN_TIMEOUT);
    let summary = match result {
        Err(_) => {
            // Left running: a shutdown would join workers a stuck VM may hold forever.
            std::mem::forget(node);
            return Err(format!("app:main did not end within {RUN_TIMEOUT:?} (a hang)"));
        }
        Ok(ExitResult::Error(e)) => {
            std::mem::forget(node);
            return Err(format!("app:main failed: {e}"));
        }
        Ok(ExitResult::Value(v)) => v.as_str().map(str::to_owned).ok_or_else(|| format!("app:main returned {v:?}"))?,
    };
    let left = node.process_count();
    // The shutdown, with a timeout of its own.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        node.shutdown();
        let _ = tx.send(());
    });
    if rx.recv_timeout(SHUTDOWN_TIMEOUT).is_err() {
        return Err(format!("the node did not shut down within {SHUTDOWN_TIMEOUT:?}\n{summary}"));
    }
    if left != 0 {
        return Err(format!("{left} processes were left after app:main ended\n{summary}"));
    }
    Ok(summary)
}
