//go:build cgo

package twiliosig_test

import (
	"fmt"
	"log"
	"net/http"
	"strings"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
)

func Example() {
	body := []byte("CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212")
	err := twiliosig.Verify([]byte("12345"), "https://mycompany.com/myapp.php?foo=1&bar=2", body,
		"RSOYDt4T1cUTdK1PDd93/VVr8B8=", "")
	fmt.Println(err)

	// Twilio called https://, the app saw http:// (a TLS-terminating proxy): Explain says so.
	report := twiliosig.Explain([]byte("12345"), "http://mycompany.com/myapp.php?foo=1&bar=2", body,
		"RSOYDt4T1cUTdK1PDd93/VVr8B8=", "")
	first, _, _ := strings.Cut(report, "\n")
	fmt.Println(first)
	// Output:
	// <nil>
	// invalid: the signature does not match the request.
}

func ExampleMiddleware() {
	validator, err := twiliosig.NewValidator(
		twiliosig.Secret{Value: []byte("primary auth token")},
		twiliosig.Secret{Value: []byte("secondary auth token")}, // during rotation
	)
	if err != nil {
		log.Fatal(err)
	}
	defer validator.Close()
	sms := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		verified, _ := twiliosig.VerifiedFrom(r.Context())
		fmt.Fprintf(w, "signed with secret #%d", verified.SecretIndex)
	})
	mux := http.NewServeMux()
	mux.Handle("/sms", twiliosig.Middleware(validator, twiliosig.Options{BaseURL: "https://hooks.example.com"})(sms))
	_ = mux // http.ListenAndServe(":8080", mux)
}
