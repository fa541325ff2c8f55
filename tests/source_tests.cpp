// What a source can do beyond read(): a regular file is mapped by the graphs, has a size and reads
// at any offset; wrappers (counting, a replayed prefix, a caller's own) keep those abilities by
// forwarding them, so every command that reads a regular file gets the mapped path.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/stream.h"
#include "sluice/tar.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::text_bytes;
using testing::to_bytes;
using testing::view;

// A caller's wrapper: forwards every ability and counts what goes through read().
class ObservedSource final : public ByteSource {
 public:
  explicit ObservedSource(ByteSource& inner) : inner_(inner) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    const std::size_t n = inner_.read(dst, max_bytes);
    read_bytes += n;
    return n;
  }
  const std::string& name() const override { return inner_.name(); }
  std::optional<SourceFile> file() const override { return inner_.file(); }
  void seek(std::uint64_t offset) override {
    ++seeks;
    inner_.seek(offset);
  }
  std::optional<std::uint64_t> size() const override { return inner_.size(); }
  bool random_access() const override { return inner_.random_access(); }
  std::size_t read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) override {
    return inner_.read_at(offset, dst, max_bytes);
  }
  std::uint64_t read_bytes = 0;
  int seeks = 0;

 private:
  ByteSource& inner_;
};

TEST(SourceAbilities, FilesMemoryAndWrappersSayWhatTheyCan) {
  testing::ScratchDir dir;
  const Bytes data = text_bytes(100000, 1);
  testing::write_file(dir / "f.bin", data);
  FdSource file((dir / "f.bin").string());
  MemorySource memory(view(data));
  CountingSource counted(file);
  for (ByteSource* source : std::initializer_list<ByteSource*>{&file, &memory, &counted}) {
    SCOPED_TRACE(source == &memory ? "memory" : source == &file ? "file" : "counted file");
    EXPECT_EQ(source->size(), data.size());
    ASSERT_TRUE(source->random_access());
    Bytes got(300);
    EXPECT_EQ(source->read_at(99900, got.data(), got.size()), 100u);
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + 100, data.begin() + 99900));
    EXPECT_EQ(source->read_at(200000, got.data(), got.size()), 0u);
    EXPECT_EQ(source->file().has_value(), source != &memory);
  }
  // read_at does not move read(); a seek does, and the counter counts what it moved past.
  Bytes got(1000);
  ASSERT_EQ(counted.read_full(got.data(), 1000), 1000u);
  EXPECT_EQ(counted.file()->position, 1000u);
  EXPECT_EQ(counted.file()->size, data.size());
  counted.seek(60000);
  EXPECT_EQ(counted.bytes(), 60000u);
  ASSERT_EQ(counted.read_full(got.data(), 1000), 1000u);
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin() + 60000));
  EXPECT_EQ(counted.bytes(), 61000u);

  // A pipe has none of them.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  {
    FdSource pipe(fds[0], "<pipe>");
    EXPECT_FALSE(pipe.file().has_value());
    EXPECT_FALSE(pipe.size().has_value());
    EXPECT_FALSE(pipe.random_access());
    EXPECT_THROW(pipe.read_at(0, got.data(), 1), Error);
    EXPECT_THROW(pipe.seek(10), Error);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_THROW(memory.seek(10), Error);
}

// Through a caller's wrapper and a counting one, compression and decompression still map the
// file: almost nothing goes through read(), and the bytes consumed are counted all the same.
// wait_readable(): a pipe says whether a read would wait (nothing written yet), a file never
// would; wrappers ask what they wrap.
TEST(SourceAbilities, APipeSaysWhetherAReadWouldWait) {
  testing::ScratchDir dir;
  testing::write_file(dir / "f.bin", text_bytes(10, 1));
  FdSource file((dir / "f.bin").string());
  EXPECT_TRUE(file.wait_readable(std::chrono::milliseconds(0)));
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  FdSource pipe(fds[0], "<pipe>");
  CountingSource counted(pipe);
  StoppableSource stoppable(counted, std::stop_token{});
  EXPECT_FALSE(pipe.wait_readable(std::chrono::milliseconds(0)));
  EXPECT_FALSE(stoppable.wait_readable(std::chrono::milliseconds(20)));
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  EXPECT_TRUE(stoppable.wait_readable(std::chrono::milliseconds(0)));
  std::uint8_t byte = 0;
  EXPECT_EQ(stoppable.read(&byte, 1), 1u);
  EXPECT_FALSE(counted.wait_readable(std::chrono::milliseconds(0)));
  ::close(fds[1]);
  EXPECT_TRUE(counted.wait_readable(std::chrono::milliseconds(0))) << "the end is readable";
  EXPECT_EQ(counted.read(&byte, 1), 0u);
  ::close(fds[0]);
}

