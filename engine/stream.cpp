// Compressor, Decompressor and DecompressingSource (sluice/stream.h): compress() or decompress()
// on a thread of their own, joined to the caller by a bounded pipe.
#include "sluice/stream.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "core/byte_pipe.h"
#include "core/first_error.h"
#include "engine/caller_context.h"
#include "engine/thread_arena.h"
#include "sluice/codec_author.h"
#include "sluice/error.h"

namespace sluice {
namespace {

// The pipe between the caller and the graph. With the graph's chunks in flight, what a stream
// holds in memory whatever is pushed through it.
constexpr std::size_t kPipeBytes = 4 * 1024 * 1024;

// One run of a graph on a thread of its own, joined to the caller by a pipe: how it ended, and
// stopping it from outside.
class BackgroundRun {
 public:
  explicit BackgroundRun(std::string name) : name_(name), pipe_(std::move(name), kPipeBytes) {}
  ~BackgroundRun() { cancel_and_join(); }

  // Runs `body(stop)` on the thread. When it fails, the pipe is broken (`break_on_failure`: the
  // caller writes into it, and must stop waiting) or closed (the caller reads from it, and gets
  // what came before the error, then the error).
  template <typename Body>
  void start(Body body, bool break_on_failure) {
    thread_ = std::thread([this, body = std::move(body), break_on_failure]() mutable {
      try {
        body(stop_.get_token());
      } catch (...) {
        error_ = std::current_exception();
        if (break_on_failure) pipe_.break_pipe();
      }
      if (!break_on_failure) pipe_.close();
    });
  }

  detail::BytePipe& pipe() { return pipe_; }
  const std::string& name() const { return name_; }

  // Waits for the run to end and throws its error.
  void join_and_rethrow() {
    if (thread_.joinable()) thread_.join();
    if (error_) std::rethrow_exception(error_);
  }

  void cancel() noexcept {
    stop_.request_stop();
    pipe_.break_pipe();
  }

  // Stops the run and waits for its thread (whose body may use its owner's members).
  void cancel_and_join() noexcept {
    if (!thread_.joinable()) return;
    cancel();
    thread_.join();
  }

  // A write to or read from the pipe failed (the run broke it): the run's own error says why.
  [[noreturn]] void rethrow_run_error() {
    join_and_rethrow();
    throw Error(ErrorKind::kCancelled, "the stream was stopped", name());
  }

 private:
  std::string name_;
  detail::BytePipe pipe_;
  std::stop_source stop_;
  std::exception_ptr error_;
  std::thread thread_;
};

// Pushing into a run's pipe; the end of input, then the run's result.
template <typename Stats>
class PushRun {
 public:
  explicit PushRun(std::string name) : run_(std::move(name)) {}
  BackgroundRun& run() { return run_; }

  void write(ByteView bytes) {
    if (finished_) throw Error(ErrorKind::kUsage, "write after finish", run_.name());
    try {
      run_.pipe().sink().write(bytes);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCancelled) throw;
      run_.rethrow_run_error();
    }
  }

  // Until the run has read all that was written (Decompressor::wait_taken).
  bool wait_taken(std::optional<std::chrono::milliseconds> timeout) {
    try {
      return run_.pipe().wait_drained(timeout);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCancelled) throw;
      run_.rethrow_run_error();
    }
    return true;
  }

  Stats finish() {
    if (finished_) throw Error(ErrorKind::kUsage, "finish called twice", run_.name());
    finished_ = true;
    run_.pipe().close();
    run_.join_and_rethrow();
    return stats;
  }

  bool finished() const { return finished_; }
  Stats stats;

 private:
  BackgroundRun run_;
  bool finished_ = false;
};

