#!/usr/bin/env bash
# Builds the Python package `sluice` (python/) in build/python: the library position-independent
# against the shared codec libraries, the module, and the program the tests compare it with.
# Import it with PYTHONPATH=build/python/python and Debian's /usr/bin/python3.
# SLUICE_PYTHON_TARGETS=sluice_python builds the module alone (scripts/test.sh, when the release
# build's program is there to compare with).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset python >/dev/null
cmake --build --preset python ${SLUICE_PYTHON_TARGETS:+--target $SLUICE_PYTHON_TARGETS}
