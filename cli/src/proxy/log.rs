//! Log lines on standard error: one per request (text or JSON), with the tower layer's refusal event
//! folded into the line of the request it refused, and the proxy's own start-up and shutdown notes.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    pub upstream_time: Option<Duration>,
    pub total_time: Duration,
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

    /// The text line, built by appending (a `write!` per field cost more than the rest of the line).
    fn text(&self, line: &mut String) -> fmt::Result {
        write!(line, "{Now} twsig-proxy ")?;
        push_peer(line, self.peer);
        line.push_str(" \"");
        push_escaped(line, self.method);
        line.push(' ');
        push_escaped(line, self.target);
        line.push_str("\" ");
        push_number(line, self.status.into());
        line.push(' ');
        line.push_str(self.outcome);
        line.push_str(" reason=");
        line.push_str(self.reason);
        if let Some(upstream) = self.upstream {
            line.push_str(" upstream=");
            push_escaped(line, upstream);
        }
        if let Some(verified) = self.verified {
            line.push_str(" verified=\"");
            push_escaped(line, verified);
            line.push('"');
        }
        if let Some(time) = self.upstream_time {
            line.push_str(" upstream_ms=");
            push_millis(line, time);
        }
        line.push_str(" total_ms=");
        push_millis(line, self.total_time);
        if let Some(detail) = self.detail {
            line.push_str(" -- ");
            push_escaped(line, detail);
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
        if let Some(time) = self.upstream_time {
            write!(line, ",\"upstream_ms\":{}", Millis(time))?;
        }
        write!(line, ",\"total_ms\":{}", Millis(self.total_time))?;
        if let Some(detail) = self.detail {
            write!(line, ",\"detail\":{}", Json(detail))?;
        }
        line.push('}');
        Ok(())
    }
}

/// The bytes pending on a thread before a write is forced (about sixty request lines).
const PENDING_LIMIT: usize = 16 * 1024;

thread_local! {
    /// This thread's lines not written yet: `Some` on the proxy's runtime threads (see [`buffered`]),
    /// `None` elsewhere, where each line is written at once.
    static PENDING: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// From now on this thread's lines wait in a buffer until [`flush`] (which the proxy's runtimes call
/// each time their thread runs out of work, and which a task spawned here calls every 50 ms), or until
/// 16 KiB are pending. A loaded proxy then writes many lines per system call instead of one, and an
/// idle one writes each line as soon as the request it describes is answered. Called on a runtime's
/// own thread, inside the runtime.
pub fn buffered() {
    PENDING.with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            pending.get_or_insert_with(|| Vec::with_capacity(PENDING_LIMIT));
        }
    });
    tokio::spawn(flush_regularly());
}

/// How often a runtime thread writes its pending lines even if it never runs out of work.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Flushes this thread's lines every 50 ms, for a thread too busy to run out of work: a line waits at
/// most that long.
async fn flush_regularly() {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        flush();
    }
}

/// Writes this thread's pending lines.
pub fn flush() {
    PENDING.with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            if let Some(lines) = pending.as_mut().filter(|lines| !lines.is_empty()) {
                write_out(lines);
                lines.clear();
            }
        }
    });
}

fn emit(mut line: String) {
    line.push('\n');
    let kept = PENDING.with(|pending| {
        let Ok(mut pending) = pending.try_borrow_mut() else {
            return false;
        };
        let Some(lines) = pending.as_mut() else {
            return false;
        };
        lines.extend_from_slice(line.as_bytes());
        if lines.len() >= PENDING_LIMIT {
            write_out(lines);
            lines.clear();
        }
        true
    });
    if !kept {
        write_out(line.as_bytes());
    }
}

/// Whole lines in one locked write, so that lines from the proxy's threads never interleave.
fn write_out(lines: &[u8]) {
    let _ = std::io::stderr().lock().write_all(lines);
}

/// Text from a request in a text line: control characters (and U+2028/U+2029) as escapes and `"` as
/// `\"`, so that a hostile path cannot forge or split log lines.
struct Escaped<'a>(&'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if plain(self.0) {
            return f.write_str(self.0);
        }
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
        if plain(self.0) {
            f.write_str(self.0)?;
            return f.write_char('"');
        }
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

