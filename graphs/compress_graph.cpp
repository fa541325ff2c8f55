// The compression graph (see sluice/compress.h for its shape).
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include "core/chunk.h"
#include "core/first_error.h"
#include "sluice/compress.h"
#include "sluice/error.h"

namespace sluice {
namespace {

using detail::Chunk;
using detail::ChunkPool;
using detail::FirstError;
namespace flow = tbb::flow;

constexpr int kMaxThreads = 1024;
constexpr std::size_t kChunksPerThread = 3;
// The reader holds one chunk of look-ahead and the input node buffers one more.
constexpr std::size_t kReaderChunks = 2;

// Cuts the streams, one after another, into chunks numbered in one sequence for the whole run.
// The reader keeps one chunk of look-ahead so that it knows which chunk is a stream's last
// without trusting a size from stat (stdin has none; a file may change while read).
class ChunkReader {
 public:
  ChunkReader(const std::vector<CompressStream>& streams, ChunkPool& pool, std::size_t chunk_bytes,
              std::size_t history_bytes, FirstError& errors)
      : streams_(streams), pool_(pool), chunk_bytes_(chunk_bytes), history_limit_(history_bytes), errors_(errors) {}

  Chunk* next(tbb::flow_control& control) {
    if (!errors_.failed()) {
      try {
        if (Chunk* chunk = next_chunk()) return chunk;
      } catch (...) {
        errors_.capture_current(streams_[stream_].source->name(), stream_offset_);
      }
    }
    control.stop();
    return nullptr;
  }

 private:
  Chunk* next_chunk() {
    if (stream_ == streams_.size()) return nullptr;
    if (!held_) {
      held_ = read_chunk();
      held_->first = true;
    }
    // Only a full chunk can have a successor; a short one ends the stream.
    Chunk* ahead = held_->payload().size() == chunk_bytes_ ? read_chunk() : nullptr;
    if (ahead && ahead->payload().empty()) {
      pool_.release(ahead);
      ahead = nullptr;
    }
    Chunk* out = held_;
    out->sequence = sequence_++;
    held_ = ahead;
    if (!ahead) {
      out->last = true;
      ++stream_;
      stream_offset_ = 0;
      tail_.clear();
    }
    return out;
  }

  Chunk* read_chunk() {
    Chunk* chunk = pool_.acquire();
    chunk->stream = static_cast<std::uint32_t>(stream_);
    chunk->offset = stream_offset_;
    chunk->first = chunk->last = chunk->skip = false;
    chunk->check = 0;
    chunk->output.clear();
    chunk->history_bytes = tail_.size();
    chunk->input.resize(tail_.size() + chunk_bytes_);
    if (!tail_.empty()) std::memcpy(chunk->input.data(), tail_.data(), tail_.size());
    const std::size_t got = streams_[stream_].source->read_full(chunk->input.data() + tail_.size(), chunk_bytes_);
    chunk->input.resize(tail_.size() + got);
    stream_offset_ += got;
    // The next chunk's history: the last history_limit_ bytes of history + this payload.
    if (history_limit_ > 0) {
      const ByteView all = chunk->input.view();
      const ByteView keep = all.last(std::min(all.size(), history_limit_));
      tail_.clear();
      tail_.append(keep);
    }
    return chunk;
  }

  const std::vector<CompressStream>& streams_;
  ChunkPool& pool_;
  const std::size_t chunk_bytes_;
  const std::size_t history_limit_;
  FirstError& errors_;
  std::size_t stream_ = 0;
  std::uint64_t stream_offset_ = 0;
  std::uint64_t sequence_ = 0;
  Chunk* held_ = nullptr;
  Buffer tail_;
};

// Emits each stream's header, chunks and trailer in order. Runs serially, so it needs no locks.
class StreamWriter {
 public:
  StreamWriter(const std::vector<CompressStream>& streams, const Codec& codec, CompressStats& stats)
      : streams_(streams), codec_(codec), stats_(stats) {}

  void write(const Chunk& chunk) {
    const CompressStream& stream = streams_[chunk.stream];
    if (chunk.first) {
      framer_ = codec_.make_framer(stream.info);
      emit_framing(stream, &StreamFramer::header);
    }
    stream.sink->write(chunk.output.view());
    framer_->add_chunk(chunk.payload(), chunk.check);
    stats_.output_bytes += chunk.output.size();
    stats_.input_bytes += chunk.payload().size();
    ++stats_.chunks;
    if (chunk.last) {
      emit_framing(stream, &StreamFramer::trailer);
      framer_.reset();
    }
  }

