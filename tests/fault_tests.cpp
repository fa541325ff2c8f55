// Faults from outside the program, each with its promise: a write that fails mid-stream, a full
// device, an input that shrinks, grows, is replaced or vanishes while read, SIGINT and SIGTERM in
// the middle of every kind of run, and a batch far larger than the descriptor limit. In every
// case: a clear error (or the signal's exit status), no output published half-written, no
// temporary left behind, and inputs untouched.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fmt/format.h>

#include "sluice/batch.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/io.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::describe;
using testing::random_bytes;
using testing::read_file;
using testing::text_bytes;
using testing::write_file;

class Faults : public testing::CommandTest {
 protected:
  // Names (recursively, relative) of everything under the scratch directory, sorted.
  std::vector<std::string> tree() {
    std::vector<std::string> names;
    for (const auto& entry : fs::recursive_directory_iterator(dir_.path())) {
      names.push_back(entry.path().lexically_relative(dir_.path()).string());
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  void expect_tree(std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    EXPECT_EQ(tree(), names);
  }
  void expect_no_temporaries() {
    for (const auto& name : tree()) EXPECT_EQ(name.find(".sluice-"), std::string::npos) << name;
  }
};

// ---- Writes that fail ----

// `ulimit -f` makes every write past 1 MiB fail with EFBIG (SIGXFSZ ignored, so the process sees
// the error instead of dying): a write error in the middle of a stream, like a disk filling up.
const std::string kWriteLimit = "trap '' XFSZ; ulimit -f 1024; ";

TEST_F(Faults, AWriteThatFailsMidStreamLeavesNoOutputForEveryCommand) {
  const Bytes data = random_bytes(6 << 20, 1);
  put("data.bin", data);
  ASSERT_EQ(sh("zstd -q -T2 -c data.bin > data.zst && mkdir tree && cp data.bin tree/").status, 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"-F gzip -o out.gz data.bin", "out.gz: write failed: File too large"},
      {"-F zstd -o out.zst data.bin", "out.zst: write failed: File too large"},
      {"-F lz4 -j 1 -o out.lz4 data.bin", "out.lz4: write failed: File too large"},
      {"-d -o out.bin data.zst", "out.bin: write failed: File too large"},
      {"-r -F lz4 --output-dir outdir tree", "outdir/tree/data.bin.lz4: write failed: File too large"},
      {"tar -c -F zstd -f out.tar.zst tree", "out.tar.zst: write failed: File too large"},
      {"tar -c -F none -f - tree > out.tar", "<stdout>: write failed: File too large"},
      {"transcode data.zst -o out.gz", "out.gz: write failed: File too large"},
  };
  for (const auto& [args, message] : cases) {
    const auto r = sh(kWriteLimit + testing::sluice() + " " + args);
    EXPECT_EQ(r.status, 1) << args << ": " << describe(r);
    EXPECT_NE(r.err.find(message), std::string::npos) << args << ": " << r.err;
    fs::remove(dir_ / "out.tar");  // the shell, not sluice, creates a redirected stdout
    fs::remove_all(dir_ / "outdir");
    expect_tree({"data.bin", "data.zst", "tree", "tree/data.bin"});
  }
  EXPECT_EQ(get("data.bin"), data);
  EXPECT_EQ(get("tree/data.bin"), data);
}

TEST_F(Faults, ExtractingOntoAFailingDiskNamesTheEntryAndKeepsWhatCameBefore) {
  put("src/a-small.txt", text_bytes(1000, 2));
  put("src/b-large.bin", random_bytes(3 << 20, 3));
  ASSERT_EQ(sluice("tar -c -F zstd -f arch.tar.zst src").status, 0);
  const auto r = sh(kWriteLimit + testing::sluice() + " tar -x -f arch.tar.zst -C out");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("src/b-large.bin"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
  EXPECT_EQ(get("out/src/a-small.txt"), get("src/a-small.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "out/src/b-large.bin"));
  expect_no_temporaries();
}

TEST_F(Faults, AFullDeviceIsAnErrorForEveryCommand) {
  put("data.bin", text_bytes(1 << 20, 4));
  ASSERT_EQ(sh("gzip -c data.bin > data.gz && mkdir tree && cp data.bin tree/").status, 0);
  for (const std::string args : {"-c data.bin", "-d -c data.gz", "tar -c -F gzip -f - tree", "transcode data.gz -F zstd -o -",
                                 "-r -c tree"}) {
    const auto r = sluice(args + " > /dev/full");
    EXPECT_EQ(r.status, 1) << args << ": " << describe(r);
    EXPECT_NE(r.err.find("write failed: No space left on device"), std::string::npos) << args << ": " << r.err;
  }
  expect_tree({"data.bin", "data.gz", "tree", "tree/data.bin"});
}

// ---- Inputs that change while they are read ----

// A batch of one file, compressed in 64 KiB chunks, whose progress callback (run as chunks are
// written, while the reader is further on) does something to the input once.
BatchReport compress_with_interference(const fs::path& input, const std::function<void()>& interfere,
                                       bool remove_input = false) {
  CompressOptions options;
  options.codec = "lz4";
  options.threads = 2;
  options.codec_options.chunk_bytes = 64 * 1024;
  FileBatchOptions batch;
  batch.remove_inputs = remove_input;
  bool done = false;
  batch.on_progress = [&](std::uint64_t) {
    if (!std::exchange(done, true)) interfere();
  };
  return compress_files({{input.string(), input.string() + ".lz4"}}, options, batch);
}

Bytes decode_lz4(const fs::path& path) {
  DecompressOptions options;
  options.codec = "lz4";
  return testing::to_bytes(decompress_buffer(testing::view(read_file(path)), options));
}

TEST_F(Faults, AnInputThatShrinksWhileReadFailsWithoutOutput) {
  const fs::path input = dir_ / "log.txt";
  write_file(input, text_bytes(32 << 20, 5));
  const auto report = compress_with_interference(input, [&] { fs::resize_file(input, 1000); });
  ASSERT_EQ(report.items.size(), 1u);
  const auto& item = report.items[0];
  ASSERT_EQ(item.status, ItemStatus::kFailed);
  ASSERT_TRUE(item.error.has_value());
  EXPECT_EQ(item.error->kind(), ErrorKind::kIo);
  EXPECT_EQ(item.error->path(), input.string());
  EXPECT_NE(item.error->detail().find("file shrank while being read (it had 33554432 bytes when opened)"),
            std::string::npos)
      << item.error->what();
  expect_tree({"log.txt"});
}

TEST_F(Faults, AnInputAppendedToWhileReadIsKeptEvenWithRemoveInputs) {
  const fs::path input = dir_ / "log.txt";
  const Bytes original = text_bytes(32 << 20, 6);
  write_file(input, original);
  const Bytes more = text_bytes(1000, 7);
  const auto report = compress_with_interference(
      input,
      [&] {
        std::FILE* f = std::fopen(input.c_str(), "ab");
        ASSERT_NE(f, nullptr);
        ASSERT_EQ(std::fwrite(more.data(), 1, more.size(), f), more.size());
        std::fclose(f);
      },
      /*remove_input=*/true);
  const auto& item = report.items.at(0);
  ASSERT_EQ(item.status, ItemStatus::kFailed);
  EXPECT_NE(std::string(item.error->what()).find("the input changed while it was read, so it was kept"),
            std::string::npos)
      << item.error->what();
  Bytes grown = original;
  grown.insert(grown.end(), more.begin(), more.end());
  EXPECT_EQ(read_file(input), grown) << "the input is kept whole";
  EXPECT_EQ(decode_lz4(dir_ / "log.txt.lz4"), grown) << "a file that grows is read to its new end";
}

TEST_F(Faults, AnInputReplacedWhileReadIsNotTheOneRemoved) {
  const fs::path input = dir_ / "data.bin";
  const Bytes original = text_bytes(16 << 20, 8);
  const Bytes replacement = text_bytes(1000, 9);
  write_file(input, original);
  write_file(dir_ / "new.bin", replacement);
  const auto report =
      compress_with_interference(input, [&] { fs::rename(dir_ / "new.bin", input); }, /*remove_input=*/true);
  EXPECT_EQ(report.items.at(0).status, ItemStatus::kFailed);
  EXPECT_EQ(read_file(input), replacement) << "the file now at the input's name was never read: it stays";
  EXPECT_EQ(decode_lz4(dir_ / "data.bin.lz4"), original) << "the output is the file that was opened";
}

TEST_F(Faults, AnInputRemovedWhileReadIsStillCompressedWhole) {
  const fs::path input = dir_ / "data.bin";
  const Bytes original = text_bytes(16 << 20, 10);
  write_file(input, original);
  const auto report = compress_with_interference(input, [&] { fs::remove(input); });
  EXPECT_EQ(report.items.at(0).status, ItemStatus::kDone);
  EXPECT_EQ(decode_lz4(dir_ / "data.bin.lz4"), original) << "an open file stays readable when unlinked";
}

TEST(FdSourceShrink, ReadingPastTheNewEndOfATruncatedFileIsAnError) {
  testing::ScratchDir dir;
  const fs::path path = dir / "f";
  write_file(path, text_bytes(10000, 11));
  FdSource source(path.string());
  std::vector<std::uint8_t> buffer(4000);
  EXPECT_EQ(source.read_full(buffer.data(), buffer.size()), 4000u);
  fs::resize_file(path, 5000);
  try {
    source.read_full(buffer.data(), buffer.size());  // 1000 bytes, then the end: 5000 short
    ADD_FAILURE() << "the shrink went unnoticed";
  } catch (const Error& e) {
    EXPECT_EQ(e.offset(), 5000u);
    EXPECT_NE(e.detail().find("shrank"), std::string::npos) << e.what();
  }
  FdSource empty_now(path.string());  // a file opened at its new size is just shorter
  EXPECT_EQ(empty_now.read_full(buffer.data(), buffer.size()), 4000u);
  EXPECT_EQ(empty_now.read_full(buffer.data(), buffer.size()), 1000u);
  EXPECT_EQ(empty_now.read(buffer.data(), buffer.size()), 0u);
}

// ---- Signals ----

// Starts `command` in the background with job control on (so that SIGINT is not ignored, as it
// would be for a background job), waits until a sluice temporary appears under the scratch
// directory, sends `signal`, and prints "status N" with the command's exit status.
std::string interrupt(const std::string& command, const std::string& signal) {
  return fmt::format(
      "set -m; {} & pid=$!; "
      "for i in $(seq 400); do find . -name '*.sluice-*' | grep -q . && break; sleep 0.05; done; "
      "kill -{} $pid; wait $pid; echo \"status $?\"",
      command, signal);
}

TEST_F(Faults, SigintAndSigtermStopEveryKindOfRunAndPublishNothing) {
  const std::string s = testing::sluice();
  ASSERT_EQ(sh("mkdir tree && truncate -s 64G tree/huge && echo small > tree/small").status, 0);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {s + " -F lz4 -o endless.lz4 < /dev/zero", "INT"},
      {s + " -F zstd -c < /dev/zero | " + s + " -d -o endless.out", "TERM"},  // parallel decoding
      {"zstd -c < /dev/zero | " + s + " -d -o endless.out", "INT"},           // serial decoding
      {s + " -F zstd -c < /dev/zero | " + s + " transcode - -o endless.gz", "TERM"},
      {s + " tar -c -F gzip -f tree.tar.gz tree", "INT"},
      {s + " tar -c -F lz4 -f - tree | " + s + " tar -x -f - -C out", "TERM"},
      {s + " -r -F gzip --rm tree", "TERM"},
  };
  for (const auto& [command, signal] : cases) {
    const auto r = sh(interrupt(command, signal));
    EXPECT_NE(r.out.find(signal == "INT" ? "status 130" : "status 143"), std::string::npos)
        << command << ": " << describe(r);
    expect_no_temporaries();
    EXPECT_TRUE(fs::exists(dir_ / "tree/huge")) << command << ": the input must be untouched";
    EXPECT_EQ(fs::file_size(dir_ / "tree/huge"), 64ull << 30) << command;
    for (const char* never : {"endless.lz4", "endless.out", "endless.gz", "tree.tar.gz", "out/tree/huge",
                              "tree/huge.gz"}) {
      EXPECT_FALSE(fs::exists(dir_ / never)) << command << " published " << never;
    }
    // A batch publishes the files it finished before the signal, whole; nothing else.
    if (fs::exists(dir_ / "tree/small.gz")) {
      EXPECT_EQ(sh("gzip -dc tree/small.gz").out, "small\n");
    }
    fs::remove_all(dir_ / "out");
  }
}

TEST_F(Faults, AnIgnoredSignalStaysIgnoredAsUnderNohup) {
  // nohup (and a non-interactive shell's background jobs) start us with SIGHUP/SIGINT ignored.
  const auto r = sh(fmt::format(
      "trap '' HUP; {} -F lz4 -o endless.lz4 < /dev/zero & pid=$!; "
      "for i in $(seq 400); do ls -A | grep -q sluice- && break; sleep 0.05; done; "
      "kill -HUP $pid; sleep 0.3; kill -0 $pid && echo alive; kill -TERM $pid; wait $pid; echo \"status $?\"",
      testing::sluice()));
  EXPECT_NE(r.out.find("alive"), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("status 143"), std::string::npos) << describe(r);
  expect_tree({});
}

// ---- Descriptors ----

TEST_F(Faults, ABatchOfThreeThousandFilesNeedsFewDescriptors) {
  // Every command over 3000 files with at most 64 descriptors open: files are opened as the
  // in-flight bound admits them and closed as soon as they are done.
  for (int i = 0; i < 3000; ++i) put(fmt::format("many/{:04}.txt", i), text_bytes(100 + i % 500, i));
  const std::string limited = "ulimit -n 64 && " + testing::sluice();
  auto r = sh(limited + " -r -F zstd many");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(sh("ls many/*.zst | wc -l").out, "3000\n");
  EXPECT_EQ(sh("zstd -dc many/2999.txt.zst | cmp - many/2999.txt").status, 0);
  r = sh(limited + " -t many/*.zst");
  EXPECT_EQ(r.status, 0) << describe(r);
  r = sh(limited + " -d -r --output-dir back many");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(sh("diff -r -x '*.zst' many back/many").status, 0);
  r = sh(limited + " tar -c -F lz4 -f many.tar.lz4 many && " + limited + " tar -x -f many.tar.lz4 -C extracted");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(sh("diff -r many extracted/many").status, 0);
}

}  // namespace
}  // namespace sluice
