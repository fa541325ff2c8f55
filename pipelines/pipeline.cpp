// Running pipelines: input expansion, the three pipeline shapes, streaming transcode (two graphs
// joined by a bounded pipe), and checksum manifests.
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <nettle/sha2.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "core/byte_pipe.h"
#include "core/file_descriptor.h"
#include "pipelines/pipeline_checks.h"
#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/pipeline.h"
#include "sluice/tar.h"
#include "sluice/zip.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;

const char* stage_name(StageKind kind) {
  switch (kind) {
    case StageKind::kDecompress: return "decompress";
    case StageKind::kCompress: return "compress";
    case StageKind::kTar: return "tar";
    case StageKind::kUntar: return "untar";
    case StageKind::kChecksum: return "checksum";
  }
  return "?";
}

// The pipeline's shape, and its stages by role.
struct Plan {
  enum class Shape { kPerFile, kArchive, kUnpack } shape = Shape::kPerFile;
  const StageSpec* decompress = nullptr;
  const StageSpec* compress = nullptr;
  const StageSpec* tar = nullptr;
  const StageSpec* untar = nullptr;
  const StageSpec* checksum = nullptr;
};

// "stage 2 (compress)", with the stage's line in the pipeline file when it has one.
std::string stage_label(const PipelineSpec& spec, std::size_t index, bool with_line) {
  const StageSpec& stage = spec.stages[index];
  if (with_line && stage.line > 0)
    return fmt::format("stage {} ({}, line {})", index + 1, stage_name(stage.kind), stage.line);
  return fmt::format("stage {} ({})", index + 1, stage_name(stage.kind));
}

// The plan of `spec`, and every problem with its stages in `problems`.
Plan make_plan(const PipelineSpec& spec, std::vector<detail::PipelineProblem>& problems) {
  using Part = detail::PipelineProblem::Part;
  Plan plan;
  if (spec.stages.empty()) problems.push_back({Part::kPipeline, 0, "a pipeline needs at least one stage"});
  // Allowed orders: [decompress] [compress] [checksum] | tar [compress] [checksum] |
  // [decompress] untar [compress] [checksum]. Each kind at most once.
  int previous = -1;
  const auto rank = [](StageKind kind) {
    switch (kind) {
      case StageKind::kDecompress: return 0;
      case StageKind::kTar: return 1;
      case StageKind::kUntar: return 2;
      case StageKind::kCompress: return 3;
      case StageKind::kChecksum: return 4;
    }
    return 5;
  };
  for (std::size_t i = 0; i < spec.stages.size(); ++i) {
    const StageSpec& stage = spec.stages[i];
    const int r = rank(stage.kind);
    const bool in_order = r > previous;
    if (!in_order) {
      problems.push_back({Part::kStage, i,
                          fmt::format("{} cannot come after {}: stages go decompress, tar or untar, compress, checksum",
                                      stage_label(spec, i, false), stage_label(spec, i - 1, true))});
    }
    previous = r;
    switch (stage.kind) {
      case StageKind::kDecompress: plan.decompress = &stage; break;
      case StageKind::kCompress: plan.compress = &stage; break;
      case StageKind::kTar:
        plan.tar = &stage;
        if (plan.decompress && in_order) {
          problems.push_back(
              {Part::kStage, i,
               fmt::format("{} cannot follow {}: 'tar' packs files as they are", stage_label(spec, i, false),
                           stage_label(spec, static_cast<std::size_t>(plan.decompress - spec.stages.data()), true))});
        }
        break;
      case StageKind::kUntar: plan.untar = &stage; break;
      case StageKind::kChecksum: plan.checksum = &stage; break;
    }
  }
  plan.shape = plan.tar ? Plan::Shape::kArchive : plan.untar ? Plan::Shape::kUnpack : Plan::Shape::kPerFile;
  return plan;
}

[[noreturn]] void throw_problems(const std::vector<detail::PipelineProblem>& problems) {
  std::string text;
  for (const auto& problem : problems) text += (text.empty() ? "" : "\n") + problem.message;
  throw Error(ErrorKind::kUsage, text);
}

Plan plan_of(const PipelineSpec& spec) {
  std::vector<detail::PipelineProblem> problems;
  const Plan plan = make_plan(spec, problems);
  if (!problems.empty()) throw_problems(problems);
  return plan;
}

struct Input {
  std::string path;      // "-" for stdin
  std::string relative;  // name under the output directory
};

bool has_glob(const std::string& text) { return text.find_first_of("*?[") != std::string::npos; }

// How a directory is walked: which of its regular files are inputs, and what else is left out.
struct Walk {
  // kNotCompressed: a file with a compressed suffix is left out, as sluice -r leaves it out when
  // it compresses (a pipeline compressing a directory into itself compressed its own outputs
  // again at each run: a.log.zst.zst). kCompressed: only files with a codec's suffix are taken,
  // as sluice -d -r takes them (a decompress stage stopped at a logrotate directory's app.log).
  enum class Take { kAll, kNotCompressed, kCompressed } take = Take::kAll;
  // The output directory, where it is under a directory walked or matched by a glob, and an
  // earlier run's manifest at the default path: never inputs (a second run compressed the first
  // one's manifest and outputs again, or stopped: the manifest would replace an input). A path
  // named as it is is taken as named (and a manifest there refused: check_manifest).
  std::optional<std::pair<std::uint64_t, std::uint64_t>> output_directory, manifest;
  // Told of what the walk leaves alone: a symbolic link (one to /etc/passwd put its bytes in the
  // outputs; sluice -r and gzip -r take no link they find), a FIFO, a device.
  std::function<void(const std::string&)> left_alone;
  // A glob's files go by `take` too (logs/* compressed the last run's outputs again), unless a
  // decompress stage names its format: then the pattern says which files hold it.
  bool filter_globs = true;

  bool takes(const std::string& file) const {
    switch (take) {
      case Take::kAll:
        return true;
      case Take::kNotCompressed:
        return !has_compressed_suffix(file);
      case Take::kCompressed:
        return CodecRegistry::global().decompressed_name(file).has_value();
    }
    return true;
  }
};

std::string manifest_path(const PipelineSpec& spec, const StageSpec& checksum);

