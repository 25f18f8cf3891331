//! The search: for a refused request, the corrections tried in a fixed order, each a signed string
//! (the URL rewritten by [`super::rewrite`], the URL alone, the other algorithm) against the secrets
//! it applies to, counted so that explain stays bounded ([`Cost`]). Hands the first [`Diagnosis`]
//! that matches, with the URLs a report shows ([`UrlCorrection`]), to [`super::explain_with_keys`].

use super::mistake::{Diagnosis, Mistake, DROPPED_PORTS};
use super::rewrite::{
    add_body_hash, drop_query, swap_scheme, toggle_trailing_slash, websocket_rewrite, with_port,
    without_doubled_path,
};
use super::shown::{ShownUrl, UrlCorrection};
use crate::canonical::{BodyHash, Payload, Request, Signed};
use crate::form::Span;
use crate::mac::{Algorithm, Tag};
use crate::secret::Key;
use crate::settings::SignatureSettings;
use crate::signature::ReceivedSignature;
use crate::url::{self, Candidate, Candidates, UrlPieces};
use crate::verdict::find_match;
use crate::Error;

#[cfg(test)]
extern crate std;

/// Whether a body could be a JSON webhook's (an object, or Event Streams' array of events).
fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.trim_ascii_start().first(), Some(b'{' | b'['))
}

/// What a diagnosis spent, counted in tests to keep explain bounded (see the module docs).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cost {
    /// Parameter sorts (`Signed::new` over a form or pairs).
    sorts: usize,
    /// Secrets tried on a signed string that includes the parameters (each try is up to one HMAC per URL
    /// candidate, as in `verify`).
    full_tries: usize,
    /// Secrets tried on a signed string made of a URL alone.
    url_only_tries: usize,
    /// Secrets tried on a signed string that includes the parameters, over one URL exactly as given
    /// (one HMAC each: a port the app did not see).
    exact_tries: usize,
}

#[cfg(test)]
std::thread_local! {
    static COST: core::cell::Cell<Cost> = const {
        core::cell::Cell::new(Cost { sorts: 0, full_tries: 0, url_only_tries: 0, exact_tries: 0 })
    };
}

#[cfg(test)]
fn count(f: impl FnOnce(&mut Cost)) {
    COST.with(|cost| {
        let mut now = cost.get();
        f(&mut now);
        cost.set(now);
    });
}

#[cfg(not(test))]
#[inline(always)]
fn count(_: impl FnOnce(&mut Cost)) {}

/// Tries corrected versions of one request against a set of keys.
struct Attempt<'r, K> {
    keys: &'r K,
    signature: Option<&'r [u8]>,
    key_id: Option<&'r [u8]>,
}

/// What a signed string is made of: the URL and the parameters, or the URL alone (counted apart).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Made {
    WithParams,
    UrlOnly,
}

/// Which keys an attempt uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    All,
    Eligible,
    Ineligible,
}

