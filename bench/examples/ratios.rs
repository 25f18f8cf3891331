//! The core's ratios to the hashing limit, everyday and adversarial workloads, in well under a minute: a
//! quick check while working on the core (`make bench` gives the full, published run). Times are medians
//! of interleaved rounds (`race`), printed with their unit; each ratio comes from one race, so both sides
//! saw the same machine.
//!
//! ```text
//! cargo run --release -p twilio-signature-bench --example ratios [workload ...]
//! ```

use std::hint::black_box;
use std::time::Duration;

use twilio_signature::{Secret, Span, Validator};
use twilio_signature_bench::race::{race, Runner};
use twilio_signature_bench::{adversarial, everyday, Limit, SECRET};

/// `ns` nanoseconds with a unit: ns, µs, ms or s.
fn time(ns: f64) -> String {
    match ns {
        ns if ns < 1e3 => format!("{ns:.0} ns"),
        ns if ns < 1e6 => format!("{:.2} µs", ns / 1e3),
        ns if ns < 1e9 => format!("{:.2} ms", ns / 1e6),
        ns => format!("{:.2} s", ns / 1e9),
    }
}

fn main() {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let validator = Validator::new(Secret::new(SECRET));
    let limit = Limit::new(SECRET);
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10} {:>16} {:>15}",
        "workload",
        "one-shot",
        "validator",
        "scratch",
        "limit",
        "validator/limit",
        "one-shot/limit"
    );
    for w in everyday() {
        if !wanted(&w.name) {
            continue;
        }
        let request = w.request();
        let mut scratch = vec![Span::EMPTY; w.params.max(1)];
        let mut runners = vec![
            Runner::new("one-shot", || {
                assert!(twilio_signature::verify(SECRET, black_box(&request)).is_ok());
            }),
            Runner::new("validator", || {
                assert!(validator.verify(black_box(&request)).is_ok());
            }),
            Runner::new("scratch", || {
                let verdict = validator.verify_with_scratch(black_box(&request), &mut scratch);
                assert!(verdict.is_ok());
            }),
            Runner::new("limit", || {
                black_box(limit.run(black_box(&w)));
            }),
        ];
        let ns = race(&mut runners, 15, Duration::from_millis(3));
        println!(
            "{:<22} {:>10} {:>10} {:>10} {:>10} {:>15.2}x {:>14.2}x",
            w.name,
            time(ns[0]),
            time(ns[1]),
            time(ns[2]),
            time(ns[3]),
            ns[1] / ns[3],
            ns[0] / ns[3]
        );
    }
    println!();
    println!(
        "{:<22} {:>10} {:>10} {:>16}",
        "adversarial", "scratch", "limit", "scratch/limit"
    );
    for w in adversarial() {
        if !wanted(&w.name) {
            continue;
        }
        let request = w.request();
        let mut scratch = vec![Span::EMPTY; w.params.max(1)];
        let mut runners = vec![
            Runner::new("scratch", || {
                let verdict = validator.verify_with_scratch(black_box(&request), &mut scratch);
                assert!(verdict.is_ok());
            }),
            Runner::new("limit", || {
                black_box(limit.run(black_box(&w)));
            }),
        ];
        let ns = race(&mut runners, 9, Duration::from_millis(40));
        println!(
            "{:<22} {:>10} {:>10} {:>15.2}x",
            w.name,
            time(ns[0]),
            time(ns[1]),
            ns[0] / ns[1]
        );
    }
}
