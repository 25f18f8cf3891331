#!/usr/bin/env bash
# Runs tower/examples/axum.rs end to end: starts it on a free loopback port with two Auth Tokens, sends a
# webhook signed with the secondary one (twsig send) and expects 200 from secret #1, sends a forgery and
# expects 403 and one refusal line in the log without any token in it, then stops it.
# Usage: run_example.sh <axum example binary> <twsig binary>
set -euo pipefail
example=$1 twsig=$2
primary=tower-example-primary-token secondary=tower-example-secondary-token
tmp=$(mktemp -d)
TWILIO_AUTH_TOKEN=$primary TWILIO_AUTH_TOKEN_SECONDARY=$secondary BIND=127.0.0.1:0 \
  "$example" >"$tmp/out" 2>"$tmp/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$tmp/out" && break
  kill -0 $pid 2>/dev/null || { cat "$tmp/err"; echo "run_example: the example exited"; exit 1; }
  sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$tmp/out")/sms"
[ "$url" != /sms ] || { echo "run_example: the example did not start"; exit 1; }

signed=$(TWILIO_AUTH_TOKEN=$secondary "$twsig" send --url "$url")
echo "$signed"
grep -q '^HTTP/1.1 200' <<<"$signed"
grep -q 'verified with secret #1' <<<"$signed"

if forged=$(TWILIO_AUTH_TOKEN=$primary "$twsig" send --url "$url" --signature 'AAAAAAAAAAAAAAAAAAAAAAAAAAA='); then
  echo "run_example: a forged webhook was accepted"; exit 1
fi
echo "$forged"
grep -q '^HTTP/1.1 403' <<<"$forged"
line=$(grep "WARN twilio_signature_tower: twilio webhook refused: 403 " "$tmp/err") || { cat "$tmp/err"; exit 1; }
echo "$line"
# One line, the diagnosis printed once: no fields repeating the message after it.
[ "$(wc -l <<<"$line")" -eq 1 ] || { echo "run_example: more than one refusal line"; exit 1; }
if grep -q -e 'diagnosis=' -e 'reason=' -e ' url="' <<<"$line"; then
  echo "run_example: the refusal line repeats its parts as fields"; exit 1
fi
if grep -q -e "$primary" -e "$secondary" "$tmp/err" "$tmp/out"; then
  echo "run_example: a token was logged"; exit 1
fi
echo "run_example: signed 200 (secret #1), forged 403 and logged"
