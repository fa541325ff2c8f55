// The compression graph (see sluice/compress.h for its shape).
//
// Failure handling. With FailurePolicy::kStopRun the first error anywhere is recorded once, the
// graph is cancelled and the error is rethrown after wait_for_all(). With kSkipStream an error
// fails only its stream: the stream is flagged, the reader stops reading it and ends it with an
// empty last chunk, the compressors skip its chunks, and the writer discards its output when that
// last chunk arrives. Every stream thus ends in the writer, in order, with one commit or fail.
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <utility>

#include <fmt/format.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include "core/first_error.h"
#include "engine/caller_context.h"
#include "engine/chunk.h"
#include "engine/ordered_graph.h"
#include "engine/run_ends.h"
#include "engine/thread_arena.h"
#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/error.h"

namespace sluice {
namespace {

using detail::Chunk;
using detail::ChunkPool;
using detail::FirstError;
using Clock = std::chrono::steady_clock;
namespace flow = tbb::flow;

constexpr int kMaxThreads = 1024;
constexpr std::size_t kChunksPerThread = 3;
// Regular files of more than two chunks are mapped in windows of this size (or a chunk and its
// history, if larger) and cut into chunks as views; smaller ones are read (a mapping costs more
// than it saves there). A window is unmapped when its last chunk retires, so the file pages
// mapped at once stay within a window or two beyond the chunks in flight.
constexpr std::size_t kWindowBytes = 16 * 1024 * 1024;

// Per-stream facts shared by the nodes. A stream's name and start time are written by the reader
// before it emits the stream's first chunk, so nodes that receive that chunk can read them.
class StreamStates {
 public:
  StreamStates(std::size_t count, FailurePolicy policy, FirstError& run_error)
      : failed_(std::make_unique<std::atomic<bool>[]>(count)),
        published_(std::make_unique<std::atomic<bool>[]>(count)),
        results_(count),
        errors_(count),
        names_(count),
        started_(count),
        policy_(policy),
        run_error_(run_error) {}

  bool failed(std::size_t i) const { return failed_[i].load(std::memory_order_acquire) || run_error_.failed(); }

  // Records the exception in flight as stream i's error (the first one per stream wins), naming
  // `path` (default: the stream's input) where the error does not name a file itself.
  void fail_current(std::size_t i, std::optional<std::uint64_t> offset, const std::string* path = nullptr) noexcept {
    fail(i, detail::current_error_with_context(path ? *path : names_[i], offset));
  }
  void fail(std::size_t i, std::exception_ptr error) noexcept {
    {
      std::lock_guard lock(mutex_);
      if (!errors_[i]) errors_[i] = error;
    }
    failed_[i].store(true, std::memory_order_release);
    if (policy_ == FailurePolicy::kStopRun) run_error_.record(error);
  }
  Error error(std::size_t i) const {
    std::lock_guard lock(mutex_);
    return errors_[i] ? detail::error_of(errors_[i])
                      : Error(ErrorKind::kCancelled, "not finished: the run stopped at an earlier failure", names_[i]);
  }

  std::string& name(std::size_t i) { return names_[i]; }
  Clock::time_point& started(std::size_t i) { return started_[i]; }

  // A failure after stream i was committed (a report's callback threw): it stops the run, and the
  // stream stays committed: a published output is never also failed.
  void fail_run_current() noexcept { run_error_.capture_current({}, std::nullopt); }

  // Stream i was committed by a worker (StreamPublisher); the writer reports it in order.
  void published(std::size_t i, const StreamResult& result) {
    results_[i] = result;
    published_[i].store(true, std::memory_order_release);
  }
  const StreamResult* published_result(std::size_t i) const {
    return published_[i].load(std::memory_order_acquire) ? &results_[i] : nullptr;
  }

