// Command outside is a webhook server as a user of the module writes it, built by run.sh in a
// temporary module outside the repository against an installed libtwilio_signature. It serves
// /sms on 127.0.0.1 behind twiliosig.Middleware and posts three requests to itself: signed (200),
// forged (403) and without the header (400).
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
)

const form = "AccountSid=AC00000000000000000000000000000000&Body=Hello&From=%2B15551234567&To=%2B15005550006"

func main() {
	token := []byte("outside-module-token")
	validator, err := twiliosig.NewValidator(twiliosig.Secret{Value: token})
	if err != nil {
		log.Fatal(err)
	}
	defer validator.Close()
	sms := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<Response/>")
	})
	mux := http.NewServeMux()
	mux.Handle("/sms", twiliosig.Middleware(validator, twiliosig.Options{})(sms))
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = http.Serve(listener, mux) }()

	url := "http://" + listener.Addr().String() + "/sms"
	signed, err := twiliosig.Sign(token, url, []byte(form), "")
	if err != nil {
		log.Fatal(err)
	}
	forged, err := twiliosig.Sign([]byte("a guess"), url, []byte(form), "")
	if err != nil {
		log.Fatal(err)
	}
	failed := false
	for _, c := range []struct {
		name, signature string
		want            int
	}{{"signed", signed, 200}, {"forged", forged, 403}, {"no header", "", 400}} {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form))
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if c.signature != "" {
			req.Header.Set("X-Twilio-Signature", c.signature)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Printf("%s: %d\n", c.name, resp.StatusCode)
		failed = failed || resp.StatusCode != c.want
	}
	if failed {
		fmt.Println("FAILED: want signed 200, forged 403, no header 400")
		os.Exit(1)
	}
	fmt.Printf("ok: libtwilio_signature %s\n", twiliosig.Version())
}
