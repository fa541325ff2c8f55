#!/usr/bin/env bash
# Bash completion covers the help: every option that `sluice <command> --help` prints (aliases
# split) is offered after -, nothing else is, every option that takes a value completes it by its
# type (the a|b|c lists exactly), and sluice.bash's lists of options that take a value are exactly
# those the help gives a type. A flag added to the program without completion fails here.
# Usage: completion_bash_coverage.sh SLUICE COMPLETION_DIR
sluice=$(realpath -- "$1") completion_dir=$(realpath -- "$2")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/completion_lib.sh"
source "$here/completion_bash_setup.sh"

make_scratch
check_coverage
for command in "${commands[@]}"; do
  list=_sluice_args_$command
  want=$(help_options "$command" | awk '$2 != "" { print $1 }' | LC_ALL=C sort)
  got=$(printf '%s\n' ${!list} | LC_ALL=C sort)
  [[ $got == "$want" ]] ||
    fail "$list in sluice.bash is not the options of '$(command_line "$command") --help' that take a value:" \
      "$(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' ')"
done

if ((failures)); then
  echo "bash completion coverage: $failures failure(s)" >&2
  exit 1
fi
echo "bash completion coverage: $checks checks passed"
