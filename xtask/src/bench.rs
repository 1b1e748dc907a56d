//! `cargo xtask bench`: the benchmark set of docs (targets.md) through the `wisp` binary, with
//! the Erlang and Go peers (`../shared/peers/run.sh`) beside it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::proc::{command_output, result_field, run as run_child, Run};
use crate::{build_wisp, cores, workspace_root};

/// Pairs of runs (1 worker, N workers) the scaling figure is the median ratio of.
const SCALING_ROUNDS: usize = 3;

const ALL: &[&str] = &["skynet", "spawn", "ring", "pingpong", "counting", "forkjoin", "fairness", "scaling"];
const PEERS: &[&str] = &["erlang", "go"];

#[derive(Args)]
pub struct BenchArgs {
    /// Benchmarks to run (default: all): skynet spawn ring pingpong counting forkjoin fairness scaling.
    names: Vec<String>,
    /// Also run the Erlang and Go peers on the same sizes.
    #[arg(long)]
    peers: bool,
    /// Worker threads for the wisp runtime (default: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// The main size N of every benchmark (skynet SIZE, spawn/pingpong/counting/forkjoin N,
    /// ring rounds N/1000 over 1000 processes). Default: the sizes of docs/targets.md.
    #[arg(long)]
    size: Option<u64>,
    /// Small sizes (a hundredth of the defaults) to check that everything runs.
    #[arg(long)]
    quick: bool,
    /// Per-run timeout in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Do not write docs/benchmarks.md.
    #[arg(long)]
    no_write: bool,
    /// Echo the programs' output.
    #[arg(long, short)]
    verbose: bool,
}

/// One row of the table: a metric measured by each side.
struct Row {
    bench: String,
    metric: &'static str,
    goal: &'static str,
    wisp: Cell,
    peers: BTreeMap<&'static str, Cell>,
}

#[derive(Clone)]
enum Cell {
    Value(f64),
    Missing(String),
}