// A Compressor's run: one run of compress() for the rest of the stream. flush() marks a flush
// point in the pipe, where the graph's reader ends a chunk, and waits until the graph's writer
// has written that chunk's output and flushed the caller's sink (Delivery).
class CompressorRun : public PushRun<CompressStats> {
 public:
  static constexpr std::size_t kPipeReadBatchBytes = 128 * 1024;
  // `options` fail the run at a stream's failure (kStopRun), which ends a flush() waiting for it.
  // `hand`: where the stream starts (begun on the caller's thread, or not) and, paused, what the
  // run leaves for the caller's thread to go on from; it outlives the run.
  // `chunk_bytes`: the codec's chunk size.
  CompressorRun(ByteSink& sink, const CompressOptions& options, const StreamInfo& info, detail::StreamHandOff& hand,
                std::size_t chunk_bytes)
      : PushRun(sink.name()), delivery_(sink, run().pipe()) {
    run().pipe().spin_on_flushes(detail::default_threads() > 1);
    // The graph's reader fills whole chunks: woken for every small write, it cost the writer
    // more than the compression did (BENCHMARKS.md, "Flushing"). At most a chunk: a smaller
    // chunk's reader, woken at a batch, kept chunks that were whole waiting for more.
    run().pipe().read_batch(std::min(kPipeReadBatchBytes, chunk_bytes));
    run().start(
        [this, run_options = options, info, &hand](std::stop_token stop) mutable {
          // Stopped by cancel() or by the caller's own token, whichever comes first.
          const std::stop_callback forward(run_options.stop, [this] { run().cancel(); });
          run_options.stop = stop;
          stats = detail::compress_handed(run().pipe().source(), delivery_, run_options, info, hand);
        },
        /*break_on_failure=*/true);
  }
  // The run's thread writes into `delivery_`: it ends before the members do.
  ~CompressorRun() { run().cancel_and_join(); }

  void flush() {
    detail::BytePipe& pipe = run().pipe();
    if (!pipe.mark_flush()) return;  // nothing written since the last
    try {
      pipe.wait_flushed();
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCancelled) throw;
      run().rethrow_run_error();
    }
  }

 private:
  // The caller's sink as the graph's writer sees it: a flush there has delivered everything up
  // to the flush point.
  class Delivery final : public ByteSink {
   public:
    Delivery(ByteSink& out, detail::BytePipe& pipe) : out_(out), pipe_(pipe) {}
    void write(ByteView bytes) override { out_.write(bytes); }
    const std::string& name() const override { return out_.name(); }
    void flush() override {
      out_.flush();
      pipe_.flush_done();
    }

   private:
    ByteSink& out_;
    detail::BytePipe& pipe_;
  };
  Delivery delivery_;
};

}  // namespace

// The start of a stream is held here, and the run starts only when the stream outgrows the hold
// (a chunk, at most kCachedContextInputBytes) or is flushed: a stream that finish() ends within
// it is compressed on the calling thread, as compress_buffer() does (the same bytes as the run's),
// with no thread, pipe or graph started (most of what a small file's stream cost).
//
// A stream flushed with little written since the stream began or was last flushed (a log's
// records, a protocol's messages) goes on as flushed pieces where the codec can
// (Codec::make_flush_compressor: gzip's one-member forms, zstd): each flush compresses, on the calling
// thread, what was written since the last with the codec's state kept, as gzip.open's flush()
// does, and writes it before flush() returns (a chunk per flush, compressed with no history and
// waiting for the graph, came out 6 times the size; BENCHMARKS.md, "Flushing"). More than a hold
// written between two flushes hands the stream to a run from there (its chunks in parallel, on
// the same framer); a run's flush after little hands it back (StreamHandOff). Which of them
// compresses what depends only on where the flushes are and how much is written between them,
// never on the threads: the bytes are the same on any.
struct Compressor::State {
  State(ByteSink& sink, const CompressOptions& asked, const StreamInfo& stream_info)
      : out(sink), options(asked), info(stream_info) {
    // Options that cannot work (a level or chunk size the codec refuses, an unknown knob or
    // codec, a thread count out of range) are the constructor's error, not the first write's or
    // finish()'s, after the caller has produced the data.
    codec = CodecRegistry::global().create(options.codec, options.codec_options);
    (void)resolve_threads(options.threads);
    hold_limit = std::min(codec->options().chunk_bytes, detail::kCachedContextInputBytes);
    options.on_stream_error = FailurePolicy::kStopRun;  // one stream: its failure is the run's
  }

