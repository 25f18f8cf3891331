module github.com/twilio-signature/twilio-signature/bench/go

go 1.24

require (
	github.com/twilio-signature/twilio-signature/bindings-go v0.0.0
	github.com/twilio/twilio-go v1.31.0
)

require (
	github.com/golang/mock v1.6.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
)

replace github.com/twilio-signature/twilio-signature/bindings-go => ../../bindings-go
