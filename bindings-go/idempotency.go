package twiliosig

import (
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Twilio retries a webhook when the connection fails or times out, and sends the same
// I-Twilio-Idempotency-Token on every retry of one delivery. Idempotent runs a verified request's
// handler once per delivery and answers every retry with the response the first run gave, byte for
// byte (a voice retry gets its TwiML).
//
// This is retry handling, not replay protection: the token header is not signed, so anyone holding
// a captured request can send it again with a new token and it runs again. Store Verified.ReplayKey
// for a few minutes if you must refuse replays.

// IdempotencyTokenHeader is the header Twilio sends on every request, the same on each retry of one
// delivery.
const IdempotencyTokenHeader = "I-Twilio-Idempotency-Token"

// IdempotentReplayedHeader is set to "true" on a stored response sent again.
const IdempotentReplayedHeader = "Idempotent-Replayed"

// Defaults of IdempotencyOptions and MemoryStoreOptions.
const (
	DefaultIdempotencyTTL   = 24 * time.Hour   // how long a stored response is kept
	DefaultIdempotencyLease = 60 * time.Second // how long a claim holds (Twilio waits 15 s at most)
	DefaultIdempotencyWait  = 5 * time.Second  // how long a retry waits for a run in progress
	DefaultIdempotencyBody  = 64 << 10         // largest response body stored, in bytes
)

const keyDomain = "twilio-signature/idempotency/v1\x00"

// DeliveryKey is the store key of one delivery: the hex SHA-256 of a domain tag, the verified
// request's replay key and its idempotency token. Retries share both; a new delivery with the same
// content has a new token. The Python package computes the same key, so both can share one Redis.
func DeliveryKey(replayKey [32]byte, token string) string {
	h := sha256.New()
	h.Write([]byte(keyDomain))
	h.Write(replayKey[:])
	h.Write([]byte(token))
	return hex.EncodeToString(h.Sum(nil))
}

// StoredResponse is what is kept of a handler's response and sent again to a retry.
type StoredResponse struct {
	Status      int
	ContentType string // "" when the response had none
	Body        []byte
}

// MarshalBinary encodes the response as stores keep it (the Python package uses the same layout):
// status and content-type length as big-endian 16-bit numbers, the content type, the body.
func (s StoredResponse) MarshalBinary() ([]byte, error) {
	if s.Status < 100 || s.Status > 999 || len(s.ContentType) > 0xffff {
		return nil, errors.New("twiliosig: response cannot be stored")
	}
	out := make([]byte, 4, 4+len(s.ContentType)+len(s.Body))
	binary.BigEndian.PutUint16(out, uint16(s.Status))
	binary.BigEndian.PutUint16(out[2:], uint16(len(s.ContentType)))
	out = append(out, s.ContentType...)
	return append(out, s.Body...), nil
}

// UnmarshalBinary is the inverse of MarshalBinary; it refuses data it did not write.
func (s *StoredResponse) UnmarshalBinary(data []byte) error {
	if len(data) < 4 {
		return errors.New("twiliosig: stored response is truncated")
	}
	status, length := int(binary.BigEndian.Uint16(data)), int(binary.BigEndian.Uint16(data[2:]))
	if len(data) < 4+length || status < 100 || status > 999 {
		return errors.New("twiliosig: stored response is malformed")
	}
	s.Status, s.ContentType = status, string(data[4:4+length])
	s.Body = append([]byte(nil), data[4+length:]...)
	return nil
}

// ClaimState is what IdempotencyStore.Claim found.
type ClaimState int

const (
	// ClaimOurs: the key was free and the caller holds it now; it must Complete or Release it.
	ClaimOurs ClaimState = iota
	// ClaimBusy: another run holds the key and has not stored a response yet.
	ClaimBusy
	// ClaimDone: a response is stored; it is returned with this state.
	ClaimDone
)

// IdempotencyStore is where deliveries are claimed and their responses kept. Implement it for
// another backend (the idempotencytest package checks an implementation). Keys are DeliveryKey
// digests; owner is a random token naming one claim, so that a run whose lease expired cannot
// overwrite or free the claim of the run that took over. Every entry must expire: a claim after its
// lease, a stored response after the store's TTL.
type IdempotencyStore interface {
	// Claim atomically holds key for owner for lease if it is free (ClaimOurs), or reports a stored
	// response (ClaimDone) or another run in progress (ClaimBusy).
	Claim(ctx context.Context, key, owner string, lease time.Duration) (ClaimState, StoredResponse, error)
	// Complete stores resp under key with the TTL if owner still holds the key (false if not).
	Complete(ctx context.Context, key, owner string, resp StoredResponse) (bool, error)
	// Release frees key if owner still holds it (false if not).
	Release(ctx context.Context, key, owner string) (bool, error)
}

// MemoryStoreOptions configure NewMemoryStore; zero values mean the defaults.
type MemoryStoreOptions struct {
	TTL        time.Duration // how long a stored response is kept (default 24 h)
	MaxEntries int           // at most this many keys, evicting expired then oldest (default 10,000)
}

// MemoryStore keeps deliveries in this process: the store for one instance. Safe for concurrent use;
// memory is bounded by MaxEntries. Several instances need a shared store (see the redisstore module).
type MemoryStore struct {
	ttl        time.Duration
	maxEntries int
	mu         sync.Mutex
	entries    map[string]*list.Element // of *memoryEntry, oldest write at the front
	order      *list.List
	swept      time.Time // last full sweep of expired entries
}

type memoryEntry struct {
	key     string
	expires time.Time
	owner   string // of a claim; "" once a response is stored
	resp    StoredResponse
}

// NewMemoryStore returns an empty in-process store.
func NewMemoryStore(opts MemoryStoreOptions) *MemoryStore {
	if opts.TTL <= 0 {
		opts.TTL = DefaultIdempotencyTTL
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10_000
	}
	return &MemoryStore{ttl: opts.TTL, maxEntries: opts.MaxEntries,
		entries: map[string]*list.Element{}, order: list.New()}
}

// Len is the number of live entries.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(time.Now())
	return m.order.Len()
}

