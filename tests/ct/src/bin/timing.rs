//! A dudect-style timing test (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", 2017):
//! two classes of inputs are interleaved at random, each call is timed, and Welch's t-test compares the
//! two distributions (after cropping the slowest measurements, which are mostly interrupts). |t| above
//! 4.5 is dudect's threshold for "the timing depends on the class". Not part of `make test`: timing on
//! a shared machine is noisy; run `make ct`.
//!
//! Tests:
//! - `macs_equal`: equal MACs vs MACs differing in the first byte (the compare on valid vs invalid);
//! - `verify, invalid first vs last`: the release verify path on two invalid signatures of equal length
//!   that differ from the right one at the start or at the end (a leak in the compare shows here);
//! - `verify, valid vs invalid`: valid vs invalid signatures of equal length. A valid one stops at the
//!   first candidate and derives the replay key, an invalid one tries every candidate: this difference
//!   is the verdict itself, which the response reveals anyway, so a large |t| here is expected;
//! - `control: early-exit compare`: the leaky loop, equal vs differing first byte. Must show a large |t|,
//!   or the measurement is too coarse to prove anything.

use std::hint::black_box;
use std::time::Instant;

use twilio_signature::{macs_equal, Request, Secret, Validator};
use twilio_signature_ct::leaky_equal;

struct Rng(u64);

impl Rng {
    fn bit(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 32) as usize & 1
    }
}

/// Welch's t over the measurements below the pooled `percentile`.
fn welch_t(samples: &[(usize, u64)], percentile: f64) -> f64 {
    let mut all: Vec<u64> = samples.iter().map(|s| s.1).collect();
    all.sort_unstable();
    let cut = all[((all.len() as f64 * percentile) as usize).min(all.len() - 1)];
    let mut n = [0f64; 2];
    let mut mean = [0f64; 2];
    let mut m2 = [0f64; 2];
    for &(class, t) in samples.iter().filter(|s| s.1 <= cut) {
        let x = t as f64;
        n[class] += 1.0;
        let delta = x - mean[class];
        mean[class] += delta / n[class];
        m2[class] += delta * (x - mean[class]);
    }
    let var = [m2[0] / (n[0] - 1.0), m2[1] / (n[1] - 1.0)];
    (mean[0] - mean[1]) / (var[0] / n[0] + var[1] / n[1]).sqrt()
}

/// Times `run` on the two classes' inputs, interleaved at random. Each input is first copied into the
/// same buffer, so both classes touch the same addresses (different allocations can straddle cache
/// lines differently, which shows up as a "leak" that is not in the code under test).
fn measure(
    samples: usize,
    batch: usize,
    inputs: &[Vec<u8>; 2],
    mut run: impl FnMut(&[u8]),
) -> Vec<(usize, u64)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = inputs[0].clone();
    for i in 0..1000 {
        buf.copy_from_slice(&inputs[i & 1]);
        run(&buf);
    }
    (0..samples)
        .map(|_| {
            let class = rng.bit();
            buf.copy_from_slice(&inputs[class]);
            let start = Instant::now();
            for _ in 0..batch {
                run(black_box(&buf));
            }
            (class, start.elapsed().as_nanos() as u64)
        })
        .collect()
}

fn report(name: &str, samples: &[(usize, u64)], expect_leak: bool) -> bool {
    let t: Vec<f64> = [0.5, 0.9, 0.99]
        .iter()
        .map(|&p| welch_t(samples, p))
        .collect();
    // A crop that leaves one class (almost) empty gives NaN: skip it.
    let max = t
        .iter()
        .filter(|x| x.is_finite())
        .fold(0f64, |m, x| m.max(x.abs()));
    let leak = max > 4.5;
    let verdict = match (leak, expect_leak) {
        (false, false) => "no evidence of a timing difference (|t| <= 4.5)",
        (true, true) => "timing difference, as expected",
        (true, false) => "TIMING DIFFERENCE (|t| > 4.5)",
        (false, true) => "control NOT detected: measurement too coarse",
    };
    println!(
        "  {name:<40} t(p50) {:>8.2}  t(p90) {:>8.2}  t(p99) {:>8.2}  {verdict}",
        t[0], t[1], t[2]
    );
    leak == expect_leak
}

fn main() {
    let samples: usize = std::env::var("CT_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    println!("ct-timing: {samples} samples per test, Welch's t on the fastest 50/90/99% (dudect)");

    let a: Vec<u8> = (0..20u8).map(|i| i.wrapping_mul(53) ^ 0xa5).collect();
    let mut first = a.clone();
    first[0] ^= 1;
    let inputs = [a.clone(), first];
    let mut ok = report(
        "macs_equal: equal vs differ at byte 0",
        &measure(samples, 64, &inputs, |mac| {
            black_box(macs_equal(black_box(&a), mac));
        }),
        false,
    );

    let url = "https://example.com/ct?x=1";
    let body = "CallSid=CA123&From=%2B14155550100&Body=hello+there";
    let token = b"an-auth-token-for-the-timing-test";
    let validator = Validator::new(Secret::new(token));
    let right = twilio_signature::sign(token, &Request::post(url, body)).unwrap();
    let right = right.as_bytes().to_vec();
    let edit = |at: usize| {
        let mut s = right.clone();
        s[at] = if s[at] == b'A' { b'B' } else { b'A' };
        s
    };
    let invalid = [edit(0), edit(25)];
    ok &= report(
        "verify: invalid, differ at char 0 vs 25",
        &measure(samples / 4, 1, &invalid, |signature| {
            let request = Request::post(url, body).signature(signature);
            black_box(validator.verify(black_box(&request))).ok();
        }),
        false,
    );
    let both = [right.clone(), edit(25)];
    let valid_vs_invalid = measure(samples / 4, 1, &both, |signature| {
        let request = Request::post(url, body).signature(signature);
        black_box(validator.verify(black_box(&request))).ok();
    });
    // Informational: the verdict is public, so it does not count for the exit status.
    let t = welch_t(&valid_vs_invalid, 0.9);
    println!(
        "  {:<40} t(p90) {t:>8.2}  (verdict-dependent work: one candidate + replay key vs two candidates; public by design)",
        "verify: valid vs invalid (equal length)"
    );

    ok &= report(
        "control: early-exit compare",
        &measure(samples, 64, &inputs, |mac| {
            black_box(leaky_equal(black_box(&a), mac));
        }),
        true,
    );
    if ok {
        println!("ct-timing: as expected (no difference in the compare; the control shows one)");
    } else {
        println!(
            "ct-timing: UNEXPECTED result (see above); timing on a busy machine is noisy, re-run"
        );
        std::process::exit(1);
    }
}
