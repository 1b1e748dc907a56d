//! Criterion benches of the runtime's hot paths: mailbox push/pop, scheduler hand-off, payload
//! copies between Lua and `Value`, and spawn + send/receive through a `Node`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wisp_core::{Envelope, ExitResult, Key, Message, Table, Value};
use wisp_mailbox::{Mailbox, Wake};
use wisp_runtime::{Context, Node, Process, Step};
use wisp_scheduler::{Handle, Pool, PoolConfig, Task};

fn quick<'a>(c: &'a mut Criterion, name: &str) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    g
}

// ---------- mailbox ----------

struct NoWake;
impl Wake for NoWake {
    fn wake(&self, _token: u32) {}
}

fn message(n: f64) -> Envelope {
    Envelope::Message(Message { from: None, topic: "m".into(), payloads: vec![Value::Number(n)].into() })
}

fn mailbox(c: &mut Criterion) {
    let mut g = quick(c, "mailbox");
    g.throughput(Throughput::Elements(1));
    let mb: Mailbox<Envelope> = Mailbox::new(Arc::new(NoWake), 0);
    g.bench_function("push+pop", |b| {
        b.iter(|| {
            let _ = mb.push(message(1.0));
            std::hint::black_box(mb.pop())
        })
    });
    g.bench_function("push+pop waiting (wake hook)", |b| {
        b.iter(|| {
            mb.prepare_wait();
            let _ = mb.push(message(1.0));
            std::hint::black_box(mb.pop())
        })
    });
    const BATCH: u64 = 1000;
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("push 1000 then drain", |b| {
        let mut out = std::collections::VecDeque::new();
        b.iter(|| {
            for i in 0..BATCH {
                let _ = mb.push(message(i as f64));
            }
            out.clear();
            std::hint::black_box(mb.drain_into(&mut out))
        })
    });
    g.finish();
}

// ---------- scheduler ----------

/// Re-schedules itself until `left` reaches zero, then signals `done`.
struct Hopper {
    left: AtomicU64,
    handle: Handle,
    done: Mutex<Option<mpsc::Sender<()>>>,
}

impl Task for Hopper {
    fn run(self: Arc<Self>) {
        if self.left.fetch_sub(1, Ordering::AcqRel) > 1 {
            let h = self.handle.clone();
            h.schedule(self);
        } else if let Some(tx) = self.done.lock().ok().and_then(|mut d| d.take()) {
            let _ = tx.send(());
        }
    }
}

/// Signals once per run.
struct Pinger {
    tx: Mutex<mpsc::Sender<()>>,
}

impl Task for Pinger {
    fn run(self: Arc<Self>) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(());
        }
    }
}

fn scheduler(c: &mut Criterion) {
    let mut g = quick(c, "scheduler");
    for workers in [1usize, 2] {
        let pool = Pool::new(PoolConfig { name: format!("bench{workers}"), workers });
        let handle = pool.handle();
        const HOPS: u64 = 10_000;
        g.throughput(Throughput::Elements(HOPS));
        g.bench_function(format!("self re-schedule x{HOPS}, {workers} workers"), |b| {
            b.iter(|| {
                let (tx, rx) = mpsc::channel();
                let task =
                    Arc::new(Hopper { left: AtomicU64::new(HOPS), handle: handle.clone(), done: Mutex::new(Some(tx)) });
                handle.schedule(task);
                rx.recv().expect("hopper finished")
            })
        });
        g.throughput(Throughput::Elements(1));
        let (tx, rx) = mpsc::channel();
        let pinger = Arc::new(Pinger { tx: Mutex::new(tx) });
        g.bench_function(format!("schedule from outside + run, {workers} workers"), |b| {
            b.iter(|| {
                handle.schedule(pinger.clone());
                rx.recv().expect("pinger ran")
            })
        });
        drop(pinger);
        pool.shutdown();
    }
    g.finish();
}

// ---------- Value copies ----------

fn small_value() -> Value {
    Value::Table(Box::new(Table {
        array: vec![Value::Number(1.0), Value::str("hello"), Value::Bool(true)],
        map: vec![(Key::Str(b"id".to_vec().into()), Value::Number(42.0))],
    }))
}

fn nested_value(depth: usize) -> Value {
    let mut t = Table::default();
    for i in 0..8 {
        t.array.push(Value::Number(i as f64));
    }
    for k in ["name", "kind", "path"] {
        t.map.push((Key::Str(k.as_bytes().to_vec().into()), Value::str(format!("value of {k}"))));
    }
    if depth > 0 {
        t.map.push((Key::Str(b"left".to_vec().into()), nested_value(depth - 1)));
        t.map.push((Key::Str(b"right".to_vec().into()), nested_value(depth - 1)));
    }
    Value::Table(Box::new(t))
}

