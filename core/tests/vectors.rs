//! Every known-answer vector in `tests/vectors/` through the public API.

mod common;

use common::{hex, load, Vector};
use twilio_signature::{
    hmac, macs_equal, sign, verify, Algorithm, Error, Request, Secret, Validator,
};

fn request<'a>(v: &'a Vector, pairs: &'a [(&'a str, &'a str)], as_pairs: bool) -> Request<'a> {
    let mut request = match (&v.body, &v.form_body) {
        (Some(body), _) => Request::post(&v.url, body),
        (None, Some(_)) if as_pairs => Request::with_params(&v.url, pairs),
        (None, Some(form)) => Request::post(&v.url, form),
        (None, None) => Request::get(&v.url),
    };
    request.signature = v.signature.as_deref().map(str::as_bytes);
    request.settings(v.signature_settings.as_deref().map(str::as_bytes))
}

#[test]
fn every_twilio_vector_gets_its_expected_verdict_from_every_entry_point() {
    let vectors = common::twilio_vectors();
    assert_eq!(vectors.len(), 211);
    for v in &vectors {
        let pairs: Vec<(&str, &str)> = v
            .params
            .iter()
            .flatten()
            .map(|(n, x)| (n.as_str(), x.as_str()))
            .collect();
        let secret = v.secret.as_bytes();
        let validator = Validator::new(Secret::new(secret));
        for as_pairs in [false, true] {
            let req = request(v, &pairs, as_pairs);
            let one_shot = verify(secret, &req);
            let reusable = validator.verify(&req);
            assert_eq!(
                one_shot.is_ok(),
                v.expect,
                "{} (pairs: {as_pairs}): {one_shot:?}",
                v.id
            );
            assert_eq!(one_shot, reusable, "{}", v.id);
            assert_eq!(validator.explain(&req).verdict, one_shot, "{}", v.id);
        }
    }
}

#[test]
fn accepted_vectors_sign_to_their_signature_when_the_url_as_given_was_signed() {
    let mut signed_as_given = 0;
    for v in common::twilio_vectors().iter().filter(|v| v.expect) {
        let signed_string = v
            .signed_string
            .as_deref()
            .expect("accepted vectors carry the signed string");
        let pairs: Vec<(&str, &str)> = v
            .params
            .iter()
            .flatten()
            .map(|(n, x)| (n.as_str(), x.as_str()))
            .collect();
        let req = request(v, &pairs, false);
        if signed_string.starts_with(&v.url) {
            let signature = sign(v.secret.as_bytes(), &req).expect("signable");
            assert_eq!(Some(signature.as_str()), v.signature.as_deref(), "{}", v.id);
            signed_as_given += 1;
        }
        // The vector's own arithmetic, through the crate's HMAC.
        let algorithm = Algorithm::from_name(v.algorithm.as_bytes()).expect("known algorithm");
        let mut mac = [0u8; 32];
        let len = hmac(
            algorithm,
            v.secret.as_bytes(),
            signed_string.as_bytes(),
            &mut mac,
        );
        assert_eq!(len, algorithm.mac_len());
        assert_eq!(
            common::reference::base64(&mac[..len]),
            v.signature.clone().unwrap_or_default(),
            "{}",
            v.id
        );
    }
    assert!(
        signed_as_given > 80,
        "only {signed_as_given} vectors signed as given"
    );
}

#[test]
fn rfc2202_hmac_sha1() {
    let file = load("rfc2202-hmac-sha1.json");
    let cases = file["vectors"].as_array().expect("vectors");
    assert_eq!(cases.len(), 7);
    for case in cases {
        let (key, data, digest) = (
            hex(&case["key_hex"]),
            hex(&case["data_hex"]),
            hex(&case["digest_hex"]),
        );
        let mut mac = [0u8; 32];
        let len = hmac(Algorithm::HmacSha1, &key, &data, &mut mac);
        assert!(macs_equal(&mac[..len], &digest), "{case}");
        if case.get("digest_96_hex").is_some_and(|d| !d.is_null()) {
            assert!(
                macs_equal(&mac[..12], &hex(&case["digest_96_hex"])),
                "{case}"
            );
        }
    }
}

#[test]
fn wycheproof_cases_go_through_the_compare_path() {
    for (file, algorithm) in [
        ("wycheproof/hmac_sha1_test.json", Algorithm::HmacSha1),
        ("wycheproof/hmac_sha256_test.json", Algorithm::HmacSha256),
    ] {
        let (mut valid, mut invalid) = (0, 0);
        for group in load(file)["testGroups"].as_array().expect("groups") {
            let tag_bytes = group["tagSize"].as_u64().expect("tagSize") as usize / 8;
            for test in group["tests"].as_array().expect("tests") {
                let (key, msg, tag) = (hex(&test["key"]), hex(&test["msg"]), hex(&test["tag"]));
                let mut mac = [0u8; 32];
                let len = hmac(algorithm, &key, &msg, &mut mac);
                let accepted = macs_equal(&mac[..len.min(tag_bytes)], &tag);
                match test["result"].as_str() {
                    Some("valid") => {
                        assert!(accepted, "{file} tc {}", test["tcId"]);
                        valid += 1;
                    }
                    Some("invalid") => {
                        assert!(!accepted, "{file} tc {}", test["tcId"]);
                        invalid += 1;
                    }
                    other => panic!("unexpected result {other:?}"),
                }
            }
        }
        assert_eq!(
            (valid, invalid),
            (
                66,
                if algorithm == Algorithm::HmacSha1 {
                    104
                } else {
                    108
                }
            ),
            "{file}"
        );
    }
}

#[test]
fn a_full_length_signature_of_the_wrong_algorithm_is_malformed() {
    let sha256_sig = "a".repeat(43) + "=";
    let req = Request::post("https://h/", "").signature(&sha256_sig);
    assert_eq!(verify(b"k", &req), Err(Error::MalformedSignature));
}
