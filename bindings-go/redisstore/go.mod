module github.com/twilio-signature/twilio-signature/bindings-go/redisstore

go 1.26.0

// During development the store builds against the twiliosig module next to it.
replace github.com/twilio-signature/twilio-signature/bindings-go => ../

require (
	github.com/redis/go-redis/v9 v9.23.0
	github.com/twilio-signature/twilio-signature/bindings-go v0.0.0-00010101000000-000000000000
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
