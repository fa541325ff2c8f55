#!/usr/bin/env bash
# Soak test (not part of the unit suite): streams GB gigabytes through `sluice` compression and
# straight into `sluice -d`, and checks that what comes out is what went in (XXH64 of both
# ends), that each process's peak memory stays bounded, and how fast it went.
#
# Usage: bench/soak.sh [GB] [CODEC...]      default: 20 GB, zstd lz4 gzip
# The stream is the Silesia corpus as one tar, repeated (../shared/corpus), or generated text
# when the corpus is not there. Nothing is stored: the data exists only in the pipes.
# Prints one Markdown table row per codec (for BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
gb=${1:-20}
shift || true
codecs=("$@")
[[ ${#codecs[@]} -gt 0 ]] || codecs=(zstd lz4 gzip)
sluice=$PWD/build/release/apps/sluice
[[ -x $sluice ]] || { echo "soak: build first (cmake --preset release && cmake --build --preset release)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unit=$work/unit
if [[ -x ../shared/corpus/unpack ]]; then
  ../shared/corpus/unpack "$work/corpus" >/dev/null
  tar -C "$work/corpus" -cf "$unit" .
else
  python3 -c "
import random
random.seed(1)
words = [''.join(random.choice('abcdefghijklmnop') for _ in range(random.randint(2, 9))) for _ in range(5000)]
print(' '.join(random.choice(words) for _ in range(12_000_000)))" > "$unit"
fi
unit_bytes=$(stat -c %s "$unit")
total_bytes=$((gb * 1000 * 1000 * 1000))
repeats=$(((total_bytes + unit_bytes - 1) / unit_bytes))
total_bytes=$((repeats * unit_bytes))

echo "| codec | data | wall | throughput | compressed | peak RSS compress | peak RSS decompress | checksums |"
echo "|---|---|---|---|---|---|---|---|"
for codec in "${codecs[@]}"; do
  start=$(date +%s.%N)
  # in -> tee (XXH64 of the input) -> sluice -> (count the compressed bytes) -> sluice -d -> XXH64
  for ((i = 0; i < repeats; i++)); do cat "$unit"; done |
    tee >(xxh64sum > "$work/in.sum") |
    /usr/bin/time -f %M -o "$work/compress.rss" "$sluice" -F "$codec" -c |
    tee >(wc -c > "$work/compressed.bytes") |
    /usr/bin/time -f %M -o "$work/decompress.rss" "$sluice" -d -F "$codec" -c |
    xxh64sum > "$work/out.sum"
  end=$(date +%s.%N)
  sleep 1  # the process substitutions finish writing their files
  in_sum=$(cut -d' ' -f1 "$work/in.sum")
  out_sum=$(cut -d' ' -f1 "$work/out.sum")
  verdict="match"
  [[ "$in_sum" == "$out_sum" ]] || verdict="MISMATCH ($in_sum vs $out_sum)"
  python3 - "$codec" "$total_bytes" "$start" "$end" "$(cat "$work/compressed.bytes")" \
    "$(cat "$work/compress.rss")" "$(cat "$work/decompress.rss")" "$verdict" <<'PY'
import sys
codec, total, start, end, packed, rss_c, rss_d, verdict = sys.argv[1:]
total, seconds, packed = int(total), float(end) - float(start), int(packed)
print(f"| {codec} | {total / 1e9:.1f} GB | {seconds:.0f} s | {total / seconds / 1e6:.0f} MB/s "
      f"| {packed / total:.3f} of input | {int(rss_c) / 1024:.0f} MiB | {int(rss_d) / 1024:.0f} MiB | {verdict} |")
PY
  [[ "$verdict" == "match" ]] || exit 1
done