// The walk a per-file pipeline makes (and its dry run shows).
Walk walk_for(const PipelineSpec& spec, const Plan& plan, const std::function<void(const std::string&)>& left_alone) {
  Walk walk;
  if (plan.shape == Plan::Shape::kPerFile && plan.decompress)
    walk.take = Walk::Take::kCompressed;
  else if (plan.shape == Plan::Shape::kPerFile && plan.compress)
    walk.take = Walk::Take::kNotCompressed;
  walk.filter_globs = !(plan.decompress && !plan.decompress->format.empty());
  struct stat found {};
  if (spec.output_is_directory && ::stat(spec.output.c_str(), &found) == 0)
    walk.output_directory = std::pair{found.st_dev, found.st_ino};
  // Only the default manifest (SHA256SUMS in the output directory) is taken for an earlier run's:
  // a path the file names may be anything of the user's, an input the run then refuses to replace.
  if (plan.checksum && plan.checksum->manifest.empty() &&
      ::lstat(manifest_path(spec, *plan.checksum).c_str(), &found) == 0)
    walk.manifest = std::pair{found.st_dev, found.st_ino};
  walk.left_alone = left_alone;
  return walk;
}

// Files, directories (walked, sorted) and glob patterns, in the order given.
std::vector<Input> expand_inputs(const std::vector<std::string>& patterns, const Walk& walk = {}) {
  std::vector<Input> inputs;
  // A file reached twice (a directory and a glob inside it) is one input, taken where it first
  // came: it was reported as two inputs writing one output.
  std::unordered_set<std::string> taken;
  const auto add = [&](Input input) {
    if (input.path == "-" || taken.insert(fs::absolute(input.path).lexically_normal().string()).second)
      inputs.push_back(std::move(input));
  };
  for (const auto& pattern : patterns) {
    if (pattern == "-") {
      inputs.push_back({"-", "stdin"});
      continue;
    }
    std::vector<std::string> paths;
    if (has_glob(pattern)) {
      glob_t found{};
      const int status = ::glob(pattern.c_str(), GLOB_ERR, nullptr, &found);
      for (std::size_t i = 0; status == 0 && i < found.gl_pathc; ++i) paths.emplace_back(found.gl_pathv[i]);
      ::globfree(&found);
      if (paths.empty()) throw Error(ErrorKind::kIo, "matches no file", pattern);
    } else {
      paths.push_back(pattern);
    }
    const bool glob = has_glob(pattern);
    bool kept = false;  // a match the glob keeps (an input already, too)
    for (const auto& path : paths) {
      if (glob) {  // the output directory (a link to it too) and the manifest are no match
        struct stat found {};
        struct stat at {};
        if (::stat(path.c_str(), &found) == 0 &&
            walk.output_directory == std::pair<std::uint64_t, std::uint64_t>{found.st_dev, found.st_ino})
          continue;
        if (::lstat(path.c_str(), &at) == 0 &&
            walk.manifest == std::pair<std::uint64_t, std::uint64_t>{at.st_dev, at.st_ino})
          continue;
      }
      std::error_code error;
      const fs::file_status status = fs::status(path, error);
      if (error) throw Error(ErrorKind::kIo, error.message(), path);
      if (!fs::exists(status)) throw Error(ErrorKind::kIo, "no such file or directory", path);
      if (fs::is_directory(status)) {
        std::vector<std::string> files, left;
        try {
          for (auto it = fs::recursive_directory_iterator(path); it != fs::recursive_directory_iterator(); ++it) {
            const std::string file = it->path().string();
            struct stat found {};
            if (::lstat(file.c_str(), &found) != 0) continue;  // gone since it was listed
            const std::pair<std::uint64_t, std::uint64_t> which{found.st_dev, found.st_ino};
            if (S_ISDIR(found.st_mode)) {
              if (walk.output_directory == which) it.disable_recursion_pending();
            } else if (walk.manifest == which) {
              continue;
            } else if (!S_ISREG(found.st_mode)) {
              left.push_back(fmt::format("{}: {}: left alone", printable_name(file),
                                         S_ISLNK(found.st_mode) ? "is a symbolic link, which a walk does not follow"
                                                                : "is not a regular file or a directory"));
            } else if (walk.takes(file)) {
              files.push_back(file);
            }
          }
        } catch (const fs::filesystem_error& e) {
          throw Error(ErrorKind::kIo, fmt::format("cannot walk: {}", e.code().message()), e.path1().string());
        }
        std::sort(files.begin(), files.end());
        std::sort(left.begin(), left.end());
        if (walk.left_alone) std::ranges::for_each(left, walk.left_alone);
        for (const auto& file : files) add({file, fs::path(file).lexically_relative(path).string()});
        kept = true;
      } else if (!glob || !walk.filter_globs || walk.takes(path)) {  // a glob's files go by suffix, as a walk's
        add({path, fs::path(path).filename().string()});
        kept = true;
      }
    }
    if (glob && !kept) {  // every match left out: said, as none matching is
      throw Error(ErrorKind::kIo,
                  walk.take == Walk::Take::kCompressed
                      ? "matches no file with a compressed suffix (give the decompress stage a format to take them)"
                      : "matches no file that is not compressed already",
                  pattern);
    }
  }
  return inputs;
}

// "a.log.gz" -> "a.log" when decompressing; then + ".zst" when compressing.
std::string output_name(const std::string& relative, const Plan& plan) {
  std::string name = relative;
  if (plan.decompress) {
    if (const auto plain = CodecRegistry::global().decompressed_name(name)) name = *plain;
  }
  if (plan.compress) name += CodecRegistry::global().find(plan.compress->codec)->extension;
  return name;
}

// The options a compress stage runs with, every one resolved (the codec's defaults for its level
// and knobs, the archive chunk size create_tar uses): what the run uses and what --dry-run shows.
CompressOptions compress_options(const PipelineSpec& spec, const Plan& plan, const StageSpec& stage) {
  CompressOptions options;
  options.codec = stage.codec;
  options.codec_options = plan.shape == Plan::Shape::kArchive
                              ? tar_codec_options(stage.codec, stage.codec_options)
                              : CodecRegistry::global().create(stage.codec, stage.codec_options)->options();
  options.threads = spec.threads;
  options.stop = spec.stop;
  if (spec.memory_budget_bytes > 0) {
    // A chunk in flight holds its input and its output: about twice the chunk size.
    options.max_chunks_in_flight =
        std::max<std::size_t>(2, spec.memory_budget_bytes / (2 * options.codec_options.chunk_bytes));
  }
  return options;
}

