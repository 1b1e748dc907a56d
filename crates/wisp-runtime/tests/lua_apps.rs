//! What a Lua program sees, tested by Lua programs run on the runtime.
//!
//! Every case is a Lua file `tests/lua_apps/<case>.lua`, or a folder `tests/lua_apps/<case>/`
//! holding `case.lua` and the programs only it uses, named after what it checks and read at run
//! time: adding a file adds a case. Its header comment gives its expected outcome (a value,
//! `ok`, or fragments of an error) and may give its arguments, its timeout, or `-- on: terminal`
//! for a case that is the app's entry itself (started on the terminal host, as `wisp exec`
//! does); the format, and how a case's app is made, are those of the shared harness,
//! `common/cases.rs`. The small helper programs of `tests/lua_apps/common/` (`pong`, `returns`,
//! `fails`, `sleeper`, `busy`, `helpers`) are part of every app; `app:processes` is a process host
//! with two workers and the default shards.
//!
//! Lua checks its own expectations with `assert` and returns a value; the harness checks the
//! value or the fragments of the error. Nothing sleeps: the harness waits on the exit with a
//! generous timeout. `lua_app_cases` runs every case in this process, as many at once as
//! libtest runs tests, and reports every failure together, by case name;
//! `WISP_LUA_APPS_FILTER=<text>` runs only the cases whose name contains `<text>` (several texts
//! separated by commas). The cases marked `-- setup: rust` need Rust-side setup and have a
//! `#[test]` of their name here.

mod common;

use std::time::Duration;

use common::cases::{describe_result, Suite, TWO_WORKERS};
use wisp_core::{Envelope, ExitResult, Table, Value};
use wisp_runtime::{Context, Process, Step};

const SUITE: Suite =
    Suite { folder: "lua_apps", default_timeout: Duration::from_secs(60), filter_env: "WISP_LUA_APPS_FILTER" };

#[test]
fn lua_app_cases() {
    SUITE.run_all(&TWO_WORKERS);
}

/// Answers `ping` with `pong` and the same payloads; ends on `stop` with the number of pings.
struct Echo {
    pings: u32,
}

impl Process for Echo {
    fn handle(&mut self, cx: &mut Context<'_>, envelope: Envelope) -> Step {
        match envelope {
            Envelope::Message(msg) => match &*msg.topic {
                "ping" => {
                    self.pings += 1;
                    if let Some(from) = msg.from {
                        let _ = cx.send(from, "pong", msg.payloads);
                    }
                    Step::Wait
                }
                "stop" => Step::Done(ExitResult::Value(Value::Number(self.pings as f64))),
                other => Step::Done(ExitResult::Error(format!("echo: unexpected topic {other}"))),
            },
            _ => Step::Wait,
        }
    }
}

#[test]
fn native_rust_process_answers_lua() {
    let case = SUITE.load("native_rust_process_answers_lua.lua");
    SUITE.run_checked(&case, |b| b.native("app:echo", |_args| Box::new(Echo { pings: 0 })));
}

/// Runs the case's `case.lua` (`app:case`) once per bad program of its folder with the
/// program's entry and the fragments its EXIT error must contain.
#[test]
fn bad_lua_ends_only_its_process_with_file_and_line() {
    let case = SUITE.load("bad_lua_ends_only_its_process_with_file_and_line/");
    let bad: &[(&str, &[&str])] = &[
        ("app:syntax_err", &["syntax_err.lua:3"]),
        ("app:runtime_err", &["runtime_err.lua:2", "boom"]),
        ("app:missing_method", &["missing_method.lua:3", "nope"]),
        ("app:returns_nil_err", &["bad"]),
    ];
    let mut failures = Vec::new();
    for (entry, fragments) in bad {
        let list = Table { array: fragments.iter().map(Value::str).collect(), map: Vec::new() };
        let case = common::cases::Case { args: vec![Value::str(entry), Value::Table(Box::new(list))], ..case.clone() };
        let run = SUITE.run(&case, &TWO_WORKERS, true, |b| b);
        match (run.verdict(&case), &run.result) {
            (Ok(()), Some(result)) => eprintln!("{entry}: {}", describe_result(result)),
            (verdict, _) => failures.push(format!("{entry}: {}", verdict.err().unwrap_or_default())),
        }
    }
    assert!(failures.is_empty(), "failing bad-Lua cases:\n{}", failures.join("\n"));
}
