#!/usr/bin/env bash
# Runs fuzz targets for a set time each and prints how many inputs each executed.
#   fuzz/run.sh SECONDS [TARGET...]     (default: every target in fuzz/Cargo.toml)
# Needs cargo-fuzz on PATH. Runs on stable Rust: RUSTC_BOOTSTRAP=1 allows the sanitizer flags.
# New corpus entries go to fuzz/corpus/<target> (not committed); fuzz/seeds (committed) is read too.
# Exits non-zero on the first target that crashes; the input is left in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(RUSTC_BOOTSTRAP=1 cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build
mkdir -p logs
summary=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
  log="logs/$target.log"
  echo "fuzz: $target for ${seconds}s"
  if ! cargo fuzz run "$target" "corpus/$target" seeds -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "fuzz: $target FAILED (input saved under fuzz/artifacts/$target/, log in fuzz/$log)"
    exit 1
  fi
  runs=$(grep -a -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -n1 || true)
  cov=$(grep -a -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n1 || true)
  summary+=("$(printf '%-16s %s (%s)' "$target" "${runs:-no stats}" "${cov:-}")")
done
echo "fuzz: every target ran without a crash"
printf '  %s\n' "${summary[@]}"
