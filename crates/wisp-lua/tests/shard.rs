//! A shard on its own, against a fake of the `Kernel` it depends on: no runtime, no registry.
//! The fake keeps its own process table, admits every spawn into the one shard under test and
//! reports exits on a channel the test waits on (with a timeout, never a sleep).

use std::collections::{BTreeMap, HashMap};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use wisp_core::{Envelope, ExitResult, HostIndex, Message, Pid, Signal, Value};
use wisp_lua::{Admission, ChunkCache, LuaCode, Shard, ShardConfig, Watchdog, DEFAULT_PREEMPT_TICK};
use wisp_mailbox::Mailbox;
use wisp_process::{
    Console, Dest, Exits, Kernel, NameError, Names, ProcessExit, Router, SendError, SpawnError, SpawnRequest, Spawner,
    TerminalIo, Undelivered,
};
use wisp_scheduler::{Pool, PoolConfig, Timers};

const TIMEOUT: Duration = Duration::from_secs(20);
const HOST: HostIndex = HostIndex(0);

struct FakeKernel {
    shard: OnceLock<Arc<Shard>>,
    code: HashMap<String, Arc<LuaCode>>,
    table: Mutex<HashMap<Pid, Arc<Mailbox<Envelope>>>>,
    next_slot: Mutex<u32>,
    exits: Mutex<mpsc::Sender<(Pid, ExitResult)>>,
    printed: Mutex<Vec<String>>,
}

impl FakeKernel {
    fn start(&self, entry: &str, args: Vec<Value>, links: Vec<Pid>, monitors: Vec<Pid>) -> Result<Pid, SpawnError> {
        let code = self.code.get(entry).ok_or_else(|| SpawnError::UnknownEntry(entry.into()))?.clone();
        let shard = self.shard.get().expect("the shard is set before any spawn");
        let slot = {
            let mut next = self.next_slot.lock().unwrap();
            *next += 1;
            *next
        };
        let pid = Pid::new(HOST, slot, 0);
        let mailbox = shard.new_mailbox();
        self.table.lock().unwrap().insert(pid, mailbox.clone());
        shard.admit(Admission { pid, mailbox, code, args, links, monitors, context: None, actor: None, scope: None });
        Ok(pid)
    }

    fn push(&self, to: Pid, envelope: Envelope) -> Result<(), SendError> {
        let mailbox = self.table.lock().unwrap().get(&to).cloned();
        match mailbox.map(|m| m.push(envelope)) {
            Some(Ok(())) => Ok(()),
            _ => Err(SendError::NoProcess(self.render_pid(to))),
        }
    }

    fn resolve(&self, dest: Dest<'_>) -> Result<Pid, SendError> {
        match dest {
            Dest::Pid(pid) => Ok(pid),
            Dest::Name(name) => Err(SendError::UnknownName(name.into())),
        }
    }
}

impl Router for FakeKernel {
    fn render_pid(&self, pid: Pid) -> String {
        pid.display("fake").to_string()
    }
    fn parse_pid(&self, text: &str) -> Option<Pid> {
        let (host, serial) = Pid::parse_parts(text).ok()?;
        (host == "fake").then(|| Pid::from_serial(HOST, serial))
    }
    fn send(&self, _from: Pid, dest: Dest<'_>, message: Message) -> Result<(), Undelivered> {
        let mailbox = self.resolve(dest).ok().and_then(|to| self.mailbox(to));
        match mailbox {
            Some(mailbox) => mailbox.push(Envelope::Message(message)).map_err(|closed| match closed.0 {
                Envelope::Message(message) => Undelivered { reason: SendError::NoProcess("gone".into()), message },
                _ => unreachable!("the message pushed comes back"),
            }),
            None => Err(Undelivered { reason: SendError::NoProcess("unknown".into()), message }),
        }
    }
    fn signal(&self, from: Pid, dest: Dest<'_>, signal: Signal) -> Result<Pid, SendError> {
        let to = self.resolve(dest)?;
        self.push(to, Envelope::Signal { from, signal })?;
        Ok(to)
    }
    fn deliver(&self, to: Pid, envelope: Envelope) -> bool {
        self.push(to, envelope).is_ok()
    }
    fn mailbox(&self, pid: Pid) -> Option<Arc<Mailbox<Envelope>>> {
        self.table.lock().unwrap().get(&pid).cloned()
    }
}

