//! Form bodies and pre-split pairs: decoding, UTF-8 checking, and the canonical order of parameters.
//!
//! A form body is indexed into [`Span`]s in a caller's buffer in one pass, 64 bytes at a time
//! ([`Block`]: one bit per byte for `&`, `=` and escapes), that also notes which fields need decoding.
//! In a UTF-8 body only an escape of a byte above 0x7F can make a field's text something other than
//! UTF-8: the decoder reports those as it meets them when the field is decoded for the MAC, and only
//! then is the decoded text checked, so a large escaped field is decoded once. The spans are
//! sorted by their *decoded* (name, value): up to 64 by compact `u64` keys (7 name bytes, after any
//! that every name's prefix starts with, and the span's index), more with `sort_unstable_by` on a
//! 16-byte decoded prefix of the name kept in the span (taken after the part all names share, when they
//! share more than that); only on a tie is a name decoded on the fly, and equal neighbours are dropped.
//! The signed string is then put together in a stack buffer ([`Assembly`]): short plain fields copied
//! as one fixed-size block, escaped ones decoded sixteen bytes at a time (SSE2 on x86, two words
//! elsewhere: [`crate::scan`]), and handed to the HMAC in a few large updates; a field longer than the
//! buffer is streamed through it.

use core::cmp::Ordering;

use crate::scan::{bytes_eq, spaced, Block, BLOCK};
use crate::Error;

/// Bodies are indexed with 31-bit offsets; the top bit of an end offset marks "needs decoding", of a
/// start offset "its decoded bytes need a UTF-8 check" (done as the field is assembled).
pub(crate) const MAX_BODY_LEN: usize = (1 << 31) - 1;
const ESCAPED: u32 = 1 << 31;
const CHECK_UTF8: u32 = 1 << 31;

/// One parameter's place in the scratch buffer that sorting works in.
///
/// Opaque: callers only choose how many there are, which bounds the number of parameters a request may
/// have (see [`crate::Validator::verify_with_scratch`]). 32 bytes each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// The first 16 decoded bytes of the name, big-endian, zero-padded: most comparisons end here.
    prefix: u128,
    name_start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
}

impl Span {
    /// An unused span, for initialising buffers: `[Span::EMPTY; 1024]`.
    pub const EMPTY: Self = Self {
        prefix: 0,
        name_start: 0,
        name_end: 0,
        value_start: 0,
        value_end: 0,
    };

    fn field(start: u32, end: u32) -> Field {
        Field {
            start: (start & !CHECK_UTF8) as usize,
            end: (end & !ESCAPED) as usize,
            escaped: end & ESCAPED != 0,
            check_utf8: start & CHECK_UTF8 != 0,
        }
    }

    fn name(self) -> Field {
        Self::field(self.name_start, self.name_end)
    }

    fn value(self) -> Field {
        Self::field(self.value_start, self.value_end)
    }

    /// For pre-split pairs, a span is just the pair's index (and the name's prefix).
    fn pair_index(self) -> usize {
        self.name_start as usize
    }
}

/// The first 16 bytes of `raw`, big-endian, zero-padded, two words at a time. Two names whose prefixes
/// differ compare as their prefixes do: at the first differing byte either both have a real byte, or the
/// shorter name is a prefix of the longer one and its zero padding is below the longer one's non-zero
/// byte.
fn prefix_of_raw(raw: &[u8]) -> u128 {
    let (high, low) = raw.split_at(raw.len().min(8));
    let big_endian = |bytes: &[u8]| u128::from(word_of(&bytes[..bytes.len().min(8)]).swap_bytes());
    big_endian(high) << 64 | big_endian(low)
}

/// A name or value inside a form body.
#[derive(Clone, Copy)]
struct Field {
    start: usize,
    end: usize,
    escaped: bool,
    /// Its decoded bytes may not be UTF-8: checked when they are assembled.
    check_utf8: bool,
}

impl Field {
    fn raw(self, body: &[u8]) -> &[u8] {
        &body[self.start..self.end]
    }

    #[cfg(test)]
    fn decoded(self, body: &[u8]) -> Decoded<'_> {
        Decoded::new(self.raw(body))
    }
}

/// The bytes of a form-encoded field, decoded: `+` is a space, `%XX` a byte, and a `%` not followed by two
/// hex digits stands for itself.
#[derive(Clone)]
pub(crate) struct Decoded<'a> {
    raw: &'a [u8],
}