TEST(SourceAbilities, WrappedFilesAreMappedByTheGraphs) {
  testing::ScratchDir dir;
  const Bytes data = text_bytes(24 << 20, 2);
  testing::write_file(dir / "data.bin", data);
  for (const std::string codec : {"gzip", "zstd", "lz4"}) {
    SCOPED_TRACE(codec);
    CompressOptions options;
    options.codec = codec;
    options.threads = 2;
    Bytes packed;
    {
      FdSource file((dir / "data.bin").string());
      ObservedSource observed(file);
      CountingSource counted(observed);
      MemorySink sink;
      compress(counted, sink, options);
      packed = to_bytes(sink.buffer());
      EXPECT_LT(observed.read_bytes, 4u << 20) << "the file was read, not mapped";
      EXPECT_EQ(counted.bytes(), data.size());
    }
    testing::write_file(dir / "packed", packed);
    FdSource file((dir / "packed").string());
    ObservedSource observed(file);
    CountingSource counted(observed);
    MemorySink sink;
    DecompressOptions decode;
    decode.threads = 2;
    const DecompressStats stats = decompress(counted, sink, decode);
    EXPECT_EQ(to_bytes(sink.buffer()), data);
    EXPECT_LT(observed.read_bytes, 2u << 20) << "the file was read, not mapped";
    EXPECT_GT(observed.seeks, 0);
    EXPECT_EQ(counted.bytes(), packed.size());
    EXPECT_EQ(stats.input_bytes, packed.size());
  }
}

// Reading a tar archive detects its compression from a probe read, then replays it: the file
// behind stays mappable through the replay, and the archive is parsed in full.
TEST(SourceAbilities, CompressedTarArchivesAreMappedWhenRead) {
  testing::ScratchDir dir;
  fs::create_directories(dir / "tree");
  for (int i = 0; i < 6; ++i) testing::write_file(dir / "tree" / fmt::format("f{}", i), text_bytes(4 << 20, 10 + i));
  {
    OutputFile archive((dir / "a.tar.zst").string(), true);
    CompressOptions options;
    options.codec_options.chunk_bytes = 1 << 20;
    TarCreateOptions create;
    create.directory = dir.path().string();
    create_tar({"tree"}, archive, "zstd", options, create);
    archive.commit(false);
  }
  FdSource file((dir / "a.tar.zst").string());
  ObservedSource observed(file);
  std::uint64_t content = 0;
  const TarStats stats = list_tar(observed, [&](const TarEntry& entry) { content += entry.size; });
  EXPECT_EQ(stats.entries, 7u);
  EXPECT_EQ(content, 6u * (4u << 20));
  EXPECT_EQ(stats.stored_bytes, fs::file_size(dir / "a.tar.zst"));
  EXPECT_LT(observed.read_bytes, 1u << 20) << "the archive was read, not mapped";
}

// ---- Streams decoded as they arrive ----
//
// A pipe or socket whose writer pauses: what arrived is decoded and written out before the
// reader waits for more (decompress(): from the start, or from where the graph's reader found
// the source quiet), and the output is the same as the whole stream's.