// TTL is how long key has left, and false when it is absent (for tests and debugging).
func (m *MemoryStore) TTL(key string) (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.live(key, time.Now())
	if e == nil {
		return 0, false
	}
	return time.Until(e.expires), true
}

// TTLs is the time left on every live entry (for tests and debugging).
func (m *MemoryStore) TTLs() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.expire(now)
	out := make([]time.Duration, 0, m.order.Len())
	for el := m.order.Front(); el != nil; el = el.Next() {
		out = append(out, el.Value.(*memoryEntry).expires.Sub(now))
	}
	return out
}

// Claim implements IdempotencyStore.
func (m *MemoryStore) Claim(_ context.Context, key, owner string, lease time.Duration) (ClaimState, StoredResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if e := m.live(key, now); e != nil {
		if e.owner == "" {
			return ClaimDone, e.resp, nil
		}
		return ClaimBusy, StoredResponse{}, nil
	}
	m.put(&memoryEntry{key: key, expires: now.Add(lease), owner: owner}, now)
	return ClaimOurs, StoredResponse{}, nil
}

// Complete implements IdempotencyStore.
func (m *MemoryStore) Complete(_ context.Context, key, owner string, resp StoredResponse) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if e := m.live(key, now); e == nil || e.owner != owner {
		return false, nil
	}
	resp.Body = append([]byte(nil), resp.Body...)
	m.put(&memoryEntry{key: key, expires: now.Add(m.ttl), resp: resp}, now)
	return true, nil
}

// Release implements IdempotencyStore.
func (m *MemoryStore) Release(_ context.Context, key, owner string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.live(key, time.Now()); e == nil || e.owner != owner {
		return false, nil
	}
	m.order.Remove(m.entries[key])
	delete(m.entries, key)
	return true, nil
}

// live returns key's entry if it has not expired (dropping it if it has).
func (m *MemoryStore) live(key string, now time.Time) *memoryEntry {
	el, ok := m.entries[key]
	if !ok {
		return nil
	}
	e := el.Value.(*memoryEntry)
	if !now.Before(e.expires) {
		m.order.Remove(el)
		delete(m.entries, key)
		return nil
	}
	return e
}

