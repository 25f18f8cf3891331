//! Where the secrets come from: `TWILIO_AUTH_TOKEN` or `--token-file`, never the command line.

use std::fmt;
use std::path::{Path, PathBuf};

use twilio_signature::Secret;

use crate::Failure;

/// The environment variable holding the Auth Token (or SharedKey secret).
pub const TOKEN_ENV: &str = "TWILIO_AUTH_TOKEN";

/// One secret and where it came from (shown in reports; the secret itself never is).
pub struct Loaded {
    pub origin: String,
    bytes: Vec<u8>,
}

impl Loaded {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loaded")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The `--token-file` files in order when any is given, else `TWILIO_AUTH_TOKEN`.
pub fn load(token_files: &[PathBuf]) -> Result<Vec<Loaded>, Failure> {
    if token_files.is_empty() {
        let value = std::env::var_os(TOKEN_ENV).ok_or_else(|| {
            Failure::usage(format!(
                "no secret: set {TOKEN_ENV} or pass --token-file FILE (a file holding the Auth Token)"
            ))
        })?;
        let bytes = value.into_encoded_bytes();
        if !Secret::is_usable(&bytes) {
            // The core's rule: a secret empty after trimming ASCII whitespace is no secret.
            return Err(Failure::usage(format!(
                "{TOKEN_ENV} is set but empty or only whitespace: it must hold the Auth Token \
                 (or SharedKey secret)"
            )));
        }
        return Ok(vec![Loaded {
            origin: TOKEN_ENV.to_owned(),
            bytes,
        }]);
    }
    token_files
        .iter()
        .map(|path| read_token_file(path))
        .collect()
}

/// Whether a `--token-file` argument that names no file looks like a token pasted in its place: no
/// directory separator, at least 16 characters, all of them hex or base64 characters.
fn looks_like_a_token(path: &Path) -> bool {
    let text = path.as_os_str().as_encoded_bytes();
    text.len() >= 16
        && text
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'=' | b'-' | b'_'))
}

fn read_token_file(path: &Path) -> Result<Loaded, Failure> {
    let mut bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound && looks_like_a_token(path) {
            // Not echoed: it is probably the secret itself, and error output ends up in logs.
            Failure::usage(
                "--token-file expects the path of a file holding the token, and no file has the name \
                 given (not shown: it looks like a token itself). Put the token in a file and pass its \
                 path, or set TWILIO_AUTH_TOKEN",
            )
        } else {
            Failure::usage(format!("cannot read token file {}: {e}", path.display()))
        }
    })?;
    // Files written by editors and `echo` end with a newline that is not part of the token.
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    if !Secret::is_usable(&bytes) {
        return Err(Failure::usage(format!(
            "token file {} is empty or only whitespace",
            path.display()
        )));
    }
    Ok(Loaded {
        origin: format!("--token-file {}", path.display()),
        bytes,
    })
}

/// Pre-keyed secrets for a validator, each with `key_id` when one is given.
pub fn prepare(loaded: &[Loaded], key_id: Option<&str>) -> Result<Vec<Secret>, Failure> {
    loaded
        .iter()
        .map(|secret| match key_id {
            None => Ok(Secret::new(secret.bytes())),
            Some(id) => Secret::with_key_id(id.as_bytes(), secret.bytes())
                .map_err(|e| Failure::usage(format!("--key-id: {e}"))),
        })
        .collect()
}
