//! The indexing pass: a form body becomes [`Span`]s in a caller's buffer, unsorted, in one pass 64
//! bytes at a time ([`Block`]: one bit per byte for `&`, `=` and escapes). The pass notes which fields
//! need decoding (they hold a `%` or `+`) and which must have their decoded bytes checked for UTF-8:
//! in a UTF-8 body none do up front, since only an escape of a byte above 0x7F can make a field's text
//! something other than UTF-8, and the decoder reports those as it meets them. Each span keeps its
//! name's first 16 decoded bytes (its prefix), on which [`super::order`] decides nearly every
//! comparison.

use super::decode::{decode_into, piece_end, OVERSHOOT};
use super::{word_of, Span, CHECK_UTF8, ESCAPED};
use crate::scan::{Block, BLOCK};
use crate::Error;

/// What [`scan_form`] found.
pub(super) struct Scanned {
    pub(super) count: usize,
    pub(super) unchecked: bool,
    /// Every byte of the body is ASCII.
    pub(super) ascii: bool,
}

/// The indexing pass: puts the body's parameters in `scratch` (unsorted). With `BODY_IS_UTF8`, trusts
/// that the raw body is UTF-8 and checks only what escapes decode to.
#[inline]
pub(super) fn scan_form<const BODY_IS_UTF8: bool>(
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
    /// Whether some span's decoded bytes are left for [`Assembly`](super::Assembly) to check.
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
    /// as it meets them, so [`Assembly`](super::Assembly) checks those fields alone.
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

/// The first 16 bytes of `raw`, big-endian, zero-padded, two words at a time. Two names whose prefixes
/// differ compare as their prefixes do: at the first differing byte either both have a real byte, or the
/// shorter name is a prefix of the longer one and its zero padding is below the longer one's non-zero
/// byte.
#[inline]
pub(super) fn prefix_of_raw(raw: &[u8]) -> u128 {
    let (high, low) = raw.split_at(raw.len().min(8));
    let big_endian = |bytes: &[u8]| u128::from(word_of(&bytes[..bytes.len().min(8)]).swap_bytes());
    big_endian(high) << 64 | big_endian(low)
}

/// The first 16 bytes of `body[start..end]` as [`prefix_of_raw`] gives them, with one load when the
/// body has 16 bytes from `start`.
fn prefix_in(body: &[u8], start: usize, end: usize) -> u128 {
    match body.get(start..start + 16) {
        Some(chunk) => {
            u128::from_be_bytes(chunk.try_into().unwrap_or_default())
                & PREFIX_MASKS[(end - start).min(16)]
        }
        None => prefix_near_end(&body[start..end]),
    }
}

/// [`prefix_of_raw`] for a name starting in the body's last 15 bytes (the last fields of a body; every
/// field of a body under 16 bytes), kept out of the indexing loop: inlined there, its byte loop took
/// registers the loop needs, and a megabyte body cost 4 more instructions per 64-byte block.
#[cold]
#[inline(never)]
fn prefix_near_end(raw: &[u8]) -> u128 {
    prefix_of_raw(raw)
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

/// The first 16 decoded bytes of an escaped field, as [`prefix_of_raw`] gives a plain one's.
pub(super) fn prefix_of_escaped(body: &[u8], start: usize, end: usize) -> u128 {
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

#[cfg(test)]
mod tests {
    use super::super::index_form;
    use super::super::tests::canonical;
    use super::*;

    #[test]
    fn empty_segments_are_skipped_and_blank_values_kept() {
        assert_eq!(canonical("&&b=&a&&c=1&").unwrap(), "abc1");
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
