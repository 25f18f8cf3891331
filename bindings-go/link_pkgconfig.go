//go:build cgo && !twiliosig_dev && !twiliosig_static

package twiliosig

// The default link: pkg-config finds the installed library (`make install-c PREFIX=...`, or a
// distribution's package; set PKG_CONFIG_PATH for a private prefix). The linker takes
// libtwilio_signature.so when it is installed (the loader must then find it at run time: an rpath in
// CGO_LDFLAGS, LD_LIBRARY_PATH, or ldconfig) and libtwilio_signature.a otherwise; --static adds what
// Rust's standard library needs from the system in that case. Build with -tags twiliosig_static to
// take the .a even when the .so is installed.

// #cgo pkg-config: --static twilio_signature
import "C"
