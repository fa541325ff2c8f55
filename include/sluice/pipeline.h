// Pipelines: inputs, an ordered list of stages, and an output, described in code (PipelineSpec)
// or in a TOML file (parse_pipeline), and run with run_pipeline().
//
// A pipeline is one of three shapes, each stage a graph run:
//   per file:  [decompress] [compress] [checksum]   each input to its own output
//   archive:   tar [compress] [checksum]            every input into one tar archive
//   unpack:    [decompress] untar [checksum]        each input archive extracted to a directory
// Chained stages stream: `decompress` then `compress` runs the decompression graph and the
// compression graph at once, joined by a bounded pipe, so no file is ever held in memory whole
// (transcode() is that chain for one stream). `checksum` hashes every output as it is written and
// writes a manifest that `sha256sum -c` (or `xxh64sum -c`) verifies.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/io.h"
#include "sluice/tar.h"

namespace sluice {

enum class StageKind { kDecompress, kCompress, kTar, kUntar, kChecksum };

struct StageSpec {
  StageKind kind = StageKind::kCompress;
  // compress
  std::string codec = "zstd";
  CodecOptions codec_options;  // level, chunk_bytes, independent (gzip mode); 0 = codec default
  // decompress: force a format instead of detecting it
  std::string format;
  // checksum: "sha256" or "xxh64"; the manifest's path (default: SHA256SUMS or XXH64SUMS in the
  // output directory, or beside the output file)
  std::string algorithm = "sha256";
  std::string manifest;
  // tar
  TarCreateOptions tar;
  // untar
  bool strict = false;
  // decompress: the most bytes one input may decode to (DecompressOptions::max_output_bytes);
  // untar: the most bytes of file contents one archive may extract (TarExtractOptions and
  // ZipExtractOptions::max_output_bytes). Past it the run stops with Error(kLimit), the output
  // not published. 0: no limit.
  std::uint64_t max_output_bytes = 0;
  // Where the stage came from (a pipeline file's line), for messages; 0 when built in code.
  int line = 0;
};

struct PipelineSpec {
  // Files, directories (walked recursively), glob patterns ("logs/*.gz") or "-" for stdin.
  std::vector<std::string> inputs;
  std::vector<StageSpec> stages;
  // Where results go: a directory (per-file and unpack pipelines), a file, or "-" for stdout.
  std::string output;
  bool output_is_directory = false;
  bool overwrite = false;
  int threads = 0;                       // 0 = all cores
  std::uint64_t memory_budget_bytes = 0; // bound on chunk memory in flight; 0 = the graphs' default
  // Stops a run from outside (a Python binding on Ctrl-C): once requested, no new output starts,
  // the running one stops within a chunk (or a read of its input), is not published, and
  // run_pipeline throws Error(kCancelled).
  std::stop_token stop;
};

// Reads a pipeline file. Every key is checked: unknown tables and keys (with the nearest known
// name, "did you mean [output]?"), wrong types, unknown codecs, out-of-range levels and stages out
// of order are refused with one Error (kUsage) whose message has a line per mistake, every
// mistake of the file in its order, each "FILE:LINE:COLUMN: what" naming the key (a stage's
// problem at its line; a value from an override "FILE (override KEY=VALUE): what"). `overrides`
// are "key=value" assignments applied before checking (e.g. "threads=4", "stage.2.level=19",
// "output.directory=out"); values are TOML ("'text'" or a bare word for strings).
PipelineSpec parse_pipeline_file(const std::string& path, const std::vector<std::string>& overrides = {});
PipelineSpec parse_pipeline_text(const std::string& text, const std::string& name,
                                 const std::vector<std::string>& overrides = {});

// Checks that the stages form one of the shapes above and that the inputs and output fit it.
// Throws Error (kUsage), a line per problem.
void validate_pipeline(const PipelineSpec& spec);

// The resolved plan, one line per step, for `sluice run --dry-run`: inputs as found, stages with
// every option (defaults filled in), and each output path. The options shown are the ones
// run_pipeline() uses, resolved by the same code (the codec's defaults for the level and form,
// the chunk size create_tar uses for an archive, the chunks a memory budget allows).
std::string describe_pipeline(const PipelineSpec& spec);

struct PipelineItem {
  std::string input;
  std::string output;
  // What it holds before its stages: its input file's bytes; of a tar stage's archive, the tar
  // stream's; of an archive's entry unpacked, its contents (holes of a sparse file included).
  std::uint64_t input_bytes = 0;
  std::uint64_t output_bytes = 0;
  std::string checksum;  // hex, when there is a checksum stage
};

struct PipelineReport {
  std::vector<PipelineItem> items;
  std::string manifest;  // path written, if any
  double seconds = 0;
  // An untar stage's entries refused for safety, not written (the file system's error), and
  // what its reader read past (a tar's warnings): each also told to on_problem.
  std::uint64_t refused = 0;
  std::uint64_t failed = 0;
  std::uint64_t warnings = 0;
};

// Runs the pipeline. The first failure stops it and is thrown (outputs already published stay;
// the failing one is not published). `on_item` is called as each output is published. An untar
// stage goes on past an entry it refuses or cannot write (as `sluice tar -x`; with the stage's
// `strict`, that throws), telling `on_problem` ("ARCHIVE: refusing entry 'NAME' (archive byte N):
// why") and counting it in the report.
PipelineReport run_pipeline(const PipelineSpec& spec, const std::function<void(const PipelineItem&)>& on_item = {},
                            const std::function<void(const std::string&)>& on_problem = {});

// Decompresses `source` (any format, detected) and compresses the result with `compress`,
// streaming: both graphs run at once, joined by a bounded pipe. Bytes that are no stream after
// the last member or frame are thrown as decompress() throws them (kTrailingGarbage), once all
// that came before them is compressed into `sink`.
CompressStats transcode(ByteSource& source, ByteSink& sink, const CompressOptions& compress,
                        const DecompressOptions& decompress = {});

}  // namespace sluice