impl Spawner for FakeKernel {
    fn spawn(&self, request: SpawnRequest<'_>) -> Result<Pid, SpawnError> {
        let links = if request.flags.link { vec![request.parent] } else { Vec::new() };
        let monitors = if request.flags.monitor { vec![request.parent] } else { Vec::new() };
        self.start(request.entry, request.args, links, monitors)
    }
}

impl Exits for FakeKernel {
    fn exited(&self, exit: ProcessExit) {
        self.table.lock().unwrap().remove(&exit.pid);
        for (to, event) in exit.supervision.exit_notices(exit.pid, &exit.result, exit.leftover) {
            let _ = self.push(to, Envelope::Event(event));
        }
        let _ = self.exits.lock().unwrap().send((exit.pid, exit.result));
    }
}

impl Names for FakeKernel {
    fn register_name(&self, _caller: Pid, name: &str, _pid: Pid) -> Result<(), NameError> {
        Err(NameError::Invalid { name: name.into(), reason: "the fake has no names" })
    }
    fn lookup_name(&self, _name: &str) -> Option<Pid> {
        None
    }
    fn unregister_name(&self, _caller: Pid, _name: &str) -> bool {
        false
    }
}

impl Console for FakeKernel {
    fn print(&self, _pid: Pid, line: &str) {
        self.printed.lock().unwrap().push(line.to_owned());
    }
    fn terminal(&self, _pid: Pid) -> Option<Arc<dyn TerminalIo>> {
        None
    }
}

fn code(entry: &str, source: &str) -> (String, Arc<LuaCode>) {
    let code = LuaCode {
        entry: entry.into(),
        chunk_name: format!("{entry}.lua"),
        source: source.into(),
        method: "main".into(),
        modules: vec!["time".into()],
        imports: BTreeMap::new(),
    };
    (entry.to_owned(), Arc::new(code))
}

/// Runs `main` of `sources` on one shard and returns how the first process ended.
fn run(sources: &[(&str, &str)], args: Vec<Value>) -> (ExitResult, Vec<String>) {
    run_with_imports(sources, &[], args)
}

/// Like [`run`], where each `(entry, alias, library)` lets `entry` `require(alias)` the
/// entry `library` of `sources`.
fn run_with_imports(
    sources: &[(&str, &str)],
    imports: &[(&str, &str, &str)],
    args: Vec<Value>,
) -> (ExitResult, Vec<String>) {
    let mut codes: HashMap<String, Arc<LuaCode>> = sources.iter().map(|(e, s)| code(e, s)).collect();
    for (entry, alias, library) in imports {
        let library = codes[*library].clone();
        let mut with_import = LuaCode::clone(&codes[*entry]);
        with_import.imports.insert(alias.to_string(), library);
        codes.insert(entry.to_string(), Arc::new(with_import));
    }
    let pool = Pool::new(PoolConfig { name: "shard-test".into(), workers: 1 });
    let timers = Timers::new();
    let watchdog = Watchdog::start(DEFAULT_PREEMPT_TICK).expect("the watchdog starts");
    let (tx, rx) = mpsc::channel();
    let kernel = Arc::new(FakeKernel {
        shard: OnceLock::new(),
        code: codes,
        table: Mutex::new(HashMap::new()),
        next_slot: Mutex::new(0),
        exits: Mutex::new(tx),
        printed: Mutex::new(Vec::new()),
    });
    let as_kernel: Arc<dyn Kernel> = kernel.clone();
    let shard = Shard::new(
        as_kernel,
        pool.handle(),
        timers.handle(),
        &watchdog.handle(),
        Arc::new(ChunkCache::new()),
        ShardConfig::default(),
    )
    .expect("a shard starts");
    let _ = kernel.shard.set(shard.clone());
    let main = kernel.start("main", args, Vec::new(), Vec::new()).expect("main starts");
    let result = loop {
        let (pid, result) = rx.recv_timeout(TIMEOUT).expect("main ends in time");
        if pid == main {
            break result;
        }
    };
    shard.shutdown();
    pool.shutdown();
    let printed = kernel.printed.lock().unwrap().clone();
    (result, printed)
}

