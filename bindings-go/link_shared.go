//go:build twiliosig_shared

package twiliosig

// Shared linking (`go build -tags twiliosig_shared`): libtwilio_signature.so from target/release, or
// wherever CGO_LDFLAGS / pkg-config point; at run time the loader must find it (LD_LIBRARY_PATH,
// an rpath, or an installed copy).

/*
#cgo LDFLAGS: -L${SRCDIR}/../target/release -ltwilio_signature
*/
import "C"