/// Printable ASCII other than `"` and `\\`: text that [`Escaped`] and [`Json`] copy as it is (nearly
/// every method, path and upstream).
fn plain(text: &str) -> bool {
    text.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// A duration in milliseconds with three decimals (microseconds), e.g. `0.083`.
struct Millis(Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(16);
        push_millis(&mut text, self.0);
        f.write_str(&text)
    }
}

fn push_millis(line: &mut String, time: Duration) {
    let micros = u64::try_from(time.as_micros()).unwrap_or(u64::MAX);
    push_number(line, micros / 1000);
    line.push('.');
    let fraction = micros % 1000;
    if fraction < 100 {
        line.push('0');
    }
    if fraction < 10 {
        line.push('0');
    }
    push_number(line, fraction);
}

/// A number in decimal.
fn push_number(line: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // n % 10 < 10: the cast cannot truncate.
        let digit = (n % 10) as u8;
        digits[at] = b'0' + digit;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    line.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// `ADDRESS:PORT`, as `SocketAddr` displays it (an IPv4 peer without the formatting machinery).
fn push_peer(line: &mut String, peer: SocketAddr) {
    match peer {
        SocketAddr::V4(v4) => {
            for (i, octet) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                push_number(line, octet.into());
            }
            line.push(':');
            push_number(line, v4.port().into());
        }
        SocketAddr::V6(_) => {
            let _ = write!(line, "{peer}");
        }
    }
}

/// [`Escaped`], appended.
fn push_escaped(line: &mut String, text: &str) {
    if plain(text) {
        line.push_str(text);
    } else {
        let _ = write!(line, "{}", Escaped(text));
    }
}

thread_local! {
    /// The last second [`Now`] wrote on this thread, and its `YYYY-MM-DDTHH:MM:SS`: one date
    /// computation a second instead of one a line.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// The current time in UTC, RFC 3339 with milliseconds.
struct Now;

impl fmt::Display for Now {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let seconds = since.as_secs();
        let (cached, mut text) = SECOND.get();
        if cached != seconds {
            let (year, month, day) = civil_from_days(seconds / 86_400);
            let time = seconds % 86_400;
            let mut written = String::with_capacity(19);
            write!(
                written,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                time / 3600,
                time / 60 % 60,
                time % 60,
            )?;
            // Four-digit years (until 9999): 19 bytes; anything else is written, not cached.
            match written.as_bytes().try_into() {
                Ok(bytes) => {
                    text = bytes;
                    SECOND.set((seconds, text));
                }
                Err(_) => return write!(f, "{written}.{:03}Z", since.subsec_millis()),
            }
        }
        // Only ASCII digits and separators were cached.
        f.write_str(std::str::from_utf8(&text).unwrap_or_default())?;
        write!(f, ".{:03}Z", since.subsec_millis())
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
    fn numbers_times_and_peers_are_written_as_display_writes_them() {
        for n in [0_u64, 7, 10, 99, 100, 65_535, u64::MAX] {
            let mut text = String::new();
            push_number(&mut text, n);
            assert_eq!(text, n.to_string());
        }
        for (micros, shown) in [
            (0, "0.000"),
            (7, "0.007"),
            (83, "0.083"),
            (1_234, "1.234"),
            (15_000_001, "15000.001"),
        ] {
            assert_eq!(Millis(Duration::from_micros(micros)).to_string(), shown);
        }
        for peer in ["127.0.0.1:8080", "10.200.3.4:1", "0.0.0.0:0", "[::1]:443"] {
            let peer: SocketAddr = peer.parse().unwrap();
            let mut text = String::new();
            push_peer(&mut text, peer);
            assert_eq!(text, peer.to_string());
        }
        let mut text = String::new();
        push_escaped(&mut text, "/sms?x=\"y\"");
        assert_eq!(text, "/sms?x=\\\"y\\\"");
    }

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
