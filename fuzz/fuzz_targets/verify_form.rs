//! Arbitrary URL, body and both headers, against several secrets: the core never panics, and its
//! verdict (which secret, which candidate, or which error) equals the naive reference's. Signatures
//! are often computed by the reference for one of its candidate URLs, so acceptance is reached too.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use reference::{BodyShape, Record, RefSecret, SecretsShape, SettingsShape, UrlShape};
use twilio_signature::{Algorithm, Request, Validator};

#[derive(Debug, Arbitrary)]
enum SignatureShape {
    Absent,
    Raw(Vec<u8>),
    /// The reference's signature with this secret over this candidate URL (indices wrap).
    Signed {
        secret: u8,
        candidate: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    secrets: SecretsShape,
    url: UrlShape,
    body: BodyShape,
    settings: SettingsShape,
    signature: SignatureShape,
}

fuzz_target!(|data: &[u8]| {
    if let Some(record) = Record::parse(data) {
        check(
            &record.secrets(),
            &record.url,
            &record.body,
            record.signature.as_deref(),
            record.settings.as_deref(),
        );
    } else if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        check_shaped(&input);
    }
});

fn check_shaped(input: &Input) {
    let secrets = input.secrets.render();
    let body = input.body.render();
    let url = input.url.render(&body);
    let settings = input.settings.render();
    let signature = match &input.signature {
        SignatureShape::Absent => None,
        SignatureShape::Raw(bytes) => Some(bytes.clone()),
        SignatureShape::Signed { secret, candidate } => {
            let algorithm = reference::parse_settings(settings.as_deref())
                .map_or(Algorithm::HmacSha1, |(a, _)| a);
            let secret = &secrets[usize::from(*secret) % secrets.len()].secret;
            let candidates = reference::candidates(&url);
            let (_, candidate) = &candidates[usize::from(*candidate) % candidates.len()];
            let params = reference::payload_of_body(&url, &body).map_or(Vec::new(), |p| p.params);
            Some(reference::signature_of(
                algorithm, secret, candidate, &params,
            ))
        }
    };
    check(
        &secrets,
        &url,
        &body,
        signature.as_deref(),
        settings.as_deref(),
    );
}

fn check(
    secrets: &[RefSecret],
    url: &[u8],
    body: &[u8],
    signature: Option<&[u8]>,
    settings: Option<&[u8]>,
) {
    let mut request = Request::post(url, body).settings(settings);
    if let Some(signature) = signature {
        request = request.signature(signature);
    }
    let expected = reference::verify(secrets, url, body, signature, settings);

    let core_secrets = reference::core_secrets(secrets);
    let validator = Validator::with_secrets(&core_secrets);
    let got = validator.verify(&request);
    assert_eq!(
        got.map(|v| (v.secret_index, v.candidate)),
        expected,
        "validator verdict differs from the reference"
    );
    if let Ok(verified) = got {
        let (algorithm, _) = reference::parse_settings(settings).unwrap();
        assert_eq!(verified.algorithm, algorithm);
    }

    // The one-shot function with the first secret (no key id: always eligible).
    let first = [RefSecret {
        key_id: None,
        secret: secrets[0].secret.clone(),
    }];
    let expected_one = reference::verify(&first, url, body, signature, settings);
    let got_one = twilio_signature::verify(&secrets[0].secret, &request);
    assert_eq!(got_one.map(|v| (v.secret_index, v.candidate)), expected_one);

    // explain is for information only: it must agree with verify on the verdict and never panic.
    let explanation = validator.explain(&request);
    assert_eq!(explanation.verdict, got);
    if explanation.verdict.is_ok() {
        assert!(explanation.diagnosis.is_none());
    }
    let _ = format!("{explanation}");
}
