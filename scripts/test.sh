#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, then for each preset (default: release,
# then asan = AddressSanitizer + UndefinedBehaviorSanitizer) configures, builds and runs ctest.
# Usage: scripts/test.sh [preset ...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
presets=("$@")
[[ ${#presets[@]} -gt 0 ]] || presets=(release asan)
for preset in "${presets[@]}"; do
  echo "== $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset"
  echo "== $preset: test"
  ctest --preset "$preset"
  if [[ "$preset" == release ]]; then
    echo "== release: install and build an outside consumer"
    ./scripts/check-install.sh
  fi
done
