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

// An HTTP/1.0 GET carrying the upgrade headers is still verified as a handshake, over ws://: net/http
// lets the handler hijack it, and gorilla/websocket upgrades it without checking the version, so a
// plain GET's signature (over http://) must not open a stream.
func TestAnHTTP10HandshakeIsStillVerifiedOverWS(t *testing.T) {
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
		{"HTTP/1.0", "http", http.StatusForbidden}, // a plain GET's signature on a handshake: refused
		{"HTTP/1.0", "ws", http.StatusOK},          // the handshake's own signature
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
