// `sluice tar`: create, extract and list tar archives. Parses its own arguments (tar's -c/-x/-t,
// -f, -C, -v mean what they mean to tar) and calls sluice/tar.h.
#include "apps/tar_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <set>

#include "apps/cli.h"
#include "apps/exit_status.h"
#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/tar.h"

namespace sluice::app {
namespace {

struct TarCliOptions {
  bool create = false;
  bool extract = false;
  bool list = false;
  std::string archive;          // -f / -o; "-" is stdin/stdout
  std::string directory;        // -C
  std::vector<std::string> paths;
  std::vector<std::string> exclude;  // --exclude patterns
  std::string format;           // -F: codec, or "none"
  int level = 0;
  int threads = 0;
  std::string chunk_size;
  CodecFlags codec_flags;
  bool verbose = false;
  std::string mtime;
  std::string owner;
  std::string group;
  bool numeric_owner = false;
  bool sparse = false;
  bool preserve_permissions = false;
  bool same_owner = false;
  bool devices = false;
  bool strict = false;
  // Compression asked for by GNU tar's letters and names (-z, --gzip, --zstd): the flag, the codec.
  std::vector<std::pair<std::string, std::string>> compression_flags;
  bool auto_compress = false;  // -a: what sluice does anyway
  std::size_t strip_components = 0;
  std::vector<std::string> files_from;  // -T lists
  bool null_names = false;              // --null: the lists are NUL-separated
  bool to_stdout = false;               // -O
  bool keep_old_files = false;          // -k
  bool no_recursion = false;
  bool one_file_system = false;
  bool totals = false;
  std::string max_output;  // --max-output SIZE
};

// A byte count as GNU tar's --totals writes it: "10KiB", "2.9MiB", "287MiB" (powers of 1024,
// one decimal below 10, rounded up, as gnulib's human_readable).
std::string human_bytes(double value) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  if (unit > 0 && value < 10) {
    const double tenths = std::ceil(value * 10 - 1e-9) / 10;
    if (tenths < 10) return fmt::format("{:.1f}{}", tenths, units[unit]);
  }
  double whole = std::ceil(value - 1e-9);
  if (whole >= 1024 && unit + 1 < std::size(units)) {
    whole = 1;
    ++unit;
    return fmt::format("{:.1f}{}", whole, units[unit]);
  }
  return fmt::format("{:.0f}{}", whole, units[unit]);
}

// --totals, on stderr as GNU tar prints it: "Total bytes written: 10240 (10KiB, 77MiB/s)".
void print_totals(const char* verb, const TarStats& stats) {
  const double seconds = std::max(stats.seconds, 1e-6);
  fmt::print(stderr, "Total bytes {}: {} ({}, {}/s)\n", verb, stats.archive_bytes,
             human_bytes(static_cast<double>(stats.archive_bytes)),
             human_bytes(static_cast<double>(stats.archive_bytes) / seconds));
}

char type_letter(TarEntryType type) {
  switch (type) {
    case TarEntryType::kDirectory:
      return 'd';
    case TarEntryType::kSymlink:
      return 'l';
    case TarEntryType::kHardLink:
      return 'h';
    case TarEntryType::kCharDevice:
      return 'c';
    case TarEntryType::kBlockDevice:
      return 'b';
    case TarEntryType::kFifo:
      return 'p';
    case TarEntryType::kFile: break;
  }
  return '-';
}

std::string mode_string(const TarEntry& entry) { return mode_text(type_letter(entry.type), entry.mode); }

// One line per entry, as `tar -tv` prints it.
std::string long_listing(const TarEntry& entry) {
  const std::string user = entry.uname.empty() ? std::to_string(entry.uid) : entry.uname;
  const std::string group = entry.gname.empty() ? std::to_string(entry.gid) : entry.gname;
  const auto seconds = static_cast<std::time_t>(entry.mtime_seconds);
  std::tm local{};
  ::localtime_r(&seconds, &local);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &local);
  const std::string size = (entry.type == TarEntryType::kCharDevice || entry.type == TarEntryType::kBlockDevice)
                               ? fmt::format("{},{}", entry.device_major, entry.device_minor)
                               : std::to_string(entry.size);
  std::string line = fmt::format("{} {}/{} {:>9} {} {}", mode_string(entry), printable_name(user),
                                 printable_name(group), size, when, printable_name(entry.path));
  if (entry.type == TarEntryType::kSymlink) line += " -> " + printable_name(entry.link_target);
  if (entry.type == TarEntryType::kHardLink) line += " link to " + printable_name(entry.link_target);
  return line;
}

