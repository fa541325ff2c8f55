// Batch tests through the library: many buffers or files in one graph run, results in input
// order, identical to compressing each alone, failures isolated per item (or stopping the batch).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <filesystem>

#include "sluice/batch.h"
#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::random_bytes;
using testing::read_file;
using testing::text_bytes;
using testing::to_bytes;
using testing::view;
using testing::write_file;

// Set when a poisoned chunk has thrown (for tests that need the failure to have happened).
std::atomic<bool> g_poison_thrown{false};
// When set, a poisoned chunk waits (up to 10 s) for g_commit_started before it throws.
std::atomic<bool> g_poison_waits{false};
std::atomic<bool> g_commit_started{false};

// gzip, except that a chunk starting with "POISON" fails: a codec a user might have registered.
std::string poison_codec() {
  static const std::string name = [] {
    CodecInfo info = *CodecRegistry::global().find("gzip");
    info.name = "poisonable-gzip";
    info.extension = ".pgz";
    info.matches_magic = nullptr;
    CodecRegistry::global().add(info, [](const CodecOptions& options) -> std::unique_ptr<Codec> {
      class Poisonable final : public Codec {
       public:
        explicit Poisonable(std::unique_ptr<Codec> inner) : inner_(std::move(inner)) {}
        const CodecInfo& info() const override { return inner_->info(); }
        const CodecOptions& options() const override { return inner_->options(); }
        std::unique_ptr<ChunkCompressor> new_chunk_compressor() const override {
          class Compressor final : public ChunkCompressor {
           public:
            explicit Compressor(std::unique_ptr<ChunkCompressor> inner) : inner_(std::move(inner)) {}
            std::uint64_t compress_chunk(ByteView history, ByteView input, bool last, Buffer& out) override {
              if (input.size() >= 6 && std::memcmp(input.data(), "POISON", 6) == 0) {
                const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                while (g_poison_waits && !g_commit_started && std::chrono::steady_clock::now() < deadline) {
                  std::this_thread::sleep_for(std::chrono::milliseconds(1));
                }
                g_poison_thrown = true;
                throw std::runtime_error("poisoned chunk");
              }
              return inner_->compress(history, input, last, out);
            }

           private:
            std::unique_ptr<ChunkCompressor> inner_;
          };
          return std::make_unique<Compressor>(inner_->make_chunk_compressor());
        }
        std::unique_ptr<StreamFramer> new_framer(const StreamInfo& s) const override { return inner_->make_framer(s); }
        std::unique_ptr<StreamDecoder> new_decoder() const override { return inner_->make_decoder(); }

       private:
        std::unique_ptr<Codec> inner_;
      };
      return std::make_unique<Poisonable>(CodecRegistry::global().create("gzip", options));
    });
    return info.name;
  }();
  return name;
}

Bytes poisoned(std::size_t size, std::uint64_t seed) {
  Bytes bytes = text_bytes(size, seed);
  std::memcpy(bytes.data(), "POISON", 6);
  return bytes;
}

TEST(BatchBuffers, ResultsAreInOrderAndEqualCompressingEachAlone) {
  const std::vector<Bytes> inputs = {text_bytes(300 * 1024, 1), {}, random_bytes(1, 2), text_bytes(5 << 20, 3),
                                     text_bytes(64 * 1024, 4)};
  std::vector<ByteView> views;
  for (const auto& input : inputs) views.push_back(view(input));
  for (const char* codec : {"gzip", "zstd", "lz4"}) {
    CompressOptions options;
    options.codec = codec;
    options.threads = 2;
    const auto results = compress_buffers(views, options);
    ASSERT_EQ(results.size(), inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      ASSERT_TRUE(results[i].ok()) << codec << " item " << i;
      EXPECT_EQ(results[i].input_bytes, inputs[i].size());
      EXPECT_EQ(to_bytes(results[i].output), to_bytes(compress_buffer(views[i], options))) << codec << " item " << i;
      EXPECT_EQ(to_bytes(decompress_buffer(results[i].output.view())), inputs[i]);
    }
  }
}