  void check_usable() const {
    if (failure) std::rethrow_exception(failure);
  }
  void check_not_stopped() const {
    if (cancelled || options.stop.stop_requested()) throw stopped();
  }
  Error stopped() const { return Error(ErrorKind::kCancelled, "the stream was stopped", out.name()); }

  // Takes `bytes` from the caller.
  void write(ByteView bytes) {
    if (run) {
      guarded([&] { run->write(bytes); });
      remember(bytes);
    } else if (held.size() + bytes.size() <= (flusher ? kPiecesHoldBytes : hold_limit)) {
      held.append(bytes);  // the next flushed piece, or the stream's start
    } else {
      start_run();
      guarded([&] { run->write(bytes); });
      remember(bytes);
    }
    written += bytes.size();
    since_flush += bytes.size();
  }

  void flush() {
    const bool little = since_flush > 0 && since_flush <= kFlushedPieceBytes;
    since_flush = 0;
    if (run) {
      guarded([&] { run->flush(); });
      if (little && can_flush_pieces()) pause_run();
      return;
    }
    if (held.empty()) return;  // nothing written since the start or the last flush
    if (flusher || (little && begin_pieces())) {
      write_piece(/*last=*/false);
      return;
    }
    start_run();
    guarded([&] { run->flush(); });
  }

  CompressStats finish() {
    if (run) return with_done(run->finish());
    finished = true;
    if (flusher) {
      write_piece(/*last=*/true);
      return done;
    }
    return finish_held();
  }

  // The run, started with what is held (cancel() may be racing with it), going on from the
  // flushed pieces, if any.
  CompressorRun& start_run() {
    hand.framer.reset();
    if (flusher) {
      check_not_stopped();
      records.clear();
      guarded([&] { flusher->end(piece, records); });  // a chunk may follow
      for (const ChunkRecord& record : records) framer->add_chunk(record);
      if (!piece.empty()) {
        write_out(piece, /*flush=*/false);
        done.output_bytes += piece.size();
      }
      flusher.reset();
      hand.framer = std::move(framer);
      hand.history.clear();
      hand.history.append(history.view());
    }
    hand.offset = written - held.size();
    hand.pause = false;
    {
      std::lock_guard lock(run_mutex);
      if (cancelled) throw stopped();
      run.emplace(out, counted_from(hand.offset), info, hand, codec->options().chunk_bytes);
    }
    if (!held.empty()) guarded([&] { run->write(held.view()); });
    remember(held.view());
    held = Buffer();
    return *run;
  }

  // The run has delivered everything written, up to this flush: it ends there without ending the
  // stream, and the stream goes on as flushed pieces.
  void pause_run() {
    hand.pause = true;
    CompressStats stats = guarded([&] { return run->finish(); });
    {
      std::lock_guard lock(run_mutex);
      run.reset();
    }
    done = with_done(stats);
    if (!hand.framer || hand.offset != written) {
      failure = std::make_exception_ptr(Error(ErrorKind::kInternal, "a paused run did not hand its stream back", out.name()));
      std::rethrow_exception(failure);
    }
    framer = std::move(hand.framer);
    flusher = codec->make_flush_compressor();
    guarded([&] { flusher->resume(written, history.view()); });
  }

  // The options of a run that starts `offset` bytes into the stream: its progress is the stream's.
  CompressOptions counted_from(std::uint64_t offset) const {
    CompressOptions counted = options;
    if (offset == 0) return counted;
    if (options.on_progress) {
      counted.on_progress = [report = options.on_progress, offset](std::uint64_t done_bytes) { report(offset + done_bytes); };
    }
    if (options.on_read) {
      counted.on_read = [report = options.on_read, offset](std::uint64_t read_bytes) { report(offset + read_bytes); };
    }
    return counted;
  }

