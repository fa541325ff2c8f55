#!/usr/bin/env bash
# The compression libraries under valgrind's memcheck: reads of uninitialised memory in what
# sluice hands them. ASan and TSan do not see into the Debian libraries (they are not built with
# the sanitizers), and such a read makes the bytes differ from one run to the next: ISA-L's
# stateless deflate read a field its init leaves unset (codecs/deflate_isal.cpp).
#
#   valgrind_engines_test.sh SLUICE
#
# Every engine and form compresses, every engine decodes (serial and parallel, sluice's streams
# and gzip's); valgrind exits 99 on an error it reports. Skipped (77) without valgrind.
set -euo pipefail

sluice=$(realpath "${1:?usage: valgrind_engines_test.sh SLUICE}")
if ! command -v valgrind >/dev/null; then
  echo "valgrind_engines_test: valgrind is missing (scripts/setup.sh installs it)" >&2
  exit 77
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

# 1.6 MB: text, then bytes that do not compress (stored blocks), then text again.
{
  seq 1 40000 | awk '{ print "line " $1 " of the sample, value " ($1 * 7919) % 1000 }'
  head -c 65536 /dev/urandom
  seq 1 20000 | awk '{ print "tail " ($1 % 97) }'
} > sample
gzip -6 -n -c sample > gzip.gz

failed=0
run() {
  local what=$1
  shift
  if ! valgrind -q --error-exitcode=99 --undef-value-errors=yes "$sluice" "$@" 2> valgrind.log; then
    echo "FAIL: $what: sluice $*" >&2
    cat valgrind.log >&2
    failed=1
  fi
}

compress() {
  local name=$1
  shift
  run "compress $name" -c "$@" -j 2 < sample > "$name"
}
compress gzip1.gz -F gzip --level 1 --chunk-size 131072
compress gzip3-isal.gz -F gzip --level 3 --gzip-backend isal --chunk-size 131072
compress gzip6.gz -F gzip --level 6 --chunk-size 131072
compress gzip9-zlib.gz -F gzip --level 9 --gzip-backend zlib --chunk-size 131072
compress single.gz -F gzip --level 6 --gzip-form single-member --chunk-size 131072
compress members.gz -F gzip --level 1 --gzip-form multi-member --chunk-size 131072
compress bgzf.gz -F gzip --gzip-form bgzf
compress zstd.zst -F zstd --level 3 --chunk-size 131072
compress lz4.lz4 -F lz4 --level 9 --chunk-size 131072

# Each form decoded; gzip6 stands for the other engines' streams of its form, which go through
# the same decoder (valgrind's start-up makes each run cost 1-1.5 s): gzip checks those.
for packed in gzip1.gz gzip3-isal.gz gzip9-zlib.gz; do
  gzip -dc "$packed" | cmp -s - sample || { echo "FAIL: $packed: gzip -dc gives not the sample" >&2; failed=1; }
done
for packed in gzip6.gz single.gz members.gz bgzf.gz zstd.zst lz4.lz4 gzip.gz; do
  # Each gzip engine on a single member of sluice's and one of gzip's; the default elsewhere.
  backends=("")
  [[ $packed == single.gz || $packed == gzip.gz ]] &&
    backends=("" "--gzip-backend zlib" "--gzip-backend libdeflate" "--gzip-backend isal")
  for backend in "${backends[@]}"; do
    for threads in 1 2; do
      # shellcheck disable=SC2086 # the backend option is two words or none
      run "decode $packed" -dc $backend -j "$threads" "$packed" > out
      cmp -s out sample || { echo "FAIL: $packed $backend -j $threads: not the sample" >&2; failed=1; }
    done
  done
done
exit "$failed"
