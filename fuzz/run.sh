#!/usr/bin/env bash
# Coverage-guided fuzzing of the input-facing code with cargo-fuzz (libFuzzer), on the stable
# toolchain: cargo-fuzz passes -Z flags (sanitizer, coverage options), which stable rustc takes
# with RUSTC_BOOTSTRAP=1; stable's rust-std ships the ASan runtime.
#
#   FUZZ_SECONDS=60 bash fuzz/run.sh [target ...]     (default: every target)
#
# Each target runs FUZZ_SECONDS on its corpus (fuzz/corpus/<target>, grown from the seeds in
# fuzz/seeds/<target>); a crash leaves its input in fuzz/artifacts/<target>/ and fails the run.
# Reproduce one with: RUSTC_BOOTSTRAP=1 cargo fuzz run -a <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
export RUSTC_BOOTSTRAP=1
# Its own target dir: instrumented builds must not mix with the normal ones.
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-$PWD/fuzz/target}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo fuzz list)
fi

echo "fuzz: building ${targets[*]} (stable rustc $(rustc --version | cut -d' ' -f2), RUSTC_BOOTSTRAP=1)"
cargo fuzz build --debug-assertions
failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  seeds=()
  [[ -d fuzz/seeds/$t ]] && seeds=("fuzz/seeds/$t")
  log="fuzz/artifacts/$t/last-run.log"
  echo "fuzz: $t for ${SECONDS_PER_TARGET}s"
  if cargo fuzz run --debug-assertions "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$SECONDS_PER_TARGET" -jobs="$JOBS" -workers="$JOBS" \
      -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
  fi
  # A run that stops early may print no stats at all: missing figures show as "?".
  execs=$( (grep -a 'stat::number_of_executed_units' "$log" || true) | tail -1 | awk '{print $2}')
  cov=$( (grep -a -o 'cov: [0-9]*' "$log" || true) | tail -1 | awk '{print $2}')
  ft=$( (grep -a -o 'ft: [0-9]*' "$log" || true) | tail -1 | awk '{print $2}')
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  summary+=("$(printf '%-12s %-6s execs=%-10s cov=%-6s ft=%-6s corpus=%s' "$t" "$status" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corpus")")
done
printf '%s\n' "fuzz: summary (${SECONDS_PER_TARGET}s per target)" "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: crashes in ${failed[*]}: inputs in fuzz/artifacts/<target>/, logs in last-run.log"
  exit 1
fi
