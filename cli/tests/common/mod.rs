//! Running the real `twsig` binary, with the secret in the environment or a token file.

// Test helpers outside `#[test]` functions, where clippy.toml's unwrap allowance does not reach.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The outcome of one run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn last_line(&self) -> &str {
        self.stdout.lines().last().unwrap_or_default()
    }
}

/// How the secret reaches `twsig`.
#[derive(Clone, Copy)]
pub enum Token<'a> {
    Env(&'a str),
    File(&'a str),
    None,
}

/// Runs `twsig args` with `stdin` piped in.
pub fn twsig(args: &[&str], token: Token<'_>, stdin: &[u8]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_twsig"));
    command.args(args).env_remove("TWILIO_AUTH_TOKEN");
    let token_file;
    match token {
        Token::Env(secret) => {
            command.env("TWILIO_AUTH_TOKEN", secret);
        }
        Token::File(secret) => {
            token_file = temp_file(format!("{secret}\n").as_bytes());
            command.arg("--token-file").arg(&token_file);
        }
        Token::None => {}
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit (bad usage) before reading its input.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap(),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// A fresh file holding `contents` (left in the temp directory, named per process and call).
pub fn temp_file(contents: &[u8]) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "twsig-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, contents).unwrap();
    path
}

pub fn path_str(path: &std::path::Path) -> &str {
    path.to_str().unwrap()
}

/// The value of the first header `name` (any case) among `headers`, as a test server recorded them.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    header_values(headers, name).first().copied()
}

/// Every value of the header `name` (any case), in the order received.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}
