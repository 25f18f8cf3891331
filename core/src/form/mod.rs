//! Form bodies and pre-split pairs: decoding, UTF-8 checking, and the canonical order of parameters.
//!
//! The data path, one file per stage, each handing its output to the next:
//!
//! 1. [`index`]: a form body is indexed into [`Span`]s in a caller's buffer in one pass, 64 bytes at a
//!    time, noting which fields need decoding and which need their decoded bytes checked for UTF-8.
//! 2. [`order`]: the spans are sorted by their *decoded* (name, value), mostly on the name's 16-byte
//!    decoded prefix kept in the span, and equal neighbours are dropped.
//! 3. [`assemble`]: [`Params::feed`] puts the parameters of the signed string together in a stack
//!    buffer, decoding and checking fields as it goes, and hands them to the HMAC in a few large
//!    updates.
//!
//! [`decode`] (`+` and `%XX`, and which escapes can make a field's text something other than UTF-8)
//! serves all three. Pre-split pairs skip the index: [`index_pairs`] gives them spans and sorts them.
//! Here live what every stage shares: [`Span`], [`Field`], the pipeline ([`index_form`],
//! [`index_pairs`]) and the sorted [`Params`] the signed string is made of.
//!
//! Each file is a codegen unit of its own in a release build (`form.rs` was one), so a function one
//! stage calls in another is `#[inline]`: the release build then inlines it where it did before the
//! split (the indexing pass and the sort into [`index_form`]), rather than calling across units.

mod assemble;
mod decode;
mod index;
mod order;

pub(crate) use assemble::Assembly;
#[cfg(test)]
use decode::Decoded;
use index::{prefix_of_raw, scan_form, Scanned};
use order::{sort_and_dedup, sort_form, SMALL_SORT};

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
    #[inline]
    fn raw(self, body: &[u8]) -> &[u8] {
        &body[self.start..self.end]
    }

    #[cfg(test)]
    fn decoded(self, body: &[u8]) -> Decoded<'_> {
        Decoded::new(self.raw(body))
    }
}

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

/// The bytes of `chunk` (at most 8) as a little-endian word, zero-padded.
#[inline]
fn word_of(chunk: &[u8]) -> u64 {
    match <[u8; 8]>::try_from(chunk) {
        Ok(word) => u64::from_le_bytes(word),
        Err(_) => chunk
            .iter()
            .rev()
            .fold(0, |word, &b| word << 8 | u64::from(b)),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::assemble::ASSEMBLY;
    use super::*;
    use std::vec::Vec;

    pub(super) fn decode(s: &str) -> Vec<u8> {
        Decoded::new(s.as_bytes()).collect()
    }

    /// The canonical parameters of a form body as verify puts them together (indexed, sorted,
    /// assembled, the decoded UTF-8 checks done as it assembles), or the body's error.
    pub(super) fn assembled(body: &[u8], scratch: &mut [Span]) -> Result<Vec<u8>, Error> {
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

    pub(super) fn canonical(body: &str) -> Result<std::string::String, Error> {
        let out = assembled(body.as_bytes(), &mut [Span::EMPTY; 64])?;
        Ok(std::string::String::from_utf8(out).unwrap())
    }

    /// A deterministic byte string over an alphabet that stresses the decoder: escapes of low and high
    /// bytes, stray `%`, `+`, a UTF-8 character, separators.
    pub(super) fn random_raw(next: &mut impl FnMut() -> usize, max_pieces: usize) -> Vec<u8> {
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

    /// An escaped field as [`Assembly`] puts it together after one byte: whether it passed the UTF-8
    /// checks, and its decoded bytes.
    pub(super) fn assembled_field(
        body: &[u8],
        start: usize,
        end: usize,
        check_utf8: bool,
    ) -> (bool, Vec<u8>) {
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
}
