//! `cargo xtask`: developer tasks for the Wisp workspace.
//!
//! - `bench`: runs the Lua benchmark set (benches/lua) through the release `wisp` binary (or one
//!   given with `--wisp-bin`), optionally beside the Erlang and Go peers, and writes the table to
//!   docs/benchmarks.md (unless `--no-write`).
//! - `stress`: heavier correctness runs through the `wisp` binary; non-zero exit on any failure.
//! - `tidy`: the machine-checkable architecture invariants (only wisp-registry depends on YAML,
//!   only wisp-cli prints, crates depend only on lower layers) and unsafe-code hygiene.
//! - `loom`: model-checks the lock-free handshakes (mailbox, schedule state, watchdog, name claims,
//!   exit vs monitor/link) with loom.
//! - `memcheck`: runs the Lua test suite under valgrind's memcheck; non-zero exit on any error.

mod bench;
mod memcheck;
mod proc;
mod stress;
mod tidy;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Wisp developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark set (default: all) and write docs/benchmarks.md.
    Bench(bench::BenchArgs),
    /// Run the heavy reliability tests through the wisp binary.
    Stress(stress::StressArgs),
    /// Check the architecture invariants (YAML only in wisp-registry, printing only in wisp-cli,
    /// crate layers) and SAFETY comments on unsafe code.
    Tidy,
    /// Model-check the lock-free handshakes with loom (a build of its own, in target/loom).
    Loom,
    /// Run the Lua test suite (wisp-runtime's and wisp-lua's tests) under valgrind memcheck.
    Memcheck(memcheck::MemcheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Bench(args) => bench::run(args),
        Cmd::Stress(args) => stress::run(args),
        Cmd::Tidy => tidy::run(),
        Cmd::Loom => loom(),
        Cmd::Memcheck(args) => memcheck::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate's manifest directory).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Builds the release `wisp` binary and returns its path.
pub fn build_wisp() -> Result<PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo build --release -p wisp-cli");
    let status = std::process::Command::new(cargo)
        .args(["build", "--release", "-p", "wisp-cli"])
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release -p wisp-cli failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let bin = target.join("release").join("wisp");
    if !bin.exists() {
        bail!("{} not found after the build", bin.display());
    }
    Ok(bin)
}

/// Crates whose lock-free parts or races with the exit path have loom models (`mod loom_tests`,
/// built with `--cfg loom`).
const LOOM_CRATES: &[&str] = &["wisp-mailbox", "wisp-scheduler", "wisp-lua", "wisp-registry", "wisp-process"];

/// Runs the loom models: the crates' `loom` tests built with `--cfg loom`, in a target directory
/// of their own so the regular build is not invalidated.
fn loom() -> Result<()> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args(["test", "--release", "--lib"]);
    for krate in LOOM_CRATES {
        command.args(["-p", krate]);
    }
    command.arg("loom").env("RUSTFLAGS", "--cfg loom").env("CARGO_TARGET_DIR", root.join("target").join("loom"));
    eprintln!("xtask: RUSTFLAGS=\"--cfg loom\" cargo test --release --lib -p {} loom", LOOM_CRATES.join(" -p "));
    let status = command.current_dir(&root).status().context("running cargo test")?;
    if !status.success() {
        bail!("loom models failed ({status})");
    }
    Ok(())
}

/// Number of online CPUs.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
