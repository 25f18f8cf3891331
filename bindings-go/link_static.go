//go:build cgo && !twiliosig_dev && twiliosig_static

package twiliosig

// Static link (`go build -tags twiliosig_static`): twilio_signature-static.pc names the installed
// libtwilio_signature.a itself, so the program needs no libtwilio_signature.so at run time.

// #cgo pkg-config: twilio_signature-static
import "C"
