module github.com/twilio-signature/twilio-signature/bindings-go

go 1.24
