//! The proxy's settings: command-line options, optionally a TOML file of routes, checked once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::Uri;
use serde::Deserialize;
use twilio_signature::Secret;

use super::{LogFormat, ProxyArgs};
use crate::{secrets, Failure};

const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything the server needs, checked.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub body_limit: usize,
    pub upstream_timeout: Duration,
    pub body_timeout: Duration,
    pub log_format: LogFormat,
    /// The Redis URL for the retry store; `None`: a store in this process.
    pub redis: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub routes: Vec<RouteSettings>,
}

/// One route: the paths it takes, where they go, and what verifies them.
#[derive(Debug)]
pub struct RouteSettings {
    /// Without a trailing slash; empty for every path.
    pub prefix: String,
    pub upstream: Upstream,
    pub base_url: Option<String>,
    pub secrets: Vec<Secret>,
    /// The key id of each secret (all the same, or none), for X-Twilio-Verified.
    pub key_id: Option<String>,
}

/// An `http://host:port[/prefix]` upstream.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub authority: Authority,
    /// Put before every request path; empty or `/x` without a trailing slash.
    pub prefix: String,
}

impl Upstream {
    pub fn parse(text: &str) -> Result<Self, Failure> {
        let bad = |why: &str| {
            Failure::usage(format!(
                "upstream {text:?} {why}: give http://HOST:PORT, optionally with a path prefix"
            ))
        };
        let uri: Uri = text.parse().map_err(|_| bad("is not a URL"))?;
        match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => {}
            Some(_) => {
                return Err(bad(
                    "is not http:// (the proxy speaks plain HTTP to the app)",
                ))
            }
            None => return Err(bad("has no scheme")),
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("has credentials"));
        }
        if uri.query().is_some() {
            return Err(bad("has a query"));
        }
        Ok(Self {
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// `host:port` with the default port 80 when none is given, for readiness checks.
    pub fn address(&self) -> String {
        match self.authority.port_u16() {
            Some(_) => self.authority.as_str().to_owned(),
            None => format!("{}:80", self.authority.host()),
        }
    }
}

/// The TOML file. Unknown keys are errors: a misspelt key must not silently drop a setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: Option<SocketAddr>,
    admin_listen: Option<SocketAddr>,
    base_url: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    body_limit: Option<usize>,
    upstream_timeout: Option<f64>,
    body_timeout: Option<f64>,
    log_format: Option<LogFormat>,
    redis: Option<String>,
    #[serde(default, rename = "route")]
    routes: Vec<FileRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRoute {
    prefix: String,
    upstream: String,
    #[serde(default)]
    token_files: Vec<PathBuf>,
    key_id: Option<String>,
    base_url: Option<String>,
}

impl Settings {
    /// The options, with the file's values where an option is not given.
    pub fn resolve(args: &ProxyArgs) -> Result<Self, Failure> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => File::default(),
        };
        let listen = args.listen.or(file.listen).ok_or_else(|| {
            Failure::usage(
                "no address to serve on: pass --listen HOST:PORT (or listen in --config)",
            )
        })?;
        let upstream_timeout = timeout_setting(
            args.upstream_timeout,
            file.upstream_timeout,
            "upstream_timeout",
            DEFAULT_UPSTREAM_TIMEOUT,
        )?;
        let body_timeout = timeout_setting(
            args.body_timeout,
            file.body_timeout,
            "body_timeout",
            DEFAULT_BODY_TIMEOUT,
        )?;
        let base_url = args.base_url.clone().or(file.base_url);
        // Loaded only when some route needs them, so that a file giving every route its own token
        // files needs no TWILIO_AUTH_TOKEN.
        let mut loaded: Option<Vec<secrets::Loaded>> = None;
        let mut default_secrets = |key_id: Option<&str>| -> Result<Vec<Secret>, Failure> {
            if loaded.is_none() {
                loaded = Some(args.secrets.load()?);
            }
            secrets::prepare(loaded.as_deref().unwrap_or_default(), key_id)
        };
        let routes = if file.routes.is_empty() {
            let upstream = args.upstream.as_deref().ok_or_else(|| {
                Failure::usage("no upstream: pass --upstream http://HOST:PORT (or [[route]] tables in --config)")
            })?;
            vec![RouteSettings {
                prefix: String::new(),
                upstream: Upstream::parse(upstream)?,
                base_url,
                secrets: default_secrets(args.key_id.as_deref())?,
                key_id: args.key_id.clone(),
            }]
        } else {
            let mut routes = Vec::with_capacity(file.routes.len());
            for route in file.routes {
                if !route.prefix.starts_with('/') {
                    return Err(Failure::usage(format!(
                        "route prefix {:?} in --config must start with /",
                        route.prefix
                    )));
                }
                let key_id = route.key_id.or_else(|| args.key_id.clone());
                let secrets = if route.token_files.is_empty() {
                    default_secrets(key_id.as_deref())?
                } else {
                    secrets::prepare(&secrets::load(&route.token_files)?, key_id.as_deref())?
                };
                routes.push(RouteSettings {
                    prefix: route.prefix.trim_end_matches('/').to_owned(),
                    upstream: Upstream::parse(&route.upstream)?,
                    base_url: route.base_url.or_else(|| base_url.clone()),
                    secrets,
                    key_id,
                });
            }
            // Longest prefix first: the first match is the most specific.
            routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
            if let Some(pair) = routes.windows(2).find(|w| w[0].prefix == w[1].prefix) {
                return Err(Failure::usage(format!(
                    "two routes in --config have the prefix {:?}",
                    if pair[0].prefix.is_empty() {
                        "/"
                    } else {
                        &pair[0].prefix
                    }
                )));
            }
            routes
        };
        let mut trusted_proxies = args.trusted_proxies.clone();
        if trusted_proxies.is_empty() {
            trusted_proxies = file.trusted_proxies;
        }
        Ok(Self {
            listen,
            admin_listen: args.admin_listen.or(file.admin_listen),
            body_limit: args
                .body_limit
                .or(file.body_limit)
                .unwrap_or(twilio_signature_tower::DEFAULT_BODY_LIMIT),
            upstream_timeout,
            body_timeout,
            log_format: args
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            redis: redis_url(args.redis.as_deref(), file.redis)?,
            trusted_proxies,
            routes,
        })
    }
}

