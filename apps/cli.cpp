// Command-line parsing with CLI11, plus the gzip/zstd habit of level flags like -9 and -19.
#include "apps/cli.h"

#include "apps/demo.h"
#include "apps/exit_status.h"
#include "apps/progress.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "sluice/codec.h"
#include "sluice/compress.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/version.h"

namespace sluice::app {

namespace {

// Whether the option `name` ("-o", "--output") of `app` takes a value; false for flags and for
// names it does not have.
bool takes_value(const CLI::App& app, const std::string& name) {
  const CLI::Option* option = app.get_option_no_throw(name);
  return option && option->get_items_expected_max() > 0;
}

bool all_digits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

}  // namespace

std::vector<std::string> rewrite_level_flags(int argc, char** argv, const CLI::App& app, bool level_words) {
  std::vector<std::string> args;
  bool options_ended = false;
  bool value_next = false;  // the word before was an option whose value is this word
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (value_next || options_ended || arg.size() < 2 || arg[0] != '-') {
      value_next = false;
      args.push_back(arg);
      continue;
    }
    if (arg == "--") {
      options_ended = true;
      args.push_back(arg);
      continue;
    }
    if (arg.starts_with("--")) {
      value_next = arg.find('=') == std::string::npos && takes_value(app, arg);
      if (level_words && (arg == "--fast" || arg == "--best")) {
        args.push_back("--level=" + arg.substr(2));
      } else if (level_words && arg.starts_with("--fast=")) {
        args.push_back("--level=-" + arg.substr(7));
      } else {
        args.push_back(arg);
      }
      continue;
    }
    if (arg.size() <= 4 && all_digits(std::string_view(arg).substr(1))) {
      args.push_back("--level=" + arg.substr(1));
      continue;
    }
    // A cluster of short options, as gzip takes them (-9c, -dc9, -kj4): its digits are a level
    // (-c19: 19), a letter that takes a value takes the rest of the word (or else the next word).
    // Without digits, or with other characters than letters and digits, the parser takes the word
    // as it is (and names what it does not know); but a level run into them (-9-c) it would take
    // for a file name, so it is refused here, as gzip refuses it ("invalid option").
    if (!std::all_of(arg.begin() + 1, arg.end(), [](unsigned char c) { return std::isalnum(c); })) {
      if (std::isdigit(static_cast<unsigned char>(arg[1]))) throw CLI::ExtrasError({arg});
      value_next = takes_value(app, arg.substr(0, 2)) && arg.size() == 2;
      args.push_back(arg);
      continue;
    }
    std::vector<std::string> words;
    bool level_seen = false;
    for (std::size_t at = 1; at < arg.size();) {
      if (std::isdigit(static_cast<unsigned char>(arg[at]))) {
        std::size_t end = at;
        while (end < arg.size() && std::isdigit(static_cast<unsigned char>(arg[end]))) ++end;
        words.push_back("--level=" + arg.substr(at, end - at));
        level_seen = true;
        at = end;
        continue;
      }
      const std::string letter = std::string("-") + arg[at];
      if (takes_value(app, letter)) {
        words.push_back(letter + arg.substr(at + 1));
        value_next = at + 1 == arg.size();
        break;
      }
      words.push_back(letter);
      ++at;
    }
    if (level_seen) {
      args.insert(args.end(), words.begin(), words.end());
    } else {
      args.push_back(arg);
    }
  }
  return args;
}

