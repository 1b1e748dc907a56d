//! Reports on a test's child process (a test binary re-run to hold one case, so that a crash of
//! the runtime fails that case, not the harness).

use std::path::Path;
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// This test binary started again to run the test `test` alone (what it does there is up to the
/// environment the caller adds), under an address-space limit of `memory_kib` where there is
/// `ulimit`, with its output piped.
pub fn test_binary_child(exe: &Path, test: &str, memory_kib: u64) -> Command {
    let mut command = if cfg!(unix) {
        let mut sh = Command::new("/bin/sh");
        sh.arg("-c").arg(format!("ulimit -v {memory_kib} && exec \"$0\" \"$@\"")).arg(exe);
        sh
    } else {
        Command::new(exe)
    };
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` to its end, waiting at most `limit` (never a sleep): a child past it is killed
/// and the answer says so.
pub fn output_within(mut command: Command, limit: Duration) -> Result<Output, String> {
    let child = command.spawn().map_err(|e| format!("cannot start the child: {e}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(format!("waiting for the child failed: {e}")),
        Err(_) => {
            // Our own child, by its id.
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            let _ = rx.recv();
            Err(format!("the child did not end within {limit:?}; killed"))
        }
    }
}

/// How a child ended, and whether that was a failure: killed by a signal (a crash of the
/// runtime) or a failing status.
pub fn describe_status(status: &ExitStatus) -> (String, bool) {
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
            return (format!("signal {signal} ({name}): the runtime crashed"), true);
        }
    }
    (status.to_string(), !status.success())
}

/// The last `lines` non-blank lines of a child's output `what`, for a report.
pub fn tail(what: &str, text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if all.is_empty() {
        return String::new();
    }
    let start = all.len().saturating_sub(lines);
    format!("\nlast lines of its {what}:\n    {}", all[start..].join("\n    "))
}
