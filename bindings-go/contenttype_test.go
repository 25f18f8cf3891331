//go:build cgo

package twiliosig_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/idempotencytest"
)

const (
	token = "12345"
	form  = "CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212"
	// formDiagnosis is the 415's diagnosis (the shared rule R1's text).
	formDiagnosis = "Twilio sends form webhooks as application/x-www-form-urlencoded; a body verified as a form must carry that type"
)

func newValidator(t *testing.T) *twiliosig.Validator {
	t.Helper()
	v, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// formServer is a real loopback server: the middleware with its log captured, in front of a handler
// that counts its runs and answers the From field as net/http parsed it.
type formServer struct {
	*httptest.Server
	logs *idempotencytest.SyncBuffer
	runs atomic.Int64
}

func newFormServer(t *testing.T, opts twiliosig.Options) *formServer {
	t.Helper()
	s := &formServer{logs: &idempotencytest.SyncBuffer{}}
	opts.Logger = slog.New(slog.NewTextHandler(s.logs, nil))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.runs.Add(1)
		if err := r.ParseMultipartForm(1 << 20); err != nil && err != http.ErrNotMultipart {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "From="+r.FormValue("From"))
	})
	s.Server = httptest.NewServer(twiliosig.Middleware(newValidator(t), opts)(handler))
	t.Cleanup(s.Close)
	return s
}

type reply struct {
	status int
	body   string
}

// send makes one request to the server; contentTypes are the Content-Type lines (none: no header).
func (s *formServer) send(t *testing.T, method, target, body, signature string, contentTypes ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range contentTypes {
		req.Header.Add("Content-Type", ct)
	}
	if signature != "" {
		req.Header.Set("X-Twilio-Signature", signature)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, string(got)}
}

