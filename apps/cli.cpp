// Command-line parsing with CLI11, plus the gzip/zstd habit of level flags like -9 and -19.
#include "apps/cli.h"

#include "apps/demo.h"
#include "apps/exit_status.h"
#include "apps/progress.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "sluice/codec.h"
#include "sluice/compress.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/version.h"

namespace sluice::app {

std::vector<std::string> rewrite_level_flags(int argc, char** argv) {
  const auto is_level_flag = [](const std::string& arg) {
    return arg.size() >= 2 && arg.size() <= 4 && arg[0] == '-' &&
           std::all_of(arg.begin() + 1, arg.end(), [](unsigned char c) { return std::isdigit(c); });
  };
  std::vector<std::string> args;
  bool options_ended = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") options_ended = true;
    if (!options_ended && is_level_flag(arg)) {
      args.push_back("--level=" + arg.substr(1));
    } else {
      args.push_back(arg);
    }
  }
  return args;
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
                                                       "the fastest per level)",
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

void add_threads_option(CLI::App& app, int& threads, const std::string& description) {
  app.add_option("-j,--threads", threads, description)->type_name("N")->check(CLI::Range(1, 1024));
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
      "Commands with options of their own (sluice COMMAND --help):\n"
      "  sluice tar        create, extract or list tar archives\n"
      "  sluice zip        create, extract, list or test zip archives\n"
      "  sluice transcode  decompress and compress again in one streaming pass\n"
      "  sluice run        run a pipeline described in a TOML file\n"
      "Exit status: 0 success, 1 a file failed, 2 a warning (trailing garbage after the last member or\n"
      "frame: the data before it was written, as gzip does) or a usage error.");

  bool decompress = false;
  bool keep = false;
  std::string chunk_size;
  std::string demo_size;
  std::string max_output;
  app.add_option("files", options.files, "Files to compress or decompress")->type_name("FILE...");
  app.add_flag("-d,--decompress,--uncompress", decompress, "Decompress (format detected from content)");
  bool test = false;
  app.add_flag("-t,--test", test, "Check the integrity of compressed files; write nothing");
  add_codec_flags(app, options.codec_flags);
  app.add_flag("-c,--stdout,--to-stdout", options.to_stdout, "Write to standard output, keep inputs");
  app.add_option("-o,--output", options.output_path, "Write the output to PATH (one input only)")->type_name("PATH");
  app.add_flag("-f,--force", options.force, "Overwrite outputs; allow compressed data on a terminal");
  app.add_flag("-k,--keep", keep, "Keep input files (the default)");
  app.add_flag("--rm", options.remove_input, "Remove each input after its output is complete");
  app.add_flag("-n,--no-name", options.no_name, "Do not store the file name and time in gzip headers");
  app.add_option("-F,--format", options.format, "Output format when compressing")
      ->check(CLI::IsMember(CodecRegistry::global().names()))
      ->type_name(codec_choices());
  app.add_option("-l,--level", options.level, "Compression level (also -1 .. -19); default per format")
      ->type_name("N");
  add_threads_option(app, options.threads);
  add_pin_flag(app);
  app.add_option("--chunk-size", chunk_size, "Bytes per chunk, e.g. 128K or 4M (default per format)")
      ->type_name("SIZE");
  app.add_option("--max-output", max_output,
                 "Decompressing: stop with an error once a file's output would exceed SIZE (e.g. 10G)")
      ->type_name("SIZE");
  app.add_flag("-r,--recursive", options.recursive, "Compress or decompress every file under the directories given");
  app.add_option("--output-dir", options.output_dir, "Write outputs under DIR, keeping relative paths")
      ->type_name("DIR");
  app.add_flag("--fail-fast", options.fail_fast, "Stop at the first failing file (default: do the others)");
  app.add_flag("--json", options.json, "Print one JSON record per file (and a summary) on stdout");
  app.add_flag("--synchronous", options.synchronous, "Flush every output to disk before publishing it");
  app.add_flag("-q,--quiet", options.quiet, "Print nothing but errors");
  app.add_flag("-v,--verbose", options.verbose, "Print sizes and speed for each file");
  add_progress_flags(app, options);

  CLI::App* demo = app.add_subcommand(
      "demo", "Compress a built-in sample (or FILE) with every codec, check the round trip, print a table");
  demo->add_option("--size", demo_size, "Size of the built-in sample (default 32M)")->type_name("SIZE");
  demo->add_option("files", options.files, "Use these files instead of the built-in sample")->type_name("FILE...");
  add_threads_option(*demo, options.threads);
  add_pin_flag(*demo);
  demo->footer(demo_help_footer());  // not the main command's

  std::vector<std::string> args = rewrite_level_flags(argc, argv);
  std::reverse(args.begin(), args.end());  // CLI11 takes them in reverse order
  try {
    app.parse(args);
    if (!chunk_size.empty()) options.chunk_bytes = parse_byte_count(chunk_size);
    if (!demo_size.empty()) options.demo_bytes = parse_byte_count(demo_size);
    if (!max_output.empty()) options.max_output_bytes = parse_byte_count(max_output);
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", app.help());
    return {std::nullopt, kExitSuccess};
  } catch (const CLI::CallForVersion&) {
    fmt::print("sluice {}\n", SLUICE_VERSION_STRING);
    return {std::nullopt, kExitSuccess};
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "sluice: {}\nTry 'sluice --help'.\n", e.what());
    return {std::nullopt, kExitUsage};
  } catch (const Error& e) {
    fmt::print(stderr, "sluice: {}\n", e.what());
    return {std::nullopt, kExitUsage};
  }
  options.mode = demo->parsed() ? Mode::kDemo
                 : test          ? Mode::kTest
                 : decompress    ? Mode::kDecompress
                                 : Mode::kCompress;
  return {options, 0};
}

std::string overwrite_hint(const Error& error) {
  return error.kind() == ErrorKind::kIo && error.detail() == "already exists" ? "; use -f to overwrite" : "";
}

int exit_status(const Error& error) { return error.kind() == ErrorKind::kUsage ? kExitUsage : kExitFailure; }

int exit_status(std::size_t failures, std::size_t warnings) {
  return failures > 0 ? kExitFailure : warnings > 0 ? kExitWarning : kExitSuccess;
}

int report_error(const std::string& program, const Error& error) {
  fmt::print(stderr, "{}: {}{}\n", program, error.what(), overwrite_hint(error));
  return exit_status(error);
}

}  // namespace sluice::app