 private:
  std::unique_ptr<std::atomic<bool>[]> failed_;
  std::unique_ptr<std::atomic<bool>[]> published_;
  std::vector<StreamResult> results_;
  mutable std::mutex mutex_;
  std::vector<std::exception_ptr> errors_;
  std::vector<std::string> names_;
  std::vector<Clock::time_point> started_;
  FailurePolicy policy_;
  FirstError& run_error_;
};

// Cuts the streams, one after another, into chunks numbered in one sequence for the whole run.
// It keeps one chunk of look-ahead so that it knows which chunk is a stream's last without
// trusting a size from stat (stdin has none; a file may change while read).
class ChunkReader {
 public:
  ChunkReader(StreamSet& set, StreamStates& states, std::vector<StreamInfo>& infos, ChunkPool& pool,
              std::size_t chunk_bytes, std::size_t history_bytes, FirstError& run_error,
              const std::function<void(std::uint64_t)>& on_read, const detail::StreamHandOff* hand)
      : hand_(hand),
        set_(set),
        states_(states),
        infos_(infos),
        pool_(pool),
        chunk_bytes_(chunk_bytes),
        history_limit_(history_bytes),
        run_error_(run_error),
        on_read_(on_read) {}

  // The next chunk; nullptr once every stream is read or the run failed.
  Chunk* next() {
    if (!run_error_.failed()) {
      if (Chunk* chunk = next_chunk()) {
        after_flush_ = chunk->flush;
        return chunk;
      }
    }
    close_source();
    return nullptr;
  }

  // Whether next() would wait for a Compressor's caller to write more while that caller waits
  // for a flush (the last chunk ended at its flush point): what the graph's reader pauses for
  // (engine/ordered_graph.h). Only then: a pause first finishes every chunk in flight, which at
  // other waits (a slower writer, stdin) kept the writer waiting too (BENCHMARKS.md, "Streams
  // flushed at once"), while a reader waiting there holds up nothing anyone waits for.
  bool would_wait() const {
    if (!hand_ || !after_flush_ || run_error_.failed() || !source_ || held_) return false;
    return !source_->wait_readable(std::chrono::milliseconds(0));
  }
  // Waits, outside the graph, until next() can go on (at once once the run has failed).
  void wait_readable() const {
    while (source_ && !run_error_.failed() && !source_->wait_readable(std::chrono::milliseconds(500))) {
    }
  }

  // Whether every stream was read to its end.
  bool ended() const { return stream_ == set_.size(); }

  // Streams the reader began (opened or tried to open); the rest were never reached.
  std::size_t streams_begun() const { return streams_begun_; }

  void close_source() noexcept {
    if (source_) set_.close_source(stream_);
    source_ = nullptr;
    mapper_.reset();
    window_.reset();
  }

 private:
  Chunk* next_chunk() {
    if (stream_ == set_.size()) return nullptr;
    try {
      if (!source_) open_stream();
      if (!states_.failed(stream_)) {
        if (!held_) {
          held_ = read_chunk();
          held_->first = !std::exchange(stream_begun_, true);
        }
        // Only a full chunk can have a successor; a short one ends the stream. A chunk that ends at
        // a flush point goes on at once: its writer waits for its output, and its successor (empty
        // where the stream ends there) is read next.
        Chunk* out = std::exchange(held_, nullptr);
        if (out->flush) return number(out);
        Chunk* ahead = !out->payload().empty() && stream_offset_ % chunk_bytes_ == 0 ? read_chunk() : nullptr;
        if (ahead && ahead->payload().empty() && !ahead->flush) {
          pool_.release(ahead);
          ahead = nullptr;
        }
        held_ = ahead;
        if (!ahead) end_stream(out);
        return number(out);
      }
    } catch (...) {
      // A file that could not be opened has no offset to name ("cannot open: ...", not "at byte 0").
      states_.fail_current(stream_, source_ ? std::optional<std::uint64_t>(stream_offset_) : std::nullopt);
    }
    // The stream failed: end it with an empty last chunk so that the writer, in order, learns so.
    if (held_) pool_.release(held_);
    held_ = nullptr;
    Chunk* marker = blank_chunk();
    end_stream(marker);
    return number(marker);
  }

  void open_stream() {
    source_ = nullptr;
    stream_offset_ = 0;
    stream_begun_ = false;
    tail_.clear();
    if (hand_ && hand_->framer) {  // a run of one stream, begun before it
      stream_offset_ = hand_->offset;
      tail_.append(hand_->history.view().last(std::min(hand_->history.size(), history_limit_)));
    }
    states_.started(stream_) = Clock::now();
    streams_begun_ = stream_ + 1;
    source_ = &set_.open_source(stream_, infos_[stream_]);
    states_.name(stream_) = source_->name();
    mapper_.reset();
    window_.reset();
    mapped_file_.reset();
    const auto file = source_->file();
    if (file && !hand_ && detail::FileMapper::enabled()) {
      file_base_ = file->position;  // where the stream starts in the file (stdin: where left)
      if (file->size > file_base_ && file->size - file_base_ > 2 * chunk_bytes_) {
        mapper_.emplace(file->descriptor, file->size);
        mapped_file_ = mapper_->file();
      }
    }
  }

