#!/usr/bin/env bash
# Installs the Python package `sluice` with pip into .venv, a venv of Debian's /usr/bin/python3
# made with --system-site-packages (so it sees Debian's pybind11, setuptools, pytest, zstandard,
# lz4; pip cannot download here): `pip install --no-build-isolation .`, which builds the module
# with CMake in build/python (setup.py). Also builds the `sluice` program the tests compare with.
# Use it as .venv/bin/python, or `. .venv/bin/activate`.
# With SLUICE_PYTHON_TARGETS=sluice_python (scripts/test.sh, when the release build's program is
# there) only pip builds: building the module first as well cost a second compile of it (~18 s),
# pip's configure differing in the interpreter and pybind11's directory.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ "${SLUICE_PYTHON_TARGETS:-}" == sluice_python ]] || ./scripts/build-python.sh
if [[ ! -x .venv/bin/python ]]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
log=$(mktemp)
if ! .venv/bin/python -m pip install -q --no-build-isolation --no-index --no-deps --force-reinstall . >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "install-python: pip install failed" >&2
  exit 1
fi
rm -f "$log"
