//! The request arguments every `verify`/`sign`/`explain` export takes, turned into a core [`Request`].

use tws_core::Request;

use crate::boundary::{input, optional_input};
use crate::status::tws_status;

/// The raw C arguments of one webhook request: URL, raw body, and the two headers (NULL with length 0
/// when absent).
#[derive(Clone, Copy)]
pub(crate) struct RawRequest {
    pub(crate) url: (*const u8, usize),
    pub(crate) body: (*const u8, usize),
    pub(crate) signature: (*const u8, usize),
    pub(crate) settings: (*const u8, usize),
}

impl RawRequest {
    /// Checks every pointer and borrows the caller's buffers.
    ///
    /// # Safety
    /// Each non-NULL pointer must point to its length in readable bytes that stay unchanged for `'a`.
    pub(crate) unsafe fn borrow<'a>(self) -> Result<Request<'a>, tws_status> {
        // SAFETY: forwarded from this function's contract, one buffer at a time.
        let (url, body, signature, settings) = unsafe {
            (
                input(self.url.0, self.url.1)?,
                input(self.body.0, self.body.1)?,
                optional_input(self.signature.0, self.signature.1)?,
                optional_input(self.settings.0, self.settings.1)?,
            )
        };
        let request = Request::post(url, body).settings(settings);
        Ok(match signature {
            Some(signature) => request.signature(signature),
            None => request,
        })
    }
}
