//! Sign, then verify: always accepted, and with the signing secret and the URL as given. Then one byte
//! of the URL, the body or the signature is changed: the core refuses unless the reference says the
//! changed request is still validly signed (e.g. a byte of the port that the port toggle removes, or
//! a change to a body that decodes to the same params), and in every case gives the reference's verdict.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use reference::{BodyShape, Record, RefSecret, SecretsShape, SettingsShape, UrlShape};
use twilio_signature::{Candidate, Error, Request, Validator};

#[derive(Debug, Arbitrary)]
struct Input {
    secrets: SecretsShape,
    url: UrlShape,
    body: BodyShape,
    settings: SettingsShape,
    /// 0: URL, 1: body, 2: signature.
    part: u8,
    at: u16,
    byte: u8,
}

/// What `Validator::sign` should do, by the reference: the first eligible secret signs the URL as given.
fn expected_signature(
    secrets: &[RefSecret],
    url: &[u8],
    body: &[u8],
    settings: Option<&[u8]>,
) -> Result<(usize, Vec<u8>), Error> {
    let (algorithm, key_id) = reference::parse_settings(settings)?;
    let index = secrets
        .iter()
        .position(|s| {
            reference::secret_usable(&s.secret)
                && match (&key_id, &s.key_id) {
                    (Some(wanted), Some(id)) => wanted == id,
                    _ => true,
                }
        })
        .ok_or(Error::NoEligibleSecret)?;
    let payload = reference::payload_of_body(url, body)?;
    if !payload.body_hash_ok {
        return Err(Error::BodyHashMismatch);
    }
    let signature =
        reference::signature_of(algorithm, &secrets[index].secret, url, &payload.params);
    Ok((index, signature))
}

/// Which byte to change after signing: part 0 is the URL, 1 the body, 2 the signature.
#[derive(Debug, Arbitrary, Default)]
struct Change {
    part: u8,
    at: u16,
    byte: u8,
}

fuzz_target!(|data: &[u8]| {
    if let Some(record) = Record::parse(data) {
        let change = Unstructured::new(&record.rest)
            .arbitrary()
            .unwrap_or_default();
        let settings = record.settings.clone();
        check(
            &record.secrets(),
            record.url,
            record.body,
            settings,
            &change,
        );
    } else if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        let body = input.body.render();
        let url = input.url.render(&body);
        let change = Change {
            part: input.part,
            at: input.at,
            byte: input.byte,
        };
        check(
            &input.secrets.render(),
            url,
            body,
            input.settings.render(),
            &change,
        );
    }
});

fn check(
    secrets: &[RefSecret],
    url: Vec<u8>,
    body: Vec<u8>,
    settings: Option<Vec<u8>>,
    input: &Change,
) {
    let core_secrets = reference::core_secrets(secrets);
    let validator = Validator::with_secrets(&core_secrets);

    let request = Request::post(&url, &body).settings(settings.as_deref());
    let signed = validator.sign(&request);
    let expected = expected_signature(secrets, &url, &body, settings.as_deref());
    assert_eq!(
        signed.map(|s| s.as_bytes().to_vec()),
        expected.clone().map(|(_, s)| s),
        "sign differs from the reference"
    );
    let Ok((signer, signature)) = expected else {
        return;
    };

    let verified = validator
        .verify(&request.signature(&signature))
        .expect("a request the validator signed verifies");
    assert_eq!(verified.secret_index, signer);
    assert_eq!(verified.candidate, Candidate::AsGiven);

    let (mut url2, mut body2, mut signature2) = (url.clone(), body.clone(), signature.clone());
    let target = match input.part % 3 {
        0 => &mut url2,
        1 => &mut body2,
        _ => &mut signature2,
    };
    if target.is_empty() {
        target.push(input.byte);
    } else {
        let at = usize::from(input.at) % target.len();
        target[at] = if target[at] == input.byte {
            input.byte ^ 1
        } else {
            input.byte
        };
    }
    let changed = Request::post(&url2, &body2)
        .settings(settings.as_deref())
        .signature(&signature2);
    let got = validator.verify(&changed);
    let expected = reference::verify(
        secrets,
        &url2,
        &body2,
        Some(&signature2),
        settings.as_deref(),
    );
    assert_eq!(
        got.map(|v| (v.secret_index, v.candidate)),
        expected,
        "after changing one byte of part {}",
        input.part % 3
    );
    // A changed signature is never accepted: each MAC has one header value.
    if input.part % 3 == 2 {
        assert!(got.is_err());
    }
}