DecompressOptions decompress_options(const PipelineSpec& spec, const StageSpec* stage) {
  DecompressOptions options;
  options.threads = spec.threads;
  options.stop = spec.stop;
  if (stage) {
    options.codec = stage->format;
    options.max_output_bytes = stage->max_output_bytes;
  }
  // Pieces are frames or blocks of a few MiB (at most 16 MiB): count 8 MiB each, input and output.
  if (spec.memory_budget_bytes > 0) options.max_pieces_in_flight = std::max<std::uint64_t>(2, spec.memory_budget_bytes >> 23);
  return options;
}

// Hashes what passes through on its way to the real sink. SHA-256 is Nettle's (SHA-NI where the CPU
// has it): a little slower than OpenSSL's, but loading libcrypto cost every run of the program
// start-up time whether it hashed or not (the figures are in commit 849fb37).
class HashingSink final : public ByteSink {
 public:
  HashingSink(ByteSink& inner, const std::string& algorithm) : inner_(inner), xxh64_(algorithm == "xxh64") {
    if (xxh64_) XXH64_reset(&xxh_, 0);
    else sha256_init(&sha_);
  }

  void write(ByteView bytes) override {
    update(bytes);
    inner_.write(bytes);
  }
  const std::string& name() const override { return inner_.name(); }

  void update(ByteView bytes) {
    if (xxh64_) XXH64_update(&xxh_, bytes.data(), bytes.size());
    else sha256_update(&sha_, bytes.size(), bytes.data());
  }

  // The digest in lower-case hex, as sha256sum and xxh64sum print it.
  std::string hex() {
    if (xxh64_) return fmt::format("{:016x}", XXH64_digest(&xxh_));
    std::uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&sha_, sizeof digest, digest);
    std::string text;
    for (const std::uint8_t byte : digest) text += fmt::format("{:02x}", byte);
    return text;
  }

 private:
  ByteSink& inner_;
  bool xxh64_;
  XXH64_state_t xxh_{};
  sha256_ctx sha_{};
};

class NullSink final : public ByteSink {
 public:
  void write(ByteView) override {}
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "<checksum>";
};

std::string hash_source(ByteSource& source, const std::string& algorithm) {
  NullSink null;
  HashingSink hashing(null, algorithm);
  Buffer buffer(1024 * 1024);
  for (;;) {
    const std::size_t n = source.read(buffer.data(), buffer.capacity());
    if (n == 0) break;
    hashing.update(ByteView(buffer.data(), n));
  }
  return hashing.hex();
}

// Where the manifest goes, and the directory its paths are relative to.
std::string manifest_path(const PipelineSpec& spec, const StageSpec& checksum) {
  if (!checksum.manifest.empty()) return checksum.manifest;
  const std::string name = checksum.algorithm == "xxh64" ? "XXH64SUMS" : "SHA256SUMS";
  if (spec.output_is_directory) return (fs::path(spec.output) / name).string();
  if (spec.output == "-") return name;
  const fs::path parent = fs::path(spec.output).parent_path();
  return (parent.empty() ? fs::path(name) : parent / name).string();
}

// Where `path` is under `directory`, the part below it; empty where it is not (lexically).
fs::path below(const std::string& directory, const std::string& path) {
  const fs::path relative =
      fs::absolute(path).lexically_normal().lexically_relative(fs::absolute(directory).lexically_normal());
  return relative.empty() || *relative.begin() == ".." || relative == "." ? fs::path() : relative;
}

// A manifest line: a name holding a newline or a carriage return is escaped as sha256sum escapes
// it (the line starts with a backslash, and '\\', '\n', '\r' are written escaped), or an
// archive's entry "x\n<sum>  /etc/f" made a line of its own, which `sha256sum -c` then checked.
// Other names are written as they are, backslashes too, which sha256sum and every xxhsum read
// (xxhsum 0.8.1, Debian 12's, reads no escaped line).
std::string manifest_line(const std::string& checksum, const std::string& name) {
  if (name.find_first_of("\n\r") == std::string::npos) return fmt::format("{}  {}\n", checksum, name);
  std::string escaped;
  for (const char c : name) {
    if (c == '\\')
      escaped += "\\\\";
    else if (c == '\n')
      escaped += "\\n";
    else if (c == '\r')
      escaped += "\\r";
    else
      escaped += c;
  }
  return fmt::format("\\{}  {}\n", checksum, escaped);
}

// `unpacked`: the directory an archive was extracted to, whose entries may be anything the
// archive wanted there (a symbolic link to a device, say) and are never written through.
void write_manifest(const std::string& path, const std::vector<PipelineItem>& items, const std::string& unpacked) {
  // Names relative to the manifest's directory, whichever of the two paths was given absolute.
  const fs::path base = fs::absolute(fs::path(path)).lexically_normal().parent_path();
  const fs::path self = fs::absolute(fs::path(path)).lexically_normal();
  // One line per file, the last written's: two archives unpacked into one directory that both
  // hold a name listed it twice, the first with the checksum of bytes the second replaced.
  std::vector<std::string> lines;
  std::unordered_set<std::string> listed;
  for (auto item = items.rbegin(); item != items.rend(); ++item) {
    const fs::path output = item->output == "-" ? fs::path() : fs::absolute(item->output).lexically_normal();
    if (!output.empty() && output == self) continue;  // an archive's file it replaces (unpacking)
    const std::string name = item->output == "-" ? "-" : output.lexically_relative(base).string();
    if (name == "-" || listed.insert(name).second) lines.push_back(manifest_line(item->checksum, name));
  }
  std::string text;
  for (auto line = lines.rbegin(); line != lines.rend(); ++line) text += *line;
  const fs::path inside = unpacked.empty() ? fs::path() : below(unpacked, path);
  if (!inside.empty()) {
    // Its directories must be real ones, made by the archive or not; what is at its name is
    // replaced (a link, a FIFO: not followed, not written into).
    fs::path at = unpacked;
    for (const auto& part : inside.parent_path()) {
      at /= part;
      struct stat status {};
      if (::lstat(at.c_str(), &status) == 0 && !S_ISDIR(status.st_mode)) {
        throw Error(ErrorKind::kIo,
                    "the manifest's directory is not a directory (the archive put something else there)", at.string());
      }
    }
  }
  std::error_code ignored;
  fs::create_directories(base, ignored);
  OutputFile file(path, true, /*devices_in_place=*/inside.empty());
  file.write(as_bytes(text));
  file.commit(false);
}

