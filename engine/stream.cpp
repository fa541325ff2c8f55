// Compressor, Decompressor and DecompressingSource (sluice/stream.h): compress() or decompress()
// on a thread of their own, joined to the caller by a bounded pipe.
#include "sluice/stream.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <stop_token>
#include <thread>
#include <utility>

#include "core/byte_pipe.h"
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
  ~BackgroundRun() {
    if (thread_.joinable()) {
      cancel();
      thread_.join();
    }
  }

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

  Stats finish() {
    if (finished_) throw Error(ErrorKind::kUsage, "finish called twice", run_.name());
    finished_ = true;
    run_.pipe().close();
    run_.join_and_rethrow();
    return stats;
  }

  Stats stats;

 private:
  BackgroundRun run_;
  bool finished_ = false;
};

}  // namespace

// A Compressor is one run at a time: flush() finishes the run (a complete stream) and the next
// write starts another, whose stream is concatenated to it in the caller's sink.
struct Compressor::State {
  State(ByteSink& sink, const CompressOptions& run_options, const StreamInfo& stream_info)
      : out(sink), options(run_options), info(stream_info) {
    // Options that cannot work (a level or chunk size the codec refuses, an unknown knob or
    // codec, a thread count out of range) are the constructor's error, not the first write's or
    // finish()'s, after the caller has produced the data.
    (void)CodecRegistry::global().create(options.codec, options.codec_options);
    (void)resolve_threads(options.threads);
    start();
  }

  void start() {
    auto next = std::make_unique<PushRun<CompressStats>>(out.name());
    written = 0;
    PushRun<CompressStats>& current = *next;
    current.run().start(
        [&current, this, run_options = options, run_info = info](std::stop_token stop) mutable {
          // Stopped by cancel() or by the caller's own token, whichever comes first.
          const std::stop_callback forward(run_options.stop, [&current] { current.run().cancel(); });
          run_options.stop = stop;
          current.stats = compress(current.run().pipe().source(), out, run_options, run_info);
        },
        /*break_on_failure=*/true);
    // cancel() may come from another thread at any time: it sees the old run or the new one,
    // never a run being replaced, and a new run started after it is cancelled at once.
    std::lock_guard lock(mutex);
    run = std::move(next);
    if (cancelled) run->run().cancel();
  }

  void cancel() noexcept {
    std::lock_guard lock(mutex);
    cancelled = true;
    if (run) run->run().cancel();
  }

  // Ends the current run's stream; adds its figures to the whole stream's.
  void end_run() {
    const CompressStats stats = run->finish();
    total.input_bytes += stats.input_bytes;
    total.output_bytes += stats.output_bytes;
    total.chunks += stats.chunks;
    total.compressor_threads = std::max(total.compressor_threads, stats.compressor_threads);
    total.peak_chunks_in_flight = std::max(total.peak_chunks_in_flight, stats.peak_chunks_in_flight);
    total.seconds += stats.seconds;
  }

  ByteSink& out;
  const CompressOptions options;
  StreamInfo info;
  std::unique_ptr<PushRun<CompressStats>> run;
  std::uint64_t written = 0;  // bytes taken by the current run
  bool flushed_last = false;  // the current run was ended by flush() and none started since
  bool finished = false;
  std::mutex mutex;  // guards `run` against cancel() from another thread
  std::atomic<bool> cancelled{false};
  CompressStats total;
};

Compressor::Compressor(ByteSink& out, const CompressOptions& options, const StreamInfo& info)
    : state_(std::make_unique<State>(out, options, info)) {}

Compressor::~Compressor() = default;

void Compressor::write(ByteView bytes) {
  if (state_->cancelled) throw Error(ErrorKind::kCancelled, "the stream was stopped", name());
  if (state_->finished) throw Error(ErrorKind::kUsage, "write after finish", name());
  if (bytes.empty()) return;
  if (state_->flushed_last) {
    state_->flushed_last = false;
    state_->start();
  }
  state_->run->write(bytes);
  state_->written += bytes.size();
}

void Compressor::flush() {
  if (state_->finished) throw Error(ErrorKind::kUsage, "flush after finish", name());
  if (state_->flushed_last || state_->written == 0) return;
  state_->end_run();
  state_->flushed_last = true;
  state_->info = {};  // the name and time go in the first stream only
}

const std::string& Compressor::name() const { return state_->out.name(); }

CompressStats Compressor::finish() {
  if (state_->cancelled) throw Error(ErrorKind::kCancelled, "the stream was stopped", name());
  if (state_->finished) throw Error(ErrorKind::kUsage, "finish called twice", name());
  state_->finished = true;
  if (!state_->flushed_last) state_->end_run();
  state_->flushed_last = true;
  return state_->total;
}

void Compressor::cancel() noexcept { state_->cancel(); }

struct Decompressor::State : PushRun<DecompressStats> {
  using PushRun::PushRun;
};

Decompressor::Decompressor(ByteSink& out, const DecompressOptions& options, std::string name)
    : state_(std::make_unique<State>(std::move(name))) {
  DecompressOptions run_options = options;
  State& state = *state_;
  state.run().start(
      [&state, &out, run_options, caller_stop = options.stop](std::stop_token stop) mutable {
        const std::stop_callback forward(caller_stop, [&state] { state.run().cancel(); });
        run_options.stop = stop;
        state.stats = decompress(state.run().pipe().source(), out, run_options);
      },
      /*break_on_failure=*/true);
}

Decompressor::~Decompressor() = default;
void Decompressor::write(ByteView compressed) { state_->write(compressed); }
const std::string& Decompressor::name() const { return state_->run().name(); }
DecompressStats Decompressor::finish() { return state_->finish(); }
void Decompressor::cancel() noexcept { state_->run().cancel(); }

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
