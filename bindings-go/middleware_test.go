//go:build cgo

package twiliosig

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

const (
	token = "12345"
	form  = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212"
)

// echo answers 200 with the body it sees and the secret index the middleware verified.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if _, ok := VerifiedFrom(r.Context()); !ok {
		http.Error(w, "no verification in context", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(body)
})

func serve(t *testing.T, opts Options, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	v, err := NewValidator(Secret{Value: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rec := httptest.NewRecorder()
	Middleware(v, opts)(echo).ServeHTTP(rec, req)
	return rec
}

func signedRequest(t *testing.T, publicURL, target string) *http.Request {
	t.Helper()
	sig, err := Sign([]byte(token), publicURL, []byte(form), "")
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	return req
}

func TestMiddlewareAcceptsASignedRequestAndRestoresTheBody(t *testing.T) {
	req := signedRequest(t, "https://hooks.example.com/sms?x=1", "/sms?x=1")
	rec := serve(t, Options{BaseURL: "https://hooks.example.com"}, req)
	if rec.Code != http.StatusOK || rec.Body.String() != form {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
}

func TestMiddlewareAnswers400WithoutTheHeader(t *testing.T) {
	req := httptest.NewRequest(http.MethodPost, "/sms", strings.NewReader(form))
	if rec := serve(t, Options{BaseURL: "https://hooks.example.com"}, req); rec.Code != http.StatusBadRequest {
		t.Fatalf("%d", rec.Code)
	}
}

func TestMiddlewareAnswers403OnABadSignature(t *testing.T) {
	req := signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Body = io.NopCloser(strings.NewReader(form + "&Extra=1"))
	if rec := serve(t, Options{BaseURL: "https://hooks.example.com"}, req); rec.Code != http.StatusForbidden {
		t.Fatalf("tampered body: %d", rec.Code)
	}
	req = signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Header.Set("X-Twilio-Signature", "not a signature")
	if rec := serve(t, Options{BaseURL: "https://hooks.example.com"}, req); rec.Code != http.StatusForbidden {
		t.Fatalf("malformed signature: %d", rec.Code)
	}
}

func TestMiddlewareRefusesABodyOverTheLimit(t *testing.T) {
	req := signedRequest(t, "https://hooks.example.com/sms", "/sms")
	if rec := serve(t, Options{BaseURL: "https://hooks.example.com", MaxBodyBytes: 10}, req); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("%d", rec.Code)
	}
}

func TestMiddlewareIgnoresForwardedHeadersFromUntrustedPeers(t *testing.T) {
	// Twilio called https://hooks.example.com; a TLS-terminating proxy forwarded it over http.
	req := signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Host = "hooks.example.com"
	req.Header.Set("X-Forwarded-Proto", "https")
	req.RemoteAddr = "203.0.113.9:4000"
	if rec := serve(t, Options{}, req); rec.Code != http.StatusForbidden {
		t.Fatalf("untrusted X-Forwarded-Proto believed: %d", rec.Code)
	}

	req = signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Host = "internal:8080"
	req.Header.Set("X-Forwarded-Proto", "http, https")
	req.Header.Set("X-Forwarded-Host", "hooks.example.com")
	req.RemoteAddr = "10.0.0.7:4000"
	opts := Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	if rec := serve(t, opts, req); rec.Code != http.StatusOK {
		t.Fatalf("trusted proxy: %d %s", rec.Code, rec.Body.String())
	}
}

func TestPublicURLKeepsTheRawTarget(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/a%2Fb?q=%7E+x", nil)
	got := PublicURL(req, Options{BaseURL: "https://h.example.com/"})
	if got != "https://h.example.com/a%2Fb?q=%7E+x" {
		t.Fatalf("%q", got)
	}
}

// logged runs one request through the middleware with a logger writing to a buffer.
func logged(t *testing.T, v *Validator, opts Options, req *http.Request) (*httptest.ResponseRecorder, string) {
	t.Helper()
	var out bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&out, nil))
	rec := httptest.NewRecorder()
	Middleware(v, opts)(echo).ServeHTTP(rec, req)
	return rec, out.String()
}

func newValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := NewValidator(Secret{Value: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// Through a real net/http server on loopback: signed 200, forged 403, no header 400, each refusal
// logged once at WARN in the shared format, without the token or the expected signature.
func TestMiddlewareOverARealServerLogsEachRefusal(t *testing.T) {
	var logs bytes.Buffer
	v := newValidator(t)
	server := httptest.NewServer(Middleware(v, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})(echo))
	defer server.Close()
	url := server.URL + "/sms?x=1"
	post := func(signature string) int {
		t.Helper()
		return postForm(t, server, url, "", map[string]string{"X-Twilio-Signature": signature})
	}
	expected, err := Sign([]byte(token), url, []byte(form), "")
	if err != nil {
		t.Fatal(err)
	}
	forged, err := Sign([]byte("not the token"), url, []byte(form), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := post(expected); got != http.StatusOK {
		t.Fatalf("signed: %d", got)
	}
	if logs.Len() != 0 {
		t.Fatalf("an accepted request was logged: %s", logs.String())
	}
	if got := post(forged); got != http.StatusForbidden {
		t.Fatalf("forged: %d", got)
	}
	if got := post(""); got != http.StatusBadRequest {
		t.Fatalf("no header: %d", got)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per refusal, got %q", lines)
	}
	want403 := "twilio webhook refused: 403 the signature does not match the request; url=" + url + "; "
	want400 := "twilio webhook refused: 400 the X-Twilio-Signature header is missing; url=" + url +
		"; the request was not sent by Twilio (or a proxy dropped the header)"
	for i, want := range []string{want403, want400} {
		if !strings.Contains(lines[i], "level=WARN") || !strings.Contains(lines[i], want) {
			t.Fatalf("line %d: %s\nwant it to contain %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], "check that the secret") {
		t.Fatalf("403 without the explain diagnosis: %s", lines[0])
	}
	for _, secret := range []string{token, expected} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the log carries %q: %s", secret, logs.String())
		}
	}
}

func TestMiddlewareOnRejectReplacesTheLogLine(t *testing.T) {
	var got []Rejection
	opts := Options{
		BaseURL:  "https://hooks.example.com",
		OnReject: func(_ *http.Request, r Rejection) { got = append(got, r) },
	}
	req := signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Header.Set("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
	rec, logs := logged(t, newValidator(t), opts, req)
	if rec.Code != http.StatusForbidden || logs != "" || len(got) != 1 {
		t.Fatalf("%d, log %q, %d calls", rec.Code, logs, len(got))
	}
	r := got[0]
	if r.Status != http.StatusForbidden || !errors.Is(r.Err, ErrSignatureMismatch) ||
		r.URL != "https://hooks.example.com/sms" || r.Diagnosis == "" {
		t.Fatalf("%+v", r)
	}
	if !strings.HasPrefix(r.String(), "twilio webhook refused: 403 the signature does not match the request; url=https://hooks.example.com/sms; ") {
		t.Fatalf("%s", r)
	}
}

// A Host or a believed X-Forwarded-Host that could move the URL is refused (400) before the body is
// read; an untrusted peer's X-Forwarded-Host is ignored, not refused.
func TestMiddlewareRefusesMalformedHosts(t *testing.T) {
	v := newValidator(t)
	for _, host := range []string{"evil.com/x", "hooks.example.com,evil.com", "a?b", "a#b", "user@evil.com", `a\b`, "a b", "a\tb", "a\x00b", "a\x7fb", ""} {
		req := signedRequest(t, "http://hooks.example.com/sms", "/sms")
		req.Host = host
		req.Body = failingBody{t}
		rec, logs := logged(t, v, Options{}, req)
		if rec.Code != http.StatusBadRequest || !strings.Contains(logs, "refused: 400") {
			t.Fatalf("Host %q: %d %s", host, rec.Code, logs)
		}
		if strings.ContainsAny(logs, "\x00\x7f\t") {
			t.Fatalf("control characters reached the log: %q", logs)
		}
	}
	// Host fields left in the header map (as HTTP/2 can leave them): more than one is refused.
	req := signedRequest(t, "http://hooks.example.com/sms", "/sms")
	req.Header["Host"] = []string{"hooks.example.com", "evil.com"}
	req.Body = failingBody{t}
	if rec, logs := logged(t, v, Options{}, req); rec.Code != http.StatusBadRequest || !strings.Contains(logs, "more than one Host header") {
		t.Fatalf("two Host fields: %d %s", rec.Code, logs)
	}
	trusted := Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	req = signedRequest(t, "http://hooks.example.com/sms", "/sms")
	req.Host = "internal:8080"
	req.RemoteAddr = "10.1.2.3:5000"
	req.Header.Add("X-Forwarded-Host", "hooks.example.com")
	req.Header.Add("X-Forwarded-Host", "ok.example.com, hooks.example.com@evil.com")
	if rec, _ := logged(t, v, trusted, req); rec.Code != http.StatusBadRequest {
		t.Fatalf("trusted X-Forwarded-Host with @: %d", rec.Code)
	}
	req = signedRequest(t, "http://hooks.example.com/sms", "/sms")
	req.Host = "hooks.example.com"
	req.RemoteAddr = "203.0.113.1:5000"
	req.Header.Set("X-Forwarded-Host", "evil.com/x")
	if rec, _ := logged(t, v, trusted, req); rec.Code != http.StatusOK {
		t.Fatalf("untrusted X-Forwarded-Host was not ignored: %d", rec.Code)
	}
}

// The last X-Forwarded-* value (last header line, last item) is the nearest proxy's and the one used.
func TestMiddlewareBelievesTheLastForwardedValue(t *testing.T) {
	req := signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Host = "internal:8080"
	req.RemoteAddr = "[::1]:5000"
	req.Header.Add("X-Forwarded-Host", "spoofed.example.com")
	req.Header.Add("X-Forwarded-Host", "also-spoofed.example.com, hooks.example.com")
	req.Header.Add("X-Forwarded-Proto", "http")
	req.Header.Add("X-Forwarded-Proto", "https")
	opts := Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::1/128")}}
	if rec, logs := logged(t, newValidator(t), opts, req); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, logs)
	}
}

// failingBody fails the test if the middleware reads it.
type failingBody struct{ t *testing.T }

func (b failingBody) Read([]byte) (int, error) {
	b.t.Error("the body was read")
	return 0, io.EOF
}
func (failingBody) Close() error { return nil }

// countingBody is an endless body that counts what was read.
type countingBody struct{ n int64 }

func (b *countingBody) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	b.n += int64(len(p))
	return len(p), nil
}
func (*countingBody) Close() error { return nil }

