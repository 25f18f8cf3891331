//! Reads one request per line (`{"token","url","body","signature"}`, strings) and writes the core's
//! verdict per line: `{"ok":bool,"candidate":..,"error":..}`. The body is form-encoded unless the URL
//! carries bodySHA256, exactly as a server hands the raw body to the core.
use std::io::{BufRead, Write};

use twilio_signature::{verify, Candidate, Request};

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    for line in stdin.lock().lines() {
        let line = line.expect("read stdin");
        let case: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
        let field = |name: &str| case[name].as_str().unwrap_or_default().to_string();
        let (token, url, body, signature) =
            (field("token"), field("url"), field("body"), field("signature"));
        let verdict = verify(token.as_bytes(), &Request::post(&url, &body).signature(&signature));
        let reply = match verdict {
            Ok(v) => serde_json::json!({"ok": true, "candidate": match v.candidate {
                Candidate::AsGiven => "as-given",
                Candidate::PortToggled => "port-toggled",
                Candidate::WithoutUserinfo => "without-userinfo",
                Candidate::WithoutUserinfoPortToggled => "without-userinfo-port-toggled",
            }}),
            Err(e) => serde_json::json!({"ok": false, "error": format!("{e:?}")}),
        };
        writeln!(out, "{reply}").expect("write stdout");
    }
}
