//! Counters and histograms for `/metrics`, in the Prometheus text format. Lock-free: one atomic add
//! per counter and a few per histogram observation on the request path.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Why a request ended as it did: the `reason` label (and the log line's `reason=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Forwarded; the upstream answered.
    Ok,
    MissingSignature,
    BadRequest,
    InvalidSignature,
    BodyTooLarge,
    UnsupportedContentType,
    NoUsableSecret,
    RefusedOther,
    UpstreamUnavailable,
    UpstreamTimeout,
    NoRoute,
    /// A retry answered with the first delivery's stored response.
    Replayed,
    /// 409: a retry of a delivery still being handled.
    StillRunning,
    /// 503: the retry store failed (only with a refusing store-failure policy).
    StoreUnavailable,
}

const REASONS: [Reason; 14] = [
    Reason::Ok,
    Reason::MissingSignature,
    Reason::BadRequest,
    Reason::InvalidSignature,
    Reason::BodyTooLarge,
    Reason::UnsupportedContentType,
    Reason::NoUsableSecret,
    Reason::RefusedOther,
    Reason::UpstreamUnavailable,
    Reason::UpstreamTimeout,
    Reason::NoRoute,
    Reason::Replayed,
    Reason::StillRunning,
    Reason::StoreUnavailable,
];

impl Reason {
    /// A refusal by the layer, from its status and the line it logged.
    pub fn of_refusal(status: u16, line: Option<&str>) -> Self {
        match status {
            400 if line.is_some_and(|l| l.contains("X-Twilio-Signature header is missing")) => {
                Self::MissingSignature
            }
            400 => Self::BadRequest,
            403 => Self::InvalidSignature,
            413 => Self::BodyTooLarge,
            415 => Self::UnsupportedContentType,
            500 => Self::NoUsableSecret,
            _ => Self::RefusedOther,
        }
    }

    pub const fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::MissingSignature => "missing_signature",
            Self::BadRequest => "bad_request",
            Self::InvalidSignature => "invalid_signature",
            Self::BodyTooLarge => "body_too_large",
            Self::UnsupportedContentType => "unsupported_content_type",
            Self::NoUsableSecret => "no_usable_secret",
            Self::RefusedOther => "refused_other",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::NoRoute => "no_route",
            Self::Replayed => "replayed",
            Self::StillRunning => "still_running",
            Self::StoreUnavailable => "store_unavailable",
        }
    }

    pub const fn outcome(self) -> &'static str {
        match self {
            Self::Ok => "forwarded",
            Self::UpstreamUnavailable | Self::UpstreamTimeout => "upstream_error",
            Self::NoRoute => "no_route",
            Self::Replayed | Self::StillRunning | Self::StoreUnavailable => "retry",
            _ => "refused",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Upper bounds of the latency buckets, in seconds (the upstream's go up to Twilio's 15 s).
const BUCKETS: [f64; 15] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    15.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket (not cumulative; summed when rendered), plus one for above the last bound.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            match BUCKETS.get(i) {
                Some(bound) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        #[allow(clippy::cast_precision_loss)] // nanoseconds summed stay far below 2^53 in practice
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; REASONS.len()],
    verify: Histogram,
    upstream: Histogram,
    tunnels: AtomicU64,
}

impl Metrics {
    pub fn request(&self, reason: Reason) {
        self.requests[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// From the request's arrival to its verdict (the body read, the signature checked).
    pub fn verify(&self, elapsed: Duration) {
        self.verify.observe(elapsed);
    }

    /// From sending the request upstream to its response head.
    pub fn upstream(&self, elapsed: Duration) {
        self.upstream.observe(elapsed);
    }

    pub fn tunnel_opened(&self) {
        self.tunnels.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP twsig_proxy_requests_total Requests by outcome (forwarded, refused, \
             upstream_error, retry, no_route) and reason.\n# TYPE twsig_proxy_requests_total counter\n",
        );
        for reason in REASONS {
            let _ = writeln!(
                out,
                "twsig_proxy_requests_total{{outcome=\"{}\",reason=\"{}\"}} {}",
                reason.outcome(),
                reason.label(),
                self.requests[reason.index()].load(Ordering::Relaxed)
            );
        }
        self.verify.render(
            &mut out,
            "twsig_proxy_verify_duration_seconds",
            "From a request's arrival to the layer's verdict (body read and signature checked).",
        );
        self.upstream.render(
            &mut out,
            "twsig_proxy_upstream_duration_seconds",
            "From sending a verified request upstream to the upstream's response head.",
        );
        let _ = writeln!(
            out,
            "# HELP twsig_proxy_websocket_tunnels_total WebSocket tunnels opened after a verified \
             handshake.\n# TYPE twsig_proxy_websocket_tunnels_total counter\n\
             twsig_proxy_websocket_tunnels_total {}",
            self.tunnels.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let metrics = Metrics::default();
        metrics.verify(Duration::from_micros(100));
        metrics.verify(Duration::from_millis(3));
        metrics.verify(Duration::from_secs(20));
        metrics.request(Reason::InvalidSignature);
        let text = metrics.render();
        assert!(text.contains("twsig_proxy_verify_duration_seconds_bucket{le=\"0.00025\"} 1\n"));
        assert!(text.contains("twsig_proxy_verify_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("twsig_proxy_verify_duration_seconds_bucket{le=\"15\"} 2\n"));
        assert!(text.contains("twsig_proxy_verify_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("twsig_proxy_verify_duration_seconds_count 3\n"));
        assert!(text.contains(
            "twsig_proxy_requests_total{outcome=\"refused\",reason=\"invalid_signature\"} 1\n"
        ));
    }
}