// put stores e as the newest entry, making room first: expired entries go, then the oldest.
func (m *MemoryStore) put(e *memoryEntry, now time.Time) {
	if el, ok := m.entries[e.key]; ok {
		m.order.Remove(el)
		delete(m.entries, e.key)
	}
	// A full sweep is O(entries): at most once a second, so a store kept full by traffic pays it
	// rarely; between sweeps the oldest entry goes.
	if m.order.Len() >= m.maxEntries && now.Sub(m.swept) >= time.Second {
		m.swept = now
		m.expire(now)
	}
	for m.order.Len() >= m.maxEntries {
		oldest := m.order.Front()
		m.order.Remove(oldest)
		delete(m.entries, oldest.Value.(*memoryEntry).key)
	}
	m.entries[e.key] = m.order.PushBack(e)
}

func (m *MemoryStore) expire(now time.Time) {
	for el := m.order.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*memoryEntry); !now.Before(e.expires) {
			m.order.Remove(el)
			delete(m.entries, e.key)
		}
		el = next
	}
}

// IdempotencyOptions configure Idempotent; zero values mean the defaults.
type IdempotencyOptions struct {
	// Wait bounds how long a retry waits for a run in progress before it is answered 409 (default
	// 5 s; negative: answer 409 at once).
	Wait time.Duration
	// Lease is how long a claim holds; a crashed run's claim expires after it (default 60 s).
	Lease time.Duration
	// MaxBody is the largest response body stored (default 64 KiB); a larger one is sent but not
	// stored, so a retry runs the handler again.
	MaxBody int
	// RefuseOnStoreError answers 503 when the store fails. By default the request is processed
	// unguarded and an error logged: a duplicate is better than a lost webhook.
	RefuseOnStoreError bool
	// PollInterval is the time between looks at the store while waiting (default 50 ms).
	PollInterval time.Duration
	// Logger receives the log lines (default slog.Default()).
	Logger *slog.Logger
}

func (o IdempotencyOptions) withDefaults() IdempotencyOptions {
	if o.Wait == 0 {
		o.Wait = DefaultIdempotencyWait
	}
	if o.Lease <= 0 {
		o.Lease = DefaultIdempotencyLease
	}
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultIdempotencyBody
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 50 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Idempotent answers Twilio's retries once. It must run inside Middleware, which verifies the
// request (only verified requests touch the store): the first delivery claims the key
// (DeliveryKey of VerifiedFrom's ReplayKey and the I-Twilio-Idempotency-Token header), runs next and
// stores its status, content type and body; a retry gets that response (with Idempotent-Replayed:
// true) and next does not run; a retry while the first run is going waits up to Wait, then gets 409.
// A panic or a 5xx stores nothing, so the retry runs next again. A request without the token header
// is passed through unguarded (counted in a debug log).
func Idempotent(store IdempotencyStore, opts IdempotencyOptions) func(http.Handler) http.Handler {
	opts = opts.withDefaults()
	var unguarded atomic.Int64
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			verified, ok := VerifiedFrom(r.Context())
			if !ok {
				opts.Logger.Warn("twilio webhook without a verified request in its context: put Idempotent inside twiliosig.Middleware; handled without retry protection")
				next.ServeHTTP(w, r)
				return
			}
			token := r.Header.Get(IdempotencyTokenHeader)
			if token == "" {
				opts.Logger.Debug("twilio webhook without "+IdempotencyTokenHeader+": handled without retry protection",
					"so_far", unguarded.Add(1))
				next.ServeHTTP(w, r)
				return
			}
			serveOnce(w, r, next, store, opts, DeliveryKey(verified.ReplayKey, token))
		})
	}
}