TEST(BatchBuffers, AFailingItemFailsAloneAndNamesItself) {
  const std::vector<Bytes> inputs = {text_bytes(200 * 1024, 5), poisoned(200 * 1024, 6), text_bytes(10, 7)};
  std::vector<ByteView> views;
  for (const auto& input : inputs) views.push_back(view(input));
  CompressOptions options;
  options.codec = poison_codec();
  options.codec_options.chunk_bytes = 64 * 1024;
  const auto results = compress_buffers(views, options);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_TRUE(results[2].ok());
  ASSERT_FALSE(results[1].ok());
  EXPECT_EQ(results[1].error->path(), "item 1");
  EXPECT_NE(results[1].error->detail().find("poisoned chunk"), std::string::npos);
  EXPECT_EQ(results[1].output.size(), 0u);
  EXPECT_EQ(to_bytes(decompress_buffer(results[2].output.view())), inputs[2]);
}

TEST(BatchBuffers, AnEmptyBatchIsFine) { EXPECT_TRUE(compress_buffers({}, {}).empty()); }

class BatchFiles : public ::testing::Test {
 protected:
  std::string path(const std::string& name) { return (dir_ / name).string(); }
  testing::ScratchDir dir_;
};

TEST_F(BatchFiles, OneHugeFileAmongTinyOnesAllDecodeAndCallbacksComeOncePerItem) {
  std::vector<FileJob> jobs;
  std::vector<Bytes> inputs;
  for (int i = 0; i < 40; ++i) {
    inputs.push_back(i == 17 ? text_bytes(6 << 20, 100) : text_bytes(static_cast<std::size_t>(i) * 997, static_cast<std::uint64_t>(i)));
    const std::string name = "f" + std::to_string(i);
    write_file(dir_ / name, inputs.back());
    jobs.push_back({path(name), path(name + ".zst")});
  }
  std::vector<int> calls(jobs.size(), 0);
  FileBatchOptions batch;
  batch.on_item_done = [&](std::size_t i, const ItemResult& item) {
    ++calls[i];
    EXPECT_TRUE(item.ok()) << item.input;
  };
  CompressOptions options;
  options.codec = "zstd";
  options.codec_options.chunk_bytes = 256 * 1024;
  const BatchReport report = compress_files(jobs, options, batch);
  EXPECT_EQ(report.failed, 0u);
  EXPECT_EQ(calls, std::vector<int>(jobs.size(), 1));
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(report.items[i].input_bytes, inputs[i].size());
    EXPECT_EQ(to_bytes(decompress_buffer(view(read_file(jobs[i].output)))), inputs[i]) << i;
  }
}

TEST_F(BatchFiles, OutputEqualsCompressingTheFileAlone) {
  write_file(dir_ / "one", text_bytes(700 * 1024, 8));
  const BatchReport report = compress_files({{path("one"), path("one.gz")}}, {});
  ASSERT_EQ(report.failed, 0u);
  FdSource source(path("one"));
  MemorySink alone;
  compress(source, alone, {}, StreamInfo{"one", source.status().mtime_seconds});
  EXPECT_EQ(read_file(dir_ / "one.gz"), to_bytes(alone.buffer()));
}

TEST_F(BatchFiles, AMissingFileInTheMiddleFailsAloneAndLeavesNoOutput) {
  write_file(dir_ / "a", text_bytes(100 * 1024, 9));
  write_file(dir_ / "c", text_bytes(100 * 1024, 10));
  const std::vector<FileJob> jobs = {{path("a"), path("a.gz")}, {path("b"), path("b.gz")}, {path("c"), path("c.gz")}};
  const BatchReport report = compress_files(jobs, {});
  EXPECT_EQ(report.failed, 1u);
  EXPECT_EQ(report.items[0].status, ItemStatus::kDone);
  EXPECT_EQ(report.items[1].status, ItemStatus::kFailed);
  EXPECT_EQ(report.items[2].status, ItemStatus::kDone);
  EXPECT_NE(std::string(report.items[1].error->what()).find("No such file"), std::string::npos);
  EXPECT_EQ(dir_.listing(), (std::vector<std::string>{"a", "a.gz", "c", "c.gz"}));
}

