#!/usr/bin/env bash
# Load test (not part of the unit suite): a batch of N files (default 100,000) through
# `sluice -r` (compress), `sluice -t` (verify), `sluice -d -r` (decompress), `sluice tar -c` and
# `sluice tar -x`, recording for each the wall time, throughput, peak RSS and the most file
# descriptors the process ever had open (sampled from /proc every 10 ms), and checking that the
# round trips give back every file. `find | xargs -P2 zstd` runs on the same files for scale.
#
# Usage: bench/many_files.sh [N] [DIR]   default: 100000 files under /dev/shm (RAM: no disk
# writeback noise). Prints a Markdown table (for BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-100000}
base=${2:-/dev/shm}
sluice=$PWD/build/release/apps/sluice
[[ -x $sluice ]] || { echo "many_files: build first (cmake --preset release && cmake --build --preset release)" >&2; exit 2; }
work=$(mktemp -d "$base/sluice-many.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

# N files of 100 B to 16 KiB of text (half under 2 KiB), in 100 directories; a few big ones.
python3 - "$count" <<'PY'
import os, random, sys
count = int(sys.argv[1])
random.seed(3)
words = [''.join(random.choice('etaoinshrdlucmfw') for _ in range(random.randint(2, 8))) for _ in range(3000)]
text = ' '.join(random.choice(words) for _ in range(2_000_000)).encode()
for i in range(count):
    d = f"files/d{i % 100:02}"
    if i < 100: os.makedirs(d, exist_ok=True)
    size = random.randint(100, 2048) if i % 2 else random.randint(100, 16384)
    if i % 20000 == 7: size = 8 << 20  # a few 8 MiB files among them
    start = random.randint(0, len(text) - size - 1)
    with open(f"{d}/f{i:06}.txt", "wb") as f:
        f.write(text[start:start + size])
PY
input_bytes=$(du -sb --apparent-size files | cut -f1)

# measure LABEL COMMAND...: runs the command, samples its descriptors, prints a table row.
measure() {
  local label=$1
  shift
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f %M -o rss "$@" &
  local pid=$! peak_fds=0 n child
  while kill -0 "$pid" 2>/dev/null; do
    child=$(pgrep -P "$pid" | head -1 || true)
    if [[ -n $child ]]; then
      n=$(ls "/proc/$child/fd" 2>/dev/null | wc -l)
      ((n > peak_fds)) && peak_fds=$n
    fi
    sleep 0.01
  done
  wait "$pid"
  end=$(date +%s.%N)
  python3 -c "
import sys
label, start, end, rss, fds, total = sys.argv[1:]
s = float(end) - float(start)
print(f'| {label} | {s:.1f} s | {int(total) / s / 1e6:.0f} MB/s | {int(rss) / 1024:.0f} MiB | {fds} |')" \
    "$label" "$start" "$end" "$(cat rss)" "$peak_fds" "$input_bytes"
}

echo "$count files, $((input_bytes / 1000000)) MB"
echo
echo "| step | wall | throughput (of the input) | peak RSS | peak open descriptors |"
echo "|---|---|---|---|---|"
measure "sluice -r -F zstd (compress)" "$sluice" -q -r -F zstd files
[[ $(find files -name '*.zst' | wc -l) -eq $count ]] || { echo "missing outputs" >&2; exit 1; }
measure "sluice -t -r (verify every .zst)" "$sluice" -q -t -r files
measure "sluice -d -r (decompress)" "$sluice" -q -d -r --output-dir back files
diff -r -x '*.zst' files back/files >/dev/null || { echo "decompressed files differ" >&2; exit 1; }
rm -rf back
find files -name '*.zst' -delete
measure "sluice tar -c -F zstd" "$sluice" tar -c -F zstd -f files.tar.zst files
measure "sluice tar -x" "$sluice" tar -x -f files.tar.zst -C restored
diff -r files restored/files >/dev/null || { echo "extracted tree differs" >&2; exit 1; }
rm -rf restored files.tar.zst
measure "find | xargs -P2 -n 500 zstd -q (peer)" bash -c "find files -type f -print0 | xargs -0 -P2 -n 500 zstd -q"
