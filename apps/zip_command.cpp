// `sluice zip`: create, extract, list and test zip archives, with `sluice tar`'s option letters
// (-c/-x/-t, -f, -C, -v), over sluice/zip.h.
#include "apps/zip_command.h"

#include <unistd.h>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "apps/cli.h"
#include "apps/exit_status.h"
#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/zip.h"

namespace sluice::app {
namespace {

struct ZipCliOptions {
  bool create = false;
  bool extract = false;
  bool list = false;
  bool test = false;
  std::string archive;
  std::string directory;
  std::vector<std::string> paths;
  std::vector<std::string> exclude;
  std::string format;
  std::optional<int> level;  // 0: stored, as zip -0
  int threads = 0;
  std::string chunk_size;
  bool verbose = false;
  std::string mtime;
  bool preserve_permissions = false;
  bool strict = false;
  bool keep_old_files = false;  // -k
  bool force = false;           // --force: -c replaces an existing archive
  std::string max_output;       // --max-output SIZE
};

// The codecs a zip member can be made with (those with a zip method).
std::vector<std::string> zip_codecs() {
  std::vector<std::string> names;
  for (const std::string& name : CodecRegistry::global().names()) {
    if (CodecRegistry::global().find(name)->zip_method != 0) names.push_back(name);
  }
  return names;
}

// One line per entry: mode, size, compressed size, method, time, name (as `unzip -Z` gives them).
std::string long_listing(const ZipEntry& entry) {
  const std::string mode = mode_text(entry.type == ZipEntryType::kDirectory ? 'd'
                                     : entry.type == ZipEntryType::kSymlink ? 'l'
                                                                            : '-',
                                     entry.mode);
  const auto seconds = static_cast<std::time_t>(entry.mtime_seconds);
  std::tm local{};
  ::localtime_r(&seconds, &local);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", &local);
  std::string name = printable_name(entry.path);
  if (entry.type == ZipEntryType::kDirectory) name += '/';
  return fmt::format("{} {:>12} {:>12} {:<8} {} {}", mode, entry.size, entry.compressed_size, entry.method_name(), when,
                     name);
}

int run_create(const ZipCliOptions& options) {
  if (options.paths.empty()) throw Error(ErrorKind::kUsage, "zip -c needs at least one PATH to archive");
  ZipCreateOptions create;
  create.directory = options.directory;
  create.exclude = options.exclude;
  create.codec = options.format;
  create.store = options.level == 0;
  create.level = options.level.value_or(0);
  create.threads = options.threads;
  if (!options.chunk_size.empty()) create.chunk_bytes = parse_byte_count(options.chunk_size);
  if (!options.mtime.empty()) {
    try {
      create.mtime_seconds = parse_tar_mtime(options.mtime);
    } catch (const Error& e) {
      throw Error(ErrorKind::kUsage, fmt::format("--mtime: {}", e.detail()));
    }
  }
  const bool to_stdout = options.archive == "-";
  std::FILE* listing = to_stdout ? stderr : stdout;
  if (options.verbose) {
    create.on_entry = [listing](const ZipEntry& entry) { fmt::print(listing, "{}\n", printable_name(entry.path)); };
  }
  create.on_skipped = [](const std::string& path, const std::string& why) {
    fmt::print(stderr, "sluice: {}: {}\n", printable_name(path), why);
  };
  if (to_stdout) {
    if (::isatty(1)) throw Error(ErrorKind::kUsage, "refusing to write an archive to a terminal");
    FdSink sink(1, "<stdout>");
    create_zip(options.paths, sink, create);
    return kExitSuccess;
  }
  // An archive already there is replaced only with --force: Info-ZIP's zip adds to it, so a user
  // of zip who meant to add would lose its members (checked again when the new one is put in place).
  try {
    OutputFile output(options.archive, options.force);
    create.skip_files = output.own_files();
    create_zip(options.paths, output, create);
    output.commit(false);
  } catch (const Error& e) {
    if (!is_output_exists(e)) throw;
    throw Error(ErrorKind::kIo,
                "already exists; sluice zip -c writes a new archive and does not add to one: --force replaces it",
                e.path());
  }
  return kExitSuccess;
}

FdSource open_archive(const std::string& archive) {
  if (archive == "-") return FdSource(0, "<stdin>");
  return FdSource(archive);
}

void report_failed(const ZipEntry&, const Error& error) { fmt::print(stderr, "sluice: {}\n", error.what()); }

// Names each MEMBER that matched nothing, with its archive; whether there was one.
bool report_not_found(const std::string& archive, const std::vector<std::string>& members) {
  for (const auto& member : members) {
    fmt::print(stderr, "sluice: {}: {}: not found in archive\n", printable_name(archive), printable_name(member));
  }
  return !members.empty();
}

int run_extract(const ZipCliOptions& options) {
  ZipExtractOptions extract;
  extract.directory = options.directory.empty() ? "." : options.directory;
  extract.members = options.paths;
  extract.member_wildcards = true;  // as unzip: sluice zip -x -f a.zip '*.txt'

  extract.exclude = options.exclude;
  extract.preserve_permissions = options.preserve_permissions;
  extract.strict = options.strict;
  extract.keep_existing = options.keep_old_files;
  extract.threads = options.threads;
  extract.max_output_bytes = parse_max_output(options.max_output);
  if (options.verbose) extract.on_entry = [](const ZipEntry& entry) { fmt::print("{}\n", printable_name(entry.path)); };
  FdSource source = open_archive(options.archive);
  extract.on_refused = [archive = printable_name(source.name())](const ZipEntry& entry, const std::string& why) {
    fmt::print(stderr, "sluice: {}: refusing member '{}' (archive byte {}): {}\n", archive, printable_name(entry.path),
               entry.header_offset, why);
  };
  extract.on_failed = report_failed;
  const ZipExtractStats stats = extract_zip(source, extract);
  // A MEMBER not found is a failure (1), as the help says, before members refused (2).
  if (report_not_found(options.archive, stats.members_not_found)) return 1;
  return stats.refused > 0 || stats.failed > 0 ? kExitWarning : kExitSuccess;
}

int run_list(const ZipCliOptions& options) {
  FdSource source = open_archive(options.archive);
  TarMembers members(options.paths, /*wildcards=*/true);
  const TarExclude exclude(options.exclude);
  list_zip(source, [&](const ZipEntry& entry) {
    if (members.selects(entry.path, entry.type == ZipEntryType::kDirectory) && !exclude.excludes(entry.path)) {
      fmt::print("{}\n", options.verbose
                             ? long_listing(entry)
                             : printable_name(entry.path) + (entry.type == ZipEntryType::kDirectory ? "/" : ""));
    }
  });
  return report_not_found(options.archive, members.not_found()) ? 1 : kExitSuccess;
}

int run_test(const ZipCliOptions& options) {
  FdSource source = open_archive(options.archive);
  // Only the MEMBERs given, as unzip -t takes them (they were passed over: the whole archive was
  // tested, and a misspelt member said nothing).
  const ZipTestSelection selection{options.paths, /*member_wildcards=*/true, options.exclude};
  const ZipTestStats stats = test_zip(source, selection, options.threads, report_failed);
  const bool not_found = report_not_found(options.archive, stats.members_not_found);
  if (stats.failed > 0) {
    fmt::print(stderr, "sluice: {}: {} of {} members failed the test\n", printable_name(options.archive), stats.failed,
               stats.entries);
    return 1;
  }
  if (not_found) return 1;
  if (options.verbose)
    fmt::print("{}: {} members, {} bytes: OK\n", printable_name(options.archive), stats.entries, stats.stored_bytes);
  return kExitSuccess;
}

}  // namespace

int run_zip_command(int argc, char** argv) {
  ZipCliOptions options;
  CLI::App app{
      "Create, extract, list or test zip archives. Members are compressed and decoded on every core;\n"
      "extraction follows `sluice tar`'s safety rules.",
      "sluice zip"};
  app.footer(
      "Examples:\n"
      "  sluice zip -c -o bundle.zip data/        archive (deflate, level 6)\n"
      "  sluice zip -x -f bundle.zip -C out/      extract under out/\n"
      "  sluice zip -t -v -f bundle.zip           list, long form\n"
      "  sluice zip --test -f bundle.zip          check every member's CRC-32, writing nothing\n"
      "Exit status: 0 success; 1 failure (the archive could not be read or written, a MEMBER was not\n"
      "found, a member failed --test, or one was refused with --strict); 2 some members were refused or\n"
      "could not be extracted while the rest was (as tar), or a usage error.");
  app.add_flag("-c,--create", options.create, "Create an archive from PATHs");
  app.add_flag("-x,--extract", options.extract, "Extract an archive (only MEMBERs if given)");
  app.add_flag("-t,--list", options.list, "List an archive's members (only MEMBERs if given)");
  app.add_flag("--test", options.test,
               "Decode every member (only MEMBERs if given) and check its CRC-32 and size, writing nothing");
  app.add_option("-f,--file,-o,--output", options.archive, "The archive; - is stdout when creating (a stream)")
      ->type_name("ARCHIVE");
  std::vector<std::string> directories;
  add_directory_option(app, directories,
                       "Extract under DIR (created if missing); when creating, read PATHs relative to DIR");
  app.add_option("PATH", options.paths,
                 "Paths to archive, or members to extract or list (with *, ? and [...] as unzip takes them)");
  app.add_option("--exclude", options.exclude,
                 "Leave out what matches PATTERN, and all under it (as sluice tar; repeatable)")
      ->type_name("PATTERN")
      ->allow_extra_args(false);
  const auto codecs = zip_codecs();
  std::string choices;
  for (const auto& name : codecs) choices += (choices.empty() ? "" : "|") + name;
  app.add_option("-F,--format", options.format, "Members' compression (default: deflate, the zip standard)")
      ->check(CLI::IsMember(codecs))
      ->type_name(choices);
  app.add_option("-l,--level", options.level, "Compression level (also -1 .. -9; -0 stores, as zip -0)")
      ->type_name("N");
  add_threads_option(app, options.threads);
  app.add_option("--chunk-size", options.chunk_size, "Bytes per compressed chunk of a big file, e.g. 1M")
      ->type_name("SIZE");
  app.add_flag("-v,--verbose", options.verbose, "Name each entry (long form when listing)");
  app.add_option("--mtime", options.mtime,
                 "Store this modification time for every entry (@SECONDS, or a date: UTC unless it gives an offset)")
      ->type_name("TIME");
  app.add_flag("-p,--preserve-permissions", options.preserve_permissions,
               "Extract setuid/setgid bits and ignore the umask (root's umask is never applied, as in GNU tar)");
  app.add_flag("--strict", options.strict, "Fail on the first member refused or failed (default: warn, go on)");
  app.add_flag("-k,--keep-old-files", options.keep_old_files,
               "Extracting: keep files that exist, refusing their members (default: replace them, as tar)");
  app.add_flag("--force", options.force, "Creating: replace the archive if it exists (default: refuse)");
  app.add_option("--max-output", options.max_output,
                 "Extracting: refuse an archive whose members to extract declare more than SIZE in all (e.g. 10G), "
                 "writing nothing; a guard against zip bombs")
      ->type_name("SIZE");
  tidy_help(app);

  try {
    std::vector<std::string> args = rewrite_level_flags(argc, argv, app);
    std::reverse(args.begin(), args.end());
    app.parse(args);
    options.directory = the_directory(directories);
    const int modes = int(options.create) + int(options.extract) + int(options.list) + int(options.test);
    if (modes != 1) throw Error(ErrorKind::kUsage, "give exactly one of -c (create), -x (extract), -t (list), --test");
    if (options.archive.empty()) throw Error(ErrorKind::kUsage, "name the archive with -f ARCHIVE");
    if (!options.max_output.empty() && !options.extract) {
      throw Error(ErrorKind::kUsage, "--max-output goes with -x (extract)");
    }
    if (options.keep_old_files && !options.extract) throw Error(ErrorKind::kUsage, "-k goes with -x (extract)");
    if (options.force && !options.create) throw Error(ErrorKind::kUsage, "--force goes with -c (create)");
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", app.help());
    return kExitSuccess;
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "sluice zip: {}\nTry 'sluice zip --help'.\n", e.what());
    return kExitUsage;
  } catch (const Error& e) {
    fmt::print(stderr, "sluice zip: {}\nTry 'sluice zip --help'.\n", e.what());
    return kExitUsage;
  }
  try {
    if (options.create) return run_create(options);
    if (options.extract) return run_extract(options);
    if (options.test) return run_test(options);
    return run_list(options);
  } catch (const Error& e) {
    return report_error("sluice", e);
  }
}

}  // namespace sluice::app
