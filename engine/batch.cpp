// Batches: files and buffers through the compression graph as one run, and files through the
// streaming decoder several at a time.
#include "sluice/batch.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include "engine/thread_arena.h"
#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kStdinName = "<stdin>";
constexpr const char* kStdoutName = "<stdout>";

Error skipped_error(const std::string& input) {
  return Error(ErrorKind::kCancelled, "skipped: the batch stopped at an earlier failure", input);
}

bool same_file_unchanged(const struct stat& now, const FileStatus& then) {
  return static_cast<std::uint64_t>(now.st_dev) == then.device && static_cast<std::uint64_t>(now.st_ino) == then.inode &&
         static_cast<std::uint64_t>(now.st_size) == then.size && now.st_mtim.tv_sec == then.mtime_seconds &&
         static_cast<std::uint32_t>(now.st_mtim.tv_nsec) == then.mtime_nanoseconds;
}

// Counts and drops what it is given (integrity tests).
class DiscardSink final : public ByteSink {
 public:
  void write(ByteView) override {}
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "<discarded>";
};

// The files of one item: its input, its output (atomic), publishing and discarding them.
// The input side and the output side may be used from different threads, one each.
class FileItem {
 public:
  // `unfinished_mark`: a compressed stream's (CodecInfo::unfinished_mark), for stdout.
  FileItem(const FileJob& job, const FileBatchOptions& batch, std::string unfinished_mark = {})
      : job_(job), batch_(batch), unfinished_mark_(std::move(unfinished_mark)) {}

  ByteSource& open_source(StreamInfo* info) {
    if (job_.input == "-") {
      source_ = std::make_unique<FdSource>(STDIN_FILENO, kStdinName);
      return *source_;
    }
    source_ = std::make_unique<FdSource>(job_.input);
    input_status_ = source_->status();
    if (!job_.output.empty()) {
      struct stat out {};
      if (::stat(job_.output.c_str(), &out) == 0 && static_cast<std::uint64_t>(out.st_dev) == input_status_->device &&
          static_cast<std::uint64_t>(out.st_ino) == input_status_->inode) {
        throw Error(ErrorKind::kIo, "input and output are the same file", job_.output);
      }
    }
    if (info && batch_.store_name) {
      info->name = std::filesystem::path(job_.input).filename().string();
      info->mtime_seconds = input_status_->mtime_seconds;
    }
    return *source_;
  }

  void close_source() noexcept { source_.reset(); }

  ByteSink& open_sink() {
    if (batch_.discard_output) {
      discard_ = std::make_unique<DiscardSink>();
      return *discard_;
    }
    if (job_.output.empty()) {
      stdout_ = std::make_unique<MarkedStreamSink>(STDOUT_FILENO, kStdoutName, unfinished_mark_);
      return *stdout_;
    }
    const std::filesystem::path parent = std::filesystem::path(job_.output).parent_path();
    if (batch_.create_directories && !parent.empty()) {
      // Why a directory could not be made (a read-only file system): the output's own error
      // then said "No such file or directory". One that is there after all (made meanwhile by
      // another job) is no error.
      std::error_code error;
      std::filesystem::create_directories(parent, error);
      if (error && !std::filesystem::is_directory(parent)) {
        throw Error(ErrorKind::kIo,
                    fmt::format("cannot create directory {}: {}", printable_name(parent.string()), error.message()),
                    job_.output)
            .set_error_number(error.value());
      }
    }
    output_ = std::make_unique<OutputFile>(job_.output, batch_.overwrite, !job_.derived_output);
    if (input_status_) {
      FileStatus metadata = *input_status_;
      if (job_.mtime_seconds) {
        metadata.mtime_seconds = *job_.mtime_seconds;
        metadata.mtime_nanoseconds = 0;
      }
      output_->copy_attributes_of(metadata);
    }
    return *output_;
  }

  // Publishes the output; then, if asked and not `keep_input`, removes the input (only a file, only
  // after a durable publish).
  void commit(bool keep_input = false) {
    const bool remove = batch_.remove_inputs && !keep_input && input_status_ && !job_.output.empty();
    if (output_) output_->commit(batch_.durable || remove);
    output_.reset();
    if (stdout_) stdout_->finish();
    stdout_.reset();
    if (!remove) return;
    // The input must still be the file we read, as we read it: removing a file that was
    // replaced, appended to or rewritten meanwhile would lose data that is in no output.
    struct stat now {};
    if (::stat(job_.input.c_str(), &now) == 0 && !same_file_unchanged(now, *input_status_)) {
      throw Error(ErrorKind::kIo, "output written, but the input changed while it was read, so it was kept",
                  job_.input);
    }
    if (::unlink(job_.input.c_str()) != 0) {
      throw_system_error("output written, but the input could not be removed", job_.input);
    }
  }

