#!/usr/bin/env bash
# Installs what Sluice needs to build, test and benchmark on Debian 12, using apt-get.
# Idempotent and quiet when everything is already there; safe to run on every build.
set -euo pipefail

# Build dependencies (libraries and tools) and the reference peers the tests run against.
packages=(
  build-essential cmake ninja-build pkg-config
  libtbb-dev zlib1g-dev libzstd-dev liblz4-dev libxxhash-dev libfmt-dev libgtest-dev libcli11-dev
  libtomlplusplus-dev nettle-dev libdeflate-dev libisal-dev libbz2-dev liblzma-dev
  gzip pigz zstd lz4 tar libarchive-tools tabix python3 xxhash
  # Zip peers for sluice zip's interop tests and benchmarks (Info-ZIP zip/unzip, 7-Zip).
  zip unzip 7zip
  # Formats sluice does not decode, made by their own tools for the messages that name them.
  bzip2 xz-utils
  # The man pages' tests and the install check render them (apps/man/: man -l, groff).
  man-db groff-base
  # The shell completion's tests run it in the real shells (apps/completion/, tests/completion_*.sh).
  zsh bash-completion
  # Sanitizer and fuzzing jobs: clang with libFuzzer, the TSan runtime, and what fetching and
  # unpacking Debian's oneTBB source for the TSan build needs (scripts/tsan.sh).
  clang libclang-rt-dev libtsan2 curl ca-certificates xz-utils
  # Benchmarks (bench/): Google Benchmark for the micro-benchmarks, gnuplot for the plots, and the
  # gzip peers built on the same libraries as our backends (libdeflate-gzip, igzip).
  libbenchmark-dev gnuplot-nox libdeflate-tools isal
  # Memcheck over the compression libraries (tests/valgrind_engines_test.sh).
  valgrind
  # A browser as the reader of gzip served with Content-Encoding (tests/http_gzip_readers.py).
  chromium-headless-shell
  # The Python package (python/): pybind11 and Python's headers; pytest for its tests.
  # `pip install .` offline into a venv of Debian's python3 (scripts/install-python.sh), and the
  # Python peers its tests and benchmarks compare with (zstandard, lz4.frame, indexed_gzip).
  python3-dev pybind11-dev python3-pybind11 python3-pytest python3-venv python3-pip python3-setuptools
  python3-wheel python3-zstandard python3-lz4 python3-indexed-gzip
  # The Python tests run in a process per core (scripts/test.sh).
  python3-pytest-xdist
  # sluice.dask (python/sluice/dask.py) and its tests on a LocalCluster: Dask distributed,
  # fsspec, and pandas for dask.dataframe.
  python3-dask python3-distributed python3-fsspec python3-pandas python3-numpy
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
