//! What can be wrong with a refused request: each [`Mistake`], in a sentence and with its fix, and
//! the [`Diagnosis`] that names one and the secret and URL candidate that matched once it was
//! corrected. [`super::diagnose`](mod@super::diagnose) tries them; [`super::Explanation`] reports them.

use core::fmt;

use crate::url::Candidate;

/// A mistake that explains a failed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mistake {
    /// Twilio signed `https://` but the app passed `http://` (or the reverse): usually a proxy or load
    /// balancer terminates TLS in front of the app.
    SchemeSwapped,
    /// Twilio's URL had a trailing slash where the app's has none, or the reverse.
    TrailingSlash,
    /// Twilio's URL had a different scheme *and* a different trailing slash.
    SchemeSwappedAndTrailingSlash,
    /// Twilio signed the URL without the query string the app passed.
    ExtraQuery,
    /// The signature covers the URL alone: a GET verified with a body, or a body added to a request
    /// signed without one.
    ParamsNotSigned,
    /// A JSON webhook verified as a form: its URL lost the `?bodySHA256=<SHA-256 of the body>` that
    /// Twilio adds to it (the query string was dropped), so the body was read as form parameters. The
    /// signature covers the URL with that hash.
    BodyHashDropped,
    /// The signature matches, but the body is not the one whose hash Twilio put in `bodySHA256`: the app
    /// passed re-serialised or re-decoded JSON instead of the raw bytes.
    BodyAltered,
    /// A 44-character (HMAC-SHA256) signature arrived without `X-Twilio-Webhooks-Signature-Settings`.
    SettingsHeaderMissing,
    /// A 28-character (HMAC-SHA1) signature arrived with a settings header naming HMAC-SHA256.
    SettingsHeaderUnexpected,
    /// A secret matched, but not one with the key id the settings header names.
    KeyIdMismatch,
    /// A WebSocket handshake (Media Streams, ConversationRelay) verified as the `https://` request the
    /// app sees: Twilio signed it over its `wss://` URL.
    HttpsInsteadOfWss,
    /// A WebSocket handshake verified as the `http://` request the app sees: Twilio signed it over its
    /// `ws://` URL.
    HttpInsteadOfWs,
    /// A request verified as a `wss://` handshake that Twilio signed over its `https://` URL: it is not
    /// a WebSocket handshake.
    WssInsteadOfHttps,
    /// A request verified as a `ws://` handshake that Twilio signed over its `http://` URL.
    WsInsteadOfHttp,
    /// A WebSocket handshake verified with the other scheme (`ws` vs `wss`): usually the public scheme
    /// is https but the app saw plain http behind a proxy.
    WebSocketSchemeSwapped,
    /// The URL verified repeats part of its path (`/twilio/sms/twilio/sms`): the route was appended to a
    /// base URL that already ended with it. The URL without the repeat matched.
    DoubledPath,
    /// Twilio signed the URL with a port (`https://example.com:8443/sms`) that the URL verified does not
    /// have: the app is reached through a port it does not see. Only a few common ports are tried
    /// (see [`DROPPED_PORTS`]).
    DroppedPort,
}

/// The ports explain tries when the URL verified has none (or its scheme's default) and nothing else
/// matched: those apps commonly listen on behind a proxy or a tunnel. A port cannot be guessed in
/// general, so the list is short (each costs one HMAC per eligible secret); 443 and 80 are the port
/// toggle's, which `verify` tries itself.
pub const DROPPED_PORTS: [u16; 5] = [8443, 8080, 8000, 3000, 5000];