impl<'k, K: Iterator<Item = Key<'k>> + Clone> Attempt<'_, K> {
    /// Reports `mistake` if some chosen key signs `signed` over `url` (or one of its candidates) with
    /// `algorithm`.
    fn check(
        &self,
        signed: &Signed<'_>,
        made: Made,
        url: &[u8],
        algorithm: Algorithm,
        keys: Keys,
        mistake: Mistake,
    ) -> Option<Diagnosis> {
        let received = ReceivedSignature::parse(self.signature, algorithm).ok()?;
        let key_id = self.key_id;
        let keys = self
            .keys
            .clone()
            .enumerate()
            .filter(|(_, key)| {
                // Empty secrets match nothing, not even for a diagnosis.
                !key.is_empty()
                    && match keys {
                        Keys::All => true,
                        Keys::Eligible => key.eligible(key_id),
                        Keys::Ineligible => !key.eligible(key_id),
                    }
            })
            .inspect(|_| {
                count(|c| match made {
                    Made::UrlOnly => c.url_only_tries += 1,
                    Made::WithParams => c.full_tries += 1,
                });
            });
        let mut tag = Tag::EMPTY;
        let (secret_index, candidate) =
            find_match(keys, algorithm, &received, signed, url, &mut tag).ok()?;
        Some(Diagnosis {
            mistake,
            secret_index,
            candidate,
        })
    }

    /// Reports `mistake` if some eligible key signs `signed` over `url` exactly as given: one HMAC per
    /// key, no other candidate (for a rewritten URL whose other candidates `verify` has already tried).
    fn check_exact(
        &self,
        signed: &Signed<'_>,
        url: &[u8],
        algorithm: Algorithm,
        mistake: Mistake,
    ) -> Option<Diagnosis> {
        let received = ReceivedSignature::parse(self.signature, algorithm).ok()?;
        self.keys
            .clone()
            .enumerate()
            // Empty secrets are never eligible.
            .filter(|(_, key)| key.eligible(self.key_id))
            .inspect(|_| count(|c| c.exact_tries += 1))
            .find_map(|(secret_index, key)| {
                let mut mac = key.mac(algorithm);
                signed
                    .feed(&UrlPieces::whole(url), &mut |bytes| mac.update(bytes))
                    .ok()?;
                bool::from(received.ct_matches(&mac.finalize())).then_some(Diagnosis {
                    mistake,
                    secret_index,
                    candidate: Candidate::AsGiven,
                })
            })
    }

    /// `request`'s URL alone (a GET's signed string) against the eligible keys.
    fn check_url_only(
        &self,
        url: &[u8],
        algorithm: Algorithm,
        mistake: Mistake,
    ) -> Option<Diagnosis> {
        let get = Request::get(url);
        let signed = Signed::new(&get, &mut []).ok()?;
        self.check(
            &signed,
            Made::UrlOnly,
            url,
            algorithm,
            Keys::Eligible,
            mistake,
        )
    }
}

/// Indexes the request's parameters (once per diagnosis).
fn signed_params<'a>(request: &Request<'a>, scratch: &'a mut [Span]) -> Option<Signed<'a>> {
    count(|c| c.sorts += 1);
    Signed::new(request, scratch).ok()
}

/// The URLs a report shows for `diagnosis`, which matched `rewritten` (a correction of `url`), when
/// its mistake is one of those (see [`Mistake::shows_urls`]): the URL signed is the candidate of
/// `rewritten` that matched.
fn correction(url: &[u8], rewritten: &[u8], diagnosis: Diagnosis) -> Option<UrlCorrection> {
    if !diagnosis.mistake.shows_urls() {
        return None;
    }
    let candidates = Candidates::new(rewritten);
    let (_, signed) = candidates
        .iter()
        .find(|(candidate, _)| *candidate == diagnosis.candidate)?;
    Some(UrlCorrection {
        verified: ShownUrl::of([url]),
        signed: ShownUrl::of(signed.pieces()),
    })
}

/// The mistakes tried by rewriting the URL and checking it with the full parameters, in order.
const URL_REWRITES: [Mistake; 10] = [
    Mistake::SchemeSwapped,
    Mistake::TrailingSlash,
    Mistake::SchemeSwappedAndTrailingSlash,
    Mistake::ExtraQuery,
    // At most one of the four applies to a URL (by its scheme), and the fifth only to ws/wss.
    Mistake::HttpsInsteadOfWss,
    Mistake::HttpInsteadOfWs,
    Mistake::WssInsteadOfHttps,
    Mistake::WsInsteadOfHttp,
    Mistake::WebSocketSchemeSwapped,
    Mistake::DoubledPath,
];

