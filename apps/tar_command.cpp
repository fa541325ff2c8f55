// `sluice tar`: create, extract and list tar archives. Parses its own arguments (tar's -c/-x/-t,
// -f, -C, -v mean what they mean to tar) and calls sluice/tar.h.
#include "apps/tar_command.h"

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <memory>

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
};

std::string mode_string(const TarEntry& entry) {
  std::string text(10, '-');
  switch (entry.type) {
    case TarEntryType::kDirectory: text[0] = 'd'; break;
    case TarEntryType::kSymlink: text[0] = 'l'; break;
    case TarEntryType::kHardLink: text[0] = 'h'; break;
    case TarEntryType::kCharDevice: text[0] = 'c'; break;
    case TarEntryType::kBlockDevice: text[0] = 'b'; break;
    case TarEntryType::kFifo: text[0] = 'p'; break;
    case TarEntryType::kFile: break;
  }
  const char* letters = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (entry.mode & (0400u >> i)) text[1 + i] = letters[i];
  }
  if (entry.mode & 04000) text[3] = (entry.mode & 0100) ? 's' : 'S';
  if (entry.mode & 02000) text[6] = (entry.mode & 0010) ? 's' : 'S';
  if (entry.mode & 01000) text[9] = (entry.mode & 0001) ? 't' : 'T';
  return text;
}

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

