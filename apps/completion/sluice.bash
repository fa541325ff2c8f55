# bash completion for sluice, unsluice and sluicecat                 -*- shell-script -*-
#
# Installed as share/bash-completion/completions/sluice, with unsluice and sluicecat as links to
# it (bash-completion loads a command's completion by the command's name).
#
# The option names and value lists below mirror `sluice <command> --help`:
# tests/completion_bash_coverage.sh fails when a flag or a value is added to the help and not here.

_sluice_commands='demo tar zip run transcode'

# Every option of each command (aliases included), in the order of its --help.
_sluice_opts_main='-h --help -V --version -d --decompress --uncompress -t --test -l --list
  --gzip-backend --gzip-form --independent --multi-member --single-member --bgzf --zstd-index
  --no-seek-table -c --stdout --to-stdout -o --output -f --force -k --keep --rm -n --no-name
  -N --name -S --suffix -F --format --level --fast --best --ultra -j -T -p --threads --no-pin
  --chunk-size --max-output -r --recursive --output-dir --fail-fast --json --synchronous
  -q --quiet -v --verbose --progress --no-progress'
_sluice_opts_tar='-h --help -c --create -x --extract -t --list -f -o --file --output
  -C --directory --exclude -F --format -z --gzip --zstd --lz4 -a --auto-compress -l --level
  -j --threads --no-pin --chunk-size --gzip-backend --gzip-form --independent --multi-member
  --single-member --bgzf --zstd-index --no-seek-table -v --verbose --mtime --owner --group
  --numeric-owner -S --sparse -p --preserve-permissions --same-owner --devices --strict
  -T --files-from --null --strip-components --max-output -O --to-stdout -k --keep-old-files
  --no-recursion --one-file-system --totals'
_sluice_opts_zip='-h --help -c --create -x --extract -t --list --test -f -o --file --output
  -C --directory --exclude -F --format -l --level -j --threads --chunk-size -v --verbose
  --mtime -p --preserve-permissions --strict -k --keep-old-files --force --max-output'
_sluice_opts_run='-h --help -n --dry-run -j --threads --no-pin -f --force -o --output --set
  -v --verbose --json'
_sluice_opts_transcode='-h --help -o --output --output-dir -F --format -l --level -j --threads
  --no-pin --chunk-size --gzip-backend --gzip-form --independent --multi-member --single-member
  --bgzf --zstd-index --no-seek-table -f --force --max-output -v --verbose --json'
_sluice_opts_demo='-h --help --size -j --threads --no-pin'

# The options of each command that take a value (the next word, or after = or a short letter).
_sluice_args_main='--gzip-backend --gzip-form --zstd-index -o --output -S --suffix -F --format
  --level -j -T -p --threads --chunk-size --max-output --output-dir'
_sluice_args_tar='-f -o --file --output -C --directory --exclude -F --format -l --level
  -j --threads --chunk-size --gzip-backend --gzip-form --zstd-index --mtime --owner --group
  -T --files-from --strip-components --max-output'
_sluice_args_zip='-f -o --file --output -C --directory --exclude -F --format -l --level
  -j --threads --chunk-size --mtime --max-output'
_sluice_args_run='-j --threads -o --output --set'
_sluice_args_transcode='-o --output --output-dir -F --format -l --level -j --threads
  --chunk-size --gzip-backend --gzip-form --zstd-index --max-output'
_sluice_args_demo='--size -j --threads'

# Value lists, as the help prints them (a|b|c).
_sluice_codecs='gzip zstd lz4'
_sluice_tar_codecs='gzip zstd lz4 none'
_sluice_zip_codecs='gzip zstd'
_sluice_gzip_backends='zlib libdeflate isal'
_sluice_gzip_forms='independent multi-member single-member bgzf'
_sluice_zstd_indexes='seek-table none'

