#!/usr/bin/env bash
# The Go module as a user gets it (mk/go.mk, test-go-installed): run.sh PREFIX WORK, after
# `make install-c PREFIX=PREFIX`. In WORK, a new module (example.com/outside, main.go from here)
# requires a copy of bindings-go/ alone with the lines of bindings-go/README.md's install block, run
# verbatim (`go mod edit -require ...@v0.0.0 -replace ...`, then `go build`), and is built and run
# with nothing set but PKG_CONFIG_PATH (plus the loader path for the shared build):
#   default build             pkg-config twilio_signature: links libtwilio_signature.so.0 (run with
#                             LD_LIBRARY_PATH, or built with an rpath in CGO_LDFLAGS)
#   -tags twiliosig_static    pkg-config twilio_signature-static: runs with no .so installed
# Then an upgrade: a changed library (its digest in the .pc's Cflags) makes Go rebuild the package.
set -euo pipefail
prefix=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
module=$(cd "$here/../.." && pwd)

rm -rf "$work" && mkdir -p "$work/app" "$work/home/src/twilio-signature"
# The user's home: their checkout of the repository (bindings-go/ alone is copied: the module must not
# need anything else) at ~/src/twilio-signature, the library installed at ~/.local, as the README has it.
cp -R "$module" "$work/home/src/twilio-signature/bindings-go"
ln -s "$prefix" "$work/home/.local"
cp "$here/main.go" "$work/app/main.go"
cd "$work/app"

# Only what a user has: PATH (go, cc, pkg-config), HOME (Go's caches), PKG_CONFIG_PATH.
user() { env -i PATH="$PATH" HOME="${HOME:-$work/home}" PKG_CONFIG_PATH="$prefix/lib/pkgconfig" "$@"; }
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '; }

# The README's install lines, verbatim (the block after its "run.sh runs the next block verbatim"
# marker), in a new module, with HOME the user's home above (Go's caches kept where they are).
readme_block=$(awk '/testdata\/outside\/run.sh runs the next block verbatim/ { marked = 1; next }
  marked && /^```sh$/ { inside = 1; next }
  inside && /^```$/ { exit }
  inside { print }' "$module/README.md")
[ -n "$readme_block" ] || { echo "no marked install block in bindings-go/README.md"; exit 1; }
user go mod init example.com/outside >/dev/null 2>&1
echo "-- bindings-go/README.md's install lines, run verbatim:"
printf '%s\n' "$readme_block"
env -i PATH="$PATH" HOME="$work/home" GOCACHE="$(user go env GOCACHE)" GOMODCACHE="$(user go env GOMODCACHE)" \
  GOPROXY=off bash -euo pipefail -c "$readme_block"
grep -q '^require github.com/twilio-signature/twilio-signature/bindings-go v0.0.0$' go.mod &&
  grep -q "^replace github.com/twilio-signature/twilio-signature/bindings-go => $work/home/src/twilio-signature/bindings-go\$" go.mod ||
  { echo "the README's lines did not write the require and replace directives:"; cat go.mod; exit 1; }

user go build -o shared .
user go build -tags twiliosig_static -o static .
echo "shared build needs: $(needed shared)"
echo "static build needs: $(needed static)"
grep -q 'libtwilio_signature.so.0' <<<"$(needed shared)" || { echo "the default build did not link the .so"; exit 1; }
! grep -q 'libtwilio_signature' <<<"$(needed static)" || { echo "the static build needs the .so"; exit 1; }

echo "-- default build, LD_LIBRARY_PATH=\$PREFIX/lib:"
user LD_LIBRARY_PATH="$prefix/lib" ./shared
echo "-- default build with an rpath (bindings-go/README.md), nothing at run time:"
user CGO_LDFLAGS="-Wl,-rpath,$prefix/lib" go build -o shared-rpath .
user ./shared-rpath
mkdir "$work/hidden" && mv "$prefix"/lib/libtwilio_signature.so* "$work/hidden/"
echo "-- -tags twiliosig_static, no libtwilio_signature.so installed:"
user ./static
mv "$work/hidden"/* "$prefix/lib/"

# After an upgrade Go's build cache would keep the old archive: it does not key cgo packages on the
# library, nor on pkg-config's output (measured: a changed .pc Cflags alone rebuilds nothing). The
# .pc's Cflags carry the archive's digest (-DTWS_LIB_SHA256), so the README's recipe, CGO_CFLAGS from
# pkg-config, does change the key. Simulate an upgrade by changing that digest.
pc="$prefix/lib/pkgconfig/twilio_signature-static.pc"
recompiles() {  # how many times `go build` runs cgo on twiliosig
  user CGO_CFLAGS="-O2 -g $(user pkg-config --cflags twilio_signature-static)" \
    go build -x -tags twiliosig_static -o static . 2>&1 | grep -c '/cgo .*-importpath github.com/twilio-signature' || true
}
[ "$(recompiles)" = 1 ] || true  # the first build with these CGO_CFLAGS compiles; the next must not
[ "$(recompiles)" = 0 ] || { echo "an unchanged install rebuilt the cgo package"; exit 1; }
sed -i 's/-DTWS_LIB_SHA256=[0-9a-f]*/-DTWS_LIB_SHA256=0123456789abcdef/' "$pc"
[ "$(recompiles)" = 1 ] || { echo "a changed library digest in CGO_CFLAGS did not rebuild the cgo package"; exit 1; }
echo "test-go-installed: after an upgrade, CGO_CFLAGS=\$(pkg-config --cflags ...) rebuilds the package"