  void end_stream(Chunk* last) {
    last->last = true;
    last->pause = hand_ && hand_->pause.load();
    close_source();
    ++stream_;
  }

  Chunk* number(Chunk* chunk) {
    chunk->sequence = sequence_++;
    return chunk;
  }

  Chunk* blank_chunk() {
    Chunk* chunk = pool_.acquire();
    chunk->stream = static_cast<std::uint32_t>(stream_);
    chunk->offset = stream_offset_;
    chunk->first = chunk->last = chunk->skip = chunk->flush = chunk->pause = false;
    chunk->check = 0;
    chunk->output.clear();
    chunk->input.clear();
    chunk->history_bytes = 0;
    chunk->mapped_file = mapped_file_;
    return chunk;
  }

  Chunk* read_chunk() {
    if (mapper_) {
      if (Chunk* chunk = mapped_chunk()) return chunk;
    }
    Chunk* chunk = blank_chunk();
    chunk->history_bytes = tail_.size();
    // Chunks end where multiples of chunk_bytes_ do, and at flush points: after a flush the next
    // chunk ends where it would have (a reader of the default gzip form that counts whole chunks
    // from the stream's start, sluice.dask's, finds them there).
    const std::size_t want = chunk_bytes_ - static_cast<std::size_t>(stream_offset_ % chunk_bytes_);
    chunk->input.resize(tail_.size() + want);
    if (!tail_.empty()) std::memcpy(chunk->input.data(), tail_.data(), tail_.size());
    std::size_t got = 0;
    try {
      // read_full(), telling on_read after every read() so that a slow pipe shows as it trickles,
      // and stopping at a flush point.
      while (got < want) {
        // A failure elsewhere (the writer's, a stop) is seen while the source's writer is silent.
        if (!detail::wait_for_source(*source_, [this] { return run_error_.failed(); })) {
          std::rethrow_exception(detail::stopped_error());
        }
        const std::size_t n = source_->read(chunk->input.data() + tail_.size() + got, want - got);
        got += n;
        if (n > 0) read(n);
        if (source_->take_flush_point()) {
          chunk->flush = true;
          break;
        }
        if (n == 0) break;
      }
    } catch (...) {
      pool_.release(chunk);
      throw;
    }
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

  // A full chunk as a view of a mapped window (history included); nullptr where less than a
  // chunk of the mapped size is left, or the system refused a window: the rest is read.
  Chunk* mapped_chunk() {
    const std::uint64_t at = file_base_ + stream_offset_;  // in the file
    if (at + chunk_bytes_ > mapper_->file_bytes()) return stop_mapping();
    const std::size_t history = history_before();
    const std::uint64_t from = at - history;
    const std::size_t bytes = history + chunk_bytes_;
    if (!window_ || !window_->contains(from, bytes)) {
      auto next = mapper_->map(from, bytes, kWindowBytes);
      if (!next) return stop_mapping();
      window_ = std::move(next);
    }
    Chunk* chunk = blank_chunk();
    chunk->view = window_->from(from).first(bytes);
    chunk->history_bytes = history;
    chunk->keep = window_;
    stream_offset_ += chunk_bytes_;
    read(chunk_bytes_);
    return chunk;
  }

  // `bytes` more were taken from the input: read, or cut from the mapping.
  void read(std::size_t bytes) {
    bytes_read_ += bytes;
    if (on_read_) on_read_(bytes_read_);
  }

  // The history the next chunk gets: the codec's, or all of the stream so far if that is less.
  std::size_t history_before() const {
    return static_cast<std::size_t>(std::min<std::uint64_t>(history_limit_, stream_offset_));
  }

  // Goes on with read(): the history the next chunk needs comes from the last window (it holds
  // the chunk just cut), and the source continues where the mapped chunks ended (a file that
  // grew is thus read to its new end, as the read path does).
  Chunk* stop_mapping() {
    const std::uint64_t at = file_base_ + stream_offset_;
    tail_.clear();
    if (const std::size_t history = history_before(); history > 0) {
      tail_.append(window_->from(at - history).first(history));
    }
    source_->seek(at);
    mapper_.reset();
    window_.reset();
    return nullptr;
  }

  const detail::StreamHandOff* const hand_;  // null, or what the run's one stream goes on from and to
  StreamSet& set_;
  StreamStates& states_;
  std::vector<StreamInfo>& infos_;  // filled in as each stream is opened
  ChunkPool& pool_;
  const std::size_t chunk_bytes_;
  const std::size_t history_limit_;
  FirstError& run_error_;
  const std::function<void(std::uint64_t)>& on_read_;
  std::uint64_t bytes_read_ = 0;  // of all streams, for on_read_
  std::size_t stream_ = 0;
  bool after_flush_ = false;  // the last chunk next() gave ended at a flush point
  std::size_t streams_begun_ = 0;
  ByteSource* source_ = nullptr;
  std::uint64_t stream_offset_ = 0;
  bool stream_begun_ = false;  // its first chunk was read
  std::uint64_t sequence_ = 0;
  Chunk* held_ = nullptr;
  Buffer tail_;
  std::optional<detail::FileMapper> mapper_;  // the stream's file, while chunks are cut from windows
  std::uint64_t file_base_ = 0;               // file offset of the stream's first byte
  std::shared_ptr<detail::FileWindow> window_;
  std::shared_ptr<const detail::MappedFileState> mapped_file_;  // for the writer's check
};

// Emits each stream's header, chunks and trailer in order, and ends every stream with a commit
// or a fail. Runs serially, so it needs no locks.
class StreamWriter {
 public:
  StreamWriter(StreamSet& set, StreamStates& states, const Codec& codec, const CompressOptions& options,
               CompressStats& stats, detail::StreamHandOff* hand)
      : set_(set), states_(states), codec_(codec), options_(options), stats_(stats), hand_(hand) {}

