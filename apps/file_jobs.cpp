// The command's file conventions: which inputs, which output names, what is refused. The work
// itself is one library batch (one graph run for compression).
#include "apps/file_jobs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "apps/exit_status.h"
#include "apps/progress.h"
#include "sluice/batch.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice::app {
namespace {

namespace fs = std::filesystem;

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (1u << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024);
  if (bytes < (1u << 30)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30));
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// The name a compressed file decompresses to, or nothing if its suffix is not ours.
std::optional<std::string> decompressed_name(const std::string& path) {
  return CodecRegistry::global().decompressed_name(path);
}

// Turns the command line into batch jobs. Inputs that cannot even be planned (missing, a
// directory without -r, a name we cannot derive an output from) are failures of their own.
class Planner {
 public:
  explicit Planner(const CliOptions& options) : options_(options) {
    if (options.mode == Mode::kCompress) extension_ = CodecRegistry::global().find(options.format)->extension;
  }

  struct Failure {
    std::string input;
    Error error;
  };

  std::vector<FileJob> jobs;
  std::vector<Failure> failures;
  std::uint64_t total_bytes = 0;  // of the regular-file inputs, for the progress display

  void add(const std::string& arg) {
    if (arg == "-") {
      jobs.push_back({"-", options_.output_path});
      return;
    }
    struct stat status {};
    if (::stat(arg.c_str(), &status) != 0) {
      const int saved = errno;
      fail(arg, Error(ErrorKind::kIo, fmt::format("cannot open: {}", std::strerror(saved)), arg));
      return;
    }
    if (S_ISDIR(status.st_mode)) {
      if (!options_.recursive) {
        fail(arg, Error(ErrorKind::kIo, "is a directory (use -r to process what it holds)", arg));
        return;
      }
      walk(arg);
      return;
    }
    add_file(arg, status, /*from_walk=*/false);
  }

 private:
  void walk(const std::string& root) {
    std::vector<fs::path> files;
    std::error_code error;
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, error);
         !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
      if (it->is_regular_file() && !it->is_symlink()) files.push_back(it->path());
    }
    if (error) fail(root, Error(ErrorKind::kIo, fmt::format("cannot walk: {}", error.message()), root));
    std::sort(files.begin(), files.end());  // the same tree gives the same order
    for (const auto& file : files) {
      struct stat status {};
      if (::stat(file.c_str(), &status) == 0) add_file(file.string(), status, /*from_walk=*/true);
    }
  }

  void add_file(const std::string& path, const struct stat& status, bool from_walk) {
    const bool to_stdout = options_.to_stdout;
    if (!S_ISREG(status.st_mode) && !to_stdout && options_.output_path.empty() && options_.mode != Mode::kTest) {
      fail(path, Error(ErrorKind::kIo, "not a regular file; use -c or -o to process it", path));
      return;
    }
    const auto add_job = [&](std::string output) {
      if (S_ISREG(status.st_mode)) total_bytes += static_cast<std::uint64_t>(status.st_size);
      jobs.push_back({path, std::move(output)});
    };
    // Walking a tree to test or decompress, only compressed files (by suffix) are inputs, as -d
    // -r has always taken them; a file named on the command line is taken whatever its name.
    if (from_walk && options_.mode != Mode::kCompress && !decompressed_name(path)) return;
    if (options_.mode == Mode::kTest || to_stdout) return add_job("");  // checked only, or to stdout
    std::string output;
    if (!options_.output_path.empty()) {
      output = options_.output_path;
    } else if (options_.mode == Mode::kCompress) {
      if (path.ends_with(extension_)) {
        if (!from_walk) {
          fail(path, Error(ErrorKind::kIo, fmt::format("already has the {} suffix; left unchanged", extension_), path));
        }
        return;  // walking a tree: compressed files are simply not inputs
      }
      output = placed(path) + extension_;
    } else {
      const auto name = decompressed_name(path);
      if (!name) {
        if (!from_walk) {
          fail(path, Error(ErrorKind::kIo,
                           fmt::format("unknown suffix (expected {} ...); use -c or -o", compressed_suffixes()), path));
        }
        return;
      }
      output = placed(*name);
    }
    const std::string key = fs::path(output).lexically_normal().string();
    const auto [it, inserted] = outputs_.emplace(key, path);
    if (!inserted) {
      fail(path, Error(ErrorKind::kIo, fmt::format("same output name as for {}: {}", it->second, output), path));
      return;
    }
    add_job(output);
  }

  // `name` placed under --output-dir, keeping its relative path.
  std::string placed(const std::string& name) {
    if (options_.output_dir.empty()) return name;
    fs::path relative = fs::path(name).lexically_normal();
    if (relative.is_absolute()) relative = relative.relative_path();
    if (!relative.empty() && *relative.begin() == "..") {
      // Outside the current directory: keep only the file name.
      relative = relative.filename();
    }
    return (fs::path(options_.output_dir) / relative).string();
  }

  void fail(const std::string& input, Error error) { failures.push_back({input, std::move(error)}); }

  const CliOptions& options_;
  std::string extension_;
  std::map<std::string, std::string> outputs_;  // normalised output path -> the input it is for
};