func TestMiddlewareBoundsTheBody(t *testing.T) {
	v := newValidator(t)
	// Declared over the default limit: 413 without reading a byte.
	req := signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Body, req.ContentLength = failingBody{t}, defaultMaxBodyBytes+1
	rec, logs := logged(t, v, Options{BaseURL: "https://hooks.example.com"}, req)
	if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(logs, "refused: 413") {
		t.Fatalf("Content-Length over the limit: %d %s", rec.Code, logs)
	}
	// Chunked (no length) and endless: 413 after reading at most limit+1 bytes.
	body := &countingBody{}
	req = signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Body, req.ContentLength = body, -1
	rec, _ = logged(t, v, Options{BaseURL: "https://hooks.example.com", MaxBodyBytes: 1000}, req)
	if rec.Code != http.StatusRequestEntityTooLarge || body.n > 1001 {
		t.Fatalf("endless body: %d after reading %d bytes", rec.Code, body.n)
	}
	// No body at all (a GET, or a request built by hand with a nil Body) is the empty body.
	req = signedRequest(t, "https://hooks.example.com/sms", "/sms")
	req.Body = nil
	if rec, _ = logged(t, v, Options{BaseURL: "https://hooks.example.com"}, req); rec.Code != http.StatusForbidden {
		t.Fatalf("nil body: %d", rec.Code)
	}
	// Exactly at the limit is fine.
	req = signedRequest(t, "https://hooks.example.com/sms", "/sms")
	rec, _ = logged(t, v, Options{BaseURL: "https://hooks.example.com", MaxBodyBytes: int64(len(form))}, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("body at the limit: %d", rec.Code)
	}
}

