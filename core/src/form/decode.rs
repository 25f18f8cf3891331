//! Form decoding: `+` is a space, `%XX` a byte, and a `%` not followed by two hex digits stands for
//! itself. [`Decoded`] is the plain byte-at-a-time decoder (comparisons, tests); [`decode_into`] the
//! fast one that [`super::assemble`] and the name prefixes of [`super::index`] use, sixteen bytes at a
//! time (SSE2 on x86, two words elsewhere: [`crate::scan`]).
//!
//! The UTF-8 rule: ASCII bytes swapped for ASCII bytes leave every character of a UTF-8 text whole, so
//! in a UTF-8 body only an escape of a byte above 0x7F can make a field's decoded text something other
//! than UTF-8. [`decode_into`] reports those escapes as it meets them, and only then is the decoded text
//! checked, so a large escaped field is decoded once.

use super::word_of;
use crate::scan::{bytes_eq, spaced};

/// The bytes of a form-encoded field, decoded: `+` is a space, `%XX` a byte, and a `%` not followed by two
/// hex digits stands for itself.
#[derive(Clone)]
pub(crate) struct Decoded<'a> {
    raw: &'a [u8],
}

impl<'a> Decoded<'a> {
    #[inline]
    pub(crate) fn new(raw: &'a [u8]) -> Self {
        Self { raw }
    }
}

const fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte `%XX` at the start of `rest` (the bytes after a `%`) stands for, if it is an escape.
fn escape_at(rest: &[u8]) -> Option<u8> {
    match rest {
        [hi, lo, ..] => Some(hex_value(*hi)? << 4 | hex_value(*lo)?),
        _ => None,
    }
}

impl Iterator for Decoded<'_> {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.raw.split_first()?;
        self.raw = rest;
        match first {
            b'+' => Some(b' '),
            b'%' => {
                if let Some(byte) = escape_at(rest) {
                    self.raw = &rest[2..];
                    return Some(byte);
                }
                Some(b'%')
            }
            other => Some(other),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.raw.len().div_ceil(3), Some(self.raw.len()))
    }
}

/// The value of each hex digit; [`NOT_HEX`] for any other byte.
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut b = 0;
    while b < 256 {
        if let Some(value) = hex_value(b as u8) {
            table[b] = value;
        }
        b += 1;
    }
    table
};
const NOT_HEX: u8 = 0x80;

/// How many bytes past its text [`decode_into`] and [`copy_into`](super::assemble::copy_into) may
/// write: they store whole words.
pub(crate) const OVERSHOOT: usize = 16;

/// Decodes the run of `%XX` escapes that starts `body[p..end]` (if any) into `out` at `at`, four, two,
/// then one at a time; returns where the run ends in `body` and in `out`, and the decoded bytes or-ed
/// together.
fn decode_escape_run(
    body: &[u8],
    mut p: usize,
    end: usize,
    out: &mut [u8],
    mut at: usize,
) -> (usize, usize, u8) {
    let mut bits = 0;
    while let Some(&[b'%', h1, l1, b'%', h2, l2, b'%', h3, l3, b'%', h4, l4]) =
        body.get(p..p + 12).filter(|_| p + 12 <= end)
    {
        let (h1, l1, h2, l2) = (
            HEX[usize::from(h1)],
            HEX[usize::from(l1)],
            HEX[usize::from(h2)],
            HEX[usize::from(l2)],
        );
        let (h3, l3, h4, l4) = (
            HEX[usize::from(h3)],
            HEX[usize::from(l3)],
            HEX[usize::from(h4)],
            HEX[usize::from(l4)],
        );
        if (h1 | l1 | h2 | l2 | h3 | l3 | h4 | l4) & NOT_HEX != 0 {
            break;
        }
        let decoded = [h1 << 4 | l1, h2 << 4 | l2, h3 << 4 | l3, h4 << 4 | l4];
        bits |= decoded[0] | decoded[1] | decoded[2] | decoded[3];
        out[at..at + 4].copy_from_slice(&decoded);
        at += 4;
        p += 12;
    }
    while let Some(&[b'%', h1, l1, b'%', h2, l2]) = body.get(p..p + 6).filter(|_| p + 6 <= end) {
        let (h1, l1, h2, l2) = (
            HEX[usize::from(h1)],
            HEX[usize::from(l1)],
            HEX[usize::from(h2)],
            HEX[usize::from(l2)],
        );
        if (h1 | l1 | h2 | l2) & NOT_HEX != 0 {
            break;
        }
        out[at] = h1 << 4 | l1;
        out[at + 1] = h2 << 4 | l2;
        bits |= out[at] | out[at + 1];
        at += 2;
        p += 6;
    }
    while let Some(&[b'%', hi, lo]) = body.get(p..p + 3).filter(|_| p + 3 <= end) {
        let (hi, lo) = (HEX[usize::from(hi)], HEX[usize::from(lo)]);
        if (hi | lo) & NOT_HEX != 0 {
            break;
        }
        out[at] = hi << 4 | lo;
        bits |= out[at];
        at += 1;
        p += 3;
    }
    (p, at, bits)
}