# File name patterns (for _filedir): what sluice decompresses, and tar and zip archives.
_sluice_compressed='gz|tgz|taz|zst|tzst|lz4|tlz4'
_sluice_tar_archives='tar|tar.gz|tgz|taz|tar.zst|tzst|tar.lz4|tlz4'
_sluice_zip_archives='zip'

# Whether $2 is one of the words of the list $1.
_sluice_in()
{
    [[ " ${1//$'\n'/ } " == *" $2 "* ]]
}

# Reads words[first .. cword-1] of command $1 and sets, in the caller: mode (d, t or l for the
# main command; c, x, t or T (--test) for tar and zip), archive (tar's and zip's -f), valopt (the
# option whose value the current word is, if any) and dashdash (whether -- was given).
_sluice_scan()
{
    local cmd=$1 first=$2 args_var=_sluice_args_$1
    local args=${!args_var} i j w c name letters
    letters=''
    for w in $args; do [[ $w == -? ]] && letters+=${w#-}; done
    mode='' archive='' valopt='' dashdash=''
    for ((i = first; i < cword; i++)); do
        w=${words[i]}
        if [[ $valopt ]]; then
            [[ $cmd == @(tar|zip) && $valopt == @(-f|-o|--file|--output) ]] && archive=$w
            valopt=
            continue
        fi
        [[ $dashdash ]] && continue
        case $w in
            --)
                dashdash=1
                ;;
            --?*=*)
                name=${w%%=*}
                [[ $cmd == @(tar|zip) && $name == @(--file|--output) ]] && archive=${w#*=}
                ;;
            --?*)
                if _sluice_in "$args" "$w"; then
                    valopt=$w
                else
                    _sluice_mode "$cmd" "$w"
                fi
                ;;
            -?*)
                for ((j = 1; j < ${#w}; j++)); do
                    c=${w:j:1}
                    if [[ $letters == *"$c"* ]]; then
                        if ((j + 1 < ${#w})); then
                            [[ $cmd == @(tar|zip) && $c == [fo] ]] && archive=${w:j+1}
                        else
                            valopt=-$c
                        fi
                        break
                    fi
                    _sluice_mode "$cmd" "-$c"
                done
                ;;
        esac
    done
}

# Sets mode when option $2 of command $1 chooses one.
_sluice_mode()
{
    case $1:$2 in
        main:-d | main:--decompress | main:--uncompress) mode=d ;;
        main:-t | main:--test) mode=t ;;
        main:-l | main:--list) mode=l ;;
        tar:-c | tar:--create | zip:-c | zip:--create) mode=c ;;
        tar:-x | tar:--extract | zip:-x | zip:--extract) mode=x ;;
        tar:-t | tar:--list | zip:-t | zip:--list) mode=t ;;
        zip:--test) mode=T ;;
    esac
}