 private:
  void emit_framing(const CompressStream& stream, void (StreamFramer::*part)(Buffer&)) {
    scratch_.clear();
    (framer_.get()->*part)(scratch_);
    if (!scratch_.empty()) stream.sink->write(scratch_.view());
    stats_.output_bytes += scratch_.size();
  }

  const std::vector<CompressStream>& streams_;
  const Codec& codec_;
  CompressStats& stats_;
  std::unique_ptr<StreamFramer> framer_;
  Buffer scratch_;
};

void run_compress_graph(const std::vector<CompressStream>& streams, const Codec& codec, std::size_t max_in_flight,
                        CompressStats& stats) {
  flow::graph graph;
  FirstError errors([&graph] { graph.cancel(); });
  ChunkPool pool;
  ChunkReader chunk_reader(streams, pool, codec.options().chunk_bytes, codec.info().history_bytes, errors);
  StreamWriter stream_writer(streams, codec, stats);
  // One compression context per worker thread, created on first use and reused for every chunk.
  tbb::enumerable_thread_specific<std::unique_ptr<ChunkCompressor>> compressors(
      [&codec] { return codec.make_chunk_compressor(); });

  // Serial by nature (input_node runs one body at a time): reads are sequential per stream.
  flow::input_node<Chunk*> reader(graph, [&](tbb::flow_control& control) { return chunk_reader.next(control); });

  // Bounds the chunks in flight; the writer's decrement admits the next one.
  flow::limiter_node<Chunk*> limiter(graph, max_in_flight);

  // Unlimited: the limiter already bounds the work and the arena bounds the threads, so every
  // worker may compress a chunk at once.
  flow::function_node<Chunk*, Chunk*> compressor(graph, flow::unlimited, [&](Chunk* chunk) {
    if (chunk->skip || errors.failed()) {
      chunk->skip = true;
      return chunk;
    }
    try {
      chunk->check = compressors.local()->compress(chunk->history(), chunk->payload(), chunk->last, chunk->output);
    } catch (...) {
      errors.capture_current(streams[chunk->stream].source->name(), chunk->offset);
      chunk->skip = true;
    }
    return chunk;
  });

  // Restores the reader's order, which the compressors lost.
  flow::sequencer_node<Chunk*> ordering(graph, [](Chunk* const& chunk) { return chunk->sequence; });

  // Serial: the output streams are written in order, one chunk at a time.
  flow::function_node<Chunk*, flow::continue_msg> writer(graph, flow::serial, [&](Chunk* chunk) {
    if (!chunk->skip && !errors.failed()) {
      try {
        stream_writer.write(*chunk);
      } catch (...) {
        errors.capture_current(streams[chunk->stream].sink->name(), std::nullopt);
      }
    }
    pool.release(chunk);
    return flow::continue_msg();
  });

  flow::make_edge(reader, limiter);
  flow::make_edge(limiter, compressor);
  flow::make_edge(compressor, ordering);
  flow::make_edge(ordering, writer);
  flow::make_edge(writer, limiter.decrementer());

  reader.activate();
  graph.wait_for_all();

  stats.compressor_threads = compressors.size();
  stats.peak_chunks_in_flight = pool.peak_in_use();
  errors.rethrow_if_failed();
}

}  // namespace

int resolve_threads(int threads) {
  if (threads < 0 || threads > kMaxThreads) {
    throw Error(ErrorKind::kUsage, fmt::format("thread count must be between 1 and {}, not {}", kMaxThreads, threads));
  }
  return threads == 0 ? tbb::info::default_concurrency() : threads;
}

CompressStats compress_streams(const std::vector<CompressStream>& streams, const CompressOptions& options) {
  for (const auto& stream : streams) {
    if (!stream.source || !stream.sink) throw Error(ErrorKind::kUsage, "a stream needs a source and a sink");
  }
  const auto codec = CodecRegistry::global().create(options.codec, options.codec_options);
  const int threads = resolve_threads(options.threads);
  const std::size_t max_in_flight =
      options.max_chunks_in_flight > 0 ? options.max_chunks_in_flight : kChunksPerThread * static_cast<std::size_t>(threads);

  CompressStats stats;
  const auto start = std::chrono::steady_clock::now();
  if (!streams.empty()) {
    // The arena caps the worker threads; the graph built inside it runs in it.
    tbb::task_arena arena(threads);
    arena.execute([&] { run_compress_graph(streams, *codec, max_in_flight, stats); });
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

CompressStats compress(ByteSource& source, ByteSink& sink, const CompressOptions& options, const StreamInfo& info) {
  return compress_streams({CompressStream{&source, &sink, info}}, options);
}

Buffer compress_buffer(ByteView input, const CompressOptions& options) {
  MemorySource source(input);
  MemorySink sink;
  compress(source, sink, options);
  return sink.take();
}

}  // namespace sluice
