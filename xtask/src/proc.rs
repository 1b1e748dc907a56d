//! Running a child process with a timeout while watching its output and memory.
//!
//! Peak RSS comes from polling `VmHWM` in /proc/<pid>/status (the kernel's own high-water mark,
//! so a poll only has to land once after the peak, not at it); the last poll before the child
//! exits is what we report. The child is run directly (not under /usr/bin/time) so that it can
//! be killed on timeout and its `VmRSS` sampled at marker lines.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// What a finished (or killed) run looked like.
#[derive(Debug, Default)]
pub struct Run {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub wall: Duration,
    /// Peak resident set, KiB.
    pub peak_kb: Option<u64>,
    pub stdout: Vec<String>,
    pub stderr: String,
    /// `VmRSS` (KiB) sampled when each marker line was printed, in order.
    pub marks: Vec<(String, u64)>,
}

impl Run {
    pub fn ok(&self) -> bool {
        !self.timed_out && self.status.map(|s| s.success()).unwrap_or(false)
    }

    /// A one-line description of a failure.
    pub fn failure(&self) -> String {
        if self.timed_out {
            return format!("timed out after {:.0} s", self.wall.as_secs_f64());
        }
        let tail: Vec<&str> = self.stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("exit {}: {}", self.status.map(|s| s.to_string()).unwrap_or_else(|| "?".into()), tail.join(" | "))
    }

    /// The first stdout line starting with `prefix`.
    pub fn line(&self, prefix: &str) -> Option<&str> {
        self.stdout.iter().map(String::as_str).find(|l| l.starts_with(prefix))
    }
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l[field.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Runs `program args` in `dir`, killing it after `timeout`. Lines equal to one of `markers`
/// get the child's `VmRSS` recorded. With `echo`, stdout lines are echoed as they come.
pub fn run(
    program: &Path,
    args: &[String],
    dir: &Path,
    timeout: Duration,
    markers: &[&str],
    echo: bool,
) -> Result<Run> {
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().context("child stdout")?;
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr_pipe = child.stderr.take().context("child stderr")?;
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let mut run = Run::default();
    let take_line = |run: &mut Run, line: String| {
        if echo {
            println!("    | {line}");
        }
        if markers.contains(&line.trim()) {
            if let Some(rss) = status_field(pid, "VmRSS:") {
                run.marks.push((line.trim().to_string(), rss));
            }
        }
        run.stdout.push(line);
    };
    loop {
        if let Some(hwm) = status_field(pid, "VmHWM:") {
            run.peak_kb = Some(run.peak_kb.unwrap_or(0).max(hwm));
        }
        if let Some(status) = child.try_wait()? {
            run.status = Some(status);
            break;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            run.status = child.wait().ok();
            run.timed_out = true;
            break;
        }
        match rx.recv_timeout(Duration::from_millis(5)) {
            Ok(line) => take_line(&mut run, line),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(2)),
        }
    }
    run.wall = start.elapsed();
    let _ = reader.join();
    while let Ok(line) = rx.try_recv() {
        take_line(&mut run, line);
    }
    run.stderr = err_reader.join().unwrap_or_default();
    Ok(run)
}

/// Parses `key=value` pairs of a `RESULT name k=v ...` line.
pub fn result_field(line: &str, key: &str) -> Option<f64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// Output of a short command, trimmed (empty on failure).
pub fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
