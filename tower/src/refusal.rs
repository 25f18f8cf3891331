//! Refusals: what the layer tells the app (a [`Rejection`]), the one place that logs them and the
//! default response.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

/// The body of the responses the layer's service returns: the inner service's, or a refusal's.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// What [`on_reject`](crate::TwilioSignatureLayer::on_reject) is given for each refusal, and returns.
pub(crate) type OnReject = Arc<dyn Fn(&Parts, &Rejection) -> Response<Full<Bytes>> + Send + Sync>;

/// A request the layer refused: the status it answers, why, the URL it verified and the likely mistake.
///
/// Given to the [`on_reject`](crate::TwilioSignatureLayer::on_reject) hook. Its `Display` is the line
/// the layer logs by default (`twilio webhook refused: <status> <reason>; url=<url>; <diagnosis>`, with
/// control characters and invalid UTF-8 from the request escaped); neither a secret nor an expected
/// signature is ever part of it.
#[derive(Clone, Debug)]
pub struct Rejection {
    status: StatusCode,
    reason: Cow<'static, str>,
    url: Vec<u8>,
    diagnosis: Cow<'static, str>,
    /// Forwarding headers the request carried that played no part, and why.
    ignored: Option<String>,
}

impl Rejection {
    pub(crate) fn new(
        status: StatusCode,
        reason: impl Into<Cow<'static, str>>,
        diagnosis: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            reason: reason.into(),
            url: Vec::new(),
            diagnosis: diagnosis.into(),
            ignored: None,
        }
    }

    /// The refusal for the request whose target is `url`, noting the forwarding headers it ignored.
    pub(crate) fn about(mut self, url: &[u8], ignored: Option<&str>) -> Self {
        url.clone_into(&mut self.url);
        self.ignored = ignored.map(str::to_owned);
        self
    }

    /// The status the default response answers: 400 (no signature header, a host or scheme that could
    /// move the URL), 413 (body over the limit), 415 (a form body that is not
    /// `application/x-www-form-urlencoded`), 403 (the signature does not verify), 500 (no usable
    /// secret: the app's misconfiguration).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What was wrong, in a few words (the default response's body). Never holds a secret.
    pub fn reason(&self) -> &str {
        self.reason.trim_end_matches('.')
    }

    /// The URL verified, or that would have been (refusals before the verdict have one too), as
    /// reconstructed from the request: text from the request, not to be trusted. Invalid UTF-8 is
    /// replaced by U+FFFD.
    pub fn url(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.url)
    }

    /// The likely mistake and its fix, on one line: for a 403, the core's `explain`.
    pub fn diagnosis(&self) -> &str {
        &self.diagnosis
    }

    /// Which forwarding headers (`X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Port`,
    /// `Forwarded`) the request carried that were not believed, and why: e.g. `X-Forwarded-Proto
    /// ignored: from 203.0.113.7, not in trusted_proxies`. `None` when there were none, or when
    /// `base_url` made them irrelevant.
    pub fn ignored_forwarding(&self) -> Option<&str> {
        self.ignored.as_deref()
    }

    /// Logs the default line through `tracing`, target `twilio_signature_tower`: WARN, or ERROR for a
    /// 500 (the app's misconfiguration). What the layer does for every refusal when no `on_reject` hook
    /// is set; a hook may call it to keep the line.
    pub fn log(&self) {
        if self.status.is_server_error() {
            tracing::error!(target: "twilio_signature_tower", "{self}");
        } else {
            tracing::warn!(target: "twilio_signature_tower", "{self}");
        }
    }

    /// The default response: the status, and the reason as plain text.
    pub fn response(&self) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(format!("{}\n", self.reason()))));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }

    /// Hands the refusal to the hook, or logs it and answers the default response.
    pub(crate) fn respond<B>(
        self,
        parts: &Parts,
        hook: Option<&OnReject>,
    ) -> Response<ResponseBody<B>> {
        let response = if let Some(hook) = hook {
            hook(parts, &self)
        } else {
            self.log();
            self.response()
        };
        response.map(Either::Right)
    }
}

impl fmt::Display for Rejection {
    /// `twilio webhook refused: <status> <reason>; url=<url>; <diagnosis>[; <ignored forwarding>]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "twilio webhook refused: {} {}; url={}; {}",
            self.status.as_u16(),
            Printable(self.reason().as_bytes()),
            Printable(&self.url),
            Printable(self.diagnosis.as_bytes()),
        )?;
        if let Some(ignored) = &self.ignored {
            write!(f, "; {}", Printable(ignored.as_bytes()))?;
        }
        Ok(())
    }
}

/// Bytes from the request shown in a log line: UTF-8 as is; invalid bytes and every control character
/// (C0, DEL, C1) as `\xNN`, U+2028 and U+2029 as `\u2028`/`\u2029`; so that a hostile header cannot
/// forge log lines.
pub(crate) struct Printable<'a>(pub(crate) &'a [u8]);

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
    use super::*;

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

    #[test]
    fn the_line_is_status_reason_url_diagnosis_and_the_ignored_headers_last() {
        let rejection = Rejection::new(
            StatusCode::FORBIDDEN,
            "signature mismatch.",
            "http vs https",
        )
        .about(
            b"http://h/sms\n",
            Some("X-Forwarded-Proto ignored: no trusted_proxies configured"),
        );
        assert_eq!(
            rejection.to_string(),
            "twilio webhook refused: 403 signature mismatch; url=http://h/sms\\x0a; http vs https; \
             X-Forwarded-Proto ignored: no trusted_proxies configured"
        );
        assert_eq!(rejection.reason(), "signature mismatch");
        assert_eq!(rejection.url(), "http://h/sms\n");
        let response = rejection.response();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
}
