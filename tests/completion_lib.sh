# Shared by the shell completion tests (sourced by tests/completion_*.sh, run by bash).
#
# A test sets sluice (the program) and completion_dir (apps/completion), defines
# complete_line LINE, which prints what its shell offers for LINE (the text before the cursor),
# one match a line, and calls the checks below; they count failures in $failures.

failures=0
checks=0
commands=(main tar zip run transcode demo)

fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# The words typed before a command's operands: "sluice" or "sluice tar".
command_line() {
  if [[ $1 == main ]]; then echo sluice; else echo "sluice $1"; fi
}

help_text() {
  if [[ $1 == main ]]; then "$sluice" --help; else "$sluice" "$1" --help; fi
}

# Every option name that `sluice <command> --help` prints, with its value's type name (empty for
# flags), "NAME TYPE" a line: the lines that start with two spaces and -, aliases split at commas
# ("  -j,-T,-p,--threads N   Worker threads ..." gives -j N, -T N, -p N and --threads N).
help_options() {
  local line type name
  local -a names
  while IFS= read -r line; do
    [[ $line =~ ^\ \ (-[^\ ]+)(\ ([^\ ]+))?(\ \ +.*)?$ ]] || continue
    type=${BASH_REMATCH[3]}
    IFS=, read -ra names <<<"${BASH_REMATCH[1]}"
    for name in "${names[@]}"; do printf '%s %s\n' "$name" "$type"; done
  done < <(help_text "$1")
}

# The matches for LINE, sorted, one a line (descriptions dropped, duplicates merged).
matches() {
  complete_line "$1" | sed 's/ -- .*//' | LC_ALL=C sort -u
}

# expect LINE [+WORD|-WORD|=W1 W2 ...|empty|nonempty]...: +WORD must be offered, -WORD must not,
# =... must be exactly what is offered.
expect() {
  local line=$1 got want word
  shift
  got=$(matches "$line")
  for want in "$@"; do
    checks=$((checks + 1))
    case $want in
      +*) grep -qxF -- "${want#+}" <<<"$got" || fail "'$line<TAB>' does not offer ${want#+} (offers: ${got//$'\n'/ })" ;;
      -*) ! grep -qxF -- "${want#-}" <<<"$got" || fail "'$line<TAB>' offers ${want#-}, which it should not" ;;
      =*)
        local sorted
        sorted=$(for word in ${want#=}; do echo "$word"; done | LC_ALL=C sort -u)
        [[ $got == "$sorted" ]] || fail "'$line<TAB>' offers ${got//$'\n'/ }, not exactly ${want#=}"
        ;;
      empty) [[ -z $got ]] || fail "'$line<TAB>' offers ${got//$'\n'/ }, expected nothing" ;;
      nonempty) [[ -n $got ]] || fail "'$line<TAB>' offers nothing" ;;
    esac
  done
}

# The scratch directory the completions run in: plain and compressed files, a directory, a
# pipeline and an archive with a member.
# $scratch_root holds it and may hold the test's own files.
make_scratch() {
  scratch_root=$(mktemp -d "${TMPDIR:-/tmp}/completion_test.XXXXXX") || exit 1
  trap 'rm -rf "$scratch_root"' EXIT
  scratch=$scratch_root/work
  mkdir "$scratch" && cd "$scratch" || exit 1
  : >a.gz
  : >b.txt
  : >p.toml
  mkdir sub tree
  echo member >tree/member.txt
  "$sluice" tar -c -f arch.tar.gz -C tree member.txt || fail "could not make a tar archive"
  "$sluice" zip -c -f arch.zip -C tree member.txt >/dev/null || fail "could not make a zip archive"
}

