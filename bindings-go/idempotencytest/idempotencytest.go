// Package idempotencytest checks an IdempotencyStore: the store contract (TestStore) and the whole
// retry behaviour through two httptest servers that share the store, each running twiliosig.Middleware
// and twiliosig.Idempotent (TestMiddleware). The in-memory store and the redisstore module run it;
// run it on your own store too.
package idempotencytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
)

const (
	authToken = "12345678901234567890123456789012"
	baseURL   = "https://hooks.example.com" // both instances sit behind it
	body      = "CallSid=CA0123456789abcdef0123456789abcdef&Digits=1&From=%2B15005550006"
	// Wait is how long a retry waits for a run in progress in these servers.
	Wait    = 2 * time.Second
	bigBody = 70 << 10
)

// Fleet describes the store under test to TestMiddleware.
type Fleet struct {
	// Store is shared by the two test servers.
	Store twiliosig.IdempotencyStore
	// Keys counts the keys the store holds (to show a forged request stores nothing).
	Keys func() int
	// TTLs returns the time left on every key the store holds (every one must have a TTL).
	TTLs func() []time.Duration
	// ViaOptions wires the store as twiliosig.Options{Idempotency: Store} of Middleware instead of
	// wrapping the handlers in twiliosig.Idempotent (see Harness.ViaOptions).
	ViaOptions bool
}

// NewToken returns a fresh idempotency token shaped like Twilio's.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "AC" + hex.EncodeToString(b[:]) + "-" + hex.EncodeToString(b[8:])
}

