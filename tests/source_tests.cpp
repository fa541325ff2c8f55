// What a source can do beyond read(): a regular file is mapped by the graphs, has a size and reads
// at any offset; wrappers (counting, a replayed prefix, a caller's own) keep those abilities by
// forwarding them, so every command that reads a regular file gets the mapped path.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fmt/format.h>

#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"
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

}  // namespace
}  // namespace sluice