pub(super) fn diagnose<'k>(
    keys: &(impl Iterator<Item = Key<'k>> + Clone),
    request: &Request<'_>,
    error: Error,
    scratch: &mut [Span],
) -> Option<(Diagnosis, Option<UrlCorrection>)> {
    let without_urls = |diagnosis: Diagnosis| (diagnosis, None);
    let settings = SignatureSettings::parse(request.settings).ok()?;
    let attempt = Attempt {
        keys,
        signature: request.signature,
        key_id: settings.key_id,
    };
    let alg = settings.algorithm;
    let url = request.url;
    let body = match request.payload {
        Payload::Body(body) => body,
        Payload::Params(_) => &[],
    };
    // A JSON body read as a form because its URL lost `bodySHA256`: the signature covers the URL with
    // the hash put back. Tried whatever the form reading made of the body (a mismatch, or a body that
    // is not a valid form).
    let body_hash_dropped = || {
        if !looks_like_json(body) || url::body_sha256_param(url).is_some() {
            return None;
        }
        let hashed = add_body_hash(url, &BodyHash::of(body))?;
        attempt
            .check_url_only(hashed.as_bytes(), alg, Mistake::BodyHashDropped)
            .map(without_urls)
    };
    match error {
        Error::MalformedSignature => {
            let (other, mistake) = match alg {
                Algorithm::HmacSha1 => (Algorithm::HmacSha256, Mistake::SettingsHeaderMissing),
                Algorithm::HmacSha256 => (Algorithm::HmacSha1, Mistake::SettingsHeaderUnexpected),
            };
            let signed = signed_params(request, scratch)?;
            attempt
                .check(&signed, Made::WithParams, url, other, Keys::All, mistake)
                .map(without_urls)
        }
        // The URL matched: only the body differs.
        Error::BodyHashMismatch => attempt
            .check_url_only(url, alg, Mistake::BodyAltered)
            .map(without_urls),
        Error::MalformedBody | Error::TooManyParams => body_hash_dropped(),
        Error::SignatureMismatch => {
            let has_payload = match request.payload {
                Payload::Body(body) => !body.is_empty(),
                Payload::Params(pairs) => !pairs.is_empty(),
            };
            let url_only = has_payload
                .then(|| attempt.check_url_only(url, alg, Mistake::ParamsNotSigned))
                .flatten()
                .map(without_urls)
                .or_else(body_hash_dropped);
            if url_only.is_some() {
                return url_only;
            }
            let signed = signed_params(request, scratch)?;
            let key_id_mismatch = || {
                settings.key_id?;
                attempt
                    .check(
                        &signed,
                        Made::WithParams,
                        url,
                        alg,
                        Keys::Ineligible,
                        Mistake::KeyIdMismatch,
                    )
                    .map(without_urls)
            };
            key_id_mismatch().or_else(|| url_corrections(&attempt, &signed, url, alg, has_payload))
        }
        _ => None,
    }
}

