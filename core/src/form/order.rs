//! The canonical order: spans sorted by their *decoded* (name, value), equal neighbours dropped. Up to
//! 64 are sorted by compact `u64` keys (7 name bytes, after any that every name's prefix starts with,
//! and the span's index), more with `sort_unstable_by` on the 16-byte decoded prefix of the name kept
//! in the span (taken after the part all names share, when they share more than that); only on a tie
//! is a name decoded on the fly. The sorted spans become [`Params`](super::Params), which
//! [`super::assemble`] puts together.

use core::cmp::Ordering;

use super::decode::Decoded;
use super::index::prefix_of_escaped;
use super::{word_of, Field, Span};

/// Puts a form's spans (`scratch[..count]`) in canonical order and drops equal neighbours; returns the
/// kept spans, at the start of `scratch` or, for a small form, just after its spans when there is room.
#[inline]
pub(super) fn sort_form<'s>(body: &[u8], scratch: &'s mut [Span], count: usize) -> &'s [Span] {
    rebase_prefixes(body, &mut scratch[..count]);
    sort_and_dedup(scratch, count, |a, b| cmp_spans(body, a, b))
}

/// Puts `scratch[..count]` in order by their prefixes, then `cmp` where those are equal, and drops
/// equal neighbours; returns the kept spans: at the start of `scratch` or, for a small set, just after
/// the spans when there is room. Shared by forms and pre-split pairs.
#[inline]
pub(super) fn sort_and_dedup(
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
pub(super) const SMALL_SORT: usize = 64;

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
#[inline]
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

/// Keeps the first of each run of equal neighbours; returns the kept prefix.
#[inline]
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

fn cmp_spans(body: &[u8], a: &Span, b: &Span) -> Ordering {
    a.prefix
        .cmp(&b.prefix)
        .then_with(|| cmp_fields(body, a.name(), b.name()))
        .then_with(|| cmp_fields(body, a.value(), b.value()))
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

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::tests::{assembled, canonical, decode};
    use super::super::{index_form, index_pairs};
    use super::*;
    use crate::scan::bytes_eq;
    use crate::Error;
    use std::vec::Vec;

    #[test]
    fn names_then_values_sort_by_decoded_bytes_and_duplicates_count_once() {
        assert_eq!(
            canonical("b=2&a=z&b=1&a=y&b=2&a%3D=0").unwrap(),
            "ayaza=0b1b2"
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
}