namespace {

// Options that say what a run does (its mode, which files it writes, replaces or removes, what it
// prints on stdout), not how: refused in SLUICE, as gzip refuses -d or -f in GZIP. An export of
// SLUICE=--rm deleted every input of every later run, -d made `sluice -c` decompress, and --json
// broke `tar -I sluice`. What stays: levels, formats and their forms, threads, chunk sizes, limits,
// -n, -k, -q, -v, progress, --synchronous, --fail-fast.
bool changes_what_is_done(const std::string& name) {
  static const std::set<std::string> kRefused = {
      "-d",       "--decompress", "--uncompress", "-t",           "--test",   "-l",       "--list",
      "-c",       "--stdout",     "--to-stdout",  "-o",           "--output", "-f",       "--force",
      "--rm",     "-r",           "--recursive",  "--output-dir", "-N",       "--name",   "-S",
      "--suffix", "--json",       "-h",           "--help",       "-V",       "--version"};
  return kRefused.contains(name);
}

// The words of the SLUICE environment variable, split at white space (no quoting: options only,
// values attached). With `app`, a word that would make the command line's next word its value
// (-o, --output) or end the options (--) is refused: SLUICE's words stand alone; so is an option
// that changes what a run does (changes_what_is_done).
std::vector<std::string> environment_words(const char* environment, const CLI::App* app = nullptr) {
  std::vector<std::string> words;
  if (!environment) return words;
  std::string word;
  for (const char* c = environment;; ++c) {
    if (*c == '\0' || std::isspace(static_cast<unsigned char>(*c))) {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
      if (*c == '\0') break;
    } else {
      word += *c;
    }
  }
  for (const std::string& w : words) {
    if (w.size() < 2 || w[0] != '-') {
      throw Error(ErrorKind::kUsage,
                  fmt::format("SLUICE holds '{}', which is not an option (SLUICE holds options only, values "
                              "attached: SLUICE='-9 --format=zstd -T4')",
                              w));
    }
    if (!app) continue;
    const bool long_option = w.starts_with("--");
    const std::string name = long_option ? w.substr(0, w.find('=')) : w.substr(0, 2);
    const bool value_attached = long_option ? w.find('=') != std::string::npos : w.size() > 2;
    if (w == "--" || (takes_value(*app, name) && !value_attached)) {
      throw Error(ErrorKind::kUsage, fmt::format("SLUICE holds '{}' {} (SLUICE holds options only, values attached: "
                                                 "SLUICE='-9 --format=zstd -T4')",
                                                 w, w == "--" ? "which would end the options" : "without its value"));
    }
    // Each flag of a cluster ("-kd"), up to one that takes the rest as its value ("-T4").
    std::vector<std::string> names;
    if (long_option) {
      names.push_back(name);
    } else {
      for (std::size_t at = 1; at < w.size(); ++at) {
        names.push_back("-" + std::string(1, w[at]));
        if (takes_value(*app, names.back())) break;  // the rest is its value
      }
    }
    for (const std::string& flag : names) {
      if (changes_what_is_done(flag)) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("SLUICE holds '{}', which changes what a run does ({}): SLUICE is for how, as levels, "
                                "formats and threads (give {} on the command line)",
                                w, flag, flag));
      }
    }
  }
  return words;
}

// " (from SLUICE=...)" when a parse error's `message` names one of the SLUICE variable's words:
// the command line a user typed may not show the word the error is about.
std::string from_environment(const std::string& message) {
  const char* environment = std::getenv("SLUICE");
  try {
    for (const std::string& word : environment_words(environment)) {
      if (message.find(word) != std::string::npos) return fmt::format(" (from SLUICE='{}')", environment);
    }
  } catch (const Error&) {  // reported before parsing
  }
  return "";
}

}  // namespace

std::vector<std::string> main_command_args(int argc, char** argv, const char* environment, const CLI::App& app) {
  std::vector<std::string> args;
  const std::string program = argc > 0 ? std::filesystem::path(argv[0]).filename().string() : "";
  if (program.starts_with("unsluice")) args.push_back("-d");
  if (program.starts_with("sluicecat")) args.insert(args.end(), {"-d", "-c"});
  const std::vector<std::string> words = environment_words(environment, &app);
  std::vector<char*> all{argc > 0 ? argv[0] : nullptr};
  for (const std::string& word : words) all.push_back(const_cast<char*>(word.c_str()));
  for (int i = 1; i < argc; ++i) all.push_back(argv[i]);
  for (std::string& arg : rewrite_level_flags(static_cast<int>(all.size()), all.data(), app, /*level_words=*/true)) {
    args.push_back(std::move(arg));
  }
  return args;
}

int resolve_level(const std::string& text, const CodecInfo& info) {
  if (text.empty()) return 0;
  if (text == "best") return info.max_level;
  if (text == "fast") return std::max(info.min_level, -1);  // zstd --fast is level -1, gzip --fast 1
  int level = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), level);
  if (error != std::errc{} || end != text.data() + text.size()) {
    throw Error(ErrorKind::kUsage, fmt::format("--level: '{}' is not a level", text));
  }
  if (level == 0 && info.min_level > 0) {
    throw Error(ErrorKind::kUsage, fmt::format("{} has no level 0 (no store mode): its levels are {} to {}", info.name,
                                               info.min_level, info.max_level));
  }
  return level;
}

