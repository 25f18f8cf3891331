//go:build !twiliosig_shared

package twiliosig

// Static linking (the default): the Rust static library from `cargo build --release -p
// twilio-signature-ffi`, plus what Rust's standard library needs from the system.

/*
#cgo LDFLAGS: ${SRCDIR}/../target/release/libtwilio_signature.a -lpthread -ldl -lm
*/
import "C"
