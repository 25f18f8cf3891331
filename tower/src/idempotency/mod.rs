//! Twilio retries answered once: the first delivery runs the inner service, its retries get its
//! response.
//!
//! Twilio retries a webhook when the connection fails or times out, and sends the same
//! `I-Twilio-Idempotency-Token` on every retry of one delivery. With
//! [`TwilioSignatureLayer::idempotency`](crate::TwilioSignatureLayer::idempotency), a verified request's
//! inner service runs once per delivery and every retry gets the response the first run gave. The
//! delivery key, the stored layout and the Redis values are those of the Python and Go faces
//! (docs/contract.md#retries), so a mixed fleet shares one Redis.
//!
//! This is retry handling, not replay protection: the token is not signed, so anyone holding a
//! captured request can send it again with a new token and it runs again. Store
//! [`Verified::replay_key`](twilio_signature::Verified::replay_key) for a few minutes to refuse replays.

mod memory;
#[cfg(feature = "redis")]
mod redis;
pub(crate) mod run;
mod stored;

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use sha2::{Digest, Sha256};

pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use stored::StoredResponse;

/// The header Twilio sends on every request, the same on each retry of one delivery.
pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("i-twilio-idempotency-token");

/// Set to `true` on a stored response sent again to a retry.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a stored response is kept by default: 24 hours (Twilio's retries come within minutes).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a claim holds by default: 60 s, longer than Twilio waits for an answer (15 s).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// How long a retry waits by default for the first delivery's response before it is answered 409.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);
/// The largest response body stored by default, in bytes: 64 KiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

const KEY_DOMAIN: &[u8] = b"twilio-signature/idempotency/v1\0";

/// The store key of one delivery: the hex SHA-256 of a domain tag, the verified request's replay key
/// and its idempotency token. Retries share both; a new delivery with the same content (a caller
/// pressing 1 twice at one `<Gather>`) has a new token. The Python, Go and Node faces compute the same.
pub fn delivery_key(replay_key: &[u8; 32], token: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(KEY_DOMAIN)
        .chain_update(replay_key)
        .chain_update(token)
        .finalize();
    hex(&digest)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// A random token naming one claim (128 bits, hex), so that a run whose lease expired cannot complete
/// or free the claim of the run that took over, on this instance or another.
pub(crate) fn new_owner() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness (practically never): a digest of what makes this claim unique here. The
        // process id and the time tell instances apart; the counter, claims in one.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let digest = Sha256::new()
            .chain_update(count.to_le_bytes())
            .chain_update(now.as_nanos().to_le_bytes())
            .chain_update(std::process::id().to_le_bytes())
            .finalize();
        bytes.copy_from_slice(&digest[..16]);
    }
    hex(&bytes)
}

/// What [`IdempotencyStore::claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key was free, or already held by this very owner: the caller holds it now and must
    /// complete or release it.
    Ours,
    /// Another run holds the key and has not stored a response yet.
    Busy,
    /// A response is stored: the one to send again.
    Done(StoredResponse),
}

/// A store that could not be reached, is full, or answered what cannot be read. The store-failure
/// policy ([`OnStoreError`]) decides what the request gets. Its text never holds a secret (a Redis URL's
/// password is not part of it).
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl StoreError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error with this message, caused by `source`.
    pub fn with_source(
        message: impl Into<String>,
        source: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(source.into()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// The future a store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where deliveries are claimed and their responses kept: [`MemoryStore`] in one process,
/// `RedisStore` (feature `redis`) across instances; implement it for another backend.
///
/// Keys are [`delivery_key`] digests (the store adds its own prefix, if any). `owner` is a random
/// token naming one claim, so that a run whose lease expired cannot store over or free the claim of the
/// run that took over. Every entry must expire: a claim after its lease, a stored response after its
/// TTL.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically: if `key` is free, hold it for `owner` for `lease` and return [`Claim::Ours`]; if
    /// `owner` already holds it (a client re-sending a claim whose reply was lost), [`Claim::Ours`] too;
    /// if a response is stored, [`Claim::Done`] with it; otherwise [`Claim::Busy`]. An error when the
    /// store cannot take the claim (unreachable, full).
    fn claim<'a>(&'a self, key: &'a str, owner: &'a str, lease: Duration)
        -> StoreFuture<'a, Claim>;

    /// Stores `response` under `key` for `ttl` if `owner` still holds the key; `false` if not.
    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;

    /// Frees `key` if `owner` still holds it; `false` if not.
    fn release<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, bool>;
}

