#!/usr/bin/env bash
# Fuzzing job: builds the libFuzzer targets (clang, ASan + UBSan; the `fuzz` preset) and runs
# each for a bounded time, two at a time, starting from its seed corpus (tests/fuzz/seeds/TARGET).
# Any crash, sanitizer report, leak, timeout or out-of-memory fails the job and leaves the input
# in build/fuzz-out/artifacts/TARGET/; the way to keep it is in the README (Fuzzing).
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   CI runs the default (30 s each). For a long run:  scripts/fuzz.sh 3600 zstd
# The corpus each run grows is kept in build/fuzz-out/corpus/TARGET and reused by the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

seconds=${1:-30}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(gzip zstd lz4 tar zip pipeline)

echo "== fuzz: configure and build"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz

out=build/fuzz-out
run_one() {
  local target=$1
  mkdir -p "$out/corpus/$target" "$out/artifacts/$target"
  # -rss_limit_mb also caps any single allocation (malloc_limit_mb defaults to it): a header
  # that makes us allocate what it claims is a finding. -timeout: a hang is one too.
  if build/fuzz/tests/fuzz/fuzz_"$target" -max_total_time="$seconds" -max_len=65536 -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$out/artifacts/$target/" \
      "$out/corpus/$target" "tests/fuzz/seeds/$target" >"$out/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$out/$target.log"), no findings"
  else
    echo "fuzz $target: FAILED; log: $out/$target.log, input: $(ls "$out/artifacts/$target/" | head -1)" >&2
    grep -A 30 -E "ERROR|runtime error|deadly signal|terminate called" "$out/$target.log" | head -60 >&2
    return 1
  fi
}

echo "== fuzz: ${#targets[@]} targets, ${seconds} s each"
mkdir -p "$out"
status=0
pids=()
for target in "${targets[@]}"; do
  run_one "$target" &
  pids+=($!)
  # Two at a time: one per core of the machines this runs on.
  if [[ ${#pids[@]} -ge 2 ]]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
