package twiliosig_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/idempotencytest"
)

var replayKey = [32]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31}

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

// The Python package has the same two vectors: both can share one Redis.
func TestDeliveryKeyAndStoredLayoutAreSharedWithPython(t *testing.T) {
	if got := twiliosig.DeliveryKey(replayKey, "RC-token-1"); got != "50537f94494dc537e9a145433ee1b37c1985734938bccf1e934807eeff6c098f" {
		t.Fatalf("DeliveryKey = %s", got)
	}
	if twiliosig.DeliveryKey(replayKey, "RC-token-2") == twiliosig.DeliveryKey(replayKey, "RC-token-1") {
		t.Fatal("the token does not change the key")
	}
	resp := twiliosig.StoredResponse{Status: 200, ContentType: "text/xml", Body: []byte("<Response/>")}
	data, err := resp.MarshalBinary()
	if err != nil || hex.EncodeToString(data) != "00c80008746578742f786d6c3c526573706f6e73652f3e" {
		t.Fatalf("MarshalBinary = %x, %v", data, err)
	}
	var back twiliosig.StoredResponse
	if err := back.UnmarshalBinary(data); err != nil || back.Status != 200 || back.ContentType != "text/xml" || string(back.Body) != "<Response/>" {
		t.Fatalf("UnmarshalBinary = %+v, %v", back, err)
	}
	for _, bad := range []string{"", "00c800", "00c80009746578742f786d6c", "00050000"} {
		raw, _ := hex.DecodeString(bad)
		if err := back.UnmarshalBinary(raw); err == nil {
			t.Fatalf("UnmarshalBinary accepted %q", bad)
		}
	}
	if _, err := (twiliosig.StoredResponse{Status: 42}).MarshalBinary(); err == nil {
		t.Fatal("MarshalBinary accepted status 42")
	}
}

func TestMemoryStoreIsBoundedEvictingExpiredThenOldest(t *testing.T) {
	ctx := context.Background()
	store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{MaxEntries: 3})
	keys := []string{"k0", "k1", "k2", "k3", "k4"}
	for _, k := range keys {
		if s, _, _ := store.Claim(ctx, k, "a", time.Minute); s != twiliosig.ClaimOurs {
			t.Fatalf("claim %s: %v", k, s)
		}
	}
	if store.Len() != 3 {
		t.Fatalf("Len = %d", store.Len())
	}
	for i, k := range keys {
		if _, ok := store.TTL(k); ok != (i >= 2) {
			t.Fatalf("%s present=%v", k, ok)
		}
	}
	// An expired entry goes before a live one, however old.
	store = twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{MaxEntries: 2})
	store.Claim(ctx, "old", "a", time.Minute)
	store.Claim(ctx, "short", "a", 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	store.Claim(ctx, "new", "a", time.Minute)
	if _, ok := store.TTL("old"); !ok {
		t.Fatal("a live entry was evicted before an expired one")
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
