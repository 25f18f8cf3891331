//! The scratch buffer a form's parameters are sorted in, sized by one rule for every face: none for a
//! request without parameters; [`SMALL_SCRATCH`] spans on the stack first (enough for any real webhook,
//! cheap to zero); and only when the form overflows them ([`Overflow`]), a larger buffer: on the stack
//! up to [`DEFAULT_MAX_PARAMS`] spans, beyond that from the face's heap, sized to the form's parameters
//! ([`Request::max_params`]) and capped at the face's maximum. The core has no heap: its own calls
//! ([`with_stack_scratch`]) stop at [`DEFAULT_MAX_PARAMS`]; the C ABI and the bindings pass theirs to
//! [`with_scratch`].

use crate::canonical::Request;
use crate::explain::Explanation;
use crate::form::Span;
use crate::Error;

/// The most form parameters [`Validator::verify`](crate::Validator::verify) accepts: its stack scratch buffer holds 64 (2 KiB),
/// and for a form with more, this many (16 KiB). Real Twilio webhooks have well under 100; pass a
/// larger buffer to [`Validator::verify_with_scratch`](crate::Validator::verify_with_scratch) to accept more.
pub const DEFAULT_MAX_PARAMS: usize = 512;

/// The stack buffer tried first: enough for any real webhook, and cheap to zero (2 KiB).
const SMALL_SCRATCH: usize = 64;

/// What the `*_with_scratch` calls return, asked whether the scratch buffer ran out of room
/// ([`Error::TooManyParams`]): then a larger buffer may succeed. Callers that keep a small buffer on the
/// stack try it first and size a larger one (with [`Request::max_params`]) only when this says so.
///
/// ```
/// use twilio_signature::{Overflow, Request, Secret, Span, Validator};
/// let validator = Validator::new(Secret::new(b"12345"));
/// let request = Request::post("https://example.com/sms", "a=1&b=2&c=3")
///     .signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
/// assert!(validator.verify_with_scratch(&request, &mut [Span::EMPTY; 2]).overflowed());
/// assert!(!validator.verify_with_scratch(&request, &mut [Span::EMPTY; 3]).overflowed());
/// ```
pub trait Overflow {
    /// True when the scratch buffer was too small for the form's parameters.
    fn overflowed(&self) -> bool;
}

impl<T> Overflow for Result<T, Error> {
    /// True for [`Error::TooManyParams`].
    fn overflowed(&self) -> bool {
        matches!(self, Err(Error::TooManyParams))
    }
}

impl Overflow for Explanation {
    /// True when the verdict is [`Error::TooManyParams`].
    fn overflowed(&self) -> bool {
        self.verdict.overflowed()
    }
}

/// Runs `f` with a scratch buffer for at most `max_params` parameters, sized by the rule every face
/// shares: none for a request without parameters; a zeroed stack buffer of 64 spans (fewer if
/// `max_params` is lower); and only if the form has more parameters than that, again with a larger
/// one: on the stack while [`DEFAULT_MAX_PARAMS`] spans are enough, else `heap(len, f)`, where
/// `len` is the form's possible parameters ([`Request::max_params`], so a body of `&`s needs none)
/// capped at `max_params`: the face allocates `len` spans and runs `f` with them. Trying the small
/// buffer first costs a form with more parameters one aborted indexing pass of 64, and spares every
/// other request a count of its parameters up front. A form with more than `max_params` parameters
/// gets [`Error::TooManyParams`].
///
/// ```
/// use twilio_signature::{with_scratch, Request, Secret, Span, Validator};
/// let validator = Validator::new(Secret::new(b"12345"));
/// let body = (0..1000).map(|i| format!("p{i}=1")).collect::<Vec<_>>().join("&");
/// let request = Request::post("https://example.com/sms", body.as_str())
///     .signature("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
/// let mut heap_len = None;
/// let verdict = with_scratch(
///     10_000,
///     &request,
///     |scratch| validator.verify_with_scratch(&request, scratch),
///     |len, f| {
///         heap_len = Some(len);
///         f(&mut vec![Span::EMPTY; len])
///     },
/// );
/// assert_eq!(heap_len, Some(1000));
/// // Indexed whole (1000 parameters), then refused: the signature is not for this body.
/// assert_eq!(verdict.unwrap_err(), twilio_signature::Error::SignatureMismatch);
/// ```
// `#[inline]`: every caller is in another codegen unit, and the rule is a few branches around `f`.
#[inline]
pub fn with_scratch<R: Overflow>(
    max_params: usize,
    request: &Request<'_>,
    mut f: impl FnMut(&mut [Span]) -> R,
    heap: impl FnOnce(usize, &mut dyn FnMut(&mut [Span]) -> R) -> R,
) -> R {
    if request.has_no_params() {
        // A GET (or an empty form): nothing to sort, and 2 KiB not to zero.
        return f(&mut []);
    }
    let small = f(&mut [Span::EMPTY; SMALL_SCRATCH][..max_params.min(SMALL_SCRATCH)]);
    if !small.overflowed() || max_params <= SMALL_SCRATCH {
        return small;
    }
    with_large_scratch(max_params, request, f, heap)
}

