//go:build cgo

package twiliosig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
)

// Options configure the middleware. The zero value is usable: the URL from the connection and the
// Host header, no proxy believed, a 1 MiB body limit, one log/slog warning per refusal.
type Options struct {
	// BaseURL is the public scheme://host[:port] Twilio calls (as configured in the console), plus an
	// optional mount prefix; the request's raw path and query are appended. When empty, the scheme
	// comes from the connection (TLS or not) and the host from the Host header, unless TrustedProxies
	// says otherwise.
	BaseURL string
	// TrustedProxies are the addresses of reverse proxies whose X-Forwarded-Proto and X-Forwarded-Host
	// are believed (the last value of each, the one the nearest proxy wrote); netip.PrefixFrom(addr,
	// addr.BitLen()) is a single host. Requests from other addresses have those headers ignored.
	// Unused for the URL when BaseURL is set.
	TrustedProxies []netip.Prefix
	// MaxBodyBytes bounds the body read (default 1 MiB); a larger body is answered 413, without reading
	// it when its Content-Length says so.
	MaxBodyBytes int64
	// OnReject, when set, is called for every refused request instead of the default log line (the
	// middleware still writes the response). It must not retain the request.
	OnReject func(r *http.Request, rejection Rejection)
	// Logger receives the default line for each refusal (nil: slog.Default()). Unused when OnReject
	// is set.
	Logger *slog.Logger
	// Idempotency, when set, answers Twilio's retries once: verified requests go through
	// Idempotent(Idempotency, IdempotencyOptions) before next (see Idempotent). Use NewMemoryStore for
	// one instance, the redisstore module for several. nil (the default): every request runs next.
	Idempotency IdempotencyStore
	// IdempotencyOptions configure the retry handling when Idempotency is set (zero values: the
	// defaults; a nil Logger means Logger above).
	IdempotencyOptions IdempotencyOptions
}

// Rejection says why the middleware refused a request. Nothing in it carries a secret or the
// signature the request should have had.
type Rejection struct {
	// Status is the HTTP status answered: 400 (no X-Twilio-Signature header, a malformed host, or a
	// believed X-Forwarded-Proto that is not http or https), 500 (no usable validator), 413 (body over
	// MaxBodyBytes), 415 (a form body that is not application/x-www-form-urlencoded), 403 (the
	// signature does not verify).
	Status int
	// Err is the reason: ErrMissingSignature, ErrMalformedHost, ErrMalformedProto, ErrNoValidator,
	// ErrClosed, ErrBodyOverLimit, ErrUnsupportedContentType, or one of the library's refusals
	// (errors.Is against ErrSignatureMismatch...).
	Err error
	// URL is the URL verified (the public URL as the middleware reconstructed it).
	URL string
	// Diagnosis is the likely mistake and its fix (from Explain for a 403), on one line.
	Diagnosis string
	// Ignored names the forwarding headers the request carried that were not believed, and why:
	// "X-Forwarded-Proto, X-Forwarded-Host ignored: from 203.0.113.7, not in TrustedProxies" (or "no
	// TrustedProxies configured"); "" when there were none, or when BaseURL makes them irrelevant.
	Ignored string
}

// String is the refusal as logged: "twilio webhook refused: <status> <reason>; url=<url>;
// <diagnosis>", with control characters escaped so that a hostile header cannot forge log lines.
// An Ignored part, when there is one, comes last: "; X-Forwarded-Proto ignored: ...".
func (r Rejection) String() string {
	line := fmt.Sprintf("twilio webhook refused: %d %s; url=%s; %s",
		r.Status, printable(strings.TrimSuffix(r.Err.Error(), ".")), printable(r.URL), printable(r.Diagnosis))
	if r.Ignored != "" {
		line += "; " + printable(r.Ignored)
	}
	return line
}

