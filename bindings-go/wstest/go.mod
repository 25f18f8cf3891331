module github.com/twilio-signature/twilio-signature/bindings-go/wstest

go 1.26.0

// The module under test is the one next to this folder.
replace github.com/twilio-signature/twilio-signature/bindings-go => ../

require (
	github.com/coder/websocket v1.8.15
	github.com/gorilla/websocket v1.5.3
	github.com/twilio-signature/twilio-signature/bindings-go v0.0.0
	golang.org/x/net v0.63.0
)

require golang.org/x/text v0.44.0 // indirect
