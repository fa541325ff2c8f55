// File naming and safety rules for the command; the work itself is the library's.
#include "apps/file_jobs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <fmt/format.h>

#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice::app {
namespace {

constexpr const char* kStdinName = "<stdin>";
constexpr const char* kStdoutName = "<stdout>";

struct Outcome {
  std::uint64_t input_bytes = 0;
  std::uint64_t output_bytes = 0;
  double seconds = 0;
};

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (1u << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024);
  if (bytes < (1u << 30)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30));
}

// Suffixes that stand for ".tar" plus a compression suffix.
struct TarAlias {
  const char* suffix;
  const char* replacement;
};
constexpr TarAlias kTarAliases[] = {{".tgz", ".tar"}, {".taz", ".tar"}, {".tzst", ".tar"}, {".tlz4", ".tar"}};

// The name a compressed file decompresses to, or nothing if its suffix is not ours.
std::optional<std::string> decompressed_name(const std::string& path) {
  for (const auto& alias : kTarAliases) {
    if (path.size() > std::strlen(alias.suffix) && path.ends_with(alias.suffix)) {
      return path.substr(0, path.size() - std::strlen(alias.suffix)) + alias.replacement;
    }
  }
  if (const auto info = CodecRegistry::global().by_extension(path)) {
    return path.substr(0, path.size() - info->extension.size());
  }
  return std::nullopt;
}

