//! `cargo xtask`: developer tasks for the Wisp workspace.
//!
//! - `bench`: runs the Lua benchmark set (benches/lua) through the release `wisp` binary,
//!   optionally beside the Erlang and Go peers, and writes the table to docs/benchmarks.md.
//! - `stress`: heavier correctness runs through the `wisp` binary; non-zero exit on any failure.
//! - `tidy`: source hygiene checks.

mod bench;
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
    /// Check SAFETY comments on unsafe code and required docs.
    Tidy,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Bench(args) => bench::run(args),
        Cmd::Stress(args) => stress::run(args),
        Cmd::Tidy => tidy::run(),
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

/// Number of online CPUs.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