impl<'a> Decoded<'a> {
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

/// How many bytes past its text [`decode_into`] and [`copy_into`] may write: they store whole words.
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
fn decode_into(body: &[u8], start: usize, end: usize, out: &mut [u8], at: usize) -> (usize, bool) {
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
fn sixteen(body: &[u8], at: usize) -> &[u8; 16] {
    body[at..at + 16].try_into().unwrap_or(&[0; 16])
}

/// Copies `body[start..end]` into `out` at `at`, sixteen bytes at a time; returns where it ends. `out`
/// needs room for `end - start + OVERSHOOT` bytes from `at`.
#[inline]
fn copy_into(body: &[u8], start: usize, end: usize, out: &mut [u8], at: usize) -> usize {
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

/// Where to end a piece of `body[start..end]` of at most `max` raw bytes so that no escape is cut: an
/// escape that the cut would split starts at a `%` one or two bytes before it (hex digits are never `%`).
fn piece_end(body: &[u8], start: usize, end: usize, max: usize) -> usize {
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

/// The first 16 decoded bytes of an escaped field, as [`prefix_of_raw`] gives a plain one's.
fn prefix_of_escaped(body: &[u8], start: usize, end: usize) -> u128 {
    // 16 escapes are 48 raw bytes; a cut before a split escape loses at most 2 more.
    let mut buf = [0u8; 56 + OVERSHOOT];
    let (len, _) = decode_into(body, start, piece_end(body, start, end, 56), &mut buf, 0);
    let prefix = u128::from_be_bytes(buf[..16].try_into().unwrap_or_default());
    match len {
        0 => 0,
        1..16 => prefix & !(u128::MAX >> (8 * len)),
        _ => prefix,
    }
}

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
const ASSEMBLY: usize = 1024;

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
    fn field(&mut self, body: &[u8], field: Field) {
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

fn cmp_fields(body: &[u8], a: Field, b: Field) -> Ordering {
    if a.escaped || b.escaped {
        cmp_escaped(a.raw(body), b.raw(body))
    } else {
        cmp_bytes(a.raw(body), b.raw(body))
    }
}

/// The order of two fields' decoded bytes. Their common raw prefix decodes the same way in both except
/// for an escape that the first difference cuts: one that starts at a `%` one or two bytes before it
/// (hex digits are never `%`, so a `%` always starts a piece of its own). Decoding starts at that `%`,
/// or at the difference: long shared prefixes (many names alike, fully escaped) are skipped a word at a
/// time instead of decoded.
fn cmp_escaped(a: &[u8], b: &[u8]) -> Ordering {
    let differ = common_prefix_len(a, b);
    // The piece of text holding the first difference starts there, or at a `%` just before it.
    let start = (differ.saturating_sub(2)..differ)
        .find(|&i| a[i] == b'%')
        .unwrap_or(differ);
    Decoded::new(&a[start..]).cmp(Decoded::new(&b[start..]))
}

/// How many leading bytes `a` and `b` share, a word at a time.
fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    let mut at = 0;
    while let (Some(x), Some(y)) = (a.get(at..at + 8), b.get(at..at + 8)) {
        let diff = word_of(x) ^ word_of(y);
        if diff != 0 {
            return at + diff.trailing_zeros() as usize / 8;
        }
        at += 8;
    }
    at + a[at..]
        .iter()
        .zip(&b[at..])
        .take_while(|(x, y)| x == y)
        .count()
}

fn cmp_spans(body: &[u8], a: &Span, b: &Span) -> Ordering {
    a.prefix
        .cmp(&b.prefix)
        .then_with(|| cmp_fields(body, a.name(), b.name()))
        .then_with(|| cmp_fields(body, a.value(), b.value()))
}

/// A name or value found by the indexing pass, before it becomes half of a [`Span`].
#[derive(Clone, Copy)]
struct Found {
    start: usize,
    end: usize,
    /// Contains `%` or `+`: must be decoded.
    escaped: bool,
}

impl Found {
    /// An empty field starting at `at`.
    fn at(at: usize) -> Self {
        Self {
            start: at,
            end: at,
            escaped: false,
        }
    }

    fn end_offset(self) -> u32 {
        // Offsets fit in 31 bits: `index_form` refuses larger bodies first.
        self.end as u32 | if self.escaped { ESCAPED } else { 0 }
    }

    /// Checks what can be checked of the field's UTF-8 now: `Err` when the field is not UTF-8, `Ok(true)`
    /// when its decoded bytes must all be checked when it is assembled, `Ok(false)` when they are UTF-8
    /// unless an escape decodes to a byte above 0x7F. That is all a field of a UTF-8 body needs (ASCII
    /// bytes swapped for ASCII bytes leave every character whole), and the decoder reports such escapes
    /// as it meets them, so [`Assembly`] checks those fields alone.
    #[inline]
    fn utf8_check(self, body: &[u8], body_is_utf8: bool) -> Result<bool, Error> {
        if body_is_utf8 {
            Ok(false)
        } else if self.escaped {
            Ok(true)
        } else {
            self.check_raw_utf8(body).map(|()| false)
        }
    }

    #[cold]
    fn check_raw_utf8(self, body: &[u8]) -> Result<(), Error> {
        core::str::from_utf8(&body[self.start..self.end])
            .map(|_| ())
            .map_err(|_| Error::MalformedBody)
    }

    fn start_offset(self, check_utf8: bool) -> u32 {
        self.start as u32 | if check_utf8 { CHECK_UTF8 } else { 0 }
    }
}

/// The bytes of `chunk` (at most 8) as a little-endian word, zero-padded.
fn word_of(chunk: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(chunk) {
        Ok(word) => u64::from_le_bytes(word),
        Err(_) => chunk
            .iter()
            .rev()
            .fold(0, |word, &b| word << 8 | u64::from(b)),
    }
}

/// Lexicographic order of two byte strings, a word at a time (names are short, and a call to `memcmp`
/// costs more than comparing them).
fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let mut at = 0;
    while let (Some(x), Some(y)) = (a.get(at..at + 8), b.get(at..at + 8)) {
        let (x, y) = (word_of(x).swap_bytes(), word_of(y).swap_bytes());
        if x != y {
            return x.cmp(&y);
        }
        at += 8;
    }
    let (a, b) = (&a[at..], &b[at..]);
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// The first 16 bytes of `body[start..end]` as [`prefix_of_raw`] gives them, with one load when the
/// body has 16 bytes from `start`.
fn prefix_in(body: &[u8], start: usize, end: usize) -> u128 {
    match body.get(start..start + 16) {
        Some(chunk) => {
            u128::from_be_bytes(chunk.try_into().unwrap_or_default())
                & PREFIX_MASKS[(end - start).min(16)]
        }
        None => prefix_of_raw(&body[start..end]),
    }
}

/// The mask that keeps the first `len` bytes of a big-endian `u128`, for each `len` up to 16.
const PREFIX_MASKS: [u128; 17] = {
    let mut masks = [0; 17];
    let mut len = 1;
    while len < 16 {
        masks[len] = !(u128::MAX >> (8 * len));
        len += 1;
    }
    masks[16] = u128::MAX;
    masks
};

/// Indexes a form body into `scratch`, then sorts and de-duplicates it. Returns the spans in canonical
/// order.
///
/// The decoded bytes of escaped fields are not checked here: the second value returned is true when
/// there are any, and [`Assembly`] checks those whose escapes decode to bytes above 0x7F (or, in a body
/// that is not UTF-8, all of them) as it decodes them.
pub(crate) fn index_form<'s>(
    body: &[u8],
    scratch: &'s mut [Span],
) -> Result<(&'s [Span], bool), Error> {
    if body.len() > MAX_BODY_LEN {
        return Err(Error::BodyTooLarge);
    }
    // Twilio escapes every byte outside ASCII, so a body is nearly always ASCII, hence UTF-8: the pass
    // assumes it is, and notes whether every byte was ASCII. Only when one was not, and the body turns
    // out not to be UTF-8, is the body indexed again with every field's UTF-8 checked. (An overflow
    // may have stopped the pass early, before a malformed field it would have refused first.)
    let utf8 = || core::str::from_utf8(body).is_ok();
    let (count, unchecked) = match scan_form::<true>(body, scratch) {
        Ok(Scanned {
            count,
            unchecked,
            ascii,
        }) if ascii || utf8() => (count, unchecked),
        Err(Error::TooManyParams) if !utf8() => {
            let scanned = scan_form::<false>(body, scratch)?;
            (scanned.count, scanned.unchecked)
        }
        Err(error) => return Err(error),
        Ok(_) => {
            let scanned = scan_form::<false>(body, scratch)?;
            (scanned.count, scanned.unchecked)
        }
    };
    Ok((sort_form(body, scratch, count), unchecked))
}

/// What [`scan_form`] found.
struct Scanned {
    count: usize,
    unchecked: bool,
    /// Every byte of the body is ASCII.
    ascii: bool,
}

/// The indexing pass: puts the body's parameters in `scratch` (unsorted). With `BODY_IS_UTF8`, trusts
/// that the raw body is UTF-8 and checks only what escapes decode to.
fn scan_form<const BODY_IS_UTF8: bool>(
    body: &[u8],
    scratch: &mut [Span],
) -> Result<Scanned, Error> {
    let mut ascii = true;
    let mut index = Index::<BODY_IS_UTF8> {
        body,
        scratch,
        count: 0,
        unchecked: false,
    };
    // One pass, a block of 64 bytes at a time (see [`Block`]), one step per `&`: it ends a segment,
    // whose name ends at its first `=`, found by mask. A field is escaped if it has a `%` or `+`: a bit
    // of the block's escapes between the field's two ends.
    let mut start = 0;
    // The open segment's first `=` and whether its name is escaped, once found.
    let mut equals = None;
    // Whether the open field (the name until `equals`, then the value) has escapes in earlier blocks.
    let mut carried = false;
    let mut p = 0;
    while p < body.len() {
        let block = if let Some(bytes) = body.get(p..p + BLOCK) {
            Block::of(bytes.try_into().unwrap_or(&[0; BLOCK]))
        } else {
            // The last block, padded with zeros (which are none of the bytes looked for).
            let mut tail = [0; BLOCK];
            tail[..body.len() - p].copy_from_slice(&body[p..]);
            Block::of(&tail)
        };
        ascii &= block.ascii;
        // The bits of this block from the open segment's start (or the block's).
        let mut open = u64::MAX;
        let mut ampersands = block.ampersands;
        while ampersands != 0 {
            let bit = ampersands.trailing_zeros();
            ampersands &= ampersands - 1;
            // The segment's bits in this block: from `open` up to the `&`.
            let segment = open & ((1u64 << bit) - 1);
            let field = open_field(&mut equals, carried, &block, segment, p);
            index.segment(start, equals, p + bit as usize, field)?;
            (start, equals, carried) = (p + bit as usize + 1, None, false);
            // The next segment's bits (the `&` itself is neither `=` nor an escape).
            open = u64::MAX << bit;
        }
        carried = open_field(&mut equals, carried, &block, open, p);
        p += BLOCK;
    }
    index.segment(start, equals, body.len(), carried)?;
    Ok(Scanned {
        count: index.count,
        unchecked: index.unchecked,
        ascii,
    })
}

/// Takes the open segment's `segment` bits of `block` (at `p` in the body) into account: finds its
/// first `=` there if it has none yet, and returns whether the field open after them (the name when
/// there is still no `=`, else the value) is escaped, `carried` telling whether it was before them.
#[inline]
fn open_field(
    equals: &mut Option<(usize, bool)>,
    carried: bool,
    block: &Block,
    segment: u64,
    p: usize,
) -> bool {
    let escapes = block.escapes & segment;
    match *equals {
        None if block.equals & segment != 0 => {
            let bit = (block.equals & segment).trailing_zeros();
            let below = (1u64 << bit) - 1;
            *equals = Some((p + bit as usize, carried || escapes & below != 0));
            escapes & !below != 0
        }
        _ => carried || escapes != 0,
    }
}

/// The indexing pass's output so far: spans in `scratch[..count]`.
struct Index<'b, 's, const BODY_IS_UTF8: bool> {
    body: &'b [u8],
    scratch: &'s mut [Span],
    count: usize,
    /// Whether some span's decoded bytes are left for [`Assembly`] to check.
    unchecked: bool,
}

impl<const BODY_IS_UTF8: bool> Index<'_, '_, BODY_IS_UTF8> {
    /// Adds the segment `body[start..end]`, its name ending at `equals` (or at `end`); `escaped`
    /// tells whether the last field has escapes, as `equals` does for the name.
    #[allow(
        clippy::inline_always,
        reason = "measured: not inlined, the call per parameter costs 15% of indexing a webhook"
    )]
    #[inline(always)]
    fn segment(
        &mut self,
        start: usize,
        equals: Option<(usize, bool)>,
        end: usize,
        escaped: bool,
    ) -> Result<(), Error> {
        let field = |start, end, escaped| Found {
            start,
            end,
            escaped,
        };
        match equals {
            Some((at, name)) => self.push(field(start, at, name), field(at + 1, end, escaped)),
            None => self.push(field(start, end, escaped), Found::at(end)),
        }
    }

    #[allow(
        clippy::inline_always,
        reason = "measured: not inlined, the call per parameter costs 15% of indexing a webhook"
    )]
    #[inline(always)]
    fn push(&mut self, name: Found, value: Found) -> Result<(), Error> {
        if name.start == value.end {
            return Ok(()); // an empty segment (`&&`)
        }
        let body = self.body;
        let check_name = name.utf8_check(body, BODY_IS_UTF8)?;
        let check_value = value.utf8_check(body, BODY_IS_UTF8)?;
        // An escaped field may decode to something other than UTF-8, found as it is assembled.
        self.unchecked |= name.escaped | value.escaped;
        let prefix = if name.escaped {
            prefix_of_escaped(body, name.start, name.end)
        } else {
            prefix_in(body, name.start, name.end)
        };
        *self
            .scratch
            .get_mut(self.count)
            .ok_or(Error::TooManyParams)? = Span {
            prefix,
            name_start: name.start_offset(check_name),
            name_end: name.end_offset(),
            value_start: value.start_offset(check_value),
            value_end: value.end_offset(),
        };
        self.count += 1;
        Ok(())
    }
}

