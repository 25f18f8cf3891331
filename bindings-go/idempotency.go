package twiliosig

import (
	"bytes"
	"container/list"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
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

// StoredResponse is what is kept of a handler's response and sent again to a retry: its status, its
// end-to-end header lines and its body.
type StoredResponse struct {
	Status int
	// Header holds the header lines to replay, names lower-cased, sorted by name (the values of one
	// name in the order the handler sent them). NewStoredResponse leaves out the lines a replay must
	// not repeat (hop-by-hop ones, Date, Content-Length, Idempotent-Replayed).
	Header []HeaderLine
	Body   []byte
}

// HeaderLine is one stored response header line.
type HeaderLine struct {
	Name  string // lower-case ASCII
	Value string // the bytes as sent
}

// NewStoredResponse is the response a handler sent, as stores keep it: every header line of header
// except the hop-by-hop ones (Connection, Keep-Alive, Proxy-Authenticate, Proxy-Authorization,
// Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade and any header the Connection header
// names), Date, Content-Length and Idempotent-Replayed; names lower-cased and sorted, the values of
// one name kept in order. A name net/http would not send (not a valid token) is left out too.
func NewStoredResponse(status int, header http.Header, body []byte) StoredResponse {
	skip := map[string]bool{}
	for _, value := range header.Values("Connection") {
		for item := range strings.SplitSeq(value, ",") {
			if item = strings.Trim(item, " \t"); item != "" {
				skip[strings.ToLower(item)] = true
			}
		}
	}
	var lines []HeaderLine
	for name, values := range header {
		lower := strings.ToLower(name)
		if skip[lower] || notReplayed[lower] || !isToken(name) {
			continue
		}
		for _, value := range values {
			lines = append(lines, HeaderLine{lower, value})
		}
	}
	// Distinct map keys can lower-case to one name ("X-A" and "x-a" set directly in the map); a
	// stable sort keeps each key's values in order.
	slices.SortStableFunc(lines, func(a, b HeaderLine) int { return strings.Compare(a.Name, b.Name) })
	return StoredResponse{Status: status, Header: lines, Body: body}
}

// notReplayed are the lower-cased names a stored response never keeps.
var notReplayed = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-authenticate": true, "proxy-authorization": true,
	"proxy-connection": true, "te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
	"date": true, "content-length": true, "idempotent-replayed": true,
}