/// The second try of [`with_scratch`], in its own frame: 16 KiB of stack that the usual request does
/// not reserve (nor probe) on every call. The count of the form's parameters is only needed when
/// `max_params` is more than the stack holds.
#[cold]
#[inline(never)]
fn with_large_scratch<R>(
    max_params: usize,
    request: &Request<'_>,
    mut f: impl FnMut(&mut [Span]) -> R,
    heap: impl FnOnce(usize, &mut dyn FnMut(&mut [Span]) -> R) -> R,
) -> R {
    let len = if max_params <= DEFAULT_MAX_PARAMS {
        max_params
    } else {
        request.max_params().min(max_params)
    };
    if len > DEFAULT_MAX_PARAMS {
        return heap(len, &mut f);
    }
    f(&mut [Span::EMPTY; DEFAULT_MAX_PARAMS][..len])
}

/// [`with_scratch`] for the core's own calls, which have no heap: at most [`DEFAULT_MAX_PARAMS`]
/// parameters, all on the stack (so the heap is never asked for).
#[inline]
pub(crate) fn with_stack_scratch<R: Overflow>(
    request: &Request<'_>,
    f: impl FnMut(&mut [Span]) -> R,
) -> R {
    with_scratch(DEFAULT_MAX_PARAMS, request, f, |_, f| f(&mut []))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::canonical::Signed;
    use std::string::String;
    use std::vec::Vec;

    /// A form of `n` parameters.
    fn form(n: usize) -> String {
        (0..n)
            .map(|i| std::format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The lengths of the buffers `with_scratch` runs the indexing with, and the length the heap was
    /// asked for, if it was.
    fn tries(max_params: usize, body: &str) -> (Vec<usize>, Option<usize>, bool) {
        let request = Request::post("https://example.com/sms", body);
        let mut lengths = Vec::new();
        let mut heap = None;
        let verdict = with_scratch(
            max_params,
            &request,
            |scratch| {
                lengths.push(scratch.len());
                Signed::new(&request, scratch).map(|_| ())
            },
            |len, f| {
                heap = Some(len);
                f(&mut std::vec![Span::EMPTY; len])
            },
        );
        (lengths, heap, verdict.overflowed())
    }

    #[test]
    fn a_request_without_parameters_gets_no_buffer() {
        assert_eq!(tries(10_000, ""), (std::vec![0], None, false));
    }

    #[test]
    fn a_real_webhook_fits_the_small_stack_buffer() {
        assert_eq!(tries(10_000, &form(64)), (std::vec![64], None, false));
        // A lower maximum shrinks the small buffer and is final.
        assert_eq!(tries(3, &form(3)), (std::vec![3], None, false));
        assert_eq!(tries(3, &form(4)), (std::vec![3], None, true));
        // A body of `&`s has no parameters to make room for.
        assert_eq!(
            tries(10_000, &"&".repeat(5000)),
            (std::vec![64], None, false)
        );
    }

    #[test]
    fn a_larger_form_is_sorted_on_the_stack_up_to_the_default_maximum() {
        assert_eq!(tries(100, &form(65)), (std::vec![64, 100], None, false));
        assert_eq!(tries(100, &form(101)), (std::vec![64, 100], None, true));
        assert_eq!(
            tries(DEFAULT_MAX_PARAMS, &form(DEFAULT_MAX_PARAMS)),
            (std::vec![64, DEFAULT_MAX_PARAMS], None, false)
        );
        // Above the default maximum, the buffer is sized to the form while that fits on the stack.
        assert_eq!(tries(10_000, &form(300)), (std::vec![64, 300], None, false));
    }

    #[test]
    fn only_a_form_larger_than_the_stack_holds_asks_the_heap() {
        let n = DEFAULT_MAX_PARAMS + 1;
        assert_eq!(tries(10_000, &form(n)), (std::vec![64, n], Some(n), false));
        // Capped at the maximum, which the form then overflows.
        assert_eq!(
            tries(600, &form(700)),
            (std::vec![64, 600], Some(600), true)
        );
    }

    #[test]
    fn the_cores_own_calls_stop_at_the_default_maximum_without_a_heap() {
        for (n, overflowed) in [(0, false), (64, false), (DEFAULT_MAX_PARAMS, false)] {
            let body = form(n);
            let request = Request::post("https://example.com/sms", body.as_str());
            let verdict = with_stack_scratch(&request, |scratch| {
                Signed::new(&request, scratch).map(|_| ())
            });
            assert_eq!(verdict.overflowed(), overflowed, "{n}");
        }
        let body = form(DEFAULT_MAX_PARAMS + 1);
        let request = Request::post("https://example.com/sms", body.as_str());
        let verdict = with_stack_scratch(&request, |scratch| {
            Signed::new(&request, scratch).map(|_| ())
        });
        assert_eq!(verdict, Err(Error::TooManyParams));
    }
}
