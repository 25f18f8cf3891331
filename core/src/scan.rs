//! The bytes of a form body that matter, found 64 at a time: one bit per byte for `&`, `=` and escapes
//! (`%` or `+`), and whether every byte is ASCII. Also two 16-byte helpers: [`spaced`], the decoder's
//! `+`-to-space step with the `%`s found, and [`blanks`], the blank bytes of a secret (judged without a
//! branch or a table on its bytes).
//!
//! On x86 and x86-64 (SSE2 is part of x86-64), these run on 16-byte vectors through `safe_arch`'s safe
//! wrappers of the SSE2 intrinsics (this crate forbids `unsafe`); elsewhere on 64-bit words, the same
//! answer a little slower. The tests hold both to a byte-at-a-time loop.

/// What one 64-byte block holds, one bit per byte (bit `i` is byte `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) ampersands: u64,
    pub(crate) equals: u64,
    /// `%` or `+`: the field holding it must be decoded.
    pub(crate) escapes: u64,
    /// Every byte of the block is ASCII.
    pub(crate) ascii: bool,
}

/// Bytes classified per call to [`Block::of`].
pub(crate) const BLOCK: usize = 64;

impl Block {
    /// Classifies 64 bytes.
    #[inline]
    pub(crate) fn of(bytes: &[u8; BLOCK]) -> Self {
        Self::of_quarters(bytes, chosen::quarter)
    }

    /// [`Block::of`] with each 16 bytes classified by `classify`.
    #[inline]
    fn of_quarters(bytes: &[u8; BLOCK], classify: impl Fn(&[u8; 16]) -> Quarter) -> Self {
        let mut block = Self::default();
        let mut high_bytes = 0;
        for (quarter, chunk) in bytes.as_chunks::<16>().0.iter().enumerate() {
            let at = 16 * quarter;
            let chunk = classify(chunk);
            block.ampersands |= u64::from(chunk.ampersands) << at;
            block.equals |= u64::from(chunk.equals) << at;
            block.escapes |= u64::from(chunk.escapes) << at;
            high_bytes |= chunk.high_bytes;
        }
        block.ascii = high_bytes == 0;
        block
    }
}

/// [`Block`]'s masks for 16 bytes.
struct Quarter {
    ampersands: u16,
    equals: u16,
    escapes: u16,
    /// The bytes above 0x7F (one bit each).
    high_bytes: u16,
}

// The 16-byte classifiers: SSE2 where the target has it (x86-64 always does), 64-bit words
// elsewhere. The tests hold both to byte loops wherever they run.
pub(crate) use chosen::{blanks, spaced};
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
use sse2 as chosen;
#[cfg(not(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
)))]
use words as chosen;

/// The classifiers on SSE2 vectors, through `safe_arch`'s safe wrappers.
#[cfg(all(
    any(target_arch = "x86", target_arch = "x86_64"),
    target_feature = "sse2"
))]
mod sse2 {
    use safe_arch::{
        add_i8_m128i, bitand_m128i, bitor_m128i, bitxor_m128i, cmp_eq_mask_i8_m128i,
        cmp_lt_mask_i8_m128i, load_unaligned_m128i, m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };

    use super::Quarter;

    // The helpers below are inlined into each classifier, including the copies other crates make
    // of the generic assembly code: without `#[inline]` those would call them (measured: a form's
    // verify through `Validator` 10-24% slower).
    #[allow(clippy::inline_always, reason = "one instruction; see above")]
    #[inline(always)]
    fn splat(byte: u8) -> m128i {
        set_splat_i8_m128i(i8::from_ne_bytes([byte]))
    }

    /// One bit per byte of a compare's result (or of the bytes' high bits).
    #[allow(clippy::inline_always, reason = "one instruction; see above")]
    #[inline(always)]
    fn mask(m: m128i) -> u16 {
        let [low, high, ..] = move_mask_i8_m128i(m).to_le_bytes();
        u16::from_le_bytes([low, high])
    }