bool same_file(const struct stat& a, const std::string& path) {
  struct stat b {};
  return ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

class FileJobs {
 public:
  explicit FileJobs(const CliOptions& options) : options_(options) {
    compress_options_.codec = options.format;
    compress_options_.codec_options.level = options.level;
    compress_options_.codec_options.chunk_bytes = options.chunk_bytes;
    compress_options_.threads = options.threads;
    decompress_options_.threads = options.threads;
  }

  // Checks the options that do not depend on any file. Throws kUsage.
  void validate() const {
    if (options_.mode == Mode::kCompress) {
      (void)CodecRegistry::global().create(compress_options_.codec, compress_options_.codec_options);
    }
    if (!options_.output_path.empty() && options_.to_stdout) {
      throw Error(ErrorKind::kUsage, "-o and -c cannot be used together");
    }
    if (!options_.output_path.empty() && options_.files.size() > 1) {
      throw Error(ErrorKind::kUsage, "-o takes one input file; use -c to concatenate several");
    }
    if (writes_stdout(options_.files.empty() ? "-" : options_.files.front()) &&
        options_.mode == Mode::kCompress && !options_.force && ::isatty(STDOUT_FILENO)) {
      throw Error(ErrorKind::kIo, "refusing to write compressed data to a terminal (use -f to force)");
    }
  }

  // Returns true on success; reports the failure and returns false otherwise.
  bool run_one(const std::string& path) {
    try {
      const Outcome outcome = options_.mode == Mode::kCompress ? compress_one(path) : decompress_one(path);
      if (options_.verbose && !options_.quiet) report(path, outcome);
      return true;
    } catch (const Error& e) {
      fmt::print(stderr, "sluice: {}\n", e.what());
      return false;
    }
  }

 private:
  bool writes_stdout(const std::string& path) const {
    return options_.to_stdout || (path == "-" && options_.output_path.empty());
  }

  Outcome compress_one(const std::string& path) {
    if (path == "-") {
      FdSource source(STDIN_FILENO, kStdinName);
      return write_output(source, /*output_path=*/options_.output_path, nullptr,
                          [&](ByteSink& sink) { return compress_stats(source, sink, StreamInfo{}); });
    }
    FdSource source(path);
    const std::string extension = CodecRegistry::global().find(compress_options_.codec)->extension;
    std::string output_path = options_.output_path;
    if (!writes_stdout(path) && output_path.empty()) {
      if (path.ends_with(extension)) {
        throw Error(ErrorKind::kIo, fmt::format("already has the {} suffix; left unchanged", extension), path);
      }
      output_path = path + extension;
    }
    if (!S_ISREG(source.status().st_mode) && !writes_stdout(path) && options_.output_path.empty()) {
      throw Error(ErrorKind::kIo, "not a regular file; use -c or -o to compress it", path);
    }
    StreamInfo info;
    if (!options_.no_name) {
      info.name = std::filesystem::path(path).filename().string();
      info.mtime_seconds = source.status().st_mtim.tv_sec;
    }
    return write_output(source, output_path, &source.status(),
                        [&](ByteSink& sink) { return compress_stats(source, sink, info); });
  }

  Outcome decompress_one(const std::string& path) {
    if (path == "-") {
      FdSource source(STDIN_FILENO, kStdinName);
      return write_output(source, options_.output_path, nullptr,
                          [&](ByteSink& sink) { return decompress_stats(source, sink); });
    }
    FdSource source(path);
    std::string output_path = options_.output_path;
    if (!writes_stdout(path) && output_path.empty()) {
      const auto name = decompressed_name(path);
      if (!name) {
        throw Error(ErrorKind::kIo, "unknown suffix (expected .gz, .zst, .lz4 ...); use -c or -o", path);
      }
      output_path = *name;
    }
    return write_output(source, output_path, &source.status(),
                        [&](ByteSink& sink) { return decompress_stats(source, sink); });
  }

  Outcome compress_stats(ByteSource& source, ByteSink& sink, const StreamInfo& info) {
    const CompressStats stats = compress(source, sink, compress_options_, info);
    return {stats.input_bytes, stats.output_bytes, stats.seconds};
  }

  Outcome decompress_stats(ByteSource& source, ByteSink& sink) {
    const DecompressStats stats = decompress(source, sink, decompress_options_);
    return {stats.input_bytes, stats.output_bytes, stats.seconds};
  }

  // Runs `work` into stdout or into `output_path` (atomically), then removes the input if asked.
  template <typename Work>
  Outcome write_output(FdSource& source, const std::string& output_path, const struct stat* input_status,
                       Work&& work) {
    if (output_path.empty()) {
      FdSink sink(STDOUT_FILENO, kStdoutName);
      return work(sink);
    }
    if (input_status && same_file(*input_status, output_path)) {
      throw Error(ErrorKind::kIo, "input and output are the same file", output_path);
    }
    OutputFile output(output_path, options_.force);
    if (input_status) output.preserve_metadata_of(*input_status);
    const Outcome outcome = work(output);
    output.commit();
    if (options_.remove_input && input_status && !options_.to_stdout) {
      if (::unlink(source.name().c_str()) != 0) throw_system_error("cannot remove input after success", source.name());
    }
    return outcome;
  }

  void report(const std::string& path, const Outcome& outcome) const {
    const std::uint64_t raw = options_.mode == Mode::kCompress ? outcome.input_bytes : outcome.output_bytes;
    const std::uint64_t packed = options_.mode == Mode::kCompress ? outcome.output_bytes : outcome.input_bytes;
    const double ratio = raw ? 100.0 * static_cast<double>(packed) / static_cast<double>(raw) : 100.0;
    const double rate = outcome.seconds > 0 ? static_cast<double>(raw) / outcome.seconds / 1e6 : 0;
    fmt::print(stderr, "{}: {} -> {} ({:.2f}%), {:.1f} MB/s\n", path == "-" ? kStdinName : path,
               human_bytes(options_.mode == Mode::kCompress ? raw : packed),
               human_bytes(options_.mode == Mode::kCompress ? packed : raw), ratio, rate);
  }

  const CliOptions& options_;
  CompressOptions compress_options_;
  DecompressOptions decompress_options_;
};

}  // namespace

int run_file_jobs(const CliOptions& options) {
  CliOptions resolved = options;
  if (resolved.files.empty()) {
    if (::isatty(STDIN_FILENO)) {
      fmt::print(stderr, "sluice: no input files and standard input is a terminal\nTry 'sluice --help'.\n");
      return 2;
    }
    resolved.files.push_back("-");
  }
  FileJobs jobs(resolved);
  try {
    jobs.validate();
  } catch (const Error& e) {
    fmt::print(stderr, "sluice: {}\n", e.what());
    return e.kind() == ErrorKind::kUsage ? 2 : 1;
  }
  int failures = 0;
  for (const auto& path : resolved.files) {
    if (!jobs.run_one(path)) ++failures;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace sluice::app