TEST_F(BatchFiles, ACodecFailureFailsOnlyItsFileUnlessFailFast) {
  write_file(dir_ / "a", text_bytes(300 * 1024, 11));
  write_file(dir_ / "b", poisoned(300 * 1024, 12));
  write_file(dir_ / "c", text_bytes(300 * 1024, 13));
  const std::vector<FileJob> jobs = {{path("a"), path("a.pgz")}, {path("b"), path("b.pgz")}, {path("c"), path("c.pgz")}};
  CompressOptions options;
  options.codec = poison_codec();
  options.codec_options.chunk_bytes = 64 * 1024;
  const BatchReport carry_on = compress_files(jobs, options);
  EXPECT_EQ(carry_on.failed, 1u);
  EXPECT_EQ(carry_on.items[1].error->path(), path("b"));
  EXPECT_EQ(carry_on.items[1].error->offset(), 0u);
  EXPECT_EQ(dir_.listing(), (std::vector<std::string>{"a", "a.pgz", "b", "c", "c.pgz"}));
  fs::remove(dir_ / "a.pgz");
  fs::remove(dir_ / "c.pgz");

  FileBatchOptions batch;
  batch.fail_fast = true;
  const BatchReport stop = compress_files(jobs, options, batch);
  // a may have been published before b failed, or be cut short (skipped) by b's failure.
  EXPECT_NE(stop.items[0].status, ItemStatus::kFailed);
  EXPECT_EQ(stop.items[1].status, ItemStatus::kFailed);
  EXPECT_NE(stop.items[1].error->detail().find("poisoned chunk"), std::string::npos);
  EXPECT_EQ(stop.items[2].status, ItemStatus::kSkipped);
  EXPECT_EQ(stop.items[2].error->kind(), ErrorKind::kCancelled);
  std::vector<std::string> expected = {"a", "b", "c"};
  if (stop.items[0].ok()) {
    expected.insert(expected.begin() + 1, "a.pgz");
    EXPECT_EQ(to_bytes(decompress_buffer(view(read_file(dir_ / "a.pgz")))), read_file(dir_ / "a"));
  }
  EXPECT_EQ(dir_.listing(), expected) << "nothing half-written";
}

