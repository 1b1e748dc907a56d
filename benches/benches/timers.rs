//! Criterion benches of the timer service with many timers pending: arming + cancelling and
//! cancelling alone through a `TimerHandle`, and the timing wheel firing a batch of due timers
//! (driven on a manual clock, no thread) while the others stay pending. Every figure should
//! stay flat from 10k to 1M pending timers.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use wisp_scheduler::timer::Wheel;
use wisp_scheduler::{TimerHandle, Timers};

const PENDING: [u64; 3] = [10_000, 100_000, 1_000_000];
const HOUR_MS: u64 = 3_600_000;

type Callback = Box<dyn FnOnce() + Send>;

/// Long delays, from one hour to about two months, spread so the pending timers occupy many
/// slots of several levels and none fires during a run.
fn long_delay_ms(i: u64) -> u64 {
    // A multiplicative hash: no arithmetic pattern for the structure under test to favour.
    HOUR_MS + (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24) % (60 * 24 * HOUR_MS)
}

fn noop() -> Callback {
    Box::new(|| {})
}

fn with_pending(n: u64) -> (Timers, TimerHandle) {
    let timers = Timers::new();
    let handle = timers.handle();
    for i in 0..n {
        handle.after(Duration::from_millis(long_delay_ms(i)), noop());
    }
    (timers, handle)
}

fn arm_cancel(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers/arm_cancel");
    g.throughput(Throughput::Elements(1));
    for n in PENDING {
        let (timers, handle) = with_pending(n);
        let mut i = n;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                i += 1;
                let id = handle.after(Duration::from_millis(long_delay_ms(i)), noop());
                black_box(handle.cancel(id))
            })
        });
        assert_eq!(handle.pending() as u64, n);
        drop(timers);
    }
}

fn cancel(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers/cancel");
    g.throughput(Throughput::Elements(1));
    for n in PENDING {
        let (timers, handle) = with_pending(n);
        let mut i = n;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || {
                    i += 1;
                    handle.after(Duration::from_millis(long_delay_ms(i)), noop())
                },
                |id| handle.cancel(id),
                // Small batches: the timers armed ahead barely add to the `n` pending.
                BatchSize::NumIterations(256),
            )
        });
        assert_eq!(handle.pending() as u64, n);
        drop(timers);
    }
}

fn expire(c: &mut Criterion) {
    const BATCH: u64 = 1000;
    // Wheel time per iteration: the batch's deadlines are spread over it. Small enough that a
    // run never reaches the hour-long timers.
    const STEP_NS: u64 = 1_000_000;
    let mut g = c.benchmark_group("timers/expire");
    g.throughput(Throughput::Elements(BATCH));
    for n in PENDING {
        let mut wheel: Wheel<Callback> = Wheel::new();
        for i in 0..n {
            wheel.insert(Some(long_delay_ms(i) * 1_000_000), noop());
        }
        let mut now = 0;
        let mut due = Vec::with_capacity(BATCH as usize);
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    for k in 0..BATCH {
                        wheel.insert(Some(now + 1 + k * STEP_NS / BATCH), noop());
                    }
                    now += STEP_NS;
                    let start = Instant::now();
                    wheel.advance_to(now, &mut due);
                    spent += start.elapsed();
                    assert_eq!(due.len() as u64, BATCH, "a long timer fired");
                    due.clear();
                }
                spent
            })
        });
        assert_eq!(wheel.len() as u64, n);
    }
}

criterion_group!(benches, arm_cancel, cancel, expire);
criterion_main!(benches);
