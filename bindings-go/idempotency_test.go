package twiliosig_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/idempotencytest"
)

func memoryFleet(store *twiliosig.MemoryStore) idempotencytest.Fleet {
	return idempotencytest.Fleet{
		Store: store,
		Keys:  store.Len,
		TTLs:  store.TTLs,
	}
}

func TestMemoryStoreContract(t *testing.T) {
	idempotencytest.TestStore(t, twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{}))
}

func TestIdempotentWithTheMemoryStore(t *testing.T) {
	idempotencytest.TestMiddleware(t, memoryFleet(twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{})))
}

// idempotencyVectors is tests/vectors/idempotency.json, which every face's tests read: next to
// $TWS_VECTORS (set by the Makefile, which makes a missing file a failure) or, in a checkout,
// ../tests/vectors. A copy of the module on its own has neither, and skips.
type idempotencyVectors struct {
	DeliveryKey []struct {
		ReplayKeyHex string `json:"replay_key_hex"`
		Token        string `json:"token"`
		Key          string `json:"key"`
	} `json:"delivery_key"`
	Encode []struct {
		Name          string      `json:"name"`
		Status        int         `json:"status"`
		Headers       [][2]string `json:"headers"`
		StoredHeaders [][2]string `json:"stored_headers"`
		BodyHex       string      `json:"body_hex"`
		EncodedHex    string      `json:"encoded_hex"`
	} `json:"encode"`
	DecodeV1 []struct {
		Name          string      `json:"name"`
		EncodedHex    string      `json:"encoded_hex"`
		Status        int         `json:"status"`
		StoredHeaders [][2]string `json:"stored_headers"`
		BodyHex       string      `json:"body_hex"`
	} `json:"decode_v1"`
	Malformed []struct {
		Name       string `json:"name"`
		EncodedHex string `json:"encoded_hex"`
	} `json:"malformed"`
}

func loadIdempotencyVectors(t *testing.T) idempotencyVectors {
	t.Helper()
	path := "../tests/vectors/idempotency.json"
	if signatures := os.Getenv("TWS_VECTORS"); signatures != "" {
		path = filepath.Join(filepath.Dir(signatures), "idempotency.json")
	} else if _, err := os.Stat(path); err != nil {
		t.Skip("the shared test vectors are not here (set TWS_VECTORS): a copy of the module on its own")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v idempotencyVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.DeliveryKey) == 0 || len(v.Encode) == 0 || len(v.DecodeV1) == 0 || len(v.Malformed) == 0 {
		t.Fatalf("%s: a section is empty", path)
	}
	return v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// latin1 is a vector's header value as the bytes sent: JSON holds them as code points 0-255.
func latin1(t *testing.T, s string) string {
	t.Helper()
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			t.Fatalf("%q is not latin-1", s)
		}
		out = append(out, byte(r))
	}
	return string(out)
}

func lines(t *testing.T, pairs [][2]string) []twiliosig.HeaderLine {
	var out []twiliosig.HeaderLine
	for _, p := range pairs {
		out = append(out, twiliosig.HeaderLine{Name: p[0], Value: latin1(t, p[1])})
	}
	return out
}

