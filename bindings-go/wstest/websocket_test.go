package wstest_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	gorilla "github.com/gorilla/websocket"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/idempotencytest"
	"github.com/twilio-signature/twilio-signature/bindings-go/wstest"
)

const authToken = "12345678901234567890123456789012"

// app is a real loopback server: twiliosig.Middleware in front of a Media Streams route, /media,
// served by coder/websocket (or gorilla/websocket). The route reads Twilio's connected and start
// events, answers a mark and waits for the close.
type app struct {
	*httptest.Server
	logs *idempotencytest.SyncBuffer
	runs atomic.Int64      // handler runs (verified handshakes)
	seen chan wstest.Event // what the route received
	// streams counts the routes still running: a hijacked connection outlives httptest's Close, and
	// the test must not end before the route has reported.
	streams sync.WaitGroup
}

type library int

const (
	coder library = iota
	gorillaLib
)

// log is what the app logged, with slog's quoting of the message undone.
func (a *app) log() string { return strings.ReplaceAll(a.logs.String(), `\"`, `"`) }

func newApp(t *testing.T, lib library, opts twiliosig.Options) *app {
	t.Helper()
	v, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte(authToken)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	a := &app{logs: &idempotencytest.SyncBuffer{}, seen: make(chan wstest.Event, 8)}
	opts.Logger = slog.New(slog.NewTextHandler(a.logs, nil))
	media := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.streams.Add(1)
		defer a.streams.Done()
		a.runs.Add(1)
		if _, ok := twiliosig.VerifiedFrom(r.Context()); !ok {
			http.Error(w, "not verified", http.StatusInternalServerError)
			return
		}
		if lib == coder {
			a.serveCoder(t, w, r)
		} else {
			a.serveGorilla(t, w, r)
		}
	})
	a.Server = httptest.NewServer(twiliosig.Middleware(v, opts)(media))
	t.Cleanup(a.Close)
	t.Cleanup(a.streams.Wait) // runs first: the routes end when their client closes the stream
	return a
}

// jsonConn is one end of a stream, whichever library holds it.
type jsonConn struct {
	read  func(*wstest.Event) error
	write func(wstest.Event) error
}

// converse is the route's side of a stream: Twilio's connected and start events in (reported on
// a.seen), a mark out.
func (a *app) converse(t *testing.T, c jsonConn) bool {
	var start wstest.Event
	for range 2 {
		var e wstest.Event
		if err := c.read(&e); err != nil {
			t.Errorf("server read: %v", err)
			return false
		}
		a.seen <- e
		start = e
	}
	mark, err := wstest.MarkFor(start)
	if err == nil {
		err = c.write(mark)
	}
	if err != nil {
		t.Errorf("server: %v", err)
		return false
	}
	return true
}

func (a *app) serveCoder(t *testing.T, w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		t.Errorf("coder/websocket Accept behind the middleware: %v", err)
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if !a.converse(t, jsonConn{func(e *wstest.Event) error { return wsjson.Read(ctx, c, e) },
		func(e wstest.Event) error { return wsjson.Write(ctx, c, e) }}) {
		return
	}
	_, _, err = c.Read(ctx) // until the client closes
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("server: the stream did not end with a normal close: %v", err)
	}
}

func (a *app) serveGorilla(t *testing.T, w http.ResponseWriter, r *http.Request) {
	c, err := (&gorilla.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		t.Errorf("gorilla/websocket Upgrade behind the middleware: %v", err)
		return
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if !a.converse(t, jsonConn{func(e *wstest.Event) error { return c.ReadJSON(e) },
		func(e wstest.Event) error { return c.WriteJSON(e) }}) {
		return
	}
	if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
		t.Errorf("server: the stream did not end with a normal close: %v", err)
	}
}

// handshake is "Twilio" opening the stream: a handshake to the server's target with the given
// headers (the signature among them).
type handshake struct {
	target string
	header http.Header
}

