//go:build !cgo

package twiliosig

// Without cgo this package cannot work: it calls the C library libtwilio_signature. The constant below
// is a deliberate compile error whose text is the explanation.
const _ int = "twiliosig needs cgo (CGO_ENABLED=1 and a C compiler) and the C library libtwilio_signature: install it with `make install-c PREFIX=/usr/local` from the twilio-signature repository (or your distribution's package), then see bindings-go/README.md"
