//! `cargo xtask memcheck`: the Lua test suite under valgrind's memcheck. The suite is the tests
//! of wisp-runtime (the Lua programs run on the runtime; its unit tests come along, being few
//! and quick) and of wisp-lua (the shards and the prelude). A test binary fails the run when
//! valgrind reports an error (an invalid read or write, a use of an uninitialised value, a bad
//! free: anything counted for `--error-exitcode`) or when one of its tests fails.
//!
//! The binaries are built with `--release` (optimised, with the line tables of the release
//! profile, so that backtraces name files and lines): under memcheck code runs 30-50 times
//! slower, and a debug build would be slower still. They are built in a target directory of
//! their own, target/memcheck, since the vendored Luau is compiled differently there: Luau hands
//! out objects up to 1 KiB from pages of its own, which memcheck sees as one malloc'd block each,
//! so it could not tell a freed Lua object from a live one. Built with `-DLUAU_ENABLE_ASAN` and
//! the header in xtask/memcheck/include, Luau's allocator marks its free blocks for memcheck (see
//! that header), and an access to a freed Lua object becomes an invalid read or write.
//!
//! On the 2-core development machine the suite of commit c137ca6 took about 90 s under valgrind
//! one binary at a time (lua_apps and ordering some 35 s each, the rest a few seconds), 80 s
//! with `--jobs 2` while others were building; the first build of target/memcheck about 4 min.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::proc::{command_output, run as run_child, Run};
use crate::workspace_root;

/// The packages whose tests make the suite, and which of their test targets cargo is to build:
/// `--lib` is the crates' unit tests, `--test *` every file in their tests/ (a new file there is
/// picked up without a change here).
const PACKAGES: &[&str] = &["wisp-runtime", "wisp-lua"];
const TARGETS: &[&str] = &["--lib", "--test", "*"];

/// The exit status valgrind gives a run in which it reported errors; the test harness uses 101
/// for failed tests.
const ERROR_EXIT: i32 = 99;

/// Options for every run. `--fair-sched=yes` hands the one core valgrind runs all threads on to
/// them in turn: with the default lock, a thread spinning on a lock-free handshake keeps the
/// core while the thread it waits for starves (lua_apps took 117 s instead of 24 s, and one test
/// ran past its timeout). Leaks are not looked for: the tests end with threads still running and
/// statics never freed, and a leak is not an invalid access (`-- --leak-check=full` asks anyway).
const VALGRIND_OPTIONS: &[&str] = &["--tool=memcheck", "--fair-sched=yes", "--leak-check=no", "--num-callers=40"];

/// Known false positives, with why each is one.
const SUPPRESSIONS: &str = "xtask/memcheck/valgrind.supp";
/// The stand-in for <sanitizer/asan_interface.h> that Luau is compiled against.
const LUAU_INCLUDE: &str = "xtask/memcheck/include";

/// Lines of a valgrind log printed for a failed binary; the rest is in the log file.
const LOG_LINES: usize = 400;

#[derive(Args)]
pub struct MemcheckArgs {
    /// Test targets to run (default: all), repeatable: a target's name (lua_apps, ordering, shard,
    /// wisp_lua for wisp-lua's unit tests, ...), PACKAGE/NAME, or a package for all of its targets.
    #[arg(long = "test", value_name = "NAME")]
    tests: Vec<String>,
    /// Run only the tests whose name contains SUBSTRING (passed to every test binary).
    #[arg(long, value_name = "SUBSTRING")]
    filter: Option<String>,
    /// Leave out the tests whose name contains SUBSTRING (libtest's `--skip`), repeatable: e.g. a
    /// test whose timing assumptions valgrind's slowness and thread switching break.
    #[arg(long, value_name = "SUBSTRING")]
    skip: Vec<String>,
    /// Test threads in each binary. Valgrind runs one thread at a time, so more threads only
    /// overlap waiting (2 measured no faster than 1).
    #[arg(long, value_name = "N", default_value_t = 1)]
    test_threads: usize,
    /// Test binaries run at once, each under a valgrind of its own (one core each).
    #[arg(long, short, value_name = "N", default_value_t = 1)]
    jobs: usize,
    /// Timeout per test binary, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    timeout: u64,
    /// List the test targets (after building them) and exit.
    #[arg(long)]
    list: bool,
    /// Echo the test binaries' output as it comes.
    #[arg(long, short)]
    verbose: bool,
    /// More valgrind options, after `--`: e.g. `-- --track-origins=yes` (where an uninitialised
    /// value came from) or `-- --gen-suppressions=all` (to write a suppression).
    #[arg(last = true, value_name = "VALGRIND OPTION")]
    valgrind_args: Vec<String>,
}

