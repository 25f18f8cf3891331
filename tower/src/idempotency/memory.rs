//! The in-process store: bounded, and never evicting a delivery still running.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Claim, IdempotencyStore, StoreError, StoreFuture, StoredResponse};

/// Deliveries kept in this process: the store for one instance (several instances need a shared
/// store: `RedisStore`, feature `redis`).
///
/// Memory is bounded: at most [`max_entries`](Self::with_max_entries) keys (10,000 by default). When
/// full, expired entries go first, then the oldest stored responses. A claim whose lease has not
/// expired (a delivery still running) is never evicted, since its retry would then run the handler
/// again beside it: with only those left, a new claim fails ("memory store full: N deliveries in
/// flight") and the store-failure policy applies, as for a Redis that is down.
pub struct MemoryStore {
    max_entries: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// Running deliveries and stored responses, each by write order (oldest first).
    claims: BTreeMap<u64, String>,
    responses: BTreeMap<u64, String>,
    next: u64,
    /// The last full sweep of expired entries.
    swept: Option<Instant>,
}

struct Entry {
    expires: Instant,
    /// Its place in `claims` (with an owner) or `responses`.
    order: u64,
    kind: Kind,
}

enum Kind {
    Claim(String),
    Done(StoredResponse),
}

impl MemoryStore {
    /// An empty store of at most 10,000 keys.
    pub fn new() -> Self {
        Self::with_max_entries(10_000)
    }

    /// An empty store of at most `max_entries` keys (at least one).
    pub fn with_max_entries(max_entries: usize) -> Self {
        Self {
            max_entries: max_entries.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// The number of live entries (claims and stored responses).
    pub fn len(&self) -> usize {
        let mut state = self.lock();
        state.expire(Instant::now());
        state.entries.len()
    }

    /// Whether no entry is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The time `key` has left, `None` when it is absent (for tests and debugging).
    pub fn time_left(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut state = self.lock();
        state.live(key, now).map(|e| e.expires - now)
    }

    // A panic while the lock was held left no half-written entry (every change is one map operation
    // after the checks), so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn claim_now(&self, key: &str, owner: &str, lease: Duration) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut state = self.lock();
        if let Some(entry) = state.live(key, now) {
            return Ok(match &entry.kind {
                Kind::Done(response) => Claim::Done(response.clone()),
                Kind::Claim(holder) if holder == owner => Claim::Ours,
                Kind::Claim(_) => Claim::Busy,
            });
        }
        state.make_room(self.max_entries, now)?;
        state.put(key, now + lease, Kind::Claim(owner.to_owned()));
        Ok(Claim::Ours)
    }

    fn complete_now(
        &self,
        key: &str,
        owner: &str,
        response: &StoredResponse,
        ttl: Duration,
    ) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        if !state.held_by(key, owner, now) {
            return false;
        }
        // Replaces the claim: no room needed. Re-ordered: eviction goes by the age of the last write.
        state.put(key, now + ttl, Kind::Done(response.clone()));
        true
    }

    fn release_now(&self, key: &str, owner: &str) -> bool {
        let mut state = self.lock();
        if !state.held_by(key, owner, Instant::now()) {
            return false;
        }
        state.remove(key);
        true
    }
}

impl State {
    /// `key`'s entry if it has not expired (dropping it if it has).
    fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        if self.entries.get(key)?.expires <= now {
            self.remove(key);
            return None;
        }
        self.entries.get(key)
    }

    fn held_by(&mut self, key: &str, owner: &str, now: Instant) -> bool {
        self.live(key, now)
            .is_some_and(|e| matches!(&e.kind, Kind::Claim(holder) if holder == owner))
    }

    fn remove(&mut self, key: &str) {
        if let Some(entry) = self.entries.remove(key) {
            match entry.kind {
                Kind::Claim(_) => self.claims.remove(&entry.order),
                Kind::Done(_) => self.responses.remove(&entry.order),
            };
        }
    }

    /// Stores `kind` as the newest entry of its sort, replacing `key`'s entry if there is one.
    fn put(&mut self, key: &str, expires: Instant, kind: Kind) {
        self.remove(key);
        let order = self.next;
        self.next += 1;
        match kind {
            Kind::Claim(_) => self.claims.insert(order, key.to_owned()),
            Kind::Done(_) => self.responses.insert(order, key.to_owned()),
        };
        self.entries.insert(
            key.to_owned(),
            Entry {
                expires,
                order,
                kind,
            },
        );
    }

    /// Frees one place for a new key, or fails when every entry is a running delivery: expired
    /// entries go first, then the oldest stored response; a live claim is never dropped.
    fn make_room(&mut self, max_entries: usize, now: Instant) -> Result<(), StoreError> {
        if self.entries.len() < max_entries {
            return Ok(());
        }
        // A full sweep is O(entries): at most once a second, so a store kept full by traffic pays it
        // rarely; between sweeps the expired entries at the front of each order go, then the oldest
        // stored response.
        if self
            .swept
            .is_none_or(|at| now - at >= Duration::from_secs(1))
        {
            self.swept = Some(now);
            self.expire(now);
        }
        while self.entries.len() >= max_entries {
            let expired_front = [&self.claims, &self.responses]
                .into_iter()
                .filter_map(|order| order.first_key_value())
                .map(|(_, key)| key)
                .find(|key| self.entries.get(*key).is_some_and(|e| e.expires <= now))
                .cloned();
            let victim =
                expired_front.or_else(|| self.responses.first_key_value().map(|(_, k)| k.clone()));
            let Some(victim) = victim else { break };
            self.remove(&victim);
        }
        if self.entries.len() >= max_entries {
            // Only claims are left: one may have expired behind a live one (leases can differ).
            self.swept = Some(now);
            self.expire(now);
        }
        if self.entries.len() >= max_entries {
            return Err(StoreError::new(format!(
                "memory store full: {} deliveries in flight",
                self.claims.len()
            )));
        }
        Ok(())
    }

    fn expire(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.remove(&key);
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("max_entries", &self.max_entries)
            .field("entries", &self.lock().entries.len())
            .finish_non_exhaustive()
    }
}

