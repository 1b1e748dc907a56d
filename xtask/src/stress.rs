//! `cargo xtask stress`: heavier correctness runs of Lua programs through the `wisp` binary.
//! Every program checks its own result and fails (non-zero exit) on a mismatch; a run that hangs
//! past its timeout is a failure too.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;

use crate::proc::run as run_child;
use crate::{build_wisp, cores, workspace_root};

#[derive(Args)]
pub struct StressArgs {
    /// Modest sizes (the whole run stays under 2 minutes on 2 cores).
    #[arg(long)]
    quick: bool,
    /// Worker threads for the wisp runtime (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
}

struct Case {
    name: &'static str,
    entry: &'static str,
    args: Vec<String>,
    workers: usize,
    timeout: Duration,
}

pub fn run(args: StressArgs) -> Result<()> {
    let root = workspace_root();
    let wisp = build_wisp()?;
    let workers = args.workers.unwrap_or_else(cores);
    let q = args.quick;
    let sz = |quick: u64, full: u64| if q { quick } else { full }.to_string();
    let t = |quick: u64, full: u64| Duration::from_secs(if q { quick } else { full });
    let cases = vec![
        // R1: 8 senders x N numbered messages to one receiver, 0 reordered, 0 lost.
        Case {
            name: "R1 ordering 8 senders",
            entry: "ordering",
            args: vec!["8".into(), sz(100_000, 100_000)],
            workers,
            timeout: t(30, 300),
        },
        Case {
            name: "R1 ordering 8 senders, 1 worker",
            entry: "ordering",
            args: vec!["8".into(), sz(50_000, 100_000)],
            workers: 1,
            timeout: t(30, 300),
        },
        Case {
            name: "skynet",
            entry: "skynet",
            args: vec![sz(100_000, 1_000_000), "10".into()],
            workers,
            timeout: t(30, 300),
        },
        Case { name: "fork-join", entry: "forkjoin", args: vec![sz(50_000, 100_000)], workers, timeout: t(20, 300) },
        Case { name: "spawn and stop", entry: "spawn", args: vec![sz(50_000, 100_000)], workers, timeout: t(20, 300) },
        Case { name: "ring", entry: "ring", args: vec![sz(1000, 1000), sz(20, 100)], workers, timeout: t(20, 300) },
        Case { name: "counting", entry: "counting", args: vec![sz(200_000, 1_000_000)], workers, timeout: t(20, 300) },
    ];
    let started = Instant::now();
    let mut failed = Vec::new();
    for case in &cases {
        let mut argv = vec![
            "--workers".to_string(),
            case.workers.to_string(),
            "exec".into(),
            "--dir".into(),
            "benches/lua".into(),
            format!("bench:{}", case.entry),
        ];
        argv.extend(case.args.iter().cloned());
        let r = run_child(&wisp, &argv, &root, case.timeout, &[], false)?;
        let result = r.stdout.iter().find(|l| l.starts_with("RESULT ")).cloned().unwrap_or_default();
        if r.ok() && !result.is_empty() {
            println!("ok    {:<34} {:>7.2} s  {}", case.name, r.wall.as_secs_f64(), result);
        } else {
            let why = if r.ok() { "no RESULT line".to_string() } else { r.failure() };
            println!("FAIL  {:<34} {:>7.2} s  {}", case.name, r.wall.as_secs_f64(), why);
            println!("      repro: target/release/wisp {}", argv.join(" "));
            failed.push(case.name);
        }
    }
    println!(
        "stress: {} of {} passed in {:.1} s",
        cases.len() - failed.len(),
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("stress failures: {}", failed.join(", "));
    }
    Ok(())
}