// The delivery key and the stored layout are every face's (tests/vectors/idempotency.json), so a
// Go instance and a Python one can share one Redis.
func TestDeliveryKeyAndStoredLayoutFollowTheSharedVectors(t *testing.T) {
	vectors := loadIdempotencyVectors(t)
	for _, v := range vectors.DeliveryKey {
		var replayKey [32]byte
		if n := copy(replayKey[:], unhex(t, v.ReplayKeyHex)); n != 32 {
			t.Fatalf("replay key of %d bytes", n)
		}
		if got := twiliosig.DeliveryKey(replayKey, v.Token); got != v.Key {
			t.Errorf("DeliveryKey(%s, %q) = %s, want %s", v.ReplayKeyHex, v.Token, got, v.Key)
		}
	}
	for _, v := range vectors.Encode {
		// As a handler sends it: header lines in its order, through the same selection the
		// middleware makes of a real response.
		header := http.Header{}
		for _, line := range v.Headers {
			header.Add(line[0], latin1(t, line[1]))
		}
		resp := twiliosig.NewStoredResponse(v.Status, header, unhex(t, v.BodyHex))
		if want := lines(t, v.StoredHeaders); !slices.Equal(resp.Header, want) {
			t.Errorf("%s: stored lines %q, want %q", v.Name, resp.Header, want)
		}
		data, err := resp.MarshalBinary()
		if err != nil || hex.EncodeToString(data) != v.EncodedHex {
			t.Errorf("%s: MarshalBinary = %x, %v; want %s", v.Name, data, err, v.EncodedHex)
		}
		// The lines given in the handler's order and case encode the same (MarshalBinary sorts).
		unsorted := twiliosig.StoredResponse{Status: v.Status, Header: lines(t, v.Headers), Body: unhex(t, v.BodyHex)}
		if data, err := unsorted.MarshalBinary(); err != nil || hex.EncodeToString(data) != v.EncodedHex {
			t.Errorf("%s: MarshalBinary of the unsorted lines = %x, %v", v.Name, data, err)
		}
		var back twiliosig.StoredResponse
		if err := back.UnmarshalBinary(unhex(t, v.EncodedHex)); err != nil || back.Status != v.Status ||
			!slices.Equal(back.Header, lines(t, v.StoredHeaders)) || !bytes.Equal(back.Body, unhex(t, v.BodyHex)) {
			t.Errorf("%s: UnmarshalBinary = %+v, %v", v.Name, back, err)
		}
	}
	for _, v := range vectors.DecodeV1 {
		var back twiliosig.StoredResponse
		if err := back.UnmarshalBinary(unhex(t, v.EncodedHex)); err != nil || back.Status != v.Status ||
			!slices.Equal(back.Header, lines(t, v.StoredHeaders)) || !bytes.Equal(back.Body, unhex(t, v.BodyHex)) {
			t.Errorf("%s: UnmarshalBinary = %+v, %v", v.Name, back, err)
		}
		// Read, never written: encoding it again gives version 2.
		if data, err := back.MarshalBinary(); err != nil || len(data) < 2 || data[0] != 0xff || data[1] != 0x02 {
			t.Errorf("%s: re-encoded as %x, %v", v.Name, data, err)
		}
	}
	for _, v := range vectors.Malformed {
		var back twiliosig.StoredResponse
		if err := back.UnmarshalBinary(unhex(t, v.EncodedHex)); err == nil {
			t.Errorf("%s: UnmarshalBinary accepted %s as %+v", v.Name, v.EncodedHex, back)
		}
	}
	for _, bad := range []twiliosig.StoredResponse{
		{Status: 42}, {Status: 1000},
		{Status: 200, Header: []twiliosig.HeaderLine{{Name: "", Value: "x"}}},
		{Status: 200, Header: []twiliosig.HeaderLine{{Name: "bad name", Value: "x"}}},
		{Status: 200, Header: []twiliosig.HeaderLine{{Name: "x-big", Value: strings.Repeat("v", 0x10000)}}},
	} {
		if _, err := bad.MarshalBinary(); err == nil {
			t.Errorf("MarshalBinary accepted %d %q", bad.Status, bad.Header)
		}
	}
}

// What is stored of a response: the end-to-end lines, not the hop-by-hop ones (nor those the
// Connection header names), Date, Content-Length or Idempotent-Replayed.
func TestNewStoredResponseLeavesOutWhatAReplayMustNotRepeat(t *testing.T) {
	header := http.Header{}
	for _, line := range [][2]string{
		{"Connection", "keep-alive, X-Hop"}, {"Keep-Alive", "timeout=5"}, {"Proxy-Authenticate", "Basic"},
		{"Proxy-Authorization", "x"}, {"Proxy-Connection", "close"}, {"TE", "trailers"}, {"Trailer", "X-T"},
		{"Transfer-Encoding", "chunked"}, {"Upgrade", "h2c"}, {"X-Hop", "1"}, {"Date", "Sun, 06 Dec 2026 18:00:00 GMT"},
		{"Content-Length", "3"}, {"Idempotent-Replayed", "true"},
		{"Location", "/next"}, {"Set-Cookie", "a=1"}, {"Set-Cookie", "b=2"}, {"Cache-Control", "no-store"},
	} {
		header.Add(line[0], line[1])
	}
	header["bad name"] = []string{"never sent by net/http"}
	got := twiliosig.NewStoredResponse(302, header, nil).Header
	want := []twiliosig.HeaderLine{{Name: "cache-control", Value: "no-store"}, {Name: "location", Value: "/next"},
		{Name: "set-cookie", Value: "a=1"}, {Name: "set-cookie", Value: "b=2"}}
	if !slices.Equal(got, want) {
		t.Fatalf("stored %q\nwant %q", got, want)
	}
}