// The middleware's own refusals (the library's are the Err* values of its status codes).
var (
	// ErrMalformedHost: the Host header, or a believed X-Forwarded-Host, is empty or contains
	// / ? # @ \, whitespace or a control character, any of which could move the verified URL, or a
	// comma (several hosts in one value).
	ErrMalformedHost = errors.New("twiliosig: malformed host")
	// ErrMalformedProto: the X-Forwarded-Proto a trusted proxy sent (its last value) is neither http
	// nor https (in any case), so it cannot be the scheme of the verified URL.
	ErrMalformedProto = errors.New("twiliosig: the X-Forwarded-Proto header is not http or https")
	// ErrNoValidator: Middleware was given a nil *Validator.
	ErrNoValidator = errors.New("twiliosig: Middleware has no validator")
	// ErrBodyOverLimit: the body is larger than Options.MaxBodyBytes.
	ErrBodyOverLimit = errors.New("twiliosig: the body is larger than MaxBodyBytes")
	// ErrUnsupportedContentType: a non-empty body verified as a form (the URL has no bodySHA256) whose
	// Content-Type is not application/x-www-form-urlencoded, or missing. The refusal's Err wraps it
	// and names the type received.
	ErrUnsupportedContentType = errors.New("twiliosig: unsupported content type for a form body")
)

// contentTypeError is the 415's reason: the media type received, or none at all (missing).
type contentTypeError struct {
	mediaType string
	missing   bool
}

func (e *contentTypeError) Error() string {
	if e.missing {
		return "no content type for a form body"
	}
	return fmt.Sprintf("unsupported content type %q for a form body", e.mediaType)
}

func (e *contentTypeError) Unwrap() error { return ErrUnsupportedContentType }

const formContentTypeDiagnosis = "Twilio sends form webhooks as application/x-www-form-urlencoded; " +
	"a body verified as a form must carry that type"

const defaultMaxBodyBytes = 1 << 20

type contextKey struct{}

// VerifiedFrom returns what the middleware verified for this request.
func VerifiedFrom(ctx context.Context) (Verified, bool) {
	v, ok := ctx.Value(contextKey{}).(Verified)
	return v, ok
}

// Middleware verifies each request before calling next, in this order: 400 when the
// X-Twilio-Signature header is absent (the body unread); 400 when the Host header or a believed
// X-Forwarded-Host is not a plain host, or a believed X-Forwarded-Proto is not http or https; 500 when
// v is nil or closed (the body unread); 413 when the body is over MaxBodyBytes (unread when its
// Content-Length says so, otherwise at most MaxBodyBytes+1 bytes are read); 415 when a non-empty body
// verified as a form (the URL has no bodySHA256) does not carry Content-Type
// application/x-www-form-urlencoded (parameters such as charset allowed; see checkContentType); 403
// when the signature does not verify (the body counts whatever the method). Each refusal is logged
// once (or given to OnReject). The body is read once and restored for next; what was verified is in
// the request's context (VerifiedFrom).
//
// A WebSocket handshake (an HTTP/1.1 GET with Upgrade: websocket and Connection: upgrade, or an HTTP/2
// extended CONNECT with :protocol websocket) is verified against the wss:// URL (ws:// when the
// public scheme is http; see PublicURL), with no body. It reaches next with the server's own
// ResponseWriter (never wrapped, so http.Hijacker works and coder/websocket or gorilla/websocket can
// upgrade); a refused one is answered with a plain 400/403, never a 101.
// With Options.Idempotency set, a verified request reaches next through Idempotent: a Twilio retry
// gets the first delivery's stored response and next runs once per delivery.
func Middleware(v *Validator, opts Options) func(http.Handler) http.Handler {
	g := &guard{validator: v, opts: opts, maxBody: opts.MaxBodyBytes, basePath: basePath(opts.BaseURL)}
	if g.maxBody <= 0 {
		g.maxBody = defaultMaxBodyBytes
	}
	return func(next http.Handler) http.Handler {
		if opts.Idempotency != nil {
			retries := opts.IdempotencyOptions
			if retries.Logger == nil {
				retries.Logger = opts.Logger
			}
			next = Idempotent(opts.Idempotency, retries)(next)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			g.warnRepeatedRoute(r)
			verified, rejection := g.check(w, r)
			if rejection != nil {
				g.reject(w, r, *rejection)
				return
			}
			// The one place a verified request goes on.
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), contextKey{}, verified)))
		})
	}
}

