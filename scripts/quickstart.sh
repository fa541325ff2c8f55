#!/usr/bin/env bash
# Quick start: install what is missing, build Release and the Python package, and run the demo
# job (every codec on a built-in sample, round trip checked, sizes and speeds printed).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release
./scripts/install-python.sh   # pip install . into .venv
echo
./build/release/apps/sluice demo "$@"
echo
echo "The sluice program is build/release/apps/sluice (try: build/release/apps/sluice --help)."
echo "The Python package is installed in .venv (Debian's python3): .venv/bin/python -c 'import sluice; help(sluice)'"
