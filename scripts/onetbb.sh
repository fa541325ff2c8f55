# Sourced by scripts/tsan.sh and scripts/static-build.sh: builds the oneTBB version Debian
# packages, from Debian's source package (checksum pinned), once, into DIR/install.
#
#   build_onetbb DIR WHAT [CMAKE_ARGS...]    WHAT: a few words for the log line

tbb_version=2021.8.0
tbb_tarball=onetbb_${tbb_version}.orig.tar.xz
tbb_url=http://deb.debian.org/debian/pool/main/o/onetbb/${tbb_tarball}
tbb_sha256=7e9111b8bb59c8800bf6d0b06afe7b0891937443d2dae1ee1101c8e2ede6a7ef

build_onetbb() {
  local deps=$1 what=$2
  shift 2
  [[ -f $deps/install/lib/cmake/TBB/TBBConfig.cmake ]] && return 0
  echo "== building oneTBB $tbb_version $what"
  rm -rf "$deps" && mkdir -p "$deps"
  curl -fsSL --retry 3 -o "$deps/$tbb_tarball" "$tbb_url"
  echo "$tbb_sha256  $deps/$tbb_tarball" | sha256sum -c --quiet
  tar -xf "$deps/$tbb_tarball" -C "$deps"
  cmake -S "$deps/oneTBB-$tbb_version" -B "$deps/build" -G Ninja -DTBB_TEST=OFF -DTBB_EXAMPLES=OFF \
    -DTBBMALLOC_BUILD=OFF -DTBB_STRICT=OFF -DCMAKE_INSTALL_PREFIX="$PWD/$deps/install" "$@" >/dev/null
  cmake --build "$deps/build" >/dev/null
  cmake --install "$deps/build" >/dev/null
}