// The codec the name of the archive says (tar_codec_for_path), or for a name ending in .tar,
// "a plain tar", or for one of a format sluice does not write, that format (.tar.xz: "an xz
// stream"); "" when it says nothing known.
std::string what_the_name_says(const std::string& archive, std::string& codec) {
  codec = tar_codec_for_path(archive);
  if (!codec.empty()) return codec;
  return has_suffix(archive, ".tar") ? "a plain tar" : foreign_format_by_name(archive);
}

// The compression asked for by -F and the letters (-z, --zstd, ...); "" when none was. Letters
// that disagree with each other or with -F are an error; so is a letter that disagrees with the
// archive's name (GNU tar would write its format under the name): -F writes any format under
// any name.
std::string asked_compression(const TarCliOptions& options) {
  std::string asked = options.format;
  std::string asked_by = options.format.empty() ? "" : "-F " + options.format;
  for (const auto& [flag, codec] : options.compression_flags) {
    if (!asked_by.empty() && asked != codec) {
      throw Error(ErrorKind::kUsage, fmt::format("{} and {} ask for different compressions", asked_by, flag));
    }
    asked = codec;
    if (asked_by.empty()) asked_by = flag;
  }
  if (options.compression_flags.empty() || !options.format.empty() || options.archive == "-") return asked;
  std::string named;
  const std::string says = what_the_name_says(options.archive, named);
  if (!says.empty() && named != asked) {
    const CodecInfo info = *CodecRegistry::global().find(asked);
    std::vector<std::string> suffixes{".tar" + info.extension};
    suffixes.insert(suffixes.end(), info.tar_suffixes.begin(), info.tar_suffixes.end());
    // Leaving the letter out helps only where sluice writes what the name says.
    const std::string other_ways =
        named.empty() && says != "a plain tar"
            ? fmt::format("or give -F {0}, which writes {0} under any name", asked)
            : fmt::format(
                  "or leave {0} out: sluice takes the compression from the name; -F {1} writes {1} under any "
                  "name",
                  asked_by, asked);
    throw Error(ErrorKind::kUsage,
                fmt::format("{} asks for {}, but the name '{}' says {}: name the archive {} ({})", asked_by, asked,
                            printable_name(options.archive), says, fmt::join(suffixes, " or "), other_ways));
  }
  return asked;
}