// Opens the regular file `relative` under `directory` for reading, following no symbolic link
// below `directory`: -1 where there is no regular file reached that way (a later entry of the
// archive put a link or something else where a file or a directory was).
int open_file_beneath(const std::string& directory, const fs::path& relative) {
  int at = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  for (auto part = relative.begin(); at >= 0 && part != relative.end(); ++part) {
    const bool last = std::next(part) == relative.end();
    const int next =
        ::openat(at, part->c_str(), (last ? O_RDONLY | O_NONBLOCK : O_RDONLY | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
    ::close(at);
    at = next;
  }
  struct stat status {};
  if (at >= 0 && (::fstat(at, &status) != 0 || !S_ISREG(status.st_mode))) {
    ::close(at);
    at = -1;
  }
  return at;
}

// The output for one input, through the optional hashing, then published.
class OutputEnd {
 public:
  // `named`: a path the user gave (output.file, transcode -o), which a device or FIFO there is
  // written into (-o /dev/null); an output named after an input under a directory replaces
  // whatever is at its name, as sluice -f does (a link there to a FIFO or a device outside the
  // directory was written through). `input`: a file whose permissions and times the output takes,
  // as sluice's and gzip's outputs do (a private file's came out readable by everyone).
  // `codec`: what the output is compressed with (empty: plain), for stdout's unfinished mark.
  OutputEnd(const std::string& path, bool overwrite, bool named, const StageSpec* checksum, const std::string& codec,
            const FileStatus* input = nullptr)
      : path_(path) {
    if (path == "-") {
      stdout_ = std::make_unique<MarkedStreamSink>(1, "<stdout>", CodecRegistry::global().unfinished_mark(codec));
    } else {
      std::error_code error;  // why a directory could not be made (a read-only file system)
      const fs::path parent = fs::path(path).parent_path();
      if (!parent.empty()) fs::create_directories(parent, error);
      if (error && !fs::is_directory(parent)) {
        throw Error(ErrorKind::kIo,
                    fmt::format("cannot create directory {}: {}", printable_name(parent.string()), error.message()),
                    path)
            .set_error_number(error.value());
      }
      file_ = std::make_unique<OutputFile>(path, overwrite, /*devices_in_place=*/named);
      if (input && input->regular) file_->copy_attributes_of(*input);
    }
    ByteSink& base = file_ ? static_cast<ByteSink&>(*file_) : *stdout_;
    if (checksum) hashing_ = std::make_unique<HashingSink>(base, checksum->algorithm);
    counted_.inner = hashing_ ? static_cast<ByteSink*>(hashing_.get()) : &base;
  }
  ByteSink& sink() { return counted_; }
  std::uint64_t written() const { return counted_.bytes; }
  // The file being written (not stdout): a tar of a tree holding it leaves it out.
  std::optional<FileStatus> status() const {
    if (!file_) return std::nullopt;
    return file_->status();
  }
  // Publishes the output; returns its checksum (empty without a checksum stage).
  std::string commit() {
    if (file_) file_->commit(false);
    if (stdout_) stdout_->finish();
    return hashing_ ? hashing_->hex() : std::string();
  }

 private:
  std::string path_;
  std::unique_ptr<OutputFile> file_;
  std::unique_ptr<MarkedStreamSink> stdout_;  // a compressed stream cut short ends with its mark
  std::unique_ptr<HashingSink> hashing_;
  // What was written: a stage that ends with trailing garbage returns no stats.
  struct Counted final : ByteSink {
    void write(ByteView data) override {
      inner->write(data);
      bytes += data.size();
    }
    void flush() override { inner->flush(); }
    const std::string& name() const override { return inner->name(); }
    ByteSink* inner = nullptr;
    std::uint64_t bytes = 0;
  } counted_;
};

std::unique_ptr<FdSource> open_input(const std::string& path) {
  if (path == "-") return std::make_unique<FdSource>(0, "<stdin>");
  return std::make_unique<FdSource>(path);
}

std::string output_path_for(const PipelineSpec& spec, const Input& input, const Plan& plan) {
  if (!spec.output_is_directory) return spec.output;
  return (fs::path(spec.output) / output_name(input.relative, plan)).string();
}

// Throws kCancelled once `stop` is requested.
void check_stop(const std::stop_token& stop) {
  if (stop.stop_requested()) throw Error(ErrorKind::kCancelled, "stopped: the run was asked to stop");
}

// Two inputs whose outputs have the same name (a/x.log and b/x.log into one directory): a usage
// error before anything is written, in a run and a dry run alike (the second replaced the first
// with -f, or failed on the output the run had just written). Likewise, in a run, an output that
// exists, unless the run overwrites: found when the run reached it, it stopped the run with the
// outputs before it published and those after it not made. (A dry run says of each such output
// that it exists: output_exists.)
bool output_exists(const PipelineSpec& spec, const std::string& output) {
  struct stat existing {};
  return !spec.overwrite && output != "-" && ::lstat(output.c_str(), &existing) == 0;
}

void check_outputs(const PipelineSpec& spec, const Plan& plan, const std::vector<Input>& inputs, bool dry_run) {
  std::unordered_map<std::string, const Input*> taken;
  for (const auto& input : inputs) {
    const std::string output = output_path_for(spec, input, plan);
    if (output == "-") continue;
    const auto [at, added] = taken.emplace(fs::absolute(output).lexically_normal().string(), &input);
    if (!added) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("'{}' and '{}' would both be written to '{}'", printable_name(at->second->path),
                              printable_name(input.path), printable_name(output)));
    }
    if (!dry_run && output_exists(spec, output)) {
      throw output_exists_error(output);  // the command adds how to overwrite
    }
  }
}