/// Decodes `body[start..end]` into `out` at `at`; returns where the decoded text ends, and whether an
/// escape decoded to a byte above 0x7F (only such escapes can make the text of a UTF-8 body something
/// other than UTF-8). `out` needs room for `end - start + OVERSHOOT` bytes from `at`.
///
/// Sixteen bytes at a time (eight near the end of the body), at a fixed stride (the next chunk's place
/// never waits for this one's bytes): each chunk is stored whole with its `+`s turned into spaces,
/// `shift` bytes before its place in the input (two for every escape so far); each `%XX` escape in it
/// is decoded with a table and stored over its `%`, and the bytes after it stored again one byte after
/// that. Chunks may be read past `end` (never past `body`): only the bytes before `end` are kept, the
/// others are overwritten or left past the end.
pub(super) fn decode_into(
    body: &[u8],
    start: usize,
    end: usize,
    out: &mut [u8],
    at: usize,
) -> (usize, bool) {
    // A field that starts with a run of escapes (a fully escaped field, an emoji) has it decoded in a
    // tight loop first.
    let (start, at, mut bits) = decode_escape_run(body, start, end, out, at);
    let mut p = start;
    // Output place of input byte `x` is `at + x - start - shift`; `at - start` is applied last.
    let mut shift = 0;
    // Bytes at the start of the chunk or word that are the hex digits of an escape begun before it.
    let mut skip = 0;
    // Sixteen bytes at a time while every load stays inside the body: the chunk at `p`, and for each
    // escape in it, the sixteen bytes after the escape (which end before `p + 34`). Each chunk is stored
    // whole, `+`s made spaces, at its place; each escape's byte is stored over its `%`, and the sixteen
    // bytes after the escape one byte after that. So when an escape runs into the next chunk, that
    // chunk's bytes after it are stored already, and the chunk is not stored again (its first bytes
    // are hex digits, to be dropped).
    while p < end && p + 34 <= body.len() {
        let (chunk, mut percents) = spaced(sixteen(body, p));
        if skip == 0 {
            let place = at + p - start - shift;
            out[place..place + 16].copy_from_slice(&chunk);
        }
        skip = 0;
        while percents != 0 {
            let q = p + percents.trailing_zeros() as usize;
            percents &= percents - 1;
            let byte = match percent_at(body, q, end) {
                Percent::PastEnd => break,
                Percent::Literal => continue, // stored as it is
                Percent::Escape(byte) => byte,
            };
            let place = at + q - start - shift;
            out[place] = byte;
            bits |= byte;
            shift += 2;
            out[place + 1..place + 17].copy_from_slice(&spaced(sixteen(body, q + 3)).0);
            skip = (q + 3).saturating_sub(p + 16);
        }
        p += 16;
    }
    // Then eight bytes at a time, to the last word that fits in the body.
    while let Some(chunk) = body.get(p..p + 8).filter(|_| p < end) {
        let word = word_of(chunk);
        // `+` (0x2B) xor 0x0B is a space.
        let spaced = word ^ ((bytes_eq(word, b'+') >> 7) * 0x0B);
        let place = at + p - start - shift;
        out[place + skip..place + skip + 8].copy_from_slice(&(spaced >> (8 * skip)).to_le_bytes());
        let mut percents = bytes_eq(word, b'%') & (u64::MAX << (8 * skip));
        skip = 0;
        while percents != 0 {
            let q = p + percents.trailing_zeros() as usize / 8;
            percents &= percents - 1;
            let byte = match percent_at(body, q, end) {
                Percent::PastEnd => break,
                Percent::Literal => continue, // stored as it is
                Percent::Escape(byte) => byte,
            };
            let place = at + q - start - shift;
            out[place] = byte;
            bits |= byte;
            shift += 2;
            // The word's bytes after the escape, one byte after its `%`.
            let after = q + 3 - p;
            if after < 8 {
                out[place + 1..place + 9].copy_from_slice(&(spaced >> (8 * after)).to_le_bytes());
            } else {
                skip = after - 8;
            }
        }
        p += 8;
    }
    // The last bytes of the body, one at a time.
    let mut o = at + (p + skip).min(end) - start - shift;
    let mut i = p + skip;
    while i < end {
        let (byte, len) = match body[i] {
            b'+' => (b' ', 1),
            b'%' => match percent_at(body, i, end) {
                Percent::Escape(byte) => {
                    bits |= byte;
                    (byte, 3)
                }
                Percent::PastEnd | Percent::Literal => (b'%', 1),
            },
            b => (b, 1),
        };
        out[o] = byte;
        o += 1;
        i += len;
    }
    (o, bits >= 0x80)
}