  void discard() noexcept {
    source_.reset();
    output_.reset();  // removes the temporary
    stdout_.reset();  // marks a stream begun there unfinished
  }

 private:
  const FileJob& job_;
  const FileBatchOptions& batch_;
  std::unique_ptr<FdSource> source_;
  std::optional<FileStatus> input_status_;
  std::unique_ptr<OutputFile> output_;
  std::string unfinished_mark_;
  std::unique_ptr<MarkedStreamSink> stdout_;
  std::unique_ptr<DiscardSink> discard_;
};

// The report every batch fills in: results in input order, callbacks as items end.
class Report {
 public:
  Report(const std::vector<FileJob>& jobs, const FileBatchOptions& batch) : batch_(batch) {
    report_.items.resize(jobs.size());
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      report_.items[i].input = jobs[i].input;
      report_.items[i].output = jobs[i].output;
    }
  }

  void done(std::size_t i, std::uint64_t in, std::uint64_t out, double seconds) {
    auto& item = report_.items[i];
    item.status = ItemStatus::kDone;
    item.input_bytes = in;
    item.output_bytes = out;
    item.seconds = seconds;
    notify(i);
  }

  // Done, but the input held something that was passed over (trailing garbage).
  void done_with_warning(std::size_t i, std::uint64_t in, std::uint64_t out, double seconds, const Error& warning) {
    report_.items[i].warning = warning;
    done(i, in, out, seconds);
  }

  void failed(std::size_t i, const Error& error) {
    auto& item = report_.items[i];
    item.status = error.kind() == ErrorKind::kCancelled ? ItemStatus::kSkipped : ItemStatus::kFailed;
    item.error = error;
    notify(i, /*rethrow=*/false);  // from the graph's noexcept fail(): the exception is kept for the caller
  }

  // Marks the items nothing was said of as skipped and totals the batch.
  BatchReport finish(double seconds, std::size_t worker_threads) {
    std::lock_guard lock(mutex_);
    for (std::size_t i = 0; i < report_.items.size(); ++i) {
      auto& item = report_.items[i];
      if (item.status == ItemStatus::kSkipped && !item.error) {
        item.error = skipped_error(item.input);
        if (batch_.on_item_done) batch_.on_item_done(i, item);
      }
      report_.input_bytes += item.input_bytes;
      report_.output_bytes += item.output_bytes;
      if (!item.ok()) ++report_.failed;
    }
    report_.seconds = seconds;
    report_.worker_threads = worker_threads;
    return std::move(report_);
  }

 private:
  // An exception of on_item_done is kept for the caller (callback_error) and, with `rethrow`,
  // stops the run; without (a failed item's report, made where nothing may throw: it ended the
  // process), the run goes on and the caller gets it at the end.
  void notify(std::size_t i, bool rethrow = true) {
    std::lock_guard lock(mutex_);
    if (!batch_.on_item_done) return;
    try {
      batch_.on_item_done(i, report_.items[i]);
    } catch (...) {
      if (!callback_error_) callback_error_ = std::current_exception();
      if (rethrow) throw;
    }
  }

 public:
  // The exception on_item_done threw, if it threw.
  std::exception_ptr callback_error() const { return callback_error_; }

 private:
  std::exception_ptr callback_error_;

  const FileBatchOptions& batch_;
  std::mutex mutex_;
  BatchReport report_;
};

