//! The core's ratios to the hashing limit on the everyday workloads, in about ten seconds: a quick check
//! while working on the core (`make bench` gives the full, published run).
//!
//! ```text
//! cargo run --release -p twilio-signature-bench --example ratios [workload ...]
//! ```

use std::hint::black_box;
use std::time::Duration;

use twilio_signature::{Secret, Span, Validator};
use twilio_signature_bench::race::{race, Runner};
use twilio_signature_bench::{everyday, Limit, SECRET};

fn main() {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let validator = Validator::new(Secret::new(SECRET));
    let limit = Limit::new(SECRET);
    println!(
        "workload      one-shot  validator    scratch      limit   validator/limit  one-shot/limit"
    );
    for w in everyday() {
        if !only.is_empty() && !only.contains(&w.name) {
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
            "{:<12} {:>9.0} {:>10.0} {:>10.0} {:>10.0} {:>16.2}x {:>15.2}x",
            w.name,
            ns[0],
            ns[1],
            ns[2],
            ns[3],
            ns[1] / ns[3],
            ns[0] / ns[3]
        );
    }
}