// A path, to tell whether others name the same file: the same name once made absolute, or one
// file reached both ways (a link, another spelling).
class SameFile {
 public:
  explicit SameFile(const std::string& path) : name_(fs::absolute(path).lexically_normal()) {
    struct stat found {};
    if (::stat(path.c_str(), &found) == 0) file_ = std::pair{found.st_dev, found.st_ino};
  }
  bool operator()(const std::string& other) const {
    if (fs::absolute(other).lexically_normal() == name_) return true;
    struct stat found {};
    return file_ && ::stat(other.c_str(), &found) == 0 && *file_ == std::pair{found.st_dev, found.st_ino};
  }

 private:
  fs::path name_;
  std::optional<std::pair<dev_t, ino_t>> file_;
};

// The checksum stage's manifest is an output like the others: never an input of the run or
// another of its outputs, and one that exists is replaced only when the run overwrites. (It was
// written over whatever was at its path, an input or an output of the same run too, with exit 0.)
// `inputs`: the run's input files (an archive pipeline's as given, not walked). A dry run gets
// back what its plan notes instead of the error of an existing manifest.
std::string check_manifest(const PipelineSpec& spec, const Plan& plan, const std::vector<Input>& inputs, bool dry_run) {
  if (!plan.checksum) return {};
  const std::string manifest = manifest_path(spec, *plan.checksum);
  const SameFile is_manifest(manifest);
  for (const auto& input : inputs) {
    if (input.path != "-" && is_manifest(input.path)) {
      throw Error(ErrorKind::kUsage,
                  fmt::format("the manifest '{}' would replace an input of the run", printable_name(manifest)));
    }
    if (plan.shape == Plan::Shape::kPerFile) {
      const std::string output = output_path_for(spec, input, plan);
      if (output != "-" && is_manifest(output)) {
        throw Error(ErrorKind::kUsage, fmt::format("'{}' would be written to '{}', the manifest's path",
                                                   printable_name(input.path), printable_name(manifest)));
      }
    }
  }
  if (plan.shape == Plan::Shape::kArchive && spec.output != "-" && is_manifest(spec.output))
    throw Error(ErrorKind::kUsage, fmt::format("the archive and the manifest are both '{}'", printable_name(manifest)));
  // Unpacking, a manifest in the output directory is the run's whatever was there (sluice-run(1)):
  // the directory's other files are kept, but what the archives write changes under it anyway.
  if (plan.shape == Plan::Shape::kUnpack && !below(spec.output, manifest).empty()) return {};
  struct stat existing {};
  if (spec.overwrite || ::lstat(manifest.c_str(), &existing) != 0) return {};
  if (!dry_run) throw output_exists_error(manifest);  // the command adds how to overwrite
  return " (exists: the run stops before it writes)";
}

// The inputs a run takes, as expand_inputs finds them; an archive pipeline's as given (its
// directories are the archive's to walk), for check_manifest.
std::vector<Input> run_inputs(const PipelineSpec& spec, const Plan& plan,
                              const std::function<void(const std::string&)>& left_alone) {
  if (plan.shape != Plan::Shape::kArchive) return expand_inputs(spec.inputs, walk_for(spec, plan, left_alone));
  std::vector<Input> inputs;
  for (const auto& input : spec.inputs) {
    if (input != "-" && !has_glob(input)) inputs.push_back({input, ""});
  }
  return inputs;
}

void run_per_file(const PipelineSpec& spec, const Plan& plan, const std::vector<Input>& inputs, PipelineReport& report,
                  const std::function<void(const PipelineItem&)>& on_item,
                  const std::function<void(const std::string&)>& on_problem) {
  for (const auto& input : inputs) {
    check_stop(spec.stop);
    PipelineItem item;
    item.input = input.path;
    item.output = output_path_for(spec, input, plan);
    auto opened = open_input(input.path);
    CountingSource source(*opened);
    OutputEnd output(item.output, spec.overwrite, !spec.output_is_directory, plan.checksum,
                     plan.compress ? plan.compress->codec : std::string(),
                     input.path == "-" ? nullptr : &opened->status());
    // Bytes that are no stream after an input's last member or frame: everything before them is
    // written and the output published, with a warning, as `sluice -d` does (the run failed).
    std::optional<Error> garbage;
    if (plan.decompress) {
      try {
        if (plan.compress) {
          transcode(source, output.sink(), compress_options(spec, plan, *plan.compress),
                    decompress_options(spec, plan.decompress));
        } else {
          decompress(source, output.sink(), decompress_options(spec, plan.decompress));
        }
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kTrailingGarbage) throw;
        garbage = e;
      }
      item.output_bytes = output.written();
    } else if (plan.compress) {
      StreamInfo info;
      if (input.path != "-") info.name = fs::path(input.path).filename().string();
      item.output_bytes =
          compress(source, output.sink(), compress_options(spec, plan, *plan.compress), info).output_bytes;
    } else {
      Buffer buffer(1024 * 1024);  // checksum only: a copy that hashes on the way
      for (;;) {
        check_stop(spec.stop);
        const std::size_t n = source.read(buffer.data(), buffer.capacity());
        if (n == 0) break;
        output.sink().write(ByteView(buffer.data(), n));
        item.output_bytes += n;
      }
    }
    item.input_bytes = source.bytes();
    item.checksum = output.commit();
    report.items.push_back(item);
    if (on_item) on_item(item);
    if (garbage) {
      ++report.warnings;
      if (on_problem) on_problem(fmt::format("warning: {}; ignored (the data before it was written)", garbage->what()));
    }
  }
}

void run_archive(const PipelineSpec& spec, const Plan& plan, PipelineReport& report,
                 const std::function<void(const PipelineItem&)>& on_item) {
  std::vector<std::string> paths;
  for (const auto& pattern : spec.inputs) {
    if (pattern == "-") throw Error(ErrorKind::kUsage, "'tar' archives files and directories, not stdin");
    if (!has_glob(pattern)) {
      paths.push_back(pattern);
      continue;
    }
    for (const auto& input : expand_inputs({pattern})) paths.push_back(input.path);
  }
  PipelineItem item;
  item.input = fmt::format("{}", fmt::join(spec.inputs, " "));
  item.output = spec.output;
  const std::string codec = plan.compress ? plan.compress->codec : "";
  OutputEnd output(item.output, spec.overwrite, /*named=*/true, plan.checksum, codec);
  CompressOptions options = plan.compress ? compress_options(spec, plan, *plan.compress) : CompressOptions{};
  options.threads = spec.threads;
  TarCreateOptions tar = plan.tar->tar;
  // An output inside a tree it archives leaves itself out, being written and as it was: it was
  // packed (its temporary and last night's archive) and grew every run.
  if (const auto written = output.status()) tar.skip_files.emplace_back(written->device, written->inode);
  if (struct stat existing{}; spec.output != "-" && ::stat(spec.output.c_str(), &existing) == 0) {
    tar.skip_files.emplace_back(existing.st_dev, existing.st_ino);
  }
  StoppableSink sink(output.sink(), spec.stop);
  const TarStats stats = create_tar(paths, sink, codec, options, tar);
  item.input_bytes = stats.archive_bytes;
  item.output_bytes = stats.stored_bytes;
  item.checksum = output.commit();
  report.items.push_back(item);
  if (on_item) on_item(item);
}

