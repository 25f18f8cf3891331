//! Form bodies and pre-split pairs: decoding, UTF-8 checking, and the canonical order of parameters.
//!
//! Nothing is copied. A form body is indexed into [`Span`]s in a caller's buffer, the spans are sorted by
//! their *decoded* (name, value) — decoding on the fly while comparing — and equal neighbours are dropped.
//! Feeding a parameter to the HMAC decodes it again, through a small stack buffer.

use core::cmp::Ordering;

use crate::Error;

/// Bodies are indexed with 31-bit offsets; the top bit of an end offset marks "needs decoding".
pub(crate) const MAX_BODY_LEN: usize = (1 << 31) - 1;
const ESCAPED: u32 = 1 << 31;

/// One parameter's place in the scratch buffer that sorting works in.
///
/// Opaque: callers only choose how many there are, which bounds the number of parameters a request may
/// have (see [`crate::Validator::verify_with_scratch`]). 16 bytes each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    name_start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
}

impl Span {
    /// An unused span, for initialising buffers: `[Span::EMPTY; 1024]`.
    pub const EMPTY: Self = Self {
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

    /// For pre-split pairs, a span is just the pair's index.
    fn pair_index(self) -> usize {
        self.name_start as usize
    }
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

    fn encode(start: usize, end: usize, raw: &[u8]) -> (u32, u32) {
        let escaped = raw.iter().any(|&b| b == b'%' || b == b'+');
        // Offsets fit in 31 bits: `index_form` refuses larger bodies first.
        (start as u32, end as u32 | if escaped { ESCAPED } else { 0 })
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

impl Iterator for Decoded<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let (&first, rest) = self.raw.split_first()?;
        self.raw = rest;
        match first {
            b'+' => Some(b' '),
            b'%' => {
                if let [hi, lo, tail @ ..] = rest {
                    if let (Some(hi), Some(lo)) = (hex_value(*hi), hex_value(*lo)) {
                        self.raw = tail;
                        return Some(hi << 4 | lo);
                    }
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

const CHUNK: usize = 128;

/// Calls `sink` with the decoded bytes of `raw`, in chunks.
fn feed_decoded(raw: &[u8], escaped: bool, sink: &mut impl FnMut(&[u8])) {
    if !escaped {
        sink(raw);
        return;
    }
    let mut buf = [0u8; CHUNK];
    let mut len = 0;
    for byte in Decoded::new(raw) {
        buf[len] = byte;
        len += 1;
        if len == CHUNK {
            sink(&buf);
            len = 0;
        }
    }
    sink(&buf[..len]);
}

/// Whether the decoded bytes of `raw` are UTF-8, checked chunk by chunk with a carry for a character
/// split across chunks.
fn decodes_to_utf8(raw: &[u8], escaped: bool) -> bool {
    if !escaped {
        return core::str::from_utf8(raw).is_ok();
    }
    let mut decoded = Decoded::new(raw);
    let mut buf = [0u8; CHUNK];
    let mut len = 0;
    loop {
        for byte in decoded.by_ref() {
            buf[len] = byte;
            len += 1;
            if len == CHUNK {
                break;
            }
        }
        let at_end = len < CHUNK;
        match core::str::from_utf8(&buf[..len]) {
            Ok(_) => len = 0,
            // An incomplete character at the end of a full chunk continues in the next one.
            Err(e) if e.error_len().is_none() && !at_end => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..len, 0);
                len -= valid;
            }
            Err(_) => return false,
        }
        if at_end {
            return true;
        }
    }
}

fn cmp_fields(body: &[u8], a: Field, b: Field) -> Ordering {
    if a.escaped || b.escaped {
        Decoded::new(a.raw(body)).cmp(Decoded::new(b.raw(body)))
    } else {
        a.raw(body).cmp(b.raw(body))
    }
}

/// Indexes a form body into `scratch`, then sorts and de-duplicates it. Returns the spans in canonical
/// order.
pub(crate) fn index_form<'s>(body: &[u8], scratch: &'s mut [Span]) -> Result<&'s [Span], Error> {
    if body.len() > MAX_BODY_LEN {
        return Err(Error::BodyTooLarge);
    }
    let mut count = 0;
    let mut start = 0;
    while start <= body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == b'&')
            .map_or(body.len(), |i| start + i);
        if end > start {
            let segment = &body[start..end];
            let (name_end, value_start) = segment
                .iter()
                .position(|&b| b == b'=')
                .map_or((end, end), |i| (start + i, start + i + 1));
            let (name_start, name_end) = Field::encode(start, name_end, &body[start..name_end]);
            let (value_start, value_end) = Field::encode(value_start, end, &body[value_start..end]);
            let span = Span {
                name_start,
                name_end,
                value_start,
                value_end,
            };
            if !decodes_to_utf8(span.name().raw(body), span.name().escaped)
                || !decodes_to_utf8(span.value().raw(body), span.value().escaped)
            {
                return Err(Error::MalformedBody);
            }
            *scratch.get_mut(count).ok_or(Error::TooManyParams)? = span;
            count += 1;
        }
        start = end + 1;
    }
    let spans = &mut scratch[..count];
    spans.sort_unstable_by(|a, b| {
        cmp_fields(body, a.name(), b.name()).then_with(|| cmp_fields(body, a.value(), b.value()))
    });
    Ok(dedup(spans, |a, b| {
        cmp_fields(body, a.name(), b.name()).is_eq()
            && cmp_fields(body, a.value(), b.value()).is_eq()
    }))
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
    for (index, span) in spans.iter_mut().enumerate() {
        *span = Span {
            name_start: index as u32,
            ..Span::EMPTY
        };
    }
    let pair = |s: &Span| pairs[s.pair_index()];
    spans.sort_unstable_by(|a, b| {
        let (a, b) = (pair(a), pair(b));
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then_with(|| a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    Ok(dedup(spans, |a, b| pair(a) == pair(b)))
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
    fn too_many_params_is_an_error() {
        let mut scratch = [Span::EMPTY; 2];
        assert_eq!(
            index_form(b"a=1&b=2&c=3", &mut scratch).err(),
            Some(Error::TooManyParams)
        );
        assert!(index_form(b"a=1&b=2", &mut scratch).is_ok());
    }
}
