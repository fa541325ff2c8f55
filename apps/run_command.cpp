// `sluice run PIPELINE.toml` and `sluice transcode IN -o OUT`: pipelines from a file, and the
// decompress -> compress shortcut. Both build a PipelineSpec and call sluice/pipeline.h.
#include "apps/run_command.h"

#include <unistd.h>

#include <chrono>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "apps/cli.h"
#include "apps/exit_status.h"
#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/pipeline.h"

namespace sluice::app {
namespace {

// Parses `args` (without the subcommand's name) with `app`; returns an exit status to stop with.
std::optional<int> parse(CLI::App& app, int argc, char** argv) {
  try {
    std::vector<std::string> args = rewrite_level_flags(argc, argv, app);
    std::reverse(args.begin(), args.end());
    app.parse(args);
  } catch (const CLI::CallForHelp&) {
    fmt::print("{}", app.help());
    return kExitSuccess;
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "{}: {}\nTry '{} --help'.\n", app.get_name(), e.what(), app.get_name());
    return kExitUsage;
  }
  return std::nullopt;
}

// Binary output to a terminal is the command line's to refuse, as for compression.
void refuse_terminal_output(const std::string& output) {
  if (output == "-" && ::isatty(1)) throw Error(ErrorKind::kUsage, "refusing to write binary output to a terminal");
}

// A pipeline file's mistakes come one a line ("FILE:LINE:COLUMN: ..."): each gets the program's
// name, as a compiler's do. An output that exists gets the hint of the two ways to replace it.
int report_run_error(const Error& error) {
  const std::string text = error.what();
  if (text.find('\n') == std::string::npos) {
    const std::string hint = overwrite_hint(error).empty() ? "" : "; use -f (or output.overwrite = true) to overwrite";
    fmt::print(stderr, "sluice: {}{}\n", text, hint);
    return exit_status(error);
  }
  for (std::size_t start = 0; start < text.size();) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    fmt::print(stderr, "sluice: {}\n", std::string_view(text).substr(start, end - start));
    start = end + 1;
  }
  return exit_status(error);
}

// An untar stage's entry refused, not written or read past: the rest went on (pipeline.h).
void print_problem(const std::string& message) { fmt::print(stderr, "sluice: {}\n", message); }

bool had_problems(const PipelineReport& report) { return report.refused + report.failed + report.warnings > 0; }

void print_item(const PipelineItem& item, bool verbose) {
  if (!verbose) return;
  fmt::print(stderr, "{} -> {} ({} -> {} bytes){}\n", item.input, item.output, item.input_bytes, item.output_bytes,
             item.checksum.empty() ? "" : " " + item.checksum);
}

// --json: a record on stdout per output as it is published, per problem the run went past, and a
// summary last (with the error that stopped the run, if one did), each a line of JSON, flushed
// as written (a job runner reads them as they come).
void print_json(const std::string& record) {
  fmt::print("{}\n", record);
  std::fflush(stdout);
}

void print_item_json(const PipelineItem& item) {
  print_json(fmt::format(R"({{"input": {}, "output": {}, "status": "ok", "input_bytes": {}, "output_bytes": {}, )"
                         R"("checksum": {}}})",
                         json_string(item.input), json_string(item.output), item.input_bytes, item.output_bytes,
                         item.checksum.empty() ? "null" : json_string(item.checksum)));
}

// After a failure the run's counts of refused, failed and warned entries are unknown (the report
// goes with the exception): null, not 0 beside the problem records that said otherwise.
void print_summary_json(const PipelineReport& report, const Error* error) {
  const auto count = [&](std::uint64_t n) { return error != nullptr ? std::string("null") : std::to_string(n); };
  print_json(
      fmt::format(R"({{"summary": {{"outputs": {}, "refused": {}, "failed": {}, "warnings": {}, "seconds": {:.6f}, )"
                  R"("manifest": {}, "error": {}}}}})",
                  report.items.size(), count(report.refused), count(report.failed), count(report.warnings),
                  report.seconds, report.manifest.empty() ? "null" : json_string(report.manifest),
                  error != nullptr ? json_string(error->what()) : "null"));
}