func signed(t *testing.T, signedURL string) http.Header {
	t.Helper()
	sig, err := twiliosig.Sign([]byte(authToken), signedURL, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return http.Header{"X-Twilio-Signature": {sig}}
}

func wsURL(a *app, target string) string { return "ws" + strings.TrimPrefix(a.URL, "http") + target }

// twilioSide is the client's side of an open stream: Twilio's opening events out, the app's answer in.
func twilioSide(t *testing.T, c jsonConn) wstest.Event {
	t.Helper()
	for _, e := range wstest.TwilioOpening() {
		if err := c.write(e); err != nil {
			t.Fatal(err)
		}
	}
	var answer wstest.Event
	if err := c.read(&answer); err != nil {
		t.Fatal(err)
	}
	return answer
}

// streamCoder opens the stream with a coder/websocket client: on a 101 it sends Twilio's opening
// events and returns the app's answer; otherwise the handshake's status.
func streamCoder(t *testing.T, a *app, h handshake) (int, wstest.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, wsURL(a, h.target), &websocket.DialOptions{HTTPHeader: h.header})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode, wstest.Event{}
	}
	defer c.CloseNow()
	answer := twilioSide(t, jsonConn{func(e *wstest.Event) error { return wsjson.Read(ctx, c, e) },
		func(e wstest.Event) error { return wsjson.Write(ctx, c, e) }})
	if err := c.Close(websocket.StatusNormalClosure, "call ended"); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, answer
}

// streamGorilla is streamCoder with a gorilla/websocket client.
func streamGorilla(t *testing.T, a *app, h handshake) (int, wstest.Event) {
	t.Helper()
	dialer := gorilla.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := dialer.Dial(wsURL(a, h.target), h.header)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial: %v", err)
		}
		return resp.StatusCode, wstest.Event{}
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer := twilioSide(t, jsonConn{func(e *wstest.Event) error { return c.ReadJSON(e) },
		func(e wstest.Event) error { return c.WriteJSON(e) }})
	closing := gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "call ended")
	if err := c.WriteControl(gorilla.CloseMessage, closing, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, answer
}

// wantStream checks a stream that was let through: 101, both of Twilio's events reached the route,
// and its mark came back on the same stream.
func wantStream(t *testing.T, a *app, status int, answer wstest.Event) {
	t.Helper()
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("handshake answered %d, want 101; log %s", status, a.log())
	}
	for _, want := range wstest.TwilioOpening() {
		select {
		case got := <-a.seen:
			if got.String() != want.String() {
				t.Fatalf("the route received %s, want %s", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the route did not receive %s", want.Event)
		}
	}
	if answer.Event != "mark" || answer.StreamSid != wstest.StreamSid || answer.Mark == nil || answer.Mark.Name != "greeting-done" {
		t.Fatalf("the app answered %s, want a mark on %s", answer, wstest.StreamSid)
	}
}

// wantRefused checks a handshake answered with a plain HTTP refusal (no 101), logged, with the route
// never run.
func wantRefused(t *testing.T, a *app, status, want int, logged string) {
	t.Helper()
	if status != want || a.runs.Load() != 0 {
		t.Fatalf("handshake answered %d (want %d), route runs %d", status, want, a.runs.Load())
	}
	if !strings.Contains(a.log(), logged) {
		t.Fatalf("log %s\nwant %q", a.log(), logged)
	}
}

var clients = []struct {
	name   string
	lib    library
	stream func(*testing.T, *app, handshake) (int, wstest.Event)
}{{"coder", coder, streamCoder}, {"gorilla", gorillaLib, streamGorilla}}

// A handshake signed over the ws:// URL (the server is plain http) opens the stream; messages flow
// both ways through the verified, still hijackable connection.
func TestASignedHandshakeOpensTheStream(t *testing.T) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			a := newApp(t, c.lib, twiliosig.Options{})
			status, answer := c.stream(t, a, handshake{"/media?call=1", signed(t, wsURL(a, "/media?call=1"))})
			wantStream(t, a, status, answer)
			if a.log() != "" {
				t.Fatalf("a verified handshake was logged: %s", a.log())
			}
		})
	}
}

// Forged, missing, or signed over http:// (the common mistake: the URL the app sees instead of the
// one Twilio was given): refused with 403/400 before any upgrade.
func TestAnUnverifiedHandshakeIsRefusedWithoutUpgrade(t *testing.T) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			a := newApp(t, c.lib, twiliosig.Options{})
			forged, err := twiliosig.Sign([]byte("not the token"), wsURL(a, "/media"), nil, "")
			if err != nil {
				t.Fatal(err)
			}
			status, _ := c.stream(t, a, handshake{"/media", http.Header{"X-Twilio-Signature": {forged}}})
			wantRefused(t, a, status, http.StatusForbidden, "twilio webhook refused: 403 the signature does not match the request; url="+wsURL(a, "/media")+";")

			status, _ = c.stream(t, a, handshake{"/media", nil})
			wantRefused(t, a, status, http.StatusBadRequest, "twilio webhook refused: 400 the X-Twilio-Signature header is missing; url="+wsURL(a, "/media")+";")

			// Explain (the core's, through the C ABI) names the mistake.
			status, _ = c.stream(t, a, handshake{"/media", signed(t, a.URL+"/media")})
			wantRefused(t, a, status, http.StatusForbidden, "twilio webhook refused: 403 the signature does not match the request; url="+wsURL(a, "/media")+
				"; likely cause: verified as ws:// but signed over the http:// URL")
		})
	}
}

