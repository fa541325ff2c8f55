#!/usr/bin/env bash
# Runs the whole test suite: installs what is missing, then each job in turn (default: all five).
#   release  the include rules of docs/layers.md, an optimised build: every test, then install and
#            build an outside consumer
#   python   the Python package, installed with pip into .venv (scripts/install-python.sh), under pytest
#   asan     AddressSanitizer + UndefinedBehaviorSanitizer build: every test
#   tsan     ThreadSanitizer build of the concurrency tests (scripts/tsan.sh)
#   fuzz     every fuzz target for 8 s under ASan + UBSan (scripts/fuzz.sh)
# Usage: scripts/test.sh [job ...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
jobs=("$@")
[[ ${#jobs[@]} -gt 0 ]] || jobs=(release python asan tsan fuzz)
for job in "${jobs[@]}"; do
  start=$SECONDS
  case "$job" in
    tsan) ./scripts/tsan.sh ;;
    python)
      # The tests compare the module with the `sluice` program: the release job's when it ran
      # (the same sources; not compiling the program again saves ~40 s), else one built here.
      program=build/python/apps/sluice
      if [[ -x build/release/apps/sluice ]]; then
        program=build/release/apps/sluice
        export SLUICE_PYTHON_TARGETS=sluice_python
      fi
      ./scripts/install-python.sh   # pip install . into .venv (Debian's python3)
      # In a process per core, at most 4 (pytest-xdist): one left a core idle much of its 105 s,
      # the tests waiting on subprocesses and Dask workers (62 s in two). At most 4: each test's
      # own runs take every core, and some wait for a stop within seconds. A file's tests in one
      # process (--dist loadfile, as fast here): test_dask.py's one LocalCluster, not one each.
      workers=$(nproc)
      ((workers <= 4)) || workers=4
      SLUICE_PROGRAM=$program .venv/bin/python -m pytest -q -p no:cacheprovider -n "$workers" --dist loadfile \
        python/tests
      ;;
    fuzz) ./scripts/fuzz.sh 5 ;;
    release | asan | debug)
      [[ "$job" == release ]] && ./scripts/check-layers.sh
      echo "== $job: configure and build"
      cmake --preset "$job" >/dev/null
      cmake --build --preset "$job"
      echo "== $job: test"
      # The Silesia-corpus interop tests are release's: under ASan they re-run the same paths
      # over 80 MB (about 10 s of the job, whose time CI counts).
      if [[ "$job" == asan ]]; then SLUICE_TEST_NO_CORPUS=1 ctest --preset "$job"; else ctest --preset "$job"; fi
      if [[ "$job" == release ]]; then
        echo "== release: install and build an outside consumer"
        ./scripts/check-install.sh
      fi
      ;;
    *) echo "test.sh: unknown job '$job' (release, python, asan, debug, tsan, fuzz)" >&2; exit 2 ;;
  esac
  echo "== $job: done in $((SECONDS - start)) s"
done
