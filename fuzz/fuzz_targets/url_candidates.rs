//! URL candidates (port toggle, userinfo removal) against the reference's, observed through verify:
//! a signature over each of the reference's candidate URLs must be accepted under the original URL and
//! reported as that candidate; a signature over a near miss (another port, scheme, case, slash) must be
//! accepted exactly when the reference lists that URL among the candidates.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use reference::{Record, RefSecret, UrlParts, UrlShape};
use twilio_signature::{Algorithm, Request};

#[derive(Debug, Arbitrary)]
enum NearMiss {
    OtherPort(u16),
    NoPort,
    DefaultPort(bool),
    UserinfoSwapped(Vec<u8>),
    SchemeSwapped,
    SchemeUpper,
    TrailingSlash,
    HostUpper,
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    url: UrlShape,
    secret: Vec<u8>,
    /// Which of the candidates a near miss starts from.
    base: u8,
    near_misses: Vec<NearMiss>,
}

fn near_miss(url: &[u8], miss: &NearMiss) -> Vec<u8> {
    let Some(mut parts) = UrlParts::split(url) else {
        return match miss {
            NearMiss::Raw(bytes) => bytes.clone(),
            _ => [url, b"/"].concat(),
        };
    };
    match miss {
        NearMiss::OtherPort(port) => parts.port = Some(port.to_string().into_bytes()),
        NearMiss::NoPort => parts.port = None,
        NearMiss::DefaultPort(https) => {
            parts.port = Some(if *https {
                b"443".to_vec()
            } else {
                b"80".to_vec()
            });
        }
        NearMiss::UserinfoSwapped(userinfo) => {
            parts.userinfo = match parts.userinfo {
                Some(_) => None,
                None => Some(userinfo.clone()),
            };
        }
        NearMiss::SchemeSwapped => {
            parts.scheme = if parts.scheme.eq_ignore_ascii_case(b"https") {
                b"http".to_vec()
            } else {
                b"https".to_vec()
            };
        }
        NearMiss::SchemeUpper => parts.scheme.make_ascii_uppercase(),
        NearMiss::TrailingSlash => parts.rest.push(b'/'),
        NearMiss::HostUpper => parts.host.make_ascii_uppercase(),
        NearMiss::Raw(bytes) => return bytes.clone(),
    }
    parts.join()
}

fuzz_target!(|data: &[u8]| {
    if let Some(record) = Record::parse(data) {
        let mut rest = Unstructured::new(&record.rest);
        let base = rest.arbitrary().unwrap_or(0);
        let near_misses = Vec::<NearMiss>::arbitrary_take_rest(rest).unwrap_or_default();
        check(&record.url, &record.secret, base, &near_misses);
    } else if let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) {
        check(
            &input.url.render(b""),
            &input.secret,
            input.base,
            &input.near_misses,
        );
    }
});

/// GET requests: the signature covers the URL alone, so only the candidate logic decides.
fn check(url: &[u8], secret: &[u8], base: u8, near_misses: &[NearMiss]) {
    let secrets = [RefSecret {
        key_id: None,
        secret: secret.to_vec(),
    }];
    let candidates = reference::candidates(url);
    let check = |signed_url: &[u8]| {
        let signature = reference::signature_of(Algorithm::HmacSha1, secret, signed_url, b"");
        let got = twilio_signature::verify(secret, &Request::get(url).signature(&signature));
        let expected = reference::verify(&secrets, url, b"", Some(&signature), None);
        assert_eq!(
            got.map(|v| v.candidate),
            expected.map(|(_, c)| c),
            "signed {:?} under {:?}",
            String::from_utf8_lossy(signed_url),
            String::from_utf8_lossy(url)
        );
        // Found by the reference's own candidate list, not just by its verify: a URL is accepted (or
        // fails only its body hash) exactly when it is one of the candidates.
        let listed =
            reference::secret_usable(secret) && candidates.iter().any(|(_, c)| c == signed_url);
        let matched = matches!(got, Ok(_) | Err(twilio_signature::Error::BodyHashMismatch));
        assert_eq!(matched, listed, "candidate set differs for {url:?}");
    };
    for (_, candidate) in &candidates {
        check(candidate);
    }
    let (_, base) = &candidates[usize::from(base) % candidates.len()];
    for miss in near_misses.iter().take(8) {
        check(&near_miss(base, miss));
    }
}
