#include "tests/test_support.h"

#include <sys/resource.h>
#include <sys/wait.h>
#include <zlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

namespace sluice::testing {
namespace fs = std::filesystem;

namespace {
std::uint64_t next_random(std::uint64_t& state) {
  state += 0x9E3779B97F4A7C15ull;  // splitmix64
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}
}  // namespace

Bytes random_bytes(std::size_t size, std::uint64_t seed) {
  Bytes bytes(size);
  std::uint64_t state = seed;
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t r = next_random(state);
    for (std::size_t j = 0; j < 8 && i + j < size; ++j) bytes[i + j] = static_cast<std::uint8_t>(r >> (8 * j));
  }
  return bytes;
}

Bytes text_bytes(std::size_t size, std::uint64_t seed) {
  static constexpr std::array<const char*, 16> kWords = {"flow ", "graph ", "chunk ", "sluice ", "the ", "of ",
                                                         "compress ", "data\n", "zstd ", "gzip ", "lz4 ", "and ",
                                                         "12345 ", "order ", "writer ", "token "};
  Bytes bytes;
  bytes.reserve(size + 16);
  std::uint64_t state = seed;
  while (bytes.size() < size) {
    const char* word = kWords[next_random(state) % kWords.size()];
    bytes.insert(bytes.end(), word, word + std::char_traits<char>::length(word));
  }
  bytes.resize(size);
  return bytes;
}

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

Bytes read_file(const fs::path& path) {
  const std::string text = slurp(path);
  return {text.begin(), text.end()};
}

ScratchDir::ScratchDir() {
  static std::atomic<int> counter{0};
  path_ = fs::path(SLUICE_TEST_WORK_DIR) / fmt::format("{}-{}", ::getpid(), counter++);
  fs::remove_all(path_);
  fs::create_directories(path_);
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  // Restore permissions a test may have removed, so the directory can be deleted.
  for (auto it = fs::recursive_directory_iterator(path_, ignored); it != fs::recursive_directory_iterator(); ++it) {
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ignored);
  }
  fs::remove_all(path_, ignored);
}

std::vector<std::string> ScratchDir::listing() const {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(path_)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'') quoted += "'\\''";
    else quoted += c;
  }
  return quoted + "'";
}

CommandResult run(const std::string& command, const fs::path& directory) {
  static std::atomic<int> counter{0};
  const fs::path capture = fs::path(SLUICE_TEST_WORK_DIR) / fmt::format("capture-{}-{}", ::getpid(), counter++);
  fs::create_directories(capture);
  const std::string script = fmt::format("cd {} && {{ {} ; }} </dev/null >{} 2>{}", quote(directory.string()),
                                         command, quote((capture / "out").string()),
                                         quote((capture / "err").string()));
  const int raw = std::system(fmt::format("bash -c {}", quote(script)).c_str());
  CommandResult result;
  if (WIFEXITED(raw)) result.status = WEXITSTATUS(raw);
  else if (WIFSIGNALED(raw)) result.status = 128 + WTERMSIG(raw);
  result.out = slurp(capture / "out");
  result.err = slurp(capture / "err");
  fs::remove_all(capture);
  return result;
}

std::string source_file(const std::string& relative) {
  return quote((fs::path(SLUICE_SOURCE_DIR) / relative).string());
}

std::string sluice() {
#ifdef SLUICE_BINARY
  return quote(SLUICE_BINARY);
#else
  throw std::runtime_error("the sluice program was not built");
#endif
}

fs::path corpus_dir() {
  static std::once_flag once;
  static fs::path dir;
  std::call_once(once, [] {
    const fs::path unpack = fs::path(SLUICE_SOURCE_DIR) / ".." / "shared" / "corpus" / "unpack";
    if (!fs::exists(unpack) || std::getenv("SLUICE_TEST_NO_CORPUS") != nullptr) return;
    const fs::path target = fs::path(SLUICE_TEST_WORK_DIR) / "corpus";
    fs::create_directories(target);
    // Test processes run in parallel: one unpacks while the others wait on the lock.
    const std::string command = fmt::format("flock {} {} {} >/dev/null", quote((target / ".lock").string()),
                                            quote(unpack.string()), quote(target.string()));
    if (std::system(command.c_str()) == 0) dir = target;
  });
  return dir;
}

std::string describe(const CommandResult& result) {
  return fmt::format("status {}, stdout: {}, stderr: {}", result.status, result.out, result.err);
}

long CommandTest::sluice_peak_kib(const std::string& args) {
  // sluice's stdout goes nowhere; its stderr and then time's line come back.
  const auto r = sh(fmt::format("/usr/bin/time -f %M {} {} 2>&1 >/dev/null", sluice::testing::sluice(), args));
  EXPECT_EQ(r.status, 0) << describe(r);
  return std::atol(r.out.substr(r.out.rfind('\n', r.out.size() - 2) + 1).c_str());
}

long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

namespace {

// Deflates all of `input` with `stream` (initialised) into at most `room` bytes, and ends it.
Bytes deflate_all(z_stream& stream, const Bytes& input, std::size_t room) {
  Bytes packed(room);
  stream.next_in = const_cast<Bytef*>(input.data());
  stream.avail_in = static_cast<uInt>(input.size());
  stream.next_out = packed.data();
  stream.avail_out = static_cast<uInt>(packed.size());
  const int ret = deflate(&stream, Z_FINISH);
  packed.resize(stream.total_out);
  deflateEnd(&stream);
  if (ret != Z_STREAM_END) throw std::runtime_error("deflate");
  return packed;
}

}  // namespace

Bytes gzip_with_header_fields(const Bytes& input, std::string extra, std::string name, std::string comment) {
  z_stream stream{};
  if (deflateInit2(&stream, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
  gz_header header{};
  header.extra = reinterpret_cast<Bytef*>(extra.data());
  header.extra_len = static_cast<uInt>(extra.size());
  header.name = reinterpret_cast<Bytef*>(name.data());
  header.comment = reinterpret_cast<Bytef*>(comment.data());
  header.hcrc = 1;
  if (deflateSetHeader(&stream, &header) != Z_OK) throw std::runtime_error("deflateSetHeader");
  return deflate_all(
      stream, input,
      deflateBound(&stream, static_cast<uLong>(input.size())) + extra.size() + name.size() + comment.size() + 64);
}

Bytes raw_deflate(const Bytes& input, int level, int mem_level) {
  z_stream stream{};
  if (deflateInit2(&stream, level, Z_DEFLATED, -15, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("deflateInit2");
  }
  return deflate_all(stream, input, deflateBound(&stream, static_cast<uLong>(input.size())));
}

}  // namespace sluice::testing