/// One test binary cargo built.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    package: String,
    name: String,
    executable: PathBuf,
    /// The package's directory, which cargo runs its tests in.
    dir: PathBuf,
}

impl Target {
    fn label(&self) -> String {
        format!("{}/{}", self.package, self.name)
    }

    /// Whether `wanted` (as given to `--test`) names this target.
    fn is(&self, wanted: &str) -> bool {
        wanted == self.name || wanted == self.package || wanted == self.label()
    }
}

/// How one binary's run under valgrind went.
struct Outcome {
    target: Target,
    run: Run,
    log: PathBuf,
    /// The count of valgrind's `ERROR SUMMARY` line; `None` when the log has none (valgrind
    /// did not get to the end).
    errors: Option<u64>,
}

impl Outcome {
    fn valgrind_failed(&self) -> bool {
        self.errors.is_some_and(|n| n > 0) || self.run.status.and_then(|s| s.code()) == Some(ERROR_EXIT)
    }

    fn tests_failed(&self) -> bool {
        let harness_failed = self.run.stdout.iter().any(|l| l.starts_with("test result: FAILED"));
        harness_failed || (!self.run.ok() && !self.valgrind_failed())
    }

    /// The `test result:` line of the harness, or why there is none.
    fn summary(&self) -> String {
        match self.run.line("test result: ") {
            Some(line) => line.trim_start_matches("test result: ").to_string(),
            None => self.run.failure(),
        }
    }
}

pub fn run(args: MemcheckArgs) -> Result<()> {
    if args.jobs == 0 || args.test_threads == 0 {
        bail!("--jobs and --test-threads must be at least 1");
    }
    let version = command_output("valgrind", &["--version"]);
    if version.is_empty() {
        bail!("valgrind not found (Debian: apt-get install valgrind)");
    }
    let started = Instant::now();
    let built = build_tests()?;
    let build_time = started.elapsed();
    let targets = select(built, &args.tests)?;
    if args.list {
        for target in &targets {
            println!("{:<28} {}", target.label(), target.executable.display());
        }
        return Ok(());
    }
    let logs = workspace_root().join("target/memcheck/logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    eprintln!("xtask: {version} on {} test binaries, {} at a time", targets.len(), args.jobs);
    let run_started = Instant::now();
    let outcomes = run_all(&targets, &args, &logs)?;
    let run_time = run_started.elapsed();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.valgrind_failed() || o.tests_failed()).collect();
    for outcome in &failed {
        report_failure(outcome);
    }
    println!(
        "memcheck: {} of {} test binaries clean in {:.0} s under valgrind (build {:.0} s)",
        outcomes.len() - failed.len(),
        outcomes.len(),
        run_time.as_secs_f64(),
        build_time.as_secs_f64()
    );
    if !failed.is_empty() {
        let labels: Vec<String> = failed.iter().map(|o| o.target.label()).collect();
        bail!("memcheck failures: {}", labels.join(", "));
    }
    Ok(())
}