  void write(const Chunk& chunk, const StreamInfo& info) {
    const std::size_t i = chunk.stream;
    if (const StreamResult* result = states_.published_result(i)) {
      report_published(i, *result);
      return;
    }
    bool committed = false;
    if (!states_.failed(i)) {
      try {
        if (chunk.first) begin(i, info);
        sink_->write(chunk.output.view());
        // A flush point with nothing before it (ChunkCompressors) is no chunk of the stream's, nor
        // is a pause.
        if (!chunk.payload().empty() || !chunk.output.empty() || (chunk.last && !chunk.pause)) {
          framer_->add_chunk({chunk.payload().size(), chunk.output.size(), chunk.check});
          ++stats_.chunks;
        }
        result_.output_bytes += chunk.output.size();
        result_.input_bytes += chunk.payload().size();
        stats_.output_bytes += chunk.output.size();
        stats_.input_bytes += chunk.payload().size();
        if (options_.on_progress) options_.on_progress(stats_.input_bytes);
        if (chunk.flush) sink_->flush();
        if (chunk.last) {
          // Pages of a mapped input lost to truncation read as zeros: such output is not the file.
          if (chunk.mapped_file && chunk.mapped_file->lost_pages.load(std::memory_order_acquire)) {
            detail::throw_lost_pages(*chunk.mapped_file, states_.name(i));
          }
          finish(i, chunk.pause);
          committed = true;
        }
      } catch (...) {
        states_.fail_current(i, std::nullopt, sink_ ? &sink_->name() : nullptr);
      }
    }
    if (chunk.last) {
      // Not states_.failed(i): another stream may fail the run after this one was committed, and
      // a published output must not be reported as failed.
      if (committed) {
        report_committed(i, result_);
      } else {
        discard(i);
      }
      framer_.reset();
      sink_ = nullptr;
      finished_ = i + 1;
    }
  }

  // Streams below this index have been committed or failed.
  std::size_t finished() const { return finished_; }

  // A stream a worker committed (StreamPublisher), counted and reported in its turn.
  void report_published(std::size_t i, const StreamResult& result) {
    stats_.output_bytes += result.output_bytes;
    stats_.input_bytes += result.input_bytes;
    ++stats_.chunks;
    try {
      if (options_.on_progress) options_.on_progress(stats_.input_bytes);
    } catch (...) {
      states_.fail_run_current();
    }
    report_committed(i, result);
    finished_ = i + 1;
  }

