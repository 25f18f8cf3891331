//! The Redis store (feature `redis`): one store for every instance, shared with the Python and Go
//! faces and `twsig proxy --redis`.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Claim, IdempotencyStore, StoreError, StoreFuture, StoredResponse};

// One round trip each, atomic on the server, the same scripts as the Go and Python stores. A claim is
// `P` + owner, a stored response `D` + the encoded response. A claim that finds its own owner is ours:
// a client that re-sent a claim whose reply was lost must not find the first delivery busy with itself.
const CLAIM: &str = "
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local found = redis.call('GET', KEYS[1])
if found == ARGV[1] then return 'ours' end
return found
";
const COMPLETE: &str = "
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
";
const RELEASE: &str = "
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

/// A store in Redis, shared by every instance of an app (feature `redis`).
///
/// A claim is `SET NX PX` inside a Lua script that also returns what is there when the key is taken;
/// completing and releasing check the claim's owner in the same script, so a run whose lease expired
/// cannot touch the run that took over. Every key has a TTL: the lease for a claim, the layer's `ttl`
/// for a stored response. Keys are the prefix (`twilio-signature:idempotency:` by default) and a
/// [`delivery_key`](super::delivery_key) digest; values `P` + owner for a claim and `D` + the stored
/// layout for a response, as the Python `RedisStore` and Go `redisstore` write them, so a mixed fleet
/// shares one Redis. Nothing secret is stored.
///
/// ```no_run
/// # async fn run() -> Result<(), twilio_signature_tower::idempotency::StoreError> {
/// use twilio_signature_tower::idempotency::RedisStore;
/// use twilio_signature_tower::{Secret, TwilioSignatureLayer, Validator};
///
/// let store = RedisStore::connect("redis://127.0.0.1:6379/").await?;
/// let layer = TwilioSignatureLayer::new(Validator::new(Secret::new(b"auth token"))).idempotency(store);
/// # let _ = layer;
/// # Ok(())
/// # }
/// # fn main() { let _ = run; }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    claim: Script,
    complete: Script,
    release: Script,
}

impl RedisStore {
    /// The key prefix of every face's store.
    pub const DEFAULT_PREFIX: &'static str = "twilio-signature:idempotency:";

    /// Connects to the Redis at `url` (`redis://[user:password@]host:port/db`; `rediss://` needs the
    /// redis crate's TLS features) with timeouts that fit the layer's wait (5 s) and Twilio's 15 s:
    /// 1 s to connect, 1 s for an answer, two reconnection attempts. The connection is re-established
    /// after Redis restarts. An error if the URL is malformed or Redis cannot be reached now; the
    /// error never shows the URL (it may hold a password).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let connection = ConnectionManager::new_with_config(client(url)?, config())
            .await
            .map_err(|e| StoreError::with_source("Redis: cannot connect", e))?;
        Ok(Self::new(connection))
    }

    /// [`connect`](Self::connect) without connecting yet: the first store call (or [`ping`](Self::ping))
    /// connects, and a Redis that is down at start only makes requests take the store-failure policy
    /// until it is up. An error only for a malformed URL. Call it inside a tokio runtime (the
    /// connection's task is spawned on it).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let connection = ConnectionManager::new_lazy_with_config(client(url)?, config())
            .map_err(|e| StoreError::with_source("Redis: cannot set up the connection", e))?;
        Ok(Self::new(connection))
    }

    /// A store over a connection you configured yourself. Give it timeouts that fit the layer's
    /// wait: while Redis is down each webhook waits for them before it is processed unguarded (or
    /// refused, with [`OnStoreError::Refuse`](super::OnStoreError::Refuse)).
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            claim: Script::new(CLAIM),
            complete: Script::new(COMPLETE),
            release: Script::new(RELEASE),
        }
    }

    /// Another key prefix (the default is every face's: change it on all of them or none).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Whether Redis answers (a `PING`), for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        redis::cmd("PING")
            .query_async::<()>(&mut connection)
            .await
            .map_err(|e| StoreError::with_source("Redis: ping", e))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn client(url: &str) -> Result<redis::Client, StoreError> {
    redis::Client::open(url)
        .map_err(|e| StoreError::with_source("Redis: the URL is not a Redis URL", e))
}

/// Timeouts that fit the layer's wait (5 s) and Twilio's 15 s, so that a claim gives up within a few
/// seconds while Redis is down.
fn config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
}

fn claim_value(owner: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + owner.len());
    value.push(b'P');
    value.extend_from_slice(owner.as_bytes());
    value
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl IdempotencyStore for RedisStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let found: Option<Vec<u8>> = self
                .claim
                .key(self.key(key))
                .arg(claim_value(owner))
                .arg(millis(lease))
                .invoke_async(&mut connection)
                .await
                .map_err(|e| StoreError::with_source("Redis: claim", e))?;
            // Values start with P or D, so "ours" is never a value.
            let Some(found) = found.filter(|found| found != b"ours") else {
                return Ok(Claim::Ours);
            };
            match found.split_first() {
                Some((b'D', encoded)) => StoredResponse::decode(encoded)
                    .map(Claim::Done)
                    .map_err(|e| StoreError::with_source(format!("Redis: {}", self.key(key)), e)),
                _ => Ok(Claim::Busy),
            }
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let encoded = response.encode()?;
            let mut value = Vec::with_capacity(1 + encoded.len());
            value.push(b'D');
            value.extend_from_slice(&encoded);
            let mut connection = self.connection.clone();
            let done: i64 = self
                .complete
                .key(self.key(key))
                .arg(claim_value(owner))
                .arg(value)
                .arg(millis(ttl))
                .invoke_async(&mut connection)
                .await
                .map_err(|e| StoreError::with_source("Redis: complete", e))?;
            Ok(done == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let done: i64 = self
                .release
                .key(self.key(key))
                .arg(claim_value(owner))
                .invoke_async(&mut connection)
                .await
                .map_err(|e| StoreError::with_source("Redis: release", e))?;
            Ok(done == 1)
        })
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the connection: its address may hold a password.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