/// Puts a form's spans (`scratch[..count]`) in canonical order and drops equal neighbours; returns the
/// kept spans, at the start of `scratch` or, for a small form, just after its spans when there is room.
fn sort_form<'s>(body: &[u8], scratch: &'s mut [Span], count: usize) -> &'s [Span] {
    rebase_prefixes(body, &mut scratch[..count]);
    sort_and_dedup(scratch, count, |a, b| cmp_spans(body, a, b))
}

/// Puts `scratch[..count]` in order by their prefixes, then `cmp` where those are equal, and drops
/// equal neighbours; returns the kept spans: at the start of `scratch` or, for a small set, just after
/// the spans when there is room. Shared by forms and pre-split pairs.
fn sort_and_dedup(
    scratch: &mut [Span],
    count: usize,
    cmp: impl Fn(&Span, &Span) -> Ordering,
) -> &[Span] {
    let (spans, spare) = scratch.split_at_mut(count);
    // Prefixes decide nearly every comparison: compared here, inline, and `cmp` called only on a tie.
    let cmp = |a: &Span, b: &Span| match a.prefix.cmp(&b.prefix) {
        Ordering::Equal => cmp(a, b),
        order => order,
    };
    if count > SMALL_SORT {
        spans.sort_unstable_by(cmp);
        dedup(spans, |a, b| cmp(a, b).is_eq())
    } else if let Some(spare) = spare.get_mut(..count) {
        let kept = sort_small(spans, spare, cmp);
        &spare[..kept]
    } else {
        let mut sorted = [Span::EMPTY; SMALL_SORT];
        let kept = sort_small(spans, &mut sorted[..count], cmp);
        spans[..kept].copy_from_slice(&sorted[..kept]);
        &spans[..kept]
    }
}

