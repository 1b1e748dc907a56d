//! `wisp`: the command line front end. The only crate that prints to the terminal.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand};
use wisp_core::{ExitResult, Value};
use wisp_registry::Registry;
use wisp_runtime::{Node, TerminalIo};

// Shards move between worker threads, so memory allocated on one thread is often freed on
// another; glibc's per-thread arenas then serialise the workers on their locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for usage and configuration errors.
const STATUS_CONFIG: u8 = 2;

#[derive(Parser)]
#[command(name = "wisp", version, about = "Run Lua process apps on the Wisp actor runtime")]
struct Cli {
    /// Worker threads for hosts that do not set `workers` (default: one per core).
    #[arg(long, global = true)]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load an app folder, start its hosts and auto-start services, run until they end.
    Run {
        /// The app folder (default: the current one).
        dir: Option<PathBuf>,
    },
    /// Run one entry as a process in the terminal host and exit with its status.
    Exec {
        /// The app folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The entry to run, `namespace:name`.
        entry: String,
        /// String arguments passed to the entry's method.
        args: Vec<String>,
    },
    /// Validate an app folder's registry.
    Check { dir: Option<PathBuf> },
}

/// Standard input and output for the terminal host.
struct StdTerminal {
    stdin: Mutex<std::io::Stdin>,
}

impl TerminalIo for StdTerminal {
    fn write(&self, bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(bytes);
        if bytes.ends_with(b"\n") {
            let _ = out.flush();
        }
    }

    fn flush(&self) {
        let _ = std::io::stdout().flush();
    }

    fn read_line(&self) -> Option<String> {
        let mut line = String::new();
        let stdin = self.stdin.lock().ok()?;
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                while line.ends_with('\n') || line.ends_with('\r') {
                    line.pop();
                }
                Some(line)
            }
        }
    }
}

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` asks for
/// them. The allocator would otherwise ask the kernel for huge pages, and on a kernel that
/// compacts memory for such requests (`defrag` = `madvise`, a common default) a spawn that
/// touches fresh memory waits for compaction: spawning 100k processes took 3.4 µs each on a
/// machine with free huge pages and 6-7 µs on one without, against a steady 4.5 µs with small
/// pages, and a run's peak memory is about a third lower (see docs/performance.md).
#[cfg(target_os = "linux")]
fn prefer_small_pages() {
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_some() {
        return;
    }
    // SAFETY: PR_SET_THP_DISABLE sets a flag of this process; no memory is passed. A kernel
    // without it returns an error, which changes nothing.
    let _ = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

#[cfg(not(target_os = "linux"))]
fn prefer_small_pages() {}

fn main() -> ExitCode {
    prefer_small_pages();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WISP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(STATUS_CONFIG) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command {
        Command::Check { dir } => check(&dir.unwrap_or_else(|| ".".into())),
        Command::Run { dir } => run(&dir.unwrap_or_else(|| ".".into()), cli.workers),
        Command::Exec { dir, entry, args } => exec(&dir, &entry, args, cli.workers),
    }
}

fn check(dir: &Path) -> ExitCode {
    let report = Registry::check_dir(dir);
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    if report.errors.is_empty() {
        println!("{}: ok", dir.display());
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn load(dir: &Path) -> Result<Registry, ExitCode> {
    match Registry::load_dir(dir) {
        Ok(registry) => {
            for w in registry.warnings() {
                tracing::warn!("{w}");
            }
            Ok(registry)
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            Err(ExitCode::from(STATUS_CONFIG))
        }
    }
}

fn build(registry: Registry, workers: Option<usize>) -> Result<Node, ExitCode> {
    let terminal = Arc::new(StdTerminal { stdin: Mutex::new(std::io::stdin()) });
    let mut builder = Node::builder().registry(registry).terminal(terminal);
    if let Some(w) = workers {
        builder = builder.default_workers(w);
    }
    builder.build().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(STATUS_CONFIG)
    })
}

fn exec(dir: &Path, entry: &str, args: Vec<String>, workers: Option<usize>) -> ExitCode {
    let registry = match load(dir) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let node = match build(registry, workers) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let Some(host) = node.terminal_host().map(str::to_owned) else {
        eprintln!("error: no terminal host");
        return ExitCode::from(STATUS_CONFIG);
    };
    let args = args.into_iter().map(Value::from).collect();
    let (_, done) = match node.spawn_watched(entry, &host, args) {
        Ok(spawned) => spawned,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(STATUS_CONFIG);
        }
    };
    let result = done.recv();
    let _ = std::io::stdout().flush();
    node.shutdown();
    match result {
        Ok(ExitResult::Value(_)) => ExitCode::SUCCESS,
        Ok(ExitResult::Error(e)) => {
            eprintln!("error: {entry} failed: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("error: {entry} vanished without an exit");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path, workers: Option<usize>) -> ExitCode {
    let registry = match load(dir) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let services: Vec<(String, String, String, Vec<Value>)> = registry
        .auto_start_services()
        .map(|(id, s)| (id.to_string(), s.process.to_string(), s.host.to_string(), s.input.clone()))
        .collect();
    let node = match build(registry, workers) {
        Ok(n) => n,
        Err(code) => return code,
    };
    let mut running = Vec::new();
    for (id, process, host, input) in services {
        match node.spawn_watched(&process, &host, input) {
            Ok((pid, done)) => {
                tracing::info!(service = %id, pid = %node.render_pid(pid), "started");
                running.push((id, done));
            }
            Err(e) => {
                eprintln!("error: service {id}: {e}");
                return ExitCode::from(STATUS_CONFIG);
            }
        }
    }
    let mut failed = false;
    for (id, done) in running {
        match done.recv() {
            Ok(ExitResult::Value(_)) => tracing::info!(service = %id, "finished"),
            Ok(ExitResult::Error(e)) => {
                failed = true;
                tracing::error!(service = %id, "failed: {e}");
            }
            Err(_) => failed = true,
        }
    }
    node.shutdown();
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
