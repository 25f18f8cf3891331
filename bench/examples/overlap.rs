//! Does SHA-1 hashing overlap other work on this machine? The experiment behind the fifth pass of
//! `bench/analysis.md`: before trying again to hash the signed string while it is being assembled,
//! run this and see how much of the assembly the processor hides behind the compressions.
//!
//! ```text
//! cargo run --release -p twilio-signature-bench --example overlap
//! ```
//!
//! Two kinds of work, each timed alone, after the hashing, and interleaved with it:
//! - **assembly**: 40 fields copied into a buffer as fixed-size 48-byte blocks, as the core's
//!   `Assembly` copies short fields; the buffer's whole blocks are then hashed, either at the end or
//!   as the buffer fills (with some bytes of lag, so that the hash does not read bytes still on their
//!   way to the cache);
//! - **integer work** with few stores: a chain of arithmetic between each block's compression.
//!
//! Each figure is the best of seven rounds.

use std::hint::black_box;
use std::time::Instant;

use sha1::block_api::compress;

const ROUNDS: usize = 7;
const ITERATIONS: u32 = 300_000;

/// The best time per iteration of `f`, in nanoseconds, over [`ROUNDS`] rounds.
fn best(mut f: impl FnMut()) -> f64 {
    (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERATIONS {
                f();
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(ITERATIONS)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The signed string's bytes being put together, as `Assembly::field` does for short plain fields.
struct Buffer {
    bytes: [u8; 2048],
    len: usize,
    hashed: usize,
    state: [u32; 5],
}

impl Buffer {
    fn new() -> Self {
        Self {
            bytes: [0; 2048],
            len: 0,
            hashed: 0,
            state: [
                0x6745_2301,
                0xEFCD_AB89,
                0x98BA_DCFE,
                0x1032_5476,
                0xC3D2_E1F0,
            ],
        }
    }

    fn field(&mut self, source: &[u8], start: usize, len: usize) {
        let at = self.len;
        self.bytes[at..at + 48].copy_from_slice(&source[start..start + 48]);
        self.len = at + len;
    }

    /// Hashes the whole blocks gathered, but the last `lag` bytes.
    fn hash(&mut self, lag: usize) {
        if self.len - self.hashed >= 64 + lag {
            let whole = (self.len - self.hashed - lag) & !63;
            let (blocks, _) = self.bytes[self.hashed..self.hashed + whole].as_chunks::<64>();
            compress(&mut self.state, blocks);
            self.hashed += whole;
        }
    }
}

/// About 10 ns of arithmetic with no stores.
#[inline(never)]
fn integer_work(seed: u64) -> u64 {
    (0..24).fold(seed, |acc, i| {
        acc.rotate_left(7) ^ (acc >> 3).wrapping_add(i)
    })
}

fn main() {
    let source: Vec<u8> = (0..600u32).map(|i| (i * 7 + 3) as u8).collect();
    // 40 fields, about 520 bytes in all, as in the SMS webhook.
    let lengths = [5, 24, 8, 11, 14, 20, 3, 17];
    let fields: Vec<(usize, usize)> = (0..40)
        .map(|i| ((i * 13) % 500, lengths[i % lengths.len()]))
        .collect();
    let assemble = |buffer: &mut Buffer, lag: Option<usize>| {
        for (i, &(start, len)) in black_box(&fields).iter().enumerate() {
            buffer.field(&source, start, len);
            if let Some(lag) = lag.filter(|_| i % 2 == 1) {
                buffer.hash(lag);
            }
        }
        buffer.hash(0);
        black_box(buffer.state);
    };

    let alone = best(|| {
        let mut buffer = Buffer::new();
        for &(start, len) in black_box(&fields) {
            buffer.field(&source, start, len);
        }
        black_box(&buffer.bytes);
    });
    let after = best(|| assemble(&mut Buffer::new(), None));
    println!("assembly: alone {alone:.0} ns; assembled, then hashed {after:.0} ns");
    for lag in [0, 64, 128] {
        let streamed = best(|| assemble(&mut Buffer::new(), Some(lag)));
        println!(
            "  hashed as it fills, {lag:3} bytes of lag: {streamed:.0} ns ({:.0} ns of the assembly hidden)",
            after - streamed
        );
    }

    let blocks = [[7u8; 64]; 10];
    let hash = best(|| {
        let mut state = [1u32; 5];
        compress(&mut state, black_box(&blocks));
        black_box(state);
    });
    let work = best(|| {
        for block in 0..blocks.len() {
            black_box(integer_work(black_box(block as u64)));
        }
    });
    let interleaved = best(|| {
        let mut state = [1u32; 5];
        for (i, block) in blocks.iter().enumerate() {
            compress(&mut state, std::slice::from_ref(black_box(block)));
            black_box(integer_work(black_box(i as u64)));
        }
        black_box(state);
    });
    println!(
        "integer work: hashing 10 blocks {hash:.0} ns, the work alone {work:.0} ns, interleaved {interleaved:.0} ns ({:.0} ns hidden)",
        hash + work - interleaved
    );
}
