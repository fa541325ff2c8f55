// Compressing a stream with the chunked flow graph:
//
//   reader -> limiter -> compressor (parallel) -> ordering (sequencer) -> writer
//      ^                                                                     |
//      +-------------------- decrement (one chunk retired) ------------------+
//
// The reader cuts each input into numbered chunks (views of a mapped regular file, or copies out
// of a pipe), the compressors run on every worker, the sequencer restores order and the serial
// writer emits header, chunks and trailer. The limiter caps how many chunks exist at once, so
// memory does not grow with input size.
#pragma once

#include <cstdint>
#include <functional>
#include <stop_token>
#include <string>
#include <vector>

#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice {

// What a failing stream does to the rest of a run.
enum class FailurePolicy {
  kStopRun,     // the first error stops the whole run and is thrown (the default)
  kSkipStream,  // the failing stream's output is discarded; the other streams complete
};

struct CompressOptions {
  std::string codec = "gzip";
  CodecOptions codec_options;   // level and chunk size; zero picks the codec's default
  int threads = 0;              // worker threads; 0 = all cores available to the process
  // Chunks allowed in flight at once; 0 = 3 per thread (+2 for the reader's look-ahead).
  std::size_t max_chunks_in_flight = 0;
  FailurePolicy on_stream_error = FailurePolicy::kStopRun;
  // Called by the writer after each chunk with the uncompressed bytes written so far.
  std::function<void(std::uint64_t input_bytes_done)> on_progress;
  // Called by the reader with the bytes taken from the inputs so far, all streams of the run
  // together: after every read() of a pipe or file (so it moves while a slow input trickles in,
  // long before the first chunk is compressed), and after every chunk cut from a mapped file. It
  // runs ahead of on_progress by the chunks in flight. One call at a time, on the reader's thread.
  std::function<void(std::uint64_t input_bytes_read)> on_read;
  // Stops the run from outside (a Python binding on Ctrl-C, a service shutting down): once
  // requested, no new chunk starts, the graph is cancelled and the call throws Error(kCancelled).
  std::stop_token stop;
};

struct CompressStats {
  std::uint64_t input_bytes = 0;
  std::uint64_t output_bytes = 0;
  std::uint64_t chunks = 0;
  // How many distinct threads ran the compressor node (proof of parallelism).
  std::size_t compressor_threads = 0;
  // The most chunks that existed at once (proof of the memory bound).
  std::size_t peak_chunks_in_flight = 0;
  std::size_t failed_streams = 0;
  double seconds = 0;
};

// What became of one stream of a run.
struct StreamResult {
  std::uint64_t input_bytes = 0;
  std::uint64_t output_bytes = 0;
  double seconds = 0;  // from opening its input to publishing its output
};

// Where a run's streams come from and go to. The graph opens each stream's input when the reader
// reaches it and its output when the writer reaches it, so a batch of any size holds only a
// couple of files open. The reader calls the source methods and the writer the sink methods,
// each from one thread at a time. Every stream ends with exactly one call to commit_sink() or
// fail(), and a committed one then with committed(), in stream order.
//
// A set whose streams each have an output of their own (a file per stream) says so with
// independent_sinks(): then a stream that fits in one chunk is written and committed by the
// worker that compressed it, and open_sink() and commit_sink() run for several such streams at
// once, on different threads (never twice at once for one stream). The per-file system calls of
// a batch of small files are then spread over the workers instead of queueing in the writer.
class StreamSet {
 public:
  virtual ~StreamSet() = default;
  // Whether the sink methods may run for different streams at once (see above). False by default.
  virtual bool independent_sinks() const { return false; }
  virtual std::size_t size() const = 0;
  // Opens stream i's input and fills in its header metadata. Throws Error if it cannot.
  virtual ByteSource& open_source(std::size_t i, StreamInfo& info) = 0;
  // Stream i's input is no longer needed (read to the end, or the stream failed).
  virtual void close_source(std::size_t i) noexcept = 0;
  // Opens stream i's output; called before its first bytes are written. Throws Error if it cannot.
  virtual ByteSink& open_sink(std::size_t i) = 0;
  // Stream i is completely written: publish it. Throws Error if it cannot (the stream then fails).
  virtual void commit_sink(std::size_t i, const StreamResult& result) = 0;
  // Stream i failed with `error`: discard whatever output it has.
  virtual void fail(std::size_t i, const Error& error) noexcept = 0;
  // After commit_sink(i) succeeded, in stream order, from one thread at a time: for reports that
  // should come out in the order of the streams (which commit_sink() keeps only without
  // independent_sinks()). Nothing by default.
  virtual void committed(std::size_t i, const StreamResult& result) {
    (void)i;
    (void)result;
  }
};

// Compresses every stream of `streams` in one graph run. With kStopRun the first failure is
// thrown; with kSkipStream failures are reported through StreamSet::fail() and counted.
CompressStats compress_stream_set(StreamSet& streams, const CompressOptions& options);

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

// Compresses the file at `input_path` into `output_path` (written to a temporary and renamed into
// place when complete; the input's name, time and permissions are kept as gzip keeps them).
// Throws Error if `output_path` exists and `overwrite` is false.
CompressStats compress_file(const std::string& input_path, const std::string& output_path,
                            const CompressOptions& options, bool overwrite = false);

// Compresses a buffer in memory (the bytes compress() gives with the same `info`). An input of at
// most a chunk is compressed on the calling thread, starting no worker.
Buffer compress_buffer(ByteView input, const CompressOptions& options, const StreamInfo& info = {});

// The thread count `threads` resolves to (0 -> available cores).
int resolve_threads(int threads);

// Whether graphs pin their threads to CPUs (on by default; Linux only). A graph with one thread
// per CPU the process may use (two or more: the default thread count) pins each thread that
// compresses a chunk or decodes a unit to a CPU of its own, and gives every thread it pinned its
// CPU mask back when the graph ends (a stream decoded serially is not pinned). Nothing is pinned
// with fewer threads than CPUs, or while two graphs run at once in the process. Left to itself
// the scheduler kept both threads of a run on one CPU for milliseconds at a time while the other
// idled; pinned, runs are faster (BENCHMARKS.md has the figures). Turn it off for the whole process
// (`sluice --no-pin`) when the CPUs are shared with other work that should be free to move.
void set_thread_pinning(bool enabled);
bool thread_pinning();

}  // namespace sluice