int run_create(const TarCliOptions& options) {
  if (options.paths.empty() && options.files_from.empty()) {
    throw Error(ErrorKind::kUsage, "tar -c needs at least one PATH to archive (or -T FILE)");
  }
  const std::string asked = asked_compression(options);
  std::string codec = asked.empty() ? tar_codec_for_path(options.archive) : asked;
  if (codec == "none") codec.clear();
  if (asked.empty() && codec.empty() && options.archive != "-") {
    // A suffix that names no format sluice writes (.tar.xz, .zip, .foo) would get a plain tar
    // under a name that promises something else: refuse it, as it cannot be what was meant.
    const std::string file = std::filesystem::path(options.archive).filename().string();
    const std::size_t dot = file.rfind('.');
    if (dot != std::string::npos && dot > 0 && !has_suffix(file, ".tar")) {
      const std::string hint = file.ends_with(".zip") ? " (zip archives: sluice zip -c)" : "";
      throw Error(ErrorKind::kUsage,
                  fmt::format("cannot tell the compression from the name '{}': sluice tar writes {} and .tar; "
                              "name the archive so, or give -F (-F none for a plain tar){}",
                              printable_name(file), compressed_tar_suffixes(), hint));
    }
  }
  CompressOptions compress;
  compress.threads = options.threads;
  compress.codec_options.level = options.level;
  if (!options.chunk_size.empty()) compress.codec_options.chunk_bytes = parse_byte_count(options.chunk_size);
  if (!codec.empty()) {
    apply_codec_flags(options.codec_flags, codec, compress.codec_options);
    (void)CodecRegistry::global().create(codec, compress.codec_options);  // validates level and chunk size
  } else if (options.level != 0 || !options.codec_flags.settings.empty()) {
    throw Error(ErrorKind::kUsage, fmt::format("{} needs a compressed archive ({} or -F)",
                                               options.level != 0 ? "a level" : options.codec_flags.settings[0].flag,
                                               compressed_tar_suffixes()));
  }

  TarCreateOptions create;
  create.directory = options.directory;
  create.exclude = options.exclude;
  create.recursive = !options.no_recursion;
  create.one_file_system = options.one_file_system;
  const auto flag = [](const char* name, auto parse) {
    try {
      return parse();
    } catch (const Error& e) {
      throw Error(ErrorKind::kUsage, fmt::format("{}: {}", name, e.detail()));
    }
  };
  if (!options.mtime.empty()) create.mtime_seconds = flag("--mtime", [&] { return parse_tar_mtime(options.mtime); });
  if (!options.owner.empty())
    create.owner = flag("--owner", [&] { return resolve_tar_user(parse_tar_owner(options.owner)); });
  if (!options.group.empty())
    create.group = flag("--group", [&] { return resolve_tar_group(parse_tar_owner(options.group)); });
  create.numeric_owner = options.numeric_owner;
  create.sparse = options.sparse;
  const bool to_stdout = options.archive == "-";
  std::FILE* listing = to_stdout ? stderr : stdout;
  if (options.verbose) {
    create.on_entry = [listing](const TarEntry& entry) { fmt::print(listing, "{}\n", printable_name(entry.path)); };
  }
  create.on_skipped = [](const std::string& path, const std::string& why) {
    fmt::print(stderr, "sluice: {}: {}\n", printable_name(path), why);
  };
  // Once for each prefix, as GNU tar says it (the exit status stays 0).
  std::set<std::string> removed_prefixes;
  create.on_prefix_removed = [&removed_prefixes](const std::string& prefix) {
    if (removed_prefixes.insert(prefix).second)
      fmt::print(stderr, "sluice tar: removing leading '{}' from member names\n", printable_name(prefix));
  };
  std::uint64_t changed = 0;  // exit status 1 when any, as GNU tar
  create.on_changed = [&changed](const std::string& path) {
    ++changed;
    fmt::print(stderr, "sluice: {}: file changed as we read it\n", printable_name(path));
  };

  if (to_stdout) {
    if (::isatty(1)) throw Error(ErrorKind::kUsage, "refusing to write an archive to a terminal");
    MarkedStreamSink sink(1, "<stdout>", CodecRegistry::global().unfinished_mark(codec));
    const TarStats stats = create_tar(options.paths, sink, codec, compress, create);
    sink.finish();
    if (options.totals) print_totals("written", stats);
    return changed > 0 ? kExitFailure : kExitSuccess;
  }
  OutputFile output(options.archive, /*overwrite=*/true);  // tar replaces an existing archive
  create.skip_files = output.own_files();
  const TarStats stats = create_tar(options.paths, output, codec, compress, create);
  output.commit(false);
  if (options.totals) print_totals("written", stats);
  return changed > 0 ? kExitFailure : kExitSuccess;
}

void print_warning(const std::string& message) { fmt::print(stderr, "sluice: warning: {}\n", message); }

// "sluice: ARCHIVE: MEMBER: not found in archive", as sluice zip names both.
void report_not_found(const std::string& archive, const std::vector<std::string>& members) {
  const std::string name = printable_name(archive == "-" ? "<stdin>" : archive);
  for (const auto& member : members) {
    fmt::print(stderr, "sluice: {}: {}: not found in archive\n", name, printable_name(member));
  }
}

std::unique_ptr<ByteSource> open_archive(const std::string& archive) {
  if (archive == "-") return std::make_unique<FdSource>(0, "<stdin>");
  return std::make_unique<FdSource>(archive);
}

std::uint64_t max_output_bytes(const TarCliOptions& options) { return parse_max_output(options.max_output); }

// -O: the contents of the selected files, one after the other, to stdout (a sparse file with its
// holes as zeros); nothing is written to disk.
class ContentsToStdout final : public TarEntryHandler {
 public:
  ContentsToStdout(const TarCliOptions& options, ByteSink& out)
      : options_(options),
        out_(out),
        members_(options.paths),
        exclude_(options.exclude),
        limit_(max_output_bytes(options)) {}