// The compression graph's view of a batch of files.
class FileStreams final : public StreamSet {
 public:
  FileStreams(const std::vector<FileJob>& jobs, const FileBatchOptions& batch, Report& report,
              const std::string& unfinished_mark)
      : batch_(batch),
        report_(report),
        // Outputs to stdout come out one after another; files, discarded outputs: each its own.
        independent_(std::none_of(jobs.begin(), jobs.end(), [&batch](const FileJob& job) {
          return job.output.empty() && !batch.discard_output;
        })) {
    items_.reserve(jobs.size());
    for (const auto& job : jobs) items_.push_back(std::make_unique<FileItem>(job, batch, unfinished_mark));
  }
  std::size_t size() const override { return items_.size(); }
  bool independent_sinks() const override { return independent_; }
  ByteSource& open_source(std::size_t i, StreamInfo& info) override {
    begun_ = true;
    if (batch_.on_item_begin) batch_.on_item_begin(i);  // on the reader's thread, as on_read
    return items_[i]->open_source(&info);
  }
  void close_source(std::size_t i) noexcept override { items_[i]->close_source(); }
  ByteSink& open_sink(std::size_t i) override { return items_[i]->open_sink(); }
  void commit_sink(std::size_t i, const StreamResult&) override { items_[i]->commit(); }
  // Reported in input order, whichever thread committed the file.
  void committed(std::size_t i, const StreamResult& result) override {
    report_.done(i, result.input_bytes, result.output_bytes, result.seconds);
  }
  void fail(std::size_t i, const Error& error) noexcept override {
    items_[i]->discard();
    report_.failed(i, error);
  }
  bool begun() const { return begun_; }

 private:
  std::vector<std::unique_ptr<FileItem>> items_;
  const FileBatchOptions& batch_;
  Report& report_;
  const bool independent_;
  std::atomic<bool> begun_{false};
};

// The compression graph's view of a batch of buffers.
class BufferStreams final : public StreamSet {
 public:
  BufferStreams(const std::vector<ByteView>& inputs, std::vector<BufferResult>& results) : results_(results) {
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      sources_.push_back(std::make_unique<MemorySource>(inputs[i], "item " + std::to_string(i)));
    }
    sinks_.resize(inputs.size());
  }
  std::size_t size() const override { return sources_.size(); }
  bool independent_sinks() const override { return true; }
  ByteSource& open_source(std::size_t i, StreamInfo&) override { return *sources_[i]; }
  void close_source(std::size_t) noexcept override {}
  ByteSink& open_sink(std::size_t i) override {
    sinks_[i] = std::make_unique<MemorySink>("item " + std::to_string(i));
    return *sinks_[i];
  }
  void commit_sink(std::size_t i, const StreamResult& result) override {
    results_[i].output = sinks_[i]->take();
    results_[i].input_bytes = result.input_bytes;
    sinks_[i].reset();
  }
  void fail(std::size_t i, const Error& error) noexcept override {
    results_[i].error = error;
    sinks_[i].reset();
  }

 private:
  std::vector<BufferResult>& results_;
  std::vector<std::unique_ptr<MemorySource>> sources_;
  std::vector<std::unique_ptr<MemorySink>> sinks_;
};

}  // namespace

std::vector<BufferResult> compress_buffers(const std::vector<ByteView>& inputs, const CompressOptions& options) {
  std::vector<BufferResult> results(inputs.size());
  BufferStreams streams(inputs, results);
  CompressOptions run = options;
  run.on_stream_error = FailurePolicy::kSkipStream;
  compress_stream_set(streams, run);
  return results;
}

BatchReport compress_files(const std::vector<FileJob>& jobs, const CompressOptions& options,
                           const FileBatchOptions& batch) {
  const auto start = Clock::now();
  Report report(jobs, batch);
  FileStreams streams(jobs, batch, report, CodecRegistry::global().unfinished_mark(options.codec));
  CompressOptions run = options;
  run.on_stream_error = batch.fail_fast ? FailurePolicy::kStopRun : FailurePolicy::kSkipStream;
  if (batch.on_progress && !run.on_read) run.on_read = batch.on_progress;
  if (batch.on_written && !run.on_progress) run.on_progress = batch.on_written;
  CompressStats stats;
  try {
    stats = compress_stream_set(streams, run);
  } catch (const Error&) {
    // A failure that stopped the batch has been reported for its item; anything else (bad
    // options) happened before any item began.
    if (!streams.begun()) throw;
  }
  // An exception of on_item_done's (which stopped the run, or was kept where a failed item was
  // reported) is the caller's again, as from decompress_files.
  if (const std::exception_ptr callback = report.callback_error()) std::rethrow_exception(callback);
  return report.finish(std::chrono::duration<double>(Clock::now() - start).count(), stats.compressor_threads);
}

// Passes writes through and counts the bytes.
class CountingSink final : public ByteSink {
 public:
  explicit CountingSink(ByteSink& inner) : inner_(inner) {}
  void write(ByteView bytes) override {
    inner_.write(bytes);
    bytes_ += bytes.size();
  }
  const std::string& name() const override { return inner_.name(); }
  std::uint64_t bytes() const { return bytes_; }

