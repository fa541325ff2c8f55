#!/usr/bin/env bash
# Bash completion (apps/completion/sluice.bash) as bash-completion runs it: what sluice,
# unsluice and sluicecat offer for the lines users type, and the compressed files and archives
# by every suffix the help names.
# Usage: completion_bash.sh SLUICE COMPLETION_DIR
sluice=$(realpath -- "$1") completion_dir=$(realpath -- "$2")
here=$(cd "$(dirname "$0")" && pwd)
source "$here/completion_lib.sh"
source "$here/completion_bash_setup.sh"

make_scratch
check_behaviour
check_suffixes
# Words the readline split at = and a value attached to a short option.
expect 'sluice --gzip-form=s' =single-member
expect 'sluice -Fz' =-Fzstd
expect 'sluice -dcFl' =-dcFlz4
expect 'sluice tar -Cs' =-Csub

if ((failures)); then
  echo "bash completion: $failures failure(s)" >&2
  exit 1
fi
echo "bash completion: $checks checks passed"