  void begin(const TarEntry& entry) override {
    entry_ = &entry;
    writing_ = false;
    if (!members_.selects(entry.path) || exclude_.excludes(entry.path)) return;
    if (strip_tar_components(entry.path, options_.strip_components).empty()) return;
    if (entry.type != TarEntryType::kFile) return;
    if (!entry.unsupported.empty()) {
      ++refused_;
      fmt::print(stderr, "sluice: {}: refusing entry '{}' (archive byte {}): {} (not supported)\n",
                 printable_name(options_.archive == "-" ? "<stdin>" : options_.archive), printable_name(entry.path),
                 entry.header_offset, entry.unsupported);
      return;
    }
    check_output_limit(entry);
    if (options_.verbose) fmt::print(stderr, "{}\n", printable_name(entry.path));
    writing_ = true;
    region_ = 0;
    within_region_ = 0;
    written_to_ = 0;
  }
  void data(ByteView bytes) override {
    if (!writing_) return;
    if (!entry_->sparse) return out_.write(bytes);
    const auto& regions = entry_->regions;
    while (!bytes.empty() && region_ < regions.size()) {
      const TarSparseRegion& region = regions[region_];
      if (within_region_ == region.length) {
        ++region_;
        within_region_ = 0;
        continue;
      }
      zeros(region.offset - written_to_);
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), region.length - within_region_));
      out_.write(bytes.first(take));
      within_region_ += take;
      written_to_ = region.offset + within_region_;
      bytes = bytes.subspan(take);
    }
  }
  void end() override {
    if (writing_ && entry_->sparse) zeros(entry_->size - written_to_);
    writing_ = false;
  }
  void warning(const std::string& message) override {
    ++warnings_;
    fmt::print(stderr, "sluice: warning: {}\n", message);
  }
  std::uint64_t refused() const { return refused_; }
  std::uint64_t warnings() const { return warnings_; }
  std::vector<std::string> not_found() const { return members_.not_found(); }

 private:
  // --max-output, as TarExtractOptions::max_output_bytes counts it: the sizes the files declare.
  void check_output_limit(const TarEntry& entry) {
    if (limit_ == 0) return;
    if (entry.size > limit_ - output_bytes_) {
      throw Error(ErrorKind::kLimit,
                  fmt::format("'{}' (archive byte {}) holds {} bytes: the files would exceed the limit of {} bytes "
                              "set for this run ({} written before it)",
                              printable_name(entry.path), entry.header_offset, entry.size, limit_, output_bytes_),
                  options_.archive == "-" ? "<stdin>" : options_.archive);
    }
    output_bytes_ += entry.size;
  }

  void zeros(std::uint64_t count) {
    static const std::uint8_t block[64 * 1024] = {};
    written_to_ += count;
    while (count > 0) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(count, sizeof block));
      out_.write(ByteView(block, n));
      count -= n;
    }
  }

  const TarCliOptions& options_;
  ByteSink& out_;
  TarMembers members_;
  TarExclude exclude_;
  const TarEntry* entry_ = nullptr;
  bool writing_ = false;
  std::size_t region_ = 0;
  std::uint64_t within_region_ = 0;
  std::uint64_t written_to_ = 0;
  const std::uint64_t limit_;       // --max-output; 0: none
  std::uint64_t output_bytes_ = 0;  // the sizes of the files written (check_output_limit)
  std::uint64_t refused_ = 0;
  std::uint64_t warnings_ = 0;
};

int run_extract_to_stdout(const TarCliOptions& options) {
  auto source = open_archive(options.archive);
  FdSink out(1, "<stdout>");
  ContentsToStdout handler(options, out);
  const TarStats stats = read_tar(*source, handler, options.threads);
  if (options.totals) print_totals("read", stats);
  report_not_found(options.archive, handler.not_found());
  if (handler.refused() > 0 || handler.warnings() > 0) return kExitWarning;
  return handler.not_found().empty() ? 0 : 1;
}

