// The ends the one-call APIs give a run: a file to a file (published atomically, with the input's
// permissions and times), or memory to memory; and waiting for a source that is written as it is
// read. Shared by compress and decompress. Internal.
#pragma once

#include <chrono>
#include <string>

#include "sluice/bytes.h"
#include "sluice/io.h"

namespace sluice::detail {

// Runs `run(source, output)` from the file at `input_path` into a new file at `output_path`;
// returns what `run` returns. The output appears only when the run succeeded.
template <typename Run>
auto run_file_to_file(const std::string& input_path, const std::string& output_path, bool overwrite, Run run) {
  FdSource source(input_path);
  OutputFile output(output_path, overwrite);
  output.preserve_metadata_of(source.status());
  auto result = run(source, output);
  output.commit(false);
  return result;
}

// Runs `run(source, sink)` over `input` and returns the bytes it wrote.
template <typename Run>
Buffer run_in_memory(ByteView input, Run run) {
  MemorySource source(input);
  MemorySink sink;
  run(source, sink);
  return sink.take();
}

// Waits until `source` has something to read (or has ended); false once `stopped()` says so
// first. A read that waits for a silent writer (a pipe, a socket, a Compressor's caller) cannot
// see that the run was stopped or failed meanwhile; this sees it within kStopCheckInterval.
inline constexpr std::chrono::milliseconds kStopCheckInterval{50};
template <typename Stopped>
bool wait_for_source(ByteSource& source, const Stopped& stopped) {
  while (!source.wait_readable(kStopCheckInterval)) {
    if (stopped()) return false;
  }
  return !stopped();
}

}  // namespace sluice::detail