// A decompress stage's format, where an unpack pipeline tells the archive's compression from its
// data: an archive in another (or none, or a zip) is an error naming it, as a per-file
// pipeline's decoder gives one.
void check_format(ByteSource& archive, const std::string& format) {
  if (!archive.random_access()) return;  // a pipe: read once, by the extractor
  std::uint8_t head[64];
  const std::size_t got = archive.read_at(0, head, sizeof head);
  const auto detected = CodecRegistry::global().detect({head, got});
  if (detected && detected->name == format) return;
  const std::string is = looks_like_zip(archive) ? "a zip archive"
                         : detected              ? fmt::format("{} data", detected->name)
                                                 : "not compressed";
  throw Error(ErrorKind::kCorruptData, fmt::format("not {} data, as the decompress stage says ({})", format, is),
              archive.name(), 0);
}

// Each input archive (tar, compressed or not, or zip) extracted under the output directory; with
// a compress stage, each of its files compressed to NAME + the codec's extension instead.
void run_unpack(const PipelineSpec& spec, const Plan& plan, const std::vector<Input>& inputs, PipelineReport& report,
                const std::function<void(const PipelineItem&)>& on_item,
                const std::function<void(const std::string&)>& on_problem) {
  const CompressOptions compress = plan.compress ? compress_options(spec, plan, *plan.compress) : CompressOptions{};
  const std::string extension =
      plan.compress ? CodecRegistry::global().find(plan.compress->codec).value_or(CodecInfo{}).extension : "";
  // Unless the run overwrites, what was in the output directory before the run is kept, and what
  // an archive of the run wrote is replaced by a later entry or archive, as one archive's is.
  const std::shared_ptr<TarWrittenNames> written = spec.overwrite ? nullptr : make_tar_written_names();
  // The manifest's name in the output directory is the run's: an entry there (or below it) is
  // refused, and named, where the manifest replaced it silently (an archive's own SHA256SUMS).
  std::map<std::string, std::string> reserved;
  if (plan.checksum) {
    const fs::path manifest = below(spec.output, manifest_path(spec, *plan.checksum));
    if (!manifest.empty()) reserved.emplace(manifest.string(), "reserved for the run's manifest");
  }
  for (const auto& input : inputs) {
    auto opened = open_input(input.path);
    if (plan.decompress && !plan.decompress->format.empty()) check_format(*opened, plan.decompress->format);
    // The files written, under the output directory, in the order their entries began: named as
    // each entry begins, dropped again where it then fails or a later entry takes its name (a
    // link, say, in place of a file). Looked up by name: one look per entry, and memory for the
    // names on disk, however many entries (60,000 of one name took 459 MB when each kept a slot).
    // With each file, the size of its entry's contents (the item's input bytes).
    std::map<std::uint64_t, std::pair<fs::path, std::uint64_t>> files;
    std::unordered_map<std::string, std::uint64_t> place;
    std::uint64_t begun_entries = 0;
    // As the extractor names it: "./a//f/" is "a/f".
    const auto normal = [](const std::string& path) {
      fs::path name = fs::path(path).lexically_normal();
      return name.has_filename() ? name : name.parent_path();
    };
    const auto drop = [&](const std::string& path) {
      const auto found = place.find(normal(path).string());
      if (found == place.end()) return;
      files.erase(found->second);
      place.erase(found);
    };
    const auto begun = [&](const std::string& path, bool is_file, std::uint64_t size) {
      drop(path);
      if (!is_file) return;
      fs::path name = normal(path);
      place.emplace(name.string(), begun_entries);
      files.emplace(begun_entries++, std::make_pair(std::move(name), size));
    };
    // An entry refused for safety, not written, or read past: told, counted, and (unless the
    // stage is strict, which throws instead) the rest goes on, as `sluice tar -x` does. Each
    // message names the archive (a reader's warning and an error about it do already).
    const std::string archive = printable_name(input.path);
    const auto problem = [&](std::uint64_t& count, const std::string& message) {
      ++count;
      if (on_problem) on_problem(message);
    };
    const auto failure = [&](const std::string& what, const std::string& name, std::uint64_t at, const Error& error) {
      if (error.path() == input.path) return std::string(error.what());
      return fmt::format("{}: cannot extract {}'{}' (archive byte {}): {}", archive, what, printable_name(name), at,
                         error.what());
    };
    check_stop(spec.stop);
    if (looks_like_zip(*opened)) {
      ZipExtractOptions extract;
      extract.directory = spec.output;
      extract.keep_what_was_there = !spec.overwrite;  // as a file's output is (transcode --output-dir replaced them)
      extract.written_names = written;
      extract.strict = plan.untar->strict;
      extract.max_output_bytes = plan.untar->max_output_bytes;
      extract.reserved = reserved;
      extract.threads = spec.threads;
      extract.stop = spec.stop;
      extract.on_entry = [&](const ZipEntry& entry) {
        const bool file = entry.type == ZipEntryType::kFile;
        begun(file ? transcoded_name(entry.path, extension) : entry.path, file, entry.size);
      };
      extract.on_refused = [&](const ZipEntry& entry, const std::string& why) {
        problem(report.refused, fmt::format("{}: refusing member '{}' (archive byte {}): {}", archive,
                                            printable_name(entry.path), entry.header_offset, why));
      };
      extract.on_failed = [&](const ZipEntry& entry, const Error& error) {
        drop(entry.type == ZipEntryType::kFile ? transcoded_name(entry.path, extension) : entry.path);
        problem(report.failed, failure("member ", entry.path, entry.header_offset, error));
      };
      if (plan.compress)
        transcode_zip(*opened, extract, compress);
      else
        extract_zip(*opened, extract);
    } else {
      TarExtractOptions extract;
      extract.directory = spec.output;
      extract.keep_what_was_there = !spec.overwrite;
      extract.written_names = written;
      extract.strict = plan.untar->strict;
      extract.max_output_bytes = plan.untar->max_output_bytes;
      extract.reserved = reserved;
      extract.threads = spec.threads;
      // The entry as written (transcode_tar names a compressed file NAME + extension).
      extract.on_entry = [&](const TarEntry& entry) {
        begun(entry.path, entry.type == TarEntryType::kFile, entry.size);
      };
      extract.on_refused = [&](const TarEntry& entry, const std::string& why) {
        problem(report.refused, fmt::format("{}: refusing entry '{}' (archive byte {}): {}", archive,
                                            printable_name(entry.path), entry.header_offset, why));
      };
      extract.on_failed = [&](const TarEntry& entry, const Error& error) {
        drop(entry.path);
        problem(report.failed, failure("", entry.path, entry.header_offset, error));
      };
      extract.on_warning = [&](const std::string& message) { problem(report.warnings, "warning: " + message); };
      StoppableSource source(*opened, spec.stop);
      if (plan.compress)
        transcode_tar(source, extract, compress);
      else
        extract_tar(source, extract);
    }
    for (const auto& [order, file_and_size] : files) {
      const auto& [file, size] = file_and_size;
      PipelineItem item;
      item.input = input.path;
      item.input_bytes = size;
      item.output = (fs::path(spec.output) / file).string();
      // Read without following a link below the output directory: what the archive put there
      // last is what is reported, never a file elsewhere that a link of its points to.
      const detail::FileDescriptor fd(open_file_beneath(spec.output, file));
      if (fd.get() < 0)
        throw Error(ErrorKind::kIo, "is no longer a regular file under the output directory", item.output);
      FdSource source(fd.get(), item.output);
      item.output_bytes = source.size().value_or(0);
      if (plan.checksum) item.checksum = hash_source(source, plan.checksum->algorithm);
      report.items.push_back(item);
      if (on_item) on_item(item);
    }
  }
}

}  // namespace

