//! The signed string's parameters, put together: [`Assembly`] gathers URL pieces and decoded fields in
//! a stack buffer and hands them to the HMAC in a few large updates. Short plain fields are copied as
//! one fixed-size block, escaped ones decoded sixteen bytes at a time ([`super::decode`]), and their
//! decoded text checked for UTF-8 where [`super::index`] left it to be; a field longer than the buffer
//! is streamed through it. What it hands on is the sink's bytes and, at the end, whether every checked
//! field was UTF-8.

use super::decode::{decode_into, piece_end, sixteen, OVERSHOOT};
use super::Field;
use crate::scan::spaced;

/// The canonical string's bytes as they are put together: URL pieces and decoded fields are gathered in
/// a stack buffer and handed to `sink` (the HMAC) in a few large writes, since every call into the HMAC
/// has a fixed cost and real fields are a few bytes each. A field too long for the buffer is streamed.
pub(crate) struct Assembly<'s, S: FnMut(&[u8])> {
    sink: &'s mut S,
    buf: [u8; ASSEMBLY + SHORT],
    len: usize,
    /// Whether every field whose decoded bytes needed a UTF-8 check passed it.
    utf8: bool,
}

/// The assembly buffer's size: a real webhook's canonical string fits.
pub(super) const ASSEMBLY: usize = 1024;

/// Fields up to this long are copied into the assembly buffer as one block of this size (the buffer
/// has this much room past [`ASSEMBLY`], which also covers [`OVERSHOOT`]).
const SHORT: usize = 48;
const _: () = assert!(SHORT >= OVERSHOOT);

impl<'s, S: FnMut(&[u8])> Assembly<'s, S> {
    #[inline]
    pub(crate) fn new(sink: &'s mut S) -> Self {
        Self {
            sink,
            buf: [0; ASSEMBLY + SHORT],
            len: 0,
            utf8: true,
        }
    }

    /// Hands the last bytes to the sink; returns whether the decoded fields that needed it were UTF-8.
    pub(crate) fn finish(&mut self) -> bool {
        self.flush();
        self.utf8
    }

    /// Makes room for `len` more bytes; false when they can never fit (the buffer is then empty).
    fn room_for(&mut self, len: usize) -> bool {
        if len > ASSEMBLY - self.len {
            self.flush();
        }
        len <= ASSEMBLY
    }