/// The fewest keys [`sort_small`] hands to `sort_unstable` when it has more than
/// [`INSERTION_SORT`]: `sort_unstable` sorts fewer than this by insertion.
const NETWORK_SORT: usize = 21;

/// Up to this many keys [`sort_small`] hands to `sort_unstable` as they are, which sorts so few by
/// insertion (a branch or more per key, fewer than the padded sorting network costs).
const INSERTION_SORT: usize = 8;

/// Up to this many spans are sorted by [`sort_small`] (a real webhook has 10 to 40 parameters).
const SMALL_SORT: usize = 64;

/// Sorts a few spans by compact keys: 7 bytes of the name's prefix (its first 7, or the 7 after the
/// bytes every prefix starts with) and the span's index in one `u64`, so the sort moves and compares
/// single words (a real webhook's names differ in their first 7 bytes); names whose keys share those 7
/// bytes are then put in order among themselves by the full comparison. The spans are copied in the
/// keys' order into `sorted` (as long as `spans`), each equal to the one before it dropped; returns how
/// many are kept. Only spans whose keys share those 7 bytes can be equal, so only they are compared
/// again. `cmp` must order by the prefix first, as [`sort_and_dedup`]'s does: the keys are taken from
/// it.
fn sort_small(
    spans: &[Span],
    sorted: &mut [Span],
    cmp: impl Fn(&Span, &Span) -> Ordering,
) -> usize {
    let n = spans.len();
    // More than INSERTION_SORT keys are padded with keys above every real one (whose last byte, the
    // index, is below 64) to at least NETWORK_SORT: `sort_unstable` sorts that many with sorting
    // networks and merges, where below it an insertion sort mispredicts a branch or more per key.
    let mut keys = [u64::MAX; SMALL_SORT];
    // The bytes every prefix starts with (names such as `Param001`, `Param002`) cannot order anything:
    // the keys take their 7 bytes after them (from the first 9 at most, so 7 are left).
    let first = spans.first().map_or(0, |span| span.prefix);
    let differ = spans
        .iter()
        .fold(0, |differ, span| differ | (span.prefix ^ first));
    let shared = (differ.leading_zeros() / 8).min(9);
    for (index, (key, span)) in keys.iter_mut().zip(spans.iter()).enumerate() {
        *key = ((span.prefix << (8 * shared) >> 64) as u64 & !0xFF) | index as u64;
    }
    let padded = if n <= INSERTION_SORT {
        n
    } else {
        n.max(NETWORK_SORT)
    };
    keys[..padded].sort_unstable();
    let keys = &mut keys[..n];
    let span_of = |key: u64| &spans[(key & 0xFF) as usize];
    let mut kept = 0;
    let mut i = 0;
    while i < n {
        let bytes = keys[i] >> 8;
        if keys.get(i + 1).is_some_and(|next| next >> 8 == bytes) {
            // A run of keys that share their 7 bytes (the padding keys are past `n`): put in order by
            // the full comparison, and each span equal to the one before it dropped.
            let mut j = i + 2;
            while j < n && keys[j] >> 8 == bytes {
                j += 1;
            }
            insertion_sort_by(&mut keys[i..j], |a, b| {
                cmp(span_of(*a), span_of(*b)).is_lt()
            });
            sorted[kept] = *span_of(keys[i]);
            kept += 1;
            for &key in &keys[i + 1..j] {
                if cmp(&sorted[kept - 1], span_of(key)).is_ne() {
                    sorted[kept] = *span_of(key);
                    kept += 1;
                }
            }
            i = j;
        } else {
            sorted[kept] = *span_of(keys[i]);
            kept += 1;
            i += 1;
        }
    }
    kept
}

