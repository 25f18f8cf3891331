//! The boundary itself: panics stop here, C pointers become slices here, and outputs are written here.
//!
//! Every other module is safe Rust over slices; every `unsafe` block of the crate that touches caller
//! memory goes through one of these helpers.

use core::ffi::c_int;
use core::panic::AssertUnwindSafe;
use std::panic::catch_unwind;

use crate::status::tws_status;

/// Runs an export's body, turning a panic into [`tws_status::TWS_PANIC`] so that none crosses into C.
///
/// Bodies capture raw pointers, which are not `UnwindSafe`; asserting it is sound because a panic leaves
/// nothing of the caller's half-written (outputs are written last) and no state of ours is shared
/// mutably across the boundary except a validator handle, whose `add_secret` pushes atomically.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), tws_status>) -> c_int {
    let status = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => tws_status::TWS_OK,
        Ok(Err(status)) => status,
        Err(_) => tws_status::TWS_PANIC,
    };
    status as c_int
}

/// An input buffer: `ptr` + `len`, where NULL with length 0 is the empty buffer.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that stay unchanged for `'a`.
pub(crate) unsafe fn input<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], tws_status> {
    if len > isize::MAX as usize {
        return Err(tws_status::TWS_INVALID_PARAMETER);
    }
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(tws_status::TWS_NULL_PARAMETER)
        };
    }
    // SAFETY: non-NULL, `len` readable bytes per the caller's contract, and `len <= isize::MAX`.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// An optional input (a header that may be absent): NULL with length 0 is `None`; a non-NULL pointer
/// with length 0 is a header that is present and empty.
///
/// # Safety
/// As for [`input`].
pub(crate) unsafe fn optional_input<'a>(
    ptr: *const u8,
    len: usize,
) -> Result<Option<&'a [u8]>, tws_status> {
    if ptr.is_null() && len == 0 {
        return Ok(None);
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { input(ptr, len) }.map(Some)
}

/// Checks that an output pointer is not NULL.
pub(crate) fn output<T>(ptr: *mut T) -> Result<*mut T, tws_status> {
    if ptr.is_null() {
        Err(tws_status::TWS_NULL_PARAMETER)
    } else {
        Ok(ptr)
    }
}

/// Writes `value` through `out`.
///
/// # Safety
/// `out` must be NULL-checked (see [`output`]), aligned and writable for one `T`.
pub(crate) unsafe fn write<T>(out: *mut T, value: T) {
    // SAFETY: forwarded from this function's contract; `write` does not drop the old (plain) value.
    unsafe { out.write(value) }
}

/// Copies `text` and a NUL into the caller's buffer `out` of `capacity` bytes, and its length (without
/// the NUL) into `*written`. When the buffer is too small nothing is copied, `*written` still receives
/// the length (so the caller can retry with `length + 1` bytes), and the status is
/// [`tws_status::TWS_BUFFER_TOO_SMALL`].
///
/// # Safety
/// `out` must be NULL or point to `capacity` writable bytes; `written` must be NULL or writable.
pub(crate) unsafe fn write_text(
    text: &[u8],
    out: *mut u8,
    capacity: usize,
    written: *mut usize,
) -> Result<(), tws_status> {
    let written = output(written)?;
    if capacity > 0 {
        output(out)?;
    }
    if capacity <= text.len() {
        // SAFETY: `written` is non-NULL and writable per the contract.
        unsafe { write(written, text.len()) };
        return Err(tws_status::TWS_BUFFER_TOO_SMALL);
    }
    // SAFETY: `out` is non-NULL (checked above, as `capacity > text.len() >= 0`) and holds `capacity`
    // bytes, more than `text.len() + 1`; the caller's buffer cannot overlap our own `text`.
    unsafe {
        core::ptr::copy_nonoverlapping(text.as_ptr(), out, text.len());
        out.add(text.len()).write(0);
    }
    // SAFETY: as above.
    unsafe { write(written, text.len()) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::panic)]
    fn a_panic_becomes_tws_panic() {
        let status = guard(|| panic!("boom"));
        assert_eq!(status, tws_status::TWS_PANIC as c_int);
    }

    #[test]
    fn null_with_length_zero_is_empty_and_with_a_length_is_refused() {
        // SAFETY: NULL pointers are never read.
        unsafe {
            assert_eq!(input(core::ptr::null(), 0), Ok(&[][..]));
            assert_eq!(
                input(core::ptr::null(), 3),
                Err(tws_status::TWS_NULL_PARAMETER)
            );
            assert_eq!(optional_input(core::ptr::null(), 0), Ok(None));
        }
    }

    #[test]
    fn a_length_beyond_isize_max_is_refused_before_any_read() {
        let byte = 0u8;
        // SAFETY: the length check fails before the pointer is used.
        let result = unsafe { input(&raw const byte, usize::MAX) };
        assert_eq!(result, Err(tws_status::TWS_INVALID_PARAMETER));
    }
}
