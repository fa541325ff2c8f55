# Completes lines in a real interactive zsh and prints what it offers (run with zsh -f).
# Usage: zsh -f completion_zsh_capture.zsh FPATH_DIR WORK_DIR BIN_DIR < lines
# For each line read (the words typed before TAB), prints "### LINE", then one line per match
# offered ("MATCH" or "MATCH -- DESCRIPTION"). The interactive zsh runs in a pseudo-terminal
# (zsh/zpty) with compinit, FPATH_DIR first on fpath, WORK_DIR as its directory and BIN_DIR first
# on PATH; a compadd wrapper records the matches, as github.com/Valodim/zsh-capture-completion does.
emulate -R zsh
zmodload zsh/zpty || { print -u2 "completion_zsh_capture: zsh has no zsh/zpty module"; exit 3 }
fpath_dir=$1 work_dir=$2 bin_dir=$3
setup=$(mktemp "${TMPDIR:-/tmp}/completion_zsh_setup.XXXXXX") || exit 3
trap 'rm -f $setup' EXIT
cat > $setup <<SETUP
PS1='' PROMPT='' RPROMPT='' PS2=''
stty columns 1000 2>/dev/null
bindkey -e
fpath=(${(q)fpath_dir} \$fpath)
path=(${(q)bin_dir} \$path)
cd ${(q)work_dir} || exit 3
autoload -Uz compinit && compinit -D -u
zmodload zsh/zutil
SETUP
cat >> $setup <<'SETUP'
compadd() {
  # Calls that only ask which of the words match (-O, -A, -D) offer nothing: pass them on.
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then
    builtin compadd "$@"
    return
  fi
  local -a __hits __dscr
  local __tmp __i
  if (( $@[(I)-d] )); then
    __tmp=${@[$(( ${@[(i)-d]} + 1 ))]}
    if [[ $__tmp == \(* ]]; then eval "__dscr=$__tmp"; else __dscr=( "${(@P)__tmp}" ); fi
  fi
  builtin compadd -A __hits -D __dscr "$@"
  for (( __i = 1; __i <= $#__hits; __i++ )); do
    print -r -- "${__hits[__i]}${__dscr[__i]:+ -- ${__dscr[__i]}}"
  done
  # Add them too, so that the functions that count matches see them.
  builtin compadd "$@"
}
_capture_complete() {
  print -r -- '<<capture-begin>>'
  _main_complete
  print -r -- '<<capture-end>>'
  # Insert and list nothing: the next line starts afresh.
  compstate[insert]=''
  compstate[list]=''
}
zle -C capture-complete complete-word _capture_complete
bindkey '^I' capture-complete
print -r -- '<<capture-ready>>'
SETUP

zpty capture zsh -f -i || exit 3
zpty -w capture "source ${(q)setup}"
out=
zpty -r capture out '*<<capture-ready>>*' || { print -u2 "completion_zsh_capture: zsh did not start"; exit 3 }
while IFS= read -r query; do
  zpty -n -w capture "$query"$'\t'
  out=
  zpty -r capture out '*<<capture-end>>*' || { print -u2 "completion_zsh_capture: no answer to '$query'"; exit 3 }
  out=${out//$'\r'/}
  out=${out#*<<capture-begin>>$'\n'}
  out=${out%<<capture-end>>*}
  print -r -- "### $query"
  [[ -n $out ]] && print -rn -- "$out"
  # Clear the line (kill-whole-line).
  zpty -n -w capture $'\C-u'
done
zpty -d capture