fn value_copy(c: &mut Criterion) {
    let mut g = quick(c, "value copy");
    let lua = mlua::Lua::new();
    for (name, value) in [
        ("number", Value::Number(7.0)),
        ("string 32B", Value::str("x".repeat(32))),
        ("small table", small_value()),
        ("nested table (depth 4, 31 tables)", nested_value(4)),
    ] {
        let lv = wisp_lua::value_to_lua(&lua, &value).expect("to lua");
        g.bench_function(format!("lua->value {name}"), |b| {
            b.iter(|| wisp_lua::lua_to_value(&lua, std::hint::black_box(&lv)).expect("copy"))
        });
        g.bench_function(format!("value->lua {name}"), |b| {
            b.iter(|| wisp_lua::value_to_lua(&lua, std::hint::black_box(&value)).expect("copy"))
        });
    }
    g.finish();
}

// ---------- Node: spawn + send/receive ----------

/// Ends with the payload of the first message it gets.
struct Once;
impl Process for Once {
    fn handle(&mut self, _cx: &mut Context<'_>, envelope: Envelope) -> Step {
        match envelope {
            Envelope::Message(m) => Step::Done(ExitResult::Value(m.payloads.into_iter().next().unwrap_or_default())),
            _ => Step::Wait,
        }
    }
}

fn lua_app_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("lua")
}

fn node(c: &mut Criterion) {
    let mut g = quick(c, "node");
    let built = Node::builder()
        .registry_dir(&lua_app_dir())
        .map(|b| b.default_workers(2).native("native:once", |_| Box::new(Once)).build());
    let node = match built {
        Ok(Ok(node)) => node,
        Ok(Err(e)) => panic!("building the node: {e}"),
        Err(e) => panic!("loading {}: {e:?}", lua_app_dir().display()),
    };
    let host = "bench:processes";
    g.throughput(Throughput::Elements(1));
    g.bench_function("native spawn + send + exit", |b| {
        b.iter(|| {
            let (pid, done) = node.spawn_watched("native:once", host, vec![]).expect("spawn");
            node.send(pid, "go", vec![Value::Number(1.0)]).expect("send");
            done.recv().expect("exit")
        })
    });
    g.bench_function("lua spawn + send + exit (bench:idle)", |b| {
        b.iter(|| {
            let (pid, done) = node.spawn_watched("bench:idle", host, vec![]).expect("spawn");
            node.send(pid, "stop", vec![]).expect("send");
            done.recv().expect("exit")
        })
    });
    // Send + receive between two Lua processes: the whole exec (spawn of the player and its
    // ponger, RT round trips, both exits), per round trip. A ponger the player spawns is placed
    // on the player's shard; one spawned from outside before the player goes to the shard before
    // the player's in turn, so every message crosses shards (and, as the workers take them,
    // often workers).
    const RT: u64 = 2000;
    g.throughput(Throughput::Elements(RT));
    g.bench_function(format!("lua pingpong x{RT}, one shard (whole exec)"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let r = node
                    .exec("bench:pingpong", host, vec![Value::str(RT.to_string())], Duration::from_secs(60))
                    .expect("exec");
                assert!(matches!(r, Some(ExitResult::Value(_))), "pingpong ended with {r:?}");
            }
            start.elapsed()
        })
    });
    g.bench_function(format!("lua pingpong x{RT}, across shards (whole exec)"), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let pong = node.spawn("bench:pong_detached", host, vec![]).expect("spawn");
                let args = vec![Value::str(node.render_pid(pong)), Value::str(RT.to_string())];
                let r = node.exec("bench:pingpong_against", host, args, Duration::from_secs(60)).expect("exec");
                assert!(matches!(r, Some(ExitResult::Value(_))), "pingpong ended with {r:?}");
            }
            start.elapsed()
        })
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("lua spawn x100 idle then stop (batched)", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut waits = Vec::with_capacity(100);
                for _ in 0..100 {
                    let (pid, done) = node.spawn_watched("bench:idle", host, vec![]).expect("spawn");
                    waits.push((pid, done));
                }
                for (pid, _) in &waits {
                    node.send(*pid, "stop", vec![]).expect("send");
                }
                for (_, done) in waits {
                    done.recv().expect("exit");
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    node.shutdown();
}

criterion_group!(benches, mailbox, scheduler, value_copy, node);
criterion_main!(benches);