#[test]
fn a_process_spawns_a_child_and_gets_its_answer() {
    let (result, printed) = run(
        &[
            (
                "main",
                r#"return { main = function(n)
                    local child = process.spawn_monitored("doubler", "fake", process.pid())
                    process.send(child, "n", n)
                    local answer = process.inbox():receive()
                    local exit = process.events():receive()
                    assert(exit.kind == process.event.EXIT and exit.from == child)
                    print("answer", answer:payload():data())
                    return answer:payload():data()
                end }"#,
            ),
            (
                "doubler",
                r#"return { main = function(parent)
                    local msg = process.inbox():receive()
                    process.send(parent, "answer", msg:payload():data() * 2)
                end }"#,
            ),
        ],
        vec![Value::Number(21.0)],
    );
    assert_eq!(result, ExitResult::Value(Value::Number(42.0)));
    assert_eq!(printed, vec!["answer\t42".to_string()]);
}

#[test]
fn errors_end_only_their_process_with_file_and_line() {
    let cases = [
        ("return { main = function() error('boom') end }", "main.lua:1: boom"),
        ("return { main = function() local t = {} t:nope() end }", "main.lua:1:"),
        ("return { main = function() return nil, 'refused' end }", "refused"),
        ("return { main = function( end }", "main.lua:1:"),
        ("return { main = function() channel.new():receive() end }", "deadlock"),
    ];
    for (source, fragment) in cases {
        let (result, _) = run(&[("main", source)], Vec::new());
        match result {
            ExitResult::Error(text) => assert!(text.contains(fragment), "{source}: {text}"),
            other => panic!("{source}: expected an error, got {other:?}"),
        }
    }
}

#[test]
fn timers_wake_a_sleeping_process() {
    let (result, _) = run(
        &[(
            "main",
            r#"local time = require("time")
            return { main = function()
                local t0 = os.clock()
                time.sleep("5ms")
                return os.clock() - t0 >= 0.004
            end }"#,
        )],
        Vec::new(),
    );
    assert_eq!(result, ExitResult::Value(Value::Bool(true)));
}

#[test]
fn a_library_required_by_code_that_assigns_no_global_sees_no_other_process_global() {
    let (result, _) = run_with_imports(
        &[
            (
                "main",
                r#"return { main = function()
                    local seen = {}
                    -- A writer, then a reader, each started after the one before ended, so the
                    -- reader runs on the writer's pooled thread.
                    for i = 1, 3 do
                        for _, entry in ipairs({ "writer", "reader" }) do
                            process.spawn_monitored(entry, "fake", process.pid())
                            local exit = process.events():receive()
                            assert(exit.kind == process.event.EXIT, tostring(exit.kind))
                            assert(exit.result.error == nil, tostring(exit.result.error))
                        end
                        seen[i] = process.inbox():receive():payload():data()
                    end
                    return table.concat(seen, ",")
                end }"#,
            ),
            ("writer", r#"return { main = function() leaked_global = "leaked" end }"#),
            (
                "reader",
                r#"return { main = function(parent)
                    process.send(parent, "seen", require("lib").read())
                end }"#,
            ),
            ("lib", r#"return { read = function() return tostring(leaked_global) end }"#),
        ],
        &[("reader", "lib", "lib")],
        Vec::new(),
    );
    assert_eq!(result, ExitResult::Value(Value::str("nil,nil,nil")));
}