// The run with --json: what was published before a failure is in the records and the summary
// (run_pipeline's report is lost with its exception, so the items are counted here). Exits with
// `problems_status` when the run went past problems, or as `report` says for the error that
// stopped it.
int run_with_json(const PipelineSpec& spec, bool verbose, int problems_status, int (*report)(const Error&)) {
  PipelineReport seen;
  const auto began = std::chrono::steady_clock::now();
  const auto on_item = [&](const PipelineItem& item) {
    seen.items.push_back(item);
    print_item(item, verbose);
    print_item_json(item);
  };
  const auto on_problem = [&](const std::string& message) {
    print_problem(message);
    print_json(fmt::format(R"({{"problem": {}}})", json_string(message)));
  };
  try {
    const PipelineReport done = run_pipeline(spec, on_item, on_problem);
    print_summary_json(done, nullptr);
    return had_problems(done) ? problems_status : kExitSuccess;
  } catch (const Error& e) {
    seen.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    print_summary_json(seen, &e);
    return report(e);
  }
}

// What `sluice transcode` reports an error with: as the program's other commands do.
int report_transcode_error(const Error& error) { return report_error("sluice", error); }

}  // namespace

int run_pipeline_command(int argc, char** argv) {
  CLI::App app{"Run a pipeline described in a TOML file (inputs, stages, output).\n"
               "Stages: decompress, compress, tar, untar, checksum. See examples/pipelines/.",
               "sluice run"};
  std::string file;
  bool dry_run = false;
  bool force = false;
  bool verbose = false;
  bool json = false;
  int threads = -1;
  std::string output;
  std::vector<std::string> overrides;
  app.add_option("PIPELINE", file, "The pipeline file (TOML)")->required();
  app.add_flag("-n,--dry-run", dry_run, "Print the resolved pipeline (stages, options, outputs); run nothing");
  add_threads_option(app, threads, "Override 'threads' (0: all cores)");
  add_pin_flag(app);
  app.add_flag("-f,--force", force, "Overwrite existing outputs (as output.overwrite = true)");
  app.add_option("-o,--output", output, "Override the output: a directory for per-file and untar pipelines, "
                                        "a file (or -) for tar pipelines")->type_name("PATH");
  app.add_option("--set", overrides, "Override any value: KEY=VALUE, e.g. stage.2.level=19, memory_budget=64M")
      ->type_name("KEY=VALUE");
  app.add_flag("-v,--verbose", verbose, "Name each output as it is published");
  app.add_flag("--json", json,
               "A line of JSON on stdout per output published (input, output, sizes, checksum), per problem the "
               "run went past, and a summary last (with the error that stopped the run)");
  tidy_help(app);
  app.footer(
      "Exit status: 0 success, 1 a stage failed (or an untar stage refused or could not write some\n"
      "entries, or a walk left a link or a special file alone: each named on stderr; the rest was\n"
      "done), 2 the pipeline file or a flag is wrong.");
  if (const auto status = parse(app, argc, argv)) return *status;
  if (json && dry_run) {  // the plan is text; records are of outputs published
    fmt::print(stderr, "sluice run: --json does not go with --dry-run\nTry 'sluice run --help'.\n");
    return kExitUsage;
  }
  for (const auto& assignment : overrides) {
    if (assignment.find('=') == std::string::npos || assignment.front() == '=') {
      fmt::print(stderr, "sluice run: --set '{}': use KEY=VALUE\nTry 'sluice run --help'.\n", assignment);
      return kExitUsage;
    }
  }
  try {
    if (threads >= 0) overrides.push_back(fmt::format("threads={}", threads));
    PipelineSpec spec = parse_pipeline_file(file, overrides);
    if (force) spec.overwrite = true;
    if (!output.empty()) {
      spec.output = output;  // keeps the file's choice between a directory and a file
      validate_pipeline(spec);
    }
    if (dry_run) {
      fmt::print("{}", describe_pipeline(spec));
      return kExitSuccess;
    }
    refuse_terminal_output(spec.output);
    if (json && spec.output == "-")
      throw Error(ErrorKind::kUsage, "--json writes its records to stdout, which is the pipeline's output here");
    if (json) return run_with_json(spec, verbose, kExitFailure, report_run_error);
    const PipelineReport report = run_pipeline(
        spec, [&](const PipelineItem& item) { print_item(item, verbose); }, print_problem);
    if (verbose) {
      fmt::print(stderr, "{} outputs in {:.2f} s{}\n", report.items.size(), report.seconds,
                 report.manifest.empty() ? "" : ", manifest " + report.manifest);
    }
    return had_problems(report) ? kExitFailure : kExitSuccess;
  } catch (const Error& e) {
    return report_run_error(e);
  }
}