func serveOnce(w http.ResponseWriter, r *http.Request, next http.Handler, store IdempotencyStore, opts IdempotencyOptions, key string) {
	ctx := r.Context()
	owner := newOwner()
	deadline := time.Now().Add(opts.Wait)
	for {
		state, stored, err := store.Claim(ctx, key, owner, opts.Lease)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return // the client is gone
			}
			storeFailed(opts, "claim", err, key)
			if opts.RefuseOnStoreError {
				plain(w, http.StatusServiceUnavailable, "retry store unavailable; retry later\n")
			} else {
				next.ServeHTTP(w, r)
			}
			return
		case state == ClaimOurs:
			runAndStore(w, r, next, store, opts, key, owner)
			return
		case state == ClaimDone:
			opts.Logger.Info("twilio webhook retry answered with the stored response", "key", key)
			replay(w, stored)
			return
		case !time.Now().Before(deadline):
			opts.Logger.Warn("twilio webhook retry refused: 409 the first delivery is still being handled", "key", key)
			plain(w, http.StatusConflict, "this delivery is still being handled; retry later\n")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(opts.PollInterval):
		}
	}
}

func runAndStore(w http.ResponseWriter, r *http.Request, next http.Handler, store IdempotencyStore, opts IdempotencyOptions, key, owner string) {
	// Store calls after the handler must not fail because the client hung up.
	ctx := context.WithoutCancel(r.Context())
	rec := &recorder{ResponseWriter: w, max: opts.MaxBody}
	release := func() {
		if _, err := store.Release(ctx, key, owner); err != nil {
			storeFailed(opts, "release", err, key)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			release()
			panic(p)
		}
	}()
	next.ServeHTTP(rec, r)
	resp, reason := rec.stored()
	switch {
	case reason != "":
		opts.Logger.Warn("twilio webhook response not stored: "+reason+"; a retry runs the handler again", "key", key)
		release()
	case resp.Status >= 500:
		release() // a failure: Twilio's retry must run the handler again
	default:
		done, err := store.Complete(ctx, key, owner, resp)
		if err != nil {
			storeFailed(opts, "complete", err, key)
		} else if !done {
			opts.Logger.Warn("twilio webhook response not stored: the claim expired (handler slower than the lease) and another run took it",
				"key", key, "lease", opts.Lease)
		}
	}
}

func storeFailed(opts IdempotencyOptions, op string, err error, key string) {
	action := "processed unguarded"
	switch {
	case op != "claim":
		action = "the handler's response was sent but not stored"
	case opts.RefuseOnStoreError:
		action = "answered 503"
	}
	opts.Logger.Error("twilio webhook retry store failed ("+op+"): "+err.Error()+"; "+action, "key", key)
}

func newOwner() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b[:])
}

func replay(w http.ResponseWriter, s StoredResponse) {
	w.Header().Set(IdempotentReplayedHeader, "true")
	send(w, s)
}

func plain(w http.ResponseWriter, status int, text string) {
	send(w, StoredResponse{Status: status, ContentType: "text/plain; charset=utf-8", Body: []byte(text)})
}

func send(w http.ResponseWriter, s StoredResponse) {
	h := w.Header()
	if s.ContentType != "" {
		h.Set("Content-Type", s.ContentType)
	}
	h.Set("Content-Length", strconv.Itoa(len(s.Body)))
	w.WriteHeader(s.Status)
	_, _ = w.Write(s.Body)
}

// recorder passes the handler's response through and keeps a copy of it, up to max body bytes.
type recorder struct {
	http.ResponseWriter
	max         int
	status      int
	contentType string
	typeSet     bool // the handler set (or deliberately removed) Content-Type
	body        []byte
	overflow    bool
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 && code >= 200 {
		rec.status = code
		values, set := rec.Header()["Content-Type"]
		rec.typeSet = set
		if len(values) > 0 {
			rec.contentType = values[0]
		}
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	if !rec.overflow {
		if len(rec.body)+len(p) > rec.max {
			rec.overflow, rec.body = true, nil
		} else {
			rec.body = append(rec.body, p...)
		}
	}
	return rec.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (Flush, deadlines).
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// stored is the response to keep, or why it cannot be kept.
func (rec *recorder) stored() (StoredResponse, string) {
	if rec.overflow {
		return StoredResponse{}, "body over MaxBody=" + strconv.Itoa(rec.max) + " bytes"
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK // a handler that wrote nothing: net/http sends 200
	}
	contentType := rec.contentType
	if !rec.typeSet && len(rec.body) > 0 {
		contentType = http.DetectContentType(rec.body) // what net/http sent for it
	}
	return StoredResponse{Status: status, ContentType: contentType, Body: rec.body}, ""
}