/// Insertion sort of a short run (names whose keys share their 7 bytes).
fn insertion_sort_by<T: Copy>(items: &mut [T], less: impl Fn(&T, &T) -> bool) {
    for i in 1..items.len() {
        let current = items[i];
        let mut j = i;
        while j > 0 && less(&current, &items[j - 1]) {
            items[j] = items[j - 1];
            j -= 1;
        }
        items[j] = current;
    }
}

/// When every name starts with the same 16 decoded bytes, the prefixes cannot order anything and each
/// comparison would decode the names from their start. Then the raw bytes all names share (never
/// cutting an escape) decode alike in all of them, so each prefix is taken again after them: the names
/// still compare as their new prefixes do. Costs one look at each name's shared part; other bodies pay
/// one comparison of prefixes, or a few.
fn rebase_prefixes(body: &[u8], spans: &mut [Span]) {
    let Some((first, rest)) = spans.split_first() else {
        return;
    };
    if rest.is_empty() || rest.iter().any(|s| s.prefix != first.prefix) {
        return;
    }
    let name_of = |s: &Span| s.name().raw(body);
    let shared = name_of(first);
    let mut len = shared.len();
    for span in rest {
        len = common_prefix_len(&shared[..len], name_of(span));
    }
    // Back to the start of an escape the shared part would cut (hex digits are never `%`).
    if len >= 1 && shared[len - 1] == b'%' {
        len -= 1;
    } else if len >= 2 && shared[len - 2] == b'%' {
        len -= 2;
    }
    if len == 0 {
        return;
    }
    for span in spans {
        let name = span.name();
        span.prefix = prefix_of_escaped(body, name.start + len, name.end);
    }
}

/// Indexes pre-split pairs into `scratch`, then sorts and de-duplicates them.
pub(crate) fn index_pairs<'s>(
    pairs: &[(&str, &str)],
    scratch: &'s mut [Span],
) -> Result<&'s [Span], Error> {
    if pairs.len() > scratch.len() || u32::try_from(pairs.len()).is_err() {
        return Err(Error::TooManyParams);
    }
    for (index, (span, (name, _))) in scratch.iter_mut().zip(pairs).enumerate() {
        *span = Span {
            prefix: prefix_of_raw(name.as_bytes()),
            name_start: index as u32,
            ..Span::EMPTY
        };
    }
    let pair = |s: &Span| pairs[s.pair_index()];
    Ok(sort_and_dedup(scratch, pairs.len(), |a, b| {
        let (a, b) = (pair(a), pair(b));
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
    }))
}