// A full store never evicts a delivery still running: expired entries go first, then the oldest
// stored responses; with only running deliveries left a claim fails (the store-failure policy).
func TestMemoryStoreNeverEvictsALiveClaim(t *testing.T) {
	ctx := context.Background()
	store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{MaxEntries: 3})
	resp := twiliosig.StoredResponse{Status: 200}
	for _, k := range []string{"done0", "done1"} {
		store.Claim(ctx, k, "a", time.Minute)
		if ok, err := store.Complete(ctx, k, "a", resp); !ok || err != nil {
			t.Fatalf("complete %s: %v %v", k, ok, err)
		}
	}
	claim := func(k string) error {
		t.Helper()
		s, _, err := store.Claim(ctx, k, "a", time.Minute)
		if err == nil && s != twiliosig.ClaimOurs {
			t.Fatalf("claim %s: %v", k, s)
		}
		return err
	}
	// Running: run0; stored: done0, done1. Each new claim evicts the oldest stored response.
	for _, k := range []string{"run0", "run1", "run2"} {
		if err := claim(k); err != nil {
			t.Fatalf("claim %s: %v", k, err)
		}
	}
	for k, present := range map[string]bool{"done0": false, "done1": false, "run0": true, "run1": true, "run2": true} {
		if _, ok := store.TTL(k); ok != present {
			t.Fatalf("%s present=%v", k, ok)
		}
	}
	// Only running deliveries: the next claim fails and evicts nothing.
	err := claim("run3")
	if !errors.Is(err, twiliosig.ErrMemoryStoreFull) || err.Error() != "memory store full: 3 deliveries in flight" {
		t.Fatalf("claim in a store full of running deliveries: %v", err)
	}
	if store.Len() != 3 {
		t.Fatalf("Len = %d", store.Len())
	}
	// A finished run makes room again (its response is the oldest stored one).
	if ok, _ := store.Complete(ctx, "run0", "a", resp); !ok {
		t.Fatal("complete run0")
	}
	if err := claim("run3"); err != nil {
		t.Fatalf("claim after a run finished: %v", err)
	}
	if _, ok := store.TTL("run0"); ok {
		t.Fatal("run0's response was kept instead of making room")
	}
	// An expired entry goes before a stored response, however old; and an expired claim (a crashed
	// run) makes room in a store of claims.
	store = twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{MaxEntries: 2})
	store.Claim(ctx, "old", "a", time.Minute)
	store.Complete(ctx, "old", "a", resp)
	store.Claim(ctx, "short", "a", 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if err := claim("new"); err != nil {
		t.Fatal(err)
	}
	if _, ok := store.TTL("old"); !ok {
		t.Fatal("a live entry was evicted before an expired one")
	}
	store = twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{MaxEntries: 2})
	store.Claim(ctx, "crashed", "a", 50*time.Millisecond)
	store.Claim(ctx, "running", "a", time.Minute)
	time.Sleep(100 * time.Millisecond)
	if err := claim("new"); err != nil {
		t.Fatalf("an expired claim did not make room: %v", err)
	}
}

// The same owner claiming again holds the key (a store client re-sending a claim that succeeded).
func TestMemoryStoreClaimByItsOwnOwnerIsOurs(t *testing.T) {
	ctx := context.Background()
	store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{})
	for i, want := range []twiliosig.ClaimState{twiliosig.ClaimOurs, twiliosig.ClaimOurs} {
		if s, _, err := store.Claim(ctx, "k", "me", time.Minute); err != nil || s != want {
			t.Fatalf("claim %d: %v %v", i, s, err)
		}
	}
	if s, _, _ := store.Claim(ctx, "k", "other", time.Minute); s != twiliosig.ClaimBusy {
		t.Fatalf("another owner: %v", s)
	}
}