std::string codec_choices() { return fmt::format("{}", fmt::join(CodecRegistry::global().names(), "|")); }

std::string compressed_tar_suffixes() {
  std::vector<std::string> suffixes;
  for (const std::string& name : CodecRegistry::global().names()) {
    const CodecInfo info = *CodecRegistry::global().find(name);
    suffixes.push_back(".tar" + info.extension);
    for (const std::string& suffix : info.tar_suffixes) suffixes.push_back(suffix);
  }
  return fmt::format("{}", fmt::join(suffixes, ", "));
}

std::string compressed_suffixes() {
  std::vector<std::string> suffixes;
  for (const std::string& name : CodecRegistry::global().names())
    suffixes.push_back(CodecRegistry::global().find(name)->extension);
  return fmt::format("{}", fmt::join(suffixes, ", "));
}

void add_codec_flags(CLI::App& app, CodecFlags& flags) {
  const auto remember = [&flags](std::string codec, std::string knob, std::string flag) {
    return [&flags, codec, knob, flag](const std::string& value) {
      flags.settings.push_back({codec, knob, flag, value});
    };
  };
  for (const std::string& name : CodecRegistry::global().names()) {
    const CodecInfo info = *CodecRegistry::global().find(name);
    if (!info.backends.empty()) {
      const std::string flag = fmt::format("--{}-backend", name);
      app.add_option_function<std::string>(flag, remember(name, "", flag),
                                           fmt::format("{}: the library that compresses and decompresses (default: "
                                                       "the fastest for each level and job)",
                                                       name))
          ->check(CLI::IsMember(info.backends))
          ->type_name(fmt::format("{}", fmt::join(info.backends, "|")));
    }
    for (const CodecKnob& knob : info.knobs) {
      const std::string flag = fmt::format("--{}-{}", name, knob.name);
      app.add_option_function<std::string>(flag, remember(name, knob.name, flag),
                                           fmt::format("{}: {} (default: {})", name, knob.help, knob.default_value))
          ->check(CLI::IsMember(knob.values))
          ->type_name(fmt::format("{}", fmt::join(knob.values, "|")));
      for (const CodecKnob::Shorthand& shorthand : knob.shorthands) {
        const std::string short_flag = "--" + shorthand.flag;
        app.add_flag_callback(
            short_flag,
            [&flags, name, knob_name = knob.name, short_flag, value = shorthand.value] {
              flags.settings.push_back({name, knob_name, short_flag, value});
            },
            shorthand.help);
      }
    }
  }
}

void apply_codec_flags(const CodecFlags& flags, const std::string& codec, CodecOptions& options) {
  std::map<std::string, const CodecFlags::Setting*> knob_set;
  for (const CodecFlags::Setting& setting : flags.settings) {
    if (setting.knob.empty()) {
      // A backend for another codec is left for the codec to refuse ("zstd has no backends").
      if (setting.codec == codec || options.backend.empty()) options.backend = setting.value;
      continue;
    }
    if (setting.codec != codec) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("{} is a {} option; the format here is {}", setting.flag, setting.codec, codec));
    }
    const auto [earlier, first] = knob_set.emplace(setting.knob, &setting);
    if (!first && earlier->second->value != setting.value) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("{} and {} cannot be used together", earlier->second->flag, setting.flag));
    }
    options.knobs[setting.knob] = setting.value;
  }
}

std::map<std::string, std::string> backend_flags(const CodecFlags& flags) {
  std::map<std::string, std::string> backends;
  for (const CodecFlags::Setting& setting : flags.settings) {
    if (setting.knob.empty()) backends[setting.codec] = setting.value;
  }
  return backends;
}

void add_directory_option(CLI::App& app, std::vector<std::string>& given, const std::string& description) {
  app.add_option("-C,--directory", given, description)->type_name("DIR")->allow_extra_args(false);
}

std::string the_directory(const std::vector<std::string>& given) {
  if (given.size() > 1) {
    throw Error(ErrorKind::kUsage,
                "-C is taken once, for all PATHs (GNU tar's -C between PATHs, a directory for those after it, is "
                "not supported: run once for each directory)");
  }
  return given.empty() ? "" : given.front();
}