  // Whether the codec compresses flushed pieces (asked once: making one costs its state).
  bool can_flush_pieces() {
    if (!flushable) flushable = codec->make_flush_compressor() != nullptr;
    return *flushable;
  }

  // Whether the stream goes on as flushed pieces from here (what is held is their first).
  bool begin_pieces() {
    flusher = codec->make_flush_compressor();
    flushable = flusher != nullptr;
    if (!flusher) return false;
    framer = codec->make_framer(info);
    framer->header(packed);
    return true;
  }

  // Compresses what is held as the next flushed piece (the last: with the trailer) and writes it
  // (after the header, if it is the first).
  void write_piece(bool last) {
    check_not_stopped();
    const auto start = std::chrono::steady_clock::now();
    guarded([&] {
      records.clear();
      flusher->compress(held.view(), last, piece, records);
      for (const ChunkRecord& record : records) framer->add_chunk(record);
      packed.append(piece.view());
      if (last) framer->trailer(packed);
    });
    write_out(packed, /*flush=*/!last);
    done.input_bytes += held.size();
    done.output_bytes += packed.size();
    ++done.chunks;
    done.compressor_threads = std::max<std::size_t>(done.compressor_threads, 1);
    done.peak_chunks_in_flight = std::max<std::size_t>(done.peak_chunks_in_flight, 1);
    done.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    remember(held.view());
    packed.clear();
    held.clear();
    // As a run's reader and writer report (a callback that throws ends the stream, as it fails a run).
    guarded([&] {
      if (options.on_read) options.on_read(written);
      if (options.on_progress) options.on_progress(written);
    });
  }

  // The last history_bytes of the input given to pieces and runs, for a run or flushed pieces that
  // go on from there (gzip's single-member form); trimmed now and then.
  void remember(ByteView bytes) {
    const std::size_t window = codec->info().history_bytes;
    if (window == 0) return;
    if (bytes.size() >= window) {
      history.clear();
      history.append(bytes.last(window));
      return;
    }
    if (history.size() + bytes.size() > 2 * window) {
      Buffer kept;
      kept.append(history.view().last(window - bytes.size()));
      history = std::move(kept);
    }
    history.append(bytes);
  }

