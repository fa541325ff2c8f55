#!/usr/bin/env bash
# The man pages (apps/man/) against the program they describe.
#
#   man_pages_test.sh render  SLUICE MANDIR   every page renders with man -l and groff without a
#                                             warning and has NAME, SYNOPSIS, OPTIONS, EXIT STATUS
#                                             and EXAMPLES; unsluice.1 and sluicecat.1 bring in
#                                             sluice.1; every sluice-*(1) page named exists
#   man_pages_test.sh options SLUICE MANDIR   every option `sluice CMD --help` prints is listed in
#                                             CMD's page, and the OPTIONS section lists no option
#                                             the program does not have
#
# SLUICE is the built program, MANDIR the directory of the pages (apps/man).
set -euo pipefail

mode=${1:?usage: man_pages_test.sh render|options SLUICE MANDIR}
sluice=${2:?the sluice program}
mandir=${3:?the man page directory}

for tool in man groff col; do
  if ! command -v "$tool" >/dev/null; then
    echo "man_pages_test: $tool is missing (man-db, groff-base, bsdextrautils: scripts/setup.sh)" >&2
    exit 1
  fi
done
unset MANOPT MANPAGER PAGER MANSECT
export MANROFFOPT=-rHY=0  # no hyphenation: an option's name stays whole in the text

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Failures are counted in a file, so that a check in a $(...) subshell counts too.
fail() {
  echo "FAIL: $*" >&2
  echo x >>"$scratch/failures"
}

# The commands each page describes ("-" is the main command; its page also has `sluice demo`).
pages=(sluice.1 sluice-tar.1 sluice-zip.1 sluice-run.1 sluice-transcode.1)
commands_of() {
  case $1 in
    sluice.1) echo "- demo" ;;
    sluice-*.1) local name=${1#sluice-}; echo "${name%.1}" ;;
  esac
}
# `sluice CMD --help` ("-": `sluice --help`).
help_of() {
  if [[ $1 == - ]]; then "$sluice" --help; else "$sluice" "$1" --help; fi
}

# The page as plain ASCII text, as man shows it on a wide terminal.
render() {
  local status=0
  LC_ALL=C MANWIDTH=200 man -l "$1" 2>"$scratch/render.err" | col -b || status=$?
  if ((status != 0)) || [[ -s $scratch/render.err ]]; then
    fail "$1: man -l failed ($status): $(cat "$scratch/render.err")"
  fi
  return 0
}

check_render() {
  local page=$1 path=$mandir/$1 text out
  [[ -f $path ]] || { fail "$page: missing from $mandir"; return; }
  out=$(groff -man -ww -z -Tutf8 "$path" 2>&1) || fail "$page: groff failed"
  [[ -z $out ]] || fail "$page: groff -ww warns:"$'\n'"$out"
  out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=all -l "$path" 2>&1 >/dev/null) || fail "$page: man -l failed"
  [[ -z $out ]] || fail "$page: man --warnings=all -l warns at 80 columns:"$'\n'"$out"
  text=$(render "$path")
  for section in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS" EXAMPLES "SEE ALSO"; do
    grep -qx "$section" <<<"$text" || fail "$page: no $section section"
  done
  # Every sluice page it refers to is one of ours.
  local ref
  for ref in $(grep -oE 'sluice-[a-z]+\(1\)' <<<"$text" | sort -u); do
    [[ -f $mandir/${ref%(1)}.1 ]] || fail "$page: refers to $ref, which has no page"
  done
}

# unsluice.1 and sluicecat.1 are `.so man1/sluice.1`, resolved from the top of a man tree.
check_links() {
  mkdir -p "$scratch/man"
  ln -s "$(cd "$mandir" && pwd)" "$scratch/man/man1"
  local name text out
  text=$(render "$mandir/sluice.1")
  for name in unsluice sluicecat; do
    [[ -f $mandir/$name.1 ]] || { fail "$name.1: missing from $mandir"; continue; }
    [[ $(cat "$mandir/$name.1") == ".so man1/sluice.1" ]] || fail "$name.1: is not '.so man1/sluice.1'"
    grep -A1 -x NAME <<<"$text" | grep -qw "$name" || fail "sluice.1: NAME does not list $name"
    out=$(cd "$scratch/man" && LC_ALL=C MANWIDTH=200 man -l "man1/$name.1" 2>&1 | col -b) || true
    grep -q "^SLUICE(1)" <<<"$out" && grep -qx "EXIT STATUS" <<<"$out" ||
      fail "$name.1: man -l does not show sluice(1):"$'\n'"$(head -5 <<<"$out")"
  done
}

# The option names of `sluice CMD --help`: lines "  -a,--bb ARG   what it does", split at commas.
help_options() {
  help_of "$1" | awk '/^  -/ { n = split($1, names, ","); for (i = 1; i <= n; ++i) print names[i] }'
}

# The tags of the entries (.TP) of the OPTIONS section, and for sluice.1 of the DEMO section: the
# options the page lists as its own, one entry a line. The page is rendered with every .TP given
# an indent of 1n, so that every tag is on a line of its own (at the section's indent, 7) and the
# text of the entry starts on the next line.
option_tags() {
  sed -E 's/^\.TP([[:space:]].*)?$/.TP 1n/' "$mandir/$1" >"$scratch/$1"
  render "$scratch/$1" |
    awk '/^[A-Z]/ { on = ($0 == "OPTIONS" || $0 == "DEMO"); next } on && /^       -/'
}

check_options() {
  local page=$1 tags command label option options count all_help=""
  tags=$(option_tags "$page")
  for command in $(commands_of "$page"); do
    label=sluice
    [[ $command == - ]] || label="sluice $command"
    options=$(help_options "$command") || fail "$label --help failed"
    count=$(grep -c . <<<"$options" || true)
    # A parser that finds nothing would pass everything: each command has several options.
    if ((count < 4)) || ! grep -qx -- --help <<<"$options"; then
      fail "$label --help: found $count options; has the help's layout changed?"
      continue
    fi
    all_help+=$'\n'$(help_of "$command")
    while IFS= read -r option; do
      grep -qE -- "(^|[^-A-Za-z0-9])${option}([^-A-Za-z0-9]|\$)" <<<"$tags" ||
        fail "$page: does not list ${option} (from '$label --help')"
    done <<<"$options"
  done
  # The other way: what OPTIONS lists is an option of the program (or a level flag, -1 .. -19).
  while IFS= read -r option; do
    [[ -z $option || $option =~ ^-[0-9]+$ ]] && continue
    grep -qE -- "(^|[^-A-Za-z0-9])${option}([^-A-Za-z0-9]|\$)" <<<"$all_help" ||
      fail "$page: OPTIONS lists ${option}, which its command's --help does not have"
  done < <(grep -oE '(^|[ ,(|])--?[A-Za-z0-9][-A-Za-z0-9]*' <<<"$tags" | sed -E 's/^[ ,(|]//' | sort -u)
}

case $mode in
  render)
    for page in "${pages[@]}"; do check_render "$page"; done
    check_links
    ;;
  options)
    for page in "${pages[@]}"; do check_options "$page"; done
    ;;
  *)
    echo "man_pages_test: unknown mode '$mode' (render or options)" >&2
    exit 2
    ;;
esac

if [[ -s $scratch/failures ]]; then
  echo "man_pages_test $mode: $(wc -l <"$scratch/failures") failure(s)" >&2
  exit 1
fi
echo "man_pages_test $mode: ${#pages[@]} pages checked"
