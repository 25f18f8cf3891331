#!/usr/bin/env bash
# `make demo`: one webhook, signed and forged, against a real Flask app guarded by
# twilio_signature.flask.validate_twilio_request, then the same check from the CLI, C and Go.
# Parts whose code is not in the tree yet are skipped with "(not built yet)".
set -euo pipefail

ROOT=${ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
TWSIG=$TARGET/release/twsig
PY=$ROOT/.venv/bin/python
WORK=$(mktemp -d)
SERVER_PID=

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD= PLAIN=; fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
# Shows the command as a user would type it (twsig for the built binary, files by their name).
show() {
  local words=() arg
  for arg in "$@"; do
    arg=${arg/#$TWSIG/twsig}
    arg=${arg/#$WORK\//}
    words+=("$(printf '%q' "$arg")")
  done
  printf '$ %s\n' "${words[*]}"
}
run() { show "$@" >&2; "$@"; }
skip() { printf '   (not built yet: %s)\n' "$*"; }
FAILED=0
fail() { printf '   DEMO FAILED: %s\n' "$*"; FAILED=1; }

# A throwaway Auth Token for this run: the app gets it from the environment, twsig too.
TWILIO_AUTH_TOKEN="demo$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
export TWILIO_AUTH_TOKEN
echo "Auth Token for this run: a random demo value in \$TWILIO_AUTH_TOKEN (never printed, never an argument)"

# 1. The Flask app.
step "1. Flask app (bindings-python/examples/flask_app.py) guarded by @validate_twilio_request"
if [ -f bindings-python/examples/flask_app.py ] && [ -x "$PY" ] \
   && "$PY" -c 'import flask, twilio_signature.flask' 2>/dev/null; then
  PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$PY" bindings-python/examples/flask_app.py --host 127.0.0.1 --port "$PORT" >"$WORK/flask.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    fail "the Flask app did not start:"; sed 's/^/   | /' "$WORK/flask.log"
  else
    echo "   listening on http://127.0.0.1:$PORT (pid $SERVER_PID)"
    URL="http://127.0.0.1:$PORT/sms"

    step "2. A signed inbound-SMS webhook, as Twilio sends it: accepted"
    set +e; out=$(run "$TWSIG" send --url "$URL" --param "Body=Hello from make demo"); rc=$?; set -e
    printf '%s\n' "$out"
    grep -q '^HTTP/1.[01] 200' <<<"$out" || fail "expected 200 (exit $rc)"

    step "3. A forged one (signed with a token the app does not have): refused"
    set +e
    out=$(TWILIO_AUTH_TOKEN="forged-$RANDOM" run "$TWSIG" send --url "$URL" --param "Body=Send me the code"); rc=$?
    set -e
    # Status line and the reason (the framework wraps it in an HTML error page).
    sed -n '1p; s/.*<p>\(.*\)<\/p>.*/   reason: \1/p' <<<"$out"
    grep -q '^HTTP/1.[01] 403' <<<"$out" || fail "expected 403 (exit $rc)"
  fi
else
  skip "run 'make python-install' (mk/python.mk) to build the Python package and its example"
fi

# The same request for the other faces: a fixed inbound SMS, signed for the app's URL.
URL=${URL:-http://127.0.0.1:5000/sms}
BODY='AccountSid=AC00000000000000000000000000000000&Body=Hello+from+make+demo&From=%2B15551234567&MessageSid=SM0123456789abcdef0123456789abcdef&NumMedia=0&To=%2B15005550006'
printf '%s' "$BODY" >"$WORK/body.txt"

step "4. The same check from the CLI"
SIG=$(run "$TWSIG" sign --url "$URL" --form-file "$WORK/body.txt" | tail -n 1)
echo "$SIG"
run "$TWSIG" verify --url "$URL" --signature "$SIG" --form-file "$WORK/body.txt" || fail "twsig verify"
echo "   ...and what a proxy that terminates TLS does to it (the app sees http, Twilio signed https):"
HTTPS_URL=${URL/http:/https:}
HTTPS_SIG=$("$TWSIG" sign --url "$HTTPS_URL" --form-file "$WORK/body.txt" | tail -n 1)
set +e; run "$TWSIG" explain --url "$URL" --signature "$HTTPS_SIG" --form-file "$WORK/body.txt"; rc=$?; set -e
[ "$rc" = 1 ] || fail "twsig explain should exit 1 for the http/https mix-up"

step "5. C (ffi-c/examples/verify.c, linked against libtwilio_signature.a)"
if [ -f ffi-c/examples/verify.c ] && [ -f "$TARGET"/release/libtwilio_signature.a ] && [ -f include/twilio_signature.h ]; then
  cc -std=c11 -Wall -Wextra -Werror -Iinclude ffi-c/examples/verify.c "$TARGET"/release/libtwilio_signature.a \
    -lpthread -ldl -lm -o "$WORK/verify_c"
  echo "   (the example checks its built-in request: the Twilio docs' example, token 12345)"
  run "$WORK/verify_c" || fail "the C example"
else
  skip "ffi-c/examples/verify.c and the static library ('make c-lib')"
fi

step "6. Go (bindings-go: package twiliosig over the C ABI, its runnable examples)"
if [ -f bindings-go/example_test.go ] && [ -f "$TARGET"/release/libtwilio_signature.a ] && command -v go >/dev/null; then
  # The in-repository build (tag twiliosig_dev: header and library from CGO_CFLAGS / CGO_LDFLAGS, as
  # mk/go.mk does); the library's hash in CGO_CFLAGS makes Go's build cache (which does not hash cgo
  # libraries) relink. An installed library needs none of this: see bindings-go/README.md.
  lib_hash=$(sha256sum "$TARGET"/release/libtwilio_signature.a | cut -c1-16)
  (cd bindings-go && run env CGO_ENABLED=1 GOFLAGS=-tags=twiliosig_dev \
    CGO_CFLAGS="-O2 -g -I$ROOT/include -DTWS_LIB_SHA256=$lib_hash" \
    CGO_LDFLAGS="$TARGET/release/libtwilio_signature.a -lpthread -ldl -lm" \
    go test -count=1 -run '^Example' -v .) \
    | grep -E '^(\$|--- |ok|FAIL)' || fail "the Go examples"
else
  skip "bindings-go/example_test.go, Go on the PATH, and the static library ('make c-lib')"
fi

if [ "$FAILED" = 0 ]; then
  printf '\nmake demo: done. The signed webhook was accepted and the forged one refused.\n'
else
  printf '\nmake demo: something above did not go as expected.\n'
  exit 1
fi