func sign(t *testing.T, url, body string) string {
	t.Helper()
	sig, err := twiliosig.Sign([]byte(token), url, []byte(body), "")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// The attack of issue 24 item 1: a captured signed SMS webhook whose Body the attacker wrote (an SMS
// they sent to the number) is re-sent with its fields reordered, its Body written raw and
// Content-Type multipart/form-data. Read as a URL-encoded form it decodes to the signed pairs, so
// the signature holds; read as multipart (what r.FormValue does by Content-Type) it has a forged From.
func TestMiddlewareRefusesAFormReencodedAsMultipart(t *testing.T) {
	s := newFormServer(t, twiliosig.Options{})
	const forged = "+15550006666"
	// The raw multipart section the attacker's SMS carries. '+' would decode to ' ' in a URL-encoded
	// form, so the SMS text Twilio signed has a space there.
	raw := "hi\r\n--B\r\nContent-Disposition: form-data; name=\"From\"\r\n\r\n" + forged + "\r\n--B--\r\n"
	sms := url.Values{
		"AccountSid": {"AC00000000000000000000000000000000"},
		"From":       {"+15551230000"},
		"To":         {"+15005550006"},
		"Body":       {strings.ReplaceAll(raw, "+", " ")},
	}
	target := "/sms"
	signature := sign(t, s.URL+target, sms.Encode()) // Twilio's request (fields sorted by Encode)
	attack := "AccountSid=AC00000000000000000000000000000000&From=%2B15551230000&To=%2B15005550006&Body=" + raw

	// The attack is real: the re-encoded body verifies, and parsed as multipart it carries the forged From.
	if err := twiliosig.Verify([]byte(token), s.URL+target, []byte(attack), signature, ""); err != nil {
		t.Fatalf("the re-encoded body no longer verifies (the test no longer shows the attack): %v", err)
	}
	parsed := httptest.NewRequest(http.MethodPost, target, strings.NewReader(attack))
	parsed.Header.Set("Content-Type", "multipart/form-data; boundary=B")
	if parsed.FormValue("From") != forged {
		t.Fatalf("multipart parse of the attack gives From=%q", parsed.FormValue("From"))
	}

	got := s.send(t, http.MethodPost, target, attack, signature, "multipart/form-data; boundary=B")
	if got.status != http.StatusUnsupportedMediaType || s.runs.Load() != 0 {
		t.Fatalf("multipart re-encoding: %d %q, handler runs %d", got.status, got.body, s.runs.Load())
	}
	want := `level=WARN msg="twilio webhook refused: 415 unsupported content type \"multipart/form-data\" for a form body; url=` +
		s.URL + target + "; " + formDiagnosis + `"`
	if lines := strings.Split(strings.TrimSpace(s.logs.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Fatalf("log %q\nwant one line containing %q", s.logs.String(), want)
	}
	if strings.Contains(s.logs.String(), token) || strings.Contains(s.logs.String(), signature) {
		t.Fatalf("the log carries the token or the signature: %s", s.logs.String())
	}

	// The same bytes as the form they were signed as: accepted, and the app reads the signed From.
	got = s.send(t, http.MethodPost, target, attack, signature, "application/x-www-form-urlencoded")
	if got.status != http.StatusOK || got.body != "From=+15551230000" || s.runs.Load() != 1 {
		t.Fatalf("as a URL-encoded form: %d %q, runs %d", got.status, got.body, s.runs.Load())
	}
}

func TestMiddlewareContentTypeRule(t *testing.T) {
	s := newFormServer(t, twiliosig.Options{})
	signature := sign(t, s.URL+"/sms", form)
	for _, ct := range []string{
		"application/x-www-form-urlencoded",
		"application/x-www-form-urlencoded; charset=utf-8",
		"Application/X-WWW-Form-URLEncoded;charset=UTF-8",
		" \tapplication/x-www-form-urlencoded ; charset=utf-8",
	} {
		s.logs.Reset()
		if got := s.send(t, http.MethodPost, "/sms", form, signature, ct); got.status != http.StatusOK {
			t.Errorf("Content-Type %q: %d %s", ct, got.status, s.logs.String())
		}
	}
	runs := s.runs.Load()
	for _, c := range []struct {
		types  []string
		reason string
	}{
		{nil, "415 no content type for a form body"},
		{[]string{""}, `415 unsupported content type "" for a form body`},
		{[]string{"text/plain"}, `415 unsupported content type "text/plain" for a form body`},
		{[]string{"application/json"}, `415 unsupported content type "application/json" for a form body`},
		{[]string{"application/x-www-form-urlencoded-x"}, `415 unsupported content type "application/x-www-form-urlencoded-x"`},
		{[]string{"application/x-www-form-urlencoded, text/plain"}, `415 unsupported content type "application/x-www-form-urlencoded, text/plain"`},
		{[]string{"application/x-www-form-urlencoded", "multipart/form-data; boundary=B"},
			`415 unsupported content type "application/x-www-form-urlencoded, multipart/form-data; boundary=B"`},
	} {
		s.logs.Reset()
		got := s.send(t, http.MethodPost, "/sms", form, signature, c.types...)
		logged := strings.ReplaceAll(s.logs.String(), `\"`, `"`) // slog's text handler quotes the message
		if got.status != http.StatusUnsupportedMediaType || !strings.Contains(logged, "twilio webhook refused: "+c.reason) {
			t.Errorf("Content-Type %q: %d, log %s", c.types, got.status, s.logs.String())
		}
	}
	if s.runs.Load() != runs {
		t.Fatalf("the handler ran for a refused type")
	}
	// The order of checks: a body over the limit is 413 whatever its type; the type is checked
	// before the signature (a forged multipart body is 415, not 403).
	small := newFormServer(t, twiliosig.Options{MaxBodyBytes: 10})
	if got := small.send(t, http.MethodPost, "/sms", form, signature, "text/plain"); got.status != http.StatusRequestEntityTooLarge {
		t.Errorf("over the limit with a wrong type: %d", got.status)
	}
	if got := s.send(t, http.MethodPost, "/sms", form, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "text/plain"); got.status != http.StatusUnsupportedMediaType {
		t.Errorf("forged with a wrong type: %d", got.status)
	}
}

// A bodySHA256 body is checked by its hash and may carry any type; an empty body needs none.
func TestMiddlewareContentTypeNotNeededForBodySHA256OrAnEmptyBody(t *testing.T) {
	s := newFormServer(t, twiliosig.Options{})
	json := `{"From":"+15551230000","Body":"hi"}`
	hash := sha256.Sum256([]byte(json))
	target := "/json?x=1&bodySHA256=" + hex.EncodeToString(hash[:])
	signature := sign(t, s.URL+target, json)
	for _, ct := range [][]string{{"application/json"}, {"application/json; charset=utf-8"}, {"text/plain"}, nil} {
		if got := s.send(t, http.MethodPost, target, json, signature, ct...); got.status != http.StatusOK {
			t.Errorf("bodySHA256 with Content-Type %q: %d %s", ct, got.status, s.logs.String())
		}
	}
	// The same JSON without bodySHA256 in the URL is a form body: its type is refused first.
	if got := s.send(t, http.MethodPost, "/json?x=1", json, sign(t, s.URL+"/json?x=1", json), "application/json"); got.status != http.StatusUnsupportedMediaType {
		t.Errorf("JSON without bodySHA256: %d", got.status)
	}
	// Empty bodies: a GET and an empty POST, no Content-Type.
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		signature := sign(t, s.URL+"/status?CallSid=CA1", "")
		if got := s.send(t, method, "/status?CallSid=CA1", "", signature); got.status != http.StatusOK {
			t.Errorf("%s with an empty body and no type: %d %s", method, got.status, s.logs.String())
		}
	}
}