void check_usage(const CliOptions& options, bool writes_stdout) {
  if (options.mode == Mode::kCompress) {
    CodecOptions codec;
    codec.level = options.level;
    codec.chunk_bytes = options.chunk_bytes;
    apply_codec_flags(options.codec_flags, options.format, codec);
    (void)CodecRegistry::global().create(options.format, codec);
  }
  if (!options.output_path.empty() && options.to_stdout) throw Error(ErrorKind::kUsage, "-o and -c cannot be used together");
  if (!options.output_path.empty() && (options.files.size() > 1 || options.recursive)) {
    throw Error(ErrorKind::kUsage, "-o takes one input file; use --output-dir or -c for several");
  }
  if (!options.output_dir.empty() && (options.to_stdout || !options.output_path.empty())) {
    throw Error(ErrorKind::kUsage, "--output-dir cannot be used with -c or -o");
  }
  if (options.json && writes_stdout) {
    throw Error(ErrorKind::kUsage, "--json prints on standard output, which the data is going to");
  }
  if (writes_stdout && options.mode == Mode::kCompress && !options.force && ::isatty(STDOUT_FILENO)) {
    throw Error(ErrorKind::kIo, "refusing to write compressed data to a terminal (use -f to force)");
  }
}

const char* status_name(ItemStatus status) {
  switch (status) {
    case ItemStatus::kDone: return "ok";
    case ItemStatus::kFailed: return "error";
    case ItemStatus::kSkipped: return "skipped";
  }
  return "error";
}

}  // namespace