int run_extract(const TarCliOptions& options) {
  if (options.to_stdout) return run_extract_to_stdout(options);
  TarExtractOptions extract;
  extract.directory = options.directory.empty() ? "." : options.directory;
  extract.members = options.paths;
  extract.exclude = options.exclude;
  extract.preserve_permissions = options.preserve_permissions;
  extract.same_owner = options.same_owner;
  extract.devices = options.devices;
  extract.strict = options.strict;
  extract.strip_components = options.strip_components;
  extract.keep_existing = options.keep_old_files;
  extract.max_output_bytes = max_output_bytes(options);
  extract.threads = options.threads;
  auto source = open_archive(options.archive);
  const std::string archive = printable_name(source->name());
  // An entry of a type no tar knows is told as it is extracted, as GNU tar tells it (exit 0).
  extract.on_entry = [&](const TarEntry& entry) {
    if (entry.of_unknown_type()) {
      print_warning(fmt::format("{}: entry '{}' (archive byte {}) is of unknown type '{}': extracted as a regular file",
                                archive, printable_name(entry.path), entry.header_offset,
                                printable_name(std::string(1, entry.typeflag))));
    }
    if (options.verbose) fmt::print("{}\n", printable_name(entry.path));
  };
  extract.on_refused = [&](const TarEntry& entry, const std::string& why) {
    fmt::print(stderr, "sluice: {}: refusing entry '{}' (archive byte {}): {}\n", archive, printable_name(entry.path),
               entry.header_offset, why);
  };
  extract.on_failed = [&](const TarEntry& entry, const Error& error) {
    if (error.path() == source->name()) return fmt::print(stderr, "sluice: {}\n", error.what());  // named already
    fmt::print(stderr, "sluice: {}: cannot extract '{}' (archive byte {}): {}\n", archive, printable_name(entry.path),
               entry.header_offset, error.what());
  };
  extract.on_warning = print_warning;
  const TarExtractStats stats = extract_tar(*source, extract);
  if (options.totals) print_totals("read", stats);
  report_not_found(options.archive, stats.members_not_found);
  // As GNU tar's 2 ("some entries could not be extracted"): the rest of the archive was read.
  if (stats.refused > 0 || stats.failed > 0 || stats.warnings > 0) return kExitWarning;
  return stats.members_not_found.empty() ? 0 : 1;
}

int run_list(const TarCliOptions& options) {
  auto source = open_archive(options.archive);
  TarMembers members(options.paths);
  const TarExclude exclude(options.exclude);
  const TarStats stats = list_tar(
      *source,
      [&](const TarEntry& entry) {
        if (members.selects(entry.path) && !exclude.excludes(entry.path)) {
          fmt::print("{}\n", options.verbose ? long_listing(entry) : printable_name(entry.path));
        }
      },
      options.threads, print_warning);
  if (options.totals) print_totals("read", stats);
  report_not_found(options.archive, members.not_found());
  if (stats.warnings > 0) return kExitWarning;
  return members.not_found().empty() ? 0 : 1;
}

// GNU tar's old style: a first argument without a dash is a bundle of option letters ("czf"),
// and the letters that take a value take the arguments after it, in order ("cfC x.tar dir" is
// "-c -f x.tar -C dir"). Only when every letter is one of the command's short options.
std::vector<std::string> expand_old_style(std::vector<std::string> args, const CLI::App& app) {
  if (args.empty() || args[0].empty() || args[0][0] == '-') return args;
  std::map<char, bool> letters;  // letter -> takes a value
  for (const CLI::Option* option : app.get_options()) {
    for (const std::string& name : option->get_snames()) {
      if (name.size() == 1) letters[name[0]] = option->get_expected_min() > 0;
    }
  }
  const std::string bundle = args[0];
  if (!std::all_of(bundle.begin(), bundle.end(), [&](char c) { return letters.count(c) != 0; })) return args;
  std::vector<std::string> expanded;
  std::size_t next = 1;
  for (const char letter : bundle) {
    expanded.push_back(std::string("-") + letter);
    if (letters[letter] && next < args.size()) expanded.push_back(args[next++]);
  }
  expanded.insert(expanded.end(), args.begin() + static_cast<std::ptrdiff_t>(next), args.end());
  return expanded;
}

// The names in a -T list: one a line (empty lines skipped), or NUL-separated with --null; "-"
// is stdin. Every line is a name, also one that starts with "-".
std::vector<std::string> read_name_list(const std::string& list, bool null_separated) {
  std::unique_ptr<ByteSource> source =
      list == "-" ? std::make_unique<FdSource>(0, "<stdin>") : std::make_unique<FdSource>(list);
  std::string text;
  std::vector<std::uint8_t> buffer(64 * 1024);
  while (const std::size_t n = source->read(buffer.data(), buffer.size())) {
    text.append(reinterpret_cast<const char*>(buffer.data()), n);
  }
  std::vector<std::string> names;
  const char separator = null_separated ? '\0' : '\n';
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(separator, start);
    if (end == std::string::npos) end = text.size();
    if (end > start) names.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return names;
}

}  // namespace