type guard struct {
	validator *Validator
	opts      Options
	maxBody   int64
	// basePath is BaseURL's path without its trailing slash ("" for an origin): checked against
	// request paths until warnedRoute.
	basePath    string
	warnedRoute atomic.Bool
}

func (g *guard) logger() *slog.Logger {
	if g.opts.Logger != nil {
		return g.opts.Logger
	}
	return slog.Default()
}

// basePath is the path of a base URL (scheme://authority/path), without its trailing slash.
func basePath(base string) string {
	_, rest, ok := strings.Cut(base, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 && rest[i] == '/' {
		path, _, _ := strings.Cut(rest[i:], "?")
		path, _, _ = strings.Cut(path, "#")
		return strings.TrimRight(path, "/")
	}
	return ""
}

// warnRepeatedRoute warns once, on the first request whose path starts with the segments BaseURL's
// path ends with: BaseURL "https://h/twilio/sms" with the route /twilio/sms verifies
// https://h/twilio/sms/twilio/sms, which Twilio never signed (a route pasted into BaseURL).
func (g *guard) warnRepeatedRoute(r *http.Request) {
	if g.basePath == "" || g.warnedRoute.Load() {
		return
	}
	path, _, _ := strings.Cut(requestTarget(r), "?")
	overlap := repeatedSegments(g.basePath, path)
	if overlap == "" || !g.warnedRoute.CompareAndSwap(false, true) {
		return
	}
	g.logger().WarnContext(r.Context(), printable(fmt.Sprintf("BaseURL %q ends with %q, which the request path %q starts with: "+
		"the URL verified is %q. Give BaseURL as the public origin plus only the mount prefix the app does not see "+
		"(usually just the origin).", g.opts.BaseURL, overlap, path, PublicURL(r, g.opts))))
}

// repeatedSegments is the longest run of base's last path segments that path starts with, as
// "/a/b" ("" when there is none).
func repeatedSegments(base, path string) string {
	baseSegments := strings.Split(strings.TrimPrefix(base, "/"), "/")
	pathSegments := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for k := min(len(baseSegments), len(pathSegments)); k >= 1; k-- {
		tail := baseSegments[len(baseSegments)-k:]
		if slices.Equal(tail, pathSegments[:k]) && !(k == 1 && tail[0] == "") {
			return "/" + strings.Join(tail, "/")
		}
	}
	return ""
}

// check runs the checks in the order of Middleware's documentation; on success r.Body holds the body
// again for the next handler.
func (g *guard) check(w http.ResponseWriter, r *http.Request) (Verified, *Rejection) {
	url := PublicURL(r, g.opts)
	signature := r.Header.Get("X-Twilio-Signature")
	if signature == "" {
		return Verified{}, refusal(http.StatusBadRequest, ErrMissingSignature, url,
			"the request was not sent by Twilio (or a proxy dropped the header)")
	}
	if err := checkHosts(r, g.opts); err != nil {
		return Verified{}, refusal(http.StatusBadRequest, err, url,
			"a host with / ? # @ \\, whitespace or control characters could move the URL, and a comma is what servers make of several Host lines")
	}
	if err := checkProto(r, g.opts); err != nil {
		return Verified{}, refusal(http.StatusBadRequest, err, url, "check what the trusted proxy sends")
	}
	// The app's misconfiguration: after the client's 400s (an unsigned scanner is not told 500),
	// before the body is read.
	if g.validator == nil {
		return Verified{}, refusal(http.StatusInternalServerError, ErrNoValidator,
			url, "build one with NewValidator and the Auth Token")
	}
	if !g.validator.open() {
		return Verified{}, refusal(http.StatusInternalServerError, ErrClosed, url, closedDiagnosis)
	}
	var body []byte // an HTTP/2 extended CONNECT's body is the WebSocket stream itself: nothing of it is signed
	if r.Method != http.MethodConnect || !isWebSocketUpgrade(r) {
		var rejection *Rejection
		if body, rejection = g.readBody(w, r, url); rejection != nil {
			return Verified{}, rejection
		}
	}
	if err := checkContentType(r, url, body); err != nil {
		return Verified{}, refusal(http.StatusUnsupportedMediaType, err, url, formContentTypeDiagnosis)
	}
	settings := r.Header.Get("X-Twilio-Webhooks-Signature-Settings")
	verified, err := g.validator.Verify(url, body, signature, settings)
	switch {
	case errors.Is(err, ErrClosed): // closed since the check above
		return Verified{}, refusal(http.StatusInternalServerError, err, url, closedDiagnosis)
	case err != nil:
		return Verified{}, refusal(http.StatusForbidden, err, url,
			diagnosis(g.validator.Explain(url, body, signature, settings)))
	}
	return verified, nil
}

// refusal is a Rejection without its Ignored part (reject adds it).
func refusal(status int, err error, url, diagnosis string) *Rejection {
	return &Rejection{Status: status, Err: err, URL: url, Diagnosis: diagnosis}
}

// readBody reads the body, bounded by MaxBodyBytes (413 over it), and puts it back for next.
func (g *guard) readBody(w http.ResponseWriter, r *http.Request, url string) ([]byte, *Rejection) {
	tooLarge := refusal(http.StatusRequestEntityTooLarge, ErrBodyOverLimit, url,
		fmt.Sprintf("Twilio's webhooks are small; raise MaxBodyBytes (%d) if yours really are larger", g.maxBody))
	if r.ContentLength > g.maxBody {
		return nil, tooLarge
	}
	if r.Body == nil { // a client-side request handed straight to the handler
		r.Body = http.NoBody
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.maxBody))
	if err != nil {
		var overLimit *http.MaxBytesError
		if errors.As(err, &overLimit) {
			return nil, tooLarge
		}
		return nil, refusal(http.StatusBadRequest, fmt.Errorf("twiliosig: reading the body: %w", err),
			url, "the client stopped sending the body")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

const closedDiagnosis = "the validator was closed while the server still uses it"

// open reports whether v has not been closed.
func (v *Validator) open() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.handle != nil
}

// reject reports the refusal (OnReject, or one log line) and answers its status.
func (g *guard) reject(w http.ResponseWriter, r *http.Request, rejection Rejection) {
	rejection.Ignored = ignoredForwarding(r, g.opts)
	if g.opts.OnReject != nil {
		g.opts.OnReject(r, rejection)
	} else {
		g.logger().WarnContext(r.Context(), rejection.String())
	}
	http.Error(w, http.StatusText(rejection.Status), rejection.Status)
}

// diagnosis is Explain's report after its verdict line, on one line.
func diagnosis(report string) string {
	var lines []string
	for _, line := range strings.Split(report, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) > 0 && strings.HasPrefix(lines[0], "invalid:") {
		lines = lines[1:]
	}
	if len(lines) == 0 {
		return "no common mistake explains it: check the token and the URL Twilio calls"
	}
	return strings.Join(lines, " ")
}

// printable escapes control characters (C0, DEL and C1 as \xNN) and the line and paragraph
// separators (U+2028, U+2029 as \uNNNN), so that a header cannot start a new log line.
func printable(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, c := range s {
		switch {
		case !isControl(c):
			b.WriteRune(c)
		case c <= 0xff:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			fmt.Fprintf(&b, "\\u%04x", c)
		}
	}
	return b.String()
}

func isControl(c rune) bool {
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029
}

// isWebSocketUpgrade: an HTTP/1.1 GET with Upgrade: websocket and a Connection header holding the
// token "upgrade" (both case-insensitive), or an HTTP/2 extended CONNECT whose :protocol is websocket
// (net/http's HTTP/2 server, with GODEBUG=http2xconnect=1, keeps that pseudo-header in r.Header).
func isWebSocketUpgrade(r *http.Request) bool {
	if r.Method == http.MethodConnect && r.ProtoMajor >= 2 {
		protocol := r.Header[":protocol"]
		return len(protocol) == 1 && strings.EqualFold(protocol[0], "websocket")
	}
	// Any HTTP/1.x version: net/http hijacks an HTTP/1.0 connection too, and a library that upgrades
	// it (gorilla does not check the version) must find it verified over ws(s)://.
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return false
	}
	return headerHasToken(r.Header, "Connection", "upgrade")
}

