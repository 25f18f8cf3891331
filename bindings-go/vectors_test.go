//go:build cgo

package twiliosig

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

type vector struct {
	ID                string  `json:"id"`
	Algorithm         string  `json:"algorithm"`
	SignatureSettings *string `json:"signature_settings"`
	Secret            string  `json:"secret"`
	URL               string  `json:"url"`
	FormBody          *string `json:"form_body"`
	Body              *string `json:"body"`
	Signature         *string `json:"signature"`
	Expect            bool    `json:"expect"`
}

func (v vector) body() []byte {
	if v.Body != nil {
		return []byte(*v.Body)
	}
	return []byte(*v.FormBody)
}

func orEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// keyID is the key= item of the settings header.
func (v vector) keyID() string {
	for _, item := range strings.Split(orEmpty(v.SignatureSettings), ",") {
		name, value, _ := strings.Cut(item, "=")
		if strings.EqualFold(strings.TrimSpace(name), "key") {
			return strings.TrimSpace(value)
		}
	}
	return ""
}

// loadVectors reads the repository's shared vectors: $TWS_VECTORS (set by the Makefile, which makes a
// missing file a failure) or, in a checkout, ../tests/vectors. A copy of the module on its own has
// neither, and skips.
func loadVectors(t *testing.T) []vector {
	t.Helper()
	path := os.Getenv("TWS_VECTORS")
	if path == "" {
		path = "../tests/vectors/twilio-signatures.json"
		if _, err := os.Stat(path); err != nil {
			t.Skip("the shared test vectors are not here (set TWS_VECTORS): a copy of the module on its own")
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) != 211 {
		t.Fatalf("%d vectors", len(file.Vectors))
	}
	return file.Vectors
}

func TestSharedVectors(t *testing.T) {
	accepted := 0
	for _, v := range loadVectors(t) {
		t.Run(v.ID, func(t *testing.T) {
			// An empty signature header is indistinguishable from an absent one in this API.
			err := Verify([]byte(v.Secret), v.URL, v.body(), orEmpty(v.Signature), orEmpty(v.SignatureSettings))
			if (err == nil) != v.Expect {
				t.Fatalf("Verify = %v, expect %v", err, v.Expect)
			}
			if v.Signature == nil && !errors.Is(err, ErrMissingSignature) {
				t.Fatalf("absent header: %v", err)
			}
			validator, err := NewValidator(Secret{Value: []byte("decoy")}, Secret{KeyID: v.keyID(), Value: []byte(v.Secret)})
			if err != nil {
				t.Fatal(err)
			}
			defer validator.Close()
			verified, err := validator.Verify(v.URL, v.body(), orEmpty(v.Signature), orEmpty(v.SignatureSettings))
			if (err == nil) != v.Expect {
				t.Fatalf("Validator.Verify = %v, expect %v", err, v.Expect)
			}
			report := validator.Explain(v.URL, v.body(), orEmpty(v.Signature), orEmpty(v.SignatureSettings))
			if strings.HasPrefix(report, "valid:") != v.Expect {
				t.Fatalf("Explain: %q", report)
			}
			if !v.Expect {
				return
			}
			accepted++
			if verified.SecretIndex != 1 {
				t.Fatalf("secret index %d", verified.SecretIndex)
			}
			want := HmacSHA1
			if v.Algorithm == "HMAC_SHA256" {
				want = HmacSHA256
			}
			if verified.Algorithm != want {
				t.Fatalf("algorithm %v", verified.Algorithm)
			}
			if verified.Candidate == AsGiven {
				sig, err := Sign([]byte(v.Secret), v.URL, v.body(), orEmpty(v.SignatureSettings))
				if err != nil || sig != *v.Signature {
					t.Fatalf("Sign = %q, %v; want %q", sig, err, *v.Signature)
				}
			}
			tampered := []byte(*v.Signature)
			tampered[0] ^= 1
			if err := Verify([]byte(v.Secret), v.URL, v.body(), string(tampered), orEmpty(v.SignatureSettings)); err == nil {
				t.Fatal("tampered signature accepted")
			}
		})
	}
	if accepted != 121 {
		t.Fatalf("%d vectors accepted, want 121", accepted)
	}
}

func TestErrors(t *testing.T) {
	err := Verify([]byte("12345"), "https://example.com/", nil, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "")
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrSignatureMismatch) || !e.IsMismatch() || e.Code() != 10 {
		t.Fatalf("%v", err)
	}
	if err.Error() != "the signature does not match the request" {
		t.Fatalf("message %q", err.Error())
	}
	err = Verify([]byte("12345"), "https://example.com/", nil, "short", "")
	if !errors.Is(err, ErrMalformedSignature) || err.(*Error).IsMismatch() {
		t.Fatalf("%v", err)
	}
	if _, err := NewValidator(Secret{KeyID: strings.Repeat("k", 65), Value: []byte("x")}); !errors.Is(err, ErrInvalidKeyID) {
		t.Fatalf("long key id: %v", err)
	}
	if Version() != "0.1.0" {
		t.Fatalf("version %q", Version())
	}
}