// TestStore checks the store contract: exclusive claims, owner-checked complete and release, claims
// of crashed runs expiring after their lease.
func TestStore(t *testing.T, store twiliosig.IdempotencyStore) {
	ctx := context.Background()
	twiml := twiliosig.StoredResponse{Status: 200, Header: []twiliosig.HeaderLine{{Name: "content-type", Value: "text/xml"}},
		Body: []byte("<Response/>")}
	key := func() string { return twiliosig.DeliveryKey([32]byte{1, 2, 3}, NewToken()) }
	claim := func(key, owner string, lease time.Duration) (twiliosig.ClaimState, twiliosig.StoredResponse) {
		t.Helper()
		state, resp, err := store.Claim(ctx, key, owner, lease)
		if err != nil {
			t.Fatal(err)
		}
		return state, resp
	}
	check := func(what string, got bool, err error, want bool) {
		t.Helper()
		if err != nil || got != want {
			t.Fatalf("%s = %v, %v; want %v", what, got, err, want)
		}
	}
	t.Run("ClaimIsExclusiveAndCompletesForItsOwnerOnly", func(t *testing.T) {
		k := key()
		if s, _ := claim(k, "a", 30*time.Second); s != twiliosig.ClaimOurs {
			t.Fatalf("first claim: %v", s)
		}
		if s, _ := claim(k, "b", 30*time.Second); s != twiliosig.ClaimBusy {
			t.Fatalf("second claim: %v", s)
		}
		ok, err := store.Complete(ctx, k, "b", twiml)
		check("Complete by another owner", ok, err, false)
		ok, err = store.Release(ctx, k, "b")
		check("Release by another owner", ok, err, false)
		ok, err = store.Complete(ctx, k, "a", twiml)
		check("Complete by the owner", ok, err, true)
		s, resp := claim(k, "c", 30*time.Second)
		if s != twiliosig.ClaimDone || resp.Status != 200 || resp.ContentType() != "text/xml" || !bytes.Equal(resp.Body, twiml.Body) {
			t.Fatalf("claim after completion: %v %+v", s, resp)
		}
		ok, err = store.Release(ctx, k, "a")
		check("Release of a stored response", ok, err, false)
	})
	t.Run("AClaimFindingItsOwnOwnerIsOurs", func(t *testing.T) {
		// A client that re-sends a claim which had succeeded (go-redis retrying after a read
		// timeout) must not find the first delivery busy with itself.
		k := key()
		for i := range 2 {
			if s, _ := claim(k, "a", 30*time.Second); s != twiliosig.ClaimOurs {
				t.Fatalf("claim %d by the same owner: %v", i, s)
			}
		}
		if s, _ := claim(k, "b", 30*time.Second); s != twiliosig.ClaimBusy {
			t.Fatalf("claim by another owner: %v", s)
		}
		ok, err := store.Complete(ctx, k, "a", twiml)
		check("Complete by the owner", ok, err, true)
		if s, _ := claim(k, "a", 30*time.Second); s != twiliosig.ClaimDone {
			t.Fatalf("claim by the owner after completion: %v", s)
		}
	})
	t.Run("StoredHeadersComeBackInOrder", func(t *testing.T) {
		k := key()
		redirect := twiliosig.StoredResponse{Status: 302, Header: []twiliosig.HeaderLine{
			{Name: "cache-control", Value: "no-store"}, {Name: "location", Value: "/next?step=2"},
			{Name: "set-cookie", Value: "a=1; Path=/"}, {Name: "set-cookie", Value: "b=2"},
			{Name: "x-note", Value: "caf\xe9"}, // a latin-1 byte, as sent
		}, Body: []byte{}}
		claim(k, "a", 30*time.Second)
		ok, err := store.Complete(ctx, k, "a", redirect)
		check("Complete by the owner", ok, err, true)
		s, resp := claim(k, "b", 30*time.Second)
		if s != twiliosig.ClaimDone || resp.Status != 302 || !slices.Equal(resp.Header, redirect.Header) || len(resp.Body) != 0 {
			t.Fatalf("claim after completion: %v %+v", s, resp)
		}
	})
	t.Run("ReleaseFreesTheKey", func(t *testing.T) {
		k := key()
		claim(k, "a", 30*time.Second)
		ok, err := store.Release(ctx, k, "a")
		check("Release by the owner", ok, err, true)
		if s, _ := claim(k, "b", 30*time.Second); s != twiliosig.ClaimOurs {
			t.Fatalf("claim after release: %v", s)
		}
	})
	t.Run("ClaimOfACrashedRunExpiresAfterItsLease", func(t *testing.T) {
		k := key()
		claim(k, "crashed", 500*time.Millisecond)
		if s, _ := claim(k, "retry", 30*time.Second); s != twiliosig.ClaimBusy {
			t.Fatalf("claim during the lease: %v", s)
		}
		time.Sleep(700 * time.Millisecond)
		if s, _ := claim(k, "retry", 30*time.Second); s != twiliosig.ClaimOurs {
			t.Fatalf("claim after the lease: %v", s)
		}
		ok, err := store.Complete(ctx, k, "crashed", twiml)
		check("Complete by the expired owner", ok, err, false)
		ok, err = store.Release(ctx, k, "crashed")
		check("Release by the expired owner", ok, err, false)
	})
}

var errComplete = errors.New("complete failed: the store went away")

// completeFails is a store whose Complete fails after the handler ran.
type completeFails struct{ twiliosig.IdempotencyStore }

func (completeFails) Complete(context.Context, string, string, twiliosig.StoredResponse) (bool, error) {
	return false, errComplete
}

// counter counts handler runs per token.
type counter struct {
	mu   sync.Mutex
	runs map[string]int
}

func (c *counter) add(token string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[token]++
	return c.runs[token] - 1
}

