//! `cargo xtask bench`: the benchmark set of docs (targets.md) through the `wisp` binary, with
//! the Erlang and Go peers (`../shared/peers/run.sh`) beside it. Each figure is the median of
//! several runs per side, the sides taking turns, since figures on a shared machine drift.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::proc::{command_output, result_field, run as run_child, Run};
use crate::{build_wisp, cores, workspace_root};

/// Runs per side that each figure is the median of, unless `--runs` or `--quick` says otherwise.
const DEFAULT_RUNS: usize = 3;

/// The fewest pairs of runs (1 worker, N workers) the scaling figure is the median ratio of. A
/// pair's ratio swings with the machine (1.2-2.3 for the same binary within one run of three
/// pairs): five make the median steadier for about 15 s more.
const SCALING_MIN_PAIRS: usize = 5;

const ALL: &[&str] = &["skynet", "spawn", "ring", "pingpong", "counting", "forkjoin", "fairness", "timeout", "scaling"];
const PEERS: &[&str] = &["erlang", "go"];

#[derive(Args)]
pub struct BenchArgs {
    /// Benchmarks to run (default: all): skynet spawn ring pingpong counting forkjoin fairness
    /// timeout scaling.
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
    /// Runs per side; each figure is the median of them, the sides taking turns (default: 3,
    /// or 1 with --quick). The scaling figure takes the median of at least 5 pairs.
    #[arg(long, value_name = "N")]
    runs: Option<usize>,
    /// Small sizes (a hundredth of the defaults) to check that everything runs.
    #[arg(long)]
    quick: bool,
    /// Per-run timeout in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Do not write docs/benchmarks.md (the table is printed either way).
    #[arg(long)]
    no_write: bool,
    /// Run this `wisp` binary instead of building one from this tree: e.g. one built from an
    /// older commit, to compare with the current build in the same sitting (figures of two
    /// sittings differ with the machine's speed).
    #[arg(long, value_name = "PATH")]
    wisp_bin: Option<PathBuf>,
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

/// How to read a metric from a wisp run.
enum WispValue {
    /// The `key=value` field of the program's `RESULT <entry> ...` line.
    ResultField(&'static str),
    /// The growth of the process's VmRSS between the `BASE` and `MEASURE` markers, in bytes
    /// per process for this many processes.
    RssPerProcess(u64),
}

impl WispValue {
    fn read(&self, run: &Run, entry: &str) -> Cell {
        if !run.ok() {
            return failure_cell(run);
        }
        match self {
            WispValue::ResultField(key) => {
                match run.line(&format!("RESULT {entry} ")).and_then(|l| result_field(l, key)) {
                    Some(v) => Cell::Value(v),
                    None => Cell::Missing("no RESULT".into()),
                }
            }
            WispValue::RssPerProcess(processes) => {
                let mark = |name: &str| run.marks.iter().find(|m| m.0 == name).map(|m| m.1 as f64);
                match (mark("BASE"), mark("MEASURE")) {
                    (Some(base), Some(measure)) => Cell::Value((measure - base) * 1024.0 / *processes as f64),
                    _ => Cell::Missing("no sample".into()),
                }
            }
        }
    }
}

/// Where a peer prints a metric in its output.
#[derive(Clone, Copy)]
enum PeerValue {
    /// The number in front of this unit, e.g. `2712.3` in `... in 2712.3 ms`.
    Before(&'static str),
    /// The number after this label, e.g. `123.4` in `RSS 123.4 B/proc`.
    After(&'static str),
}

impl PeerValue {
    fn read(self, run: &Option<Run>) -> Cell {
        let parse = |line: &str| match self {
            PeerValue::Before(unit) => num_before(line, unit),
            PeerValue::After(label) => num_after(line, label),
        };
        match run {
            None => Cell::Missing("-".into()),
            Some(r) if !r.ok() => failure_cell(r),
            Some(r) => {
                r.stdout.iter().find_map(|l| parse(l)).map(Cell::Value).unwrap_or(Cell::Missing("unparsed".into()))
            }
        }
    }
}

fn failure_cell(run: &Run) -> Cell {
    Cell::Missing(if run.timed_out { "timeout".into() } else { "failed".into() })
}

/// A figure a benchmark reports: one row of the table.
struct Metric {
    name: &'static str,
    goal: &'static str,
    wisp: WispValue,
    /// `None` when the peers have no such figure.
    peer: Option<PeerValue>,
}

/// One benchmark at one size: what wisp and the peers are run with, and the figures read from
/// each run.
struct Bench {
    label: String,
    /// How the document's `sizes` line names it.
    size: String,
    entry: &'static str,
    wisp_args: Vec<String>,
    /// Marker lines at which the wisp process's VmRSS is sampled.
    markers: &'static [&'static str],
    /// `run.sh <lang> ...` arguments; `None` when the peers have no such program.
    peer_args: Option<Vec<String>>,
    metrics: Vec<Metric>,
}

impl Bench {
    fn new(label: String, entry: &'static str, wisp_args: Vec<String>) -> Self {
        Bench { size: label.clone(), label, entry, wisp_args, markers: &[], peer_args: None, metrics: Vec::new() }
    }

