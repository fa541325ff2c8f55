// The command line, parsed into plain options. Nothing here compresses anything: main() hands
// these options to file_jobs.h or demo.h, which call the library.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace sluice {
struct CodecInfo;
struct CodecOptions;
class Error;
}

namespace sluice::app {

// The settings codecs describe (CodecInfo::backends and knobs), as every compressing command
// (sluice, sluice tar -c, sluice transcode, sluice run) takes them: generated from the registry,
// --<codec>-backend NAME, --<codec>-<knob> VALUE and each knob's shorthand flags (--single-member).
struct CodecFlags {
  struct Setting {
    std::string codec;
    std::string knob;  // empty: the backend
    std::string flag;  // as the user wrote it, for messages
    std::string value;
  };
  std::vector<Setting> settings;  // in the order given
};
void add_codec_flags(CLI::App& app, CodecFlags& flags);
// The codecs' names as a type name for help texts: "gzip|zstd|lz4".
std::string codec_choices();
// The suffixes of compressed tar archives (".tar.gz, .tgz, ..."), of compressed files (".gz, ...").
std::string compressed_tar_suffixes();
std::string compressed_suffixes();
// Puts the settings for `codec` into `options`. Throws Error(kUsage) when a setting names another
// codec's knob, or two flags set one knob to different values.
void apply_codec_flags(const CodecFlags& flags, const std::string& codec, CodecOptions& options);
// The backends asked for, by codec, for decompressing (DecompressOptions::backends).
std::map<std::string, std::string> backend_flags(const CodecFlags& flags);

// The level `text` (--level's value: a number, "fast" or "best") names for the codec `info`
// describes; 0 (the codec's default) when empty. Throws Error(kUsage) for a word that is not a
// level and for level 0 where the codec has none (pigz's -0 stores; sluice's codecs do not).
int resolve_level(const std::string& text, const CodecInfo& info);

// --max-output's SIZE as the library takes it (0: none given). Throws Error(kUsage) for 0, which
// the library would take as no limit at all.
std::uint64_t parse_max_output(const std::string& text);

// What the command line adds to a library error for its user: "; use -f to overwrite" after an
// output that already exists (the library says only that it exists); "" otherwise.
std::string overwrite_hint(const Error& error);

// A mode as ls -l, tar -tv and unzip -Z show it: `type` ('-', 'd', 'l', ...), then rwx for each
// class, with s/S for setuid and setgid and t/T for the sticky bit.
std::string mode_text(char type, std::uint32_t mode);

// A JSON string for `text`. File names are bytes, not always UTF-8: a byte that is not part of
// well-formed UTF-8 is written as the escape of a lone low surrogate, "\udc" and the byte (PEP
// 383's surrogateescape): the record stays valid JSON, and Python's os.fsencode() of the parsed
// name gives back the file's bytes.
std::string json_string(const std::string& text);

// tar's and zip's -C DIR, into `given`; the_directory() then takes the one given ("" for none).
// GNU tar's -C between PATHs (a directory for the PATHs after it) is refused with a message that
// says so, not taken as one directory for all.
void add_directory_option(CLI::App& app, std::vector<std::string>& given, const std::string& description);
std::string the_directory(const std::vector<std::string>& given);

// -j/--threads N, as every command takes it (0 to 1024; 0 or unset: all cores; the last given
// wins). `names`: the flags (the main command adds zstd's -T and pigz's -p).
void add_threads_option(CLI::App& app, int& threads,
                        const std::string& description = "Worker threads (default and 0: all cores)",
                        const std::string& names = "-j,--threads");

// CLI11's help adds to an option's type name its validators ("N:INT in [1 - 1024]",
// "a|b:{a,b}"), " ..." to repeatable options, REQUIRED and "Excludes: ...": every sluice command
// calls this once its options are made (subcommands included), so that the help shows each
// option's type name alone and the text beside it says the rest. Positionals are named in
// capitals (FILE, PATH) with no type name.
void tidy_help(CLI::App& app);

// --no-pin, for every command that runs graphs: turns off pinning threads to CPUs
// (sluice::set_thread_pinning) for the rest of the run.
void add_pin_flag(CLI::App& app);

enum class Mode { kCompress, kDecompress, kTest, kList, kDemo };

// --progress / --no-progress (apps/progress.h): by default, shown when stderr is a terminal.
enum class ProgressWhen { kAuto, kAlways, kNever };

struct CliOptions {
  Mode mode = Mode::kCompress;
  std::vector<std::string> files;  // "-" is stdin; empty means stdin
  bool to_stdout = false;          // -c
  std::string output_path;         // -o
  bool force = false;              // -f
  bool remove_input = false;       // --rm
  bool no_name = false;            // -n: no name or time in the gzip header
  bool restore_name = false;       // -N: decompressing, the name and time the header records
  std::string suffix;              // -S: the suffix to write and to take off instead of the codec's
  std::string format;              // -F; the library's default (CompressOptions) unless given
  int level = 0;                   // -1..-19, --level, --fast, --best (last wins); 0: codec default
  int threads = 0;                 // -j; 0: all cores
  std::size_t chunk_bytes = 0;     // --chunk-size; 0: codec default
  bool quiet = false;              // -q
  bool verbose = false;            // -v
  ProgressWhen progress = ProgressWhen::kAuto;  // --progress, --no-progress
  bool recursive = false;          // -r: walk directories
  std::string output_dir;          // --output-dir
  bool fail_fast = false;          // --fail-fast
  bool json = false;               // --json: one JSON record per file on stdout
  bool synchronous = false;        // --synchronous: fsync every output
  CodecFlags codec_flags;          // --gzip-backend, --single-member, ... (add_codec_flags)
  std::uint64_t max_output_bytes = 0;  // --max-output: refuse to write more (decompression bombs)
  std::uint64_t demo_bytes = 32ull << 20;  // demo --size
};

// Parses argv. Returns the options, or an exit status when parsing ended the run (help and
// version: 0; usage errors: 2, after printing the message).
struct ParseResult {
  std::optional<CliOptions> options;
  int exit_status = 0;
};
ParseResult parse_command_line(int argc, char** argv);

// argv[1..] with "-19" (level 19, as in gzip and zstd) turned into "--level=19", which CLI11 would
// read as the flags -1 and -9, and a level in a cluster of short options taken out (-9c: --level=9
// -c); with `level_words`, zstd's --fast=N (level -N), gzip's --fast and --best too (as levels
// the codec resolves). A word that is the value of one of `app`'s options (-o -9, -S --best), or
// comes after "--", is left as it is. Throws CLI::ExtrasError for a level run into other characters
// (-9-c), which the parser would take for a file name.
std::vector<std::string> rewrite_level_flags(int argc, char** argv, const CLI::App& app, bool level_words = false);

// The main command's arguments: what the program's name implies (unsluice: -d; sluicecat: -dc),
// then the options in the SLUICE environment variable (`environment`; null: none), then argv[1..];
// level flags and words rewritten as rewrite_level_flags does (the last level given wins).
// Throws Error(kUsage) for a word in SLUICE that is not an option, or an option without its value.
std::vector<std::string> main_command_args(int argc, char** argv, const char* environment, const CLI::App& app);

}  // namespace sluice::app