/// The environment variable that may hold the Redis URL (with its password, if any).
pub const REDIS_ENV: &str = "TWSIG_REDIS_URL";

/// The Redis URL from `--redis`, else the file, else `$TWSIG_REDIS_URL`. One with a password is refused
/// on the command line (visible in `ps`, kept in shell history); the message never repeats it.
fn redis_url(option: Option<&str>, file: Option<String>) -> Result<Option<String>, Failure> {
    if let Some(url) = option {
        let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
        let authority = authority.split('/').next().unwrap_or(authority);
        if authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
        {
            return Err(Failure::usage(format!(
                "--redis: a URL with a password is refused on the command line (visible in `ps`, kept \
                 in shell history); put it in {REDIS_ENV} or in --config's redis key"
            )));
        }
        return Ok(Some(url.to_owned()));
    }
    Ok(file.or_else(|| {
        std::env::var(REDIS_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty())
    }))
}

/// A timeout from its option, else from the file, else its default.
fn timeout_setting(
    option: Option<Duration>,
    file: Option<f64>,
    name: &str,
    default: Duration,
) -> Result<Duration, Failure> {
    match (option, file) {
        (Some(timeout), _) => Ok(timeout),
        (None, Some(seconds)) => super::parse_seconds(&seconds.to_string())
            .map_err(|e| Failure::usage(format!("{name} in --config: {e}"))),
        (None, None) => Ok(default),
    }
}

fn read_file(path: &Path) -> Result<File, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read --config {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| {
        // toml's message quotes the offending line, which holds no secret: token files are paths.
        Failure::usage(format!(
            "--config {}: {}",
            path.display(),
            e.to_string().trim_end().replace('\n', " ")
        ))
    })
}

/// Whether `path` falls under `prefix` (without a trailing slash): the prefix is `path` itself or is
/// followed by `/` or `?`. The empty prefix takes every path. Letter case is ignored (ASCII), because
/// many app servers route that way: `/BILLING/x` must not fall to a catch-all route's secret and
/// then reach the `/billing` handler.
pub fn matches(prefix: &str, path: &str) -> bool {
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        && {
            let rest = &path.as_bytes()[prefix.len()..];
            rest.is_empty() || prefix.is_empty() || rest[0] == b'/' || rest[0] == b'?'
        }
}

/// Why a request path is refused as ambiguous, if it is: a `.` or `..` segment (also written `%2e`),
/// an encoded `/` (`%2f`) or `\` (`%5c`), or a raw `\`. App servers resolve these differently
/// (Tomcat, Kestrel and Jetty remove dot segments), so the handler could be another route's than the
/// one whose secret verified the request. Twilio requests the URL configured, which has none of them.
pub fn ambiguous(path: &str) -> Option<&'static str> {
    // Without `%`, `\\` or `.` there is nothing to look for (nearly every webhook path).
    if !path.bytes().any(|b| matches!(b, b'%' | b'\\' | b'.')) {
        return None;
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains('\\') {
        return Some("ambiguous path: an encoded slash or a backslash");
    }
    let dot = |segment: &str| {
        let segment = segment.replace("%2e", ".");
        segment == "." || segment == ".."
    };
    if lower.split('/').any(dot) {
        return Some("ambiguous path: a dot segment");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_matches_whole_segments() {
        assert!(matches("", "/anything"));
        assert!(matches("/sms", "/sms"));
        assert!(matches("/sms", "/sms/status"));
        assert!(matches("/sms", "/sms?x=1"));
        assert!(!matches("/sms", "/smsx"));
        assert!(!matches("/sms", "/voice"));
        assert!(matches("/billing", "/BILLING/status"), "ASCII case ignored");
        assert!(!matches("/billing", "/BILLINGX"));
    }

    #[test]
    fn dot_segments_and_encoded_slashes_are_ambiguous() {
        for path in [
            "/x/../billing",
            "/a/./b",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/..",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
        ] {
            assert!(ambiguous(path).is_some(), "{path}");
        }
        for path in ["/sms", "/sms/status", "/a.b/c", "/..a/b", "/", "/media"] {
            assert_eq!(ambiguous(path), None, "{path}");
        }
    }

    #[test]
    fn an_upstream_is_plain_http_with_an_optional_prefix() {
        let upstream = Upstream::parse("http://127.0.0.1:9000/app/").expect("valid");
        assert_eq!(upstream.authority.as_str(), "127.0.0.1:9000");
        assert_eq!(upstream.prefix, "/app");
        assert_eq!(upstream.address(), "127.0.0.1:9000");
        assert_eq!(
            Upstream::parse("http://localhost")
                .expect("valid")
                .address(),
            "localhost:80"
        );
        for bad in [
            "https://127.0.0.1:9000",
            "127.0.0.1:9000",
            "http://u:p@127.0.0.1",
            "http://127.0.0.1/?x=1",
            "not a url",
        ] {
            assert!(Upstream::parse(bad).is_err(), "{bad:?}");
        }
    }
}
