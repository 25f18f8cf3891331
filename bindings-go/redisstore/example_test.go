package redisstore_test

import (
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	twiliosig "github.com/twilio-signature/twilio-signature/bindings-go"
	"github.com/twilio-signature/twilio-signature/bindings-go/redisstore"
)

// Every instance of the app shares one Redis, so a retry that reaches another instance gets the
// response the first delivery got. (Compiled, not run: it needs a Redis.)
func Example() {
	validator, err := twiliosig.NewValidator(twiliosig.Secret{Value: []byte("auth token")})
	if err != nil {
		panic(err)
	}
	// Timeouts that fit IdempotencyOptions.Wait (5 s) and Twilio's 15 s: a claim gives up within about
	// 3 s (while Redis is down, each webhook waits that long before it is processed anyway). go-redis
	// re-sends a timed-out claim; the store knows its own claim when it finds it.
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379",
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: 2})
	store := redisstore.New(rdb, redisstore.Options{}) // TTL 24 h, prefix "twilio-signature:idempotency:"
	voice := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte("<Response><Say>Hello</Say></Response>"))
	})
	http.Handle("/voice", twiliosig.Middleware(validator, twiliosig.Options{BaseURL: "https://hooks.example.com"})(
		twiliosig.Idempotent(store, twiliosig.IdempotencyOptions{})(voice)))
	// http.ListenAndServe(":8080", nil)
}