    /// Appends bytes as they are.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        if self.room_for(bytes.len()) {
            copy_short(&mut self.buf[self.len..self.len + bytes.len()], bytes);
            self.len += bytes.len();
        } else {
            (self.sink)(bytes);
        }
    }

    /// Appends a field of a form body, decoded.
    #[allow(
        clippy::inline_always,
        reason = "measured: the call per field cost a third of assembling a webhook's fields"
    )]
    #[inline(always)]
    pub(super) fn field(&mut self, body: &[u8], field: Field) {
        let (start, end) = (field.start, field.end);
        let at = self.len;
        // A short plain field (nearly every one) is copied as one block of fixed size, so the copy
        // does not branch on its length; the bytes past its end are overwritten next.
        if let (false, true, true, Some(chunk)) = (
            field.escaped | field.check_utf8,
            end - start <= SHORT,
            at <= ASSEMBLY - SHORT,
            body.get(start..start + SHORT),
        ) {
            self.buf[at..at + SHORT].copy_from_slice(chunk);
            self.len = at + (end - start);
        } else if !self.plus_field(body, field) {
            self.any_field(body, field);
        }
    }

    /// A short escaped field whose escapes are all `+` (a city, a message's words): stored as two
    /// chunks of sixteen with the `+`s made spaces. (A short plain field that [`Assembly::field`]'s
    /// block copy could not take, near the end of the body or of the buffer, is stored here too, as
    /// it is.) False, with nothing stored, for any other field.
    #[inline]
    fn plus_field(&mut self, body: &[u8], field: Field) -> bool {
        let (start, end) = (field.start, field.end);
        let at = self.len;
        let (false, true, true, Some(chunk)) = (
            field.check_utf8,
            end - start <= 32,
            at <= ASSEMBLY - SHORT,
            body.get(start..start + 32),
        ) else {
            return false;
        };
        let (low, low_percents) = spaced(sixteen(chunk, 0));
        let (high, high_percents) = spaced(sixteen(chunk, 16));
        let percents = u64::from(low_percents) | u64::from(high_percents) << 16;
        if percents & ((1 << (end - start)) - 1) != 0 {
            return false;
        }
        self.buf[at..at + 16].copy_from_slice(&low);
        self.buf[at + 16..at + 32].copy_from_slice(&high);
        self.len = at + (end - start);
        true
    }

    /// [`Assembly::field`] for any field.
    #[inline(never)]
    fn any_field(&mut self, body: &[u8], field: Field) {
        let (start, end) = (field.start, field.end);
        if self.room_for(end - start) {
            let at = self.len;
            let high = if field.escaped {
                let (len, high) = decode_into(body, start, end, &mut self.buf, at);
                self.len = len;
                high
            } else {
                self.len = copy_into(body, start, end, &mut self.buf, at);
                false
            };
            if field.check_utf8 | high {
                self.utf8 &= core::str::from_utf8(&self.buf[at..self.len]).is_ok();
            }
        } else {
            self.stream(body, field);
        }
    }

    /// A field longer than the buffer (which is empty now): passed on as it is, or decoded a buffer at
    /// a time.
    #[cold]
    fn stream(&mut self, body: &[u8], field: Field) {
        let (start, end) = (field.start, field.end);
        if !field.escaped {
            (self.sink)(&body[start..end]);
            return;
        }
        // A character cut at the end of a piece is kept and decoded on with the next. The pieces are
        // checked for UTF-8 from the first that has an escape of a byte above 0x7F on (or all of them,
        // when the field must be checked anyway); before that, they are UTF-8 but for a character the
        // cut splits, which is carried all the same, so that the first checked piece starts whole.
        let (mut i, mut carried, mut check) = (start, 0, field.check_utf8);
        while i < end {
            let piece = piece_end(body, i, end, ASSEMBLY - carried);
            let (len, high) = decode_into(body, i, piece, &mut self.buf, carried);
            i = piece;
            check |= high;
            let whole = if check {
                match core::str::from_utf8(&self.buf[..len]) {
                    Ok(_) => len,
                    Err(e) if e.error_len().is_none() && i < end => e.valid_up_to(),
                    Err(_) => {
                        self.utf8 = false;
                        len
                    }
                }
            } else if i < end {
                len - cut_character(&self.buf[..len])
            } else {
                len
            };
            (self.sink)(&self.buf[..whole]);
            self.buf.copy_within(whole..len, 0);
            carried = len - whole;
        }
    }

    /// Hands the gathered bytes to the sink.
    pub(crate) fn flush(&mut self) {
        if self.len > 0 {
            (self.sink)(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

/// How many bytes at the end of `text` (UTF-8 but for its end) are the start of a character cut short:
/// a leading byte and fewer continuation bytes than it announces.
fn cut_character(text: &[u8]) -> usize {
    for back in 1..=text.len().min(3) {
        let byte = text[text.len() - back];
        if byte & 0xC0 != 0x80 {
            // Not a continuation byte: the last character starts here.
            let needs = match byte {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xFF => 4,
                _ => 1,
            };
            return if needs > back { back } else { 0 };
        }
    }
    0
}

/// Copies `body[start..end]` into `out` at `at`, sixteen bytes at a time; returns where it ends. `out`
/// needs room for `end - start + OVERSHOOT` bytes from `at`.
#[inline]
pub(super) fn copy_into(body: &[u8], start: usize, end: usize, out: &mut [u8], at: usize) -> usize {
    let (mut i, mut o) = (start, at);
    while i < end {
        if let Some(chunk) = body.get(i..i + 16) {
            out[o..o + 16].copy_from_slice(chunk);
        } else {
            copy_short(&mut out[o..o + (end - i)], &body[i..end]);
        }
        i += 16;
        o += 16;
    }
    at + (end - start)
}

/// `dst.copy_from_slice(src)`, with the short lengths of names and values (pre-split pairs are each
/// their own slice, so they cannot be copied as a fixed block) done by two fixed-size copies that may
/// overlap, instead of a call to `memcpy` per field.
#[inline]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let len = src.len();
    match len {
        0..4 => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = *s;
            }
        }
        4..8 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[len - 4..len].copy_from_slice(&src[len - 4..]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[len - 8..len].copy_from_slice(&src[len - 8..]);
        }
        17..=32 => {
            dst[..16].copy_from_slice(&src[..16]);
            dst[len - 16..len].copy_from_slice(&src[len - 16..]);
        }
        _ => dst.copy_from_slice(src),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::decode::Decoded;
    use super::super::tests::{assembled_field, canonical, decode};
    use super::*;
    use std::vec::Vec;

    #[test]
    fn long_fields_of_a_utf8_body_are_checked_from_their_first_high_escape() {
        // Fields longer than the assembly buffer are decoded a piece at a time; in a UTF-8 body the
        // pieces before the first escape of a high byte are not checked, yet a character they cut
        // must reach the first checked piece whole. Raw characters of every length, cut at every
        // place, then an escape that completes a character, or one that breaks the text.
        for character in ["é", "€", "😀"] {
            for lead in 0..4 {
                for (tail, utf8) in [("%C3%A9", true), ("%C3", false), ("%C3%A9%E2%82", false)] {
                    let mut raw = "a".repeat(lead).into_bytes();
                    while raw.len() < 3 * ASSEMBLY {
                        raw.extend_from_slice(character.as_bytes());
                        raw.extend_from_slice(b"+b");
                    }
                    raw.extend_from_slice(tail.as_bytes());
                    let expected: Vec<u8> = Decoded::new(&raw).collect();
                    assert_eq!(core::str::from_utf8(&expected).is_ok(), utf8);
                    for check_utf8 in [false, true] {
                        assert_eq!(
                            assembled_field(&raw, 0, raw.len(), check_utf8),
                            (utf8, expected.clone()),
                            "{character} {lead} {tail} {check_utf8}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_cut_character_is_found_at_the_end_of_text() {
        assert_eq!(cut_character(b""), 0);
        assert_eq!(cut_character(b"ab"), 0);
        for character in ["é", "€", "😀"] {
            let bytes = character.as_bytes();
            for cut in 0..=bytes.len() {
                let mut text = b"ab".to_vec();
                text.extend_from_slice(&bytes[..cut]);
                let expected = if cut == bytes.len() { 0 } else { cut };
                assert_eq!(cut_character(&text), expected, "{character} {cut}");
            }
        }
    }

    #[test]
    fn fields_longer_than_the_assembly_buffer_are_streamed_whole() {
        for len in [ASSEMBLY - 3, ASSEMBLY, ASSEMBLY + 1, 3 * ASSEMBLY + 2] {
            for unit in ["x", "%41", "+", "%C3%A9", "%"] {
                let field = unit.repeat(len / unit.len() + 1);
                let body = std::format!("b={field}&{field}=2&c=3");
                let mut pairs = [
                    (b"b".to_vec(), decode(&field)),
                    (decode(&field), b"2".to_vec()),
                    (b"c".to_vec(), b"3".to_vec()),
                ];
                pairs.sort();
                let expected: Vec<u8> = pairs
                    .into_iter()
                    .flat_map(|(n, v)| [n, v].concat())
                    .collect();
                let got = canonical(&body).unwrap();
                assert_eq!(got.as_bytes(), &expected[..], "{unit} x {len}");
            }
        }
    }

    #[test]
    fn short_copies_copy_every_byte() {
        let src: Vec<u8> = (1..=80).collect();
        for len in 0..=80 {
            let mut dst = [0u8; 80];
            copy_short(&mut dst[..len], &src[..len]);
            assert_eq!(dst[..len], src[..len], "{len}");
            assert!(dst[len..].iter().all(|&b| b == 0), "{len}");
        }
    }
}