int run_tar_command(int argc, char** argv) {
  TarCliOptions options;
  CLI::App app{"Create, extract or list tar archives, compressed with any sluice codec or plain.\n"
               "The archive is made and read through sluice's parallel graphs.",
               "sluice tar"};
  app.footer(
      "Examples:\n"
      "  sluice tar -c -o logs.tar.zst logs/      archive and compress (codec from the suffix)\n"
      "  sluice tar -x -f logs.tar.zst -C out/    extract under out/\n"
      "  sluice tar -t -v -f logs.tar.gz          list, long form\n"
      "  sluice tar -c -f - src | ssh host ...    archive to stdout (plain unless -F)\n"
      "Exit status: 0 success; 1 failure (the archive could not be read or written, a MEMBER was not\n"
      "found, an entry was refused with --strict, or a file changed as it was read); 2 some entries\n"
      "were refused or read past with a warning while the rest was extracted or listed (as GNU tar),\n"
      "or a usage error.");
  app.add_flag("-c,--create", options.create, "Create an archive from PATHs");
  app.add_flag("-x,--extract", options.extract, "Extract an archive (only MEMBERs if given)");
  app.add_flag("-t,--list", options.list, "List an archive's contents (only MEMBERs if given)");
  app.add_option("-f,--file,-o,--output", options.archive, "The archive; - is stdin or stdout")->type_name("ARCHIVE");
  std::vector<std::string> directories;
  add_directory_option(app, directories,
                       "Extract under DIR (created if missing); when creating, read PATHs relative to DIR");
  app.add_option("PATH", options.paths, "Paths to archive, or members to extract or list");
  app.add_option("--exclude", options.exclude,
                 "Leave out what matches PATTERN, and all under it (GNU tar's rules; repeatable)")
      ->type_name("PATTERN")
      ->allow_extra_args(false);  // one pattern per --exclude: the words after it are PATHs
  app.add_option("-F,--format", options.format,
                 "Compression (default from the archive name: " + compressed_tar_suffixes() + "; otherwise none)")
      ->check(CLI::IsMember([] {
        auto names = CodecRegistry::global().names();
        names.push_back("none");
        return names;
      }()))
      ->type_name(codec_choices() + "|none");
  for (const std::string& name : CodecRegistry::global().names()) {
    const CodecInfo info = *CodecRegistry::global().find(name);
    const std::string long_flag = "--" + name;
    const std::string flag = info.tar_letter ? fmt::format("-{}", info.tar_letter) : long_flag;
    app.add_flag_callback(
        info.tar_letter ? fmt::format("{},{}", flag, long_flag) : long_flag,
        [&options, flag, name] { options.compression_flags.emplace_back(flag, name); },
        fmt::format("Compress with {} (as -F {}); when reading, the format is found from the data", name, name));
  }
  app.add_flag("-a,--auto-compress", options.auto_compress,
               "Compression from the archive's name (what sluice does anyway; as GNU tar -a)");
  app.add_option("-l,--level", options.level, "Compression level (also -1 .. -19)")->type_name("N");
  add_threads_option(app, options.threads);
  add_pin_flag(app);
  app.add_option("--chunk-size", options.chunk_size, "Bytes per compressed chunk, e.g. 1M")->type_name("SIZE");
  add_codec_flags(app, options.codec_flags);
  app.add_flag("-v,--verbose", options.verbose, "Name each entry (long form when listing)");
  app.add_option("--mtime", options.mtime,
                 "Store this modification time for every entry (@SECONDS, or a date: UTC unless it gives an offset)")
      ->type_name("TIME");
  app.add_option("--owner", options.owner, "Store this owner for every entry (NAME, NAME:ID or ID)")->type_name("OWNER");
  app.add_option("--group", options.group, "Store this group for every entry (NAME, NAME:ID or ID)")->type_name("GROUP");
  app.add_flag("--numeric-owner", options.numeric_owner, "Store numeric ids only, no user or group names");
  app.add_flag("-S,--sparse", options.sparse,
               "Store files with holes as sparse entries (the holes take no room; extracted as holes). "
               "Sparse entries are always read, in every GNU and pax form");
  app.add_flag("-p,--preserve-permissions", options.preserve_permissions,
               "Extract setuid/setgid bits and ignore the umask (root's umask is never applied, as in GNU tar)");
  app.add_flag("--same-owner", options.same_owner, "Restore owners (when running as root)");
  app.add_flag("--devices", options.devices, "Create device nodes (when running as root)");
  app.add_flag("--strict", options.strict, "Fail on the first entry refused for safety (default: warn, go on)");
  app.add_option("-T,--files-from", options.files_from,
                 "Archive (or extract, list) the names in FILE too, one a line; - is stdin (repeatable)")
      ->type_name("FILE")
      ->allow_extra_args(false);
  app.add_flag("--null", options.null_names, "The -T lists are separated by NUL bytes, not lines");
  app.add_option("--strip-components", options.strip_components,
                 "Extract each entry without the first N components of its name (entries with nothing left are "
                 "skipped); not when listing, as GNU tar")
      ->type_name("N");
  app.add_option("--max-output", options.max_output,
                 "Extracting: stop with an error before a file would take the contents written past SIZE in all "
                 "(e.g. 10G; the entries before it stay); a guard against archive bombs")
      ->type_name("SIZE");
  app.add_flag("-O,--to-stdout", options.to_stdout,
               "Extract the files' contents to stdout, one after the other; nothing is written to disk");
  app.add_flag("-k,--keep-old-files", options.keep_old_files,
               "Extract no entry over an existing file: it is kept, the entry reported, exit status 2 "
               "(default: replaced)");
  app.add_flag("--no-recursion", options.no_recursion, "Archive directories given without their contents");
  app.add_flag("--one-file-system", options.one_file_system,
               "Archive a directory on another file system (a mount point) without its contents");
  app.add_flag("--totals", options.totals,
               "Print the bytes of tar written or read, and the rate, on stderr (as GNU tar)");
  tidy_help(app);

  try {
    // The old-style bundle first (tar cf -9-x.tar: the word after it is f's value), then levels.
    std::vector<std::string> words = expand_old_style({argv + std::min(argc, 1), argv + argc}, app);
    std::vector<char*> expanded{argc > 0 ? argv[0] : nullptr};
    for (std::string& word : words) expanded.push_back(word.data());
    std::vector<std::string> args = rewrite_level_flags(static_cast<int>(expanded.size()), expanded.data(), app);
    std::reverse(args.begin(), args.end());
    app.parse(args);
    options.directory = the_directory(directories);
    const int modes = int(options.create) + int(options.extract) + int(options.list);
    if (modes != 1) throw Error(ErrorKind::kUsage, "give exactly one of -c (create), -x (extract), -t (list)");
    if (options.archive.empty()) throw Error(ErrorKind::kUsage, "name the archive with -f ARCHIVE (- for stdin/stdout)");
    const bool list_on_stdin = std::count(options.files_from.begin(), options.files_from.end(), "-") > 0;
    if (list_on_stdin && options.archive == "-" && !options.create) {
      throw Error(ErrorKind::kUsage, "-T - and -f - cannot both read stdin");
    }
    if (std::count(options.files_from.begin(), options.files_from.end(), "-") > 1) {
      throw Error(ErrorKind::kUsage, "-T - can be given once");
    }
    if (options.to_stdout && !options.extract) throw Error(ErrorKind::kUsage, "-O goes with -x (extract)");
    if (!options.max_output.empty() && !options.extract) {
      throw Error(ErrorKind::kUsage, "--max-output goes with -x (extract)");
    }
    (void)max_output_bytes(options);  // a bad SIZE is a usage error before the archive is opened
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", app.help());
    return kExitSuccess;
  } catch (const CLI::ParseError& e) {
    // GNU tar's -j is bzip2, which sluice does not write; here it is the thread count.
    const std::string what = e.what();
    const std::size_t value = what.find("Value ");
    const bool not_a_count = what.starts_with("--threads") && value != std::string::npos &&
                             !std::isdigit(static_cast<unsigned char>(what[std::min(value + 6, what.size() - 1)]));
    const std::string hint = not_a_count ? " (-j is the thread count; sluice writes no bzip2)" : "";
    fmt::print(stderr, "sluice tar: {}{}\nTry 'sluice tar --help'.\n", what, hint);
    return kExitUsage;
  } catch (const Error& e) {
    fmt::print(stderr, "sluice tar: {}\nTry 'sluice tar --help'.\n", e.what());
    return kExitUsage;
  }
  try {
    for (const std::string& list : options.files_from) {
      for (std::string& name : read_name_list(list, options.null_names)) options.paths.push_back(std::move(name));
    }
    if (options.create) return run_create(options);
    if (options.extract) return run_extract(options);
    return run_list(options);
  } catch (const Error& e) {
    return report_error("sluice", e);
  }
}

}  // namespace sluice::app