    /// Classifies 16 bytes: [`Block::of`](super::Block::of)'s step.
    #[allow(
        clippy::inline_always,
        reason = "four calls per block of the indexing pass's inner loop"
    )]
    #[inline(always)]
    pub(super) fn quarter(bytes: &[u8; 16]) -> Quarter {
        let this = load_unaligned_m128i(bytes);
        let is = |byte: u8| cmp_eq_mask_i8_m128i(this, splat(byte));
        Quarter {
            ampersands: mask(is(b'&')),
            equals: mask(is(b'=')),
            escapes: mask(bitor_m128i(is(b'%'), is(b'+'))),
            high_bytes: mask(this),
        }
    }

    /// Sixteen bytes of a field as the decoder stores them, each `+` turned into a space, and one bit
    /// per `%` among them (bit `i` is byte `i`).
    #[allow(clippy::inline_always, reason = "the decoder's inner loop")]
    #[inline(always)]
    pub(crate) fn spaced(chunk: &[u8; 16]) -> ([u8; 16], u16) {
        let bytes = load_unaligned_m128i(chunk);
        // `+` (0x2B) xor 0x0B is a space.
        let plus = cmp_eq_mask_i8_m128i(bytes, splat(b'+'));
        let spaced = bitxor_m128i(bytes, bitand_m128i(plus, splat(0x0B)));
        (
            spaced.into(),
            mask(cmp_eq_mask_i8_m128i(bytes, splat(b'%'))),
        )
    }

    /// One bit per byte of `chunk` that is blank as [`is_blank`](super::is_blank) has it (space and
    /// `\t` to `\r`): arithmetic and compares only, no branch and no table, so a secret's bytes can be
    /// judged in constant time.
    #[inline]
    pub(crate) fn blanks(chunk: &[u8; 16]) -> u16 {
        let bytes = load_unaligned_m128i(chunk);
        // `\t`..=`\r` (0x09..=0x0D) are a range: adding 0x77 moves it to 0x80..=0x84, the five
        // smallest signed bytes, so one signed compare against 0x85 finds them (no byte outside the
        // range lands there, wrapping included).
        let controls = cmp_lt_mask_i8_m128i(add_i8_m128i(bytes, splat(0x77)), splat(0x85));
        mask(bitor_m128i(
            cmp_eq_mask_i8_m128i(bytes, splat(b' ')),
            controls,
        ))
    }
}

/// The same classifiers on two 64-bit words at a time, for targets without SSE2.
#[cfg_attr(
    all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse2"
    ),
    allow(dead_code)
)]
mod words {
    use super::{bytes_eq, high_bits, Quarter};

    /// The 8 bytes of `chunk` from `at` as a little-endian word.
    #[inline]
    fn word(chunk: &[u8; 16], at: usize) -> u64 {
        u64::from_le_bytes(chunk[at..at + 8].try_into().unwrap_or_default())
    }

    /// See the SSE2 `quarter`.
    #[inline]
    pub(super) fn quarter(bytes: &[u8; 16]) -> Quarter {
        let half = |at: usize| {
            let this = word(bytes, at);
            [
                bytes_eq(this, b'&'),
                bytes_eq(this, b'='),
                bytes_eq(this, b'%') | bytes_eq(this, b'+'),
                this & 0x8080_8080_8080_8080,
            ]
            .map(high_bits)
        };
        let (low, high) = (half(0), half(8));
        let join = |i: usize| u16::from(low[i]) | u16::from(high[i]) << 8;
        Quarter {
            ampersands: join(0),
            equals: join(1),
            escapes: join(2),
            high_bytes: join(3),
        }
    }

    /// See the SSE2 `spaced`.
    #[inline]
    pub(crate) fn spaced(chunk: &[u8; 16]) -> ([u8; 16], u16) {
        let mut out = [0u8; 16];
        let mut percents = 0u16;
        for (half, to) in out.chunks_exact_mut(8).enumerate() {
            let word = word(chunk, 8 * half);
            to.copy_from_slice(&(word ^ ((bytes_eq(word, b'+') >> 7) * 0x0B)).to_le_bytes());
            percents |= u16::from(high_bits(bytes_eq(word, b'%'))) << (8 * half);
        }
        (out, percents)
    }

    /// See the SSE2 `blanks`.
    #[inline]
    pub(crate) fn blanks(chunk: &[u8; 16]) -> u16 {
        let half = |at: usize| {
            let word = word(chunk, at);
            high_bits(
                bytes_eq(word, b' ')
                    | bytes_eq(word, b'\t')
                    | bytes_eq(word, b'\n')
                    | bytes_eq(word, 0x0b)
                    | bytes_eq(word, 0x0c)
                    | bytes_eq(word, b'\r'),
            )
        };
        u16::from(half(0)) | u16::from(half(8)) << 8
    }
}

