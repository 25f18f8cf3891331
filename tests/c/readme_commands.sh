#!/usr/bin/env bash
# First compiles every ```c block of README.md and ffi-c/README.md as written, each as its own
# translation unit with the test programs' warnings as errors (a snippet that passes `char *` where the
# API takes `const uint8_t *` fails here). Then runs the commands of ffi-c/README.md as written
# (mk/c.mk, test-c-install): every ```sh block after a `<!-- tested: NAME -->` line, in order, in one
# shell, with PREFIX and the working directory set to temporary ones. Fails when a block is missing
# (the README and this list must change together), then checks what the README promises: the SONAME
# and links, stripped artifacts, a .pc whose comments `make install-c` left alone, and static programs
# that run with no libtwilio_signature.so installed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
README=$ROOT/ffi-c/README.md
EXPECTED="install shared-rpath shared-ld-library-path static fully-static"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export PREFIX=$WORK/prefix

# The C snippets: block N of a file is written to its own .c file, verbatim, and compiled (-c: they
# define functions, not programs). Each file must have at least one, so a changed fence cannot make
# this check pass by finding nothing.
for doc in README.md ffi-c/README.md; do
  out=$WORK/snippets/${doc//\//_}
  mkdir -p "$out"
  awk -v out="$out" '
    /^```c$/ { inside = 1; n++; next }
    inside && /^```$/ { inside = 0; next }
    inside { print > (out "/" n ".c") }' "$ROOT/$doc"
  count=$(find "$out" -name '*.c' | wc -l)
  [ "$count" -gt 0 ] || { echo "readme_commands: no \`\`\`c block in $doc"; exit 1; }
  for snippet in "$out"/*.c; do
    cc -std=c11 -Wall -Wextra -Werror -pedantic -I"$ROOT/include" -c "$snippet" -o "$snippet.o" \
      || { echo "readme_commands: C block $(basename "$snippet" .c) of $doc does not compile"; exit 1; }
  done
  echo "readme_commands: $count C block(s) of $doc compile with -Wall -Wextra -Werror -pedantic"
done

block() {  # the ```sh block after <!-- tested: $1 -->
  awk -v name="$1" '
    $0 == "<!-- tested: " name " -->" { armed = 1; next }
    armed && /^```sh$/ { inside = 1; next }
    inside && /^```$/ { exit }
    inside { print }' "$README"
}
found=$(sed -n 's/^<!-- tested: \(.*\) -->$/\1/p' "$README" | tr '\n' ' ')
[ "$found" = "$EXPECTED " ] || { echo "ffi-c/README.md tested blocks: '$found', expected '$EXPECTED '"; exit 1; }
script=""
for name in $EXPECTED; do
  body=$(block "$name")
  [ -n "$body" ] || { echo "ffi-c/README.md: the block after 'tested: $name' is empty"; exit 1; }
  # The install block runs in the checkout, the others where the user's verify.c is.
  [ "$name" = install ] && dir=$ROOT || dir=$WORK/app
  script+=$'\n'"cd '$dir'; echo '--- ffi-c/README.md: $name'; set -x"$'\n'"$body"$'\n'"{ set +x; } 2>/dev/null"
done
mkdir -p "$WORK/app"
cp "$ROOT/ffi-c/examples/verify.c" "$WORK/app/"
bash -euo pipefail -c "$script"

lib=$PREFIX/lib
fail() { echo "readme_commands: $*"; exit 1; }
readelf -d "$lib/libtwilio_signature.so.0.1.0" | grep -q 'Library soname: \[libtwilio_signature.so.0\]' \
  || fail "no SONAME libtwilio_signature.so.0"
[ "$(readlink "$lib/libtwilio_signature.so.0")" = libtwilio_signature.so.0.1.0 ] || fail ".so.0 link"
[ "$(readlink "$lib/libtwilio_signature.so")" = libtwilio_signature.so.0 ] || fail ".so link"
! readelf -S "$lib/libtwilio_signature.so.0.1.0" | grep -qE '\.symtab|\.debug_' || fail ".so not stripped"
! readelf -S "$lib/libtwilio_signature.a" | grep -q '\.debug_' || fail ".a carries debug info"
for pc in twilio_signature twilio_signature-static; do
  ! grep -q @ "$lib/pkgconfig/$pc.pc" || fail "$pc.pc: a placeholder was not filled in"
  diff <(grep '^#' "$ROOT/ffi-c/$pc.pc.in") <(grep '^#' "$lib/pkgconfig/$pc.pc") || fail "$pc.pc: comments rewritten"
done
# The static programs, with no shared library left to find.
mv "$lib"/libtwilio_signature.so* "$WORK/"
for exe in verify-static verify-full-static; do
  ! readelf -d "$WORK/app/$exe" | grep -q 'libtwilio_signature' || fail "$exe needs libtwilio_signature.so"
  "$WORK/app/$exe" >/dev/null || fail "$exe does not run without the .so"
done
! "$WORK/app/verify" 2>/dev/null || fail "the shared program ran without its library: was it static?"
echo "readme_commands: installed .so $(stat -c %s "$WORK/libtwilio_signature.so.0.1.0") bytes, .a $(stat -c %s "$lib/libtwilio_signature.a") bytes; every ffi-c/README.md command ran"
