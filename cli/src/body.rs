//! The request body: from `--form-file`, `--json-file`, `--body-file`, nothing (`--get`), or standard input.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use clap::Args;
use twilio_signature::BodyHash;

use crate::Failure;

/// Where the body comes from. With none of these options it is read from standard input.
#[derive(Args, Debug)]
#[group(multiple = false)]
pub struct BodyArgs {
    /// Form body (application/x-www-form-urlencoded), raw as sent; `-` reads standard input
    #[arg(long, value_name = "FILE")]
    form_file: Option<PathBuf>,
    /// JSON body, raw as sent (Twilio signs the URL with ?bodySHA256=<hash of this body>)
    #[arg(long, value_name = "FILE")]
    json_file: Option<PathBuf>,
    /// Raw body of either kind: a JSON body when the URL carries bodySHA256, else a form
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// No body (a GET, or a POST without params): the signature covers the URL alone
    #[arg(long)]
    get: bool,
}

/// What the user said the body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Form,
    Json,
    /// From `--body-file` or standard input: the URL decides.
    Raw,
}

#[derive(Debug)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub kind: Kind,
}

impl BodyArgs {
    pub fn read(&self) -> Result<Body, Failure> {
        let (path, kind) = match (&self.form_file, &self.json_file, &self.body_file) {
            _ if self.get => {
                return Ok(Body {
                    bytes: Vec::new(),
                    kind: Kind::Raw,
                })
            }
            (Some(path), _, _) => (Some(path), Kind::Form),
            (_, Some(path), _) => (Some(path), Kind::Json),
            (_, _, Some(path)) => (Some(path), Kind::Raw),
            _ => (None, Kind::Raw),
        };
        let bytes = match path {
            Some(path) if path.as_os_str() != "-" => read_file(path)?,
            _ => read_stdin()?,
        };
        Ok(Body { bytes, kind })
    }
}

pub fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::usage(format!("cannot read {}: {e}", path.display())))
}

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "twsig: reading the body from standard input (end with Ctrl-D; --get for no body)"
        );
    }
    let mut bytes = Vec::new();
    stdin
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
    Ok(bytes)
}

/// Whether the URL's query has a `bodySHA256` parameter (the core's rule: a name, not a prefix).
pub fn has_body_hash(url: &str) -> bool {
    let before_fragment = url.split('#').next().unwrap_or_default();
    before_fragment.split_once('?').is_some_and(|(_, query)| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("bodySHA256"))
    })
}

/// The URL Twilio signs for a JSON body: `url` with `bodySHA256=<hex SHA-256 of body>` added to its query
/// (unchanged if it already has one).
pub fn with_body_hash(url: &str, body: &[u8]) -> String {
    if has_body_hash(url) {
        return url.to_owned();
    }
    let (head, fragment) = match url.find('#') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    let separator = match head.find('?') {
        None => "?",
        Some(_) if head.ends_with('?') || head.ends_with('&') => "",
        Some(_) => "&",
    };
    format!(
        "{head}{separator}bodySHA256={}{fragment}",
        BodyHash::of(body)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_hash_is_a_query_parameter_name() {
        assert!(has_body_hash("https://h/p?bodySHA256=ab"));
        assert!(has_body_hash("https://h/p?x=1&bodySHA256"));
        assert!(!has_body_hash("https://h/p?bodySHA2567=ab"));
        assert!(!has_body_hash("https://h/bodySHA256=ab"));
        assert!(!has_body_hash("https://h/p#?bodySHA256=ab"));
    }

    #[test]
    fn body_hash_is_appended_to_the_query() {
        let hash = BodyHash::of(b"{}");
        assert_eq!(
            with_body_hash("https://h/p", b"{}"),
            format!("https://h/p?bodySHA256={hash}")
        );
        assert_eq!(
            with_body_hash("https://h/p?a=1#f", b"{}"),
            format!("https://h/p?a=1&bodySHA256={hash}#f")
        );
        assert_eq!(
            with_body_hash("https://h/p?", b"{}"),
            format!("https://h/p?bodySHA256={hash}")
        );
        assert_eq!(
            with_body_hash("https://h/p?bodySHA256=x", b"{}"),
            "https://h/p?bodySHA256=x"
        );
    }
}
