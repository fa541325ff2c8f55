// The command's file conventions: which inputs, which output names, what is refused. The work
// itself is one library batch (one graph run for compression).
#include "apps/file_jobs.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <map>
#include <string_view>

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

// Whether the file at `path` starts like compressed data: a codec's stream, or another format's.
// A file that cannot be read (unreadable, gone since the walk) does not: it is then a job that
// fails alone, with what opening it says.
bool looks_compressed(const std::string& path) {
  std::uint8_t head[16];
  std::size_t got = 0;
  try {
    FdSource source(path);
    got = source.read_full(head, sizeof head);
  } catch (const Error&) {
    return false;
  }
  const ByteView prefix{head, got};
  return CodecRegistry::global().detect(prefix).has_value() || !foreign_format(prefix).empty();
}

// Turns the command line into batch jobs. Inputs that cannot even be planned (missing, a
// directory without -r, a name we cannot derive an output from) are failures of their own.
class Planner {
 public:
  explicit Planner(const CliOptions& options) : options_(options) {
    if (options.mode == Mode::kCompress) {
      const CodecInfo info = *CodecRegistry::global().find(options.format);
      extension_ = options.suffix.empty() ? info.extension : options.suffix;
      own_suffixes_ = {extension_};
      if (options.suffix.empty())
        own_suffixes_.insert(own_suffixes_.end(), info.tar_suffixes.begin(), info.tar_suffixes.end());
    }
    struct stat status {};
    if (!options.output_dir.empty() && ::stat(options.output_dir.c_str(), &status) == 0) {
      output_dir_ = std::pair{status.st_dev, status.st_ino};
    }
  }

  struct Failure {
    std::string input;
    Error error;
  };

  std::vector<FileJob> jobs;
  std::vector<Failure> failures;
  std::vector<std::string> warnings;  // found while planning, each an input's (its name first)
  // Files a walk to compress left out as compressed already: named with -v, counted by --json.
  std::vector<std::string> left_alone;
  std::size_t left_alone_count = 0;
  // Each job's and failure's position among the inputs (the command line's order, directories
  // expanded in sorted order): the "index" of --json records, which arrive as files complete.
  std::vector<std::size_t> job_positions, failure_positions;
  std::uint64_t total_bytes = 0;  // of the regular-file inputs, for the progress display

  void add(const std::string& arg) {
    if (arg == "-") {
      job_positions.push_back(next_position_++);
      jobs.push_back({"-", options_.output_path});
      return;
    }
    struct stat status {};
    if (arg.empty()) {  // named as '' (an Error's empty path is none: "cannot open: ...")
      fail(arg, Error(ErrorKind::kIo, "'': cannot open: No such file or directory (an empty file name)"));
      return;
    }
    if (::stat(arg.c_str(), &status) != 0) {
      const int saved = errno;
      fail(arg, Error(ErrorKind::kIo, fmt::format("cannot open: {}", std::strerror(saved)), arg));
      return;
    }
    if (S_ISDIR(status.st_mode) && !options_.recursive) {
      fail(arg, Error(ErrorKind::kIo, "is a directory (use -r to process what it holds)", arg));
      return;
    }
    if (refused_link(arg, status, /*named=*/true) || refused_special_bits(arg, status)) return;
    if (S_ISDIR(status.st_mode)) {
      std::vector<std::string> files;
      const std::size_t earlier_warnings = warnings.size();
      walk(arg, files);
      std::sort(files.begin(), files.end());  // the same tree gives the same order
      std::sort(warnings.begin() + static_cast<std::ptrdiff_t>(earlier_warnings), warnings.end());
      for (const auto& file : files) {
        struct stat file_status {};
        if (::stat(file.c_str(), &file_status) == 0) add_file(file, file_status, /*from_walk=*/true);
      }
      return;
    }
    add_file(arg, status, /*from_walk=*/false);
  }

