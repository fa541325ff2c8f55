#!/usr/bin/env bash
# ThreadSanitizer job: the concurrency tests (graphs, CompressNode in a caller's graph, batches,
# parallel and serial decoding, transcode's pipe between two graphs, inputs changing under a
# running batch) built with -fsanitize=thread. Any report fails the job.
#
# Why oneTBB is rebuilt here: Debian's libtbb is not instrumented, so TSan cannot see the
# synchronisation inside its task scheduler. Against it, every hand-off of a task from one worker
# to another is reported as a race (73 reports in graph_tests + flow_tests alone), which would
# drown real ones, and a suppression broad enough to silence them would silence ours as well.
# So this script builds the very same oneTBB version (Debian's source package, checksum pinned)
# with TBB_SANITIZE=thread, once, into build/tsan-deps, and the tests link against that; then
# TSan sees every happens-before edge and needs no suppressions at all.
#
# Usage: scripts/tsan.sh   (about 3-6 minutes on 2 cores, oneTBB included)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh

source scripts/onetbb.sh
deps=build/tsan-deps
build_onetbb "$deps" "with ThreadSanitizer" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTBB_SANITIZE=thread \
  -DTBB_ENABLE_IPO=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG"

echo "== tsan: configure and build"
cmake --preset tsan >/dev/null
cmake --build --preset tsan --target graph_tests flow_tests batch_tests decode_tests pipeline_tests fault_tests \
  stream_tests zip_tests inflate_tests source_tests

echo "== tsan: test"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
bin=build/tsan/tests
# The libtbb these run with must be the instrumented one.
# (ldd's output taken whole first: with pipefail, grep -q leaving early fails the pipe by SIGPIPE.)
libraries=$(ldd "$bin/graph_tests")
grep -q "$PWD/$deps/install/lib/libtbb" <<<"$libraries" || { echo "tsan: not linked to the TSan oneTBB" >&2; exit 1; }
# Two lanes of test programs at once (each program is one process; on 2 cores one at a time left
# a core idle much of the 260 s): each lane stops at its first failure, its output shown whole.
lane_a() {
  "$bin/graph_tests" --gtest_brief=1 &&
    "$bin/stream_tests" --gtest_brief=1 --gtest_filter='-StreamMemory.*' &&  # memory is release's to measure
    "$bin/pipeline_tests" --gtest_brief=1 --gtest_filter='PipelineLibrary.*' &&
    "$bin/fault_tests" --gtest_brief=1 --gtest_filter='Faults.AnInput*:FdSourceShrink.*:MappedInput.*:-MappedInput.FilesOfSeveral*' &&
    # A stream that arrives slowly: the graph hands its reader and writer over to the caller.
    "$bin/source_tests" --gtest_brief=1 --gtest_filter='ArrivingStreams.*'
}
lane_b() {
  "$bin/flow_tests" --gtest_brief=1 &&
    "$bin/batch_tests" --gtest_brief=1 &&
    # The corruption suites (Damaged) decode one stream at a time and run under ASan/UBSan.
    "$bin/decode_tests" --gtest_brief=1 --gtest_filter='-Codecs/Damaged.*' &&
    "$bin/inflate_tests" --gtest_brief=1 \
      --gtest_filter='SharedHistoryStreams.FalseSync*:SharedHistoryStreams.Concatenated*:ManyMembers.EachMember*:ManyMembers.MembersInPieces*' &&
    "$bin/zip_tests" --gtest_brief=1 --gtest_filter='ZipLibrary.*:ZipDamage.*'
}
logs=$(mktemp -d)
lane_a > "$logs/a" 2>&1 &
lane_a_pid=$!
status_b=0
lane_b > "$logs/b" 2>&1 || status_b=$?
status_a=0
wait "$lane_a_pid" || status_a=$?
cat "$logs/a" "$logs/b"
rm -rf "$logs"
if [[ $status_a -ne 0 || $status_b -ne 0 ]]; then
  echo "tsan: a test program failed (lane a: $status_a, lane b: $status_b)" >&2
  exit 1
fi
echo "== tsan: no reports"