/// Builds the suite's test binaries (release, Luau's pages marked for memcheck, in
/// target/memcheck) and returns them as cargo reports them.
fn build_tests() -> Result<Vec<Target>> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["test", "--release", "--no-run", "--message-format=json-render-diagnostics"]);
    for package in PACKAGES {
        command.args(["-p", package]);
    }
    command.args(TARGETS);
    let (cxxflags, include_dirs) = luau_build_env(&root)?;
    command
        .env("LUAU_CXXFLAGS", &cxxflags)
        .env("LUAU_INCLUDE_DIRS", include_dirs)
        .env("CARGO_TARGET_DIR", root.join("target/memcheck"))
        .current_dir(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    eprintln!(
        "xtask: LUAU_CXXFLAGS=\"{cxxflags}\" cargo test --release --no-run -p {} {}",
        PACKAGES.join(" -p "),
        TARGETS.iter().map(|t| if *t == "*" { "'*'" } else { t }).collect::<Vec<_>>().join(" ")
    );
    let output = command.output().context("running cargo test --no-run")?;
    if !output.status.success() {
        bail!("building the tests failed ({})", output.status);
    }
    let mut targets: Vec<Target> = String::from_utf8_lossy(&output.stdout).lines().filter_map(test_artifact).collect();
    // Cargo reports them as they finish; a fixed order makes runs comparable.
    targets.sort_by_key(Target::label);
    if targets.is_empty() {
        bail!("cargo built no test binaries");
    }
    Ok(targets)
}

/// `LUAU_CXXFLAGS` and `LUAU_INCLUDE_DIRS` for the Luau of the memcheck build: the flags this
/// process was given (`cargo xtask` passes on those of .cargo/config.toml's `[env]`) plus
/// `-DLUAU_ENABLE_ASAN`, and the stand-in asan header's directory first.
fn luau_build_env(root: &Path) -> Result<(String, std::ffi::OsString)> {
    let inherited = std::env::var("LUAU_CXXFLAGS").unwrap_or_default();
    let cxxflags = format!("{inherited} -DLUAU_ENABLE_ASAN").trim().to_string();
    let mut dirs = vec![root.join(LUAU_INCLUDE)];
    if let Some(more) = std::env::var_os("LUAU_INCLUDE_DIRS") {
        dirs.extend(std::env::split_paths(&more));
    }
    let include_dirs = std::env::join_paths(dirs).context("joining LUAU_INCLUDE_DIRS")?;
    Ok((cxxflags, include_dirs))
}

/// The test binary of one line of cargo's JSON output, if the line reports one.
fn test_artifact(line: &str) -> Option<Target> {
    if !line.starts_with(r#"{"reason":"compiler-artifact""#) {
        return None;
    }
    let executable = json_string(line, "executable")?;
    let package = package_name(&json_string(line, "package_id")?)?;
    let manifest = PathBuf::from(json_string(line, "manifest_path")?);
    let target = &line[line.find(r#""target":{"#)?..];
    let name = json_string(target, "name")?;
    let dir = manifest.parent()?.to_path_buf();
    Some(Target { package, name, executable: PathBuf::from(executable), dir })
}

/// The string value of the first `"key":"..."` in `json` (enough JSON for cargo's messages,
/// which keeps this crate free of a JSON dependency).
fn json_string(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let mut value = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
}

/// The package's name in a package id: `path+file:///…/wisp-lua#0.1.0` (the directory's name)
/// or `path+file:///…/dir#wisp-lua@0.1.0`.
fn package_name(id: &str) -> Option<String> {
    let (url, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _version)) => Some(name.to_string()),
        None => url.rsplit('/').next().map(str::to_string),
    }
}

/// The targets `wanted` names (all when it is empty); an error for a name that matches none.
fn select(built: Vec<Target>, wanted: &[String]) -> Result<Vec<Target>> {
    for name in wanted {
        if !built.iter().any(|t| t.is(name)) {
            let known: Vec<String> = built.iter().map(Target::label).collect();
            bail!("no test target `{name}` (built: {})", known.join(" "));
        }
    }
    Ok(built.into_iter().filter(|t| wanted.is_empty() || wanted.iter().any(|w| t.is(w))).collect())
}

