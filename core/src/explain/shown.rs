//! What a report shows of a URL: its first bytes ([`ShownUrl`], kept without allocating and written
//! on one line), and for a mistake hidden in the URL, the URL verified beside the URL signed
//! ([`UrlCorrection`]). [`super::diagnose`](mod@super::diagnose) and [`super::internal`] make them;
//! [`super::Explanation`] writes them.

use core::fmt;

/// How many bytes of a URL a [`ShownUrl`] keeps.
pub(super) const SHOWN_URL_LEN: usize = 200;

/// The start of a URL as reports show it (its first 200 bytes), kept without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShownUrl {
    shown: [u8; SHOWN_URL_LEN],
    shown_len: u8,
    truncated: bool,
}

impl ShownUrl {
    /// The first bytes of the URL made of `pieces` in order.
    pub(super) fn of<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut this = Self {
            shown: [0; SHOWN_URL_LEN],
            shown_len: 0,
            truncated: false,
        };
        let mut len = 0;
        for piece in pieces {
            let room = SHOWN_URL_LEN - len;
            let taken = piece.len().min(room);
            this.shown[len..len + taken].copy_from_slice(&piece[..taken]);
            len += taken;
            this.truncated |= piece.len() > room;
        }
        this.shown_len = len as u8;
        this
    }

    /// The URL's first bytes (all of it unless [`ShownUrl::truncated`]).
    pub fn as_bytes(&self) -> &[u8] {
        &self.shown[..usize::from(self.shown_len)]
    }

    /// Whether the URL was longer than what is kept.
    pub const fn truncated(&self) -> bool {
        self.truncated
    }

    /// Printable ASCII as is, anything else `%XX`, so a log line stays one line; `...` when truncated.
    pub(super) fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.as_bytes() {
            if b.is_ascii_graphic() {
                write!(f, "{}", char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShownUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        self.write(f)?;
        f.write_str("\"")
    }
}

/// For a mistake whose URLs reports show: the URL verified and the URL that matched, exactly as
/// Twilio signed it (the matching candidate of the corrected URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UrlCorrection {
    /// The URL passed to the verifier.
    pub verified: ShownUrl,
    /// The URL the signature matched.
    pub signed: ShownUrl,
}