  void discard(std::size_t i) noexcept {
    set_.fail(i, states_.error(i));
    ++stats_.failed_streams;
  }

 private:
  void begin(std::size_t i, const StreamInfo& info) {
    result_ = {};
    sink_ = &set_.open_sink(i);
    if (hand_ && hand_->framer) {  // its header is written
      framer_ = std::move(hand_->framer);
      return;
    }
    framer_ = codec_.make_framer(info);
    emit_framing(&StreamFramer::header);
  }

  // `pause`: the stream goes on elsewhere, from the framer and offset handed back.
  void finish(std::size_t i, bool pause) {
    if (pause) {
      hand_->offset += result_.input_bytes;
      hand_->framer = std::move(framer_);
    } else {
      emit_framing(&StreamFramer::trailer);
    }
    result_.seconds = std::chrono::duration<double>(Clock::now() - states_.started(i)).count();
    sink_ = nullptr;  // committing ends the sink's life, even when the commit throws
    set_.commit_sink(i, result_);
  }

  // Tells the set that stream i is done; a callback that throws then fails the run, not the
  // stream, which is committed.
  void report_committed(std::size_t i, const StreamResult& result) noexcept {
    try {
      set_.committed(i, result);
    } catch (...) {
      states_.fail_run_current();
    }
  }

  void emit_framing(void (StreamFramer::*part)(Buffer&)) {
    scratch_.clear();
    (framer_.get()->*part)(scratch_);
    if (!scratch_.empty()) sink_->write(scratch_.view());
    result_.output_bytes += scratch_.size();
    stats_.output_bytes += scratch_.size();
  }

  StreamSet& set_;
  StreamStates& states_;
  const Codec& codec_;
  const CompressOptions& options_;
  CompressStats& stats_;
  ByteSink* sink_ = nullptr;
  std::unique_ptr<StreamFramer> framer_;
  detail::StreamHandOff* const hand_;  // null, or what the run's one stream goes on from and to
  StreamResult result_;
  Buffer scratch_;
  std::size_t finished_ = 0;
};

// Header, the one chunk and trailer of a stream that is a single chunk.
void frame_single_chunk(const Codec& codec, const StreamInfo& info, std::size_t input_bytes, ByteView chunk,
                        std::uint64_t check, Buffer& out) {
  const auto framer = codec.make_framer(info);
  framer->header(out);
  out.append(chunk);
  framer->add_chunk({input_bytes, chunk.size(), check});
  framer->trailer(out);
}

// For a set with independent sinks: a stream that is one chunk is written (in one write) and
// committed by the worker that compressed it, so that a batch of small files opens, writes and
// renames its outputs on every worker at once; the writer then only counts it and reports it in
// order (StreamWriter::report_published). A failure fails the stream, which the writer discards.
class StreamPublisher {
 public:
  StreamPublisher(StreamSet& set, StreamStates& states, const std::vector<StreamInfo>& infos, const Codec& codec)
      : set_(set), states_(states), infos_(infos), codec_(codec) {}

  // Publishes the stream of `chunk`, unless the run or the stream failed meanwhile (a stop, another
  // stream's failure with kStopRun): then it is left to the writer, which discards it.
  void publish(const Chunk& chunk) {
    const std::size_t i = chunk.stream;
    const ByteSink* sink = nullptr;
    try {
      Buffer& framed = framed_.local();
      framed.clear();
      frame_single_chunk(codec_, infos_[i], chunk.payload().size(), chunk.output.view(), chunk.check, framed);
      if (chunk.mapped_file && chunk.mapped_file->lost_pages.load(std::memory_order_acquire)) {
        detail::throw_lost_pages(*chunk.mapped_file, states_.name(i));
      }
      if (states_.failed(i)) return;
      ByteSink& output = set_.open_sink(i);
      sink = &output;
      output.write(framed.view());
      StreamResult result;
      result.input_bytes = chunk.payload().size();
      result.output_bytes = framed.size();
      result.seconds = std::chrono::duration<double>(Clock::now() - states_.started(i)).count();
      if (states_.failed(i)) return;
      sink = nullptr;  // committing ends the sink's life, even when the commit throws
      set_.commit_sink(i, result);
      states_.published(i, result);
    } catch (...) {
      states_.fail_current(i, std::nullopt, sink ? &sink->name() : nullptr);
    }
  }