/// Whether `byte` is blank in a secret: space, `\t`, `\n`, `\v` (0x0B), `\f` (0x0C) or `\r`. This is
/// `u8::is_ascii_whitespace` plus the vertical tab, which it leaves out (it follows WHATWG, not C's
/// `isspace`): a token of only `"\x0b"` is no more a secret than `"\n"`. [`blanks`] is this rule for
/// sixteen bytes at a time, without branches.
pub(crate) const fn is_blank(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t'..=b'\r')
}

/// The high bit of each byte of `word` that equals `byte` (exact: no carries cross bytes).
pub(crate) const fn bytes_eq(word: u64, byte: u8) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    let x = word ^ (0x0101_0101_0101_0101 * byte as u64);
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// The high bits of a word's bytes (each 0x80 or 0), gathered into one bit per byte. Shifts and ors
/// only, no multiply: [`blanks`] gathers a secret's bits with it, and a multiply's time depends on its
/// operands on some small CPUs.
const fn high_bits(mask: u64) -> u8 {
    let mut bits = mask >> 7;
    bits |= bits >> 7;
    bits |= bits >> 14;
    bits |= bits >> 28;
    bits as u8
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn by_bytes(bytes: &[u8; BLOCK]) -> Block {
        let mut block = Block::default();
        for (i, &b) in bytes.iter().enumerate() {
            let bit = 1u64 << i;
            if b == b'&' {
                block.ampersands |= bit;
            }
            if b == b'=' {
                block.equals |= bit;
            }
            if b == b'%' || b == b'+' {
                block.escapes |= bit;
            }
        }
        block.ascii = bytes.is_ascii();
        block
    }

    #[test]
    fn blocks_are_classified_as_a_byte_loop_does() {
        let alphabet = [
            0u8, 1, b'%', b'&', b'+', b'=', b'a', b'7', b'8', b'9', 0x37, 0x39, 0x7F, 0x80, 0xA6,
            0xFF, b'F', b'f', b' ',
        ];
        let mut next = crate::test_rng(17u64);
        let ascii: std::vec::Vec<u8> = alphabet.iter().copied().filter(u8::is_ascii).collect();
        for round in 0..20_000 {
            // Half the blocks all ASCII.
            let choices = if round % 2 == 0 {
                &ascii[..]
            } else {
                &alphabet[..]
            };
            let mut bytes = [0u8; BLOCK];
            for b in &mut bytes {
                *b = choices[next() % choices.len()];
            }
            let expected = by_bytes(&bytes);
            assert_eq!(Block::of(&bytes), expected, "{bytes:?}");
            // The portable words agree too, wherever the vector code is what runs.
            let words = Block::of_quarters(&bytes, words::quarter);
            assert_eq!(words, expected, "{bytes:?}");
        }
    }

    #[test]
    fn blanks_are_a_byte_loop_s() {
        // Every byte value at every place, among blanks and among other bytes.
        for filler in [b' ', b'\r', b'a', 0x0B, 0x0E, 0x08, 0x89] {
            for place in 0..16 {
                for byte in 0..=255u8 {
                    let mut chunk = [filler; 16];
                    chunk[place] = byte;
                    let mut expected = 0u16;
                    for (i, b) in chunk.iter().enumerate() {
                        expected |= u16::from(is_blank(*b)) << i;
                    }
                    assert_eq!(blanks(&chunk), expected, "{chunk:?}");
                    assert_eq!(words::blanks(&chunk), expected, "{chunk:?}");
                }
            }
        }
    }

    #[test]
    fn spaced_chunks_are_a_byte_loop_s() {
        let alphabet = [
            0u8,
            b'%',
            b'+',
            b' ',
            b'a',
            0x0B,
            0x20,
            0x2B ^ 0x80,
            0x80,
            0xFF,
            b'&',
        ];
        let mut next = crate::test_rng(19u64);
        for _ in 0..20_000 {
            let mut chunk = [0u8; 16];
            for b in &mut chunk {
                *b = alphabet[next() % alphabet.len()];
            }
            let mut expected = (chunk.map(|b| if b == b'+' { b' ' } else { b }), 0u16);
            for (i, &b) in chunk.iter().enumerate() {
                expected.1 |= u16::from(b == b'%') << i;
            }
            assert_eq!(spaced(&chunk), expected, "{chunk:?}");
            assert_eq!(words::spaced(&chunk), expected, "{chunk:?}");
        }
    }
}
