#!/usr/bin/env bash
# zsh completion (apps/completion/_sluice) in a real interactive zsh: the file parses, and
# compinit loads it for sluice, unsluice and sluicecat; the lines users type offer what they
# should; and, as for bash, every option of every command's --help is offered (with its
# description), nothing else is, and values complete by their type (the a|b|c lists exactly).
# tests/completion_zsh_capture.zsh types each line and TAB into zsh in a pseudo-terminal.
# Usage: completion_zsh.sh SLUICE COMPLETION_DIR (exits 77, skipped, when zsh is not installed)
sluice=$(realpath -- "$1") completion_dir=$(realpath -- "$2")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/completion_lib.sh"

if ! command -v zsh >/dev/null; then
  echo "SKIP: zsh is not installed (scripts/setup.sh installs it), so its completion is not tested"
  exit 77
fi
zsh -n "$completion_dir/_sluice" || fail "zsh -n: $completion_dir/_sluice does not parse"
[[ $(head -n 1 "$completion_dir/_sluice") == '#compdef sluice unsluice sluicecat' ]] ||
  fail "_sluice does not start with '#compdef sluice unsluice sluicecat'"

declare -A results
collecting=1
complete_line() {
  if [[ $collecting ]]; then
    # Called in command substitutions: the lines go to a file.
    printf '%s\n' "$1" >>"$scratch_root/lines"
  else
    [[ -v "results[$1]" ]] || fail "zsh was not asked '$1'"
    printf '%s' "${results[$1]}"
  fi
}

all_checks() {
  check_behaviour
  check_suffixes
  check_coverage
  # Options come with their descriptions from the _arguments specs.
  expect 'sluice --for' +--format +--force
  complete_line 'sluice --for' | grep -q -- '^--format -- .*output format' ||
    fail "'sluice --for<TAB>' shows no description of --format"
  complete_line 'sluice tar --strip' | grep -q -- '^--strip-components -- .*components' ||
    fail "'sluice tar --strip<TAB>' shows no description of --strip-components"
}

make_scratch
# First the lines to complete, then one zsh completes them all, then the checks.
all_checks 2>/dev/null
failures=0 checks=0 collecting=
output=$(LC_ALL=C sort -u "$scratch_root/lines" |
  timeout 100 zsh -f "$here/completion_zsh_capture.zsh" "$completion_dir" "$scratch" "$(dirname "$sluice")")
status=$?
((status == 0)) || fail "completion_zsh_capture.zsh failed (exit status $status)"
key=
while IFS= read -r line; do
  if [[ $line == '### '* ]]; then
    key=${line#'### '}
    results[$key]=
  elif [[ -n $key ]]; then
    results[$key]+="$line"$'\n'
  fi
done <<<"$output"
all_checks

if ((failures)); then
  echo "zsh completion: $failures failure(s)" >&2
  exit 1
fi
echo "zsh completion: $checks checks passed in ${#results[@]} completions"