namespace detail {

std::vector<PipelineProblem> pipeline_problems(const PipelineSpec& spec) {
  using Part = PipelineProblem::Part;
  std::vector<PipelineProblem> problems;
  const Plan plan = make_plan(spec, problems);
  if (spec.inputs.empty()) problems.push_back({Part::kInput, 0, "a pipeline needs at least one input"});
  if (spec.output.empty()) problems.push_back({Part::kOutput, 0, "a pipeline needs an output"});
  const bool several = spec.inputs.size() > 1 ||
                       std::any_of(spec.inputs.begin(), spec.inputs.end(), [](const std::string& input) {
                         std::error_code ignored;  // what cannot be looked at is reported when opened
                         return has_glob(input) || (input != "-" && fs::is_directory(input, ignored));
                       });
  const auto output_problem = [&](const std::string& message) { problems.push_back({Part::kOutput, 0, message}); };
  switch (plan.shape) {
    case Plan::Shape::kArchive:
      if (spec.output_is_directory) output_problem("'tar' makes one archive: the output must be a file or stdout");
      break;
    case Plan::Shape::kUnpack:
      if (!spec.output_is_directory) output_problem("'untar' extracts files: the output must be a directory");
      if (plan.decompress && plan.decompress->max_output_bytes) {
        const auto at = static_cast<std::size_t>(plan.decompress - spec.stages.data());
        problems.push_back(
            {Part::kStage, at,
             fmt::format("{}: before 'untar', 'max_output' belongs to the untar stage (the files' bytes)",
                         stage_label(spec, at, false))});
      }
      break;
    case Plan::Shape::kPerFile:
      if (!spec.output_is_directory && several) {
        output_problem("several inputs need an output directory (output.directory)");
      }
      if (spec.output_is_directory && std::find(spec.inputs.begin(), spec.inputs.end(), "-") != spec.inputs.end()) {
        output_problem("stdin has no name to write under a directory: use output.file or output.stdout");
      }
      break;
  }
  if (plan.checksum && spec.output == "-" && plan.checksum->manifest.empty()) {
    problems.push_back({Part::kStage, static_cast<std::size_t>(plan.checksum - spec.stages.data()),
                        "with output to stdout, the checksum stage needs a 'manifest' path"});
  }
  return problems;
}

}  // namespace detail

void validate_pipeline(const PipelineSpec& spec) {
  const auto problems = detail::pipeline_problems(spec);
  if (!problems.empty()) throw_problems(problems);
}