func TestMemoryStoreResponsesExpireAfterTheTTL(t *testing.T) {
	ctx := context.Background()
	store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{TTL: 500 * time.Millisecond})
	store.Claim(ctx, "k", "a", time.Minute)
	if ok, _ := store.Complete(ctx, "k", "a", twiliosig.StoredResponse{Status: 200}); !ok {
		t.Fatal("Complete failed")
	}
	if ttl, ok := store.TTL("k"); !ok || ttl > 500*time.Millisecond {
		t.Fatalf("TTL = %v, %v", ttl, ok)
	}
	time.Sleep(700 * time.Millisecond)
	if s, _, _ := store.Claim(ctx, "k", "b", time.Minute); s != twiliosig.ClaimOurs {
		t.Fatalf("claim after the TTL: %v", s)
	}
}

func TestMemoryStoreClaimsAreExclusiveAcrossGoroutines(t *testing.T) {
	store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ours := 0
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, _ := store.Claim(context.Background(), "k", "owner"+string(rune('a'+i)), time.Minute)
			if s == twiliosig.ClaimOurs {
				mu.Lock()
				ours++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ours != 1 {
		t.Fatalf("%d claims won, want 1", ours)
	}
}

// brokenStore is a backend that is down.
type brokenStore struct{}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (brokenStore) Claim(context.Context, string, string, time.Duration) (twiliosig.ClaimState, twiliosig.StoredResponse, error) {
	return 0, twiliosig.StoredResponse{}, errDown
}
func (brokenStore) Complete(context.Context, string, string, twiliosig.StoredResponse) (bool, error) {
	return false, errDown
}
func (brokenStore) Release(context.Context, string, string) (bool, error) { return false, errDown }

func TestAFailingStoreProcessesByDefaultAndLogsAnError(t *testing.T) {
	h := idempotencytest.NewHarness()
	app := h.NewApp(t, brokenStore{}, twiliosig.IdempotencyOptions{})
	token := idempotencytest.NewToken()
	r := idempotencytest.Post(t, app, "/voice", token, false)
	if r.Err != nil || r.Status != 200 || h.Runs(token) != 1 {
		t.Fatalf("got %d (%v), runs %d", r.Status, r.Err, h.Runs(token))
	}
	if !strings.Contains(app.Log.String(), "level=ERROR") || !strings.Contains(app.Log.String(), "twilio webhook retry store failed (claim): "+errDown.Error()+"; processed unguarded") {
		t.Fatalf("log: %s", app.Log.String())
	}
}

func TestAFailingStoreAnswers503WithRefuseOnStoreError(t *testing.T) {
	h := idempotencytest.NewHarness()
	app := h.NewApp(t, brokenStore{}, twiliosig.IdempotencyOptions{RefuseOnStoreError: true})
	token := idempotencytest.NewToken()
	r := idempotencytest.Post(t, app, "/voice", token, false)
	if r.Err != nil || r.Status != http.StatusServiceUnavailable || h.Runs(token) != 0 {
		t.Fatalf("got %d (%v), runs %d", r.Status, r.Err, h.Runs(token))
	}
}

func TestIdempotentOutsideMiddlewarePassesThroughAndWarns(t *testing.T) {
	var logs idempotencytest.SyncBuffer
	store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{})
	runs := 0
	h := twiliosig.Idempotent(store, twiliosig.IdempotencyOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runs++ }))
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, "/voice", nil)
		req.Header.Set(twiliosig.IdempotencyTokenHeader, "tok")
		h.ServeHTTP(discard{}, req)
	}
	if runs != 2 || store.Len() != 0 || !strings.Contains(logs.String(), "put Idempotent inside twiliosig.Middleware") {
		t.Fatalf("runs %d, keys %d, log %s", runs, store.Len(), logs.String())
	}
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