 private:
  StreamSet& set_;
  StreamStates& states_;
  const std::vector<StreamInfo>& infos_;
  const Codec& codec_;
  tbb::enumerable_thread_specific<Buffer> framed_;
};

// The worker: compresses a chunk on whichever thread takes it, with that thread's own codec
// context (made on first use, reused for every chunk), and publishes a stream that is this one
// chunk when there is a publisher. A failure fails the chunk's stream.
class ChunkCompressors {
 public:
  ChunkCompressors(const Codec& codec, StreamStates& states, StreamPublisher* publisher)
      : states_(states), publisher_(publisher), contexts_([&codec] { return codec.make_chunk_compressor(); }) {}

  Chunk* compress(Chunk* chunk) {
    detail::pin_this_thread();  // one CPU per thread (thread_arena.h)
    const auto context = [this]() -> ChunkCompressor& { return *contexts_.local(); };
    if (compress_chunk(context, *chunk, states_) && publisher_ && chunk->first && chunk->last) {
      publisher_->publish(*chunk);
    }
    return chunk;
  }

  // Compresses `chunk` with the compressor `context()` gives (made on first use: making it can
  // fail too) unless its stream failed; a failure fails the stream. Returns whether the chunk was
  // compressed.
  template <typename Context>
  static bool compress_chunk(const Context& context, Chunk& chunk, StreamStates& states) {
    if (states.failed(chunk.stream)) return false;
    if (chunk.payload().empty() && (!chunk.last || chunk.pause)) {  // a flush point or pause with no data
      chunk.output.clear();
      chunk.check = 0;
      return true;
    }
    try {
      chunk.check = context().compress(chunk.history(), chunk.payload(), chunk.last && !chunk.pause, chunk.output);
      return true;
    } catch (...) {
      states.fail_current(chunk.stream, chunk.offset);
      return false;
    }
  }

  // How many distinct threads compressed (proof of parallelism).
  std::size_t threads() const { return contexts_.size(); }