int run_file_jobs(const CliOptions& given) {
  CliOptions options = given;
  if (options.files.empty()) {
    if (::isatty(STDIN_FILENO)) {
      fmt::print(stderr, "sluice: no input files and standard input is a terminal\nTry 'sluice --help'.\n");
      return kExitUsage;
    }
    options.files.push_back("-");
  }
  const bool stdin_only = options.files.size() == 1 && options.files.front() == "-";
  const bool writes_stdout =
      options.mode != Mode::kTest && (options.to_stdout || (stdin_only && options.output_path.empty()));
  try {
    check_usage(options, writes_stdout);
  } catch (const Error& e) {
    return report_error("sluice", e);
  }

  Planner plan(options);
  for (const auto& arg : options.files) plan.add(arg);
  const std::size_t total_files = plan.jobs.size() + plan.failures.size();

  const bool reads_stdin =
      std::any_of(plan.jobs.begin(), plan.jobs.end(), [](const FileJob& job) { return job.input == "-"; });
  ProgressBar progress(progress_setup(options), total_files, known_input_bytes(plan.total_bytes, reads_stdin));
  std::vector<std::string> failed_inputs;
  std::size_t warnings = 0;
  const bool compressing = options.mode == Mode::kCompress;
  const auto report_item = [&](const ItemResult& item) {
    // Sizes as uncompressed (raw) and compressed (packed), whichever way the data went.
    const std::uint64_t raw = compressing ? item.input_bytes : item.output_bytes;
    const std::uint64_t packed = compressing ? item.output_bytes : item.input_bytes;
    if (item.status == ItemStatus::kFailed) {
      failed_inputs.push_back(item.input);
      progress.print(fmt::format("sluice: {}{}\n", item.error->what(), overwrite_hint(*item.error)));
    } else if (item.status == ItemStatus::kSkipped) {
      failed_inputs.push_back(item.input);
    }
    if (item.warning) {
      ++warnings;
      progress.print(fmt::format("sluice: warning: {}; ignored (the data before it was written)\n", item.warning->what()));
    }
    if (!item.ok()) {
      // reported above
    } else if (options.mode == Mode::kTest) {
      if (!options.quiet) {
        progress.print(fmt::format("{}: OK ({} -> {})\n", item.input == "-" ? "<stdin>" : item.input,
                                   human_bytes(item.input_bytes), human_bytes(item.output_bytes)));
      }
    } else if (options.verbose && !options.quiet) {
      const double ratio = raw ? 100.0 * static_cast<double>(packed) / static_cast<double>(raw) : 100.0;
      const double rate = item.seconds > 0 ? static_cast<double>(raw) / item.seconds / 1e6 : 0;
      progress.print(fmt::format("{}: {} -> {} ({:.2f}%), {:.1f} MB/s\n", item.input == "-" ? "<stdin>" : item.input,
                                 human_bytes(item.input_bytes), human_bytes(item.output_bytes), ratio, rate));
    }
    if (options.json) {
      std::string record = fmt::format("{{\"input\": {}, \"output\": {}, \"status\": \"{}\", \"input_bytes\": {}, "
                                       "\"output_bytes\": {}, \"seconds\": {:.6f}",
                                       json_string(item.input), json_string(item.output), status_name(item.status),
                                       item.input_bytes, item.output_bytes, item.seconds);
      if (raw > 0 && item.ok()) {  // compressed / uncompressed, in either direction
        record += fmt::format(", \"ratio\": {:.6f}", static_cast<double>(packed) / static_cast<double>(raw));
      }
      if (item.error) record += fmt::format(", \"error\": {}", json_string(item.error->what()));
      if (item.warning) record += fmt::format(", \"warning\": {}", json_string(item.warning->what()));
      fmt::print("{}}}\n", record);
      std::fflush(stdout);
    }
    progress.file_done();
  };

  // Inputs that could not be planned are failures too, reported first.
  for (const auto& failure : plan.failures) {
    ItemResult item;
    item.input = failure.input;
    item.status = ItemStatus::kFailed;
    item.error = failure.error;
    report_item(item);
  }

  FileBatchOptions batch;
  batch.overwrite = options.force;
  batch.durable = options.synchronous;
  batch.remove_inputs = options.remove_input;
  batch.store_name = !options.no_name;
  batch.fail_fast = options.fail_fast;
  batch.create_directories = !options.output_dir.empty();
  batch.discard_output = options.mode == Mode::kTest;
  batch.on_item_done = [&](std::size_t, const ItemResult& item) { report_item(item); };
  batch.on_progress = [&](std::uint64_t bytes) { progress.bytes_read(bytes); };
  batch.on_written = [&](std::uint64_t bytes) { progress.bytes_written(bytes); };
  batch.on_item_begin = [&](std::size_t i) { progress.item_begun(plan.jobs[i].input); };

  BatchReport report;
  if (options.fail_fast && !plan.failures.empty()) {
    for (const auto& job : plan.jobs) {
      ItemResult item;
      item.input = job.input;
      item.output = job.output;
      item.error = Error(ErrorKind::kCancelled, "skipped: the batch stopped at an earlier failure", job.input);
      report_item(item);
    }
  } else {
    try {
      if (compressing) {
        CompressOptions compress;
        compress.codec = options.format;
        compress.codec_options.level = options.level;
        compress.codec_options.chunk_bytes = options.chunk_bytes;
        apply_codec_flags(options.codec_flags, options.format, compress.codec_options);
        compress.threads = options.threads;
        report = compress_files(plan.jobs, compress, batch);
      } else {
        DecompressOptions decompress;
        decompress.threads = options.threads;
        decompress.max_output_bytes = options.max_output_bytes;
        decompress.backends = backend_flags(options.codec_flags);
        report = decompress_files(plan.jobs, decompress, batch);
      }
    } catch (const Error& e) {
      progress.print(fmt::format("sluice: {}\n", e.what()));
      return exit_status(e);
    }
  }
  progress.finish(summary_of(report, compressing, plan.failures.size()));

  const std::size_t failures = failed_inputs.size();
  if (options.json) {
    fmt::print("{{\"summary\": {{\"files\": {}, \"failed\": {}, \"input_bytes\": {}, \"output_bytes\": {}, "
               "\"seconds\": {:.6f}}}}}\n",
               total_files, failures, report.input_bytes, report.output_bytes, report.seconds);
  }
  if (options.verbose && !options.quiet && total_files > 1) {
    fmt::print(stderr, "{} files, {} -> {} in {:.2f} s\n", total_files - failures, human_bytes(report.input_bytes),
               human_bytes(report.output_bytes), report.seconds);
  }
  if (failures > 0 && total_files > 1) {
    constexpr std::size_t kNamed = 10;
    std::string names;
    for (std::size_t i = 0; i < std::min(failures, kNamed); ++i) names += (i ? ", " : "") + failed_inputs[i];
    if (failures > kNamed) names += fmt::format(", and {} more", failures - kNamed);
    fmt::print(stderr, "sluice: {} of {} files failed: {}\n", failures, total_files, names);
  }
  return exit_status(failures, warnings);
}

}  // namespace sluice::app