func ExampleIdempotent() {
	validator, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte("auth token")})
	if err != nil {
		panic(err)
	}
	defer validator.Close()
	runs := 0
	voice := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs++
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, "<Response><Say>run %d</Say></Response>", runs)
	})
	// One instance: the in-memory store. Several: redisstore.New(redisClient, redisstore.Options{}).
	store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{})
	handler := twiliosig.Middleware(validator, twiliosig.Options{BaseURL: "https://hooks.example.com"})(
		twiliosig.Idempotent(store, twiliosig.IdempotencyOptions{})(voice))

	// Twilio's first delivery, then its retry (same I-Twilio-Idempotency-Token).
	body := "CallSid=CA123&Digits=1"
	signature, _ := validator.Sign("https://hooks.example.com/voice", []byte(body), "")
	for range 2 {
		req := httptest.NewRequest(http.MethodPost, "/voice", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", signature)
		req.Header.Set(twiliosig.IdempotencyTokenHeader, "RC-delivery-1")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get(twiliosig.IdempotentReplayedHeader) == "true", rec.Body.String())
	}
	fmt.Println("handler runs:", runs)
	// Output:
	// 200 false <Response><Say>run 1</Say></Response>
	// 200 true <Response><Say>run 1</Say></Response>
	// handler runs: 1
}

// Issue 24 item 4, through real servers: a full memory store keeps its running deliveries (a retry of
// one still waits for it, then 409, instead of running beside it); a new delivery finds the store
// full, which is a store failure: processed unguarded and logged by default, 503 with
// RefuseOnStoreError.
func TestAMemoryStoreFullOfRunningDeliveriesIsAStoreFailure(t *testing.T) {
	store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{MaxEntries: 2})
	h := idempotencytest.NewHarness()
	process := h.NewApp(t, store, twiliosig.IdempotencyOptions{})
	refuse := h.NewApp(t, store, twiliosig.IdempotencyOptions{RefuseOnStoreError: true})
	running := []string{idempotencytest.NewToken(), idempotencytest.NewToken()}
	defer func() { // however the test ends, the blocked handlers finish (the servers' Close waits for them)
		for _, token := range running {
			h.Open(token)
		}
	}()
	firsts := make(chan idempotencytest.Reply, len(running))
	for _, token := range running {
		go func() { firsts <- idempotencytest.Post(t, process, "/block", token, false) }()
	}
	for deadline := time.Now().Add(10 * time.Second); h.Runs(running[0])+h.Runs(running[1]) < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow deliveries did not start")
		}
	}
	// A retry of a running delivery: not evicted, so it waits, then 409; the handler does not run again.
	if r := idempotencytest.Post(t, refuse, "/block", running[0], false); r.Err != nil || r.Status != http.StatusConflict {
		t.Fatalf("retry of a running delivery: %d %v", r.Status, r.Err)
	}
	// New deliveries: the store is full of running ones.
	token := idempotencytest.NewToken()
	if r := idempotencytest.Post(t, process, "/voice", token, false); r.Err != nil || r.Status != 200 || r.Replayed || h.Runs(token) != 1 {
		t.Fatalf("default policy: %d %v, runs %d", r.Status, r.Err, h.Runs(token))
	}
	if want := "twilio webhook retry store failed (claim): memory store full: 2 deliveries in flight; processed unguarded"; !strings.Contains(process.Log.String(), want) {
		t.Fatalf("log %s\nwant %q", process.Log.String(), want)
	}
	token = idempotencytest.NewToken()
	if r := idempotencytest.Post(t, refuse, "/voice", token, false); r.Err != nil || r.Status != http.StatusServiceUnavailable || h.Runs(token) != 0 {
		t.Fatalf("RefuseOnStoreError: %d %v, runs %d", r.Status, r.Err, h.Runs(token))
	}
	for _, token := range running {
		h.Open(token)
	}
	for range running {
		if r := <-firsts; r.Err != nil || r.Status != 200 {
			t.Fatalf("a running delivery: %d %v", r.Status, r.Err)
		}
	}
	for _, token := range running {
		if h.Runs(token) != 1 {
			t.Fatalf("a running delivery's handler ran %d times", h.Runs(token))
		}
		if r := idempotencytest.Post(t, process, "/block", token, false); r.Status != 200 || !r.Replayed {
			t.Fatalf("retry after it finished: %d replayed=%v", r.Status, r.Replayed)
		}
	}
}
