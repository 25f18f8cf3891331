//! Where secrets come from, refused when they are no secret, and never echoed.

// Helpers outside `#[test]` functions unwrap too: a test that cannot read its inputs should fail loudly.
#![allow(clippy::unwrap_used)]

mod common;

use common::{path_str, temp_file, twsig, Token};

const URL: &str = "https://example.com/sms";
const SIGNATURE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn verify_with_token_file(path: &str) -> common::Run {
    twsig(
        &[
            "verify",
            "--token-file",
            path,
            "--url",
            URL,
            "--signature",
            SIGNATURE,
        ],
        Token::None,
        b"Body=Hi",
    )
}

#[test]
fn a_token_passed_as_the_token_file_is_not_echoed() {
    for token in [
        "0123456789abcdef0123456789abcdef",    // an Auth Token (32 hex)
        "Zm9vYmFyYmF6cXV4cXV1eA==",            // base64-like
        "sk_live-abcdefGHIJKLmnop_qrstUVWXyz", // other secret shapes
    ] {
        let run = verify_with_token_file(token);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr.contains("expects the path of a file") && run.stderr.contains("not shown"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains(token), "{}", run.stderr);
        assert!(!run.stdout.contains(token));
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
}

#[test]
fn a_missing_path_is_named() {
    for path in ["/nonexistent/token.txt", "token.txt", "short"] {
        let run = verify_with_token_file(path);
        assert_eq!(run.code, 2);
        assert!(
            run.stderr.contains("cannot read token file") && run.stderr.contains(path),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_file_named_like_a_token_is_still_read() {
    // Run in a directory holding a file with a token-like name: it is a path after all.
    let dir = std::env::temp_dir().join(format!("twsig-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let name = "0123456789abcdef0123456789abcdef";
    std::fs::write(dir.join(name), "12345\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_twsig"))
        .args([
            "verify",
            "--token-file",
            name,
            "--url",
            "https://mycompany.com/myapp.php?foo=1&bar=2",
            "--signature",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        ])
        .env_remove("TWILIO_AUTH_TOKEN")
        .current_dir(&dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212",
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_whitespace_only_token_is_a_usage_error_everywhere() {
    let commands: [&[&str]; 4] = [
        &["sign", "--url", URL],
        &["verify", "--url", URL, "--signature", SIGNATURE],
        &["explain", "--url", URL, "--signature", SIGNATURE],
        &["send", "--url", "http://127.0.0.1:9/sms"],
    ];
    for blank in ["", " ", "\n", "\t \r\n", "\x0b", " \x0b ", "\x0c\x0b\n"] {
        for args in commands {
            let run = twsig(args, Token::Env(blank), b"Body=Hi");
            assert_eq!(run.code, 2, "{args:?} {blank:?}: {}", run.stderr);
            assert!(
                run.stderr
                    .contains("TWILIO_AUTH_TOKEN is set but empty or only whitespace"),
                "{}",
                run.stderr
            );
            assert!(run.stdout.is_empty(), "{}", run.stdout);

            let file = temp_file(blank.as_bytes());
            let run = twsig(
                &[args, &["--token-file", path_str(&file)][..]].concat(),
                Token::None,
                b"Body=Hi",
            );
            assert_eq!(run.code, 2, "{args:?} {blank:?}: {}", run.stderr);
            assert!(
                run.stderr.contains("is empty or only whitespace"),
                "{}",
                run.stderr
            );
        }
    }
}
