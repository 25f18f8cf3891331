//! Log lines on standard error: one per request (text or JSON), with the tower layer's refusal event
//! folded into the line of the request it refused, and the proxy's own start-up and shutdown notes.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use super::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Sends `tracing` events (the tower layer's base_url warning) to the log and sets the line format.
/// Called once at start-up. Refusals do not come this way: the layer's `on_reject` hook hands them to
/// the request's own line.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    // Another subscriber can only be set first by this process itself; the proxy sets none.
    let _ = tracing::subscriber::set_global_default(Collector);
}

fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

/// A `tracing` subscriber that writes each event (INFO and above) as a line of its own.
struct Collector;

#[derive(Default)]
struct Fields {
    message: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        }
    }
}

impl Subscriber for Collector {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // The layer's INFO events (a retry answered from the store) say what the request's own line
        // says; its warnings and errors (a store failure, a base_url mistake) are kept.
        let level = *metadata.level();
        level < Level::INFO
            || (level == Level::INFO && metadata.target() != "twilio_signature_tower")
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        note(event.metadata().level().as_str(), &fields.message);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// A line that is not about one request: start-up, shutdown, a warning.
pub fn note(level: &str, message: &str) {
    let mut line = String::with_capacity(64 + message.len());
    match format() {
        LogFormat::Text => {
            let _ = write!(line, "{} twsig-proxy {level} {}", Now, Escaped(message));
        }
        LogFormat::Json => {
            let _ = write!(
                line,
                "{{\"time\":\"{}\",\"level\":{},\"message\":{}}}",
                Now,
                Json(level),
                Json(message)
            );
        }
    }
    emit(line);
}

/// What one request came to.
#[derive(Debug)]
pub struct Access<'a> {
    pub peer: SocketAddr,
    pub method: &'a str,
    /// The request target as sent (path and query).
    pub target: &'a str,
    pub status: u16,
    /// `forwarded`, `refused`, `upstream_error` or `no_route`.
    pub outcome: &'static str,
    /// A short, fixed label (also the metrics label).
    pub reason: &'static str,
    /// The upstream of the route taken.
    pub upstream: Option<&'a str>,
    /// The X-Twilio-Verified value sent upstream.
    pub verified: Option<&'a str>,
    pub upstream_ms: Option<f64>,
    pub total_ms: f64,
    /// The layer's refusal line, or what went wrong with the upstream.
    pub detail: Option<&'a str>,
}

impl Access<'_> {
    pub fn log(&self) {
        let mut line = String::with_capacity(256);
        match format() {
            LogFormat::Text => self.text(&mut line),
            LogFormat::Json => self.json(&mut line),
        }
        .expect("writing to a String cannot fail");
        emit(line);
    }

    fn text(&self, line: &mut String) -> fmt::Result {
        write!(
            line,
            "{} twsig-proxy {} \"{} {}\" {} {} reason={}",
            Now,
            self.peer,
            Escaped(self.method),
            Escaped(self.target),
            self.status,
            self.outcome,
            self.reason
        )?;
        if let Some(upstream) = self.upstream {
            write!(line, " upstream={}", Escaped(upstream))?;
        }
        if let Some(verified) = self.verified {
            write!(line, " verified=\"{}\"", Escaped(verified))?;
        }
        if let Some(ms) = self.upstream_ms {
            write!(line, " upstream_ms={ms:.3}")?;
        }
        write!(line, " total_ms={:.3}", self.total_ms)?;
        if let Some(detail) = self.detail {
            write!(line, " -- {}", Escaped(detail))?;
        }
        Ok(())
    }

    fn json(&self, line: &mut String) -> fmt::Result {
        write!(
            line,
            "{{\"time\":\"{}\",\"peer\":\"{}\",\"method\":{},\"target\":{},\"status\":{},\
             \"outcome\":\"{}\",\"reason\":\"{}\"",
            Now,
            self.peer,
            Json(self.method),
            Json(self.target),
            self.status,
            self.outcome,
            self.reason
        )?;
        if let Some(upstream) = self.upstream {
            write!(line, ",\"upstream\":{}", Json(upstream))?;
        }
        if let Some(verified) = self.verified {
            write!(line, ",\"verified\":{}", Json(verified))?;
        }
        if let Some(ms) = self.upstream_ms {
            write!(line, ",\"upstream_ms\":{ms:.3}")?;
        }
        write!(line, ",\"total_ms\":{:.3}", self.total_ms)?;
        if let Some(detail) = self.detail {
            write!(line, ",\"detail\":{}", Json(detail))?;
        }
        line.push('}');
        Ok(())
    }
}

fn emit(mut line: String) {
    line.push('\n');
    // One write per line, so lines from concurrent requests never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Text from a request in a text line: control characters (and U+2028/U+2029) as escapes and `"` as
/// `\"`, so that a hostile path cannot forge or split log lines.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() => write!(f, "\\x{:02x}", u32::from(c))?,
                '\u{2028}' | '\u{2029}' => write!(f, "\\u{:04x}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// A JSON string literal.
struct Json<'a>(&'a str);

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                    write!(f, "\\u{:04x}", u32::from(c))?;
                }
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// The current time in UTC, RFC 3339 with milliseconds.
struct Now;

impl fmt::Display for Now {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seconds = since.as_secs();
        let (year, month, day) = civil_from_days(seconds / 86_400);
        let time = seconds % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            time / 3600,
            time / 60 % 60,
            time % 60,
            since.subsec_millis()
        )
    }
}

/// The Gregorian date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_gregorian() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_793), (2026, 12, 6));
    }

    #[test]
    fn request_text_cannot_split_a_line() {
        assert_eq!(
            Escaped("/a\r\nb\"c\u{2028}").to_string(),
            "/a\\x0d\\x0ab\\\"c\\u2028"
        );
        assert_eq!(
            Json("a\"\\\n\u{7f}").to_string(),
            "\"a\\\"\\\\\\u000a\\u007f\""
        );
    }
}