 private:
  StreamStates& states_;
  StreamPublisher* const publisher_;
  tbb::enumerable_thread_specific<std::unique_ptr<ChunkCompressor>> contexts_;
};

// reader -> limiter -> compressors -> ordering -> writer (engine/ordered_graph.h), in an arena of
// `threads`; or, with one thread (asked, or all the host process allows oneTBB: threads_allowed)
// or for a run of one stream that turns out to be one chunk (a small file), the same reader, a
// compressor and the same writer one after another on the calling thread: no arena, graph or
// worker is started, which is most of what a small file's run would cost (the same bytes, results
// and errors either way), and a chunk that ends at a flush point is written before the reader
// waits for more. In the graph, a reader that would wait for its source's writer pauses instead
// (engine/ordered_graph.h), and this thread finishes the chunks in flight before it waits.
void run_compression(StreamSet& set, const Codec& codec, const CompressOptions& options, int threads,
                     std::size_t max_in_flight, CompressStats& stats, detail::StreamHandOff* hand = nullptr) {
  // The graph is made, and destroyed, in the arena, only when the run needs one; a failure (a stop
  // comes on another thread) cancels it if it is there: made and destroyed under the mutex.
  std::mutex graph_mutex;
  std::optional<flow::graph> graph;
  FirstError run_error([&] {
    std::lock_guard lock(graph_mutex);
    if (graph) graph->cancel();
  });
  const std::stop_callback on_stop(options.stop, [&run_error] { run_error.record(detail::stopped_error()); });
  StreamStates states(set.size(), options.on_stream_error, run_error);
  ChunkPool pool;
  // Header metadata: the reader fills in a stream's entry before emitting its first chunk.
  std::vector<StreamInfo> infos(set.size());
  ChunkReader chunk_reader(set, states, infos, pool, codec.options().chunk_bytes, codec.info().history_bytes, run_error,
                           options.on_read, hand);
  StreamWriter stream_writer(set, states, codec, options, stats, hand);
  const auto write = [&](Chunk* chunk) {
    if (!run_error.failed()) stream_writer.write(*chunk, infos[chunk->stream]);
    pool.release(chunk);
  };

  Chunk* first = set.size() == 1 ? chunk_reader.next() : nullptr;
  if (threads == 1 || (first && first->last) || detail::threads_allowed(threads) == 1) {
    std::unique_ptr<ChunkCompressor> compressor;
    const auto context = [&]() -> ChunkCompressor& {
      if (!compressor) compressor = codec.make_chunk_compressor();
      return *compressor;
    };
    for (Chunk* chunk = first ? first : chunk_reader.next(); chunk; chunk = chunk_reader.next()) {
      ChunkCompressors::compress_chunk(context, *chunk, states);
      write(chunk);
    }
    stats.compressor_threads = 1;
  } else if (first || set.size() > 1) {
    detail::ThreadArena arena(threads);
    arena.execute([&] {
      {
        std::lock_guard lock(graph_mutex);
        graph.emplace();
        if (run_error.failed()) graph->cancel();  // failed before the graph was there to cancel
      }
      // The graph is destroyed here, in its arena, however the run ends.
      struct Drop {
        std::mutex& mutex;
        std::optional<flow::graph>& graph;
        ~Drop() {
          std::lock_guard lock(mutex);
          graph.reset();
        }
      } drop{graph_mutex, graph};
      // Workers publish only where a failure fails just its stream: with kStopRun nothing after a
      // failed stream may be published, and the writer, in order, guarantees that.
      std::optional<StreamPublisher> publisher;
      if (set.independent_sinks() && options.on_stream_error == FailurePolicy::kSkipStream) {
        publisher.emplace(set, states, infos, codec);
      }
      ChunkCompressors compressors(codec, states, publisher ? &*publisher : nullptr);
      bool paused = false;  // the reader stopped for its source's writer, not for good
      detail::run_ordered_graph<Chunk>(
          *graph, max_in_flight,
          [&](tbb::flow_control& control) {
            Chunk* chunk = std::exchange(first, nullptr);  // the one read to tell the run's size
            paused = !chunk && chunk_reader.would_wait();
            if (!chunk && !paused) chunk = chunk_reader.next();
            if (!chunk) control.stop();
            return chunk;
          },
          [&](Chunk* chunk) { return compressors.compress(chunk); }, write,
          [&] {
            if (!std::exchange(paused, false)) return false;
            chunk_reader.wait_readable();
            return true;
          });
      if (!graph->is_cancelled() && !run_error.failed() && !chunk_reader.ended()) {
        // Never seen; were the reader left paused, the rest of its input would be lost: say so.
        run_error.record(std::make_exception_ptr(
            Error(ErrorKind::kInternal, "the run's reader stopped before the end of its input")));
      }
      stats.compressor_threads = compressors.threads();
    });
  }
  stats.peak_chunks_in_flight = pool.peak_in_use();
  if (run_error.failed()) {
    // The run stopped early: end every stream that was begun and not yet ended.
    chunk_reader.close_source();
    for (std::size_t i = stream_writer.finished(); i < chunk_reader.streams_begun(); ++i) {
      // A stream a worker published before the run stopped stays published, and is reported so.
      if (const StreamResult* result = states.published_result(i)) {
        stream_writer.report_published(i, *result);
      } else {
        stream_writer.discard(i);
      }
    }
    run_error.rethrow_if_failed();
  }
}

// A StreamSet over streams the caller has already opened.
class OpenStreams final : public StreamSet {
 public:
  explicit OpenStreams(const std::vector<CompressStream>& streams) : streams_(streams) {}
  std::size_t size() const override { return streams_.size(); }
  ByteSource& open_source(std::size_t i, StreamInfo& info) override {
    info = streams_[i].info;
    return *streams_[i].source;
  }
  void close_source(std::size_t) noexcept override {}
  ByteSink& open_sink(std::size_t i) override { return *streams_[i].sink; }
  void commit_sink(std::size_t, const StreamResult&) override {}
  void fail(std::size_t, const Error&) noexcept override {}

