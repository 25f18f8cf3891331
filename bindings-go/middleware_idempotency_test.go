package twiliosig_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/idempotencytest"
)

// The whole retry suite again, with the store given as Middleware's Options{Idempotency: store}.
func TestMiddlewareOptionsIdempotencyWithTheMemoryStore(t *testing.T) {
	fleet := memoryFleet(twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{}))
	fleet.ViaOptions = true
	idempotencytest.TestMiddleware(t, fleet)
}

func TestMiddlewareOptionsIdempotencyAFailingStoreProcessesOrRefuses(t *testing.T) {
	h := idempotencytest.NewHarness()
	h.ViaOptions = true
	process := h.NewApp(t, brokenStore{}, twiliosig.IdempotencyOptions{})
	token := idempotencytest.NewToken()
	if r := idempotencytest.Post(t, process, "/voice", token, false); r.Err != nil || r.Status != 200 || h.Runs(token) != 1 {
		t.Fatalf("got %d (%v), runs %d", r.Status, r.Err, h.Runs(token))
	}
	// The error went to Options.Logger: IdempotencyOptions.Logger was nil.
	if !strings.Contains(process.Log.String(), "level=ERROR") ||
		!strings.Contains(process.Log.String(), "twilio webhook retry store failed (claim): "+errDown.Error()+"; processed unguarded") {
		t.Fatalf("log: %s", process.Log.String())
	}
	refuse := h.NewApp(t, brokenStore{}, twiliosig.IdempotencyOptions{RefuseOnStoreError: true})
	token = idempotencytest.NewToken()
	if r := idempotencytest.Post(t, refuse, "/voice", token, false); r.Err != nil || r.Status != http.StatusServiceUnavailable || h.Runs(token) != 0 {
		t.Fatalf("got %d (%v), runs %d", r.Status, r.Err, h.Runs(token))
	}
}

// Without Options.Idempotency nothing changes: the same delivery sent twice runs twice, nothing is
// stored and no replay header appears.
func TestMiddlewareWithoutIdempotencyRunsEveryDelivery(t *testing.T) {
	v, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte("auth token")})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	runs := 0
	srv := httptest.NewServer(twiliosig.Middleware(v, twiliosig.Options{BaseURL: "https://hooks.example.com"})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runs++; w.Write([]byte("<Response/>")) })))
	defer srv.Close()
	body := "CallSid=CA1&Digits=1"
	sig, _ := v.Sign("https://hooks.example.com/voice", []byte(body), "")
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/voice", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", sig)
		req.Header.Set(twiliosig.IdempotencyTokenHeader, "RC-one-delivery")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get(twiliosig.IdempotentReplayedHeader) != "" {
			t.Fatalf("got %d, replayed %q", resp.StatusCode, resp.Header.Get(twiliosig.IdempotentReplayedHeader))
		}
	}
	if runs != 2 {
		t.Fatalf("runs = %d, want 2", runs)
	}
}

func ExampleOptions_idempotency() {
	validator, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte("auth token")})
	if err != nil {
		panic(err)
	}
	defer validator.Close()
	runs := 0
	voice := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs++
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte("<Response><Say>Hello</Say></Response>"))
	})
	// One instance: the in-memory store. Several: redisstore.New(redisClient, redisstore.Options{}).
	handler := twiliosig.Middleware(validator, twiliosig.Options{
		BaseURL:     "https://hooks.example.com",
		Idempotency: twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{}),
	})(voice)

	body := "CallSid=CA123&Digits=1"
	signature, _ := validator.Sign("https://hooks.example.com/voice", []byte(body), "")
	var replies [2]*httptest.ResponseRecorder
	for i := range replies { // Twilio's delivery, then its retry (same token)
		req := httptest.NewRequest(http.MethodPost, "/voice", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", signature)
		req.Header.Set("I-Twilio-Idempotency-Token", "RC-delivery-1")
		replies[i] = httptest.NewRecorder()
		handler.ServeHTTP(replies[i], req)
	}
	fmt.Println(replies[1].Code, replies[1].Header().Get("Idempotent-Replayed"),
		bytes.Equal(replies[0].Body.Bytes(), replies[1].Body.Bytes()), "runs:", runs)
	// Output: 200 true true runs: 1
}