impl Cell {
    fn value(&self) -> Option<f64> {
        match self {
            Cell::Value(v) => Some(*v),
            Cell::Missing(_) => None,
        }
    }
    fn show(&self) -> String {
        match self {
            Cell::Value(v) => fmt_num(*v),
            Cell::Missing(why) => why.clone(),
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Whole-process figures of one run.
struct Whole {
    label: String,
    side: &'static str,
    wall_s: Option<f64>,
    peak_mb: Option<f64>,
    status: String,
}

struct Ctx {
    wisp: PathBuf,
    root: PathBuf,
    peers_sh: Option<PathBuf>,
    timeout: Duration,
    verbose: bool,
    whole: Vec<Whole>,
    warmed: Vec<&'static str>,
}

impl Ctx {
    fn run_wisp(&mut self, label: &str, workers: usize, entry: &str, args: &[String], markers: &[&str]) -> Result<Run> {
        let mut argv = vec![
            "--workers".to_string(),
            workers.to_string(),
            "exec".into(),
            "--dir".into(),
            "benches/lua".into(),
            format!("bench:{entry}"),
        ];
        argv.extend(args.iter().cloned());
        eprintln!("xtask: wisp {}", argv.join(" "));
        let run = run_child(&self.wisp, &argv, &self.root, self.timeout, markers, self.verbose)?;
        self.record(label, "wisp", &run);
        Ok(run)
    }

    fn run_peer(&mut self, lang: &'static str, label: &str, args: &[String]) -> Result<Option<Run>> {
        let Some(sh) = self.peers_sh.clone() else { return Ok(None) };
        if !self.warmed.contains(&lang) {
            // First use installs the toolchain and compiles the program: keep that out of the timings.
            eprintln!("xtask: preparing the {lang} peer (may install it from Debian)");
            let warm = run_child(
                &sh,
                &[lang.to_string(), "pingpong".into(), "10".into()],
                &self.root,
                Duration::from_secs(1800),
                &[],
                self.verbose,
            )?;
            if !warm.ok() {
                eprintln!("xtask: {lang} peer unavailable: {}", warm.failure());
            }
            self.warmed.push(lang);
        }
        let mut argv = vec![lang.to_string()];
        argv.extend(args.iter().cloned());
        eprintln!("xtask: run.sh {}", argv.join(" "));
        let run = run_child(&sh, &argv, &self.root, self.timeout, &[], self.verbose)?;
        self.record(label, lang, &run);
        Ok(Some(run))
    }

    fn record(&mut self, label: &str, side: &'static str, run: &Run) {
        if !run.ok() {
            eprintln!("xtask: {side} {label} failed: {}", run.failure());
        }
        self.whole.push(Whole {
            label: label.to_string(),
            side,
            wall_s: Some(run.wall.as_secs_f64()),
            peak_mb: run.peak_kb.map(|k| k as f64 / 1024.0),
            status: if run.ok() { "ok".into() } else { run.failure() },
        });
    }
}

/// The number in front of `unit` in a peer's output line, e.g. `2712.3` in `... in 2712.3 ms`.
fn num_before(text: &str, unit: &str) -> Option<f64> {
    let at = text.find(unit)?;
    text[..at].split_whitespace().last()?.parse().ok()
}

/// The number after `label`, e.g. `123.4` in `RSS 123.4 B/proc`.
fn num_after(text: &str, label: &str) -> Option<f64> {
    let at = text.find(label)? + label.len();
    text[at..].split_whitespace().next()?.trim_end_matches(',').parse().ok()
}

fn wisp_cell(run: &Run, bench: &str, key: &str) -> Cell {
    if !run.ok() {
        return Cell::Missing(if run.timed_out { "timeout".into() } else { "failed".into() });
    }
    match run.line(&format!("RESULT {bench} ")).and_then(|l| result_field(l, key)) {
        Some(v) => Cell::Value(v),
        None => Cell::Missing("no RESULT".into()),
    }
}

fn peer_cell(run: &Option<Run>, parse: impl Fn(&str) -> Option<f64>) -> Cell {
    match run {
        None => Cell::Missing("-".into()),
        Some(r) if !r.ok() => Cell::Missing(if r.timed_out { "timeout".into() } else { "failed".into() }),
        Some(r) => r.stdout.iter().find_map(|l| parse(l)).map(Cell::Value).unwrap_or(Cell::Missing("unparsed".into())),
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    let names: Vec<String> =
        if args.names.is_empty() { ALL.iter().map(|s| s.to_string()).collect() } else { args.names.clone() };
    for n in &names {
        if !ALL.contains(&n.as_str()) {
            bail!("unknown benchmark `{n}` (known: {})", ALL.join(" "));
        }
    }
    let root = workspace_root();
    let wisp = build_wisp()?;
    let peers_sh = if args.peers {
        let sh = root.join("../shared/peers/run.sh");
        if sh.exists() {
            Some(sh.canonicalize().context("resolving run.sh")?)
        } else {
            eprintln!("xtask: {} is missing: skipping the peers", sh.display());
            None
        }
    } else {
        None
    };
    let workers = args.workers.unwrap_or_else(cores);
    let scale = |default: u64| -> u64 {
        let n = args.size.unwrap_or(default);
        if args.quick {
            (n / 100).max(10)
        } else {
            n
        }
    };
    let mut cx = Ctx {
        wisp,
        root: root.clone(),
        peers_sh,
        timeout: Duration::from_secs(args.timeout),
        verbose: args.verbose,
        whole: Vec::new(),
        warmed: Vec::new(),
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut sizes: Vec<String> = Vec::new();

    for name in &names {
        match name.as_str() {
            "skynet" => {
                let size = scale(1_000_000);
                let a = vec![size.to_string(), "10".into()];
                let label = format!("skynet {size} 10");
                sizes.push(label.clone());
                let w = cx.run_wisp(&label, workers, "skynet", &a, &[])?;
                let mut row = Row {
                    bench: label.clone(),
                    metric: "ms",
                    goal: "< Go",
                    wisp: wisp_cell(&w, "skynet", "ms"),
                    peers: BTreeMap::new(),
                };
                for lang in PEERS {
                    let p = cx.run_peer(lang, &label, &prefixed("skynet", &a))?;
                    row.peers.insert(lang, peer_cell(&p, |l| num_before(l, " ms")));
                }
                rows.push(row);
            }
            "spawn" => {
                // Idle memory is asked for at 100k and at 1M processes.
                for n in [scale(100_000), scale(1_000_000)] {
                    let hold = "500".to_string();
                    let label = format!("spawn {n}");
                    sizes.push(label.clone());
                    let w = cx.run_wisp(&label, workers, "spawn", &[n.to_string(), hold], &["BASE", "MEASURE"])?;
                    let rss = match (w.marks.iter().find(|m| m.0 == "BASE"), w.marks.iter().find(|m| m.0 == "MEASURE"))
                    {
                        (Some(b), Some(m)) if w.ok() => Cell::Value((m.1 as f64 - b.1 as f64) * 1024.0 / n as f64),
                        _ => Cell::Missing("no sample".into()),
                    };
                    let mut t = Row {
                        bench: label.clone(),
                        metric: "us/spawn",
                        goal: "<= 2",
                        wisp: wisp_cell(&w, "spawn", "us_per_spawn"),
                        peers: BTreeMap::new(),
                    };
                    let mut m = Row {
                        bench: label.clone(),
                        metric: "RSS B/proc",
                        goal: "<= 1536",
                        wisp: rss,
                        peers: BTreeMap::new(),
                    };
                    for lang in PEERS {
                        let p = cx.run_peer(lang, &label, &["spawn".into(), n.to_string()])?;
                        t.peers.insert(lang, peer_cell(&p, |l| num_before(l, "us/spawn")));
                        m.peers.insert(lang, peer_cell(&p, |l| num_after(l, "RSS ")));
                    }
                    rows.push(t);
                    rows.push(m);
                }
            }
            "ring" => {
                let total = scale(1_000_000);
                let n: u64 = if total >= 10_000 { 1000 } else { 100 };
                let m = (total / n).max(1);
                let a = vec![n.to_string(), m.to_string()];
                let label = format!("ring {n}x{m}");
                sizes.push(label.clone());
                let w = cx.run_wisp(&label, workers, "ring", &a, &[])?;
                let mut row = Row {
                    bench: label.clone(),
                    metric: "ns/hop",
                    goal: "<= 250",
                    wisp: wisp_cell(&w, "ring", "ns_per_hop"),
                    peers: BTreeMap::new(),
                };
                for lang in PEERS {
                    let p = cx.run_peer(lang, &label, &prefixed("ring", &a))?;
                    row.peers.insert(lang, peer_cell(&p, |l| num_before(l, "ns/msg hop")));
                }
                rows.push(row);
            }
            "pingpong" => {
                let n = scale(1_000_000);
                let label = format!("pingpong {n}");
                sizes.push(label.clone());
                let w = cx.run_wisp(&label, workers, "pingpong", &[n.to_string()], &[])?;
                let mut row = Row {
                    bench: label.clone(),
                    metric: "ns/round trip",
                    goal: "<= 500",
                    wisp: wisp_cell(&w, "pingpong", "ns_per_rt"),
                    peers: BTreeMap::new(),
                };
                for lang in PEERS {
                    let p = cx.run_peer(lang, &label, &["pingpong".into(), n.to_string()])?;
                    row.peers.insert(lang, peer_cell(&p, |l| num_before(l, "ns/round-trip")));
                }
                rows.push(row);
            }
            "counting" => {
                let n = scale(1_000_000);
                let label = format!("counting {n}");
                sizes.push(label.clone());
                let w = cx.run_wisp(&label, workers, "counting", &[n.to_string()], &[])?;
                let mut row = Row {
                    bench: label.clone(),
                    metric: "ns/msg",
                    goal: "<= 150",
                    wisp: wisp_cell(&w, "counting", "ns_per_msg"),
                    peers: BTreeMap::new(),
                };
                for lang in PEERS {
                    let p = cx.run_peer(lang, &label, &["counting".into(), n.to_string()])?;
                    row.peers.insert(lang, peer_cell(&p, |l| num_before(l, "ns/msg")));
                }
                rows.push(row);
            }
            "forkjoin" => {
                let n = scale(100_000);
                let label = format!("forkjoin {n}");
                sizes.push(label.clone());
                let w = cx.run_wisp(&label, workers, "forkjoin", &[n.to_string()], &[])?;
                rows.push(Row {
                    bench: label,
                    metric: "us/child",
                    goal: "",
                    wisp: wisp_cell(&w, "forkjoin", "us_per_child"),
                    peers: BTreeMap::new(),
                });
            }
            "fairness" => {
                let rounds = if args.quick { 50 } else { 200 };
                let label = format!("fairness {}busy", 2 * workers);
                sizes.push(format!("fairness {rounds} round trips"));
                let w = cx.run_wisp(&label, workers, "fairness", &[workers.to_string(), rounds.to_string()], &[])?;
                rows.push(Row {
                    bench: label.clone(),
                    metric: "p50 ms",
                    goal: "",
                    wisp: wisp_cell(&w, "fairness", "p50_ms"),
                    peers: BTreeMap::new(),
                });
                rows.push(Row {
                    bench: label,
                    metric: "p99 ms",
                    goal: "< 10",
                    wisp: wisp_cell(&w, "fairness", "p99_ms"),
                    peers: BTreeMap::new(),
                });
            }
            "scaling" => {
                let size = scale(1_000_000);
                let a = vec![size.to_string(), "10".into()];
                let label = format!("skynet {size} 1 vs {workers} workers (median of {SCALING_ROUNDS} pairs)");
                sizes.push(label.clone());
                // One run of each, in turn, three times: the median of the three ratios, so a
                // drift of the shared machine's speed between two runs does not decide it.
                let mut ratios = Vec::new();
                for round in 1..=SCALING_ROUNDS {
                    let one = cx.run_wisp(&format!("skynet {size} 10 (1 worker, {round})"), 1, "skynet", &a, &[])?;
                    let many_label = format!("skynet {size} 10 ({workers} workers, {round})");
                    let many = cx.run_wisp(&many_label, workers, "skynet", &a, &[])?;
                    if let (Some(a), Some(b)) =
                        (wisp_cell(&one, "skynet", "ms").value(), wisp_cell(&many, "skynet", "ms").value())
                    {
                        if b > 0.0 {
                            ratios.push(a / b);
                        }
                    }
                }
                ratios.sort_by(f64::total_cmp);
                let cell = match ratios.len() {
                    0 => Cell::Missing("failed".into()),
                    n => Cell::Value(ratios[n / 2]),
                };
                rows.push(Row { bench: label, metric: "speed-up", goal: ">= 1.7", wisp: cell, peers: BTreeMap::new() });
            }
            _ => unreachable!(),
        }
    }

    let table = render(&rows, &cx.whole, cx.peers_sh.is_some());
    println!("\n{table}");
    if !args.no_write {
        let doc = document(&table, workers, &args, &sizes);
        let path = root.join("docs/benchmarks.md");
        std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}

fn prefixed(bench: &str, args: &[String]) -> Vec<String> {
    let mut v = vec![bench.to_string()];
    v.extend(args.iter().cloned());
    v
}

fn ratio(w: &Cell, p: Option<&Cell>) -> String {
    match (w.value(), p.and_then(Cell::value)) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn render(rows: &[Row], whole: &[Whole], peers: bool) -> String {
    let mut s = String::new();
    if peers {
        s.push_str("| benchmark | metric | wisp | erlang | go | wisp/erlang | wisp/go | goal |\n|---|---|---|---|---|---|---|---|\n");
    } else {
        s.push_str("| benchmark | metric | wisp | goal |\n|---|---|---|---|\n");
    }
    for r in rows {
        if peers {
            let e = r.peers.get("erlang");
            let g = r.peers.get("go");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.bench,
                r.metric,
                r.wisp.show(),
                e.map(Cell::show).unwrap_or_else(|| "-".into()),
                g.map(Cell::show).unwrap_or_else(|| "-".into()),
                ratio(&r.wisp, e),
                ratio(&r.wisp, g),
                r.goal
            );
        } else {
            let _ = writeln!(s, "| {} | {} | {} | {} |", r.bench, r.metric, r.wisp.show(), r.goal);
        }
    }
    s.push_str("\nWhole-process figures of every run (wall time from start to exit, peak RSS = VmHWM):\n\n");
    s.push_str("| run | side | wall s | peak RSS MB | status |\n|---|---|---|---|---|\n");
    for w in whole {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            w.label,
            w.side,
            w.wall_s.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into()),
            w.peak_mb.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into()),
            w.status.replace('|', "/")
        );
    }
    s
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn document(table: &str, workers: usize, args: &BenchArgs, sizes: &[String]) -> String {
    let mut d = String::new();
    d.push_str("# Benchmarks\n\n");
    d.push_str("The latest run of `cargo xtask bench`. The Wisp side is the Lua app in `benches/lua` run by the release `wisp` binary\n");
    d.push_str("(`wisp --workers N exec --dir benches/lua bench:<name> ARGS`); the peers are `../shared/peers/run.sh erlang|go` on the same sizes in the same run.\n");
    d.push_str("Per-operation figures are what each program measures around its own loop (Lua: `os.clock()`); ratios are wisp / peer, so below 1 means Wisp is faster or smaller.\n");
    d.push_str("Idle-process memory for Wisp is the growth of the whole `wisp` process's VmRSS between a `BASE` and a `MEASURE` marker, divided by N (sampled by xtask from /proc);\n");
    d.push_str("the peers report their own RSS growth the same way. Absolute times drift on shared machines: compare ratios within one run.\n");
    d.push_str("What the profiles show behind these figures, and what would close each gap, is in [performance.md](performance.md).\n\n");
    d.push_str("## Machine\n\n");
    let _ = writeln!(d, "- date: {}", command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]));
    let _ = writeln!(d, "- uname: `{}`", command_output("uname", &["-a"]));
    let _ = writeln!(d, "- CPU: {} ({} cores online)", cpu_model(), cores());
    let _ = writeln!(d, "- wisp workers: {workers}");
    let mut cmd = String::from("cargo xtask bench");
    for n in &args.names {
        cmd.push(' ');
        cmd.push_str(n);
    }
    if args.peers {
        cmd.push_str(" --peers");
    }
    if let Some(w) = args.workers {
        let _ = write!(cmd, " --workers {w}");
    }
    if let Some(n) = args.size {
        let _ = write!(cmd, " --size {n}");
    }
    if args.quick {
        cmd.push_str(" --quick");
    }
    let _ = writeln!(d, "- command: `{cmd}`");
    let _ = writeln!(d, "- sizes: {}", sizes.join("; "));
    d.push_str("\n## Results\n\n");
    d.push_str(table);
    d
}