// headerHasToken: one of the comma-separated items of the header's lines is token, in any case.
func headerHasToken(h http.Header, name, token string) bool {
	for _, value := range h.Values(name) {
		for item := range strings.SplitSeq(value, ",") {
			if strings.EqualFold(strings.Trim(item, asciiWhitespace), token) {
				return true
			}
		}
	}
	return false
}

// checkContentType refuses a non-empty body that the library will verify as a form (url has no
// bodySHA256) unless its Content-Type's media type is application/x-www-form-urlencoded. Why: the
// signature covers the decoded form, but net/http parses the body by its Content-Type; a captured
// signed form re-sent as multipart/form-data with the same decoded fields (a Body the attacker wrote
// carrying a multipart part) verifies, yet r.FormValue would return fields that were never signed. A
// bodySHA256 body is checked by its hash whatever its type; an empty body (a GET, a WebSocket
// handshake) needs none. More than one Content-Type line is refused too: which one a parser takes is
// not ours to guess.
func checkContentType(r *http.Request, url string, body []byte) error {
	if len(body) == 0 || hasBodySHA256(url) {
		return nil
	}
	values := r.Header.Values("Content-Type")
	switch {
	case len(values) == 0:
		return &contentTypeError{missing: true}
	case len(values) > 1:
		return &contentTypeError{mediaType: strings.Join(values, ", ")}
	}
	mediaType, _, _ := strings.Cut(values[0], ";")
	mediaType = strings.Trim(mediaType, asciiWhitespace)
	if !strings.EqualFold(mediaType, "application/x-www-form-urlencoded") {
		return &contentTypeError{mediaType: mediaType}
	}
	return nil
}

