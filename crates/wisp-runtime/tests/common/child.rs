//! Reports on a test's child process (a test binary re-run to hold one case, so that a crash of
//! the runtime fails that case, not the harness).

use std::process::ExitStatus;

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