    /// The peers run the program of the same name with the same arguments.
    fn same_peer_args(mut self) -> Self {
        self.peer_args = Some(prefixed(self.entry, &self.wisp_args));
        self
    }

    fn metric(mut self, name: &'static str, goal: &'static str, wisp: WispValue, peer: Option<PeerValue>) -> Self {
        self.metrics.push(Metric { name, goal, wisp, peer });
        self
    }
}

/// The benchmarks `name` stands for (spawn is two: at 100k and at 1M processes); `scale` turns
/// a default size into the size of this run. `scaling` is not one of them: see [`scaling`].
fn benches(name: &str, scale: impl Fn(u64) -> u64, workers: usize, quick: bool) -> Vec<Bench> {
    use PeerValue::{After, Before};
    use WispValue::{ResultField, RssPerProcess};
    match name {
        "skynet" => {
            let size = scale(1_000_000);
            vec![Bench::new(format!("skynet {size} 10"), "skynet", vec![size.to_string(), "10".into()])
                .same_peer_args()
                .metric("ms", "< Go", ResultField("ms"), Some(Before(" ms")))]
        }
        // Idle memory is asked for at 100k and at 1M processes.
        "spawn" => [scale(100_000), scale(1_000_000)]
            .into_iter()
            .map(|n| {
                let mut bench = Bench::new(format!("spawn {n}"), "spawn", vec![n.to_string(), "500".into()])
                    .metric("us/spawn", "<= 2", ResultField("us_per_spawn"), Some(Before("us/spawn")))
                    .metric("RSS B/proc", "<= 1536", RssPerProcess(n), Some(After("RSS ")));
                bench.markers = &["BASE", "MEASURE"];
                bench.peer_args = Some(vec!["spawn".into(), n.to_string()]);
                bench
            })
            .collect(),
        "ring" => {
            let total = scale(1_000_000);
            let n: u64 = if total >= 10_000 { 1000 } else { 100 };
            let m = (total / n).max(1);
            vec![Bench::new(format!("ring {n}x{m}"), "ring", vec![n.to_string(), m.to_string()])
                .same_peer_args()
                .metric("ns/hop", "<= 250", ResultField("ns_per_hop"), Some(Before("ns/msg hop")))]
        }
        "pingpong" => {
            let n = scale(1_000_000);
            let bench = Bench::new(format!("pingpong {n}"), "pingpong", vec![n.to_string()]).same_peer_args();
            vec![bench.metric("ns/round trip", "<= 500", ResultField("ns_per_rt"), Some(Before("ns/round-trip")))]
        }
        "counting" => {
            let n = scale(1_000_000);
            let bench = Bench::new(format!("counting {n}"), "counting", vec![n.to_string()]).same_peer_args();
            vec![bench.metric("ns/msg", "<= 150", ResultField("ns_per_msg"), Some(Before("ns/msg")))]
        }
        "forkjoin" => {
            let n = scale(100_000);
            let bench = Bench::new(format!("forkjoin {n}"), "forkjoin", vec![n.to_string()]);
            vec![bench.metric("us/child", "", ResultField("us_per_child"), None)]
        }
        "fairness" => {
            let rounds = if quick { 50 } else { 200 };
            let mut bench = Bench::new(
                format!("fairness {}busy", 2 * workers),
                "fairness",
                vec![workers.to_string(), rounds.to_string()],
            )
            .metric("p50 ms", "", ResultField("p50_ms"), None)
            .metric("p99 ms", "< 10", ResultField("p99_ms"), None);
            bench.size = format!("fairness {rounds} round trips");
            vec![bench]
        }
        // The timeout idiom (select + a fresh time.after per iteration) beside the same loop
        // without the timer: the rate, and the worst gap as the abandoned timers fire.
        "timeout" => {
            let n = scale(1_000_000);
            ["timer", "none"]
                .into_iter()
                .map(|mode| {
                    let label = match mode {
                        "timer" => format!("timeout {n} (select + after)"),
                        _ => format!("timeout {n} (select alone)"),
                    };
                    Bench::new(label, "timeout", vec![n.to_string(), mode.into()])
                        .metric("iter/s", "", ResultField("per_s"), None)
                        .metric("worst gap ms", "", ResultField("worst_gap_ms"), None)
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Runs `bench` `runs` times, each time wisp and then each peer, so that a drift of the shared
/// machine's speed hits all sides alike; one row per metric, each cell the median of its side.
fn measure(cx: &mut Ctx, bench: &Bench, workers: usize, runs: usize) -> Result<Vec<Row>> {
    // Per metric, per side ("wisp", then the peers): the cell of each run.
    let mut samples: Vec<BTreeMap<&'static str, Vec<Cell>>> = bench.metrics.iter().map(|_| BTreeMap::new()).collect();
    for run_number in 1..=runs {
        let label = if runs > 1 { format!("{} (run {run_number})", bench.label) } else { bench.label.clone() };
        let run = cx.run_wisp(&label, workers, bench.entry, &bench.wisp_args, bench.markers)?;
        for (metric, sides) in bench.metrics.iter().zip(&mut samples) {
            sides.entry("wisp").or_default().push(metric.wisp.read(&run, bench.entry));
        }
        let Some(peer_args) = &bench.peer_args else { continue };
        for &lang in PEERS {
            let run = cx.run_peer(lang, &label, peer_args)?;
            for (metric, sides) in bench.metrics.iter().zip(&mut samples) {
                let cell = metric.peer.map_or(Cell::Missing("-".into()), |peer| peer.read(&run));
                sides.entry(lang).or_default().push(cell);
            }
        }
    }
    let rows = bench.metrics.iter().zip(samples).map(|(metric, mut sides)| {
        let wisp = median_cell(&sides.remove("wisp").unwrap_or_default());
        Row {
            bench: bench.label.clone(),
            metric: metric.name,
            goal: metric.goal,
            wisp,
            peers: sides.into_iter().map(|(side, cells)| (side, median_cell(&cells))).collect(),
        }
    });
    Ok(rows.collect())
}

/// The median; for an even count, the mean of the two middle values.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

/// The median of the runs that gave a value; with none, the first run's failure.
fn median_cell(cells: &[Cell]) -> Cell {
    match median(cells.iter().filter_map(Cell::value).collect()) {
        Some(v) => Cell::Value(v),
        None => cells.first().cloned().unwrap_or(Cell::Missing("-".into())),
    }
}

/// The speed-up of skynet from 1 worker to `workers`: the median ratio of `pairs` pairs of
/// runs, one of each in turn, so that a drift of the machine's speed between two runs does
/// not decide it.
fn scaling(cx: &mut Ctx, size: u64, workers: usize, pairs: usize) -> Result<Row> {
    let args = vec![size.to_string(), "10".into()];
    let ms = |run: &Run| WispValue::ResultField("ms").read(run, "skynet").value();
    let mut ratios = Vec::new();
    for pair in 1..=pairs {
        let one = cx.run_wisp(&format!("skynet {size} 10 (1 worker, {pair})"), 1, "skynet", &args, &[])?;
        let many_label = format!("skynet {size} 10 ({workers} workers, {pair})");
        let many = cx.run_wisp(&many_label, workers, "skynet", &args, &[])?;
        if let (Some(a), Some(b)) = (ms(&one), ms(&many)) {
            if b > 0.0 {
                ratios.push(a / b);
            }
        }
    }
    Ok(Row {
        bench: format!("skynet {size} 1 vs {workers} workers (median of {pairs} pairs)"),
        metric: "speed-up",
        goal: ">= 1.7",
        wisp: median(ratios).map_or(Cell::Missing("failed".into()), Cell::Value),
        peers: BTreeMap::new(),
    })
}

pub fn run(args: BenchArgs) -> Result<()> {
    let names: Vec<String> =
        if args.names.is_empty() { ALL.iter().map(|s| s.to_string()).collect() } else { args.names.clone() };
    for n in &names {
        if !ALL.contains(&n.as_str()) {
            bail!("unknown benchmark `{n}` (known: {})", ALL.join(" "));
        }
    }
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { DEFAULT_RUNS });
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let root = workspace_root();
    let wisp = match &args.wisp_bin {
        Some(path) => given_wisp(path)?,
        None => build_wisp()?,
    };
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
        if name == "scaling" {
            let row = scaling(&mut cx, scale(1_000_000), workers, runs.max(SCALING_MIN_PAIRS))?;
            sizes.push(row.bench.clone());
            rows.push(row);
            continue;
        }
        for bench in benches(name, scale, workers, args.quick) {
            sizes.push(bench.size.clone());
            rows.extend(measure(&mut cx, &bench, workers, runs)?);
        }
    }

    let table = render(&rows, &cx.whole, cx.peers_sh.is_some());
    println!("\n{table}");
    if !args.no_write {
        let doc = document(&table, workers, runs, &args, &sizes);
        let path = root.join("docs/benchmarks.md");
        std::fs::write(&path, doc).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("xtask: wrote {}", path.display());
    }
    Ok(())
}

/// The binary given with `--wisp-bin`, made absolute, since the runs start in the workspace root
/// rather than where the path was given.
fn given_wisp(path: &Path) -> Result<PathBuf> {
    let bin = path.canonicalize().with_context(|| format!("--wisp-bin {}", path.display()))?;
    if !bin.is_file() {
        bail!("--wisp-bin {}: not a file", path.display());
    }
    eprintln!("xtask: running {} (not building wisp)", bin.display());
    Ok(bin)
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

fn document(table: &str, workers: usize, runs: usize, args: &BenchArgs, sizes: &[String]) -> String {
    let mut d = String::new();
    d.push_str("# Benchmarks\n\n");
    d.push_str("The latest run of `cargo xtask bench`. The Wisp side is the Lua app in `benches/lua` run by the release `wisp` binary\n");
    d.push_str("(`wisp --workers N exec --dir benches/lua bench:<name> ARGS`); the peers are `../shared/peers/run.sh erlang|go` on the same sizes in the same run.\n");
    d.push_str("Per-operation figures are what each program measures around its own loop (Lua: `os.clock()`); ratios are wisp / peer, so below 1 means Wisp is faster or smaller.\n");
    d.push_str("Idle-process memory for Wisp is the growth of the whole `wisp` process's VmRSS between a `BASE` and a `MEASURE` marker, divided by N (sampled by xtask from /proc);\n");
    d.push_str("the peers report their own RSS growth the same way. Absolute times drift on shared machines: compare ratios within one table.\n");
    if runs > 1 {
        let _ = writeln!(
            d,
            "Each figure is the median of {runs} runs per side (for an even count, the mean of the two middle values), run interleaved"
        );
        d.push_str("(wisp, erlang, go, wisp, erlang, go, ...) so that drift of the machine's speed hits all sides alike; failed runs are left out\n");
        d.push_str("of the median, and the whole-process table lists every run.\n");
    } else {
        d.push_str("Each figure is from one run per side.\n");
    }
    d.push_str("What the profiles show behind these figures, and what would close each gap, is in [performance.md](performance.md).\n\n");
    d.push_str("## Machine\n\n");
    let _ = writeln!(d, "- date: {}", command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]));
    let _ = writeln!(d, "- uname: `{}`", command_output("uname", &["-a"]));
    let _ = writeln!(d, "- CPU: {} ({} cores online)", cpu_model(), cores());
    let _ = writeln!(d, "- wisp workers: {workers}");
    if let Some(bin) = &args.wisp_bin {
        let bin = bin.canonicalize().unwrap_or_else(|_| bin.clone());
        let _ = writeln!(d, "- wisp binary: `{}` (given with --wisp-bin, not built from this tree)", bin.display());
    }
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
    if let Some(n) = args.runs {
        let _ = write!(cmd, " --runs {n}");
    }
    if args.quick {
        cmd.push_str(" --quick");
    }
    if let Some(bin) = &args.wisp_bin {
        let _ = write!(cmd, " --wisp-bin {}", bin.display());
    }
    let _ = writeln!(d, "- command: `{cmd}`");
    let _ = writeln!(d, "- sizes: {}", sizes.join("; "));
    d.push_str("\n## Results\n\n");
    d.push_str(table);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn the_document_names_a_given_binary() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: BenchArgs,
        }
        let parse = |argv: &[&str]| <Cli as clap::Parser>::parse_from(argv).args;
        let given = parse(&["bench", "pingpong", "--wisp-bin", "/old/wisp", "--no-write"]);
        assert!(given.no_write);
        let doc = document("", 2, 1, &given, &[]);
        assert!(doc.contains("`cargo xtask bench pingpong --wisp-bin /old/wisp`"), "{doc}");
        assert!(doc.contains("- wisp binary: `/old/wisp`"), "{doc}");
        assert!(!document("", 2, 1, &parse(&["bench"]), &[]).contains("wisp binary"));
    }

    #[test]
    fn median_cell_skips_failures() {
        let failed = Cell::Missing("timeout".into());
        assert_eq!(median_cell(&[failed.clone(), Cell::Value(5.0), Cell::Value(7.0)]).value(), Some(6.0));
        assert_eq!(median_cell(&[failed.clone(), Cell::Missing("failed".into())]).show(), "timeout");
    }
}