/// Runs every target under valgrind, `args.jobs` at a time, printing a line as each ends.
fn run_all(targets: &[Target], args: &MemcheckArgs, logs: &Path) -> Result<Vec<Outcome>> {
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.min(targets.len()) {
            scope.spawn(|| {
                while let Some(target) = targets.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match run_one(target, args, logs) {
                        Ok(outcome) => {
                            print_line(&outcome);
                            outcomes.lock().unwrap().push(outcome);
                        }
                        Err(err) => {
                            first_error.lock().unwrap().get_or_insert(err);
                        }
                    }
                }
            });
        }
    });
    if let Some(err) = first_error.into_inner().unwrap() {
        return Err(err);
    }
    let mut outcomes = outcomes.into_inner().unwrap();
    // In the order of `targets`, whichever ended first.
    outcomes.sort_by_key(|o| targets.iter().position(|t| *t == o.target));
    Ok(outcomes)
}

/// Tests left out under valgrind whatever the command line says: they bound waits by the clock
/// (a sleep's lateness, a loop's pace), which valgrind's 30-50x slowdown breaks; the Lua they
/// run is the same API the other cases run.
const CLOCK_BOUND_TESTS: &[&str] = &["timer_pace_with_many_timers_pending"];

/// Environment of the test binaries: the model test's sequence count cut to what valgrind runs
/// in a few minutes (the checks are per operation; the full count runs in `cargo test`).
const TEST_ENV: &[(&str, &str)] = &[("WISP_MODEL_CASES", "300")];

/// Runs one test binary under valgrind, its log in `logs`.
fn run_one(target: &Target, args: &MemcheckArgs, logs: &Path) -> Result<Outcome> {
    let log = logs.join(format!("{}-{}.log", target.package, target.name));
    let mut argv: Vec<String> = VALGRIND_OPTIONS.iter().map(|s| s.to_string()).collect();
    argv.push(format!("--error-exitcode={ERROR_EXIT}"));
    argv.push(format!("--suppressions={}", workspace_root().join(SUPPRESSIONS).display()));
    argv.push(format!("--log-file={}", log.display()));
    argv.extend(args.valgrind_args.iter().cloned());
    argv.push(target.executable.display().to_string());
    argv.push(format!("--test-threads={}", args.test_threads));
    argv.extend(args.filter.iter().cloned());
    for skip in args.skip.iter().map(String::as_str).chain(CLOCK_BOUND_TESTS.iter().copied()) {
        argv.extend(["--skip".to_string(), skip.to_string()]);
    }
    eprintln!("xtask: valgrind {} (log: {})", target.label(), log.display());
    let timeout = Duration::from_secs(args.timeout);
    // Through `env`, which sets the variables and runs valgrind (the runner takes no environment).
    let mut env_argv: Vec<String> = TEST_ENV.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env_argv.push("valgrind".into());
    env_argv.extend(argv);
    let run = run_child(Path::new("env"), &env_argv, &target.dir, timeout, &[], args.verbose)?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    Ok(Outcome { target: target.clone(), run, log, errors: error_count(&text) })
}

/// The error count of valgrind's `ERROR SUMMARY: N errors from M contexts` line.
fn error_count(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains("ERROR SUMMARY: "))?;
    line.split("ERROR SUMMARY: ").nth(1)?.split_whitespace().next()?.parse().ok()
}

fn print_line(outcome: &Outcome) {
    let verdict = if outcome.valgrind_failed() || outcome.tests_failed() { "FAIL" } else { "ok" };
    let errors = outcome.errors.map_or("?".to_string(), |n| n.to_string());
    println!(
        "{verdict:<5} {:<28} {:>7.1} s  valgrind errors: {errors:<3} tests: {}",
        outcome.target.label(),
        outcome.run.wall.as_secs_f64(),
        outcome.summary()
    );
}

