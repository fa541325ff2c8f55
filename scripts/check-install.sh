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
# Shell completion: bash-completion loads share/bash-completion/completions/NAME for the command
# NAME (sluice, and links to it named unsluice and sluicecat); zsh's compinit finds _sluice on fpath
# (share/zsh/vendor-completions is on Debian's) and binds it to the three names by its #compdef.
bash_completions="$prefix/share/bash-completion/completions"
zsh_completions="$prefix/share/zsh/vendor-completions"
for name in sluice unsluice sluicecat; do
  if [[ ! -f "$bash_completions/$name" || ! "$bash_completions/$name" -ef "$bash_completions/sluice" ]]; then
    echo "install check: $bash_completions/$name is not the bash completion of sluice" >&2
    exit 1
  fi
done
if [[ ! -f "$zsh_completions/_sluice" ]] ||
  [[ "$(head -n 1 "$zsh_completions/_sluice")" != "#compdef sluice unsluice sluicecat" ]]; then
  echo "install check: $zsh_completions/_sluice is not installed, or not #compdef sluice unsluice sluicecat" >&2
  exit 1
fi
if [[ -r /usr/share/bash-completion/bash_completion ]]; then
  for name in sluice unsluice sluicecat; do
    loaded=$(XDG_DATA_DIRS="$prefix/share" BASH_COMPLETION_USER_DIR=/nonexistent bash -c \
      'source /usr/share/bash-completion/bash_completion && __load_completion "$1" && complete -p "$1"' \
      bash "$name" 2>&1) || true
    if [[ "$loaded" != *"-F _sluice $name" ]]; then
      echo "install check: bash-completion does not load the completion of $name from $prefix/share: $loaded" >&2
      exit 1
    fi
  done
fi
if command -v zsh >/dev/null; then
  if ! zsh -f -c 'fpath=("$1" $fpath); autoload -Uz compinit && compinit -D -u &&
      [[ $_comps[sluice] == _sluice && $_comps[unsluice] == _sluice && $_comps[sluicecat] == _sluice ]]' \
      zsh "$zsh_completions"; then
    echo "install check: zsh's compinit does not bind $zsh_completions/_sluice to sluice, unsluice, sluicecat" >&2
    exit 1
  fi
fi
echo "install check: the installed package builds and runs a consumer; its man pages render; bash and zsh load its completion"