func TestValidatorLifecycle(t *testing.T) {
	v, err := NewValidator(Secret{Value: []byte("12345")})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("a=1&", 600))
	if err := v.SetMaxParams(500); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify("https://example.com/", body, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ""); !errors.Is(err, ErrTooManyParams) {
		t.Fatalf("over the maximum: %v", err)
	}
	if err := v.SetMaxParams(0); err == nil {
		t.Fatal("max 0 accepted")
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal("second Close")
	}
	if _, err := v.Verify("https://example.com/", nil, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestValidatorIsSafeForConcurrentUse(t *testing.T) {
	v, err := NewValidator(Secret{Value: []byte("other")}, Secret{Value: []byte("12345")})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	body := []byte("CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212")
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 200 {
				verified, err := v.Verify("https://mycompany.com/myapp.php?foo=1&bar=2", body, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "")
				if err == nil && verified.SecretIndex != 1 {
					err = errors.New("wrong secret index")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// NewValidator refuses no secret, and an empty or whitespace-only one (wherever it is in the list),
// with an error that names its position, never its value. Whitespace is the core's rule, reached
// through the C ABI (Go has none of its own): \t \n \v \f \r and space, so "\x0b" counts too.
func TestNewValidatorRefusesUnusableSecrets(t *testing.T) {
	if v, err := NewValidator(); !errors.Is(err, ErrNoSecrets) || v != nil {
		t.Fatalf("no secrets: %v", err)
	}
	for _, unusable := range []string{"", " ", "\n", " \t\r\n\f ", "\x0b", " \x0b "} {
		for _, keyID := range []string{"", "wk_01"} {
			v, err := NewValidator(Secret{Value: []byte("real-token-abc")}, Secret{KeyID: keyID, Value: []byte(unusable)})
			if !errors.Is(err, ErrUnusableSecret) || v != nil {
				t.Fatalf("%q (key id %q): %v", unusable, keyID, err)
			}
			if !strings.Contains(err.Error(), "secret #1") || strings.Contains(err.Error(), "real-token-abc") {
				t.Fatalf("message %q", err.Error())
			}
		}
	}
	if _, err := NewValidator(Secret{Value: []byte(" 12345 ")}); err != nil {
		t.Fatalf("a token with whitespace around it is still a token: %v", err)
	}
}

// The one-shot Verify fails closed with an unusable secret: a request signed with that very key (what
// an attacker who guesses the variable is unset would send) is refused.
func TestVerifyFailsClosedWithAnUnusableSecret(t *testing.T) {
	const url = "https://mycompany.com/myapp.php?foo=1&bar=2"
	body := []byte("CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212")
	signWith := func(key string) string { // Twilio's scheme by hand: URL, then sorted name+value pairs
		mac := hmac.New(sha1.New, []byte(key))
		mac.Write([]byte(url + "CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"))
		return base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	if signWith("12345") != "RSOYDt4T1cUTdK1PDd93/VVr8B8=" {
		t.Fatal("the hand-made signature does not reproduce Twilio's documented example")
	}
	for _, unusable := range []string{"", " ", "\n", " \t\r\n\f ", "\x0b", " \x0b "} {
		if err := Verify([]byte(unusable), url, body, signWith(unusable), ""); !errors.Is(err, ErrSignatureMismatch) {
			t.Fatalf("secret %q: %v", unusable, err)
		}
	}
}