// A stream committed while another one fails the run stays committed: it is not also failed.
// (The writer used to ask "has this stream failed?" after committing, and a run stopped by another
// stream answered yes.)
TEST(StopRun, AStreamCommittedWhileAnotherFailsIsNotReportedFailed) {
  class Streams final : public StreamSet {
   public:
    Streams() : inputs_{text_bytes(10000, 1), poisoned(10000, 2)} {}
    std::size_t size() const override { return 2; }
    ByteSource& open_source(std::size_t i, StreamInfo&) override {
      sources_[i] = std::make_unique<MemorySource>(view(inputs_[i]), "in" + std::to_string(i));
      return *sources_[i];
    }
    void close_source(std::size_t) noexcept override {}
    ByteSink& open_sink(std::size_t i) override { return sinks_[i]; }
    void commit_sink(std::size_t i, const StreamResult&) override {
      // Hold stream 0's commit until stream 1 has failed the run.
      if (i == 0) g_commit_started = true;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (i == 0 && !g_poison_thrown && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the failure be recorded
      committed[i] = true;
    }
    void fail(std::size_t i, const Error&) noexcept override { failed[i] = true; }
    bool committed[2] = {false, false};
    bool failed[2] = {false, false};

   private:
    std::vector<Bytes> inputs_;
    std::unique_ptr<MemorySource> sources_[2];
    MemorySink sinks_[2];
  };
  g_poison_thrown = false;
  g_commit_started = false;
  g_poison_waits = true;
  Streams streams;
  CompressOptions options;
  options.codec = poison_codec();
  options.threads = 2;
  EXPECT_THROW(compress_stream_set(streams, options), Error);
  g_poison_waits = false;
  ASSERT_TRUE(g_poison_thrown);
  EXPECT_TRUE(streams.committed[0]);
  EXPECT_FALSE(streams.failed[0]) << "stream 0 was both committed and failed";
  EXPECT_TRUE(streams.failed[1]);
  EXPECT_FALSE(streams.committed[1]);
}

// With independent sinks, streams of one chunk are published by the workers, several at once;
// the others go through the writer; committed() still comes once per stream, in stream order.
TEST(IndependentSinks, OneChunkStreamsArePublishedAtOnceAndReportedInOrder) {
  class Streams final : public StreamSet {
   public:
    explicit Streams(std::vector<Bytes> inputs) : sinks(inputs.size()), inputs_(std::move(inputs)) {
      sources_.resize(inputs_.size());
    }
    bool independent_sinks() const override { return true; }
    std::size_t size() const override { return inputs_.size(); }
    ByteSource& open_source(std::size_t i, StreamInfo&) override {
      sources_[i] = std::make_unique<MemorySource>(view(inputs_[i]));
      return *sources_[i];
    }
    void close_source(std::size_t) noexcept override {}
    ByteSink& open_sink(std::size_t i) override { return sinks[i]; }
    void commit_sink(std::size_t, const StreamResult&) override {
      // Each commit waits (up to 10 s) until two have been under way at once.
      const int now = ++inside_;
      for (int seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
      }
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (peak.load() < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      --inside_;
    }
    void committed(std::size_t i, const StreamResult& result) override {
      order.push_back(i);
      output_bytes.push_back(result.output_bytes);
    }
    void fail(std::size_t, const Error&) noexcept override { ++failures; }

    std::vector<MemorySink> sinks;
    std::atomic<int> peak{0};
    std::vector<std::size_t> order;
    std::vector<std::uint64_t> output_bytes;
    int failures = 0;

   private:
    std::vector<Bytes> inputs_;
    std::vector<std::unique_ptr<MemorySource>> sources_;
    std::atomic<int> inside_{0};
  };
  std::vector<Bytes> inputs;
  for (std::uint64_t i = 0; i < 12; ++i) inputs.push_back(text_bytes(i == 5 ? 200 * 1024 : 100 + i * 700, i));
  CompressOptions options;
  options.threads = 2;
  options.on_stream_error = FailurePolicy::kSkipStream;  // workers publish only then
  options.codec_options.chunk_bytes = 64 * 1024;  // stream 5 is four chunks, through the writer
  Streams streams(inputs);
  compress_stream_set(streams, options);
  EXPECT_EQ(streams.peak.load(), 2) << "no two outputs were committed at once";
  EXPECT_EQ(streams.failures, 0);
  std::vector<std::size_t> in_order(inputs.size());
  for (std::size_t i = 0; i < in_order.size(); ++i) in_order[i] = i;
  EXPECT_EQ(streams.order, in_order);
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    EXPECT_EQ(to_bytes(streams.sinks[i].buffer()), to_bytes(compress_buffer(view(inputs[i]), options))) << i;
    EXPECT_EQ(streams.output_bytes[i], streams.sinks[i].buffer().size()) << i;
  }
}

// A sink that fails to open, to be written or to commit, on the worker that publishes it: that
// stream fails alone, once, and is never reported committed; the others are.
TEST(IndependentSinks, APublishingFailureFailsItsStreamAlone) {
  class Streams final : public StreamSet {
   public:
    explicit Streams(std::vector<Bytes> inputs) : sinks(inputs.size()), inputs_(std::move(inputs)) {}
    bool independent_sinks() const override { return true; }
    std::size_t size() const override { return inputs_.size(); }
    ByteSource& open_source(std::size_t i, StreamInfo&) override {
      sources_.push_back(std::make_unique<MemorySource>(view(inputs_[i]), "in" + std::to_string(i)));
      return *sources_.back();
    }
    void close_source(std::size_t) noexcept override {}
    ByteSink& open_sink(std::size_t i) override {
      if (i == 3) throw Error(ErrorKind::kIo, "cannot open", "out3");
      return sinks[i];
    }
    void commit_sink(std::size_t i, const StreamResult&) override {
      if (i == 7) throw Error(ErrorKind::kIo, "cannot commit", "out7");
    }
    void committed(std::size_t i, const StreamResult&) override { order.push_back(i); }
    void fail(std::size_t i, const Error& error) noexcept override { failures.emplace_back(i, error.detail()); }

    std::vector<MemorySink> sinks;
    std::vector<std::size_t> order;
    std::vector<std::pair<std::size_t, std::string>> failures;

   private:
    std::vector<Bytes> inputs_;
    std::vector<std::unique_ptr<MemorySource>> sources_;  // made on the reader's thread only
  };
  std::vector<Bytes> inputs;
  for (std::uint64_t i = 0; i < 10; ++i) inputs.push_back(text_bytes(500 + i * 100, i));
  Streams streams(inputs);
  CompressOptions options;
  options.threads = 2;
  options.on_stream_error = FailurePolicy::kSkipStream;
  const CompressStats stats = compress_stream_set(streams, options);
  EXPECT_EQ(stats.failed_streams, 2u);
  EXPECT_EQ(streams.order, (std::vector<std::size_t>{0, 1, 2, 4, 5, 6, 8, 9}));
  ASSERT_EQ(streams.failures.size(), 2u);
  EXPECT_EQ(streams.failures[0].first, 3u);
  EXPECT_NE(streams.failures[0].second.find("cannot open"), std::string::npos);
  EXPECT_EQ(streams.failures[1].first, 7u);
  EXPECT_NE(streams.failures[1].second.find("cannot commit"), std::string::npos);
}

// With fail_fast, small files behind a failed one are never published, as large ones are not:
// the workers publish only where a failure fails its file alone.
TEST_F(BatchFiles, FailFastPublishesNoSmallFileAfterTheFailedOne) {
  std::vector<FileJob> jobs;
  for (int i = 0; i < 40; ++i) {
    const std::string name = "t" + std::to_string(i);
    write_file(dir_ / name, i == 5 ? poisoned(2000, 5) : text_bytes(2000, static_cast<std::uint64_t>(i)));
    jobs.push_back({path(name), path(name + ".pgz")});
  }
  FileBatchOptions batch;
  batch.fail_fast = true;
  CompressOptions options;
  options.codec = poison_codec();
  options.threads = 2;
  const BatchReport report = compress_files(jobs, options, batch);
  EXPECT_EQ(report.items[5].status, ItemStatus::kFailed);
  for (std::size_t i = 6; i < jobs.size(); ++i) {
    EXPECT_NE(report.items[i].status, ItemStatus::kDone) << i;
    EXPECT_FALSE(fs::exists(jobs[i].output)) << i << " was published after the failure";
  }
}

// A batch of small files: each published by a worker, and the callbacks still in input order.
TEST_F(BatchFiles, SmallFilesAreReportedInInputOrder) {
  std::vector<FileJob> jobs;
  for (int i = 0; i < 300; ++i) {
    const std::string name = "s" + std::to_string(i);
    write_file(dir_ / name, text_bytes(static_cast<std::size_t>(i % 7) * 900, static_cast<std::uint64_t>(i)));
    jobs.push_back({path(name), path(name + ".gz")});
  }
  std::vector<std::size_t> order;
  FileBatchOptions batch;
  batch.on_item_done = [&](std::size_t i, const ItemResult&) { order.push_back(i); };
  CompressOptions options;
  options.threads = 2;
  const BatchReport report = compress_files(jobs, options, batch);
  EXPECT_EQ(report.failed, 0u);
  ASSERT_EQ(order.size(), jobs.size());
  for (std::size_t i = 0; i < order.size(); ++i) ASSERT_EQ(order[i], i);
  for (std::size_t i = 0; i < jobs.size(); i += 37) {
    EXPECT_EQ(to_bytes(decompress_buffer(view(read_file(jobs[i].output)))), read_file(jobs[i].input)) << i;
  }
}

// on_item_done that throws (an upload or a database insert that failed) stops the batch and its
// exception comes back to the caller, from compress_files as from decompress_files: compress_files
// returned as if nothing had been thrown, every item ok.
TEST_F(BatchFiles, AnExceptionOfOnItemDoneComesBackToTheCaller) {
  struct RecordFailed : std::runtime_error {
    RecordFailed() : std::runtime_error("could not record the item") {}
  };
  std::vector<FileJob> jobs;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "r" + std::to_string(i);
    write_file(dir_ / name, text_bytes(2000, static_cast<std::uint64_t>(i)));
    jobs.push_back({path(name), path(name + ".gz")});
  }
  for (const std::size_t throwing : {std::size_t{0}, std::size_t{2}}) {
    FileBatchOptions batch;
    batch.overwrite = true;
    batch.on_item_done = [&](std::size_t i, const ItemResult&) {
      if (i == throwing) throw RecordFailed();
    };
    for (const int threads : {1, 2}) {
      CompressOptions options;
      options.threads = threads;
      EXPECT_THROW(compress_files(jobs, options, batch), RecordFailed) << throwing << " " << threads;
    }
    std::vector<FileJob> back;
    for (const auto& job : jobs) back.push_back({job.output, job.input + ".back"});
    EXPECT_THROW(decompress_files(back, DecompressOptions{}, batch), RecordFailed) << throwing;
  }
  // Thrown for a failed item (a missing input), where the report is made in the graph's noexcept
  // fail(): it ended the process.
  std::vector<FileJob> missing = jobs;
  missing[1].input = path("no-such-file");
  FileBatchOptions batch;
  batch.overwrite = true;
  batch.on_item_done = [&](std::size_t, const ItemResult& item) {
    if (!item.ok()) throw RecordFailed();
  };
  for (const int threads : {1, 2}) {
    CompressOptions options;
    options.threads = threads;
    EXPECT_THROW(compress_files(missing, options, batch), RecordFailed) << threads;
  }
  std::vector<FileJob> back{{jobs[0].output, path("r0.back")}, {path("no-such.gz"), path("x.back")}};
  EXPECT_THROW(decompress_files(back, DecompressOptions{}, batch), RecordFailed);
}