/// Keeps the first of each run of equal neighbours; returns the kept prefix.
fn dedup(spans: &mut [Span], same: impl Fn(&Span, &Span) -> bool) -> &[Span] {
    let mut kept = 0;
    for i in 0..spans.len() {
        if kept == 0 || !same(&spans[kept - 1], &spans[i]) {
            spans[kept] = spans[i];
            kept += 1;
        }
    }
    &spans[..kept]
}

/// How many parameters ahead [`Params::feed`] reads in a form of more than [`SMALL_SORT`].
const TOUCH_AHEAD: usize = 16;

/// The parameters a signature covers, in canonical order.
#[derive(Clone, Copy)]
pub(crate) enum Params<'a> {
    /// JSON bodies and GET requests: the signature covers the URL alone.
    None,
    Form {
        body: &'a [u8],
        spans: &'a [Span],
    },
    Pairs {
        pairs: &'a [(&'a str, &'a str)],
        spans: &'a [Span],
    },
}

impl Params<'_> {
    /// Whether there are no parameters to sign (a GET, an empty form, a JSON body).
    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Self::None => true,
            Self::Form { spans, .. } | Self::Pairs { spans, .. } => spans.is_empty(),
        }
    }

    /// Appends `name ++ value` for each parameter, in order.
    pub(crate) fn feed<S: FnMut(&[u8])>(&self, out: &mut Assembly<'_, S>) {
        match *self {
            Self::None => {}
            // A small form's body is in cache already.
            Self::Form { body, spans } if spans.len() <= SMALL_SORT => {
                for span in spans {
                    out.field(body, span.name());
                    out.field(body, span.value());
                }
            }
            Self::Form { body, spans } => {
                // Many parameters, in sorted order, are all over a large body: read a byte of the
                // parameter some places ahead, so its cache miss overlaps this one's work.
                for (i, span) in spans.iter().enumerate() {
                    if let Some(ahead) = spans.get(i + TOUCH_AHEAD) {
                        core::hint::black_box(body.get(ahead.name().start).copied());
                    }
                    out.field(body, span.name());
                    out.field(body, span.value());
                }
            }
            Self::Pairs { pairs, spans } => {
                for span in spans {
                    let (name, value) = pairs[span.pair_index()];
                    out.write(name.as_bytes());
                    out.write(value.as_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn decode(s: &str) -> Vec<u8> {
        Decoded::new(s.as_bytes()).collect()
    }

    /// The canonical parameters of a form body as verify puts them together (indexed, sorted,
    /// assembled, the decoded UTF-8 checks done as it assembles), or the body's error.
    fn assembled(body: &[u8], scratch: &mut [Span]) -> Result<Vec<u8>, Error> {
        let (spans, unchecked) = index_form(body, scratch)?;
        let mut out = Vec::new();
        let mut sink = |b: &[u8]| out.extend_from_slice(b);
        let mut assembly = Assembly::new(&mut sink);
        Params::Form { body, spans }.feed(&mut assembly);
        let utf8 = assembly.finish();
        // Fields are only left unchecked when the index says so.
        assert!(utf8 || unchecked, "{body:?}");
        if utf8 {
            Ok(out)
        } else {
            Err(Error::MalformedBody)
        }
    }

    fn canonical(body: &str) -> Result<std::string::String, Error> {
        let out = assembled(body.as_bytes(), &mut [Span::EMPTY; 64])?;
        Ok(std::string::String::from_utf8(out).unwrap())
    }

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
    fn empty_segments_are_skipped_and_blank_values_kept() {
        assert_eq!(canonical("&&b=&a&&c=1&").unwrap(), "abc1");
    }

    #[test]
    fn names_then_values_sort_by_decoded_bytes_and_duplicates_count_once() {
        assert_eq!(
            canonical("b=2&a=z&b=1&a=y&b=2&a%3D=0").unwrap(),
            "ayaza=0b1b2"
        );
    }

    #[test]
    fn decoded_names_and_values_must_be_utf8() {
        assert_eq!(canonical("a=%FF"), Err(Error::MalformedBody));
        assert_eq!(canonical("%C3=1"), Err(Error::MalformedBody));
        assert_eq!(canonical("a=%C3%A9").unwrap(), "aé");
    }

    #[test]
    fn utf8_split_across_decode_chunks_is_accepted() {
        for pad in 120..132 {
            let body = std::format!("a={}{}", "x".repeat(pad), "%F0%9F%98%80".repeat(40));
            assert!(canonical(&body).is_ok(), "pad {pad}");
            let broken = std::format!("a={}%F0%9F%98", "x".repeat(pad));
            assert_eq!(canonical(&broken), Err(Error::MalformedBody), "pad {pad}");
        }
    }

    #[test]
    fn utf8_is_judged_on_decoded_bytes_whatever_the_raw_body_is() {
        // Raw body not UTF-8, decoded field is: `%C3` then a raw continuation byte make `é`.
        let body = b"a=%C3\xA9";
        let mut scratch = [Span::EMPTY; 4];
        assert_eq!(assembled(body, &mut scratch).unwrap(), "a\u{e9}".as_bytes());
        // Raw body UTF-8, decoded field is not: an escaped continuation after a whole `é`.
        assert_eq!(canonical("a=\u{e9}%A9"), Err(Error::MalformedBody));
        assert_eq!(canonical("%FF%FF=1&b=2"), Err(Error::MalformedBody));
        // Low escapes and `+` around raw multi-byte characters leave them whole.
        assert_eq!(
            canonical("a=\u{e9}%20\u{1F600}+x").unwrap(),
            "a\u{e9} \u{1F600} x"
        );
        // A raw stray byte is refused even when the field has escapes.
        assert_eq!(
            assembled(b"a=%41\xff", &mut scratch),
            Err(Error::MalformedBody)
        );
        assert_eq!(
            index_form(b"a\xff=1", &mut scratch).err(),
            Some(Error::MalformedBody)
        );
    }

    #[test]
    fn names_sharing_long_prefixes_and_nul_bytes_sort_by_all_their_bytes() {
        let names = [
            "abcdefghB",
            "abcdefghA",
            "abcdefgh",
            "ab",
            "ab%00",
            "ab%00%00",
            "a",
            "",
            "abcdefgh%00",
            "abcdefg%C3%BF",
            "%61bcdefghC",
            "b",
        ];
        let body = names.join("=v&") + "=v";
        let mut expected: Vec<Vec<u8>> = names.iter().map(|n| decode(n)).collect();
        expected.sort();
        let mut scratch = [Span::EMPTY; 16];
        let (spans, _) = index_form(body.as_bytes(), &mut scratch).unwrap();
        let got: Vec<Vec<u8>> = spans
            .iter()
            .map(|s| s.name().decoded(body.as_bytes()).collect())
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn word_at_a_time_helpers_agree_with_byte_loops() {
        let alphabet = [
            0u8, 1, b'%', b'&', b'+', b'=', b'a', b'7', b'8', 0x7F, 0x80, 0xA6, 0xFF,
        ];
        let mut next = crate::test_rng(1u64);
        for _ in 0..20_000 {
            let mut bytes = [0u8; 20];
            for b in &mut bytes {
                *b = alphabet[next() % alphabet.len()];
            }
            let (la, lb) = (next() % 21, next() % 21);
            let (a, b) = (&bytes[..la], &bytes[20 - lb..]);
            assert_eq!(cmp_bytes(a, b), a.cmp(b), "{a:?} {b:?}");
            let chunk = &bytes[..next() % 9];
            let word = word_of(chunk);
            let mask = b"&=%+".iter().fold(0, |m, &b| m | bytes_eq(word, b));
            for i in 0..8 {
                let special = chunk.get(i).is_some_and(|b| b"&=%+".contains(b));
                assert_eq!(mask >> (8 * i + 7) & 1 == 1, special, "{chunk:?} byte {i}");
            }
        }
    }

    #[test]
    fn escaped_fields_compare_as_their_decoded_bytes_whatever_they_share() {
        let alphabet: [&[u8]; 9] = [b"%", b"4", b"1", b"%41", b"A", b"+", b" ", b"%2", b"z"];
        let mut next = crate::test_rng(7u64);
        for _ in 0..50_000 {
            let shared: Vec<u8> = (0..next() % 6)
                .flat_map(|_| alphabet[next() % 9].to_vec())
                .collect();
            let mut tail = || -> Vec<u8> {
                (0..next() % 4)
                    .flat_map(|_| alphabet[next() % 9].to_vec())
                    .collect()
            };
            let (a, b) = (
                [&shared[..], &tail()].concat(),
                [&shared[..], &tail()].concat(),
            );
            let expected = decode(std::str::from_utf8(&a).unwrap())
                .cmp(&decode(std::str::from_utf8(&b).unwrap()));
            assert_eq!(
                cmp_escaped(&a, &b),
                expected,
                "{:?} {:?}",
                std::str::from_utf8(&a),
                std::str::from_utf8(&b)
            );
        }
    }

    /// A deterministic byte string over an alphabet that stresses the decoder: escapes of low and high
    /// bytes, stray `%`, `+`, a UTF-8 character, separators.
    fn random_raw(next: &mut impl FnMut() -> usize, max_pieces: usize) -> Vec<u8> {
        let alphabet: [&[u8]; 20] = [
            b"%",
            b"+",
            b"4",
            b"A",
            b"f",
            b"%41",
            b"%c3%a9",
            b"%C3",
            b"%F0%9F%98%80",
            b"\xc3\xa9",
            b"&",
            b"abcdefghij",
            b"9",
            b"F",
            b"G",
            b"@",
            b"`",
            b":",
            b"/",
            b"%9f",
        ];
        (0..next() % (max_pieces + 1))
            .flat_map(|_| alphabet[next() % alphabet.len()].to_vec())
            .collect()
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

    /// An escaped field as [`Assembly`] puts it together after one byte: whether it passed the UTF-8
    /// checks, and its decoded bytes.
    fn assembled_field(body: &[u8], start: usize, end: usize, check_utf8: bool) -> (bool, Vec<u8>) {
        let mut got = Vec::new();
        let mut sink = |b: &[u8]| got.extend_from_slice(b);
        let mut assembly = Assembly::new(&mut sink);
        let field = Field {
            start,
            end,
            escaped: true,
            check_utf8,
        };
        assembly.write(b"x");
        assembly.field(body, field);
        let utf8 = assembly.finish();
        got.remove(0);
        (utf8, got)
    }

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
    fn names_sharing_more_than_a_prefix_sort_by_what_follows() {
        let alphabet: [&str; 9] = ["%", "4", "1", "%41", "A", "+", "%2", "z", "%C3%A9"];
        let mut next = crate::test_rng(11u64);
        for round in 0..3_000 {
            // All names share 17 decoded bytes (raw or escaped), then differ, often right at an escape.
            let shared = if round % 2 == 0 {
                "x".repeat(17)
            } else {
                "%78".repeat(17)
            };
            let names: Vec<std::string::String> = (0..2 + next() % 6)
                .map(|_| {
                    let tail: std::string::String = (0..next() % 4)
                        .map(|_| alphabet[next() % alphabet.len()])
                        .collect();
                    std::format!("{shared}{tail}")
                })
                .collect();
            let body = names.join("=v&") + "=v";
            let mut expected: Vec<Vec<u8>> = names.iter().map(|n| decode(n)).collect();
            expected.sort();
            expected.dedup();
            let mut scratch = [Span::EMPTY; 8];
            if expected.iter().any(|n| core::str::from_utf8(n).is_err()) {
                assert_eq!(
                    assembled(body.as_bytes(), &mut scratch),
                    Err(Error::MalformedBody),
                    "{body}"
                );
                continue;
            }
            let (spans, _) = index_form(body.as_bytes(), &mut scratch).unwrap();
            let got: Vec<Vec<u8>> = spans
                .iter()
                .map(|s| s.name().decoded(body.as_bytes()).collect())
                .collect();
            assert_eq!(got, expected, "{body}");
        }
    }

    #[test]
    fn long_escaped_fields_index_and_assemble_like_a_naive_decoder() {
        let mut next = crate::test_rng(5u64);
        for round in 0..3_000 {
            // Long fields (escaped or not, with or without high escapes) cross many words, so the
            // indexing pass's word loops and the decoder's runs are all exercised.
            let fields: Vec<Vec<u8>> = (0..2 * (1 + next() % 4))
                .map(|i| {
                    let mut field = random_raw(&mut next, 60);
                    // Now and then a first value longer than the assembly buffer: raw characters
                    // (which its pieces cut at varying places) before its first escapes.
                    if i == 1 && round % 10 == 0 {
                        let (mut long, len) = (Vec::new(), ASSEMBLY - 100 + next() % 1300);
                        while long.len() < len {
                            long.extend_from_slice(["é", "€+", "😀", "ab"][next() % 4].as_bytes());
                        }
                        long.append(&mut field);
                        field = long;
                    }
                    field.retain(|&b| b != b'&' && b != b'=');
                    field
                })
                .collect();
            let mut body = Vec::new();
            for (i, pair) in fields.chunks(2).enumerate() {
                if i > 0 {
                    body.push(b'&');
                }
                body.extend_from_slice(&pair[0]);
                body.push(b'=');
                body.extend_from_slice(&pair[1]);
            }
            let decoded = |raw: &[u8]| -> Vec<u8> { Decoded::new(raw).collect() };
            let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = fields
                .chunks(2)
                .filter(|pair| !(pair[0].is_empty() && pair[1].is_empty()))
                .map(|pair| (decoded(&pair[0]), decoded(&pair[1])))
                .collect();
            let mut scratch = [Span::EMPTY; 8];
            let got = assembled(&body, &mut scratch);
            let malformed = pairs
                .iter()
                .any(|(n, v)| core::str::from_utf8(n).is_err() || core::str::from_utf8(v).is_err());
            if malformed {
                assert_eq!(got, Err(Error::MalformedBody), "{body:?}");
                continue;
            }
            pairs.sort();
            pairs.dedup();
            let expected: Vec<u8> = pairs
                .into_iter()
                .flat_map(|(n, v)| [n, v].concat())
                .collect();
            assert_eq!(got.unwrap(), expected, "{body:?}");
        }
    }

    #[test]
    fn pairs_sort_by_all_their_bytes_and_duplicates_count_once() {
        let alphabet = [
            "abcdefg",
            "abcdefgh",
            "x",
            "",
            "\u{0}",
            "\u{e9}",
            "abcdefg\u{0}",
        ];
        let mut next = crate::test_rng(13u64);
        for round in 0..3_000 {
            // Small sets (the compact-key sort) and large ones (sort_unstable), many sharing 7+ bytes.
            let n = if round % 10 == 0 {
                65 + next() % 40
            } else {
                next() % 20
            };
            let owned: Vec<(std::string::String, std::string::String)> = (0..n)
                .map(|_| {
                    let mut part = || -> std::string::String {
                        (0..next() % 3)
                            .map(|_| alphabet[next() % alphabet.len()])
                            .collect()
                    };
                    (part(), part())
                })
                .collect();
            let pairs: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (&n[..], &v[..])).collect();
            let mut expected = pairs.clone();
            expected.sort_by(|a, b| {
                (a.0.as_bytes(), a.1.as_bytes()).cmp(&(b.0.as_bytes(), b.1.as_bytes()))
            });
            expected.dedup();
            // With room to sort into beside the spans, and without.
            for extra in [0, n] {
                let mut scratch = std::vec![Span::EMPTY; n + extra];
                let spans = index_pairs(&pairs, &mut scratch).unwrap();
                let got: Vec<(&str, &str)> = spans.iter().map(|s| pairs[s.pair_index()]).collect();
                assert_eq!(got, expected, "{pairs:?}");
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

    #[test]
    fn too_many_params_is_an_error() {
        let mut scratch = [Span::EMPTY; 2];
        assert_eq!(
            index_form(b"a=1&b=2&c=3", &mut scratch).err(),
            Some(Error::TooManyParams)
        );
        assert!(index_form(b"a=1&b=2", &mut scratch).is_ok());
    }
}
