//! Criterion benches of the core against the hashing limit, plus heap allocations per verify.
//!
//! Groups: `verify/<workload>` (one-shot, reusable validator, validator with a reused scratch buffer, and
//! the limit), `adversarial/<workload>` (validator with scratch, limit) and `scaling/params` (per-param
//! cost from 10 to 100 000 params). `bench/run.py` reads criterion's estimates to build the table.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use twilio_signature::{Secret, Span, Validator};
use twilio_signature_bench::race::{race, Runner};
use twilio_signature_bench::{adversarial, everyday, params, Limit, Workload, SECRET};

/// Counts every allocation the process makes, so the verify path can be shown to make none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; the counter is a relaxed atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `realloc`'s contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per call of `f`, averaged over `runs` calls.
fn allocations_per_call(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..runs {
        f();
    }
    let total = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let as_f64 = |n: usize| f64::from(u32::try_from(n).unwrap_or(u32::MAX));
    as_f64(total) / as_f64(runs)
}

/// Prints `ALLOCS <workload> one-shot=<n> validator=<n>` for `run.py`, before any timing.
fn report_allocations(workloads: &[Workload]) {
    let validator = Validator::new(Secret::new(SECRET));
    for w in workloads {
        let mut scratch = vec![Span::EMPTY; w.params.max(1)];
        let request = w.request();
        let validator_allocs = allocations_per_call(20, || {
            assert!(validator
                .verify_with_scratch(black_box(&request), &mut scratch)
                .is_ok());
        });
        let one_shot = if w.params <= twilio_signature::DEFAULT_MAX_PARAMS {
            let n = allocations_per_call(20, || {
                assert!(twilio_signature::verify(SECRET, black_box(&request)).is_ok());
            });
            format!("{n}")
        } else {
            "n/a".to_owned()
        };
        println!(
            "ALLOCS {} one-shot={one_shot} validator={validator_allocs}",
            w.name
        );
    }
}

/// Interleaved rounds (see `race`): prints `RACE <group> <contender> <median ns>` for `run.py`, whose
/// ratios come from these lines because both sides of each ratio share the same machine conditions.
fn report_races(everyday: &[Workload], adversarial: &[Workload]) {
    let validator = Validator::new(Secret::new(SECRET));
    let limit = Limit::new(SECRET);
    let print = |group: &str, runners: &[Runner<'_>], medians: &[f64]| {
        for (runner, ns) in runners.iter().zip(medians) {
            println!("RACE {group} {} {ns:.1}", runner.name);
        }
    };
    for (workloads, prefix, rounds) in [(everyday, "verify", 21), (adversarial, "adversarial", 7)] {
        for w in workloads {
            let request = w.request();
            let mut scratch = vec![Span::EMPTY; w.params.max(1)];
            let mut runners = Vec::new();
            if w.params <= twilio_signature::DEFAULT_MAX_PARAMS {
                runners.push(Runner::new("one-shot", || {
                    assert!(twilio_signature::verify(SECRET, black_box(&request)).is_ok());
                }));
                runners.push(Runner::new("validator", || {
                    assert!(validator.verify(black_box(&request)).is_ok());
                }));
            }
            runners.push(Runner::new("validator-scratch", || {
                let verdict = validator.verify_with_scratch(black_box(&request), &mut scratch);
                assert!(verdict.is_ok());
            }));
            runners.push(Runner::new("limit", || {
                black_box(limit.run(black_box(w)));
            }));
            let medians = race(&mut runners, rounds, Duration::from_millis(3));
            print(&format!("{prefix}/{}", w.name), &runners, &medians);
        }
    }
    let sized: Vec<Workload> = [10, 100, 1_000, 10_000, 100_000].map(params).into();
    let mut scratches: Vec<Vec<Span>> = sized.iter().map(|w| vec![Span::EMPTY; w.params]).collect();
    let mut runners: Vec<Runner<'_>> = sized
        .iter()
        .zip(scratches.iter_mut())
        .map(|(w, scratch)| {
            let request = w.request();
            let validator = &validator;
            Runner::new(format!("params/{}", w.params), move || {
                assert!(validator
                    .verify_with_scratch(black_box(&request), scratch)
                    .is_ok());
            })
        })
        .collect();
    let medians = race(&mut runners, 7, Duration::from_millis(20));
    print("scaling", &runners, &medians);
}

fn everyday_benches(c: &mut Criterion) {
    let validator = Validator::new(Secret::new(SECRET));
    let limit = Limit::new(SECRET);
    for w in everyday() {
        let mut group = c.benchmark_group(format!("verify/{}", w.name));
        group.throughput(Throughput::Bytes(w.body.len() as u64));
        let request = w.request();
        group.bench_function("one-shot", |b| {
            b.iter(|| twilio_signature::verify(SECRET, black_box(&request)));
        });
        group.bench_function("validator", |b| {
            b.iter(|| validator.verify(black_box(&request)));
        });
        let mut scratch = vec![Span::EMPTY; w.params.max(1)];
        group.bench_function("validator-scratch", |b| {
            b.iter(|| validator.verify_with_scratch(black_box(&request), &mut scratch));
        });
        group.bench_function("limit", |b| b.iter(|| limit.run(black_box(&w))));
        group.finish();
    }
}

fn adversarial_benches(c: &mut Criterion) {
    let validator = Validator::new(Secret::new(SECRET));
    let limit = Limit::new(SECRET);
    for w in adversarial() {
        let mut group = c.benchmark_group(format!("adversarial/{}", w.name));
        group.sample_size(10);
        group.throughput(Throughput::Bytes(w.body.len() as u64));
        let request = w.request();
        let mut scratch = vec![Span::EMPTY; w.params.max(1)];
        group.bench_function("validator-scratch", |b| {
            b.iter(|| validator.verify_with_scratch(black_box(&request), &mut scratch));
        });
        group.bench_function("limit", |b| b.iter(|| limit.run(black_box(&w))));
        group.finish();
    }
}

/// Per-parameter time from 10 to 100 000 params: flat (up to log n) means O(n log n).
fn scaling_benches(c: &mut Criterion) {
    let validator = Validator::new(Secret::new(SECRET));
    let mut group = c.benchmark_group("scaling");
    group.sample_size(10);
    for n in [10, 100, 1_000, 10_000, 100_000] {
        let w = params(n);
        let request = w.request();
        let mut scratch = vec![Span::EMPTY; n];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("params", n), &n, |b, _| {
            b.iter(|| validator.verify_with_scratch(black_box(&request), &mut scratch));
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = everyday_benches, adversarial_benches, scaling_benches
}

fn main() {
    // `cargo test --benches` and `--list` runs should stay quiet and quick.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--list") {
        let (everyday, adversarial) = (everyday(), adversarial());
        report_allocations(&everyday);
        report_allocations(&adversarial);
        report_races(&everyday, &adversarial);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