TEST_F(BatchFiles, RemoveInputsOnlyAfterSuccess) {
  write_file(dir_ / "a", text_bytes(1000, 14));
  write_file(dir_ / "b.pgz", {});  // the output exists already: b fails and must keep its input
  write_file(dir_ / "b", text_bytes(1000, 15));
  FileBatchOptions batch;
  batch.remove_inputs = true;
  CompressOptions options;
  options.codec = poison_codec();
  const BatchReport report = compress_files({{path("a"), path("a.pgz")}, {path("b"), path("b.pgz")}}, options, batch);
  EXPECT_EQ(report.failed, 1u);
  EXPECT_EQ(dir_.listing(), (std::vector<std::string>{"a.pgz", "b", "b.pgz"}));
}

TEST_F(BatchFiles, DecompressionOfABatchRunsFilesInParallel) {
  std::vector<FileJob> jobs;
  std::vector<Bytes> inputs;
  for (int i = 0; i < 8; ++i) {
    inputs.push_back(text_bytes(200 * 1024 + static_cast<std::size_t>(i), static_cast<std::uint64_t>(i)));
    CompressOptions options;
    options.codec = i % 2 ? "lz4" : "zstd";
    const std::string name = "in" + std::to_string(i);
    write_file(dir_ / name, to_bytes(compress_buffer(view(inputs.back()), options)));
    jobs.push_back({path(name), path("out" + std::to_string(i))});
  }
  write_file(dir_ / "bad", text_bytes(100, 99));
  jobs.push_back({path("bad"), path("out-bad")});
  DecompressOptions options;
  options.threads = 2;
  const BatchReport report = decompress_files(jobs, options);
  EXPECT_EQ(report.failed, 1u);
  EXPECT_EQ(report.worker_threads, 2u);
  for (std::size_t i = 0; i < inputs.size(); ++i) EXPECT_EQ(read_file(jobs[i].output), inputs[i]) << i;
  EXPECT_FALSE(fs::exists(dir_ / "out-bad"));
}

}  // namespace
}  // namespace sluice