void add_threads_option(CLI::App& app, int& threads, const std::string& description, const std::string& names) {
  app.add_option(names, threads, description)
      ->type_name("N")
      ->check(CLI::Range(0, 1024))
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

void tidy_help(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    if (option->get_type_size() == 0) continue;  // a flag
    std::string type = option->get_type_name();
    if (const std::size_t colon = type.find(':'); colon != std::string::npos) type.resize(colon);
    if (option->get_positional()) {
      type = option->get_expected_max() > 1 ? "..." : " ";  // the name says what it is
    }
    option->option_text(type);
  }
  for (CLI::App* command : app.get_subcommands({})) tidy_help(*command);
}

void add_pin_flag(CLI::App& app) {
  app.add_flag_callback(
      "--no-pin", [] { set_thread_pinning(false); },
      "Do not pin threads to CPUs (pinned when there is one thread per CPU)");
}

ParseResult parse_command_line(int argc, char** argv) {
  CliOptions options;
  options.format = CompressOptions{}.codec;
  CLI::App app{"Parallel gzip, zstd and lz4 compression with a oneTBB flow graph.\n"
               "With no FILE, or when FILE is -, filters standard input to standard output.",
               "sluice"};
  app.set_version_flag("-V,--version", "sluice " SLUICE_VERSION_STRING);
  app.footer(
      "Examples:\n"
      "  sluice big.log                 writes big.log.gz, keeps big.log\n"
      "  sluice -F zstd -19 -j 8 data   writes data.zst at level 19 on 8 threads\n"
      "  sluice -d data.zst             writes data (format from the magic bytes)\n"
      "  sluice -r logs/ --output-dir out/   compresses a tree in one graph run\n"
      "  tar -I 'sluice -F zstd' -cf x.tar.zst dir\n"
      "Also installed as unsluice (sluice -d) and sluicecat (sluice -dc). Options in the environment\n"
      "variable SLUICE come before those on the command line (SLUICE='-9 -T4'; the last level wins).\n"
      "Exit status: 0 success, 1 a file failed, 2 a warning (trailing garbage after the last member or\n"
      "frame: the data before it was written, as gzip does) or a usage error.");

  bool decompress = false;
  bool keep = false;
  bool list = false;
  bool ultra = false;
  std::string level;
  std::string chunk_size;
  std::string demo_size;
  std::string max_output;
  constexpr auto kLastWins = CLI::MultiOptionPolicy::TakeLast;
  app.add_option("FILE", options.files, "Files to compress or decompress (none or -: standard input)")->type_name("");
  app.add_flag("-d,--decompress,--uncompress", decompress, "Decompress (format detected from content)");
  bool test = false;
  app.add_flag("-t,--test", test, "Check the integrity of compressed files; write nothing");
  app.add_flag("-l,--list", list,
               "List compressed files: format, units, sizes, ratio and check (sizes the stream records, "
               "else decoded)");
  add_codec_flags(app, options.codec_flags);
  app.add_flag("-c,--stdout,--to-stdout", options.to_stdout, "Write to standard output, keep inputs");
  app.add_option("-o,--output", options.output_path, "Write the output to PATH (one input only; -: standard output)")
      ->type_name("PATH");
  app.add_flag("-f,--force", options.force,
               "Overwrite outputs; allow compressed data on a terminal; take symbolic links and files with "
               "several links; with -dc, pass data in no known format through (zcat -f)");
  CLI::Option* keep_flag =
      app.add_flag("-k,--keep", keep, "Keep input files (the default; the later of -k and --rm wins)");
  CLI::Option* remove_flag =
      app.add_flag("--rm", options.remove_input, "Remove each input after its output is complete");
  CLI::Option* no_name_flag = app.add_flag("-n,--no-name", options.no_name,
                                           "Do not store the file name and time in gzip headers (the later of "
                                           "-n and -N wins)");
  CLI::Option* name_flag =
      app.add_flag("-N,--name", options.restore_name,
                   "Decompressing: name the output and set its time from the gzip header, as gunzip -N");
  app.add_option("-S,--suffix", options.suffix, "Use suffix SUF instead of the format's (.gz, .zst, .lz4)")
      ->type_name("SUF")
      ->multi_option_policy(kLastWins);
  app.add_option("-F,--format", options.format, "Output format when compressing (default: gzip)")
      ->check(CLI::IsMember(CodecRegistry::global().names()))
      ->type_name(codec_choices())
      ->multi_option_policy(kLastWins);
  app.add_option("--level", level,
                 "Compression level; also -1 .. -19, --fast (gzip -1, zstd -1), --fast=N (zstd -N), --best; "
                 "the last one given wins")
      ->type_name("N")
      ->multi_option_policy(kLastWins);
  app.add_flag("--ultra", ultra, "Accepted for zstd's habit: zstd levels 20 to 22 need no flag in sluice");
  add_threads_option(app, options.threads, "Worker threads, as zstd's -T N and pigz's -p N (default and 0: all cores)",
                     "-j,-T,-p,--threads");
  add_pin_flag(app);
  app.add_option("--chunk-size", chunk_size, "Bytes per chunk, e.g. 128K or 4M (default per format)")
      ->type_name("SIZE")
      ->multi_option_policy(kLastWins);
  app.add_option("--max-output", max_output,
                 "Decompressing: stop with an error once a file's output would exceed SIZE (e.g. 10G)")
      ->type_name("SIZE")
      ->multi_option_policy(kLastWins);
  app.add_flag("-r,--recursive", options.recursive,
               "Compress or decompress every file under the directories given (compressed files, by suffix "
               "or content, are not compressed again)");
  app.add_option("--output-dir", options.output_dir, "Write outputs under DIR, keeping relative paths")
      ->type_name("DIR");
  app.add_flag("--fail-fast", options.fail_fast, "Stop at the first failing file (default: do the others)");
  app.add_flag("--json", options.json,
               "Print one JSON record per file (with its position among the inputs), then a summary, on stdout");
  app.add_flag("--synchronous", options.synchronous, "Flush every output to disk before publishing it");
  CLI::Option* quiet_flag =
      app.add_flag("-q,--quiet", options.quiet, "Print nothing but errors (the later of -q and -v wins)");
  CLI::Option* verbose_flag = app.add_flag("-v,--verbose", options.verbose, "Print sizes and speed for each file");
  add_progress_flags(app, options);

  CLI::App* demo = app.add_subcommand(
      "demo", "Compress a built-in sample (or FILE) with every codec, check the round trip, print a table");
  demo->add_option("--size", demo_size, "Size of the built-in sample (default 32M)")->type_name("SIZE");
  demo->add_option("FILE", options.files, "Use these files instead of the built-in sample")->type_name("");
  add_threads_option(*demo, options.threads);
  add_pin_flag(*demo);
  demo->footer(demo_help_footer());  // not the main command's
  tidy_help(app);
  // Commands with options of their own, dispatched before this parser (main.cpp): listed here
  // so that --help shows them under Subcommands.
  for (const auto& [name, what] : std::initializer_list<std::pair<const char*, const char*>>{
           {"tar", "Create, extract or list tar archives (sluice tar --help)"},
           {"zip", "Create, extract, list or test zip archives (sluice zip --help)"},
           {"transcode", "Decompress and compress again in one streaming pass (sluice transcode --help)"},
           {"run", "Run a pipeline described in a TOML file (sluice run --help)"}}) {
    app.add_subcommand(name, what)->allow_extras();
  }
  // `sluice -k demo` is a file named demo, as `sluice -k tar` is refused as one: a command is the
  // first word only (the SLUICE variable's options come before it, and are not words typed).
  const bool demo_first = argc >= 2 && std::string_view(argv[1]) == "demo";
  app.parse_complete_callback([&app, demo_first] {
    for (const CLI::App* command : app.get_subcommands()) {
      if (command->get_name() != "demo" || !demo_first) {
        throw CLI::ValidationError(command->get_name(), fmt::format("a command, so it comes first (sluice {} ...); "
                                                                    "for a file of that name, write ./{}",
                                                                    command->get_name(), command->get_name()));
      }
    }
  });

  try {
    std::vector<std::string> args = main_command_args(argc, argv, std::getenv("SLUICE"), app);
    std::reverse(args.begin(), args.end());  // CLI11 takes them in reverse order
    app.parse(args);
    if (app.get_option("--suffix")->count() > 0 && options.suffix.empty()) {
      throw Error(ErrorKind::kUsage, "invalid suffix '' (-S needs one, as gzip's)");
    }
    // Of -k and --rm, -q and -v, -n and -N, the later wins, as in gzip and zstd: an alias's or the
    // SLUICE variable's flag is taken back on the command line (unsluice -N ... -n).
    for (const CLI::Option* option : app.parse_order()) {
      if (option == keep_flag || option == remove_flag) options.remove_input = option == remove_flag;
      if (option == quiet_flag || option == verbose_flag) {
        options.quiet = option == quiet_flag;
        options.verbose = option == verbose_flag;
      }
      if (option == no_name_flag || option == name_flag) {
        options.no_name = option == no_name_flag;
        options.restore_name = option == name_flag;
      }
    }
    options.level = resolve_level(level, *CodecRegistry::global().find(options.format));
    if (!chunk_size.empty()) options.chunk_bytes = parse_byte_count(chunk_size);
    if (!demo_size.empty()) options.demo_bytes = parse_byte_count(demo_size);
    options.max_output_bytes = parse_max_output(max_output);
    // Standard output, as the subcommands' -o - and lz4's are; with -c or several inputs, the
    // usage errors of -o PATH (check_usage).
    if (options.output_path == "-" && !options.to_stdout && options.files.size() <= 1 && !options.recursive) {
      options.output_path.clear();
      options.to_stdout = true;
    }
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", app.help());
    return {std::nullopt, kExitSuccess};
  } catch (const CLI::CallForVersion&) {
    fmt::print("sluice {}\n", SLUICE_VERSION_STRING);
    return {std::nullopt, kExitSuccess};
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "sluice: {}{}\nTry 'sluice --help'.\n", e.what(), from_environment(e.what()));
    return {std::nullopt, kExitUsage};
  } catch (const Error& e) {
    fmt::print(stderr, "sluice: {}\n", e.what());
    return {std::nullopt, kExitUsage};
  }
  options.mode = demo->parsed() ? Mode::kDemo
                 : list         ? Mode::kList
                 : test         ? Mode::kTest
                 : decompress   ? Mode::kDecompress
                                : Mode::kCompress;
  return {options, 0};
}

