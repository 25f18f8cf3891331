//! Constant-time evidence for the core.
//!
//! Memcheck tracks, bit by bit, whether memory is "defined". Marking the secret and the MACs
//! *undefined* turns it into a taint checker: any branch or memory address computed from them is
//! reported as "Conditional jump or move depends on uninitialised value(s)" (or "Use of
//! uninitialised value"). A constant-time compare produces none; an early-exit loop produces one per
//! call. The public message is left defined, so hashing it is not reported.

use std::ffi::c_void;

extern "C" {
    fn ct_make_undefined(p: *const c_void, n: usize);
    fn ct_make_defined(p: *const c_void, n: usize);
    fn ct_count_errors() -> u32;
    fn ct_running_on_valgrind() -> u32;
    fn ct_log_section(name: *const std::ffi::c_char);
}

/// Taints `bytes` as secret: memcheck reports any branch or address that depends on them.
pub fn mark_secret(bytes: &[u8]) {
    // SAFETY: a client request only changes memcheck's shadow state for this live, readable range.
    unsafe { ct_make_undefined(bytes.as_ptr().cast(), bytes.len()) }
}

/// Declassifies a value that is public by design (e.g. the verdict, which the caller acts on).
pub fn declassify<T: Copy>(value: T) -> T {
    // SAFETY: as above, for the bytes of a local copy.
    unsafe { ct_make_defined((&raw const value).cast(), std::mem::size_of::<T>()) };
    value
}

/// Errors memcheck has reported so far in this process (0 outside Valgrind).
pub fn errors_so_far() -> u32 {
    // SAFETY: a client request with no arguments.
    unsafe { ct_count_errors() }
}

/// Whether this process runs under Valgrind.
pub fn under_valgrind() -> bool {
    // SAFETY: a client request with no arguments.
    unsafe { ct_running_on_valgrind() != 0 }
}

/// The deliberately leaky comparison the checks must catch: it returns at the first differing byte.
#[inline(never)]
pub fn leaky_equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    for i in 0..a.len() {
        if a[i] != b[i] {
            return false;
        }
    }
    true
}

/// Writes `ct-section <name>` into Valgrind's log.
pub fn log_section(name: &std::ffi::CStr) {
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    unsafe { ct_log_section(name.as_ptr()) }
}