  // Runs `step`; an exception is the stream's end: every call after it throws it again (a run's
  // error too, which a flush with nothing new to flush would not meet again). A mistake of the
  // caller's (kUsage: a write after finish) ends nothing.
  template <typename Step>
  auto guarded(Step step) -> decltype(step()) {
    try {
      return step();
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kUsage) failure = std::current_exception();
      throw;
    } catch (...) {
      failure = std::current_exception();
      throw;
    }
  }

  // Writes to the caller's sink (and flushes it): an error there is the stream's, as the run's
  // writer reports it.
  void write_out(const Buffer& bytes, bool flush) {
    try {
      out.write(bytes.view());
      if (flush) out.flush();
    } catch (...) {
      failure = detail::current_error_with_context(out.name(), std::nullopt);
      std::rethrow_exception(failure);
    }
  }

  CompressStats finish_held() {
    check_not_stopped();
    const auto start = std::chrono::steady_clock::now();
    Buffer whole;
    if (!detail::compress_in_caller(held.view(), options, info, out.name(), whole)) {
      whole = compress_buffer(held.view(), options, info);  // not reached: the hold is a chunk at most
    }
    check_not_stopped();  // a cancel() meanwhile: nothing is written, as a stopped run writes no end
    try {
      out.write(whole.view());
    } catch (...) {
      std::rethrow_exception(detail::current_error_with_context(out.name(), std::nullopt));  // as the run's writer
    }
    CompressStats stats;
    stats.input_bytes = held.size();
    stats.output_bytes = whole.size();
    stats.chunks = 1;
    stats.compressor_threads = 1;
    stats.peak_chunks_in_flight = 1;
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    held = Buffer();
    return stats;
  }

  // A run's figures with those of the flushed pieces and paused runs before it.
  CompressStats with_done(CompressStats stats) const {
    stats.input_bytes += done.input_bytes;
    stats.output_bytes += done.output_bytes;
    stats.chunks += done.chunks;
    stats.seconds += done.seconds;
    stats.compressor_threads = std::max(stats.compressor_threads, done.compressor_threads);
    stats.peak_chunks_in_flight = std::max(stats.peak_chunks_in_flight, done.peak_chunks_in_flight);
    return stats;
  }

  // The most a flush may find written since the stream began or was last flushed for the stream
  // to go on as flushed pieces: more, and a run takes it as a chunk (a stream that writes much
  // between flushes is likely to go on so, in parallel).
  static constexpr std::size_t kFlushedPieceBytes = 64 * 1024;
  // Flushed pieces go on while no more than this comes between two flushes, whatever the chunk
  // size (pieces cross chunk ends; a run per flush of small chunks cost 3 times the time).
  static constexpr std::size_t kPiecesHoldBytes = detail::kCachedContextInputBytes;

  ByteSink& out;
  CompressOptions options;
  StreamInfo info;
  std::unique_ptr<Codec> codec;
  std::size_t hold_limit = 0;
  Buffer held;
  bool finished = false;  // by finish() without a run; a run keeps its own
  std::mutex run_mutex;   // cancel() against start_run() and pause_run()
  std::atomic<bool> cancelled{false};
  std::exception_ptr failure;  // the stream's end, outside a run (a run keeps its own)
  std::uint64_t written = 0;       // by the caller, in all
  std::uint64_t since_flush = 0;   // since the last flush()
  Buffer history;
  CompressStats done;  // the flushed pieces' and paused runs' figures
  detail::StreamHandOff hand;  // between the runs and the flushed pieces; outlives every run
  std::optional<CompressorRun> run;
  // The flushed pieces, while they go on.
  std::optional<bool> flushable;  // whether the codec has them
  std::unique_ptr<FlushCompressor> flusher;
  std::unique_ptr<StreamFramer> framer;
  Buffer piece;
  std::vector<ChunkRecord> records;  // of the units a piece ends
  Buffer packed;  // what the next write gives `out` (the header, before the first piece)
};

Compressor::Compressor(ByteSink& out, const CompressOptions& options, const StreamInfo& info)
    : state_(std::make_unique<State>(out, options, info)) {}

Compressor::~Compressor() = default;

void Compressor::write(ByteView bytes) {
  State& state = *state_;
  state.check_usable();
  if (state.run) {
    if (!bytes.empty() || state.run->finished()) state.write(bytes);
    return;
  }
  if (state.finished) throw Error(ErrorKind::kUsage, "write after finish", name());
  if (bytes.empty()) return;  // as a run takes it, stopped or not
  state.check_not_stopped();
  state.write(bytes);
}

void Compressor::flush() {
  State& state = *state_;
  state.check_usable();  // before the run's state: a run that failed pausing is finished
  if (state.finished || (state.run && state.run->finished())) {
    throw Error(ErrorKind::kUsage, "flush after finish", name());
  }
  state.flush();
}

const std::string& Compressor::name() const { return state_->out.name(); }

CompressStats Compressor::finish() {
  State& state = *state_;
  state.check_usable();
  if (!state.run && state.finished) throw Error(ErrorKind::kUsage, "finish called twice", name());
  return state.finish();
}

void Compressor::cancel() noexcept {
  State& state = *state_;
  std::lock_guard lock(state.run_mutex);
  state.cancelled = true;
  if (state.run) state.run->run().cancel();
}

