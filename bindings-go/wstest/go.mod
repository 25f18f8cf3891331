module github.com/twilio-signature/twilio-signature/bindings-go/wstest

go 1.24

// The module under test is the one next to this folder.
replace github.com/twilio-signature/twilio-signature/bindings-go => ../

require (
	github.com/coder/websocket v1.8.15
	github.com/gorilla/websocket v1.5.3
	github.com/twilio-signature/twilio-signature/bindings-go v0.0.0
)