# The members of archive $2 (command $1: tar or zip) that start with $cur.
_sluice_members()
{
    local program=$3 path=$2 member
    # Only plain names and ~: no expansion of what was typed runs a command.
    [[ $path == *[\$\`\(\)\;\|\&\<\>]* || $program == *[\$\`\(\)\;\|\&\<\>]* ]] && return
    path=$(dequote "$path")
    path=${path/#\~/$HOME}
    [[ -f $path && -r $path ]] || return
    while IFS= read -r member; do
        [[ $member == "$cur"* ]] && COMPREPLY+=("$member")
    done < <("$(dequote "$program")" "$1" -t -f "$path" 2>/dev/null)
    # Quoted as file names; members that are directories end in /: go on into them.
    ((${#COMPREPLY[@]})) && compopt -o filenames 2>/dev/null
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == */ ]] && compopt -o nospace 2>/dev/null
}

# Completes the value of option $2 of command $1 (the current word is the value).
_sluice_value()
{
    local cmd=$1 opt=$2 list=
    case $cmd:$opt in
        *:--gzip-backend) list=$_sluice_gzip_backends ;;
        *:--gzip-form) list=$_sluice_gzip_forms ;;
        *:--zstd-index) list=$_sluice_zstd_indexes ;;
        tar:-F | tar:--format) list=$_sluice_tar_codecs ;;
        zip:-F | zip:--format) list=$_sluice_zip_codecs ;;
        *:-F | *:--format) list=$_sluice_codecs ;;
        tar:-f | tar:-o | tar:--file | tar:--output)
            if [[ $mode == [xt] ]]; then _filedir "$_sluice_tar_archives"; else _filedir; fi
            return
            ;;
        zip:-f | zip:-o | zip:--file | zip:--output)
            if [[ $mode == [xtT] ]]; then _filedir "$_sluice_zip_archives"; else _filedir; fi
            return
            ;;
        *:-o | *:--output | tar:-T | tar:--files-from)
            _filedir
            return
            ;;
        *:-C | *:--directory | *:--output-dir)
            _filedir -d
            return
            ;;
        tar:--owner)
            COMPREPLY=($(compgen -u -- "$cur"))
            return
            ;;
        tar:--group)
            COMPREPLY=($(compgen -g -- "$cur"))
            return
            ;;
        *)
            # Numbers, sizes, patterns, times, suffixes, KEY=VALUE: nothing to offer.
            return
            ;;
    esac
    COMPREPLY=($(compgen -W "$list" -- "$cur"))
}

_sluice()
{
    local cur prev words cword split
    _init_completion -s || return

    local program=${words[0]##*/} cmd=main first=1 decompressing=
    [[ $program == @(unsluice|sluicecat)* ]] && decompressing=1
    if [[ ! $decompressing ]] && ((cword > 1)) && _sluice_in "$_sluice_commands" "${words[1]}"; then
        cmd=${words[1]}
        first=2
    fi

    local mode archive valopt dashdash
    _sluice_scan "$cmd" "$first"

    # The value of an option: the next word (valopt), or after = (--format=zstd).
    if $split; then
        local args_var=_sluice_args_$cmd
        _sluice_in "${!args_var}" "$prev" && _sluice_value "$cmd" "$prev"
        return
    fi
    if [[ $valopt ]]; then
        _sluice_value "$cmd" "$valopt"
        return
    fi

    if [[ ! $dashdash && $cur == -* ]]; then
        # A value attached to a short option: -Fzstd, -xvfarchive.tar.
        if [[ $cur == -[!-]* ]]; then
            local args_var=_sluice_args_$cmd j c
            for ((j = 1; j < ${#cur}; j++)); do
                c=${cur:j:1}
                if _sluice_in "${!args_var}" "-$c"; then
                    if ((j + 1 < ${#cur})); then
                        local prefix=${cur:0:j+1}
                        cur=${cur:j+1}
                        _sluice_value "$cmd" "-$c"
                        ((${#COMPREPLY[@]})) && COMPREPLY=("${COMPREPLY[@]/#/$prefix}")
                        return
                    fi
                    break
                fi
            done
        fi
        local opts_var=_sluice_opts_$cmd
        COMPREPLY=($(compgen -W "${!opts_var}" -- "$cur"))
        return
    fi

    # Positional arguments.
    case $cmd in
        main)
            if [[ $decompressing || $mode == [dtl] ]]; then
                _filedir "$_sluice_compressed"
            else
                _filedir
            fi
            # The first word may also be a command.
            ((cword == 1)) && [[ ! $decompressing ]] &&
                COMPREPLY+=($(compgen -W "$_sluice_commands" -- "$cur"))
            ;;
        tar | zip)
            if [[ $mode == [xtT] ]]; then
                [[ $archive && $archive != - ]] && _sluice_members "$cmd" "$archive" "${words[0]}"
            else
                _filedir
            fi
            ;;
        run)
            _filedir toml
            ;;
        transcode)
            _filedir "$_sluice_compressed|zip|tar"
            ;;
        demo)
            _filedir
            ;;
    esac
} &&
    complete -F _sluice sluice unsluice sluicecat

# ex: filetype=sh
