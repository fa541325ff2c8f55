#!/usr/bin/env bash
# Checks the include rules of docs/layers.md: each layer includes only the layers below it.
# Prints every include that breaks a rule and exits 1, or says how many files it checked.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
checked=0
# check FOLDER ALLOWED_REGEX: every quoted include in FOLDER's sources must match ALLOWED_REGEX.
check() {
  local folder=$1 allowed=$2 file line
  while IFS= read -r file; do
    checked=$((checked + 1))
    while IFS= read -r line; do
      local target=${line#*\"}
      target=${target%%\"*}
      if [[ ! $target =~ $allowed ]]; then
        echo "check-layers: $file includes \"$target\" (docs/layers.md: $folder may include $allowed)" >&2
        status=1
      fi
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]+"' "$file" || true)
  done < <(find "$folder" -name '*.cpp' -o -name '*.h' | sort)
}

base='^sluice/(bytes|error|io|version)\.h$'
check include/sluice/bytes.h "$base"
check include/sluice/error.h "$base"
check include/sluice/io.h "$base"
check include/sluice/codec.h "$base"
check include/sluice/codec_author.h "$base|^sluice/codec\.h$"
check include/sluice/deflate.h "$base"
check core "^core/|$base"
check codecs '^(codecs|core)/|^sluice/(bytes|error|io|version|codec|codec_author|deflate)\.h$'
check engine '^(engine|core)/|^sluice/'
check archives '^(archives|core)/|^sluice/'
check pipelines '^(pipelines|core)/|^sluice/'
check apps '^apps/|^sluice/'
check python '^sluice/'
[[ $status -eq 0 ]] && echo "check-layers: $checked files follow docs/layers.md"
exit $status