/// What a `%` in a field stands for.
enum Percent {
    /// Too near the field's end (`end`) for an escape: for a word's `%`s, none further is either.
    PastEnd,
    /// Not followed by two hex digits: it stands for itself.
    Literal,
    /// `%XX`: the byte.
    Escape(u8),
}

/// What the `%` at `body[q]` stands for in a field that ends at `end`.
#[inline]
fn percent_at(body: &[u8], q: usize, end: usize) -> Percent {
    if q + 2 >= end {
        return Percent::PastEnd;
    }
    let (hi, lo) = (HEX[usize::from(body[q + 1])], HEX[usize::from(body[q + 2])]);
    if (hi | lo) & NOT_HEX == 0 {
        Percent::Escape(hi << 4 | lo)
    } else {
        Percent::Literal
    }
}

/// The sixteen bytes of `body` from `at` (which has them).
#[inline]
pub(super) fn sixteen(body: &[u8], at: usize) -> &[u8; 16] {
    body[at..at + 16].try_into().unwrap_or(&[0; 16])
}

/// Where to end a piece of `body[start..end]` of at most `max` raw bytes so that no escape is cut: an
/// escape that the cut would split starts at a `%` one or two bytes before it (hex digits are never `%`).
pub(super) fn piece_end(body: &[u8], start: usize, end: usize, max: usize) -> usize {
    let cut = start + max;
    if cut >= end {
        end
    } else if body[cut - 1] == b'%' {
        cut - 1
    } else if body[cut - 2] == b'%' {
        cut - 2
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::assemble::copy_into;
    use super::super::index::prefix_of_escaped;
    use super::super::tests::{assembled_field, decode, random_raw};
    use super::*;
    use std::vec::Vec;

    #[test]
    fn plus_is_space_and_percent_is_a_byte() {
        assert_eq!(decode("a+b%20c%2Bd%2b"), b"a b c+d+");
        assert_eq!(decode("%e2%9C%93"), "✓".as_bytes());
    }

    #[test]
    fn a_stray_percent_stays_literal() {
        assert_eq!(decode("100%"), b"100%");
        assert_eq!(decode("%4"), b"%4");
        assert_eq!(decode("%zz%%41"), b"%zz%A");
    }

    #[test]
    fn fast_decoding_agrees_with_the_byte_decoder() {
        let mut next = crate::test_rng(3u64);
        for round in 0..20_000 {
            // Now and then long enough to cross the UTF-8 check's pieces.
            let mut body = random_raw(&mut next, if round % 50 == 0 { 400 } else { 12 });
            let start = next() % (body.len() + 1);
            let end = start + next() % (body.len() - start + 1);
            // Bytes after the field (the rest of a body) let the sixteen-byte loop run to its end.
            if round % 2 == 0 {
                let more = random_raw(&mut next, 12);
                body.extend_from_slice(&more);
            }
            let expected: Vec<u8> = Decoded::new(&body[start..end]).collect();
            let mut out = std::vec![0xEE; 7 + end - start + OVERSHOOT];
            let (len, high) = decode_into(&body, start, end, &mut out, 7);
            assert_eq!(&out[7..len], &expected[..], "{body:?} {start}..{end}");
            assert_eq!(
                high,
                escapes_a_high_byte(&body[start..end]),
                "{body:?} {start}..{end}"
            );
            let mut prefix = [0u8; 16];
            for (slot, byte) in prefix.iter_mut().zip(&expected) {
                *slot = *byte;
            }
            assert_eq!(
                prefix_of_escaped(&body, start, end),
                u128::from_be_bytes(prefix),
                "{body:?} {start}..{end}"
            );
            // Decoded and checked as assembly does it, in its buffer or (long fields) streamed: fields
            // of a body that is not UTF-8 are all checked, those of a UTF-8 body when an escape
            // decodes to a byte above 0x7F.
            let raw_utf8 = core::str::from_utf8(&body[start..end]).is_ok();
            for check_utf8 in [true, false].into_iter().filter(|c| *c || raw_utf8) {
                assert_eq!(
                    assembled_field(&body, start, end, check_utf8),
                    (core::str::from_utf8(&expected).is_ok(), expected.clone()),
                    "{body:?} {start}..{end} {check_utf8}"
                );
            }
            let len = copy_into(&body, start, end, &mut out, 3);
            assert_eq!(&out[3..len], &body[start..end]);
        }
    }

    /// Whether a field has a `%XX` escape of a byte above 0x7F, a byte at a time.
    fn escapes_a_high_byte(raw: &[u8]) -> bool {
        let mut i = 0;
        while i < raw.len() {
            match escape_at(&raw[i + 1..]) {
                Some(byte) if raw[i] == b'%' => {
                    if byte >= 0x80 {
                        return true;
                    }
                    i += 3;
                }
                _ => i += 1,
            }
        }
        false
    }

    /// Decodes `body[start..end]` into a buffer of exactly the promised room (so a store past it
    /// panics) and checks the text against the byte decoder and that nothing before `at` was touched.
    fn decodes_in_its_room(body: &[u8], start: usize, end: usize, at: usize) {
        let expected: Vec<u8> = Decoded::new(&body[start..end]).collect();
        let mut out = std::vec![0xEE; at + end - start + OVERSHOOT];
        let (len, high) = decode_into(body, start, end, &mut out, at);
        assert_eq!(high, escapes_a_high_byte(&body[start..end]));
        assert!(
            out[..at].iter().all(|&b| b == 0xEE),
            "{body:?} {start}..{end}"
        );
        assert_eq!(&out[at..len], &expected[..], "{body:?} {start}..{end}");
    }

    #[test]
    fn escapes_at_every_place_of_a_chunk_decode_in_their_room() {
        // One or two escapes, cut escapes or literal `%`s at every place of a body long enough for the
        // sixteen-byte loop, so escapes straddle its chunks (one or two hex digits in the next) and the
        // hand-over to the eight-byte loop and the byte tail; every end, several starts.
        let pieces: [&[u8]; 6] = [b"%41", b"%4", b"%", b"%4z", b"%%41", b"+%C3%A9"];
        for a in 0..80 {
            for first in pieces {
                for b in [a + 1, a + 3, a + 4, a + 14, a + 15, a + 17] {
                    for second in [None, Some(&b"%41"[..]), Some(&b"%"[..])] {
                        let mut body = std::vec![b'x'; 90];
                        for (at, piece) in [(a, Some(first)), (b, second)] {
                            let Some(piece) = piece else { continue };
                            for (i, &byte) in piece.iter().enumerate() {
                                if let Some(slot) = body.get_mut(at + i) {
                                    *slot = byte;
                                }
                            }
                        }
                        for start in [0, 1, 2, 5, a.saturating_sub(1), a] {
                            for end in start..=body.len() {
                                decodes_in_its_room(&body, start, end, start % 3);
                            }
                        }
                    }
                }
            }
        }
    }
}