 private:
  const std::vector<CompressStream>& streams_;
};

}  // namespace

namespace detail {

// An input of one chunk at most becomes one chunk, first and last, with no history: the graph
// would give exactly these bytes, so it is compressed here, on the calling thread, without the
// graph, its workers, its pinning and its chunk buffers (a 1 KB gzip call took 250 us through the
// graph; BENCHMARKS.md, Python). False, with nothing done, for larger inputs.
bool compress_in_caller(ByteView input, const CompressOptions& options, const StreamInfo& info, const std::string& name,
                        Buffer& output) {
  thread_local std::optional<detail::CallerContext> cached;
  resolve_threads(options.threads);  // the same checks as a run
  if (!(cached && cached->made_for(options.codec, options.codec_options))) {
    // Tells the chunk size before making a compressor that a large input would not use.
    if (input.size() > CodecRegistry::global().create(options.codec, options.codec_options)->options().chunk_bytes) {
      return false;
    }
  }
  std::optional<detail::CallerContext> context = detail::take_context(cached, options.codec, options.codec_options);
  const Codec& codec = *context->codec;
  if (input.size() > codec.options().chunk_bytes) {
    cached = std::move(context);
    return false;
  }
  try {
    if (options.stop.stop_requested()) std::rethrow_exception(detail::stopped_error());
    Buffer chunk;
    const std::uint64_t check = context->compressor->compress({}, input, /*last=*/true, chunk);
    frame_single_chunk(codec, info, input.size(), chunk.view(), check, output);
    if (options.stop.stop_requested()) std::rethrow_exception(detail::stopped_error());  // as the graph
  } catch (...) {
    std::rethrow_exception(detail::current_error_with_context(name, 0));  // the context goes with it
  }
  if (options.on_read) options.on_read(input.size());
  if (options.on_progress) options.on_progress(input.size());
  // Kept for the next call only after a small input: a context sized for a large one (zstd's
  // tables at a high level reach tens of MiB) is not held for the life of the thread.
  if (input.size() <= kCachedContextInputBytes) cached = std::move(context);
  return true;
}

}  // namespace detail

int resolve_threads(int threads) {
  if (threads < 0 || threads > kMaxThreads) {
    throw Error(ErrorKind::kUsage,
                fmt::format("thread count must be 0 (every core) or between 1 and {}, not {}", kMaxThreads, threads));
  }
  return threads == 0 ? detail::default_threads() : threads;
}

namespace {
CompressStats run_stream_set(StreamSet& streams, const CompressOptions& options, detail::StreamHandOff* hand) {
  const auto codec = CodecRegistry::global().create(options.codec, options.codec_options);
  const int threads = resolve_threads(options.threads);
  const std::size_t max_in_flight =
      options.max_chunks_in_flight > 0 ? options.max_chunks_in_flight : kChunksPerThread * static_cast<std::size_t>(threads);

  CompressStats stats;
  const auto start = Clock::now();
  if (streams.size() > 0) run_compression(streams, *codec, options, threads, max_in_flight, stats, hand);
  stats.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return stats;
}
}  // namespace

CompressStats compress_stream_set(StreamSet& streams, const CompressOptions& options) {
  return run_stream_set(streams, options, nullptr);
}

CompressStats detail::compress_handed(ByteSource& source, ByteSink& sink, const CompressOptions& options,
                                      const StreamInfo& info, StreamHandOff& hand) {
  const std::vector<CompressStream> streams{CompressStream{&source, &sink, info}};
  OpenStreams set(streams);
  return run_stream_set(set, options, &hand);
}

CompressStats compress_streams(const std::vector<CompressStream>& streams, const CompressOptions& options) {
  for (const auto& stream : streams) {
    if (!stream.source || !stream.sink) throw Error(ErrorKind::kUsage, "a stream needs a source and a sink");
  }
  OpenStreams set(streams);
  return compress_stream_set(set, options);
}

CompressStats compress(ByteSource& source, ByteSink& sink, const CompressOptions& options, const StreamInfo& info) {
  return compress_streams({CompressStream{&source, &sink, info}}, options);
}

CompressStats compress_file(const std::string& input_path, const std::string& output_path,
                            const CompressOptions& options, bool overwrite) {
  return detail::run_file_to_file(input_path, output_path, overwrite, [&](FdSource& source, ByteSink& output) {
    StreamInfo info;  // the name and time gzip records
    info.name = std::filesystem::path(input_path).filename().string();
    info.mtime_seconds = source.status().mtime_seconds;
    return compress(source, output, options, info);
  });
}

Buffer compress_buffer(ByteView input, const CompressOptions& options, const StreamInfo& info) {
  static const std::string kName = "<memory>";
  if (Buffer output; detail::compress_in_caller(input, options, info, kName, output)) return output;
  return detail::run_in_memory(input,
                               [&](ByteSource& source, ByteSink& sink) { compress(source, sink, options, info); });
}

}  // namespace sluice
