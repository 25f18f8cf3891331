package wstest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/wstest"
)

// A voice app with Media Streams: /voice answers a call with TwiML that connects it to a stream, and
// /media is the stream. Both sit behind twiliosig.Middleware; Twilio signs the stream's handshake over
// the wss:// URL of <Stream url>, which the middleware verifies (BaseURL https:// makes it wss://).
// The rest of this example plays Twilio against the app on a loopback server.
func Example_mediaStreams() {
	validator, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte("auth token")})
	if err != nil {
		panic(err)
	}
	defer validator.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("POST /voice", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		_, _ = io.WriteString(w, `<Response><Connect><Stream url="wss://hooks.example.com/media"/></Connect></Response>`)
	})
	mux.HandleFunc("GET /media", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil) // the middleware left the connection hijackable
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
		defer cancel()
		var start wstest.Event
		for range 2 { // connected, then start
			start = wstest.Event{}
			if err := wsjson.Read(ctx, c, &start); err != nil {
				return
			}
			fmt.Println("app received:", strings.TrimSpace(start.Event+" "+start.StreamSid))
		}
		mark, _ := wstest.MarkFor(start)
		_ = wsjson.Write(ctx, c, mark)
		_, _, _ = c.Read(ctx) // until Twilio closes the stream
	})
	app := twiliosig.Middleware(validator, twiliosig.Options{BaseURL: "https://hooks.example.com"})(mux)

	server := httptest.NewServer(app) // http.ListenAndServe(":8080", app) behind your TLS proxy
	defer server.Close()

	// Twilio: the call's webhook, then the stream's handshake, each signed.
	body := "CallSid=CA00000000000000000000000000000000&From=%2B15551230000"
	sig, _ := validator.Sign("https://hooks.example.com/voice", []byte(body), "")
	req, _ := http.NewRequest(http.MethodPost, server.URL+"/voice", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", sig)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	twiml, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println("voice:", resp.StatusCode, string(twiml))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	media := "ws" + strings.TrimPrefix(server.URL, "http") + "/media"
	for _, signedURL := range []string{"https://hooks.example.com/media", "wss://hooks.example.com/media"} {
		sig, _ := validator.Sign(signedURL, nil, "")
		c, resp, err := websocket.Dial(ctx, media, &websocket.DialOptions{
			HTTPHeader: http.Header{"X-Twilio-Signature": {sig}}})
		fmt.Println("handshake signed over", signedURL+":", resp.StatusCode)
		if err != nil {
			continue
		}
		for _, e := range wstest.TwilioOpening() {
			_ = wsjson.Write(ctx, c, e)
		}
		var answer wstest.Event
		_ = wsjson.Read(ctx, c, &answer)
		fmt.Println("twilio received:", answer.Event, answer.Mark.Name)
		_ = c.Close(websocket.StatusNormalClosure, "call ended")
	}
	// Output:
	// voice: 200 <Response><Connect><Stream url="wss://hooks.example.com/media"/></Connect></Response>
	// handshake signed over https://hooks.example.com/media: 403
	// handshake signed over wss://hooks.example.com/media: 101
	// app received: connected
	// app received: start MZ00000000000000000000000000000001
	// twilio received: mark greeting-done
}
