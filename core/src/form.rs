//! Form bodies and pre-split pairs: decoding, UTF-8 checking, and the canonical order of parameters.
//!
//! Nothing is copied. A form body is indexed into [`Span`]s in a caller's buffer in one pass that also
//! notes which fields need decoding; the spans are sorted by their *decoded* (name, value) — first by a
//! 16-byte decoded prefix of the name kept in the span, then, only on a tie, by decoding on the fly — and
//! equal neighbours are dropped. Feeding a parameter to the HMAC decodes it again, into a stack buffer.

use core::cmp::Ordering;

use crate::Error;

/// Bodies are indexed with 31-bit offsets; the top bit of an end offset marks "needs decoding".
pub(crate) const MAX_BODY_LEN: usize = (1 << 31) - 1;
const ESCAPED: u32 = 1 << 31;

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
            start: start as usize,
            end: (end & !ESCAPED) as usize,
            escaped: end & ESCAPED != 0,
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

/// The first 16 bytes of `bytes`, big-endian, zero-padded. Two names whose prefixes differ compare as
/// their prefixes do: at the first differing byte either both have a real byte, or the shorter name is a
/// prefix of the longer one and its zero padding is below the longer one's non-zero byte.
fn prefix_of(bytes: impl Iterator<Item = u8>) -> u128 {
    let mut prefix = [0u8; 16];
    for (slot, byte) in prefix.iter_mut().zip(bytes) {
        *slot = byte;
    }
    u128::from_be_bytes(prefix)
}

/// [`prefix_of`] for bytes that need no decoding, two words at a time.
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
}