// Behind a TLS-terminating proxy the app trusts (X-Forwarded-Proto: https), the handshake is verified
// against wss:// and the proxy's host; signed over https:// it is refused. BaseURL https:// does the
// same without a proxy.
func TestBehindATrustedProxyTheWssURLIsVerified(t *testing.T) {
	proxy := func(h http.Header) http.Header {
		h.Set("X-Forwarded-Proto", "https")
		h.Set("X-Forwarded-Host", "hooks.example.com")
		return h
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			trusted := twiliosig.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
			a := newApp(t, c.lib, trusted)
			status, answer := c.stream(t, a, handshake{"/media?call=2", proxy(signed(t, "wss://hooks.example.com/media?call=2"))})
			wantStream(t, a, status, answer)

			refused := newApp(t, c.lib, trusted)
			status, _ = c.stream(t, refused, handshake{"/media?call=2", proxy(signed(t, "https://hooks.example.com/media?call=2"))})
			wantRefused(t, refused, status, http.StatusForbidden, "url=wss://hooks.example.com/media?call=2; likely cause: verified as wss:// but signed over the https:// URL")

			based := newApp(t, c.lib, twiliosig.Options{BaseURL: "https://hooks.example.com"})
			status, answer = c.stream(t, based, handshake{"/media", signed(t, "wss://hooks.example.com/media")})
			wantStream(t, based, status, answer)
		})
	}
}

// With the retry store on, a handshake (which may carry an idempotency token) still reaches the route
// with a hijackable ResponseWriter: a stream is not stored or replayed.
func TestAHandshakeBypassesTheRetryStore(t *testing.T) {
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			store := twiliosig.NewMemoryStore(twiliosig.MemoryStoreOptions{})
			a := newApp(t, c.lib, twiliosig.Options{Idempotency: store})
			h := signed(t, wsURL(a, "/media"))
			h.Set(twiliosig.IdempotencyTokenHeader, "RC-stream-1")
			status, answer := c.stream(t, a, handshake{"/media", h})
			wantStream(t, a, status, answer)
			if store.Len() != 0 {
				t.Fatalf("the handshake left %d keys in the store", store.Len())
			}
		})
	}
}

// The URL rule itself: only a real upgrade is verified as ws(s)://; a GET that merely names WebSocket
// somewhere is an ordinary request.
func TestPublicURLOfAHandshake(t *testing.T) {
	opts := twiliosig.Options{BaseURL: "HTTPS://hooks.example.com"}
	for _, c := range []struct {
		method, upgrade, connection, want string
	}{
		{http.MethodGet, "websocket", "Upgrade", "wss://hooks.example.com/media?x=1"},
		{http.MethodGet, "WebSocket", "keep-alive, upgrade", "wss://hooks.example.com/media?x=1"},
		{http.MethodGet, "websocket", "keep-alive", "HTTPS://hooks.example.com/media?x=1"},
		{http.MethodGet, "h2c", "Upgrade", "HTTPS://hooks.example.com/media?x=1"},
		{http.MethodPost, "websocket", "Upgrade", "HTTPS://hooks.example.com/media?x=1"},
	} {
		r := httptest.NewRequest(c.method, "/media?x=1", nil)
		r.Header.Set("Upgrade", c.upgrade)
		r.Header.Set("Connection", c.connection)
		if got := twiliosig.PublicURL(r, opts); got != c.want {
			t.Errorf("%s Upgrade: %s, Connection: %s: %s, want %s", c.method, c.upgrade, c.connection, got, c.want)
		}
	}
	r := httptest.NewRequest(http.MethodGet, "/media", nil)
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Connection", "upgrade")
	if got := twiliosig.PublicURL(r, twiliosig.Options{}); got != "ws://example.com/media" {
		t.Errorf("plain http: %s", got)
	}
	// HTTP/2 extended CONNECT (RFC 8441), as net/http's server presents it.
	r = httptest.NewRequest(http.MethodConnect, "/media", nil)
	r.ProtoMajor, r.Proto = 2, "HTTP/2.0"
	r.Header[":protocol"] = []string{"websocket"}
	if got := twiliosig.PublicURL(r, opts); got != "wss://hooks.example.com/media" {
		t.Errorf("extended CONNECT: %s", got)
	}
}