/// Prints what a failed binary's valgrind log and test output say.
fn report_failure(outcome: &Outcome) {
    let label = outcome.target.label();
    // Without a summary valgrind was cut short (a timeout, a crash): what it found so far may be why.
    if outcome.valgrind_failed() || outcome.errors.is_none() {
        let text = std::fs::read_to_string(&outcome.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        println!("\n---- {label}: valgrind ({}) ----", outcome.log.display());
        for line in lines.iter().take(LOG_LINES) {
            println!("{line}");
        }
        if lines.len() > LOG_LINES {
            println!("... {} more lines in {}", lines.len() - LOG_LINES, outcome.log.display());
        }
    }
    if outcome.tests_failed() {
        let how = match outcome.run.status {
            _ if outcome.run.timed_out => format!("timed out after {:.0} s", outcome.run.wall.as_secs_f64()),
            Some(status) => status.to_string(),
            None => "no exit status".into(),
        };
        println!("\n---- {label}: tests failed ({how}) ----");
        // The harness's own account of the failures, or the end of the output without one.
        let stdout = &outcome.run.stdout;
        let from = stdout.iter().position(|l| l == "failures:").unwrap_or(stdout.len().saturating_sub(30));
        for line in &stdout[from..] {
            println!("{line}");
        }
    }
    let stderr: Vec<&str> = outcome.run.stderr.lines().collect();
    if !stderr.is_empty() {
        println!("---- {label}: stderr (last lines) ----");
        for line in &stderr[stderr.len().saturating_sub(30)..] {
            println!("{line}");
        }
    }
    println!("repro: cargo xtask memcheck --test {label}");
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTIFACT: &str = r#"{"reason":"compiler-artifact","package_id":"path+file:///w/crates/wisp-runtime#0.1.0","manifest_path":"/w/crates/wisp-runtime/Cargo.toml","target":{"kind":["test"],"crate_types":["bin"],"name":"lua_apps","src_path":"/w/crates/wisp-runtime/tests/lua_apps.rs","edition":"2021","doc":false,"doctest":false,"test":true},"profile":{"opt_level":"3","debuginfo":1,"debug_assertions":false,"overflow_checks":false,"test":true},"features":[],"filenames":["/w/target/memcheck/release/deps/lua_apps-0123"],"executable":"/w/target/memcheck/release/deps/lua_apps-0123","fresh":true}"#;

    #[test]
    fn reads_test_binaries_from_cargo_messages() {
        let target = test_artifact(ARTIFACT).unwrap();
        assert_eq!(target.package, "wisp-runtime");
        assert_eq!(target.name, "lua_apps");
        assert_eq!(target.executable, PathBuf::from("/w/target/memcheck/release/deps/lua_apps-0123"));
        assert_eq!(target.dir, PathBuf::from("/w/crates/wisp-runtime"));
        assert!(target.is("lua_apps") && target.is("wisp-runtime") && target.is("wisp-runtime/lua_apps"));
        let library =
            ARTIFACT.replace(r#""executable":"/w/target/memcheck/release/deps/lua_apps-0123""#, r#""executable":null"#);
        assert_eq!(test_artifact(&library), None);
    }

    #[test]
    fn package_names_from_both_id_forms() {
        assert_eq!(package_name("path+file:///w/crates/wisp-lua#0.1.0").as_deref(), Some("wisp-lua"));
        assert_eq!(package_name("path+file:///w/crates/lua#wisp-lua@0.1.0").as_deref(), Some("wisp-lua"));
    }

    #[test]
    fn error_count_from_the_summary() {
        let log = "==7== Invalid read of size 8\n==7== \n==7== ERROR SUMMARY: 3 errors from 1 contexts (suppressed: 0 from 0)\n";
        assert_eq!(error_count(log), Some(3));
        assert_eq!(error_count("==7== Memcheck, a memory error detector\n"), None);
    }
}
