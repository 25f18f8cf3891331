//! What a successful verification reports to C: plain values only, no pointers.

use tws_core::{Algorithm, Candidate, Verified};

/// Which form of the URL the signature covered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum tws_candidate {
    /// The URL exactly as given.
    TWS_CANDIDATE_AS_GIVEN = 0,
    /// The URL with its port removed, or with `:443` / `:80` added.
    TWS_CANDIDATE_PORT_TOGGLED = 1,
    /// The URL without `user:pass@`.
    TWS_CANDIDATE_WITHOUT_USERINFO = 2,
    /// The URL without `user:pass@`, port toggled.
    TWS_CANDIDATE_WITHOUT_USERINFO_PORT_TOGGLED = 3,
}

/// The HMAC of a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum tws_algorithm {
    /// HMAC-SHA1 with the Auth Token (no settings header, or `algorithm=HMAC_SHA1`).
    TWS_ALGORITHM_HMAC_SHA1 = 1,
    /// HMAC-SHA256 with a SharedKey secret (`algorithm=HMAC_SHA256`).
    TWS_ALGORITHM_HMAC_SHA256 = 2,
}

/// A successful verification, written by `tws_validator_verify` only when it returns `TWS_OK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct tws_verified {
    /// Index of the matching secret, in the order they were added (0 for the first).
    pub secret_index: usize,
    /// Which form of the URL was signed.
    pub candidate: tws_candidate,
    /// The algorithm of the signature.
    pub algorithm: tws_algorithm,
    /// Identifies the signed string: every request that signs the same string has the same key (a
    /// retry, a replay, re-split parameters, two identical requests); see SECURITY.md, "Replays and
    /// retries", before refusing repeats.
    pub replay_key: [u8; 32],
}

impl From<Verified> for tws_verified {
    fn from(verified: Verified) -> Self {
        Self {
            secret_index: verified.secret_index,
            candidate: match verified.candidate {
                Candidate::AsGiven => tws_candidate::TWS_CANDIDATE_AS_GIVEN,
                Candidate::PortToggled => tws_candidate::TWS_CANDIDATE_PORT_TOGGLED,
                Candidate::WithoutUserinfo => tws_candidate::TWS_CANDIDATE_WITHOUT_USERINFO,
                Candidate::WithoutUserinfoPortToggled => {
                    tws_candidate::TWS_CANDIDATE_WITHOUT_USERINFO_PORT_TOGGLED
                }
            },
            algorithm: match verified.algorithm {
                Algorithm::HmacSha1 => tws_algorithm::TWS_ALGORITHM_HMAC_SHA1,
                Algorithm::HmacSha256 => tws_algorithm::TWS_ALGORITHM_HMAC_SHA256,
            },
            replay_key: verified.replay_key(),
        }
    }
}
