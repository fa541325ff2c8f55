#!/usr/bin/env bash
# Installs the release build into a scratch prefix and builds and runs examples/consumer, an
# outside project that finds the package with find_package(sluice CONFIG REQUIRED).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=build/install
rm -rf "$prefix" build/consumer
cmake --install build/release --prefix "$prefix" >/dev/null
cmake -S examples/consumer -B build/consumer -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$PWD/$prefix" >/dev/null
cmake --build build/consumer >/dev/null
./build/consumer/consumer
test -x "$prefix/bin/sluice"
# The other names: unsluice decompresses, sluicecat writes to standard output.
printf 'installed names\n' | "$prefix/bin/sluice" -c > build/install/check.gz
test "$("$prefix/bin/sluicecat" build/install/check.gz)" = "installed names"
"$prefix/bin/unsluice" -c < build/install/check.gz | grep -q "installed names"
echo "install check: the installed package builds and runs a consumer"
