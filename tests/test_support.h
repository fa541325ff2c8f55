// Helpers shared by the tests: deterministic data, scratch directories, running commands.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/bytes.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice::testing {

using Bytes = std::vector<std::uint8_t>;

// Incompressible bytes.
Bytes random_bytes(std::size_t size, std::uint64_t seed = 1);
// Text-like, compressible bytes (words drawn from a small vocabulary).
Bytes text_bytes(std::size_t size, std::uint64_t seed = 1);

inline ByteView view(const Bytes& bytes) { return {bytes.data(), bytes.size()}; }
inline Bytes to_bytes(const Buffer& buffer) { return {buffer.data(), buffer.data() + buffer.size()}; }
inline Bytes to_bytes(const std::string& text) { return {text.begin(), text.end()}; }

void write_file(const std::filesystem::path& path, const Bytes& bytes);
Bytes read_file(const std::filesystem::path& path);

// A fresh directory under the build tree, removed when the test ends.
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  // File names in the directory, sorted (to check that nothing stray was left behind).
  std::vector<std::string> listing() const;

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int status = -1;  // exit status, or 128 + signal number
  std::string out;
  std::string err;
};

// Runs `command` with bash in `directory`; stdin is /dev/null unless the command redirects it.
CommandResult run(const std::string& command, const std::filesystem::path& directory);

// "status N, stdout: ..., stderr: ..." for assertion messages.
std::string describe(const CommandResult& result);

// Single-quotes `text` for bash.
std::string quote(const std::string& text);

// Path of the built `sluice` program, quoted for the shell.
std::string sluice();

// Path of a file in the source tree ("tests/http_gzip_readers.py"), quoted for the shell.
std::string source_file(const std::string& relative);

// A test that runs commands (the `sluice` program, the stock tools) in a scratch directory of its
// own, removed when the test ends.
class CommandTest : public ::testing::Test {
 protected:
  // Runs `command` with bash in the scratch directory.
  CommandResult sh(const std::string& command) { return run(command, dir_.path()); }
  // Runs `sluice ARGS` there.
  CommandResult sluice(const std::string& args) { return sh(sluice::testing::sluice() + " " + args); }
  // Runs `sluice ARGS` there under /usr/bin/time, expecting success: its peak RSS in KiB.
  long sluice_peak_kib(const std::string& args);
  // Runs Debian's Python with `code` there (inputs the stock tools cannot make).
  CommandResult run_python(const std::string& code) { return sh("/usr/bin/python3 -c " + quote(code)); }
  // Writes (creating parent directories) and reads files under the scratch directory.
  void put(const std::string& name, const Bytes& bytes) {
    std::filesystem::create_directories((dir_ / name).parent_path());
    write_file(dir_ / name, bytes);
  }
  Bytes get(const std::string& name) { return read_file(dir_ / name); }

  ScratchDir dir_;
};

// A sink that fails (kIo, "write failed: No space left on device") once more than `limit` bytes
// have been written: a disk filling up.
class FailingSink final : public ByteSink {
 public:
  explicit FailingSink(std::size_t limit, std::string name = "full-disk.out") : limit_(limit), name_(std::move(name)) {}
  void write(ByteView bytes) override {
    written_ += bytes.size();
    if (written_ > limit_) throw Error(ErrorKind::kIo, "write failed: No space left on device", name_);
  }
  const std::string& name() const override { return name_; }

 private:
  std::size_t limit_;
  std::size_t written_ = 0;
  std::string name_;
};

// The process's peak resident set so far, in KiB (getrusage).
long peak_rss_kib();

// One gzip member of `input` (zlib, level 6) with every optional header field: FEXTRA (`extra`),
// FNAME, FCOMMENT and FHCRC.
Bytes gzip_with_header_fields(const Bytes& input, std::string extra, std::string name, std::string comment);

// Raw deflate as zlib writes it at `level` (no header, no trailer), ending with a final block.
Bytes raw_deflate(const Bytes& input, int level, int mem_level = 8);

// Directory holding the unpacked Silesia corpus, or empty when the corpus is not available or
// SLUICE_TEST_NO_CORPUS is set (the sanitizer job: the corpus interop runs in release).
std::filesystem::path corpus_dir();

}  // namespace sluice::testing