namespace {

// Writes all but the first `skip` bytes given to it: a stream decoded again from its start,
// after the caller's decoder wrote those.
class SkippingSink final : public ByteSink {
 public:
  SkippingSink(ByteSink& out, std::uint64_t skip) : out_(out), skip_(skip) {}
  void write(ByteView bytes) override {
    const auto dropped = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, bytes.size()));
    skip_ -= dropped;
    if (dropped < bytes.size()) out_.write(bytes.subspan(dropped));
  }
  const std::string& name() const override { return out_.name(); }
  void flush() override { out_.flush(); }

 private:
  ByteSink& out_;
  std::uint64_t skip_;
};

// A Decompressor's run: one run of decompress() for the rest of the stream, writing into `out`
// all but the first `skip` bytes of its output (those the caller's decoder wrote already).
class DecompressorRun : public PushRun<DecompressStats> {
 public:
  DecompressorRun(std::string name, ByteSink& out, std::uint64_t skip, const DecompressOptions& options)
      : PushRun(std::move(name)), sink_(out, skip) {
    run().start(
        [this, run_options = options](std::stop_token stop) mutable {
          const std::stop_callback forward(run_options.stop, [this] { run().cancel(); });
          run_options.stop = stop;
          stats = decompress(run().pipe().source(), sink_, run_options);
        },
        /*break_on_failure=*/true);
  }
  // The run's thread writes into `sink_`: it ends before the members do.
  ~DecompressorRun() { run().cancel_and_join(); }

 private:
  SkippingSink sink_;
};

}  // namespace

// The start of a stream is held here and decoded on the calling thread as it comes, by the
// codec's streaming decoder, its output written at once (a small stream needs no thread, and a
// protocol waiting for the answer to what it sent gets it in write()). The run starts, with all
// that was held, once the stream outgrows the hold (kHeldInputBytes in, kHeldOutputBytes out) or
// the caller's decoder meets anything but data (an error, the limit, no format told): it decodes
// the stream again from its start and writes what the caller's decoder did not, so that every
// error and limit is the run's. finish() of a stream held whole decodes it again with
// decompress() on the calling thread (a small input: no workers), which says how it ends. As
// with any streaming decoder (gzip -d, zlib's), what comes out before a member's or frame's check
// at its end is not checked yet: damaged data shows before its error (the run, which checks a
// unit before it writes it, would not have written it). Not where options ask for the graph
// always (small_inputs_in_caller false). With one thread asked for (caller_only), no run at all:
// the whole stream is decoded on the calling thread as it comes, each write's output written
// before it returns, as zlib's inflate does (nothing held): its errors are the streaming
// decoder's (the kind decompress() gives; a message may differ where the data is not the format
// named), the limit's and a format's that is none the run's.
struct Decompressor::State {
  static constexpr std::size_t kHeldInputBytes = 64 * 1024;
  static constexpr std::size_t kSkippableHeldBytes = 1024 * 1024;
  static constexpr std::uint64_t kHeldOutputBytes = 8 * 1024 * 1024;

  State(ByteSink& sink, const DecompressOptions& asked, std::string stream_name)
      : out(sink),
        options(asked),
        name(std::move(stream_name)),
        caller_only(resolve_threads(asked.threads) == 1 && asked.small_inputs_in_caller && !asked.pass_through) {}

  // The run, given what is held (once; cancel() may be racing with it).
  DecompressorRun& start_run() {
    {
      std::lock_guard lock(run_mutex);
      if (cancelled) throw stopped();
      run.emplace(name, out, written, options);
    }
    decoder.reset();
    if (!held.empty()) run->write(held.view());
    held = Buffer();
    return *run;
  }