int run_transcode_command(int argc, char** argv) {
  CLI::App app{
      "Decompress INPUT (any format, detected) and compress it again, streaming: the\n"
      "decompression and compression graphs run at once, joined by a bounded pipe.\n"
      "With --output-dir, INPUT is an archive (zip, or tar compressed or not) and each of its files\n"
      "is compressed to its own file under DIR (NAME.gz, ...) without the plain files being written.",
      "sluice transcode"};
  app.footer(
      "Examples:\n"
      "  sluice transcode logs.gz -o logs.zst                 gzip to zstd\n"
      "  sluice transcode bundle.zip --output-dir out/ -F gzip  each member to out/NAME.gz");
  std::string input;
  std::string output;
  std::string output_dir;
  std::string format;
  int level = 0;
  int threads = 0;
  std::string chunk_size;
  CodecFlags codec_flags;
  bool force = false;
  std::string max_output;
  bool verbose = false;
  bool json = false;
  app.add_option("INPUT", input, "The compressed input; - for stdin")->required();
  auto* output_option = app.add_option("-o,--output", output,
                                       "The output; - for stdout (its suffix picks the format; not with --output-dir)")
                            ->type_name("OUTPUT");
  auto* dir_option = app.add_option("--output-dir", output_dir,
                                    "Compress each file of the archive INPUT to its own file under DIR (needs -F)")
                         ->type_name("DIR");
  output_option->excludes(dir_option);
  app.add_option("-F,--format", format, "Output format (default: from the output's suffix)")
      ->check(CLI::IsMember(CodecRegistry::global().names()))
      ->type_name(codec_choices());
  app.add_option("-l,--level", level, "Compression level (also -1 .. -19)")->type_name("N");
  add_threads_option(app, threads);
  add_pin_flag(app);
  app.add_option("--chunk-size", chunk_size, "Bytes per chunk, e.g. 4M")->type_name("SIZE");
  add_codec_flags(app, codec_flags);
  app.add_flag("-f,--force", force, "Overwrite the output");
  app.add_option("--max-output", max_output,
                 "Stop with an error, publishing nothing, once INPUT would decode to more than SIZE (e.g. 10G); "
                 "with --output-dir, before the archive's files would pass SIZE, as sluice tar -x and sluice zip -x")
      ->type_name("SIZE");
  app.add_flag("-v,--verbose", verbose, "Name each output as it is published (on stderr)");
  app.add_flag("--json", json,
               "A line of JSON on stdout per output published (input, output, sizes), per problem the run went "
               "past, and a summary last (with the error that stopped the run)");
  tidy_help(app);
  if (const auto status = parse(app, argc, argv)) return *status;
  try {
    if (output.empty() && output_dir.empty()) throw Error(ErrorKind::kUsage, "give -o OUTPUT or --output-dir DIR");
    if (!output_dir.empty() && format.empty()) throw Error(ErrorKind::kUsage, "--output-dir needs the format: -F");
    if (format.empty()) {
      auto info = CodecRegistry::global().by_extension(output);
      if (!info) info = CodecRegistry::global().by_tar_name(output);  // x.tgz, x.tzst, as -d reads them
      if (!info) throw Error(ErrorKind::kUsage, fmt::format("cannot tell the format from '{}': use -F", output));
      format = info->name;
    }
    PipelineSpec spec;
    spec.inputs = {input};
    spec.output = output_dir.empty() ? output : output_dir;
    spec.output_is_directory = !output_dir.empty();
    spec.overwrite = force;
    spec.threads = threads;
    const std::uint64_t limit = parse_max_output(max_output);
    StageSpec decompress;
    decompress.kind = StageKind::kDecompress;
    decompress.max_output_bytes = limit;
    StageSpec compress;
    compress.kind = StageKind::kCompress;
    compress.codec = format;
    compress.codec_options.level = level;
    apply_codec_flags(codec_flags, format, compress.codec_options);
    if (!chunk_size.empty()) compress.codec_options.chunk_bytes = parse_byte_count(chunk_size);
    (void)CodecRegistry::global().create(format, compress.codec_options);  // checks level and chunk size
    StageSpec unpack;
    unpack.kind = StageKind::kUntar;
    unpack.max_output_bytes = limit;
    spec.stages =
        output_dir.empty() ? std::vector<StageSpec>{decompress, compress} : std::vector<StageSpec>{unpack, compress};
    if (output_dir.empty()) refuse_terminal_output(spec.output);
    if (json && spec.output == "-")
      throw Error(ErrorKind::kUsage, "--json writes its records to stdout, the output here");
    // As `sluice tar -x`: entries refused or not written are named, the others written, exit 2.
    if (json) return run_with_json(spec, verbose, kExitWarning, report_transcode_error);
    const PipelineReport report = run_pipeline(
        spec, [&](const PipelineItem& item) { print_item(item, verbose); }, print_problem);
    return had_problems(report) ? kExitWarning : kExitSuccess;
  } catch (const Error& e) {
    return report_error("sluice", e);
  }
}

}  // namespace sluice::app
