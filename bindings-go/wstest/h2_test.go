package wstest_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/idempotencytest"
)

// An HTTP/2 WebSocket handshake (RFC 8441 extended CONNECT with :protocol websocket) is verified
// against wss:// too, and its body, which is the stream itself, is left unread for the handler.
// Neither WebSocket library speaks HTTP/2, so the stream here is raw bytes through the CONNECT
// tunnel, over a real TLS HTTP/2 server on loopback and golang.org/x/net/http2's client. net/http enables
// extended CONNECT only with GODEBUG=http2xconnect=1, read when the process starts: the test runs
// itself again with it.
func TestAnHTTP2ExtendedConnectHandshakeIsVerifiedOverWss(t *testing.T) {
	const name = "TestAnHTTP2ExtendedConnectHandshakeIsVerifiedOverWss"
	if !strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "GODEBUG=http2xconnect=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
			t.Fatalf("with GODEBUG=http2xconnect=1: %v\n%s", err, out)
		}
		return
	}

	v, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte(authToken)})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	logs := &idempotencytest.SyncBuffer{}
	var runs atomic.Int64
	tunnel := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if _, ok := twiliosig.VerifiedFrom(r.Context()); !ok || r.ProtoMajor != 2 || r.Method != http.MethodConnect {
			http.Error(w, "not a verified HTTP/2 handshake", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK) // the stream is open
		_ = http.NewResponseController(w).Flush()
		hello := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, hello); err != nil {
			return
		}
		_, _ = w.Write([]byte(strings.ToUpper(string(hello))))
		_ = http.NewResponseController(w).Flush()
	})
	srv := httptest.NewUnstartedServer(twiliosig.Middleware(v, twiliosig.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})(tunnel))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")

	open := func(signedURL string) (*http.Response, *io.PipeWriter) {
		t.Helper()
		sig, err := twiliosig.Sign([]byte(authToken), signedURL, nil, "")
		if err != nil {
			t.Fatal(err)
		}
		stream, send := io.Pipe()
		req, err := http.NewRequest(http.MethodConnect, srv.URL+"/media?call=3", stream)
		if err != nil {
			t.Fatal(err)
		}
		req.Header[":protocol"] = []string{"websocket"}
		req.Header.Set("X-Twilio-Signature", sig)
		// net/http's own client refuses a ":protocol" header; x/net/http2's sends it.
		tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig
		client := &http.Client{Transport: &http2.Transport{TLSClientConfig: tlsConfig}, Timeout: 10 * time.Second}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, send
	}

	resp, send := open("wss://" + host + "/media?call=3")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("signed over wss://: %d %s; log %s", resp.StatusCode, resp.Proto, logs.String())
	}
	if _, err := send.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	echoed := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, echoed); err != nil || string(echoed) != "HELLO" {
		t.Fatalf("through the tunnel: %q %v", echoed, err)
	}
	_ = send.Close()
	resp.Body.Close()

	for _, signedURL := range []string{"https://" + host + "/media?call=3", "wss://" + host + "/media?call=4"} {
		resp, send := open(signedURL)
		_ = send.Close()
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("signed over %s: %d", signedURL, resp.StatusCode)
		}
	}
	if runs.Load() != 1 || !strings.Contains(logs.String(), "url=wss://"+host+"/media?call=3;") {
		t.Fatalf("runs %d, log %s", runs.Load(), logs.String())
	}
}