std::string describe_pipeline(const PipelineSpec& spec) {
  validate_pipeline(spec);
  const Plan plan = plan_of(spec);
  std::string text;
  const char* shape = plan.shape == Plan::Shape::kArchive ? "archive (every input into one tar)"
                      : plan.shape == Plan::Shape::kUnpack ? "unpack (each input archive extracted)"
                                                           : "per file (each input to its own output)";
  text += fmt::format("pipeline: {}\n", shape);
  text += fmt::format("threads: {}\n", resolve_threads(spec.threads));
  if (spec.memory_budget_bytes) text += fmt::format("memory budget: {} bytes of chunks and frames in flight\n", spec.memory_budget_bytes);
  for (std::size_t i = 0; i < spec.stages.size(); ++i) {
    const StageSpec& stage = spec.stages[i];
    std::string details;
    switch (stage.kind) {
      case StageKind::kDecompress:
        details = stage.format.empty() ? "format detected from content" : "format " + stage.format;
        if (spec.memory_budget_bytes) details += fmt::format(", at most {} frames in flight", decompress_options(spec, &stage).max_pieces_in_flight);
        if (stage.max_output_bytes)
          details += fmt::format(", at most {} bytes out of each input", stage.max_output_bytes);
        break;
      case StageKind::kCompress: {
        const CompressOptions options = compress_options(spec, plan, stage);  // as the run gets them
        const CodecOptions& resolved = options.codec_options;
        details =
            fmt::format("codec {}, level {}, chunk size {} bytes", options.codec, resolved.level, resolved.chunk_bytes);
        for (const auto& [knob, value] : resolved.knobs) details += fmt::format(", {} {}", knob, value);
        if (!resolved.backend.empty()) details += ", backend " + resolved.backend;
        if (options.max_chunks_in_flight)
          details += fmt::format(", at most {} chunks in flight", options.max_chunks_in_flight);
        break;
      }
      case StageKind::kTar:
        details = "POSIX pax archive, entries sorted by name";
        if (stage.tar.mtime_seconds) details += fmt::format(", mtime {}", *stage.tar.mtime_seconds);
        if (stage.tar.owner.name || stage.tar.owner.id) details += fmt::format(", owner {}:{}", stage.tar.owner.name.value_or(""), stage.tar.owner.id ? std::to_string(*stage.tar.owner.id) : "");
        if (stage.tar.group.name || stage.tar.group.id) details += fmt::format(", group {}:{}", stage.tar.group.name.value_or(""), stage.tar.group.id ? std::to_string(*stage.tar.group.id) : "");
        if (stage.tar.numeric_owner) details += ", numeric owners";
        if (!stage.tar.exclude.empty()) details += fmt::format(", excluding {}", fmt::join(stage.tar.exclude, " "));
        break;
      case StageKind::kUntar:
        details = stage.strict ? "refused entries fail the run" : "refused entries are warnings";
        if (stage.max_output_bytes)
          details += fmt::format(", at most {} bytes of files from each archive", stage.max_output_bytes);
        break;
      case StageKind::kChecksum:
        details = fmt::format("{} of every output, manifest {}", stage.algorithm, manifest_path(spec, stage));
        details += check_manifest(spec, plan, run_inputs(spec, plan, {}), /*dry_run=*/true);
        break;
    }
    text += fmt::format("stage {}: {} ({})\n", i + 1, stage_name(stage.kind), details);
  }
  if (plan.shape == Plan::Shape::kArchive) {
    text += fmt::format("archive: {} -> {}\n", fmt::join(spec.inputs, " "), spec.output == "-" ? "<stdout>" : spec.output);
    return text;
  }
  std::vector<std::string> left_alone;
  const std::vector<Input> inputs =
      run_inputs(spec, plan, [&](const std::string& message) { left_alone.push_back(message); });
  if (plan.shape == Plan::Shape::kPerFile) check_outputs(spec, plan, inputs, /*dry_run=*/true);
  for (const auto& message : left_alone) text += fmt::format("warning: {}\n", message);
  for (const auto& input : inputs) {
    const std::string output = output_path_for(spec, input, plan);
    const std::string to = plan.shape == Plan::Shape::kUnpack ? spec.output + " (extracted)"
                           : output == "-"                    ? "<stdout>"
                           : output_exists(spec, output)      ? output + " (exists: the run stops before it writes)"
                                                              : output;
    text += fmt::format("file: {} -> {}\n", input.path == "-" ? "<stdin>" : input.path, to);
  }
  return text;
}

PipelineReport run_pipeline(const PipelineSpec& spec, const std::function<void(const PipelineItem&)>& on_item,
                            const std::function<void(const std::string&)>& on_problem) {
  const auto start = std::chrono::steady_clock::now();
  validate_pipeline(spec);
  const Plan plan = plan_of(spec);
  PipelineReport report;
  const std::vector<Input> inputs = run_inputs(spec, plan, [&](const std::string& message) {
    ++report.warnings;
    if (on_problem) on_problem("warning: " + message);
  });
  if (plan.shape == Plan::Shape::kPerFile) check_outputs(spec, plan, inputs, /*dry_run=*/false);
  check_manifest(spec, plan, inputs, /*dry_run=*/false);
  // An earlier run's manifest no longer describes the outputs once this run publishes one
  // (`sha256sum -c` would fail on the new ones, or vouch for old ones): it goes before the run
  // starts, so that a run killed half-way leaves none either. Not when unpacking: the output
  // directory is the archives' to shape (a link they made at a directory of the manifest's path is
  // never followed), and the manifest is replaced at the end, as written (write_manifest).
  if (plan.checksum && plan.shape != Plan::Shape::kUnpack) {
    std::error_code ignored;
    fs::remove(manifest_path(spec, *plan.checksum), ignored);
  }
  switch (plan.shape) {
    case Plan::Shape::kPerFile:
      run_per_file(spec, plan, inputs, report, on_item, on_problem);
      break;
    case Plan::Shape::kArchive:
      run_archive(spec, plan, report, on_item);
      break;
    case Plan::Shape::kUnpack:
      run_unpack(spec, plan, inputs, report, on_item, on_problem);
      break;
  }
  if (plan.checksum) {
    report.manifest = manifest_path(spec, *plan.checksum);
    write_manifest(report.manifest, report.items, plan.shape == Plan::Shape::kUnpack ? spec.output : "");
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

namespace {

// True when `error` is the kCancelled a BytePipe raises once the other side has broken it.
bool broke_on_the_pipe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return e.kind() == ErrorKind::kCancelled;
  } catch (...) {
    return false;
  }
}

}  // namespace

CompressStats transcode(ByteSource& source, ByteSink& sink, const CompressOptions& compress_options,
                        const DecompressOptions& decompress_options) {
  detail::BytePipe pipe(source.name());
  std::exception_ptr decode_error;
  // The decompression graph runs on a thread of its own (with its own arena); the compression
  // graph on this one. The pipe between them is the only place they meet.
  std::exception_ptr garbage;  // after the stream, all of which went through the pipe
  std::thread decoder([&] {
    try {
      decompress(source, pipe.sink(), decompress_options);
      pipe.close();
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kTrailingGarbage) {
        garbage = std::current_exception();
        pipe.close();
      } else {
        decode_error = std::current_exception();
        pipe.break_pipe();
      }
    } catch (...) {
      decode_error = std::current_exception();
      pipe.break_pipe();
    }
  });
  CompressStats stats;
  try {
    stats = compress(pipe.source(), sink, compress_options);
  } catch (...) {
    pipe.break_pipe();
    decoder.join();
    // Whichever side failed first is the cause; the other side only saw the pipe break.
    if (decode_error && !broke_on_the_pipe(decode_error)) std::rethrow_exception(decode_error);
    throw;
  }
  decoder.join();
  if (decode_error) std::rethrow_exception(decode_error);
  if (garbage) std::rethrow_exception(garbage);
  return stats;
}

}  // namespace sluice