// A stream that arrives in reads of at most `step` bytes, whose writer pauses at each offset in
// `quiet`: reads stop there, and wait_readable() there says "nothing yet", once.
class ArrivingSource final : public ByteSource {
 public:
  ArrivingSource(ByteView bytes, std::size_t step, std::vector<std::uint64_t> quiet)
      : bytes_(bytes), step_(step), quiet_(std::move(quiet)) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    std::size_t n = std::min({max_bytes, step_, bytes_.size() - position_});
    for (const std::uint64_t at : quiet_) {
      if (at > position_) n = std::min<std::size_t>(n, at - position_);
    }
    std::memcpy(dst, bytes_.data() + position_, n);
    position_ += n;
    return n;
  }
  bool wait_readable(std::chrono::milliseconds) override {
    const auto at = std::find(quiet_.begin(), quiet_.end(), position_);
    if (at == quiet_.end()) return true;
    quiet_.erase(at);
    ++pauses;
    return false;
  }
  const std::string& name() const override { return name_; }
  int pauses = 0;

 private:
  ByteView bytes_;
  std::size_t position_ = 0;
  std::size_t step_;
  std::vector<std::uint64_t> quiet_;
  std::string name_ = "<arriving>";
};

// A gzip member from zlib, sync-flushed after each part (a writer that flushes what it has: the
// output of each part can be decoded before the next part is written). Returns the member and
// where each part's flush ends in it.
std::pair<Bytes, std::vector<std::size_t>> flushed_gzip(const std::vector<Bytes>& parts) {
  z_stream stream{};
  if (deflateInit2(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("init");
  Bytes packed;
  std::vector<std::size_t> ends;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Bytes& part = parts[i];
    stream.next_in = const_cast<Bytef*>(part.data());
    stream.avail_in = static_cast<uInt>(part.size());
    const int flush = i + 1 == parts.size() ? Z_FINISH : Z_SYNC_FLUSH;
    int ret = Z_OK;
    do {
      std::uint8_t out[65536];
      stream.next_out = out;
      stream.avail_out = sizeof out;
      ret = deflate(&stream, flush);
      packed.insert(packed.end(), out, out + (sizeof out - stream.avail_out));
    } while (stream.avail_out == 0 || (flush == Z_FINISH && ret != Z_STREAM_END));
    ends.push_back(packed.size());
  }
  deflateEnd(&stream);
  return {packed, ends};
}

// A zstd/lz4 skippable frame of `payload` bytes.
Bytes skippable_frame(std::uint32_t payload) {
  Bytes frame = {0x53, 0x2A, 0x4D, 0x18};
  for (int i = 0; i < 4; ++i) frame.push_back(static_cast<std::uint8_t>(payload >> (8 * i)));
  frame.resize(8 + payload, 0x5A);
  return frame;
}

// Streams of every kind the decoder cuts differently: sluice's gzip forms (independent members,
// multi-member, one member with sync flushes, BGZF), a gzip member without flushes (zlib's),
// zstd and lz4 frames.
struct ArrivingCase {
  std::string name;
  Bytes packed;
  // Whether the streaming decoder can take over after any cut (StreamSplitter::serial_may_start);
  // lz4 only between frames, and sluice's lz4 is one frame of independent blocks: its units are
  // cut and decoded one after another as they arrive.
  bool hands_over = true;
};

std::vector<ArrivingCase> arriving_cases(const Bytes& input) {
  std::vector<ArrivingCase> cases;
  for (const char* form : {"independent", "multi-member", "single-member", "bgzf"}) {
    CompressOptions options;
    options.codec_options.knobs["form"] = form;
    if (std::string(form) != "bgzf") options.codec_options.chunk_bytes = 256 * 1024;
    cases.push_back({fmt::format("gzip {}", form), to_bytes(compress_buffer(view(input), options))});
  }
  cases.push_back({"gzip from zlib", testing::gzip_with_header_fields(input, {}, "name", {})});
  for (const char* codec : {"zstd", "lz4"}) {
    CompressOptions options;
    options.codec = codec;
    options.codec_options.chunk_bytes = 256 * 1024;
    cases.push_back({codec, to_bytes(compress_buffer(view(input), options)), std::string(codec) != "lz4"});
    // Several streams one after another, with skippable frames before and between them: lz4 is
    // taken over where a frame ends, and skippable frames are markers the reader skips.
    ArrivingCase frames{fmt::format("{} frames and skippable frames", codec), {}};
    const std::size_t part = input.size() / 4 + 1;
    for (std::size_t at = 0; at < input.size(); at += part) {
      const Bytes skippable = skippable_frame(at == 0 ? 20 : 70'000);
      frames.packed.insert(frames.packed.end(), skippable.begin(), skippable.end());
      const Bytes slice(input.begin() + static_cast<std::ptrdiff_t>(at),
                        input.begin() + static_cast<std::ptrdiff_t>(std::min(input.size(), at + part)));
      const Bytes packed = to_bytes(compress_buffer(view(slice), options));
      frames.packed.insert(frames.packed.end(), packed.begin(), packed.end());
    }
    cases.push_back(std::move(frames));
  }
  return cases;
}

Bytes arriving_input() {
  Bytes input = text_bytes(3'000'000, 5);
  const Bytes noise = testing::random_bytes(1'800'000, 6);
  const Bytes more = text_bytes(3'000'000, 7);
  input.insert(input.end(), noise.begin(), noise.end());
  input.insert(input.end(), more.begin(), more.end());
  return input;
}

TEST(ArrivingStreams, AWriterThatPausesAnywhereGetsTheSameOutput) {
  const Bytes input = arriving_input();
  for (const ArrivingCase& stream : arriving_cases(input)) {
    const std::uint64_t size = stream.packed.size();
    ASSERT_GT(size, 2u << 20) << stream.name << ": the graph must start before the middle pauses";
    // Pauses before the first read is full (the whole stream decoded as it arrives; at byte 1
    // the format cannot be told yet, and the reader must read on), and after it (the graph's
    // reader finds the source quiet, and the rest goes on in order).
    const std::vector<std::vector<std::uint64_t>> pauses = {{1, 300'000}, {size * 55 / 100, size * 8 / 10}};
    for (const auto& quiet : pauses) {
      for (const int threads : {1, 2}) {
        SCOPED_TRACE(fmt::format("{}, pauses at {}, -j{}", stream.name, fmt::join(quiet, " "), threads));
        ArrivingSource source(view(stream.packed), 100'000, quiet);
        MemorySink sink;
        DecompressOptions options;
        options.threads = threads;
        const DecompressStats stats = decompress(source, sink, options);
        EXPECT_TRUE(to_bytes(sink.buffer()) == input);
        EXPECT_EQ(stats.output_bytes, input.size());
        EXPECT_EQ(stats.input_bytes, size);
        EXPECT_GE(source.pauses, 1) << "the decoder did not ask before it waited";
        if (stream.hands_over || quiet[0] < (1u << 20)) {
          EXPECT_TRUE(stats.serial_from.has_value()) << "decoded as it arrived: in order, from a pause on";
        } else {
          EXPECT_FALSE(stats.serial_from.has_value()) << "no frame ends before the end: units to the end";
        }
      }
    }
  }
}

TEST(ArrivingStreams, ErrorsAfterAPauseAreReportedAsWithoutOne) {
  const Bytes input = arriving_input();
  for (const ArrivingCase& stream : arriving_cases(input)) {
    const std::uint64_t size = stream.packed.size();
    Bytes truncated(stream.packed.begin(), stream.packed.begin() + static_cast<std::ptrdiff_t>(size * 9 / 10));
    Bytes garbage = stream.packed;
    for (const char c : std::string("garbage after the stream\n")) garbage.push_back(static_cast<std::uint8_t>(c));
    for (const auto& quiet : std::vector<std::vector<std::uint64_t>>{{200'000}, {size * 6 / 10}}) {
      SCOPED_TRACE(fmt::format("{}, pause at {}", stream.name, quiet[0]));
      DecompressOptions options;
      options.threads = 2;
      // Decodes `bytes` as they arrive, pausing; the error must be of `kind`. Returns the output.
      const auto fails = [&](const Bytes& bytes, const DecompressOptions& with, ErrorKind kind) {
        ArrivingSource source(view(bytes), 100'000, quiet);
        MemorySink sink;
        try {
          decompress(source, sink, with);
          ADD_FAILURE() << "decoded without an error";
        } catch (const Error& e) {
          EXPECT_EQ(e.kind(), kind) << e.what();
          EXPECT_NE(std::string(e.what()).find("<arriving>"), std::string::npos) << e.what();
        }
        EXPECT_GE(source.pauses, 1);
        return to_bytes(sink.buffer());
      };
      fails(truncated, options, ErrorKind::kCorruptData);
      DecompressOptions limit = options;
      limit.max_output_bytes = input.size() * 9 / 10;
      EXPECT_LE(fails(stream.packed, limit, ErrorKind::kLimit).size(), limit.max_output_bytes);
      EXPECT_TRUE(fails(garbage, options, ErrorKind::kTrailingGarbage) == input)
          << "what came before the garbage is written";
    }
  }
}

// A sink whose writes a test can wait for.
class WatchedSink final : public ByteSink {
 public:
  void write(ByteView bytes) override {
    std::lock_guard lock(mutex_);
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
    changed_.notify_all();
  }
  const std::string& name() const override { return name_; }
  // Whether `count` bytes were written within `timeout`.
  bool wait_for(std::size_t count, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return bytes_.size() >= count; });
  }
  Bytes bytes() {
    std::lock_guard lock(mutex_);
    return bytes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  Bytes bytes_;
  std::string name_ = "<watched>";
};

void write_all(int fd, ByteView bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("write to the test pipe failed");
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

// Through a real pipe: the writer sends the first part, flushed, and sends the rest only once its
// output came out (or a minute passed: then the test fails instead of hanging). gzip -dc and
// zstd -dc wait for a full buffer (256 KiB, 128 KiB) before they decode what came.
TEST(ArrivingStreams, WhatArrivedIsWrittenBeforeTheWriterSendsMore) {
  for (const std::size_t first_bytes : {std::size_t{40}, std::size_t{3'500'000}}) {
    Bytes first = text_bytes(first_bytes, 11);
    const Bytes noise = testing::random_bytes(first_bytes / 2, 12);
    first.insert(first.end(), noise.begin(), noise.end());
    const Bytes second = text_bytes(50'000, 13);
    Bytes input = first;
    input.insert(input.end(), second.begin(), second.end());
    for (const char* codec : {"gzip", "zstd", "lz4"}) {
      Bytes head, tail;
      if (std::string(codec) == "gzip") {  // one member, sync-flushed
        const auto [packed, ends] = flushed_gzip({first, second});
        head.assign(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(ends[0]));
        tail.assign(packed.begin() + static_cast<std::ptrdiff_t>(ends[0]), packed.end());
      } else {  // whole frames, then more frames
        CompressOptions options;
        options.codec = codec;
        head = to_bytes(compress_buffer(view(first), options));
        tail = to_bytes(compress_buffer(view(second), options));
      }
      for (const int threads : {1, 2}) {
        SCOPED_TRACE(fmt::format("{}, {} bytes first, -j{}", codec, first.size(), threads));
        int fds[2];
        ASSERT_EQ(::pipe(fds), 0);
        WatchedSink sink;
        bool arrived = false;
        std::thread writer([&] {
          write_all(fds[1], view(head));
          arrived = sink.wait_for(first.size(), std::chrono::seconds(60));
          write_all(fds[1], view(tail));
          ::close(fds[1]);
        });
        FdSource source(fds[0], "<pipe>");
        DecompressOptions options;
        options.threads = threads;
        try {
          decompress(source, sink, options);
        } catch (const std::exception& e) {
          ADD_FAILURE() << e.what();
        }
        // Whatever happened, the writer's bytes are read to the end, so that it never waits on
        // a full pipe.
        std::uint8_t rest[65536];
        while (::read(fds[0], rest, sizeof rest) > 0) {
        }
        writer.join();
        ::close(fds[0]);
        EXPECT_TRUE(arrived) << "the first part's output waited for more input";
        EXPECT_TRUE(sink.bytes() == input);
      }
    }
  }
}

// The push API: what was written so far is decoded and written out before the next write comes
// (a protocol that waits for the answer to what it sent).
TEST(ArrivingStreams, ADecompressorWritesOutWhatItWasGivenBeforeTheNextWrite) {
  const Bytes first = text_bytes(30'000, 21), second = text_bytes(30'000, 22);
  Bytes input = first;
  input.insert(input.end(), second.begin(), second.end());
  const auto [packed, ends] = flushed_gzip({first, second});
  WatchedSink sink;
  Decompressor decompressor(sink);
  decompressor.write(view(packed).first(ends[0]));
  EXPECT_TRUE(sink.wait_for(first.size(), std::chrono::seconds(60))) << "the first part waited for the second";
  decompressor.write(view(packed).subspan(ends[0]));
  decompressor.finish();
  EXPECT_TRUE(sink.bytes() == input);
}

// No bytes at all: an error by default (gzip -d: "unexpected end of file"), nothing where the
// caller asks (Python's gzip module's way); one byte is not nothing.
TEST(SourceAbilities, EmptyInputIsEmptyOutputOnlyWhereAsked) {
  MemorySource empty(ByteView{});
  MemorySink sink;
  try {
    decompress(empty, sink);
    ADD_FAILURE() << "empty input decoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruptData);
  }
  DecompressOptions options;
  options.empty_input_is_empty = true;
  MemorySource again(ByteView{});
  EXPECT_EQ(decompress(again, sink, options).output_bytes, 0u);
  const std::uint8_t one[] = {0x1f};
  MemorySource one_byte(ByteView{one, 1});
  EXPECT_THROW(decompress(one_byte, sink, options), Error);
  EXPECT_EQ(sink.buffer().size(), 0u);
}

// A stream that begins with a skippable frame, whose writer pauses just after it: zstd and lz4
// streams both may begin so, and only the frame after it tells which this is.
TEST(ArrivingStreams, ASkippableFrameDoesNotTellTheFormat) {
  const Bytes input = text_bytes(100'000, 23);
  for (const char* codec : {"lz4", "zstd"}) {
    CompressOptions options;
    options.codec = codec;
    Bytes packed = skippable_frame(20);
    const Bytes frames = to_bytes(compress_buffer(view(input), options));
    packed.insert(packed.end(), frames.begin(), frames.end());
    for (const std::uint64_t quiet : {std::uint64_t{6}, std::uint64_t{28}, std::uint64_t{30}}) {
      SCOPED_TRACE(fmt::format("{}, pause at {}", codec, quiet));
      ArrivingSource source(view(packed), 100'000, {quiet});
      MemorySink sink;
      const DecompressStats stats = decompress(source, sink);
      EXPECT_EQ(stats.codec, codec);
      EXPECT_TRUE(to_bytes(sink.buffer()) == input);
    }
  }
}

// A stop while the decoder waits for a silent writer ends the run within moments (a read that
// waits cannot see it): before anything came, and once it decodes what arrives. If the run has
// not ended a minute after the stop, the writer closes the pipe, so the test fails, not hangs.
TEST(ArrivingStreams, AStopWhileTheWriterIsSilentEndsTheRun) {
  const Bytes first = text_bytes(20'000, 24);
  const auto [packed, ends] = flushed_gzip({first, text_bytes(1000, 25)});
  for (const bool sent_first : {false, true}) {
    SCOPED_TRACE(sent_first ? "after the first part" : "before anything came");
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    if (sent_first) write_all(fds[1], view(packed).first(ends[0]));
    WatchedSink sink;
    std::stop_source stop;
    std::mutex mutex;
    std::condition_variable changed;
    bool ended = false, ended_in_time = false;
    std::thread stopper([&] {
      if (sent_first) {
        EXPECT_TRUE(sink.wait_for(first.size(), std::chrono::seconds(60)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // waiting for the writer by now
      stop.request_stop();
      std::unique_lock lock(mutex);
      ended_in_time = changed.wait_for(lock, std::chrono::seconds(60), [&] { return ended; });
      lock.unlock();
      ::close(fds[1]);
    });
    FdSource source(fds[0], "<pipe>");
    DecompressOptions options;
    options.threads = 2;
    options.stop = stop.get_token();
    std::optional<ErrorKind> kind;
    try {
      decompress(source, sink, options);
    } catch (const Error& e) {
      kind = e.kind();
    }
    {
      std::lock_guard lock(mutex);
      ended = true;
    }
    changed.notify_all();
    stopper.join();
    ::close(fds[0]);
    EXPECT_TRUE(ended_in_time) << "the run went on waiting for the writer after the stop";
    EXPECT_EQ(kind, ErrorKind::kCancelled);
  }
}

}  // namespace
}  // namespace sluice