std::uint64_t parse_max_output(const std::string& text) {
  if (text.empty()) return 0;
  const std::uint64_t bytes = parse_byte_count(text);
  if (bytes == 0)
    throw Error(ErrorKind::kUsage, "--max-output must be at least 1 byte (give no limit by leaving it out)");
  return bytes;
}

namespace {

// The length of the well-formed UTF-8 sequence at the start of `text`, or 0 if it is not one.
std::size_t utf8_sequence(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the second byte's range (RFC 3629's table)
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF)
    length = 2;
  else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (std::size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

std::string mode_text(char type, std::uint32_t mode) {
  std::string text(10, '-');
  text[0] = type;
  const char* letters = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (mode & (0400u >> i)) text[1 + i] = letters[i];
  }
  if (mode & 04000) text[3] = (mode & 0100) ? 's' : 'S';
  if (mode & 02000) text[6] = (mode & 0010) ? 's' : 'S';
  if (mode & 01000) text[9] = (mode & 0001) ? 't' : 'T';
  return text;
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (std::size_t at = 0; at < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[at]);
    const std::size_t length = utf8_sequence(std::string_view(text).substr(at));
    if (length == 0) {
      out += fmt::format("\\udc{:02x}", c);
      ++at;
      continue;
    }
    if (length > 1) {
      out.append(text, at, length);
      at += length;
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
    ++at;
  }
  return out + "\"";
}

std::string overwrite_hint(const Error& error) { return is_output_exists(error) ? "; use -f to overwrite" : ""; }

int exit_status(const Error& error) { return error.kind() == ErrorKind::kUsage ? kExitUsage : kExitFailure; }

int exit_status(std::size_t failures, std::size_t warnings) {
  return failures > 0 ? kExitFailure : warnings > 0 ? kExitWarning : kExitSuccess;
}

int report_error(const std::string& program, const Error& error) {
  fmt::print(stderr, "{}: {}{}\n", program, error.what(), overwrite_hint(error));
  return exit_status(error);
}

}  // namespace sluice::app