# What users type most, as the brief for the completion lists it.
check_behaviour() {
  expect 'sluice --for' +--format +--force
  expect 'sluice -F ' '=gzip zstd lz4'
  expect 'sluice --format=' '=gzip zstd lz4'
  expect 'sluice --gzip-backend ' '=zlib libdeflate isal'
  expect 'sluice tar --' +--strip-components ---rm
  expect 'sluice tar -F ' '=gzip zstd lz4 none'
  expect 'sluice zip -F ' '=gzip zstd'
  expect 'sluice t' +tar +transcode
  expect 'sluice ' +tar +zip +run +demo +transcode +b.txt +a.gz +sub
  expect 'sluice -d ' +a.gz -b.txt +sub -tar
  expect 'sluice -t ' +a.gz -b.txt
  expect 'sluice --list ' +a.gz -b.txt
  expect 'sluice -dc ' +a.gz -b.txt
  expect 'sluice -k ' +a.gz +b.txt -tar
  expect 'sluice -o ' +b.txt +sub
  expect 'sluice --output-dir ' +sub -b.txt
  expect 'sluice -j ' empty
  expect 'sluice -T ' empty
  expect 'unsluice ' +a.gz -b.txt -tar
  expect 'sluicecat ' +a.gz -b.txt -tar
  expect 'unsluice --for' +--format +--force
  expect 'sluice run ' +p.toml -b.txt
  expect 'sluice transcode ' +a.gz +arch.zip -b.txt
  expect 'sluice demo ' +b.txt -tar
  expect 'sluice tar -c -f new.tar ' +b.txt +sub
  expect 'sluice tar -x -f ' +arch.tar.gz -b.txt -a.gz +sub
  expect 'sluice tar -xf ' +arch.tar.gz -b.txt
  expect 'sluice tar -t -f arch.tar.gz ' =member.txt
  expect 'sluice tar -xvf arch.tar.gz mem' =member.txt
  expect 'sluice tar -C ' +sub -b.txt
  expect 'sluice tar -T ' +b.txt
  expect 'sluice zip -x -f ' +arch.zip -arch.tar.gz -b.txt
  expect 'sluice zip --test -f arch.zip ' =member.txt
}

# Every option of every command's --help is offered after -, every option offered is in that
# help, and each option's value completes as its type says.
check_coverage() {
  local command prefix name type help
  local -a names
  for command in "${commands[@]}"; do
    prefix=$(command_line "$command")
    help=$(help_text "$command")
    [[ $(help_options "$command" | wc -l) -ge 4 ]] || fail "no options parsed from $prefix --help"
    names=($(help_options "$command" | cut -d' ' -f1))
    expect "$prefix -" "${names[@]/#/+}"
    if [[ $command == main ]]; then
      expect "unsluice -" "${names[@]/#/+}"
      expect "sluicecat -" "${names[@]/#/+}"
    fi
    for name in $(matches "$prefix -"); do
      grep -qE -- "(^|[^A-Za-z0-9-])$name([^A-Za-z0-9-]|\$)" <<<"$help" ||
        fail "'$prefix -<TAB>' offers $name, which '$prefix --help' does not mention"
    done
    while read -r name type; do
      case $type in
        '')
          # A flag: the next word is not its value, so options are offered there.
          [[ $name == @(-h|--help|-V|--version) ]] ||
            expect "$prefix $name --" nonempty
          ;;
        *'|'*)
          expect "$prefix $name " "=${type//|/ }"
          [[ $name == --* ]] && expect "$prefix $name=" "=${type//|/ }"
          ;;
        DIR)
          expect "$prefix $name " +sub -b.txt
          ;;
        PATH | FILE | OUTPUT | ARCHIVE)
          expect "$prefix $name " +b.txt +sub
          ;;
        *)
          # Numbers, sizes, patterns, names: neither files nor options nor commands.
          expect "$prefix $name " -b.txt -a.gz -sub -tar
          expect "$prefix $name --" empty
          ;;
      esac
    done < <(help_options "$command")
  done
}

# The suffixes the help names: sluice -d offers each compressed one, tar -x -f each archive
# (it makes the files f.SUFFIX).
check_suffixes() {
  local suffix
  local -a compressed archives
  # "-S,--suffix SUF   Use suffix SUF instead of the format's (.gz, .zst, .lz4)"
  compressed=($("$sluice" --help | grep -E '^  -S,' | grep -oE '\.[a-z0-9]+'))
  # "(default from the archive name: .tar.gz, .tgz, .taz, .tar.zst, .tzst, .tar.lz4, .tlz4; ..."
  archives=($("$sluice" tar --help | grep -oE 'archive name: [^;]*' | grep -oE '\.[a-z0-9.]*[a-z0-9]'))
  [[ ${#compressed[@]} -ge 3 && ${#archives[@]} -ge 6 ]] ||
    fail "could not read the suffixes from the help (${compressed[*]}; ${archives[*]})"
  for suffix in "${compressed[@]}" "${archives[@]}" .tar; do : >"f$suffix"; done
  for suffix in "${compressed[@]}" "${archives[@]}"; do
    expect "sluice -d f" "+f$suffix"
    expect "unsluice f" "+f$suffix"
  done
  for suffix in "${archives[@]}" .tar; do expect "sluice tar -x -f f" "+f$suffix"; done
  expect "sluice -d f" -f.tar
}
