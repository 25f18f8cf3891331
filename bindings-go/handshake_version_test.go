//go:build cgo

package twiliosig

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// An HTTP/1.0 GET carrying Upgrade: websocket is never upgraded (RFC 6455 needs HTTP/1.1), so it must
// not be verified over ws://: the handler would run as for a plain GET on a handshake's signature.
func TestAnHTTP10GetWithUpgradeHeadersIsNotAHandshake(t *testing.T) {
	v, err := NewValidator(Secret{Value: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ran := 0
	server := httptest.NewServer(Middleware(v, Options{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran++
	})))
	defer server.Close()
	host := server.Listener.Addr().String()
	for _, tc := range []struct {
		proto, signedFor string
		want             int
	}{
		{"HTTP/1.0", "ws", http.StatusForbidden}, // a handshake's signature on a plain GET: refused
		{"HTTP/1.0", "http", http.StatusOK},      // verified as the plain GET it is
	} {
		path := "/media?call=1"
		sig, err := Sign([]byte(token), tc.signedFor+"://"+host+path, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s %s\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
			"X-Twilio-Signature: %s\r\n\r\n", path, tc.proto, host, sig)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		_ = conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.want {
			t.Fatalf("%s signed for %s://: status %d, want %d", tc.proto, tc.signedFor, resp.StatusCode, tc.want)
		}
	}
	if ran != 1 {
		t.Fatalf("handler ran %d times, want 1", ran)
	}
}
