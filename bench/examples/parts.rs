use std::hint::black_box;
use std::time::Instant;
use twilio_signature::Span;
fn main() {
    let sort = std::env::args().nth(1).as_deref() == Some("sort");
    let body = twilio_signature_bench::SMS_BODY.trim_end().as_bytes();
    let mut scratch = [Span::EMPTY; 65];
    for round in 0..3 {
        let n = 2_000_000;
        let t = Instant::now();
        for _ in 0..n {
            black_box(twilio_signature::__bench_index(
                black_box(body),
                &mut scratch[..if sort { 64 } else { 65 }],
                sort,
            ));
        }
        println!(
            "round {round} sort={sort}: {:.1} ns",
            t.elapsed().as_nanos() as f64 / n as f64
        );
    }
}
