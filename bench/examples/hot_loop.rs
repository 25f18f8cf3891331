//! Verifies one workload in a loop, for profiling the core without criterion around it:
//!
//! ```text
//! cargo build --release -p twilio-signature-bench --example hot_loop
//! perf record --call-graph dwarf target/release/examples/hot_loop sms-20 3
//! perf record target/release/examples/hot_loop sms-20 3 verify   # Validator::verify (stack scratch)
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use twilio_signature::{Secret, Span, Validator};
use twilio_signature_bench::{adversarial, everyday, SECRET};

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "sms-20".to_owned());
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3);
    let stack_scratch = args.next().as_deref() == Some("verify");
    let Some(workload) = everyday()
        .into_iter()
        .chain(adversarial())
        .find(|w| w.name == name)
    else {
        eprintln!("hot_loop: no workload named {name}");
        std::process::exit(2);
    };
    let validator = Validator::new(Secret::new(SECRET));
    let request = workload.request();
    let mut scratch = vec![Span::EMPTY; workload.params.max(1)];
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut runs = 0u64;
    let start = Instant::now();
    while Instant::now() < deadline {
        for _ in 0..1000 {
            let verdict = if stack_scratch {
                validator.verify(black_box(&request))
            } else {
                validator.verify_with_scratch(black_box(&request), &mut scratch)
            };
            assert!(verdict.is_ok());
        }
        runs += 1000;
    }
    let per = start.elapsed().as_secs_f64() / f64::from(u32::try_from(runs).unwrap_or(u32::MAX));
    println!("{name}: {runs} verifications, {:.0} ns each", per * 1e9);
}