impl<T: IdempotencyStore + ?Sized> IdempotencyStore for Arc<T> {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        (**self).claim(key, owner, lease)
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        (**self).complete(key, owner, response, ttl)
    }

    fn release<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        (**self).release(key, owner)
    }
}

/// What a request gets when the store fails (unreachable, or a [`MemoryStore`] full of deliveries
/// still running).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Run the inner service unguarded and log an error (the default): a duplicate is better than a
    /// lost webhook.
    #[default]
    Process,
    /// Answer 503. Twilio retries only a failed connection, once by default (the `#rc`/`#rp` URL
    /// fragment overrides change that), so a 503 may be a lost webhook.
    Refuse,
}

/// The retry settings of [`TwilioSignatureLayer::idempotency`](crate::TwilioSignatureLayer::idempotency):
/// a store and how to use it.
///
/// ```
/// use std::time::Duration;
/// use twilio_signature_tower::idempotency::{Idempotency, MemoryStore, OnStoreError};
///
/// let retries = Idempotency::new(MemoryStore::new())
///     .wait(Duration::from_secs(3))
///     .on_store_error(OnStoreError::Refuse);
/// # let _ = retries;
/// ```
#[derive(Clone)]
pub struct Idempotency {
    pub(crate) store: Arc<dyn IdempotencyStore>,
    pub(crate) wait: Duration,
    pub(crate) lease: Duration,
    pub(crate) ttl: Duration,
    pub(crate) max_body: usize,
    pub(crate) on_store_error: OnStoreError,
    pub(crate) poll: Duration,
    /// Requests passed through because they carried no token (shared by the clones of one setting).
    pub(crate) unguarded: Arc<AtomicU64>,
}

impl Idempotency {
    /// Retries answered from `store`, with the defaults: wait 5 s, lease 60 s, TTL 24 h, bodies up to
    /// 64 KiB stored, a failing store processes requests unguarded.
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self {
            store: Arc::new(store),
            wait: DEFAULT_WAIT,
            lease: DEFAULT_LEASE,
            ttl: DEFAULT_TTL,
            max_body: DEFAULT_MAX_BODY,
            on_store_error: OnStoreError::Process,
            poll: Duration::from_millis(50),
            unguarded: Arc::new(AtomicU64::new(0)),
        }
    }

    /// How long a retry waits for the first delivery's response before it is answered 409 (default
    /// [`DEFAULT_WAIT`]; zero: 409 at once).
    #[must_use]
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// How long a claim holds (default [`DEFAULT_LEASE`]); the claim of a crashed run expires after it.
    /// At least a millisecond.
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(1));
        self
    }

    /// How long a stored response is kept (default [`DEFAULT_TTL`]). At least a millisecond.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(1));
        self
    }

    /// The largest response body stored (default [`DEFAULT_MAX_BODY`]); a larger one is sent but not
    /// stored, so a retry runs the inner service again.
    #[must_use]
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// What a request gets when the store fails: [`OnStoreError::Process`] (default) or
    /// [`OnStoreError::Refuse`] (503).
    #[must_use]
    pub fn on_store_error(mut self, policy: OnStoreError) -> Self {
        self.on_store_error = policy;
        self
    }

    /// The time between looks at the store while a retry waits (default 50 ms). At least a millisecond.
    #[must_use]
    pub fn poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }

    /// How many verified requests were passed through unguarded because they carried no
    /// `I-Twilio-Idempotency-Token`.
    pub fn unguarded(&self) -> u64 {
        self.unguarded.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl<T: IdempotencyStore> From<T> for Idempotency {
    fn from(store: T) -> Self {
        Self::new(store)
    }
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("wait", &self.wait)
            .field("lease", &self.lease)
            .field("ttl", &self.ttl)
            .field("max_body", &self.max_body)
            .field("on_store_error", &self.on_store_error)
            .field("poll_interval", &self.poll)
            .finish_non_exhaustive()
    }
}

/// Put in the extensions of the responses the retry handling answers itself, so that an app (or
/// `twsig proxy`'s log) can tell them from the inner service's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryAnswer {
    /// A retry answered with the stored response (`Idempotent-Replayed: true`).
    Replayed,
    /// 409: a retry of a delivery still being handled, after waiting.
    StillRunning,
    /// 503: the store failed and the policy is [`OnStoreError::Refuse`].
    StoreUnavailable,
}
