//go:build cgo && twiliosig_dev

package twiliosig

// In-repository development build (`-tags twiliosig_dev`, used by the repository's Makefile): no
// pkg-config; the header and library come from CGO_CFLAGS and CGO_LDFLAGS, which the Makefile points
// at include/ and target/release (static or shared). No file of this module names a path outside it.
