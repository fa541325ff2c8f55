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
# The man pages: each command's, and unsluice.1 and sluicecat.1 (`.so man1/sluice.1`), which man
# resolves from the top of the tree. Each renders without a word on stderr.
prefix="$PWD/$prefix"
mandir="$prefix/share/man"
for page in sluice sluice-tar sluice-zip sluice-run sluice-transcode unsluice sluicecat; do
  if [[ ! -f "$mandir/man1/$page.1" ]]; then
    echo "install check: $mandir/man1/$page.1 is not installed" >&2
    exit 1
  fi
  case $page in
    unsluice | sluicecat) title=SLUICE ;;
    *) title=$(tr a-z A-Z <<<"$page") ;;
  esac
  rendered=$(cd "$mandir" && LC_ALL=C MANWIDTH=80 man -l "man1/$page.1" 2>"$prefix/man.err") || true
  if [[ -s "$prefix/man.err" ]] || ! grep -q "^$title(1)" <<<"$rendered" ||
    ! grep -qx "EXIT STATUS" <<<"$rendered"; then
    echo "install check: man -l man1/$page.1 does not render the $title(1) page:" >&2
    cat "$prefix/man.err" >&2
    exit 1
  fi
done
echo "install check: the installed package builds and runs a consumer; its man pages render"
