package twiliosig

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Options configure the middleware.
type Options struct {
	// BaseURL is the public scheme://host[:port] Twilio calls (as configured in the console); the
	// request's raw path and query are appended. When empty, the scheme comes from the connection
	// (TLS or not) and the host from the Host header, unless TrustedProxies says otherwise.
	BaseURL string
	// TrustedProxies are the addresses of reverse proxies whose X-Forwarded-Proto and X-Forwarded-Host
	// are believed (the last value of each, the one the nearest proxy wrote). Requests from other
	// addresses have those headers ignored. Unused when BaseURL is set.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes bounds the body read (default 1 MiB); a larger body is answered 413.
	MaxBodyBytes int64
}

const defaultMaxBodyBytes = 1 << 20

type contextKey struct{}

// VerifiedFrom returns what the middleware verified for this request.
func VerifiedFrom(ctx context.Context) (Verified, bool) {
	v, ok := ctx.Value(contextKey{}).(Verified)
	return v, ok
}

// Middleware verifies each request before calling next: 400 when the X-Twilio-Signature header is
// absent, 403 when the signature does not verify. The body is read once and restored for next; what
// was verified is in the request's context (VerifiedFrom).
func Middleware(v *Validator, opts Options) func(http.Handler) http.Handler {
	maxBody := opts.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = defaultMaxBodyBytes
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			signature := r.Header.Get("X-Twilio-Signature")
			if signature == "" {
				http.Error(w, "missing X-Twilio-Signature", http.StatusBadRequest)
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
				} else {
					http.Error(w, "cannot read the request body", http.StatusBadRequest)
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			settings := r.Header.Get("X-Twilio-Webhooks-Signature-Settings")
			verified, err := v.Verify(PublicURL(r, opts), body, signature, settings)
			if err != nil {
				http.Error(w, "invalid Twilio signature", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), contextKey{}, verified)))
		})
	}
}

// PublicURL is the URL Twilio requested, as the middleware reconstructs it: the base (from
// opts.BaseURL, trusted forwarding headers, or the connection) followed by the raw request target
// exactly as received (never re-encoded).
func PublicURL(r *http.Request, opts Options) string {
	target := r.RequestURI
	if target == "" || !strings.HasPrefix(target, "/") {
		target = r.URL.RequestURI()
	}
	if opts.BaseURL != "" {
		return strings.TrimSuffix(opts.BaseURL, "/") + target
	}
	scheme, host := "http", r.Host
	if r.TLS != nil {
		scheme = "https"
	}
	if fromTrustedProxy(r.RemoteAddr, opts.TrustedProxies) {
		if proto := lastValue(r.Header.Values("X-Forwarded-Proto")); proto != "" {
			scheme = proto
		}
		if fwdHost := lastValue(r.Header.Values("X-Forwarded-Host")); fwdHost != "" {
			host = fwdHost
		}
	}
	return scheme + "://" + host + target
}

func fromTrustedProxy(remoteAddr string, trusted []netip.Prefix) bool {
	if len(trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, prefix := range trusted {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// lastValue is the last comma-separated item of a possibly repeated header: the nearest proxy's.
func lastValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	items := strings.Split(values[len(values)-1], ",")
	return strings.TrimSpace(items[len(items)-1])
}