/// The URL rewrites ([`URL_REWRITES`]), then the ports ([`DROPPED_PORTS`]): the first that matches.
fn url_corrections<'k>(
    attempt: &Attempt<'_, impl Iterator<Item = Key<'k>> + Clone>,
    signed: &Signed<'_>,
    url: &[u8],
    alg: Algorithm,
    has_payload: bool,
) -> Option<(Diagnosis, Option<UrlCorrection>)> {
    URL_REWRITES
        .into_iter()
        .find_map(|mistake| {
            let rewritten = match mistake {
                Mistake::SchemeSwapped => swap_scheme(url),
                Mistake::TrailingSlash => toggle_trailing_slash(url),
                Mistake::SchemeSwappedAndTrailingSlash => {
                    swap_scheme(url).and_then(|u| toggle_trailing_slash(u.as_bytes()))
                }
                Mistake::ExtraQuery => drop_query(url),
                Mistake::DoubledPath => without_doubled_path(url),
                // A WebSocket handshake has no body: only a request without one is tried as one.
                _ if has_payload => None,
                _ => websocket_rewrite(url, mistake),
            }?;
            let diagnosis = attempt.check(
                signed,
                Made::WithParams,
                rewritten.as_bytes(),
                alg,
                Keys::Eligible,
                mistake,
            )?;
            Some((diagnosis, correction(url, rewritten.as_bytes(), diagnosis)))
        })
        // Last, the ports apps commonly sit behind, each over its URL exactly (verify tried the URL
        // without a port, and with the default one).
        .or_else(|| {
            DROPPED_PORTS.into_iter().find_map(|port| {
                let rewritten = with_port(url, port)?;
                let diagnosis =
                    attempt.check_exact(signed, rewritten.as_bytes(), alg, Mistake::DroppedPort)?;
                Some((diagnosis, correction(url, rewritten.as_bytes(), diagnosis)))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::Explanation;
    use crate::secret::Secret;
    use crate::validator::Validator;
    use std::format;
    use std::string::String;
    use std::vec::Vec;

    /// The keys of a validator with `n` secrets, the last of which signs.
    fn forged_cost(url: &str, body: &str, secrets: usize) -> (Cost, Explanation) {
        let secrets: Vec<Secret> = (0..secrets)
            .map(|i| Secret::new(format!("secret {i}").as_bytes()))
            .collect();
        let validator = Validator::with_secrets(&secrets[..]);
        let forged = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let request = Request::post(url, body).signature(forged);
        COST.with(|c| c.set(Cost::default()));
        let explanation = validator.explain(&request);
        (COST.with(core::cell::Cell::get), explanation)
    }

    /// What explain spends on a forged request through a validator with `secrets` secrets, and what
    /// it says: the body is a form, or none (a GET, a WebSocket handshake).
    fn forged_get_cost(url: &str, secrets: usize) -> (Cost, Explanation) {
        let secrets: Vec<Secret> = (0..secrets)
            .map(|i| Secret::new(format!("secret {i}").as_bytes()))
            .collect();
        let validator = Validator::with_secrets(&secrets[..]);
        let request = Request::get(url).signature("AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        COST.with(|c| c.set(Cost::default()));
        let explanation = validator.explain(&request);
        (COST.with(core::cell::Cell::get), explanation)
    }

    #[test]
    fn explain_on_a_forged_request_costs_a_few_verifies() {
        let form: String = (0..100)
            .map(|i| format!("p{i}=value+{i}"))
            .collect::<Vec<_>>()
            .join("&");
        for secrets in [1, 3] {
            // The URL, and the rewrites tried with the full parameters and the ports tried, per
            // secret: the scheme swap, a slash, both, no query, no doubled path; the five ports
            // where the URL has no port of its own.
            for (url, full, ports) in [
                ("https://example.com/sms", 3, 5),
                ("https://example.com/sms?a=1", 4, 5),
                ("https://example.com:443/sms", 3, 5),
                ("http://10.0.0.5:8080/sms/", 3, 0),
                ("https://example.com/twilio/sms/twilio/sms?a=1", 5, 5),
            ] {
                let (cost, explanation) = forged_cost(url, &form, secrets);
                assert_eq!(explanation.verdict.err(), Some(Error::SignatureMismatch));
                assert!(explanation.diagnosis.is_none());
                // verify itself tried every secret once on the full string; explain adds one sort,
                // the rewritten URLs, the ports and one URL-alone string per secret.
                assert_eq!(cost.sorts, 1, "{url}: {cost:?}");
                assert_eq!(cost.full_tries, full * secrets, "{url}: {cost:?}");
                assert_eq!(cost.exact_tries, ports * secrets, "{url}: {cost:?}");
                assert_eq!(cost.url_only_tries, secrets, "{url}: {cost:?}");
            }
            // A forged JSON body read as a form adds one URL-alone try per secret (and one SHA-256).
            let (cost, _) = forged_cost("https://example.com/events", "{\"a\":1}", secrets);
            assert_eq!(cost.url_only_tries, 2 * secrets, "{cost:?}");
            assert!(cost.full_tries <= 5 * secrets, "{cost:?}");
            // Without a body (a GET, a WebSocket handshake), the one WebSocket rewrite that fits the
            // scheme (two for ws and wss: the scheme swap is theirs) is tried too; no URL-alone string.
            for (url, full, ports) in [
                ("https://example.com/twilio/sms/twilio/sms?a=1", 6, 5),
                ("http://example.com/media", 4, 5),
                ("wss://example.com/media?a=1", 4, 5),
                ("ws://example.com:80/a/a", 4, 5),
            ] {
                let (cost, explanation) = forged_get_cost(url, secrets);
                assert_eq!(explanation.verdict.err(), Some(Error::SignatureMismatch));
                assert!(explanation.diagnosis.is_none());
                assert_eq!(cost.sorts, 1, "{url}: {cost:?}");
                assert_eq!(cost.full_tries, full * secrets, "{url}: {cost:?}");
                assert_eq!(cost.exact_tries, ports * secrets, "{url}: {cost:?}");
                assert_eq!(cost.url_only_tries, 0, "{url}: {cost:?}");
            }
        }
    }
}