func (c *counter) get(token string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[token]
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes (a log destination).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Reset empties the buffer.
func (b *SyncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}

// App is one test server: twiliosig.Middleware, twiliosig.Idempotent and the webhook handlers.
type App struct {
	Server *httptest.Server
	Log    *SyncBuffer
}

// gates hold /block handlers until the test closes them, by token.
type gates struct {
	mu     sync.Mutex
	m      map[string]chan struct{}
	opened map[string]bool
}

func (g *gates) open(token string) {
	gate := g.get(token)
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.opened[token] {
		g.opened[token] = true
		close(gate)
	}
}

func (g *gates) get(token string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m[token] == nil {
		g.m[token] = make(chan struct{})
	}
	return g.m[token]
}

// Harness makes test servers that count their handler runs together, as instances of one app.
type Harness struct {
	runs counter
	gate gates
	// ViaOptions makes NewApp pass the store as twiliosig.Options{Idempotency, IdempotencyOptions}
	// (with the log going to Options.Logger, which the retry handling inherits) instead of wrapping
	// the handlers in twiliosig.Idempotent inside Middleware.
	ViaOptions bool
}

// NewHarness returns a harness with no runs counted.
func NewHarness() *Harness {
	return &Harness{runs: counter{runs: map[string]int{}}, gate: gates{m: map[string]chan struct{}{}, opened: map[string]bool{}}}
}

// Runs is how many times a handler ran for the delivery with this token.
func (h *Harness) Runs(token string) int { return h.runs.get(token) }

// Open lets the /block handlers of the delivery with this token finish (again: no effect).
func (h *Harness) Open(token string) { h.gate.open(token) }

// NewApp starts one instance (Middleware, then Idempotent over store with opts, then the handlers:
// /voice[?sleep=d], /block (until Open), /panic, /error500, /flaky, /big, /sniffed, /redirect (a 302
// with Location, two Set-Cookie lines and Cache-Control), /hangup (its first run waits for the client
// to go away and answers nothing; later runs answer)), stopped at the test's end.
func (h *Harness) NewApp(t *testing.T, store twiliosig.IdempotencyStore, opts twiliosig.IdempotencyOptions) *App {
	runs, gate := &h.runs, &h.gate
	v, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte(authToken)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	logs := &SyncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.Wait == 0 {
		opts.Wait = Wait
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := r.Header.Get(twiliosig.IdempotencyTokenHeader)
		before := runs.add(token)
		nonce := NewToken()
		switch r.URL.Path {
		case "/voice":
			if d, err := time.ParseDuration(r.URL.Query().Get("sleep")); err == nil {
				time.Sleep(d)
			}
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Say>run %s</Say></Response>`, nonce)
		case "/block":
			<-gate.get(token)
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprintf(w, "<Response><Say>after gate %s</Say></Response>", nonce)
		case "/panic":
			panic("handler failed")
		case "/error500":
			http.Error(w, "database down", http.StatusInternalServerError)
		case "/flaky":
			if before == 0 {
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprintf(w, "<Response><Message>ok %s</Message></Response>", nonce)
		case "/big":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(bytes.Repeat([]byte(nonce), bigBody/len(nonce)+1))
		case "/sniffed":
			_, _ = io.WriteString(w, "<html><body>no content type set "+nonce+"</body></html>")
		case "/redirect":
			w.Header().Set("Location", "/next?step=2")
			w.Header().Add("Set-Cookie", "a=1; Path=/")
			w.Header().Add("Set-Cookie", "b="+nonce)
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusFound)
		case "/hangup":
			if before == 0 {
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
				return
			}
			w.Header().Set("Content-Type", "text/xml")
			fmt.Fprintf(w, "<Response><Say>second run %s</Say></Response>", nonce)
		default:
			http.NotFound(w, r)
		}
	})
	var app http.Handler
	if h.ViaOptions {
		app = twiliosig.Middleware(v, twiliosig.Options{BaseURL: baseURL, Logger: logger,
			Idempotency: store, IdempotencyOptions: opts})(handler)
	} else {
		opts.Logger = logger
		mw := twiliosig.Middleware(v, twiliosig.Options{BaseURL: baseURL})
		app = mw(twiliosig.Idempotent(store, opts)(handler))
	}
	srv := httptest.NewUnstartedServer(app)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the /panic handler's stack trace
	srv.Start()
	t.Cleanup(srv.Close)
	return &App{Server: srv, Log: logs}
}

// Reply is a response as a client saw it.
type Reply struct {
	Status   int
	Header   http.Header
	Body     []byte
	Err      error
	Replayed bool
}

// Post sends a signed webhook to app at target (path and query) with the token ("" for none).
// Redirects are not followed: the reply is the app's own response.
func Post(t *testing.T, app *App, target, token string, forge bool) Reply {
	t.Helper()
	return PostWithin(t, app, target, token, forge, 0)
}

// PostWithin is Post with a client that gives up (and closes the connection) after timeout (0: no
// limit).
func PostWithin(t *testing.T, app *App, target, token string, forge bool, timeout time.Duration) Reply {
	t.Helper()
	sig, err := twiliosig.Sign([]byte(authToken), baseURL+target, []byte(body), "")
	if err != nil {
		t.Fatal(err)
	}
	if forge {
		sig = "A" + sig[1:]
		if sig[0] == 'A' {
			sig = "B" + sig[1:]
		}
	}
	req, err := http.NewRequest(http.MethodPost, app.Server.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	if token != "" {
		req.Header.Set(twiliosig.IdempotencyTokenHeader, token)
	}
	client := *app.Server.Client()
	client.Timeout = timeout
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		return Reply{Err: err}
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: got, Err: err,
		Replayed: resp.Header.Get(twiliosig.IdempotentReplayedHeader) == "true"}
}

// TestMiddleware runs every retry scenario through two servers sharing fleet.Store.
func TestMiddleware(t *testing.T, fleet Fleet) {
	h := NewHarness()
	h.ViaOptions = fleet.ViaOptions
	runs, gate := &h.runs, &h.gate
	apps := [2]*App{
		h.NewApp(t, fleet.Store, twiliosig.IdempotencyOptions{}),
		h.NewApp(t, fleet.Store, twiliosig.IdempotencyOptions{}),
	}
	wantRuns := func(t *testing.T, token string, want int) {
		t.Helper()
		if got := runs.get(token); got != want {
			t.Fatalf("handler ran %d times for the delivery, want %d", got, want)
		}
	}
	want := func(t *testing.T, r Reply, status int, replayed bool) {
		t.Helper()
		if r.Err != nil || r.Status != status || r.Replayed != replayed {
			t.Fatalf("got %d replayed=%v err=%v (%q), want %d replayed=%v", r.Status, r.Replayed, r.Err, r.Body, status, replayed)
		}
	}

	t.Run("FirstDeliveryRunsAndARetryOnTheOtherInstanceGetsItsResponse", func(t *testing.T) {
		token := NewToken()
		first := Post(t, apps[0], "/voice", token, false)
		want(t, first, 200, false)
		retry := Post(t, apps[1], "/voice", token, false)
		want(t, retry, 200, true)
		if !bytes.Equal(retry.Body, first.Body) || retry.Header.Get("Content-Type") != "text/xml" {
			t.Fatalf("retry got %q (%s), first %q", retry.Body, retry.Header.Get("Content-Type"), first.Body)
		}
		wantRuns(t, token, 1)
	})
	t.Run("ASniffedContentTypeIsReplayedAsSent", func(t *testing.T) {
		token := NewToken()
		first := Post(t, apps[0], "/sniffed", token, false)
		retry := Post(t, apps[1], "/sniffed", token, false)
		want(t, retry, 200, true)
		if first.Header.Get("Content-Type") != retry.Header.Get("Content-Type") || !bytes.Equal(first.Body, retry.Body) {
			t.Fatalf("first %q, retry %q", first.Header.Get("Content-Type"), retry.Header.Get("Content-Type"))
		}
	})
	t.Run("AReplayed302KeepsItsLocationAndEverySetCookie", func(t *testing.T) {
		token := NewToken()
		first := Post(t, apps[0], "/redirect", token, false)
		want(t, first, http.StatusFound, false)
		retry := Post(t, apps[1], "/redirect", token, false)
		want(t, retry, http.StatusFound, true)
		cookies := first.Header.Values("Set-Cookie")
		if len(cookies) != 2 || cookies[0] != "a=1; Path=/" || !strings.HasPrefix(cookies[1], "b=") {
			t.Fatalf("first response's cookies %q", cookies)
		}
		for _, name := range []string{"Location", "Set-Cookie", "Cache-Control"} {
			if !slices.Equal(retry.Header.Values(name), first.Header.Values(name)) {
				t.Fatalf("%s: retry %q, first %q", name, retry.Header.Values(name), first.Header.Values(name))
			}
		}
		if retry.Header.Get("Location") != "/next?step=2" || retry.Header.Get("Date") == "" ||
			len(retry.Header.Values("Date")) != 1 || len(retry.Header.Values("Content-Length")) > 1 {
			t.Fatalf("retry header %v", retry.Header)
		}
		wantRuns(t, token, 1)
	})
	t.Run("AClaimWhoseCompleteFailsIsReleased", func(t *testing.T) {
		// The same store with Complete failing (a store error after the handler ran): the claim is
		// freed, so the retry runs the handler again at once instead of waiting and getting 409.
		app := h.NewApp(t, completeFails{fleet.Store}, twiliosig.IdempotencyOptions{})
		before, token := fleet.Keys(), NewToken()
		want(t, Post(t, app, "/voice", token, false), 200, false)
		if !strings.Contains(app.Log.String(), "twilio webhook retry store failed (complete): "+errComplete.Error()) {
			t.Fatalf("log: %s", app.Log.String())
		}
		start := time.Now()
		want(t, Post(t, app, "/voice", token, false), 200, false)
		if waited := time.Since(start); waited >= Wait {
			t.Fatalf("the retry waited %v for a claim that should have been released", waited)
		}
		wantRuns(t, token, 2)
		if fleet.Keys() != before {
			t.Fatalf("keys %d, before %d: a claim was left behind", fleet.Keys(), before)
		}
	})
	t.Run("AClaimWhoseClientWentAwayBeforeAnAnswerIsReleased", func(t *testing.T) {
		token := NewToken()
		if r := PostWithin(t, apps[0], "/hangup", token, false, 300*time.Millisecond); r.Err == nil {
			t.Fatalf("the client did not give up: %d", r.Status)
		}
		start := time.Now()
		retry := Post(t, apps[1], "/hangup", token, false)
		want(t, retry, 200, false)
		if !strings.Contains(string(retry.Body), "second run") {
			t.Fatalf("retry got %q", retry.Body)
		}
		if waited := time.Since(start); waited >= Wait {
			t.Fatalf("the retry waited %v for a claim that should have been released", waited)
		}
		wantRuns(t, token, 2)
		if !strings.Contains(apps[0].Log.String(), "the request was cancelled before the handler answered") {
			t.Fatalf("log: %s", apps[0].Log.String())
		}
	})
	t.Run("SixConcurrentDeliveriesOfOneRetryRunTheHandlerOnce", func(t *testing.T) {
		// The handler takes 400 ms, well inside the 2 s wait: every delivery gets the one response.
		token := NewToken()
		replies := make([]Reply, 6)
		var wg sync.WaitGroup
		for i := range replies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				replies[i] = Post(t, apps[i%2], "/voice?sleep=400ms", token, false)
			}()
		}
		wg.Wait()
		fresh := 0
		for _, r := range replies {
			if r.Err != nil || r.Status != 200 || !bytes.Equal(r.Body, replies[0].Body) {
				t.Fatalf("replies differ: %+v vs %+v", r, replies[0])
			}
			if !r.Replayed {
				fresh++
			}
		}
		if fresh != 1 {
			t.Fatalf("%d replies came from a run, want 1", fresh)
		}
		wantRuns(t, token, 1)
	})
	t.Run("ARetryWaitsThenGets409WhileTheFirstRunIsStillGoing", func(t *testing.T) {
		token := NewToken()
		// Let the first run finish however this subtest ends (a failed check must not leave the
		// handler blocked, or the servers' Close waits for it forever).
		open := func() { gate.open(token) }
		defer open()
		done := make(chan Reply, 1)
		go func() { done <- Post(t, apps[0], "/block", token, false) }()
		for deadline := time.Now().Add(10 * time.Second); runs.get(token) == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		start := time.Now()
		retry := Post(t, apps[1], "/block", token, false)
		waited := time.Since(start)
		want(t, retry, http.StatusConflict, false)
		// The upper bound only says the wait ends: each look at the store is a round trip, which a
		// loaded machine (two cores shared with other test suites) can slow down a lot.
		if waited < Wait-100*time.Millisecond || waited > Wait+8*time.Second {
			t.Fatalf("the retry waited %v, want about %v", waited, Wait)
		}
		open()
		first := <-done
		want(t, first, 200, false)
		late := Post(t, apps[1], "/block", token, false)
		want(t, late, 200, true)
		if !bytes.Equal(late.Body, first.Body) {
			t.Fatalf("late retry got %q, first %q", late.Body, first.Body)
		}
		wantRuns(t, token, 1)
	})
	t.Run("IdenticalContentWithANewTokenRunsAgain", func(t *testing.T) {
		one, two := NewToken(), NewToken()
		a, b := Post(t, apps[0], "/voice", one, false), Post(t, apps[1], "/voice", two, false)
		want(t, a, 200, false)
		want(t, b, 200, false)
		if bytes.Equal(a.Body, b.Body) {
			t.Fatal("the second delivery got the first one's response")
		}
		wantRuns(t, one, 1)
		wantRuns(t, two, 1)
	})
	t.Run("WithoutATokenTheRequestIsProcessedUnguarded", func(t *testing.T) {
		before := fleet.Keys()
		a, b := Post(t, apps[0], "/voice", "", false), Post(t, apps[1], "/voice", "", false)
		want(t, a, 200, false)
		want(t, b, 200, false)
		if bytes.Equal(a.Body, b.Body) || fleet.Keys() != before {
			t.Fatal("a request without a token was stored or replayed")
		}
		if !strings.Contains(apps[1].Log.String(), "handled without retry protection") {
			t.Fatalf("no debug line: %s", apps[1].Log.String())
		}
	})
	t.Run("AForgedRequestStoresNothing", func(t *testing.T) {
		before, token := fleet.Keys(), NewToken()
		want(t, Post(t, apps[0], "/voice", token, true), http.StatusForbidden, false)
		if fleet.Keys() != before {
			t.Fatal("a forged request stored a key")
		}
		wantRuns(t, token, 0)
	})
	for _, route := range []string{"/panic", "/error500"} {
		t.Run("AFailedHandlerStoresNothingAndItsRetryRunsAgain"+route, func(t *testing.T) {
			token := NewToken()
			for i := range 2 {
				r := Post(t, apps[i], route, token, false)
				if route == "/panic" && r.Err == nil {
					t.Fatalf("a panicking handler answered %d", r.Status)
				}
				if route == "/error500" {
					want(t, r, 500, false)
				}
			}
			wantRuns(t, token, 2)
		})
	}
	t.Run("ARetryAfterAFailureRunsAndThenItsSuccessIsReplayed", func(t *testing.T) {
		token := NewToken()
		want(t, Post(t, apps[0], "/flaky", token, false), 503, false)
		ok := Post(t, apps[1], "/flaky", token, false)
		want(t, ok, 200, false)
		again := Post(t, apps[0], "/flaky", token, false)
		want(t, again, 200, true)
		if !bytes.Equal(again.Body, ok.Body) {
			t.Fatal("the replay differs from the successful run")
		}
		wantRuns(t, token, 2)
	})
	t.Run("ABodyOverMaxBodyIsSentButNotStored", func(t *testing.T) {
		token := NewToken()
		one := Post(t, apps[0], "/big", token, false)
		want(t, one, 200, false)
		if len(one.Body) <= bigBody {
			t.Fatalf("body of %d bytes", len(one.Body))
		}
		want(t, Post(t, apps[1], "/big", token, false), 200, false)
		wantRuns(t, token, 2)
		if !strings.Contains(apps[0].Log.String(), "body over MaxBody=65536 bytes") {
			t.Fatalf("no log line: %s", apps[0].Log.String())
		}
	})
	t.Run("EveryStoredKeyHasATTL", func(t *testing.T) {
		want(t, Post(t, apps[0], "/voice", NewToken(), false), 200, false)
		ttls := fleet.TTLs()
		if len(ttls) == 0 {
			t.Fatal("no keys")
		}
		for _, ttl := range ttls {
			if ttl <= 0 || ttl > twiliosig.DefaultIdempotencyTTL {
				t.Fatalf("a key has TTL %v", ttl)
			}
		}
	})
}
