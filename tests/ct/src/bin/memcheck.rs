//! Constant-time check under Valgrind memcheck. Run it directly: it re-runs itself under
//! `valgrind --tool=memcheck`, reads the log and decides.
//!
//! Sections (each bracketed by a marker in the log and by memcheck's error count):
//! - `compare-*`: the core's `macs_equal` on two MACs, both marked secret (equal, differing in the first
//!   byte, differing in the last, for 20- and 32-byte MACs). Must report zero errors.
//! - `leaky-*`: the same with an early-exit loop. Must report errors: the control that shows the check
//!   can see a leak at all. If the control passes, the check fails.
//! - `verify-*`: the release `Validator::verify` path with the secret (Auth Token) marked, so the keyed
//!   HMAC state and the expected MAC are tainted, on a valid and an invalid signature. The only allowed
//!   report is where a public fact is derived by design: the verdict (`find_match` branching on the
//!   compare's result). Any report inside the keying, the HMAC, the compare (`ct_matches` in
//!   `signature.rs`, four words through `subtle`) or elsewhere fails the check. (The received signature is public: it travels in clear,
//!   and base64ct's padding handling branches on it; the compare-* sections taint it anyway.)

use std::ffi::CStr;
use std::hint::black_box;
use std::process::{Command, ExitCode};

use twilio_signature::{macs_equal, Request, Secret, Validator};
use twilio_signature_ct::{
    declassify, errors_so_far, leaky_equal, log_section, mark_secret, under_valgrind,
};

fn mac_pair(len: usize, differ_at: Option<usize>) -> (Vec<u8>, Vec<u8>) {
    let a: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
        .collect();
    let mut b = a.clone();
    if let Some(at) = differ_at {
        b[at] ^= 0x80;
    }
    (a, b)
}

type Compare = fn(&[u8], &[u8]) -> bool;

fn section(name: &CStr, run: impl FnOnce()) -> (String, u32) {
    log_section(name);
    let before = errors_so_far();
    run();
    let found = errors_so_far() - before;
    let name = name.to_string_lossy().into_owned();
    println!("section {name} errors {found}");
    (name, found)
}

fn compare_sections(prefix: &str, compare: Compare) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for len in [20, 32] {
        for (case, differ_at) in [("equal", None), ("first", Some(0)), ("last", Some(len - 1))] {
            let name = std::ffi::CString::new(format!("{prefix}-{len}-{case}")).unwrap();
            out.push(section(&name, || {
                let (a, b) = mac_pair(len, differ_at);
                mark_secret(&a);
                mark_secret(&b);
                let equal = declassify(black_box(compare)(black_box(&a), black_box(&b)));
                assert_eq!(equal, differ_at.is_none());
            }));
        }
    }
    out
}

fn verify_sections() -> Vec<(String, u32)> {
    let url = "https://example.com/ct?x=1";
    let body = "CallSid=CA123&From=%2B14155550100&Body=hello+there";
    let mut out = Vec::new();
    for (case, valid) in [(c"verify-valid", true), (c"verify-invalid", false)] {
        out.push(section(case, || {
            let token = b"an-auth-token-for-the-ct-check".to_vec();
            let signature = twilio_signature::sign(&token, &Request::post(url, body)).unwrap();
            let mut header = signature.as_bytes().to_vec();
            if !valid {
                header[3] = if header[3] == b'A' { b'B' } else { b'A' };
            }
            // The header travels in clear: the secret is the token and what is computed from it (the
            // expected MAC). The received MAC is marked too in the compare-* sections above.
            mark_secret(&token);
            let validator = Validator::new(Secret::new(&token));
            let verdict = validator.verify(&Request::post(url, body).signature(&header));
            assert_eq!(declassify(verdict.is_ok()), valid);
        }));
    }
    out
}

fn child() {
    let mut sections = compare_sections("compare", macs_equal);
    sections.extend(compare_sections("leaky", leaky_equal));
    sections.extend(verify_sections());
    log_section(c"end");
}

/// One memcheck error from the log: its kind, its stack, and the section it happened in.
#[derive(Debug)]
struct Report {
    section: String,
    kind: String,
    frames: Vec<String>,
}

fn parse_log(log: &str) -> Vec<Report> {
    let mut reports = Vec::new();
    let mut section = String::from("(start)");
    let mut current: Option<Report> = None;
    for line in log.lines() {
        // Lines look like `==123== text` (or `**123** text` for client printf).
        let text = line.split_once("== ").map_or(line, |(_, t)| t);
        let text = text.split_once("** ").map_or(text, |(_, t)| t);
        if let Some(name) = text.strip_prefix("ct-section ") {
            section = name.trim().to_string();
            continue;
        }
        let trimmed = text.trim();
        if trimmed.starts_with("at 0x") || trimmed.starts_with("by 0x") {
            if let Some(report) = current.as_mut() {
                report.frames.push(trimmed.to_string());
            }
            continue;
        }
        if let Some(report) = current.take() {
            reports.push(report);
        }
        if trimmed.contains("uninitialised") {
            current = Some(Report {
                section: section.clone(),
                kind: trimmed.to_string(),
                frames: Vec::new(),
            });
        }
    }
    reports.extend(current);
    reports
}

