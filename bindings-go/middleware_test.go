package twiliosig

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
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