  // Decodes `fresh` (the bytes just given) on the calling thread; false where the run must take
  // the stream over.
  bool decode_in_caller(ByteView fresh) {
    if (options.pass_through || !options.small_inputs_in_caller) return false;
    if (!decoder) {
      // More bytes tell the format (a hold of skippable frames at most; after that the run). On
      // one thread no run takes over (its output would lag the input: Python's max_length and
      // needs_input count on each write's output being out when it returns): skippable frames are
      // held up to the first read of a run, 1 MiB, and past that the stream is zstd's, as a run
      // reads it.
      if (!detail::format_told(held.view(), options.codec)) {
        if (!caller_only) return held.size() <= kHeldInputBytes;
        if (held.size() <= kSkippableHeldBytes) return true;
      }
      try {
        codec = detail::make_decoding_codec(detail::detect_format(held.view(), options.codec), options);
      } catch (...) {
        fail(detail::current_error_with_context(name, std::nullopt));  // in no known format: at once
      }
      decoder = codec->make_decoder();
      fresh = held.view();
    }
    if (!caller_only && held.size() > kHeldInputBytes) return false;
    const std::uint64_t limit = caller_only                      ? options.max_output_bytes
                                : options.max_output_bytes > 0 ? std::min(options.max_output_bytes, kHeldOutputBytes)
                                                               : kHeldOutputBytes;
    try {
      const detail::RunCount counted;  // a task (gzip's CRC) may run in the caller's arena
      decoder->decode(fresh, [&](ByteView piece) {
        // cancel() from another thread (Ctrl-C), or the caller's own stop
        if (cancelled.load(std::memory_order_relaxed) || options.stop.stop_requested()) throw stopped();
        if (limit > 0 && written + piece.size() > limit) {
          if (caller_only) {
            throw Error(ErrorKind::kLimit, fmt::format("output exceeds the limit of {} bytes set for this run", limit));
          }
          throw Outgrown{};  // the run writes the rest, or says where the limit is
        }
        write_out(piece);
      });
    } catch (const Failed&) {
      throw;
    } catch (...) {
      if (!caller_only) return false;  // outgrown, or an error the run reports after what decodes before it
      fail(detail::current_error_with_context(name, std::nullopt));
    }
    if (caller_only) held = Buffer();  // decoded: nothing is kept for a run
    return true;
  }

  void write_out(ByteView piece) {
    try {
      out.write(piece);
    } catch (...) {
      fail(detail::current_error_with_context(out.name(), std::nullopt));  // as the run's writer
    }
    written += piece.size();
  }

  [[noreturn]] void fail(std::exception_ptr error) {
    failure = std::move(error);
    throw Failed{};
  }

  // finish() of a stream decoded on the calling thread to its end (caller_only).
  DecompressStats finish_in_caller() {
    try {
      decoder->finish();
    } catch (...) {
      fail(detail::current_error_with_context(name, std::nullopt));
    }
    DecompressStats stats;
    stats.codec = codec->info().name;
    stats.input_bytes = input_bytes;
    stats.output_bytes = written;
    stats.decoder_threads = 1;
    stats.serial_from = 0;
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return stats;
  }

  void check_usable() const {
    if (failure) std::rethrow_exception(failure);
    if (cancelled || options.stop.stop_requested()) throw stopped();
  }
  Error stopped() const { return Error(ErrorKind::kCancelled, "the stream was stopped", name); }

  struct Failed {};  // the caller's sink or (caller_only) decoder threw: its error is `failure`
  struct Outgrown {};

  ByteSink& out;
  DecompressOptions options;
  std::string name;
  Buffer held;                             // the stream so far, while no run decodes it
  std::unique_ptr<Codec> codec;            // once the held bytes tell the format
  std::unique_ptr<StreamDecoder> decoder;  // the caller's, while no run decodes the stream
  std::uint64_t written = 0;               // what the caller's decoder wrote to `out`
  std::uint64_t input_bytes = 0;           // given to write()
  const bool caller_only;
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::exception_ptr failure;
  bool finished = false;  // by finish() of a held stream; the run keeps its own
  std::mutex run_mutex;   // cancel() against start_run()
  std::atomic<bool> cancelled{false};
  std::optional<DecompressorRun> run;
};

