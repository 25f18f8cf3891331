//! The two headers: `X-Twilio-Webhooks-Signature-Settings` parsing equals the reference's, algorithm
//! names parse case-insensitively, and arbitrary `X-Twilio-Signature` bytes (including near-valid
//! ones: a real signature with one character replaced, cut or extended) get the reference's verdict.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use reference::{Record, RefSecret};
use twilio_signature::{Algorithm, Request, SignatureSettings};

#[derive(Debug, Arbitrary)]
enum SignatureShape {
    Absent,
    Raw(Vec<u8>),
    /// The right signature with one byte replaced, then cut to `keep` bytes (if shorter).
    Edited {
        at: u8,
        byte: u8,
        keep: u8,
    },
    /// The right signature with bytes appended.
    Extended(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    settings: Option<Vec<u8>>,
    name: Vec<u8>,
    secret: Vec<u8>,
    path: Vec<u8>,
    signature: SignatureShape,
}

fuzz_target!(|data: &[u8]| {
    if let Some(record) = Record::parse(data) {
        // The vector's own headers and secret (its URL becomes the path); the rest may edit the signature.
        let shape = SignatureShape::arbitrary_take_rest(Unstructured::new(&record.rest))
            .unwrap_or(SignatureShape::Absent);
        let signature = match shape {
            SignatureShape::Absent => record.signature.map(SignatureShape::Raw),
            other => Some(other),
        };
        check(&Input {
            settings: record.settings,
            name: record.rest.clone(),
            secret: record.secret,
            path: record.url,
            signature: signature.unwrap_or(SignatureShape::Absent),
        });
    } else if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        check(&input);
    }
});

fn check(input: &Input) {
    let settings = input.settings.as_deref();
    let expected = reference::parse_settings(settings);
    let got = SignatureSettings::parse(settings);
    assert_eq!(
        got.map(|s| (s.algorithm, s.key_id.map(<[u8]>::to_vec))),
        expected,
        "settings {:?}",
        settings.map(String::from_utf8_lossy)
    );

    let by_name = Algorithm::from_name(&input.name);
    let expected_name = match input.name.to_ascii_uppercase().as_slice() {
        b"HMAC_SHA1" => Some(Algorithm::HmacSha1),
        b"HMAC_SHA256" => Some(Algorithm::HmacSha256),
        _ => None,
    };
    assert_eq!(by_name, expected_name);
    if let Some(algorithm) = by_name {
        assert_eq!(
            Algorithm::from_name(algorithm.name().as_bytes()),
            Some(algorithm)
        );
    }

    let url = [b"https://example.com/".as_slice(), &input.path].concat();
    let algorithm = expected.as_ref().map_or(Algorithm::HmacSha1, |(a, _)| *a);
    let right = reference::signature_of(algorithm, &input.secret, &url, b"");
    let signature = match &input.signature {
        SignatureShape::Absent => None,
        SignatureShape::Raw(bytes) => Some(bytes.clone()),
        SignatureShape::Edited { at, byte, keep } => {
            let mut s = right.clone();
            let at = usize::from(*at) % s.len();
            s[at] = *byte;
            s.truncate(usize::from(*keep).max(1));
            Some(s)
        }
        SignatureShape::Extended(tail) => Some([right.as_slice(), tail].concat()),
    };
    let secrets = [RefSecret {
        key_id: None,
        secret: input.secret.clone(),
    }];
    let mut request = Request::get(&url).settings(settings);
    if let Some(signature) = &signature {
        request = request.signature(signature);
    }
    let got = twilio_signature::verify(&input.secret, &request);
    let expected = reference::verify(&secrets, &url, b"", signature.as_deref(), settings);
    assert_eq!(
        got.map(|v| (v.secret_index, v.candidate)),
        expected,
        "signature {:?}",
        signature.as_deref().map(String::from_utf8_lossy)
    );
    // Exactly one header value is accepted per MAC: the canonical base64 of the matched candidate's.
    if let Ok(verified) = got {
        let candidates = reference::candidates(&url);
        let (_, matched) = candidates
            .iter()
            .find(|(kind, _)| *kind == verified.candidate)
            .expect("the core reports a candidate the reference lists");
        let canonical = reference::signature_of(algorithm, &input.secret, matched, b"");
        assert_eq!(signature.as_deref(), Some(canonical.as_slice()));
    }
}