  // An output that is another input of the run (x.gz.gz decoded to x.gz, which is decoded too; with
  // -N, a gzip header naming another input): which came first was up to the threads, and with -f
  // the input could be replaced before it was read, its data lost. That job is refused, named;
  // the input it reads is done. Called once every argument is added.
  void refuse_outputs_that_are_inputs() {
    if (std::none_of(jobs.begin(), jobs.end(), [](const FileJob& job) { return !job.output.empty(); }))
      return;  // -t, -l, -c: nothing is written under a name
    std::map<std::string, std::size_t> input_paths;
    std::map<std::pair<dev_t, ino_t>, std::size_t> input_files;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (jobs[i].input == "-") continue;
      input_paths.emplace(fs::absolute(jobs[i].input).lexically_normal().string(), i);
      struct stat status {};
      if (::stat(jobs[i].input.c_str(), &status) == 0) input_files.emplace(std::pair{status.st_dev, status.st_ino}, i);
    }
    std::vector<bool> refused(jobs.size(), false);
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (jobs[i].output.empty()) continue;
      auto other = input_paths.find(fs::absolute(jobs[i].output).lexically_normal().string());
      std::optional<std::size_t> input = other != input_paths.end() ? std::optional(other->second) : std::nullopt;
      struct stat status {};
      if (!input && ::stat(jobs[i].output.c_str(), &status) == 0) {
        if (const auto found = input_files.find({status.st_dev, status.st_ino}); found != input_files.end())
          input = found->second;
      }
      if (!input || *input == i) continue;
      refused[i] = true;
      fail(jobs[i].input,
           Error(ErrorKind::kIo,
                 fmt::format("its output {} is also an input of this run; left alone", printable_name(jobs[i].output)),
                 jobs[i].input));
      failure_positions.back() = job_positions[i];  // where it was among the inputs
    }
    std::size_t kept = 0;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      if (refused[i]) continue;
      if (kept != i) {  // not onto itself: a string moved onto itself is left empty
        jobs[kept] = std::move(jobs[i]);
        job_positions[kept] = job_positions[i];
      }
      ++kept;
    }
    jobs.resize(kept);
    job_positions.resize(kept);
  }

 private:
  // gzip's rules, for inputs whose output goes beside them (and -r's walk, which takes no link
  // it finds): a link named (to a file or, with -r, a directory) is followed only when asked, and
  // a file with other names is left alone (its other names would keep the data the user may
  // believe compressed away). A refused input is a failure of its own.
  bool refused_link(const std::string& path, const struct stat& status, bool named) {
    if (!writes_files() || options_.force) return false;
    struct stat link {};
    if (named && ::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
      fail(path, Error(ErrorKind::kIo, "is a symbolic link; use -f to take the file it points to", path));
      return true;
    }
    if (S_ISREG(status.st_mode) && status.st_nlink > 1) {
      fail(path, Error(ErrorKind::kIo,
                       fmt::format("has {} other link{}; use -f to take it", status.st_nlink - 1,
                                   status.st_nlink > 2 ? "s" : ""),
                       path));
      return true;
    }
    return false;
  }

  // No output gets setuid, setgid or sticky (copy_attributes_of): with --rm (and an output beside
  // it, under --output-dir or at -o) the bit would be gone for good, a binary's setuid after a
  // round trip, so the file is left, as gzip leaves it. -f takes it.
  bool refused_special_bits(const std::string& path, const struct stat& status) {
    if (!options_.remove_input || options_.force || options_.to_stdout || options_.mode == Mode::kTest ||
        options_.mode == Mode::kList || !S_ISREG(status.st_mode) || !(status.st_mode & (S_ISUID | S_ISGID | S_ISVTX))) {
      return false;
    }
    fail(path, Error(ErrorKind::kIo,
                     fmt::format("is {}: its output would not be, and --rm would lose it; use -f to take it",
                                 status.st_mode & S_ISUID   ? "set-user-ID"
                                 : status.st_mode & S_ISGID ? "set-group-ID"
                                                            : "sticky"),
                     path));
    return true;
  }

  // Outputs are files named after the inputs (not -c, -o, -t or -l).
  bool writes_files() const {
    return !options_.to_stdout && options_.output_path.empty() && options_.mode != Mode::kTest &&
           options_.mode != Mode::kList;
  }

  // The regular files under `directory`, not following symbolic links, leaving out the output
  // directory. A subdirectory that cannot be read is a failure of its own; the rest is walked.
  void walk(const std::string& directory, std::vector<std::string>& files) {
    std::error_code error;
    fs::directory_iterator it(directory, error);
    if (error) {
      fail(directory, Error(ErrorKind::kIo, fmt::format("cannot read directory: {}", error.message()), directory));
      return;
    }
    for (; !error && it != fs::directory_iterator(); it.increment(error)) {
      const fs::path path = it->path();
      struct stat status {};
      if (::lstat(path.c_str(), &status) != 0) continue;
      if (S_ISDIR(status.st_mode)) {
        if (output_dir_ && output_dir_->first == status.st_dev && output_dir_->second == status.st_ino) continue;
        walk(path.string(), files);
      } else if (S_ISREG(status.st_mode)) {
        files.push_back(path.string());
      } else {  // named, as gzip and pigz name them (zstd says nothing)
        warnings.push_back(fmt::format("{}: {}: left alone", printable_name(path.string()),
                                       S_ISLNK(status.st_mode) ? "is a symbolic link, which -r does not follow"
                                                               : "is not a regular file or a directory"));
      }
    }
    if (error)
      fail(directory, Error(ErrorKind::kIo, fmt::format("cannot read directory: {}", error.message()), directory));
  }

  // The name a compressed file decompresses to (the suffix -S names, or a codec's), if any.
  std::optional<std::string> decompressed_name(const std::string& path) const {
    const std::string& suffix = options_.suffix;
    if (!suffix.empty() && path.size() > suffix.size() && path.ends_with(suffix) && !path.ends_with("/" + suffix)) {
      return path.substr(0, path.size() - suffix.size());
    }
    return CodecRegistry::global().decompressed_name(path);
  }

  // -N: the name and time the stream's header records, the name in the input's directory.
  std::optional<std::pair<std::string, std::int64_t>> recorded_name(const std::string& path) {
    Buffer prefix(64 * 1024);
    try {
      FdSource source(path);
      prefix.resize(source.read_full(prefix.data(), 64 * 1024));
    } catch (const Error&) {
      return std::nullopt;  // the batch reports it
    }
    const auto info = CodecRegistry::global().detect(prefix.view());
    if (!info) return std::nullopt;
    const StreamInfo recorded = CodecRegistry::global().create(info->name)->recorded_info(prefix.view());
    std::string name = fs::path(recorded.name).filename().string();  // never a directory
    if (name.empty() || name == "." || name == "..") return std::nullopt;
    if (name.size() > NAME_MAX) {
      // As gzip -dN does: the name cut to what a file name may hold (not inside a UTF-8
      // character), and a warning; it had failed with "File name too long", nothing written.
      const std::size_t recorded_bytes = name.size();
      std::size_t keep = NAME_MAX;
      while (keep > 0 && (static_cast<unsigned char>(name[keep]) & 0xC0) == 0x80) --keep;
      name.resize(keep);
      warnings.push_back(fmt::format("{}: the name it records is {} bytes, more than a file name may hold: cut to {}",
                                     path, recorded_bytes, keep));
    }
    return std::pair{(fs::path(path).parent_path() / name).string(), recorded.mtime_seconds};
  }

  void add_file(const std::string& path, const struct stat& status, bool from_walk) {
    const bool to_stdout = options_.to_stdout;
    if (!S_ISREG(status.st_mode) && writes_files()) {
      fail(path, Error(ErrorKind::kIo, "not a regular file; use -c or -o to process it", path));
      return;
    }
    std::optional<std::int64_t> mtime;
    const auto add_job = [&](std::string output) {
      if (S_ISREG(status.st_mode)) total_bytes += static_cast<std::uint64_t>(status.st_size);
      job_positions.push_back(next_position_++);
      FileJob& job = jobs.emplace_back(path, std::move(output), mtime);
      job.derived_output = !job.output.empty() && options_.output_path.empty();
    };
    // Walking a tree to test or decompress, only compressed files (by suffix) are inputs, as -d
    // -r has always taken them; a file named on the command line is taken whatever its name.
    if (from_walk && options_.mode != Mode::kCompress && !decompressed_name(path)) return;
    // Walking a tree to compress, compressed files are not inputs: by suffix (ours and other
    // formats': a.tgz, x.zst, y.xz) or by content (a .gz renamed .log).
    if (from_walk && options_.mode == Mode::kCompress) {
      const bool by_name = has_suffix(path, extension_) || has_compressed_suffix(path);
      if (by_name || looks_compressed(path)) {
        ++left_alone_count;
        if (options_.verbose) {  // named; otherwise counted only (a tree of a million .gz files)
          left_alone.push_back(fmt::format("{}: compressed already (by its {}); left alone", printable_name(path),
                                           by_name ? "suffix" : "content"));
        }
        return;
      }
    }
    // A file the walk takes is left alone when it has other names (not the ones it leaves out).
    if ((from_walk && refused_link(path, status, /*named=*/false)) || refused_special_bits(path, status)) return;
    if (options_.mode == Mode::kTest || options_.mode == Mode::kList || to_stdout) return add_job("");
    std::string output;
    if (!options_.output_path.empty()) {
      output = options_.output_path;
    } else if (options_.mode == Mode::kCompress) {
      // As gzip: a name with the suffix, or a tar shorthand of the codec's (x.tgz), is left alone.
      const auto own = std::find_if(own_suffixes_.begin(), own_suffixes_.end(),
                                    [&](const std::string& suffix) { return has_suffix(path, suffix); });
      if (own != own_suffixes_.end()) {
        fail(path, Error(ErrorKind::kIo, fmt::format("already has the {} suffix; left unchanged", *own), path));
        return;
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
      if (options_.restore_name) {
        if (const auto recorded = recorded_name(path)) {
          output = placed(recorded->first);
          if (recorded->second > 0) mtime = recorded->second;
        }
      }
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
    // Outside the current directory (../logs/a): the path below the leading ".." (logs/a), so
    // that nothing is written outside DIR and the tree keeps its shape.
    fs::path below;
    bool leading = true;
    for (const fs::path& part : relative) {
      if (leading && part == "..") continue;
      leading = false;
      below /= part;
    }
    relative = below;
    return (fs::path(options_.output_dir) / relative).string();
  }

  void fail(const std::string& input, Error error) {
    failure_positions.push_back(next_position_++);
    failures.push_back({input, std::move(error)});
  }

  const CliOptions& options_;
  std::size_t next_position_ = 0;
  std::string extension_;                              // what compression adds to a name
  std::vector<std::string> own_suffixes_;              // names left alone: the extension, tar shorthands
  std::optional<std::pair<dev_t, ino_t>> output_dir_;  // never walked into
  std::map<std::string, std::string> outputs_;         // normalised output path -> the input it is for
};

void check_usage(const CliOptions& options, bool writes_stdout) {
  if (options.mode == Mode::kCompress) {
    CodecOptions codec;
    codec.level = options.level;
    codec.chunk_bytes = options.chunk_bytes;
    apply_codec_flags(options.codec_flags, options.format, codec);
    (void)CodecRegistry::global().create(options.format, codec);
  }
  if (options.mode == Mode::kList &&
      (options.to_stdout || !options.output_path.empty() || !options.output_dir.empty())) {
    throw Error(ErrorKind::kUsage, "-l lists; it writes no output (-c, -o and --output-dir do not apply)");
  }
  if (!options.output_path.empty() && options.to_stdout) throw Error(ErrorKind::kUsage, "-o and -c cannot be used together");
  if (!options.output_path.empty() && (options.files.size() > 1 || options.recursive)) {
    throw Error(ErrorKind::kUsage, "-o takes one input file; use --output-dir or -c for several");
  }
  if (!options.output_dir.empty() && (options.to_stdout || !options.output_path.empty())) {
    throw Error(ErrorKind::kUsage, "--output-dir cannot be used with -c or -o");
  }
  // Standard input has no name to write under DIR: its output went to standard output, silently.
  if (!options.output_dir.empty() && options.mode != Mode::kList && options.mode != Mode::kTest &&
      (options.files.empty() || std::ranges::find(options.files, "-") != options.files.end())) {
    throw Error(ErrorKind::kUsage,
                "--output-dir names outputs after their input files: standard input has none "
                "(use -c or -o)");
  }
  if (options.json && writes_stdout) {
    throw Error(ErrorKind::kUsage, "--json prints on standard output, which the data is going to");
  }
  if (writes_stdout && options.mode == Mode::kCompress && !options.force && ::isatty(STDOUT_FILENO)) {
    throw Error(ErrorKind::kIo, "refusing to write compressed data to a terminal (use -f to force)");
  }
  if (options.mode != Mode::kCompress && !options.force && ::isatty(STDIN_FILENO) &&
      std::ranges::find(options.files, "-") != options.files.end()) {
    throw Error(ErrorKind::kIo, "refusing to read compressed data from a terminal (use -f to force)");
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

// sluice -l: one line per file (format, units, sizes, ratio, check), and a total for several.
int list_files(const CliOptions& options, const Planner& plan) {
  DecompressOptions decode;
  decode.threads = options.threads;
  decode.backends = backend_flags(options.codec_flags);
  // Escaped as in messages: a name holding a newline or an escape sequence made lines of its own
  // ("nl\nname.gz" forged an extra one) or coloured the terminal.
  const auto name_of = [](const std::string& input) {
    return input == "-" ? std::string("<stdin>") : printable_name(input);
  };
  const bool table = !options.json && !options.quiet;
  if (!options.quiet) {
    for (const auto& warning : plan.warnings) fmt::print(stderr, "sluice: warning: {}\n", warning);
  }
  if (table) {
    fmt::print("{:<6} {:>7} {:>14} {:>14} {:>7}  {:<14} {:<8} {}\n", "format", "units", "compressed", "uncompressed",
               "ratio", "check", "sizes", "name");
  }
  struct Row {
    std::size_t position;
    std::string input;
    std::optional<StreamListing> listing;
    std::optional<Error> error;
  };
  std::vector<Row> rows;
  for (std::size_t i = 0; i < plan.failures.size(); ++i) {
    rows.push_back({plan.failure_positions[i], plan.failures[i].input, std::nullopt, plan.failures[i].error});
  }
  for (std::size_t i = 0; i < plan.jobs.size(); ++i)
    rows.push_back({plan.job_positions[i], plan.jobs[i].input, {}, {}});
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.position < b.position; });
  std::uint64_t compressed = 0, uncompressed = 0;
  std::size_t failures = 0, listed = 0, garbage = 0;
  const auto ratio = [](std::uint64_t packed, std::uint64_t raw) {
    return packed > 0 ? static_cast<double>(raw) / static_cast<double>(packed) : 0.0;
  };
  for (Row& row : rows) {
    if (!row.error) {
      try {
        if (row.input == "-") {
          FdSource source(STDIN_FILENO, "<stdin>");
          row.listing = list_stream(source, decode);
        } else {
          row.listing = list_file(row.input, decode);
        }
      } catch (const Error& e) {
        row.error = e;
      }
    }
    if (row.error) {
      ++failures;
      fmt::print(stderr, "sluice: {}\n", row.error->what());
      if (options.json) {
        fmt::print("{{\"index\": {}, \"input\": {}, \"status\": \"error\", \"error\": {}}}\n", row.position,
                   json_string(row.input), json_string(row.error->what()));
      }
      continue;
    }
    const StreamListing& l = *row.listing;
    ++listed;
    // Listed up to the garbage, as -d writes and -t checks up to it, with the same warning.
    std::string warning;
    if (l.trailing_garbage) {
      ++garbage;
      warning = l.trailing_garbage->what();
      if (!options.quiet) fmt::print(stderr, "sluice: warning: {}; ignored (listed up to it)\n", warning);
    }
    compressed += l.compressed_bytes;
    uncompressed += l.uncompressed_bytes;
    const std::string sizes = l.decoded ? "decoded" : "recorded";
    if (table) {
      fmt::print("{:<6} {:>7} {:>14} {:>14} {:>7.3f}  {:<14} {:<8} {}\n", l.codec,
                 l.units > 0 ? std::to_string(l.units) : std::string("-"), l.compressed_bytes, l.uncompressed_bytes,
                 ratio(l.compressed_bytes, l.uncompressed_bytes), l.check.empty() ? "-" : l.check, sizes,
                 name_of(row.input));
    }
    if (options.json) {
      fmt::print(
          "{{\"index\": {}, \"input\": {}, \"status\": \"ok\", \"format\": \"{}\", \"units\": {}, "
          "\"compressed_bytes\": {}, \"uncompressed_bytes\": {}, \"ratio\": {:.6f}, \"check\": {}, "
          "\"sizes\": \"{}\"{}}}\n",
          row.position, json_string(row.input), l.codec, l.units > 0 ? std::to_string(l.units) : std::string("null"),
          l.compressed_bytes, l.uncompressed_bytes, ratio(l.compressed_bytes, l.uncompressed_bytes),
          l.check.empty() ? std::string("null") : json_string(l.check), sizes,
          warning.empty() ? std::string() : ", \"warning\": " + json_string(warning));
    }
  }
  if (table && listed > 1) {
    fmt::print("{:<6} {:>7} {:>14} {:>14} {:>7.3f}  {:<14} {:<8} {} files\n", "total", "", compressed, uncompressed,
               ratio(compressed, uncompressed), "", "", listed);
  }
  if (options.json) {
    fmt::print(
        "{{\"summary\": {{\"files\": {}, \"failed\": {}, \"compressed_bytes\": {}, \"uncompressed_bytes\": {}}}}}\n",
        rows.size(), failures, compressed, uncompressed);
  }
  return exit_status(failures, plan.warnings.size() + garbage);
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
  // `-` among files is standard input to standard output (as gzip takes it), unless -o names one.
  const bool reads_stdin_named = std::ranges::find(options.files, "-") != options.files.end();
  const bool writes_stdout = options.mode != Mode::kTest && options.mode != Mode::kList &&
                             (options.to_stdout || (reads_stdin_named && options.output_path.empty()));
  try {
    check_usage(options, writes_stdout);
  } catch (const Error& e) {
    return report_error("sluice", e);
  }

  Planner plan(options);
  for (const auto& arg : options.files) plan.add(arg);
  plan.refuse_outputs_that_are_inputs();
  if (options.mode == Mode::kList) return list_files(options, plan);
  const std::size_t total_files = plan.jobs.size() + plan.failures.size();

  const bool reads_stdin =
      std::any_of(plan.jobs.begin(), plan.jobs.end(), [](const FileJob& job) { return job.input == "-"; });
  ProgressBar progress(progress_setup(options), total_files, known_input_bytes(plan.total_bytes, reads_stdin));
  std::vector<std::string> failed_inputs;
  std::size_t skipped = 0;
  std::size_t warnings = plan.warnings.size();
  if (!options.quiet) {
    for (const auto& warning : plan.warnings) progress.print(fmt::format("sluice: warning: {}\n", warning));
    if (options.verbose) {
      for (const auto& note : plan.left_alone) progress.print(fmt::format("sluice: {}\n", note));
    }
  }
  const bool compressing = options.mode == Mode::kCompress;
  const auto report_item = [&](std::size_t position, const ItemResult& item) {
    // Sizes as uncompressed (raw) and compressed (packed), whichever way the data went.
    const std::uint64_t raw = compressing ? item.input_bytes : item.output_bytes;
    const std::uint64_t packed = compressing ? item.output_bytes : item.input_bytes;
    if (item.status == ItemStatus::kFailed) {
      failed_inputs.push_back(item.input);
      progress.print(fmt::format("sluice: {}{}\n", item.error->what(), overwrite_hint(*item.error)));
    } else if (item.status == ItemStatus::kSkipped) {
      ++skipped;  // not tried: --fail-fast stopped at an earlier failure
    }
    if (item.warning) {
      ++warnings;
      if (!options.quiet) {
        progress.print(fmt::format("sluice: warning: {}; ignored (the data before it was {})\n", item.warning->what(),
                                   options.mode == Mode::kTest ? "checked" : "written"));
      }
    }
    if (!item.ok()) {
      // reported above
    } else if (options.mode == Mode::kTest) {
      if (!options.quiet) {
        progress.print(fmt::format("{}: OK ({} -> {})\n", item.input == "-" ? "<stdin>" : printable_name(item.input),
                                   human_bytes(item.input_bytes), human_bytes(item.output_bytes)));
      }
    } else if (options.verbose && !options.quiet) {
      const double ratio = raw ? 100.0 * static_cast<double>(packed) / static_cast<double>(raw) : 100.0;
      const double rate = item.seconds > 0 ? static_cast<double>(raw) / item.seconds / 1e6 : 0;
      progress.print(fmt::format("{}: {} -> {} ({:.2f}%), {:.1f} MB/s\n",
                                 item.input == "-" ? "<stdin>" : printable_name(item.input),
                                 human_bytes(item.input_bytes), human_bytes(item.output_bytes), ratio, rate));
    }
    if (options.json) {
      std::string record = fmt::format(
          "{{\"index\": {}, \"input\": {}, \"output\": {}, \"status\": \"{}\", "
          "\"input_bytes\": {}, \"output_bytes\": {}, \"seconds\": {:.6f}",
          position, json_string(item.input), json_string(item.output), status_name(item.status), item.input_bytes,
          item.output_bytes, item.seconds);
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
  for (std::size_t i = 0; i < plan.failures.size(); ++i) {
    ItemResult item;
    item.input = plan.failures[i].input;
    item.status = ItemStatus::kFailed;
    item.error = plan.failures[i].error;
    report_item(plan.failure_positions[i], item);
  }

  FileBatchOptions batch;
  batch.overwrite = options.force;
  batch.durable = options.synchronous;
  batch.remove_inputs = options.remove_input;
  batch.store_name = !options.no_name;
  batch.fail_fast = options.fail_fast;
  batch.create_directories = !options.output_dir.empty();
  batch.discard_output = options.mode == Mode::kTest;
  batch.on_item_done = [&](std::size_t index, const ItemResult& item) { report_item(plan.job_positions[index], item); };
  batch.on_progress = [&](std::uint64_t bytes) { progress.bytes_read(bytes); };
  batch.on_written = [&](std::uint64_t bytes) { progress.bytes_written(bytes); };
  batch.on_item_begin = [&](std::size_t i) { progress.item_begun(plan.jobs[i].input); };

  // --fail-fast: with an input that could not even be planned, the jobs before it run (the batch
  // stops at a failure of theirs too), the ones after it are skipped.
  std::size_t runnable = plan.jobs.size();
  if (options.fail_fast && !plan.failures.empty()) {
    const std::size_t first_failure = *std::min_element(plan.failure_positions.begin(), plan.failure_positions.end());
    runnable =
        static_cast<std::size_t>(std::lower_bound(plan.job_positions.begin(), plan.job_positions.end(), first_failure) -
                                 plan.job_positions.begin());
  }
  std::vector<FileJob> runnable_prefix;  // copied only when some jobs are skipped
  if (runnable < plan.jobs.size())
    runnable_prefix.assign(plan.jobs.begin(), plan.jobs.begin() + static_cast<std::ptrdiff_t>(runnable));
  const std::vector<FileJob>& jobs = runnable < plan.jobs.size() ? runnable_prefix : plan.jobs;
  BatchReport report;
  if (!jobs.empty()) {
    try {
      if (compressing) {
        CompressOptions compress;
        compress.codec = options.format;
        compress.codec_options.level = options.level;
        compress.codec_options.chunk_bytes = options.chunk_bytes;
        apply_codec_flags(options.codec_flags, options.format, compress.codec_options);
        compress.threads = options.threads;
        report = compress_files(jobs, compress, batch);
      } else {
        DecompressOptions decompress;
        decompress.threads = options.threads;
        decompress.max_output_bytes = options.max_output_bytes;
        decompress.backends = backend_flags(options.codec_flags);
        // zcat -f: with -c and -f, data in no known format is passed through as it is.
        decompress.pass_through = options.force && writes_stdout && options.mode == Mode::kDecompress;
        report = decompress_files(jobs, decompress, batch);
      }
    } catch (const Error& e) {
      progress.print(fmt::format("sluice: {}\n", e.what()));
      return exit_status(e);
    }
  }
  for (std::size_t i = runnable; i < plan.jobs.size(); ++i) {
    ItemResult item;
    item.input = plan.jobs[i].input;
    item.output = plan.jobs[i].output;
    item.error = Error(ErrorKind::kCancelled, "skipped: the batch stopped at an earlier failure", item.input);
    report_item(plan.job_positions[i], item);
  }
  progress.finish(summary_of(report, compressing, plan.failures.size(), plan.jobs.size() - runnable));

  const std::size_t failures = failed_inputs.size();
  if (options.json) {
    fmt::print(
        "{{\"summary\": {{\"files\": {}, \"failed\": {}, \"skipped\": {}, \"left_alone\": {}, \"input_bytes\": {}, "
        "\"output_bytes\": {}, \"seconds\": {:.6f}}}}}\n",
        total_files, failures, skipped, plan.left_alone_count, report.input_bytes, report.output_bytes, report.seconds);
  }
  if (options.verbose && !options.quiet && total_files > 1) {
    fmt::print(stderr, "{} files, {} -> {} in {:.2f} s\n", total_files - failures - skipped,
               human_bytes(report.input_bytes), human_bytes(report.output_bytes), report.seconds);
  }
  if (failures > 0 && total_files > 1) {
    constexpr std::size_t kNamed = 10;
    std::string names;
    // Escaped as every message's names are (one holding an escape sequence went out raw).
    for (std::size_t i = 0; i < std::min(failures, kNamed); ++i) {
      names += (i ? ", " : "") + (failed_inputs[i].empty() ? std::string("''") : printable_name(failed_inputs[i]));
    }
    if (failures > kNamed) names += fmt::format(", and {} more", failures - kNamed);
    const std::string not_tried = skipped > 0 ? fmt::format("; {} not tried (--fail-fast)", skipped) : "";
    fmt::print(stderr, "sluice: {} of {} files failed: {}{}\n", failures, total_files, names, not_tried);
  }
  return exit_status(failures + skipped, warnings);
}

}  // namespace sluice::app