 private:
  ByteSink& inner_;
  std::uint64_t bytes_ = 0;
};

BatchReport decompress_files(const std::vector<FileJob>& jobs, const DecompressOptions& options,
                             const FileBatchOptions& batch) {
  namespace flow = tbb::flow;
  const auto start = Clock::now();
  Report report(jobs, batch);
  const int threads = resolve_threads(options.threads);
  // Outputs to stdout must come out in job order: then one file at a time.
  const bool to_stdout = std::any_of(jobs.begin(), jobs.end(), [](const FileJob& job) { return job.output.empty(); });
  std::atomic<bool> stop{false};
  std::uint64_t progress = 0;  // bytes read from all inputs; guarded by progress_mutex
  std::mutex progress_mutex;   // the callbacks are never called concurrently

  const auto decode_one = [&](std::size_t i) {
    if (stop.load()) return;
    const auto began = Clock::now();
    if (batch.on_item_begin) {
      std::lock_guard lock(progress_mutex);
      batch.on_item_begin(i);
    }
    FileItem item(jobs[i], batch);
    std::uint64_t input_bytes = 0;
    std::uint64_t reported = 0;  // of this file's bytes, those in `progress`
    const auto count_read = [&](std::uint64_t file_bytes) {
      std::lock_guard lock(progress_mutex);
      if (options.on_read) options.on_read(file_bytes);  // this file's count, as decompress() gives it
      if (!batch.on_progress || file_bytes <= reported) return;
      progress += file_bytes - reported;
      reported = file_bytes;
      batch.on_progress(progress);
    };
    const auto progressed = [&] {
      if (batch.on_progress && input_bytes > reported) count_read(input_bytes);
    };
    DecompressOptions file_options = options;
    if (batch.on_progress || options.on_read) file_options.on_read = count_read;
    try {
      ByteSource& source = item.open_source(nullptr);
      CountingSink sink(item.open_sink());
      try {
        const DecompressStats stats = decompress(source, sink, file_options);
        input_bytes = stats.input_bytes;
        item.commit();
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kTrailingGarbage) throw;
        // Everything before the garbage was decoded, checked and written: the output is published
        // (the input kept, whatever --rm says) and the garbage reported, as gzip does.
        input_bytes = e.offset().value_or(0);
        item.commit(/*keep_input=*/true);
        report.done_with_warning(i, input_bytes, sink.bytes(), std::chrono::duration<double>(Clock::now() - began).count(),
                                 e);
        progressed();
        return;
      }
      report.done(i, input_bytes, sink.bytes(), std::chrono::duration<double>(Clock::now() - began).count());
      progressed();
    } catch (const Error& e) {
      item.discard();
      report.failed(i, e);
      if (batch.fail_fast) stop.store(true);
    }
  };

  if (jobs.size() == 1) {
    // One file: on this thread, its decompress() making the workers it needs, and none for a
    // small file (no arena or graph to start here: a small file's run then starts no thread at
    // all, which is most of what `sluice -dc` of a small file costs). Not for several: after one
    // arena this thread would belong to oneTBB's default one, and the next files would run in it.
    decode_one(0);
    if (const std::exception_ptr callback = report.callback_error()) std::rethrow_exception(callback);
    return report.finish(std::chrono::duration<double>(Clock::now() - start).count(),
                         static_cast<std::size_t>(to_stdout ? 1 : threads));
  }
  detail::ThreadArena arena(threads);
  arena.execute([&] {
    flow::graph graph;
    std::size_t next = 0;
    // Hands out job numbers in order.
    flow::input_node<std::size_t> jobs_source(graph, [&](tbb::flow_control& control) -> std::size_t {
      if (next == jobs.size() || stop.load()) {
        control.stop();
        return 0;
      }
      return next++;
    });
    // Each file is one serial stream; several files decode at once, one per thread.
    flow::function_node<std::size_t> decoder(graph, to_stdout ? 1 : static_cast<std::size_t>(threads),
                                             [&](std::size_t i) { decode_one(i); });
    flow::make_edge(jobs_source, decoder);
    jobs_source.activate();
    graph.wait_for_all();
  });
  if (const std::exception_ptr callback = report.callback_error()) std::rethrow_exception(callback);
  return report.finish(std::chrono::duration<double>(Clock::now() - start).count(),
                       static_cast<std::size_t>(to_stdout ? 1 : threads));
}

}  // namespace sluice