Decompressor::Decompressor(ByteSink& out, const DecompressOptions& options, std::string name)
    : state_(std::make_unique<State>(out, options, std::move(name))) {}

Decompressor::~Decompressor() = default;

void Decompressor::write(ByteView compressed) {
  State& state = *state_;
  if (state.run) {
    state.run->write(compressed);
    return;
  }
  if (state.failure) std::rethrow_exception(state.failure);
  if (state.finished) throw Error(ErrorKind::kUsage, "write after finish", name());
  state.check_usable();
  if (compressed.empty()) return;
  state.input_bytes += compressed.size();
  if (!state.caller_only || !state.decoder) state.held.append(compressed);
  try {
    if (state.decode_in_caller(compressed)) return;
  } catch (const State::Failed&) {
    std::rethrow_exception(state.failure);
  }
  state.start_run();
}

bool Decompressor::wait_taken(std::optional<std::chrono::milliseconds> timeout) {
  State& state = *state_;
  if (state.run) return state.run->wait_taken(timeout);
  state.check_usable();  // a failure on the calling thread, as the run's: thrown again
  return true;
}

const std::string& Decompressor::name() const { return state_->name; }

DecompressStats Decompressor::finish() {
  State& state = *state_;
  if (state.run) return state.run->finish();
  if (state.failure) std::rethrow_exception(state.failure);  // every call after a failure throws it
  if (state.finished) throw Error(ErrorKind::kUsage, "finish called twice", name());
  state.finished = true;
  state.check_usable();
  if (state.caller_only && state.decoder) {
    try {
      return state.finish_in_caller();
    } catch (const State::Failed&) {
      std::rethrow_exception(state.failure);
    }
  }
  state.decoder.reset();
  MemorySource source(state.held.view(), state.name);
  SkippingSink sink(state.out, state.written);
  DecompressStats stats = decompress(source, sink, state.options);
  state.held = Buffer();
  return stats;
}

bool Decompressor::decodes_in_background() const { return state_->run.has_value(); }

void Decompressor::cancel() noexcept {
  State& state = *state_;
  std::lock_guard lock(state.run_mutex);
  state.cancelled = true;
  if (state.run) state.run->run().cancel();
}

struct DecompressingSource::State {
  explicit State(std::string name) : run(std::move(name)) {}
  BackgroundRun run;
  bool ended = false;
  std::exception_ptr error;  // the run's, thrown again by every read after it
};

DecompressingSource::DecompressingSource(ByteSource& compressed, const DecompressOptions& options)
    : state_(std::make_unique<State>(compressed.name())) {
  DecompressOptions run_options = options;
  State& state = *state_;
  // On failure the pipe is closed, not broken: the reader gets the bytes decoded before the
  // error, then the error.
  state.run.start(
      [&state, &compressed, run_options, caller_stop = options.stop](std::stop_token stop) mutable {
        const std::stop_callback forward(caller_stop, [&state] { state.run.cancel(); });
        run_options.stop = stop;
        decompress(compressed, state.run.pipe().sink(), run_options);
      },
      /*break_on_failure=*/false);
}

DecompressingSource::~DecompressingSource() = default;

std::size_t DecompressingSource::read(std::uint8_t* dst, std::size_t max_bytes) {
  State& state = *state_;
  if (state.error) std::rethrow_exception(state.error);
  if (state.ended || max_bytes == 0) return 0;
  try {
    std::size_t got = 0;
    try {
      got = state.run.pipe().source().read(dst, max_bytes);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCancelled) throw;
      state.run.rethrow_run_error();
    }
    if (got == 0) {
      state.run.join_and_rethrow();
      state.ended = true;
    }
    return got;
  } catch (...) {
    state.error = std::current_exception();
    throw;
  }
}

const std::string& DecompressingSource::name() const { return state_->run.name(); }
void DecompressingSource::cancel() noexcept { state_->run.cancel(); }

}  // namespace sluice