int run_create(const TarCliOptions& options) {
  if (options.paths.empty()) throw Error(ErrorKind::kUsage, "tar -c needs at least one PATH to archive");
  std::string codec = options.format.empty() ? tar_codec_for_path(options.archive) : options.format;
  if (codec == "none") codec.clear();
  if (options.format.empty() && codec.empty() && options.archive != "-") {
    // A suffix that names no format sluice writes (.tar.xz, .zip, .foo) would get a plain tar
    // under a name that promises something else: refuse it, as it cannot be what was meant.
    const std::string file = std::filesystem::path(options.archive).filename().string();
    const std::size_t dot = file.rfind('.');
    if (dot != std::string::npos && dot > 0 && file.substr(dot) != ".tar") {
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
  const auto flag = [](const char* name, auto parse) {
    try {
      return parse();
    } catch (const Error& e) {
      throw Error(ErrorKind::kUsage, fmt::format("{}: {}", name, e.detail()));
    }
  };
  if (!options.mtime.empty()) create.mtime_seconds = flag("--mtime", [&] { return parse_tar_mtime(options.mtime); });
  if (!options.owner.empty()) create.owner = flag("--owner", [&] { return parse_tar_owner(options.owner); });
  if (!options.group.empty()) create.group = flag("--group", [&] { return parse_tar_owner(options.group); });
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

  if (to_stdout) {
    if (::isatty(1)) throw Error(ErrorKind::kUsage, "refusing to write an archive to a terminal");
    FdSink sink(1, "<stdout>");
    create_tar(options.paths, sink, codec, compress, create);
    return kExitSuccess;
  }
  OutputFile output(options.archive, /*overwrite=*/true);  // tar replaces an existing archive
  const FileStatus written = output.status();
  create.skip_files.emplace_back(written.device, written.inode);
  create_tar(options.paths, output, codec, compress, create);
  output.commit(false);
  return kExitSuccess;
}

void print_warning(const std::string& message) { fmt::print(stderr, "sluice: warning: {}\n", message); }

void report_not_found(const std::vector<std::string>& members) {
  for (const auto& member : members) fmt::print(stderr, "sluice: {}: not found in archive\n", printable_name(member));
}

std::unique_ptr<ByteSource> open_archive(const std::string& archive) {
  if (archive == "-") return std::make_unique<FdSource>(0, "<stdin>");
  return std::make_unique<FdSource>(archive);
}

int run_extract(const TarCliOptions& options) {
  TarExtractOptions extract;
  extract.directory = options.directory.empty() ? "." : options.directory;
  extract.members = options.paths;
  extract.exclude = options.exclude;
  extract.preserve_permissions = options.preserve_permissions;
  extract.same_owner = options.same_owner;
  extract.devices = options.devices;
  extract.strict = options.strict;
  extract.threads = options.threads;
  if (options.verbose) extract.on_entry = [](const TarEntry& entry) { fmt::print("{}\n", printable_name(entry.path)); };
  extract.on_refused = [](const TarEntry& entry, const std::string& why) {
    fmt::print(stderr, "sluice: refusing entry '{}' (archive byte {}): {}\n", printable_name(entry.path),
               entry.header_offset, why);
  };
  extract.on_failed = [](const TarEntry& entry, const Error& error) {
    fmt::print(stderr, "sluice: cannot extract '{}' (archive byte {}): {}\n", printable_name(entry.path),
               entry.header_offset, error.what());
  };
  extract.on_warning = print_warning;
  auto source = open_archive(options.archive);
  const TarExtractStats stats = extract_tar(*source, extract);
  report_not_found(stats.members_not_found);
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
  report_not_found(members.not_found());
  if (stats.warnings > 0) return kExitWarning;
  return members.not_found().empty() ? 0 : 1;
}

}  // namespace

int run_tar_command(int argc, char** argv) {
  TarCliOptions options;
  CLI::App app{"Create, extract or list tar archives, compressed with any sluice codec or plain.\n"
               "The archive is made and read through sluice's parallel graphs.",
               "sluice tar"};
  app.footer("Examples:\n"
             "  sluice tar -c -o logs.tar.zst logs/      archive and compress (codec from the suffix)\n"
             "  sluice tar -x -f logs.tar.zst -C out/    extract under out/\n"
             "  sluice tar -t -v -f logs.tar.gz          list, long form\n"
             "  sluice tar -c -f - src | ssh host ...    archive to stdout (plain unless -F)\n"
             "Exit status: 0 success; 1 failure (the archive could not be read or written, a MEMBER was not\n"
             "found, or an entry was refused with --strict); 2 some entries were refused or read past with a\n"
             "warning while the rest was extracted or listed (as GNU tar), or a usage error.");
  app.add_flag("-c,--create", options.create, "Create an archive from PATHs");
  app.add_flag("-x,--extract", options.extract, "Extract an archive (only MEMBERs if given)");
  app.add_flag("-t,--list", options.list, "List an archive's contents (only MEMBERs if given)");
  app.add_option("-f,--file,-o,--output", options.archive, "The archive; - is stdin or stdout")->type_name("ARCHIVE");
  app.add_option("-C,--directory", options.directory,
                 "Extract under DIR (created if missing); when creating, read PATHs relative to DIR")
      ->type_name("DIR");
  app.add_option("paths", options.paths, "Paths to archive, or members to extract or list")->type_name("PATH...");
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
  app.add_option("-l,--level", options.level, "Compression level (also -1 .. -19)")->type_name("N");
  add_threads_option(app, options.threads);
  add_pin_flag(app);
  app.add_option("--chunk-size", options.chunk_size, "Bytes per compressed chunk, e.g. 1M")->type_name("SIZE");
  add_codec_flags(app, options.codec_flags);
  app.add_flag("-v,--verbose", options.verbose, "Name each entry (long form when listing)");
  app.add_option("--mtime", options.mtime, "Store this modification time for every entry (@SECONDS or a UTC date)")
      ->type_name("TIME");
  app.add_option("--owner", options.owner, "Store this owner for every entry (NAME, NAME:ID or ID)")->type_name("OWNER");
  app.add_option("--group", options.group, "Store this group for every entry (NAME, NAME:ID or ID)")->type_name("GROUP");
  app.add_flag("--numeric-owner", options.numeric_owner, "Store numeric ids only, no user or group names");
  app.add_flag("-S,--sparse", options.sparse,
               "Store files with holes as sparse entries (the holes take no room; extracted as holes). "
               "Sparse entries are always read, in every GNU and pax form");
  app.add_flag("-p,--preserve-permissions", options.preserve_permissions,
               "Extract setuid/setgid bits and ignore the umask");
  app.add_flag("--same-owner", options.same_owner, "Restore owners (when running as root)");
  app.add_flag("--devices", options.devices, "Create device nodes (when running as root)");
  app.add_flag("--strict", options.strict, "Fail on the first entry refused for safety (default: warn, go on)");

  std::vector<std::string> args = rewrite_level_flags(argc, argv);
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
    const int modes = int(options.create) + int(options.extract) + int(options.list);
    if (modes != 1) throw Error(ErrorKind::kUsage, "give exactly one of -c (create), -x (extract), -t (list)");
    if (options.archive.empty()) throw Error(ErrorKind::kUsage, "name the archive with -f ARCHIVE (- for stdin/stdout)");
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", app.help());
    return kExitSuccess;
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "sluice tar: {}\nTry 'sluice tar --help'.\n", e.what());
    return kExitUsage;
  } catch (const Error& e) {
    fmt::print(stderr, "sluice tar: {}\nTry 'sluice tar --help'.\n", e.what());
    return kExitUsage;
  }
  try {
    if (options.create) return run_create(options);
    if (options.extract) return run_extract(options);
    return run_list(options);
  } catch (const Error& e) {
    return report_error("sluice", e);
  }
}

}  // namespace sluice::app
