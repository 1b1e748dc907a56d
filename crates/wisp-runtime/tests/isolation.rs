//! Isolation between processes that share a Luau VM, proved by attack programs (the contract:
//! `lua-api.md`, sections "Isolation", "Messages" and "Hosts").
//!
//! # Cases
//!
//! Every `tests/isolation/*.lua` file is a case, read at run time: adding a file adds a case.
//! A case is an ordinary process entry (`return { main = main }`) run on the process host
//! `app:processes` by `process.exec` from `app:main` on the terminal host, with no arguments;
//! the case usually spawns its attackers, victims and neighbours itself, often as other roles of
//! its own file (`process.spawn(process.id(), "app:processes", "<role>", ...)`: its `main`
//! gets the role as its first argument). Programs several cases share (a victim, a spy) live in
//! `tests/isolation/common/`. Each Lua file `x.lua` of either folder is the entry `app:x`,
//! with `modules: [time, ctx, uuid, security]`.
//!
//! Each Lua file `x.lua` of `tests/isolation/common/lib/` is the `library.lua` entry `app:x`,
//! which every entry imports as `x`: `common/lib/harness.lua` holds the helpers most cases use
//! (`local h = require("harness")`: waiting on a channel with a timeout, EXIT events, the common
//! echo process, collecting problems into a verdict). A library is loaded once per process, so
//! its state (the EXIT events seen, the problems found) is each process's own.
//!
//! The case's header says how it must end (`-- expect: ok`, `-- expect error: <fragment>`) and
//! may give lines of the process host's `host:` map or a timeout: the format, and how a case's
//! app is made, are those of the shared harness, `common/cases.rs`.
//!
//! A case checks its own expectations and ends with an error that says what went wrong
//! (attack programs collect every problem they find and report them together).
//!
//! # Layouts
//!
//! Every case runs twice: on a process host of one worker with one shard (every process of the
//! case in one VM), and on a host of two workers with the default four shards per worker, where
//! `place` puts children next to their parent (cases let each child settle before spawning the
//! next, so that the parent's shard has nothing waiting and the child stays with it).
//!
//! # How a case runs
//!
//! The one `#[test]` runs each (case, layout) in a child process: this same test binary, started
//! with `WISP_ISOLATION_CHILD` set, runs that case alone and writes its outcome to a file. A
//! crash of the runtime (SIGSEGV, an abort) thus fails that case only, and is reported with the
//! signal. The child waits for `app:main`'s end with `recv_timeout` (the case's timeout; never a
//! sleep) and exits at once, without shutting the node down (a hung VM could hold its worker
//! forever); the parent kills a child that outlives its timeout by a grace period. A child runs
//! under an address-space limit (`ulimit -v`, 4 GiB), so a runaway copy ends that case with an
//! abort instead of exhausting the machine.
//!
//! Every failure of every case is collected and reported together, with the file names.
//! `WISP_ISOLATION_FILTER=<text>` runs only the cases whose file name contains `<text>` (several
//! texts separated by commas).

mod common;

use std::time::Duration;

use common::cases::{Layout, Suite, TWO_WORKERS};
use common::child::{describe_status, output_within, tail, test_binary_child};

const SUITE: Suite =
    Suite { folder: "isolation", default_timeout: Duration::from_secs(30), filter_env: "WISP_ISOLATION_FILTER" };
/// Set in a child: `<layout index>\t<case name>\t<outcome file>`.
const CHILD_ENV: &str = "WISP_ISOLATION_CHILD";
/// This test's name, which a child is started with.
const TEST_NAME: &str = "isolation_cases";
/// How long past its case's timeout a child may take to report before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(30);
/// The address space a child may use (`ulimit -v`, KiB).
const CHILD_MEMORY_KIB: u64 = 4 << 20;

const LAYOUTS: &[Layout] = &[Layout { name: "1 worker, 1 shard", workers: 1, shards_per_worker: Some(1) }, TWO_WORKERS];

#[test]
fn isolation_cases() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        run_child(&spec);
    }
    let (cases, mut failures) = SUITE.cases(true);
    assert!(!cases.is_empty() || !failures.is_empty(), "no isolation case selected in {}", SUITE.dir().display());
    for (index, layout) in LAYOUTS.iter().enumerate() {
        for case in &cases {
            let outcome = run_in_child(index, &case.name, case.timeout);
            SUITE.progress(case, layout, &outcome);
            if let Err(e) = outcome {
                failures.push(format!("{} [{}]: {e}", case.name, layout.name));
            }
        }
    }
    SUITE.report(cases.len(), LAYOUTS.len(), &failures);
}

/// Runs one case in a child process (see the module's docs); `Err` says why it failed.
fn run_in_child(layout: usize, case: &str, timeout: Duration) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("no scratch folder: {e}"))?;
    let outcome_path = scratch.path().join("outcome");
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
    let mut command = test_binary_child(&exe, TEST_NAME, CHILD_MEMORY_KIB);
    command.env(CHILD_ENV, format!("{layout}\t{case}\t{}", outcome_path.display()));
    let output = output_within(command, timeout + CHILD_GRACE)?;
    match std::fs::read_to_string(&outcome_path) {
        Ok(text) if text == "PASS" => Ok(()),
        Ok(text) => Err(text.strip_prefix("FAIL\n").unwrap_or(&text).to_owned()),
        Err(_) => Err(format!(
            "the child ended with {} before reporting{}",
            describe_status(&output.status).0,
            tail("stderr", &String::from_utf8_lossy(&output.stderr), 12)
        )),
    }
}

/// In a child: runs the case `spec` names, writes its outcome and exits.
fn run_child(spec: &str) -> ! {
    let mut parts = spec.split('\t');
    let (Some(layout), Some(name), Some(outcome_path)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad {CHILD_ENV}: {spec:?}");
    };
    let layout = &LAYOUTS[layout.parse::<usize>().expect("a layout index")];
    // The node is left running when the case ends: the process exits next, and shutting it down
    // would join workers a stuck VM may hold forever.
    let outcome = SUITE.case(name).and_then(|case| SUITE.run(&case, layout, false, |b| b).verdict(&case));
    let text = match outcome {
        Ok(()) => "PASS".to_owned(),
        Err(e) => format!("FAIL\n{e}"),
    };
    std::fs::write(outcome_path, text).expect("the outcome file is writable");
    // No shutdown: a VM stuck in a loop would hold its worker, and joining it would hang.
    std::process::exit(0);
}