impl IdempotencyStore for MemoryStore {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        lease: Duration,
    ) -> StoreFuture<'a, Claim> {
        let result = self.claim_now(key, owner, lease);
        Box::pin(std::future::ready(result))
    }

    fn complete<'a>(
        &'a self,
        key: &'a str,
        owner: &'a str,
        response: &'a StoredResponse,
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        let done = self.complete_now(key, owner, response, ttl);
        Box::pin(std::future::ready(Ok(done)))
    }

    fn release<'a>(&'a self, key: &'a str, owner: &'a str) -> StoreFuture<'a, bool> {
        let done = self.release_now(key, owner);
        Box::pin(std::future::ready(Ok(done)))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http::StatusCode;

    use super::*;

    const LEASE: Duration = Duration::from_secs(60);
    const TTL: Duration = Duration::from_secs(3600);

    fn ok() -> StoredResponse {
        StoredResponse::new(
            StatusCode::OK,
            Vec::new(),
            Bytes::from_static(b"<Response/>"),
        )
    }

    #[test]
    fn a_claim_is_ours_then_busy_for_others_and_done_once_completed() {
        let store = MemoryStore::new();
        assert_eq!(
            store.claim_now("k", "a", LEASE).expect("claim"),
            Claim::Ours
        );
        // The same owner re-sending its claim: still ours, not busy with itself.
        assert_eq!(
            store.claim_now("k", "a", LEASE).expect("claim"),
            Claim::Ours
        );
        assert_eq!(
            store.claim_now("k", "b", LEASE).expect("claim"),
            Claim::Busy
        );
        assert!(!store.complete_now("k", "b", &ok(), TTL), "not b's claim");
        assert!(store.complete_now("k", "a", &ok(), TTL));
        assert_eq!(
            store.claim_now("k", "b", LEASE).expect("claim"),
            Claim::Done(ok())
        );
        assert!(
            !store.release_now("k", "a"),
            "a stored response is not a claim"
        );
        assert!(store.time_left("k").is_some_and(|t| t > LEASE));
    }

    #[test]
    fn a_released_or_expired_claim_can_be_taken_again() {
        let store = MemoryStore::new();
        assert_eq!(
            store.claim_now("k", "a", LEASE).expect("claim"),
            Claim::Ours
        );
        assert!(!store.release_now("k", "b"));
        assert!(store.release_now("k", "a"));
        assert_eq!(
            store
                .claim_now("k", "b", Duration::from_millis(1))
                .expect("claim"),
            Claim::Ours
        );
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            store.claim_now("k", "c", LEASE).expect("claim"),
            Claim::Ours
        );
        assert!(
            !store.complete_now("k", "b", &ok(), TTL),
            "b's lease expired and c took over"
        );
    }

    #[test]
    fn a_full_store_drops_the_oldest_responses_but_never_a_running_delivery() {
        let store = MemoryStore::with_max_entries(3);
        for key in ["r1", "r2"] {
            store.claim_now(key, "o", LEASE).expect("claim");
            assert!(store.complete_now(key, "o", &ok(), TTL));
        }
        store.claim_now("c1", "o", LEASE).expect("claim");
        // Full: the oldest response (r1) goes, then r2; the running c1 stays.
        store.claim_now("c2", "o", LEASE).expect("claim");
        assert_eq!(store.time_left("r1"), None);
        store.claim_now("c3", "o", LEASE).expect("claim");
        assert_eq!(store.time_left("r2"), None);
        assert_eq!(store.len(), 3);
        let error = store
            .claim_now("c4", "o", LEASE)
            .expect_err("only running deliveries left");
        assert_eq!(
            error.to_string(),
            "memory store full: 3 deliveries in flight"
        );
        for key in ["c1", "c2", "c3"] {
            assert_eq!(
                store.claim_now(key, "other", LEASE).expect("claim"),
                Claim::Busy,
                "{key}"
            );
        }
        // A finished delivery makes room again.
        assert!(store.release_now("c1", "o"));
        assert_eq!(
            store.claim_now("c4", "o", LEASE).expect("claim"),
            Claim::Ours
        );
    }

    #[test]
    fn expired_claims_make_room_even_behind_live_ones() {
        let store = MemoryStore::with_max_entries(2);
        store.claim_now("live", "o", LEASE).expect("claim");
        store
            .claim_now("short", "o", Duration::from_millis(1))
            .expect("claim");
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(
            store.claim_now("new", "o", LEASE).expect("claim"),
            Claim::Ours
        );
        assert_eq!(
            store.claim_now("live", "x", LEASE).expect("claim"),
            Claim::Busy
        );
    }
}