func TestMiddlewareWithoutAUsableValidatorAnswers500(t *testing.T) {
	closed := newValidator(t)
	_ = closed.Close()
	for _, v := range []*Validator{nil, closed} {
		req := signedRequest(t, "https://hooks.example.com/sms", "/sms")
		rec, logs := logged(t, v, Options{BaseURL: "https://hooks.example.com"}, req)
		if rec.Code != http.StatusInternalServerError || !strings.Contains(logs, "refused: 500") {
			t.Fatalf("%d %s", rec.Code, logs)
		}
	}
}

// postForm posts form to url on the server with the given Host ("": the URL's) and header lines
// (empty values left out) and returns the response's status.
func postForm(t *testing.T, server *httptest.Server, url, host string, headers map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for name, value := range headers {
		if value != "" {
			req.Header.Set(name, value)
		}
	}
	resp, err := server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// rawExchange writes one raw HTTP/1.1 request to the server and returns the response's status.
func rawExchange(t *testing.T, server *httptest.Server, raw string) int {
	t.Helper()
	conn, err := net.Dial("tcp", server.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// With no usable validator (nil or closed) the client's 400s still come first, and the 500 comes
// before the body limit's 413 and before the body is read; through a real server on loopback.
func TestMiddlewareAnswers500AfterThe400sAndBefore413(t *testing.T) {
	closed := newValidator(t)
	_ = closed.Close()
	for name, v := range map[string]*Validator{"nil": nil, "closed": closed} {
		var rejections []Rejection
		opts := Options{MaxBodyBytes: 10, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			OnReject: func(_ *http.Request, r Rejection) { rejections = append(rejections, r) }}
		server := httptest.NewServer(Middleware(v, opts)(echo))
		host := server.Listener.Addr().String()
		sig := "X-Twilio-Signature: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
		post := func(host, extra string, length int) string {
			return fmt.Sprintf("POST /sms HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s"+
				"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n", host, extra, length)
		}
		// Unsigned: 400, even though the app is misconfigured.
		if got := rawExchange(t, server, post(host, "", len(form))+form); got != http.StatusBadRequest {
			t.Errorf("%s: unsigned: %d", name, got)
		}
		// A host that could move the URL (net/http itself refuses such a Host header; a trusted
		// proxy's X-Forwarded-Host reaches the middleware): 400.
		if got := rawExchange(t, server, post(host, sig+"X-Forwarded-Host: a@b\r\n", len(form))+form); got != http.StatusBadRequest {
			t.Errorf("%s: bad host: %d", name, got)
		}
		// Signed, with a declared body over MaxBodyBytes and not a byte of it sent: 500, not 413.
		if got := rawExchange(t, server, post(host, sig, 1<<20)); got != http.StatusInternalServerError {
			t.Errorf("%s: over the limit: %d", name, got)
		}
		server.Close()
		want := []error{ErrMissingSignature, ErrMalformedHost, ErrNoValidator}
		if name == "closed" {
			want[2] = ErrClosed
		}
		if len(rejections) != len(want) {
			t.Fatalf("%s: %d rejections: %v", name, len(rejections), rejections)
		}
		for i, err := range want {
			if !errors.Is(rejections[i].Err, err) {
				t.Errorf("%s: rejection %d is %v, want %v", name, i, rejections[i].Err, err)
			}
		}
	}
}

// A trusted proxy's X-Forwarded-Proto must be http or https (in any case), like the tower layer's:
// anything else is refused (400, logged), not pasted into the URL. Through a real server on loopback,
// whose client is the trusted proxy 127.0.0.1.
func TestMiddlewareRefusesAForwardedProtoOtherThanHTTPOrHTTPS(t *testing.T) {
	var logs bytes.Buffer
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	opts := Options{TrustedProxies: trusted, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	server := httptest.NewServer(Middleware(newValidator(t), opts)(echo))
	defer server.Close()
	send := func(proto, signedURL string) int {
		t.Helper()
		sig, err := Sign([]byte(token), signedURL, []byte(form), "")
		if err != nil {
			t.Fatal(err)
		}
		return postForm(t, server, server.URL+"/sms", "hooks.example.com",
			map[string]string{"X-Twilio-Signature": sig, "X-Forwarded-Proto": proto})
	}
	if got := send("http, https", "https://hooks.example.com/sms"); got != http.StatusOK {
		t.Fatalf("https: %d %s", got, logs.String())
	}
	// Each signed for the URL the unchecked scheme would have made: only the check refuses them.
	for _, proto := range []string{"ftp", "https, javascript", "https:", "wss", "https\u00a0", "\u0085http"} {
		last := strings.TrimSpace(proto[strings.LastIndex(proto, ",")+1:])
		logs.Reset()
		if got := send(proto, last+"://hooks.example.com/sms"); got != http.StatusBadRequest {
			t.Errorf("X-Forwarded-Proto %q: %d", proto, got)
		}
		want := "refused: 400 twiliosig: the X-Forwarded-Proto header is not http or https"
		if !strings.Contains(logs.String(), want) {
			t.Errorf("X-Forwarded-Proto %q: log %q", proto, logs.String())
		}
	}
	// With BaseURL the header is not used, so not refused either.
	base := httptest.NewServer(Middleware(newValidator(t), Options{BaseURL: "https://hooks.example.com", TrustedProxies: trusted})(echo))
	defer base.Close()
	server = base
	if got := send("ftp", "https://hooks.example.com/sms"); got != http.StatusOK {
		t.Fatalf("BaseURL with X-Forwarded-Proto ftp: %d", got)
	}
}

// The log line escapes C1 controls and U+2028/U+2029 too, not only C0 and DEL: a request target
// carrying them (sent raw to a real server) cannot break the line for a log viewer.
func TestMiddlewareLogLineEscapesC1AndLineSeparators(t *testing.T) {
	var lines []string
	opts := Options{OnReject: func(_ *http.Request, r Rejection) { lines = append(lines, r.String()) }}
	server := httptest.NewServer(Middleware(newValidator(t), opts)(echo))
	defer server.Close()
	target := "/sms?a=\u2028b\u2029c\u0085d\u009fe\u00a0f"
	raw := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nX-Twilio-Signature: x\r\n"+
		"Content-Length: 0\r\n\r\n", target, server.Listener.Addr())
	if got := rawExchange(t, server, raw); got != http.StatusForbidden {
		t.Fatalf("%d", got)
	}
	if len(lines) != 1 {
		t.Fatalf("%q", lines)
	}
	want := `url=http://` + server.Listener.Addr().String() + `/sms?a=\u2028b\u2029c\x85d\x9fe` + "\u00a0f;"
	if !strings.Contains(lines[0], want) || strings.ContainsAny(lines[0], "\u2028\u2029\u0085\u009f") {
		t.Fatalf("%q\nwant it to contain %q", lines[0], want)
	}
	if got := printable("a\x00b\x7fc\u0080d\u2029"); got != `a\x00b\x7fc\x80d\u2029` {
		t.Fatalf("printable: %q", got)
	}
}

// hasBodySHA256 is the core's rule: bodySHA256 counts only as a name in the query.
func TestHasBodySHA256FollowsTheCoresRule(t *testing.T) {
	// bodySHA256 only counts in the query (the core's rule): after '#' or as a path segment it is not.
	for _, u := range []string{"https://h/a#?bodySHA256=x", "https://h/bodySHA256=x", "https://h/a?xbodySHA256=1"} {
		if hasBodySHA256(u) {
			t.Errorf("hasBodySHA256(%q)", u)
		}
	}
	for _, u := range []string{"https://h/a?bodySHA256", "https://h/a?x=1&bodySHA256=ab#f", "https://h/a?bodySHA256="} {
		if !hasBodySHA256(u) {
			t.Errorf("!hasBodySHA256(%q)", u)
		}
	}
}
