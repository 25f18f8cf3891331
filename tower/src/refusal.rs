//! Refusals: the one place that logs them and turns them into responses.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

/// The body of the responses the layer's service returns: the inner service's, or a refusal's text.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// A request the layer will not pass on.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// What was wrong, for the client and the log. Never holds a secret or an expected signature.
    pub(crate) reason: Cow<'static, str>,
    /// The likely mistake and its fix, for the log only.
    pub(crate) diagnosis: Cow<'static, str>,
}

impl Refusal {
    pub(crate) fn new(
        status: StatusCode,
        reason: impl Into<Cow<'static, str>>,
        diagnosis: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            reason: reason.into(),
            diagnosis: diagnosis.into(),
        }
    }

    /// Logs the refusal (WARN; ERROR for a 500, which is the app's misconfiguration) and returns the
    /// response: the status and the reason as plain text.
    pub(crate) fn respond<B>(self, url: &[u8]) -> Response<ResponseBody<B>> {
        let status = self.status.as_u16();
        let url = Printable(url);
        let reason = self.reason.trim_end_matches('.');
        let diagnosis = Printable(self.diagnosis.as_bytes());
        if self.status.is_server_error() {
            tracing::error!(
                target: "twilio_signature_tower",
                status, %url, reason, %diagnosis,
                "twilio webhook refused: {status} {reason}; url={url}; {diagnosis}"
            );
        } else {
            tracing::warn!(
                target: "twilio_signature_tower",
                status, %url, reason, %diagnosis,
                "twilio webhook refused: {status} {reason}; url={url}; {diagnosis}"
            );
        }
        let mut response =
            Response::new(Either::Right(Full::new(Bytes::from(format!("{reason}\n")))));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}

/// Bytes from the request shown in a log line: UTF-8 as is; invalid bytes and every control character
/// (C0, DEL, C1) as `\xNN`, U+2028 and U+2029 as `\u2028`/`\u2029`; so that a hostile header cannot
/// forge log lines.
struct Printable<'a>(&'a [u8]);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    // C0, DEL and C1 (U+0080-U+009F).
                    write!(f, "\\x{:02x}", u32::from(c))?;
                } else if matches!(c, '\u{2028}' | '\u{2029}') {
                    // The line and paragraph separators end a line for some log viewers.
                    write!(f, "\\u{:04x}", u32::from(c))?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            for &b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Printable;

    #[test]
    fn log_text_escapes_controls_and_invalid_utf8() {
        let shown = Printable(b"https://h/p?a=\r\nfake line\x7f\xff caf\xc3\xa9").to_string();
        assert_eq!(
            shown,
            "https://h/p?a=\\x0d\\x0afake line\\x7f\\xff caf\u{e9}"
        );
        let shown = Printable("a\u{85}b\u{9f}c\u{2028}d\u{2029}e\u{a0}f".as_bytes()).to_string();
        assert_eq!(shown, "a\\x85b\\x9fc\\u2028d\\u2029e\u{a0}f");
    }
}