// isToken: an HTTP field name (RFC 9110 tchar), which is all net/http writes.
func isToken(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// ContentType is the first content-type line's value ("" when there is none).
func (s StoredResponse) ContentType() string {
	for _, line := range s.Header {
		if line.Name == "content-type" {
			return line.Value
		}
	}
	return ""
}

// The stored layout's version 2 starts with these bytes; version 1 started with the status (100-999:
// a first byte of 0x00-0x03).
const (
	layoutMark = 0xff
	layoutV2   = 0x02
)

var (
	errUnstorable = errors.New("twiliosig: response cannot be stored")
	errMalformed  = errors.New("twiliosig: stored response is malformed")
)

// MarshalBinary encodes the response as stores keep it, in the layout every face shares (version 2,
// docs/contract.md#retries): 0xFF 0x02, the status and the number of header lines as big-endian
// 16-bit numbers, then per line the name's length, the name (lower-cased), the value's length, the
// value, and then the body. Lines are sorted by name, the values of one name kept in order.
func (s StoredResponse) MarshalBinary() ([]byte, error) {
	if s.Status < 100 || s.Status > 999 || len(s.Header) > 0xffff {
		return nil, errUnstorable
	}
	lines := slices.Clone(s.Header)
	size := 6 + len(s.Body)
	for i, line := range lines {
		if len(line.Name) == 0 || len(line.Name) > 0xffff || len(line.Value) > 0xffff || !isToken(line.Name) {
			return nil, errUnstorable
		}
		lines[i].Name = strings.ToLower(line.Name)
		size += 4 + len(line.Name) + len(line.Value)
	}
	slices.SortStableFunc(lines, func(a, b HeaderLine) int { return strings.Compare(a.Name, b.Name) })
	out := make([]byte, 0, size)
	out = append(out, layoutMark, layoutV2)
	out = binary.BigEndian.AppendUint16(out, uint16(s.Status))
	out = binary.BigEndian.AppendUint16(out, uint16(len(lines)))
	for _, line := range lines {
		out = binary.BigEndian.AppendUint16(out, uint16(len(line.Name)))
		out = append(out, line.Name...)
		out = binary.BigEndian.AppendUint16(out, uint16(len(line.Value)))
		out = append(out, line.Value...)
	}
	return append(out, s.Body...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, and version 1 (status, content-type length,
// content type, body: its content type becomes a content-type line), which is read but never
// written. It refuses anything else: empty or truncated data, an unknown version, a status outside
// 100-999, a line running past the end.
func (s *StoredResponse) UnmarshalBinary(data []byte) error {
	if len(data) >= 2 && data[0] == layoutMark {
		if data[1] != layoutV2 {
			return fmt.Errorf("twiliosig: stored response has an unknown layout version %d", data[1])
		}
		return s.unmarshalV2(data[2:])
	}
	if len(data) < 4 {
		return errors.New("twiliosig: stored response is truncated")
	}
	status, length := int(binary.BigEndian.Uint16(data)), int(binary.BigEndian.Uint16(data[2:]))
	if len(data) < 4+length || status < 100 || status > 999 {
		return errMalformed
	}
	var header []HeaderLine
	if length > 0 {
		header = []HeaderLine{{"content-type", string(data[4 : 4+length])}}
	}
	*s = StoredResponse{Status: status, Header: header, Body: bytes.Clone(data[4+length:])}
	return nil
}

func (s *StoredResponse) unmarshalV2(data []byte) error {
	next := func(n int) ([]byte, bool) {
		if len(data) < n {
			return nil, false
		}
		field := data[:n]
		data = data[n:]
		return field, true
	}
	u16 := func() (int, bool) {
		b, ok := next(2)
		if !ok {
			return 0, false
		}
		return int(binary.BigEndian.Uint16(b)), true
	}
	status, ok1 := u16()
	count, ok2 := u16()
	if !ok1 || !ok2 {
		return errors.New("twiliosig: stored response is truncated")
	}
	if status < 100 || status > 999 {
		return errMalformed
	}
	header := make([]HeaderLine, 0, min(count, len(data)/4))
	for range count {
		nameLen, ok := u16()
		name, ok2 := next(nameLen)
		valueLen, ok3 := u16()
		value, ok4 := next(valueLen)
		if !ok || !ok2 || !ok3 || !ok4 {
			return errMalformed
		}
		header = append(header, HeaderLine{string(name), string(value)})
	}
	if len(header) == 0 {
		header = nil
	}
	*s = StoredResponse{Status: status, Header: header, Body: bytes.Clone(data)}
	return nil
}

// ClaimState is what IdempotencyStore.Claim found.
type ClaimState int

const (
	// ClaimOurs: the key was free, or already held by this very owner, and the caller holds it now;
	// it must Complete or Release it.
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
	// response (ClaimDone) or another run in progress (ClaimBusy). A key already held by owner is
	// ClaimOurs: a client that re-sends a claim which had succeeded (go-redis retrying after a read
	// timeout) must not find the first delivery busy with itself. A store that cannot take the
	// claim (unreachable, full) returns an error: the store-failure policy decides.
	Claim(ctx context.Context, key, owner string, lease time.Duration) (ClaimState, StoredResponse, error)
	// Complete stores resp under key with the TTL if owner still holds the key (false if not).
	Complete(ctx context.Context, key, owner string, resp StoredResponse) (bool, error)
	// Release frees key if owner still holds it (false if not).
	Release(ctx context.Context, key, owner string) (bool, error)
}

// MemoryStoreOptions configure NewMemoryStore; zero values mean the defaults.
type MemoryStoreOptions struct {
	TTL time.Duration // how long a stored response is kept (default 24 h)
	// MaxEntries bounds the keys kept (default 10,000). When full, expired entries go first, then
	// the oldest stored responses; a delivery still running is never evicted (its retry would run
	// the handler again beside it), so with only running deliveries left a new claim fails
	// (ErrMemoryStoreFull) and the store-failure policy decides (IdempotencyOptions.RefuseOnStoreError).
	MaxEntries int
}

// ErrMemoryStoreFull: every entry of a MemoryStore is a delivery still running (the error says how
// many), so a new claim cannot be taken.
var ErrMemoryStoreFull = errors.New("memory store full")

// MemoryStore keeps deliveries in this process: the store for one instance. Safe for concurrent use;
// memory is bounded by MaxEntries. Several instances need a shared store (see the redisstore module).
type MemoryStore struct {
	ttl        time.Duration
	maxEntries int
	mu         sync.Mutex
	entries    map[string]*list.Element // of *memoryEntry, in claims or responses
	claims     *list.List               // running deliveries, oldest write at the front
	responses  *list.List               // stored responses, oldest write at the front
	swept      time.Time                // last full sweep of expired entries
}

type memoryEntry struct {
	key     string
	expires time.Time
	owner   string // of a claim; "" once a response is stored
	resp    StoredResponse
}

func (e *memoryEntry) list(m *MemoryStore) *list.List {
	if e.owner != "" {
		return m.claims
	}
	return m.responses
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
		entries: map[string]*list.Element{}, claims: list.New(), responses: list.New()}
}

// Len is the number of live entries.
func (m *MemoryStore) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(time.Now())
	return len(m.entries)
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
	out := make([]time.Duration, 0, len(m.entries))
	for _, l := range []*list.List{m.claims, m.responses} {
		for el := l.Front(); el != nil; el = el.Next() {
			out = append(out, el.Value.(*memoryEntry).expires.Sub(now))
		}
	}
	return out
}

// Claim implements IdempotencyStore.
func (m *MemoryStore) Claim(_ context.Context, key, owner string, lease time.Duration) (ClaimState, StoredResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if e := m.live(key, now); e != nil {
		switch e.owner {
		case "":
			return ClaimDone, e.resp, nil
		case owner:
			return ClaimOurs, StoredResponse{}, nil
		}
		return ClaimBusy, StoredResponse{}, nil
	}
	if err := m.makeRoom(now); err != nil {
		return 0, StoredResponse{}, err
	}
	m.put(&memoryEntry{key: key, expires: now.Add(lease), owner: owner})
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
	resp.Header = slices.Clone(resp.Header)
	resp.Body = bytes.Clone(resp.Body)
	m.put(&memoryEntry{key: key, expires: now.Add(m.ttl), resp: resp}) // replaces the claim: no room needed
	return true, nil
}

// Release implements IdempotencyStore.
func (m *MemoryStore) Release(_ context.Context, key, owner string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.live(key, time.Now())
	if e == nil || e.owner != owner {
		return false, nil
	}
	m.remove(m.entries[key])
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
		m.remove(el)
		return nil
	}
	return e
}

func (m *MemoryStore) remove(el *list.Element) {
	e := el.Value.(*memoryEntry)
	e.list(m).Remove(el)
	delete(m.entries, e.key)
}

// put stores e as the newest entry of its kind, replacing key's entry if there is one.
func (m *MemoryStore) put(e *memoryEntry) {
	if el, ok := m.entries[e.key]; ok {
		m.remove(el)
	}
	m.entries[e.key] = e.list(m).PushBack(e)
}

// makeRoom frees one place for a new key, or fails when every entry is a running delivery: expired
// entries go first, then the oldest stored response; a live claim is never dropped.
func (m *MemoryStore) makeRoom(now time.Time) error {
	if len(m.entries) < m.maxEntries {
		return nil
	}
	// A full sweep is O(entries): at most once a second, so a store kept full by traffic pays it
	// rarely; between sweeps the expired entries at the front of each list go, then the oldest
	// stored response.
	if now.Sub(m.swept) >= time.Second {
		m.swept = now
		m.expire(now)
	}
	for _, l := range []*list.List{m.claims, m.responses} {
		for len(m.entries) >= m.maxEntries && l.Len() > 0 && !now.Before(l.Front().Value.(*memoryEntry).expires) {
			m.remove(l.Front())
		}
	}
	for len(m.entries) >= m.maxEntries && m.responses.Len() > 0 {
		m.remove(m.responses.Front())
	}
	if len(m.entries) >= m.maxEntries {
		// Only claims are left: one may have expired behind a live one (leases can differ).
		m.swept = now
		m.expire(now)
	}
	if len(m.entries) >= m.maxEntries {
		return fmt.Errorf("%w: %d deliveries in flight", ErrMemoryStoreFull, m.claims.Len())
	}
	return nil
}

func (m *MemoryStore) expire(now time.Time) {
	for _, l := range []*list.List{m.claims, m.responses} {
		for el := l.Front(); el != nil; {
			next := el.Next()
			if !now.Before(el.Value.(*memoryEntry).expires) {
				m.remove(el)
			}
			el = next
		}
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
	// RefuseOnStoreError answers 503 when the store fails (unreachable, or a MemoryStore full of
	// running deliveries). By default the request is processed unguarded and an error logged: a
	// duplicate is better than a lost webhook. Twilio retries only a failed connection, once by
	// default (the #rc/#rp URL fragment overrides change that), so a 503 may be a lost webhook.
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
// stores its status, end-to-end headers (a redirect's Location, each Set-Cookie...) and body; a
// retry gets that response (with Idempotent-Replayed: true) and next does not run; a retry while the
// first run is going waits up to Wait, then gets 409. A panic or a 5xx stores nothing and frees the
// claim, so the retry runs next again; so does a failed Complete, and a request whose client went
// away before next answered anything. A request without the token header, and a WebSocket handshake
// (a stream cannot be replayed), are passed through unguarded (the former counted in a debug log).
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
			if token == "" || isWebSocketUpgrade(r) {
				if token == "" {
					opts.Logger.Debug("twilio webhook without "+IdempotencyTokenHeader+": handled without retry protection",
						"so_far", unguarded.Add(1))
				}
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
			// The claim may have been taken before the error (a reply lost to a timeout, or the
			// client gone mid-call): free it, or a retry would wait for a run that is not coming.
			// Best effort, in the background: a store that is down fails this too (after its client's
			// timeouts, which this request must not wait for twice), and the claim expires with its
			// lease. The owner is this request's alone, so a late release frees nothing else.
			go func() {
				releaseCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.Lease)
				defer cancel()
				_, _ = store.Release(releaseCtx, key, owner)
			}()
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
	case rec.status == 0 && r.Context().Err() != nil:
		// The client went away (or the server is shutting down) and the handler gave up without
		// answering: what would be stored is net/http's empty 200, not the handler's response.
		opts.Logger.Warn("twilio webhook response not stored: the request was cancelled before the handler answered; a retry runs the handler again", "key", key)
		release()
	default:
		done, err := store.Complete(ctx, key, owner, resp)
		if err != nil {
			storeFailed(opts, "complete", err, key)
			release() // not left busy until the lease ends: a retry runs the handler again
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
	send(w, StoredResponse{Status: status, Body: []byte(text),
		Header: []HeaderLine{{"content-type", "text/plain; charset=utf-8"}}})
}

// send writes s: its status, its header lines (replacing any value already set under those names),
// a Content-Length and its body.
func send(w http.ResponseWriter, s StoredResponse) {
	h := w.Header()
	for _, line := range s.Header {
		h.Del(line.Name)
	}
	for _, line := range s.Header {
		h.Add(line.Name, line.Value)
	}
	h.Set("Content-Length", strconv.Itoa(len(s.Body)))
	w.WriteHeader(s.Status)
	_, _ = w.Write(s.Body)
}

// recorder passes the handler's response through and keeps a copy of it, up to max body bytes.
type recorder struct {
	http.ResponseWriter
	max      int
	status   int
	header   http.Header // as it was when the status was written (later changes are not sent)
	body     []byte
	overflow bool
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 && code >= 200 {
		rec.status = code
		rec.header = rec.Header().Clone()
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
	status, header := rec.status, rec.header
	if status == 0 { // a handler that wrote nothing: net/http sends 200 and the header as it is now
		status, header = http.StatusOK, rec.Header().Clone()
	}
	if header == nil {
		header = http.Header{}
	}
	if _, set := header["Content-Type"]; !set && len(rec.body) > 0 {
		header.Set("Content-Type", http.DetectContentType(rec.body)) // what net/http sent for it
	}
	return NewStoredResponse(status, header, rec.body), ""
}