// hasBodySHA256 is the core's rule for an opaque body: a bodySHA256 name (alone or before '=') among
// the '&'-separated items of the URL's query, which runs from the first '?' (if it comes before any
// '#') to the next '#'.
func hasBodySHA256(url string) bool {
	i := strings.IndexAny(url, "?#")
	if i < 0 || url[i] == '#' {
		return false
	}
	query, _, _ := strings.Cut(url[i+1:], "#")
	for item := range strings.SplitSeq(query, "&") {
		if item == "bodySHA256" || strings.HasPrefix(item, "bodySHA256=") {
			return true
		}
	}
	return false
}

// forwardingHeaders are the headers a proxy uses to pass on the public URL, in the order a refusal
// names them.
var forwardingHeaders = []string{"X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "Forwarded"}

// ignoredForwarding says which forwarding headers the request carried that were not believed, and
// why (the peer is not a trusted proxy, or none is configured): a 403 behind a proxy that the app
// does not trust otherwise looks like a wrong token. Without BaseURL only: with it the URL does not
// depend on them. (A trusted proxy's X-Forwarded-Port and Forwarded are not read either; the URL
// comes from its X-Forwarded-Proto and X-Forwarded-Host.)
func ignoredForwarding(r *http.Request, opts Options) string {
	if opts.BaseURL != "" {
		return ""
	}
	var present []string
	for _, name := range forwardingHeaders {
		if _, ok := r.Header[name]; ok {
			present = append(present, name)
		}
	}
	switch {
	case len(present) == 0:
		return ""
	case len(opts.TrustedProxies) == 0:
		return strings.Join(present, ", ") + " ignored: no TrustedProxies configured"
	case fromTrustedProxy(r.RemoteAddr, opts.TrustedProxies):
		return ""
	}
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	return strings.Join(present, ", ") + " ignored: from " + peer + ", not in TrustedProxies"
}

// checkHosts refuses a Host header, or an X-Forwarded-Host from a trusted proxy, that is not a plain
// host[:port]: such a value could move the URL verified (a path, a query, userinfo...).
func checkHosts(r *http.Request, opts Options) error {
	// net/http refuses a second Host line over HTTP/1.1 and moves the one Host out of r.Header; a
	// server that leaves several there (HTTP/2 may) gets them refused here (RFC 9112 section 3.2).
	if len(r.Header.Values("Host")) > 1 {
		return fmt.Errorf("%w: more than one Host header", ErrMalformedHost)
	}
	if badHost(r.Host) {
		return fmt.Errorf("%w: the Host header %q", ErrMalformedHost, r.Host)
	}
	if fromTrustedProxy(r.RemoteAddr, opts.TrustedProxies) {
		// An empty last value is not used (PublicURL falls back to Host), so it is not refused.
		if host := lastValue(r.Header.Values("X-Forwarded-Host")); host != "" && badHost(host) {
			return fmt.Errorf("%w: the X-Forwarded-Host header %q", ErrMalformedHost, host)
		}
	}
	return nil
}

// checkProto refuses a trusted proxy's X-Forwarded-Proto (its last value) that is neither http nor
// https, in any case, when it would be the scheme of the URL (no BaseURL): the tower layer's rule.
func checkProto(r *http.Request, opts Options) error {
	if opts.BaseURL != "" || !fromTrustedProxy(r.RemoteAddr, opts.TrustedProxies) {
		return nil
	}
	proto := lastValue(r.Header.Values("X-Forwarded-Proto"))
	if proto != "" && !strings.EqualFold(proto, "http") && !strings.EqualFold(proto, "https") {
		return fmt.Errorf("%w: %q", ErrMalformedProto, proto)
	}
	return nil
}

// badHost: empty, or any of / ? # @ \, ASCII whitespace or a control character, or a comma (several
// hosts: what servers and proxies make of repeated Host lines; net/http refuses those itself).
func badHost(host string) bool {
	return host == "" || strings.ContainsFunc(host, func(c rune) bool {
		return c <= ' ' || c == 0x7f || strings.ContainsRune(`/?#@\,`, c)
	})
}

// PublicURL is the URL Twilio requested, as the middleware reconstructs it: the base (from
// opts.BaseURL, trusted forwarding headers, or the connection) followed by the raw request target
// exactly as received (never re-encoded). For a WebSocket handshake (see Middleware) the scheme is
// wss when the public scheme is https, ws when it is http: Twilio signs a Media Streams or
// ConversationRelay handshake over the wss:// URL it was given. It does not check the host or the
// forwarded scheme (the middleware does first).
func PublicURL(r *http.Request, opts Options) string {
	url := httpURL(r, opts)
	if isWebSocketUpgrade(r) {
		return webSocketURL(url)
	}
	return url
}

// webSocketURL is url with https:// (in any case) made wss:// and http:// made ws://.
func webSocketURL(url string) string {
	for _, s := range [...]struct{ http, ws string }{{"https://", "wss://"}, {"http://", "ws://"}} {
		if len(url) >= len(s.http) && strings.EqualFold(url[:len(s.http)], s.http) {
			return s.ws + url[len(s.http):]
		}
	}
	return url
}

// httpURL is PublicURL for a plain HTTP request.
func httpURL(r *http.Request, opts Options) string {
	target := requestTarget(r)
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

// requestTarget is the raw path and query as received (r.URL's when the request was built by hand or
// its target was not origin-form).
func requestTarget(r *http.Request) string {
	if target := r.RequestURI; strings.HasPrefix(target, "/") {
		return target
	}
	return r.URL.RequestURI()
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

// lastValue is the last comma-separated item of a possibly repeated header: the nearest proxy's,
// trimmed of ASCII whitespace only (as the tower layer and the Python helpers trim: strings.TrimSpace
// would also drop NBSP or NEL and so accept "https\u00a0").
func lastValue(values []string) string {
	if len(values) == 0 {
		return ""
	}
	items := strings.Split(values[len(values)-1], ",")
	return strings.Trim(items[len(items)-1], asciiWhitespace)
}

// asciiWhitespace is what Rust's trim_ascii and the Python helpers trim.
const asciiWhitespace = " \t\n\x0c\r"
