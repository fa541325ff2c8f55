# Shared by the bash completion tests (sourced): loads bash-completion and apps/completion's
# sluice.bash into this bash, and defines complete_line as bash runs a completion.

bash_completion=/usr/share/bash-completion/bash_completion
if [[ ! -r $bash_completion ]]; then
  echo "FAIL: $bash_completion is missing: install bash-completion (scripts/setup.sh does)" >&2
  exit 1
fi
# shellcheck source=/dev/null
source "$bash_completion"
# shellcheck source=../apps/completion/sluice.bash
source "$completion_dir/sluice.bash" || exit 1
# Member listing runs the program named on the line.
PATH=$(cd "$(dirname "$sluice")" && pwd):$PATH

# Sets COMP_WORDS, COMP_CWORD, COMP_LINE and COMP_POINT as readline does for LINE with the cursor
# at its end (words split at blanks and at =, a word of its own), calls the function that
# `complete -p` names for the command, and prints COMPREPLY.
complete_line() {
  local line=$1 token function
  local -a words=()
  set -f
  for token in $line; do
    while [[ $token == *=* ]]; do
      [[ -n ${token%%=*} ]] && words+=("${token%%=*}")
      words+=("=")
      token=${token#*=}
    done
    [[ -n $token ]] && words+=("$token")
  done
  set +f
  [[ -z $line || $line == *' ' ]] && words+=("")
  function=$(complete -p "${words[0]}" 2>/dev/null | sed -n 's/.*-F \([^ ]*\) .*/\1/p')
  if [[ -z $function ]]; then
    fail "no bash completion for ${words[0]}"
    return
  fi
  COMP_WORDS=("${words[@]}")
  COMP_CWORD=$((${#words[@]} - 1))
  COMP_LINE=$line
  COMP_POINT=${#line}
  COMPREPLY=()
  "$function" "${words[0]}" "${words[COMP_CWORD]}" "${words[COMP_CWORD - 1]}"
  ((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}"
}
