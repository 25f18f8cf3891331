//! Interleaved timing: contenders take turns, one short batch each per round, so a noisy machine (other
//! builds, frequency changes) slows them all alike and their ratio stays honest. Criterion runs one
//! benchmark after another, which on a shared machine can put a busy spell on one side of a ratio only.

use std::time::{Duration, Instant};

/// One contender: a name and one operation.
pub struct Runner<'a> {
    /// Label printed with the result.
    pub name: String,
    /// One operation (a verify, an HMAC, …).
    pub op: Box<dyn FnMut() + 'a>,
}

impl core::fmt::Debug for Runner<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> Runner<'a> {
    /// A contender named `name` running `op`.
    pub fn new(name: impl Into<String>, op: impl FnMut() + 'a) -> Self {
        Self {
            name: name.into(),
            op: Box::new(op),
        }
    }

    fn time(&mut self, n: u32) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            (self.op)();
        }
        start.elapsed()
    }

    /// How many operations make a batch of about `target` (this also warms the contender up).
    fn calibrate(&mut self, target: Duration) -> u32 {
        let mut n = 1u32;
        loop {
            let elapsed = self.time(n);
            if elapsed >= target / 4 || n >= 1 << 24 {
                let scaled = target.as_secs_f64() / elapsed.as_secs_f64().max(1e-9);
                return batch_size(f64::from(n) * scaled);
            }
            n *= 4;
        }
    }
}

/// A batch size from a scaled estimate: at least 1, at most 2^26.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 1..=2^26 first
fn batch_size(estimate: f64) -> u32 {
    estimate.clamp(1.0, f64::from(1u32 << 26)) as u32
}

/// Runs `rounds` interleaved rounds of batches of about `batch` each; returns each contender's median
/// nanoseconds per operation, in the order given.
pub fn race(runners: &mut [Runner<'_>], rounds: usize, batch: Duration) -> Vec<f64> {
    let sizes: Vec<u32> = runners.iter_mut().map(|r| r.calibrate(batch)).collect();
    let mut samples = vec![Vec::with_capacity(rounds); runners.len()];
    for round in 0..rounds {
        // Rotate who goes first, so no contender always follows the same neighbour.
        for i in 0..runners.len() {
            let k = (i + round) % runners.len();
            let elapsed = runners[k].time(sizes[k]);
            samples[k].push(elapsed.as_secs_f64() * 1e9 / f64::from(sizes[k]));
        }
    }
    samples.into_iter().map(median).collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => f64::midpoint(xs[n / 2 - 1], xs[n / 2]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < 1e-12);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-12);
    }

    #[test]
    fn a_slower_contender_measures_slower() {
        let spin = |n: u64| {
            move || {
                let mut x = 0u64;
                for i in 0..n {
                    x = std::hint::black_box(x.wrapping_add(i));
                }
            }
        };
        let mut runners = [
            Runner::new("fast", spin(100)),
            Runner::new("slow", spin(10_000)),
        ];
        let medians = race(&mut runners, 5, Duration::from_millis(2));
        assert!(medians[1] > 5.0 * medians[0], "{medians:?}");
    }
}
