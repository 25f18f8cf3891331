// Package twiliosig verifies Twilio webhook signatures (X-Twilio-Signature) with the twilio-signature
// C library: HMAC-SHA1 with the Auth Token, HMAC-SHA256 with SharedKeys, form and JSON (bodySHA256)
// bodies, several secrets for rotation, and net/http middleware.
//
// The package needs cgo and the installed C library, found with pkg-config (twilio_signature; with
// -tags twiliosig_static, twilio_signature-static): `make install-c PREFIX=...` in the twilio-signature
// repository installs it. See README.md for shared and static builds.
//
// Inputs are passed to C as flat byte buffers only (no Go pointers inside them), as the cgo pointer
// rules require. An empty signature or settings string means the header is absent, as with
// http.Header.Get.
package twiliosig

/*
#include <stdlib.h>
#include "twilio_signature.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Error is a refusal from the library; compare with errors.Is against the Err* values.
type Error struct {
	code C.int
}

func (e *Error) Error() string { return C.GoString(C.tws_status_message(e.code)) }

// Code is the library's numbered status (see include/twilio_signature.h).
func (e *Error) Code() int { return int(e.code) }

// IsMismatch is true when the request was well formed but not signed by any secret (or its body was
// altered), false for malformed input.
func (e *Error) IsMismatch() bool { return bool(C.tws_status_is_mismatch(e.code)) }

// Is makes errors.Is match errors with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.code == e.code
}

// The refusals.
var (
	ErrMissingSignature     = &Error{C.TWS_MISSING_SIGNATURE}
	ErrMalformedSignature   = &Error{C.TWS_MALFORMED_SIGNATURE}
	ErrMalformedSettings    = &Error{C.TWS_MALFORMED_SETTINGS}
	ErrUnsupportedAlgorithm = &Error{C.TWS_UNSUPPORTED_ALGORITHM}
	ErrMalformedBody        = &Error{C.TWS_MALFORMED_BODY}
	ErrBodyTooLarge         = &Error{C.TWS_BODY_TOO_LARGE}
	ErrTooManyParams        = &Error{C.TWS_TOO_MANY_PARAMS}
	ErrNoEligibleSecret     = &Error{C.TWS_NO_ELIGIBLE_SECRET}
	ErrSignatureMismatch    = &Error{C.TWS_SIGNATURE_MISMATCH}
	ErrBodyHashMismatch     = &Error{C.TWS_BODY_HASH_MISMATCH}
	ErrInvalidKeyID         = &Error{C.TWS_INVALID_KEY_ID}
	// ErrUnusableSecret: NewValidator was given a secret that is empty or only whitespace (the core's
	// rule, through the C ABI: \t \n \v \f \r and space), such as an unset environment variable
	// read as "" or "\n"; it would match nothing.
	ErrUnusableSecret = &Error{C.TWS_UNUSABLE_SECRET}
	// ErrNoSecrets: NewValidator was given no secret at all.
	ErrNoSecrets = errors.New("twiliosig: NewValidator needs at least one secret (the Auth Token)")
	ErrClosed    = errors.New("twiliosig: validator is closed")
)

func status(code C.int) error {
	if code == C.TWS_OK {
		return nil
	}
	return &Error{code}
}

// buf is a flat C view of Go bytes: a pointer and a length, NULL for "absent".
type buf struct {
	ptr *C.uint8_t
	len C.size_t
}

// bytesOf views b (never absent: an empty slice is the empty buffer).
func bytesOf(b []byte) buf {
	if len(b) == 0 {
		return buf{}
	}
	return buf{(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b))}
}

// stringOf views s; "" is NULL with length 0 (the empty buffer, or an absent header).
func stringOf(s string) buf {
	if s == "" {
		return buf{}
	}
	return buf{(*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), C.size_t(len(s))}
}

// Candidate says which form of the URL was signed.
type Candidate int

// The URL candidates, in the order they are tried.
const (
	AsGiven Candidate = iota
	PortToggled
	WithoutUserinfo
	WithoutUserinfoPortToggled
)

// Algorithm is the HMAC of a signature.
type Algorithm int

// The algorithms.
const (
	HmacSHA1   Algorithm = C.TWS_ALGORITHM_HMAC_SHA1
	HmacSHA256 Algorithm = C.TWS_ALGORITHM_HMAC_SHA256
)

// Verified reports a successful verification.
type Verified struct {
	SecretIndex int       // which secret matched, in the order given
	Candidate   Candidate // which form of the URL was signed
	Algorithm   Algorithm
	ReplayKey   [32]byte // store it for a few minutes to refuse a replay
}

// Verify checks one request against one secret. url is the public URL Twilio requested, body the raw
// body (form, or JSON when the URL carries bodySHA256), signature the X-Twilio-Signature header and
// settings the X-Twilio-Webhooks-Signature-Settings header ("" when absent). A secret that is empty or
// only whitespace (\t \n \v \f \r, space) matches nothing (ErrSignatureMismatch); NewValidator
// refuses it up front.
func Verify(secret []byte, url string, body []byte, signature, settings string) error {
	s, u, b, sig, set := bytesOf(secret), stringOf(url), bytesOf(body), stringOf(signature), stringOf(settings)
	code := C.tws_verify(s.ptr, s.len, u.ptr, u.len, b.ptr, b.len, sig.ptr, sig.len, set.ptr, set.len)
	runtime.KeepAlive(secret)
	runtime.KeepAlive(body)
	return status(code)
}

// text calls a C function that writes text into a buffer, growing it once when too small.
func text(call func(out *C.uint8_t, capacity C.size_t, written *C.size_t) C.int) (string, error) {
	out := make([]byte, 256)
	for {
		var written C.size_t
		code := call((*C.uint8_t)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &written)
		if code == C.TWS_BUFFER_TOO_SMALL && int(written) >= len(out) {
			out = make([]byte, int(written)+1)
			continue
		}
		if err := status(code); err != nil {
			return "", err
		}
		return string(out[:written]), nil
	}
}

// Sign computes the signature Twilio would send for a request (settings, if not "", chooses the
// algorithm).
func Sign(secret []byte, url string, body []byte, settings string) (string, error) {
	s, u, b, set := bytesOf(secret), stringOf(url), bytesOf(body), stringOf(settings)
	sig, err := text(func(out *C.uint8_t, capacity C.size_t, written *C.size_t) C.int {
		return C.tws_sign(s.ptr, s.len, u.ptr, u.len, b.ptr, b.len, set.ptr, set.len, out, capacity, written)
	})
	runtime.KeepAlive(secret)
	runtime.KeepAlive(body)
	return sig, err
}

// Explain reports the verdict on a request and, when it fails, which common mistake (http vs https, a
// port, a trailing slash, a JSON body verified as a form...) would have made it match.
func Explain(secret []byte, url string, body []byte, signature, settings string) string {
	s, u, b, sig, set := bytesOf(secret), stringOf(url), bytesOf(body), stringOf(signature), stringOf(settings)
	report, err := text(func(out *C.uint8_t, capacity C.size_t, written *C.size_t) C.int {
		return C.tws_explain(s.ptr, s.len, u.ptr, u.len, b.ptr, b.len, sig.ptr, sig.len, set.ptr, set.len,
			out, capacity, written)
	})
	runtime.KeepAlive(secret)
	runtime.KeepAlive(body)
	if err != nil {
		return "error: " + err.Error()
	}
	return report
}

// Secret is an Auth Token or a SharedKey secret; KeyID ("" for none) is the SharedKey id that a
// request's settings header names.
type Secret struct {
	KeyID string
	Value []byte
}

// Validator verifies requests against several secrets (key rotation, subaccounts, SharedKeys). It is
// safe for concurrent use. Close frees it; a finalizer-like cleanup frees it if Close is never called.
type Validator struct {
	mu      sync.RWMutex
	handle  *C.tws_validator
	cleanup runtime.Cleanup
}

// DefaultMaxParams is how many form parameters a request may have unless SetMaxParams says otherwise.
const DefaultMaxParams = C.TWS_DEFAULT_MAX_PARAMS

// NewValidator builds a validator; secrets are tried in order. It refuses no secrets (ErrNoSecrets)
// and a secret that is empty or only whitespace, \t \n \v \f \r or space (ErrUnusableSecret,
// wrapped with the secret's position, never its value), so a missing Auth Token fails at start-up
// instead of refusing every request.
func NewValidator(secrets ...Secret) (*Validator, error) {
	if len(secrets) == 0 {
		return nil, ErrNoSecrets
	}
	var handle *C.tws_validator
	if err := status(C.tws_validator_new(&handle)); err != nil {
		return nil, err
	}
	for i, s := range secrets {
		id, value := stringOf(s.KeyID), bytesOf(s.Value) // KeyID "": NULL, 0 (no key id)
		code := C.tws_validator_add_secret(handle, id.ptr, id.len, value.ptr, value.len)
		runtime.KeepAlive(s.Value)
		if err := status(code); err != nil {
			C.tws_validator_free(handle)
			return nil, fmt.Errorf("twiliosig: secret #%d: %w", i, err)
		}
	}
	v := &Validator{handle: handle}
	v.cleanup = runtime.AddCleanup(v, func(h *C.tws_validator) { C.tws_validator_free(h) }, handle)
	return v, nil
}

// SetMaxParams bounds the number of form parameters (default DefaultMaxParams).
func (v *Validator) SetMaxParams(max int) error {
	if max <= 0 {
		return &Error{C.TWS_INVALID_PARAMETER}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.handle == nil {
		return ErrClosed
	}
	return status(C.tws_validator_set_max_params(v.handle, C.size_t(max)))
}

// Verify checks one request (see the package-level Verify) against the validator's secrets.
func (v *Validator) Verify(url string, body []byte, signature, settings string) (Verified, error) {
	u, b, sig, set := stringOf(url), bytesOf(body), stringOf(signature), stringOf(settings)
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.handle == nil {
		return Verified{}, ErrClosed
	}
	var out C.tws_verified
	code := C.tws_validator_verify(v.handle, u.ptr, u.len, b.ptr, b.len, sig.ptr, sig.len, set.ptr, set.len, &out)
	runtime.KeepAlive(body)
	if err := status(code); err != nil {
		return Verified{}, err
	}
	verified := Verified{
		SecretIndex: int(out.secret_index),
		Candidate:   Candidate(out.candidate),
		Algorithm:   Algorithm(out.algorithm),
	}
	for i := range verified.ReplayKey {
		verified.ReplayKey[i] = byte(out.replay_key[i])
	}
	return verified, nil
}

// Explain is the package-level Explain over the validator's secrets.
func (v *Validator) Explain(url string, body []byte, signature, settings string) string {
	u, b, sig, set := stringOf(url), bytesOf(body), stringOf(signature), stringOf(settings)
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.handle == nil {
		return "error: " + ErrClosed.Error()
	}
	report, err := text(func(out *C.uint8_t, capacity C.size_t, written *C.size_t) C.int {
		return C.tws_validator_explain(v.handle, u.ptr, u.len, b.ptr, b.len, sig.ptr, sig.len, set.ptr, set.len,
			out, capacity, written)
	})
	runtime.KeepAlive(body)
	if err != nil {
		return "error: " + err.Error()
	}
	return report
}

// Sign signs a request with the first secret its settings header allows.
func (v *Validator) Sign(url string, body []byte, settings string) (string, error) {
	u, b, set := stringOf(url), bytesOf(body), stringOf(settings)
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.handle == nil {
		return "", ErrClosed
	}
	sig, err := text(func(out *C.uint8_t, capacity C.size_t, written *C.size_t) C.int {
		return C.tws_validator_sign(v.handle, u.ptr, u.len, b.ptr, b.len, set.ptr, set.len, out, capacity, written)
	})
	runtime.KeepAlive(body)
	return sig, err
}

// Close frees the validator; later calls return ErrClosed. Closing twice is harmless.
func (v *Validator) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.handle != nil {
		v.cleanup.Stop()
		C.tws_validator_free(v.handle)
		v.handle = nil
	}
	return nil
}

// Version is the C library's version.
func Version() string { return C.GoString(C.tws_version()) }
