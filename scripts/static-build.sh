#!/usr/bin/env bash
# The release-static build: `sluice` with libstdc++, oneTBB, fmt and toml++ linked in, so that a
# run loads only libc, libm and ISA-L (which Debian ships shared only, and which is C). That is
# what start-up costs most (BENCHMARKS.md, start-up): `sluice -dc` of a 3-byte file takes about
# 1.1 ms this way against 1.75 ms with the shared libraries, on the same machine.
#
# Debian ships oneTBB as a shared library only, so this script builds the very version Debian
# packages (its source package, checksum pinned, as scripts/tsan.sh does) as a static library,
# once, into build/static-deps; then configures the release-static preset, builds the program,
# checks what it loads and that it round-trips a file in every format.
#
# Usage: scripts/static-build.sh   (about 4 minutes on 2 cores, oneTBB included; needs network
# once, for the oneTBB source). The program: build/release-static/apps/sluice.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

source scripts/onetbb.sh
# oneTBB warns that a static build is not its recommended form: one program that links it once is
# the case where it is safe (a single copy of the scheduler in the process).
build_onetbb build/static-deps "as a static library" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF

echo "== static: configure and build"
cmake --preset release-static >/dev/null
cmake --build --preset release-static

program=build/release-static/apps/sluice
echo "== static: check"
libraries=$(ldd "$program")
if grep -E "libstdc\+\+|libtbb|libfmt|libtomlplusplus" <<<"$libraries"; then
  echo "static: $program still loads the libraries above" >&2
  exit 1
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
head -c 3000000 /dev/urandom | base64 > "$scratch/data"
for format in gzip zstd lz4; do
  "$program" -F "$format" -c -j2 "$scratch/data" | "$program" -dc | cmp - "$scratch/data"
done
echo "== static: $program loads only: $(awk '/=>/ {print $1}' <<<"$libraries" | tr '\n' ' ')"
