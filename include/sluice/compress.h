// Compressing a stream with the chunked flow graph:
//
//   reader -> limiter -> compressor (parallel) -> ordering (sequencer) -> writer
//      ^                                                                     |
//      +-------------------- decrement (one chunk retired) ------------------+
//
// The reader cuts each input into numbered chunks, the compressors run on every worker, the
// sequencer restores order and the serial writer emits header, chunks and trailer. The limiter
// caps how many chunks exist at once, so memory does not grow with input size.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/codec.h"
#include "sluice/io.h"

namespace sluice {

struct CompressOptions {
  std::string codec = "gzip";
  CodecOptions codec_options;   // level and chunk size; zero picks the codec's default
  int threads = 0;              // worker threads; 0 = all cores available to the process
  // Chunks allowed in flight at once; 0 = 3 per thread (+2 for the reader's look-ahead).
  std::size_t max_chunks_in_flight = 0;
};

struct CompressStats {
  std::uint64_t input_bytes = 0;
  std::uint64_t output_bytes = 0;
  std::uint64_t chunks = 0;
  // How many distinct threads ran the compressor node (proof of parallelism).
  std::size_t compressor_threads = 0;
  // The most chunks that existed at once (proof of the memory bound).
  std::size_t peak_chunks_in_flight = 0;
  double seconds = 0;
};

// One input stream and where its compressed form goes.
struct CompressStream {
  ByteSource* source = nullptr;
  ByteSink* sink = nullptr;
  StreamInfo info;
};

// Compresses each stream to its sink with one graph run. Throws Error (with the stream's name and
// the input offset of the failing chunk) on the first failure; the graph stops cleanly.
CompressStats compress_streams(const std::vector<CompressStream>& streams,
                               const CompressOptions& options);

// A single stream (convenience over compress_streams).
CompressStats compress(ByteSource& source, ByteSink& sink, const CompressOptions& options,
                       const StreamInfo& info = {});

// Compresses a buffer in memory.
Buffer compress_buffer(ByteView input, const CompressOptions& options);

// The thread count `threads` resolves to (0 -> available cores).
int resolve_threads(int threads);

}  // namespace sluice