/// Where a report is acceptable in the verify path: the verdict, a public fact derived on purpose.
/// The top frame itself must be `find_match` (or the closure in it that tries one URL candidate, which
/// valgrind names either `find_match::{{closure}}` or, inlined, `{closure#0}<..>` with `find_match` as
/// the next frame): a frame inlined into it (the compare) does not count.
fn allowed_in_verify(report: &Report) -> Option<&'static str> {
    let top = report.frames.first()?;
    let called_by_find_match = report
        .frames
        .get(1)
        .is_some_and(|caller| caller.contains(": find_match<") && in_file(caller, "verdict.rs"));
    let in_find_match = top.contains(": find_match<")
        || top.contains("::find_match::{{closure}}")
        || (top.contains(": {closure#0}<") && called_by_find_match);
    (in_find_match && in_file(top, "verdict.rs"))
        .then_some("the verdict: find_match branches on the compare's result")
}

/// Whether a report comes from inside a compare: `mac.rs` (`macs_equal`), `signature.rs`
/// (`ReceivedSignature::ct_matches`, the compare the verify path uses), `subtle`, or code inlined into
/// them, before the stack reaches its caller.
fn inside_compare(report: &Report) -> bool {
    report
        .frames
        .iter()
        .take_while(|f| !f.contains(": find_match<"))
        .any(|f| {
            in_file(f, "mac.rs")
                || in_file(f, "signature.rs")
                || f.contains("macs_equal")
                || f.contains("ct_matches")
                || f.contains("subtle")
        })
}

/// Whether a frame's location is in `file`: debug info names it `(file:line)` or, depending on how
/// the crate was built, `(src/file:line)`.
fn in_file(frame: &str, file: &str) -> bool {
    frame.contains(&format!("({file}:")) || frame.contains(&format!("/{file}:"))
}

fn parent() -> ExitCode {
    let exe = std::env::current_exe().expect("own path");
    let log_path = std::env::temp_dir().join(format!("tws-ct-memcheck-{}.log", std::process::id()));
    let status = Command::new("valgrind")
        .args([
            "--tool=memcheck",
            "--error-limit=no",
            "--num-callers=40",
            "--read-inline-info=yes",
            "--track-origins=no",
        ])
        .arg(format!("--log-file={}", log_path.display()))
        .arg(&exe)
        .output();
    let output = match status {
        Ok(output) => output,
        Err(e) => {
            eprintln!(
                "ct-memcheck: cannot run valgrind ({e}); install it (apt-get install valgrind)"
            );
            return ExitCode::FAILURE;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    if !output.status.success() || !log.contains("ct-section end") {
        eprintln!("ct-memcheck: the program under valgrind failed\n{stdout}\n{log}");
        return ExitCode::FAILURE;
    }
    let counts: Vec<(String, u32)> = stdout
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("section ")?;
            let (name, n) = rest.split_once(" errors ")?;
            Some((name.to_string(), n.parse().ok()?))
        })
        .collect();
    let reports = parse_log(&log);
    let mut ok = true;
    for (name, n) in &counts {
        let verdict = if name.starts_with("compare") {
            if *n == 0 {
                "ok: no secret-dependent branch or address"
            } else {
                ok = false;
                "FAIL: the core's compare depends on the MACs"
            }
        } else if name.starts_with("leaky") {
            if *n > 0 {
                "ok: control flagged, as it must be"
            } else {
                ok = false;
                "FAIL: the leaky control was not flagged, so the check proves nothing"
            }
        } else {
            // One compare per candidate tried: the valid signature matches the URL as given, the
            // invalid one is tried against it and its :443 form. Each compare's result is branched on
            // once (the verdict), and that is the only place the taint may reach a branch.
            let expected = if name.ends_with("-valid") { 1 } else { 2 };
            if *n == expected {
                "ok: one report per candidate compared (the verdict), see below"
            } else {
                ok = false;
                "FAIL: secret-dependent branches beyond the verdict"
            }
        };
        println!("  {name:<24} {n:>3} error(s)  {verdict}");
    }
    let mut verify_reports = 0;
    for report in reports.iter().filter(|r| r.section.starts_with("verify")) {
        verify_reports += 1;
        let top = report.frames.first().map_or("?", String::as_str);
        match allowed_in_verify(report) {
            Some(why) => println!("  {}: allowed ({why})\n      {top}", report.section),
            None => {
                ok = false;
                println!(
                    "  {}: FAIL: {} inside the verify path\n      {}",
                    report.section,
                    report.kind,
                    report
                        .frames
                        .iter()
                        .take(8)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("\n      ")
                );
            }
        }
    }
    let in_compare = reports
        .iter()
        .any(|r| r.section.starts_with("verify") && inside_compare(r));
    if in_compare {
        ok = false;
    }
    if counts.len() != 14 {
        println!("  FAIL: expected 14 sections, saw {}", counts.len());
        ok = false;
    }
    println!(
        "ct-memcheck: {} distinct report(s) in the verify path, none in the compare: {}",
        verify_reports, !in_compare
    );
    if ok {
        println!("ct-memcheck: PASS (constant-time compare; the leaky control is caught)");
        ExitCode::SUCCESS
    } else {
        println!("ct-memcheck: FAIL");
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    if under_valgrind() {
        child();
        ExitCode::SUCCESS
    } else {
        parent()
    }
}
