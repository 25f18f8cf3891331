//go:build cgo

package twiliosig_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
)

// unquoted is the captured log with slog's text-handler quoting of the message undone.
func unquoted(s *formServer) string { return strings.ReplaceAll(s.logs.String(), `\"`, `"`) }

// Issue 25 item 1 (rule R3): a refused request that carried forwarding headers the middleware did not
// believe says so, and why, on its refusal line. Through a real server, whose client (127.0.0.1) is
// the proxy.
func TestRefusalLineNamesIgnoredForwardingHeaders(t *testing.T) {
	proxyHeaders := func(req *http.Request) {
		req.Header.Set("X-Forwarded-Proto", "https")
		req.Header.Set("X-Forwarded-Host", "hooks.example.com")
		req.Header.Set("Forwarded", "proto=https;host=hooks.example.com")
	}
	// Signed for the public URL the proxy reports: only believing the headers would accept it.
	public := "https://hooks.example.com/sms"
	signature := sign(t, public, form)
	send := func(s *formServer, headers func(*http.Request)) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, s.URL+"/sms", strings.NewReader(form))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", signature)
		headers(req)
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	elsewhere := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}

	untrusted := newFormServer(t, twiliosig.Options{TrustedProxies: elsewhere})
	if got := send(untrusted, proxyHeaders); got != http.StatusForbidden {
		t.Fatalf("untrusted proxy: %d", got)
	}
	want := "twilio webhook refused: 403 the signature does not match the request; url=" + untrusted.URL + "/sms; "
	wantIgnored := "; X-Forwarded-Proto, X-Forwarded-Host, Forwarded ignored: from 127.0.0.1, not in TrustedProxies\""
	if log := unquoted(untrusted); !strings.Contains(log, want) || !strings.Contains(log, wantIgnored) {
		t.Fatalf("log %s\nwant %q ... %q", log, want, wantIgnored)
	}

	none := newFormServer(t, twiliosig.Options{})
	if got := send(none, func(req *http.Request) { req.Header.Set("X-Forwarded-Port", "443"); proxyHeaders(req) }); got != http.StatusForbidden {
		t.Fatalf("no trusted proxies: %d", got)
	}
	if want := "; X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Port, Forwarded ignored: no TrustedProxies configured\""; !strings.Contains(unquoted(none), want) {
		t.Fatalf("log %s\nwant %q", unquoted(none), want)
	}

	// Any refusal, not only a 403: a 400 without the signature header carries it too.
	none.logs.Reset()
	req, _ := http.NewRequest(http.MethodPost, none.URL+"/sms", strings.NewReader(form))
	req.Header.Set("X-Forwarded-Host", "hooks.example.com")
	if resp, err := none.Client().Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unsigned: %v %v", resp, err)
	}
	if want := "header is missing; url=" + none.URL + "/sms; the request was not sent by Twilio (or a proxy dropped the header); X-Forwarded-Host ignored: no TrustedProxies configured\""; !strings.Contains(unquoted(none), want) {
		t.Fatalf("log %s\nwant %q", unquoted(none), want)
	}

	// Believed (the peer is trusted): accepted, nothing logged. Without forwarding headers, or with
	// BaseURL (the URL does not depend on them), a refusal has no such part.
	trusted := newFormServer(t, twiliosig.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if got := send(trusted, proxyHeaders); got != http.StatusOK || trusted.logs.String() != "" {
		t.Fatalf("trusted proxy: %d, log %s", got, trusted.logs.String())
	}
	if got := send(untrusted, func(*http.Request) {}); got != http.StatusForbidden {
		t.Fatalf("no forwarding headers: %d", got)
	}
	based := newFormServer(t, twiliosig.Options{BaseURL: "https://elsewhere.example.com"})
	if got := send(based, proxyHeaders); got != http.StatusForbidden {
		t.Fatalf("BaseURL: %d", got)
	}
	for _, s := range []*formServer{untrusted, based} {
		lines := strings.Split(strings.TrimSpace(s.logs.String()), "\n")
		if last := lines[len(lines)-1]; strings.Contains(last, "ignored") {
			t.Fatalf("a refusal without believable forwarding headers names some: %s", last)
		}
	}
	// OnReject gets the same part.
	var got twiliosig.Rejection
	hooked := newFormServer(t, twiliosig.Options{OnReject: func(_ *http.Request, r twiliosig.Rejection) { got = r }})
	if status := send(hooked, proxyHeaders); status != http.StatusForbidden ||
		got.Ignored != "X-Forwarded-Proto, X-Forwarded-Host, Forwarded ignored: no TrustedProxies configured" {
		t.Fatalf("%d %+v", status, got)
	}
}

// Issue 25 item 2 (rule R4): a BaseURL whose path repeats the start of the request path is warned
// about once per middleware, at the first request that shows it.
func TestBaseURLRepeatingTheRouteIsWarnedOnce(t *testing.T) {
	const base = "https://h.example.com/twilio/sms"
	s := newFormServer(t, twiliosig.Options{BaseURL: base})
	for range 3 {
		// Signed for the public URL Twilio really calls: refused, since the URL verified doubles it.
		if got := s.send(t, http.MethodPost, "/twilio/sms", form, sign(t, base, form), "application/x-www-form-urlencoded"); got.status != http.StatusForbidden {
			t.Fatalf("%d", got.status)
		}
	}
	want := `level=WARN msg="BaseURL "https://h.example.com/twilio/sms" ends with "/twilio/sms", which the request path "/twilio/sms" starts with: ` +
		`the URL verified is "https://h.example.com/twilio/sms/twilio/sms". Give BaseURL as the public origin plus only the mount prefix the app does not see (usually just the origin)."`
	log := unquoted(s)
	if strings.Count(log, "ends with") != 1 || !strings.Contains(log, want) {
		t.Fatalf("log %s\nwant once %q", log, want)
	}
	if strings.Count(log, "twilio webhook refused: 403") != 3 {
		t.Fatalf("three refusals expected: %s", log)
	}

	// Overlaps of one segment, or a base with a trailing slash, are warned about too.
	for _, c := range []struct{ base, target string }{
		{"https://h.example.com/twilio", "/twilio/sms"},
		{"https://h.example.com/app/twilio/", "/twilio/voice?x=1"},
	} {
		s := newFormServer(t, twiliosig.Options{BaseURL: c.base})
		s.send(t, http.MethodPost, c.target, form, "", "application/x-www-form-urlencoded")
		if !strings.Contains(s.logs.String(), "ends with") {
			t.Errorf("BaseURL %q, request %q: no warning: %s", c.base, c.target, s.logs.String())
		}
	}
	// An origin, a mount prefix the app does not see, or a base that shares a segment only in the
	// middle: no warning, and signed requests pass.
	for _, c := range []struct{ base, target string }{
		{"https://h.example.com", "/twilio/sms"},
		{"https://h.example.com/", "/twilio/sms"},
		{"https://h.example.com/app", "/twilio/sms"},
		{"https://h.example.com/sms/app", "/sms"},
	} {
		s := newFormServer(t, twiliosig.Options{BaseURL: c.base})
		public := strings.TrimSuffix(c.base, "/") + c.target
		if got := s.send(t, http.MethodPost, c.target, form, sign(t, public, form), "application/x-www-form-urlencoded"); got.status != http.StatusOK || s.logs.String() != "" {
			t.Errorf("BaseURL %q, request %q: %d, log %s", c.base, c.target, got.status, s.logs.String())
		}
	}
}