impl Mistake {
    /// What went wrong, in a sentence.
    pub const fn describe(self) -> &'static str {
        match self {
            Self::SchemeSwapped => "Twilio signed the URL with the other scheme (http vs https)",
            Self::TrailingSlash => "Twilio signed the URL with a different trailing slash",
            Self::SchemeSwappedAndTrailingSlash => {
                "Twilio signed the URL with the other scheme (http vs https) and a different trailing slash"
            }
            Self::ExtraQuery => "Twilio signed the URL without the query string that was passed",
            Self::ParamsNotSigned => "the signature covers the URL alone, not the body's parameters",
            Self::BodyHashDropped => {
                "the URL lost its bodySHA256: this is a JSON webhook, which Twilio signs over its URL with \
                 ?bodySHA256=<SHA-256 of the body>, and without it the body was read as a form"
            }
            Self::BodyAltered => "the URL is signed, but the body does not match its bodySHA256",
            Self::SettingsHeaderMissing => {
                "this is an HMAC-SHA256 (SharedKey) signature, but the X-Twilio-Webhooks-Signature-Settings header was not passed"
            }
            Self::SettingsHeaderUnexpected => {
                "this is an HMAC-SHA1 signature, but a settings header naming HMAC-SHA256 was passed"
            }
            Self::KeyIdMismatch => "a secret with a different key id than the settings header names matched",
            Self::HttpsInsteadOfWss => "verified as https:// but Twilio signed the wss:// handshake",
            Self::HttpInsteadOfWs => "verified as http:// but Twilio signed the ws:// handshake",
            Self::WssInsteadOfHttps => {
                "verified as wss:// but signed over the https:// URL: signed as a plain request, not as Twilio signs a handshake"
            }
            Self::WsInsteadOfHttp => {
                "verified as ws:// but signed over the http:// URL: signed as a plain request, not as Twilio signs a handshake"
            }
            Self::WebSocketSchemeSwapped => "Twilio signed the handshake with the other scheme (ws vs wss)",
            Self::DoubledPath => {
                "the URL verified repeats part of its path: Twilio signed it without the repeat"
            }
            Self::DroppedPort => {
                "Twilio signed the URL with a port that the URL verified does not have"
            }
        }
    }

    /// Whether reports show the URL verified and the URL signed (the mistakes a user cannot see from
    /// the URL verified alone).
    pub(super) const fn shows_urls(self) -> bool {
        matches!(
            self,
            Self::HttpsInsteadOfWss
                | Self::HttpInsteadOfWs
                | Self::WssInsteadOfHttps
                | Self::WsInsteadOfHttp
                | Self::WebSocketSchemeSwapped
                | Self::DoubledPath
                | Self::DroppedPort
        )
    }

    /// What to change in the app.
    pub const fn fix(self) -> &'static str {
        match self {
            Self::SchemeSwapped | Self::SchemeSwappedAndTrailingSlash => {
                "build the URL from the public scheme: configure the base URL, or trust your proxy's X-Forwarded-Proto"
            }
            Self::TrailingSlash => "pass the URL exactly as configured in the Twilio console, slash included or not",
            Self::ExtraQuery => "pass the URL Twilio requested; do not append a query string",
            Self::ParamsNotSigned => {
                "verify a request without a body (a GET) over its URL alone; for JSON webhooks pass the full URL including ?bodySHA256=..., and the raw body"
            }
            Self::BodyHashDropped => {
                "pass the full URL Twilio requested, query string included, and the raw body"
            }
            Self::BodyAltered => "pass the raw request body bytes, not parsed and re-serialised JSON",
            Self::SettingsHeaderMissing | Self::SettingsHeaderUnexpected => {
                "pass the X-Twilio-Webhooks-Signature-Settings header exactly as received"
            }
            Self::KeyIdMismatch => "give each SharedKey secret its own key id as shown in the Twilio console",
            Self::HttpsInsteadOfWss | Self::HttpInsteadOfWs => {
                "verify a WebSocket handshake (a GET with Upgrade: websocket) over its wss:// URL (ws:// when the public scheme is http), with no body"
            }
            Self::WssInsteadOfHttps | Self::WsInsteadOfHttp => {
                "verify only WebSocket handshakes over the wss:// (or ws://) URL, and other requests over their https:// (or http://) URL"
            }
            Self::WebSocketSchemeSwapped => {
                "build the handshake's URL from the public scheme (wss when it is https): configure the base URL, or trust your proxy's X-Forwarded-Proto"
            }
            Self::DoubledPath => {
                "give the base URL as the public origin plus only the mount prefix the app does not see (usually just the origin), not the route"
            }
            Self::DroppedPort => {
                "verify the URL with the port Twilio requested: put it in the base URL (public scheme, host and port), or trust your proxy so that its X-Forwarded-Host (host:port) is used"
            }
        }
    }
}

impl fmt::Display for Mistake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// A mistake that, corrected, makes the request match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Diagnosis {
    /// What was wrong.
    pub mistake: Mistake,
    /// The secret that matched the corrected request.
    pub secret_index: usize,
    /// The candidate form of the corrected URL that matched.
    pub candidate: Candidate,
}