impl Field {
    fn raw(self, body: &[u8]) -> &[u8] {
        &body[self.start..self.end]
    }

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

/// How many decoded bytes [`decode_pieces`] gathers before handing them over.
const PIECE: usize = 128;

/// Decodes `raw` into a stack buffer and hands the decoded bytes to `take` in pieces: `take(piece, last)`
/// returns how many bytes of the piece it used — the rest are handed over again, in front of the next
/// piece — or `None` to stop, and then this returns false.
fn decode_pieces(raw: &[u8], take: &mut impl FnMut(&[u8], bool) -> Option<usize>) -> bool {
    let mut buf = [0u8; PIECE];
    let mut len = 0;
    for byte in Decoded::new(raw) {
        if len == PIECE {
            let Some(used) = take(&buf, false) else {
                return false;
            };
            buf.copy_within(used.min(len)..len, 0);
            len -= used.min(len);
        }
        buf[len] = byte;
        len += 1;
    }
    take(&buf[..len], true).is_some()
}

/// Calls `sink` with the decoded bytes of `raw`.
fn feed_decoded(raw: &[u8], escaped: bool, sink: &mut impl FnMut(&[u8])) {
    if escaped {
        decode_pieces(raw, &mut |piece, _| {
            sink(piece);
            Some(piece.len())
        });
    } else {
        sink(raw);
    }
}

/// Whether the decoded bytes of `raw` are UTF-8, piece by piece: a character cut at the end of a piece
/// is handed over again at the front of the next.
fn decodes_to_utf8(raw: &[u8]) -> bool {
    decode_pieces(raw, &mut |piece, last| match core::str::from_utf8(piece) {
        Ok(_) => Some(piece.len()),
        Err(e) if e.error_len().is_none() && !last => Some(e.valid_up_to()),
        Err(_) => None,
    })
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

/// What the indexing pass noted about one name or value.
#[derive(Clone, Copy, Default)]
struct Marks {
    /// Contains `%` or `+`: must be decoded.
    escaped: bool,
    /// Contains a `%XX` escape of a byte above 0x7F: its decoded bytes need their own UTF-8 check.
    high: bool,
}

/// A name or value found by the indexing pass, before it becomes half of a [`Span`].
#[derive(Clone, Copy)]
struct Found {
    start: usize,
    end: usize,
    marks: Marks,
}

impl Found {
    fn end_offset(self) -> u32 {
        // Offsets fit in 31 bits: `index_form` refuses larger bodies first.
        self.end as u32 | if self.marks.escaped { ESCAPED } else { 0 }
    }

    fn field(self) -> Field {
        Field {
            start: self.start,
            end: self.end,
            escaped: self.marks.escaped,
        }
    }

    /// Whether the decoded field is UTF-8. When the whole raw body is UTF-8, only `%XX` escapes of high
    /// bytes can break that (ASCII bytes swapped for ASCII bytes leave every character whole).
    fn decodes_to_utf8(self, body: &[u8], body_is_utf8: bool) -> bool {
        if body_is_utf8 && !self.marks.high {
            return true;
        }
        let raw = &body[self.start..self.end];
        if self.marks.escaped {
            decodes_to_utf8(raw)
        } else {
            core::str::from_utf8(raw).is_ok()
        }
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

/// A mask with the high bit of each byte of `word` that is one of `set` (word-at-a-time, exact: no
/// carries cross bytes).
fn bytes_in(word: u64, set: &[u8]) -> u64 {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const ONES: u64 = 0x0101_0101_0101_0101;
    let zero_bytes = |x: u64| !(((x & LOW7) + LOW7) | x | LOW7);
    set.iter().fold(0, |mask, &byte| {
        mask | zero_bytes(word ^ (ONES * u64::from(byte)))
    })
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

/// Indexes a form body into `scratch`, then sorts and de-duplicates it. Returns the spans in canonical
/// order.
pub(crate) fn index_form<'s>(body: &[u8], scratch: &'s mut [Span]) -> Result<&'s [Span], Error> {
    if body.len() > MAX_BODY_LEN {
        return Err(Error::BodyTooLarge);
    }
    let body_is_utf8 = core::str::from_utf8(body).is_ok();
    let mut count = 0;
    let mut push = |name: Found, value: Found| -> Result<(), Error> {
        if name.start == value.end {
            return Ok(()); // an empty segment (`&&`)
        }
        if !name.decodes_to_utf8(body, body_is_utf8) || !value.decodes_to_utf8(body, body_is_utf8) {
            return Err(Error::MalformedBody);
        }
        let prefix = if name.marks.escaped {
            prefix_of(name.field().decoded(body))
        } else {
            prefix_of_raw(name.field().raw(body))
        };
        *scratch.get_mut(count).ok_or(Error::TooManyParams)? = Span {
            prefix,
            name_start: name.start as u32,
            name_end: name.end_offset(),
            value_start: value.start as u32,
            value_end: value.end_offset(),
        };
        count += 1;
        Ok(())
    };

    // One pass: `&` ends a segment, its first `=` ends the name, `%` and `+` mark the current field.
    let fresh = |at: usize| Found {
        start: at,
        end: at,
        marks: Marks::default(),
    };
    let (mut name, mut value) = (fresh(0), None::<Found>);
    // Of the `%` and `+` in a field only the first matters, and of the `%`s only until one escapes a
    // high byte: once a field's marks are settled only `&` and `=` are looked at.
    for (word_index, chunk) in body.chunks(8).enumerate() {
        let word = word_of(chunk);
        let (bounds, percents, pluses) = (
            bytes_in(word, b"&="),
            bytes_in(word, b"%"),
            bytes_in(word, b"+"),
        );
        let mut unseen = u64::MAX; // the bits of bytes not handled yet
        loop {
            let in_value = value.is_some();
            let current = value.as_mut().unwrap_or(&mut name);
            let wanted = match current.marks {
                Marks { escaped: false, .. } => bounds | percents | pluses,
                Marks { high: false, .. } => bounds | percents,
                Marks { high: true, .. } => bounds,
            } & unseen;
            if wanted == 0 {
                break;
            }
            let bit = wanted.trailing_zeros();
            unseen = u64::MAX.checked_shl(bit + 1).unwrap_or(0);
            let at = word_index * 8 + bit as usize / 8;
            match body[at] {
                b'&' => {
                    current.end = at;
                    push(name, value.unwrap_or(fresh(at)))?;
                    (name, value) = (fresh(at + 1), None);
                }
                b'=' if !in_value => {
                    name.end = at;
                    value = Some(fresh(at + 1));
                }
                b'=' => {}
                b'+' => current.marks.escaped = true,
                _ => {
                    current.marks.escaped = true;
                    current.marks.high |= escape_at(&body[at + 1..]).is_some_and(|b| b >= 0x80);
                }
            }
        }
    }
    let current = value.as_mut().unwrap_or(&mut name);
    current.end = body.len();
    push(name, value.unwrap_or(fresh(body.len())))?;

    let spans = &mut scratch[..count];
    spans.sort_unstable_by(|a, b| cmp_spans(body, a, b));
    Ok(dedup(spans, |a, b| cmp_spans(body, a, b).is_eq()))
}

/// Indexes pre-split pairs into `scratch`, then sorts and de-duplicates them.
pub(crate) fn index_pairs<'s>(
    pairs: &[(&str, &str)],
    scratch: &'s mut [Span],
) -> Result<&'s [Span], Error> {
    if pairs.len() > scratch.len() || u32::try_from(pairs.len()).is_err() {
        return Err(Error::TooManyParams);
    }
    let spans = &mut scratch[..pairs.len()];
    for (index, (span, (name, _))) in spans.iter_mut().zip(pairs).enumerate() {
        *span = Span {
            prefix: prefix_of_raw(name.as_bytes()),
            name_start: index as u32,
            ..Span::EMPTY
        };
    }
    let pair = |s: &Span| pairs[s.pair_index()];
    let cmp = |a: &Span, b: &Span| {
        a.prefix.cmp(&b.prefix).then_with(|| {
            let (a, b) = (pair(a), pair(b));
            a.0.as_bytes()
                .cmp(b.0.as_bytes())
                .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
        })
    };
    spans.sort_unstable_by(cmp);
    Ok(dedup(spans, |a, b| cmp(a, b).is_eq()))
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
    /// Feeds `name ++ value` for each parameter, in order.
    pub(crate) fn feed(&self, sink: &mut impl FnMut(&[u8])) {
        match *self {
            Self::None => {}
            Self::Form { body, spans } => {
                for span in spans {
                    let (name, value) = (span.name(), span.value());
                    feed_decoded(name.raw(body), name.escaped, sink);
                    feed_decoded(value.raw(body), value.escaped, sink);
                }
            }
            Self::Pairs { pairs, spans } => {
                for span in spans {
                    let (name, value) = pairs[span.pair_index()];
                    sink(name.as_bytes());
                    sink(value.as_bytes());
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

    fn canonical(body: &str) -> Result<std::string::String, Error> {
        let mut scratch = [Span::EMPTY; 64];
        let spans = index_form(body.as_bytes(), &mut scratch)?;
        let mut out = Vec::new();
        Params::Form {
            body: body.as_bytes(),
            spans,
        }
        .feed(&mut |b: &[u8]| out.extend_from_slice(b));
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
        assert!(index_form(body, &mut scratch).is_ok());
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
            index_form(b"a=%41\xff", &mut scratch),
            Err(Error::MalformedBody)
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
        let spans = index_form(body.as_bytes(), &mut scratch).unwrap();
        let got: Vec<Vec<u8>> = spans
            .iter()
            .map(|s| s.name().decoded(body.as_bytes()).collect())
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn word_at_a_time_helpers_agree_with_byte_loops() {
        let alphabet = [0u8, 1, b'%', b'&', b'+', b'=', b'a', 0x7F, 0x80, 0xA6, 0xFF];
        let mut seed = 1u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize
        };
        for _ in 0..20_000 {
            let mut bytes = [0u8; 20];
            for b in &mut bytes {
                *b = alphabet[next() % alphabet.len()];
            }
            let (la, lb) = (next() % 21, next() % 21);
            let (a, b) = (&bytes[..la], &bytes[20 - lb..]);
            assert_eq!(cmp_bytes(a, b), a.cmp(b), "{a:?} {b:?}");
            let chunk = &bytes[..next() % 9];
            let mask = bytes_in(word_of(chunk), b"&=%+");
            for i in 0..8 {
                let special = chunk.get(i).is_some_and(|b| b"&=%+".contains(b));
                assert_eq!(mask >> (8 * i + 7) & 1 == 1, special, "{chunk:?} byte {i}");
            }
        }
    }

    #[test]
    fn escaped_fields_compare_as_their_decoded_bytes_whatever_they_share() {
        let alphabet: [&[u8]; 9] = [b"%", b"4", b"1", b"%41", b"A", b"+", b" ", b"%2", b"z"];
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as usize
        };
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
