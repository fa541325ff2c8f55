// Pipelines: every stage kind through a pipeline file, the shipped examples, config errors with
// line and column, overrides, transcode round trips, and a user codec inside a pipeline.
#include <gtest/gtest.h>

#include <filesystem>
#include <fmt/format.h>

#include "sluice/codec_author.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/pipeline.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::describe;
using testing::quote;
using testing::read_file;
using testing::text_bytes;
using testing::to_bytes;
using testing::write_file;

class Pipeline : public testing::CommandTest {
 protected:
  void put_text(const std::string& name, const std::string& text) { put(name, to_bytes(text)); }
  // The inputs the examples expect: logs/ of .gz files, data/ with CSVs and a subdirectory, and
  // archive.tar.gz made by GNU tar.
  void make_inputs() {
    fs::create_directories(dir_ / "logs/2024");
    for (int i = 0; i < 3; ++i) write_file(dir_ / fmt::format("logs/app-{}.log", i), text_bytes(200000 + i * 70000, i + 1));
    write_file(dir_ / "logs/2024/old.log", text_bytes(123457, 9));
    write_file(dir_ / "logs/empty.log", {});
    auto r = sh("gzip logs/*.log logs/2024/*.log");
    ASSERT_EQ(r.status, 0) << describe(r);
    fs::create_directories(dir_ / "data/sub");
    write_file(dir_ / "data/a.csv", text_bytes(300000, 11));
    write_file(dir_ / "data/b.csv", text_bytes(1000, 12));
    write_file(dir_ / "data/sub/c.txt", text_bytes(5000, 13));
    r = sh("tar -czf archive.tar.gz data");
    ASSERT_EQ(r.status, 0) << describe(r);
    r = sh("zip -qr bundle.zip data");
    ASSERT_EQ(r.status, 0) << describe(r);
  }
};

// ---- The shipped examples ----

TEST_F(Pipeline, EveryShippedExampleRunsAndDoesWhatItSays) {
  make_inputs();
  // What backup-tree.toml excludes.
  fs::create_directories(dir_ / "data/.git");
  write_file(dir_ / "data/.git/HEAD", text_bytes(40, 14));
  write_file(dir_ / "data/sub/scratch.tmp", text_bytes(100, 15));
  const fs::path examples = fs::path(SLUICE_EXAMPLES_DIR) / "pipelines";
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(examples)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names, (std::vector<std::string>{"backup-tree.toml", "csv-to-parallel-gzip.toml", "recompress-logs.toml",
                                             "restore-archive.toml", "zip-to-gzip.toml"}));
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    const std::string file = quote((examples / name).string());
    auto r = sluice("run --dry-run " + file);
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_NE(r.out.find("stage 1:"), std::string::npos) << r.out;
    r = sluice("run " + file);
    ASSERT_EQ(r.status, 0) << describe(r);
  }
  // recompress-logs: every .gz became a .zst with the same content, and the manifest checks.
  for (const char* log : {"app-0.log", "app-1.log", "app-2.log", "2024/old.log", "empty.log"}) {
    const auto r = sh(fmt::format("cmp <(zstd -dc out/logs/{0}.zst) <(gzip -dc logs/{0}.gz)", log));
    EXPECT_EQ(r.status, 0) << log << ": " << describe(r);
  }
  auto r = sh("cd out/logs && sha256sum -c --quiet SHA256SUMS && wc -l < SHA256SUMS");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "5\n");
  // backup-tree: GNU tar reads the archive; the XXH64 manifest checks; same tree, same bytes.
  r = sh("mkdir gnu && tar -I zstd -xf out/data.tar.zst -C gnu && diff -r -x .git -x '*.tmp' gnu/data data && "
         "test ! -e gnu/data/.git && test ! -e gnu/data/sub/scratch.tmp && cd out && xxh64sum -c --quiet XXH64SUMS");
  EXPECT_EQ(r.status, 0) << describe(r);
  const Bytes first = read_file(dir_ / "out/data.tar.zst");
  r = sh("touch data/a.csv && " + testing::sluice() + " run " + quote((examples / "backup-tree.toml").string()));
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(read_file(dir_ / "out/data.tar.zst"), first) << "mtime and owner are fixed: the bytes must not change";
  // restore-archive: the tree is back, with a line per file in the manifest.
  r = sh("diff -r -x .git -x '*.tmp' out/restored/data data && cd out/restored && "
         "sha256sum -c --quiet SHA256SUMS && wc -l < SHA256SUMS");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "3\n");
  // csv-to-parallel-gzip: only the .csv files, as gzip members every gunzip reads.
  r = sh("ls out/csv && gzip -dc out/csv/a.csv.gz | cmp - data/a.csv");
  EXPECT_EQ(r.out, "a.csv.gz\nb.csv.gz\n") << describe(r);
  EXPECT_EQ(r.status, 0) << describe(r);
  // zip-to-gzip: every member of bundle.zip as its own .gz (and nothing plain), each the bytes
  // `sluice -c` makes of the file, with a manifest line.
  r = sh("cd out/uploads && find . -type f | sort && sha256sum -c --quiet SHA256SUMS");
  EXPECT_EQ(r.out, "./SHA256SUMS\n./data/a.csv.gz\n./data/b.csv.gz\n./data/sub/c.txt.gz\n") << describe(r);
  // (Compared with the member as unzip restores it, with the time the zip recorded: data/a.csv
  // was touched since.)
  for (const char* file : {"a.csv", "b.csv", "sub/c.txt"}) {
    r =
        sh(fmt::format("gzip -dc out/uploads/data/{0}.gz | cmp - data/{0} && rm -rf same && "
                       "unzip -q bundle.zip data/{0} -d same && {1} -c same/data/{0} | cmp - out/uploads/data/{0}.gz",
                       file, testing::sluice()));
    EXPECT_EQ(r.status, 0) << file << ": " << describe(r);
  }
}

// ---- Each stage kind, and overrides ----

TEST_F(Pipeline, DecompressAloneAndChecksumAloneFromStdinToStdout) {
  put_text("p1.toml", R"(
[input]
paths = ["-"]
[[stage]]
kind = "decompress"
[output]
stdout = true
)");
  write_file(dir_ / "plain.txt", text_bytes(100000, 3));
  auto r = sh("zstd -q -c plain.txt | " + testing::sluice() + " run p1.toml > back.txt && cmp back.txt plain.txt");
  EXPECT_EQ(r.status, 0) << describe(r);
  put_text("p2.toml", R"(
[input]
paths = ["plain.txt"]
[[stage]]
kind = "checksum"
algorithm = "sha256"
manifest = "sums/plain.sha256"
[output]
file = "copy.txt"
)");
  r = sluice("run p2.toml");
  ASSERT_EQ(r.status, 0) << describe(r);
  r = sh("cmp copy.txt plain.txt && sha256sum copy.txt | cut -d' ' -f1 && cut -d' ' -f1 sums/plain.sha256");
  ASSERT_EQ(r.status, 0) << describe(r);
  const std::string first_line = r.out.substr(0, r.out.find('\n'));
  EXPECT_EQ(r.out, first_line + "\n" + first_line + "\n");
}

TEST_F(Pipeline, CommandLineOverridesAndOutputFlag) {
  make_inputs();
  const std::string file = quote((fs::path(SLUICE_EXAMPLES_DIR) / "pipelines/recompress-logs.toml").string());
  auto r = sluice("run --dry-run --set stage.2.level=19 --set memory_budget=32M -j 1 -o elsewhere " + file);
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_NE(r.out.find("codec zstd, level 19"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("threads: 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory budget: 33554432"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("decompress (format detected from content, at most 4 frames in flight)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("at most 2 chunks in flight"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("-> elsewhere/app-0.log.zst"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "elsewhere")) << "a dry run writes nothing";
  r = sluice("run --set stage.9.level=1 " + file);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("'stage' has 3 entries"), std::string::npos) << r.err;
  r = sluice("run --set stage.2.level=99 " + file);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("(--set)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'level' must be between -131072 and 22, not 99"), std::string::npos) << r.err;
}

// ---- Config errors: the message names the line, the column and the key ----

struct BadConfig {
  std::string name;
  std::string toml;
  std::string message;  // expected in the error, including "file:LINE:COL"
};

void PrintTo(const BadConfig& config, std::ostream* os) { *os << config.name; }

class PipelineConfigError : public ::testing::TestWithParam<BadConfig> {};

const std::string kGood = "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"compress\"\n[output]\ndirectory = \"out\"\n";

const std::vector<BadConfig> kBadConfigs = {
    {"syntax", "[input\npaths = 1\n", "p.toml:1:7: "},
    {"unknown_top_key", "thread = 2\n" + kGood, "p.toml:1:1: unknown key 'thread'"},
    {"unknown_stage_key",
     "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"compress\"\nlevle = 3\n[output]\ndirectory = \"out\"\n",
     "p.toml:5:1: stage 1: unknown key 'levle' (known here: kind, codec, level, chunk_size, gzip_backend, gzip_form, "
     "zstd_index)"},
    {"wrong_type",
     "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"compress\"\nlevel = \"3\"\n[output]\ndirectory = \"out\"\n",
     "p.toml:5:9: stage 1: 'level' must be an integer, not a string"},
    {"unknown_codec",
     "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"compress\"\ncodec = \"brotli\"\n[output]\ndirectory = \"out\"\n",
     "p.toml:5:9: stage 1: 'codec' must be one of gzip, zstd, lz4"},
    {"level_out_of_range",
     "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"compress\"\ncodec = \"gzip\"\nlevel = 10\n[output]\ndirectory = "
     "\"out\"\n",
     "p.toml:6:9: stage 1: 'level' must be between 1 and 9, not 10"},
    {"unknown_kind", "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"zip\"\n[output]\ndirectory = \"out\"\n",
     "p.toml:4:8: stage 1: 'kind' must be one of decompress, compress, tar, untar, unpack, checksum, not 'zip'"},
    {"paths_not_strings", "[input]\npaths = [1]\n[[stage]]\nkind = \"compress\"\n[output]\ndirectory = \"out\"\n",
     "p.toml:2:10: input: 'paths' must be an array of strings, not an integer"},
    {"bad_size", "memory_budget = \"lots\"\n" + kGood, "p.toml:1:17: 'memory_budget': invalid size 'lots'"},
    {"stage_order",
     "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"compress\"\n[[stage]]\nkind = \"decompress\"\n[output]\ndirectory "
     "= \"out\"\n",
     "p.toml: stage 2 (decompress) cannot come after stage 1 (compress)"},
    {"two_outputs",
     "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"compress\"\n[output]\ndirectory = \"a\"\nfile = \"b\"\n",
     "p.toml:5:1: output: give exactly one of 'directory', 'file' or 'stdout = true'"},
    {"no_stage", "[input]\npaths = [\"in\"]\n[output]\ndirectory = \"out\"\n", "p.toml:1:1: no [[stage]] given"},
};

TEST_P(PipelineConfigError, IsRejectedWithLineColumnAndKey) {
  try {
    parse_pipeline_text(GetParam().toml, "p.toml");
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find(GetParam().message), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PipelineConfigError, ::testing::ValuesIn(kBadConfigs),
                         [](const auto& param_info) { return param_info.param.name; });

TEST_F(Pipeline, ConfigErrorsFromTheCommandExitWithTwo) {
  put_text("bad.toml", "[input]\npaths = [\"in\"]\n[[stage]]\nkind = \"compress\"\nlevle = 3\n[output]\ndirectory = \"out\"\n");
  const auto r = sluice("run bad.toml");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("bad.toml:5:1: stage 1: unknown key 'levle'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// ---- transcode ----

TEST_F(Pipeline, TranscodeRoundTripsEveryPairOfFormats) {
  write_file(dir_ / "orig", text_bytes(3 * 1024 * 1024 + 5, 21));
  auto r = sh("gzip -c orig > in.gz && zstd -q -c orig > in.zst && lz4 -q -c orig > in.lz4");
  ASSERT_EQ(r.status, 0) << describe(r);
  for (const char* from : {"in.gz", "in.zst", "in.lz4"}) {
    for (const char* to : {"out.gz", "out.zst", "out.lz4"}) {
      SCOPED_TRACE(fmt::format("{} -> {}", from, to));
      r = sluice(fmt::format("transcode {} -o {} -f -j 2", from, to));
      ASSERT_EQ(r.status, 0) << describe(r);
      r = sh(fmt::format("{} -dc {} | cmp - orig", std::string(to).substr(4) == "gz" ? "gzip" : std::string(to).substr(4) == "zst" ? "zstd" : "lz4", to));
      EXPECT_EQ(r.status, 0) << describe(r);
    }
  }
  // stdin to stdout, with the format given.
  r = sh("cat in.gz | " + testing::sluice() + " transcode - -o - -F zstd | zstd -dc | cmp - orig");
  EXPECT_EQ(r.status, 0) << describe(r);
  r = sh("cat in.zst | " + testing::sluice() + " transcode --no-pin - -o - -F lz4 | lz4 -dc | cmp - orig");
  EXPECT_EQ(r.status, 0) << describe(r);
}

TEST_F(Pipeline, TranscodeOfBadInputFailsAndLeavesNoOutput) {
  write_file(dir_ / "orig", text_bytes(2 * 1024 * 1024, 22));
  auto r = sh("gzip -c orig | head -c 300000 > cut.gz");
  ASSERT_EQ(r.status, 0) << describe(r);
  r = sluice("transcode cut.gz -o out.zst");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("cut.gz"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
  r = sh("ls -A");
  EXPECT_EQ(r.out, "cut.gz\norig\n") << "no output, no temporary";
  write_file(dir_ / "plain.txt", text_bytes(1000, 1));
  r = sluice("transcode plain.txt -o out.zst");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("not compressed data"), std::string::npos) << r.err;
  r = sluice("transcode plain.txt -o out.unknown");
  EXPECT_EQ(r.status, 2);
}

TEST(PipelineLibrary, TranscodeStreamsThroughABoundedPipe) {
  const Bytes input = text_bytes(20 * 1024 * 1024, 23);
  CompressOptions gzip;
  gzip.codec = "gzip";
  const Buffer packed = compress_buffer(testing::view(input), gzip);
  MemorySource source(packed.view());
  MemorySink sink;
  CompressOptions zstd;
  zstd.codec = "zstd";
  zstd.threads = 2;
  const CompressStats stats = transcode(source, sink, zstd);
  EXPECT_EQ(stats.input_bytes, input.size());
  EXPECT_EQ(to_bytes(decompress_buffer(sink.buffer().view())), input);
  // The compression side kept to its bound (3 chunks per thread, +2 for the reader's look-ahead)
  // while the decompression side fed it through the pipe.
  EXPECT_LE(stats.peak_chunks_in_flight, 3u * 2 + 2);
}

// ---- One-call helpers ----

TEST(OneCall, CompressFileAndDecompressFile) {
  testing::ScratchDir dir;
  const Bytes input = text_bytes(700000, 41);
  write_file(dir / "data.txt", input);
  CompressOptions options;
  options.codec = "gzip";
  const CompressStats stats = compress_file((dir / "data.txt").string(), (dir / "data.txt.gz").string(), options);
  EXPECT_EQ(stats.input_bytes, input.size());
  // gzip reads it and finds the name we stored.
  auto r = testing::run("gzip -dc data.txt.gz | cmp - data.txt && gzip -lN data.txt.gz | tail -1", dir.path());
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("data.txt"), std::string::npos) << r.out;
  // An existing output is kept unless asked.
  EXPECT_THROW(compress_file((dir / "data.txt").string(), (dir / "data.txt.gz").string(), options), Error);
  decompress_file((dir / "data.txt.gz").string(), (dir / "back.txt").string());
  EXPECT_EQ(read_file(dir / "back.txt"), input);
  EXPECT_THROW(decompress_file((dir / "data.txt").string(), (dir / "never.txt").string()), Error);
  EXPECT_FALSE(fs::exists(dir / "never.txt"));
}

// ---- A user codec in a pipeline ----

// XOR with 0x5A behind a 4-byte magic: a codec a user might register.
std::string register_xor_codec() {
  static const std::string name = [] {
    CodecInfo info;
    info.name = "xor-test";
    info.extension = ".xor";
    info.min_level = 1;
    info.max_level = 1;
    info.default_level = 1;
    info.default_chunk_bytes = 64 * 1024;
    info.matches_magic = [](ByteView prefix) { return prefix.size() >= 4 && std::memcmp(prefix.data(), "XOR1", 4) == 0; };
    CodecRegistry::global().add(info, [info](const CodecOptions& requested) -> std::unique_ptr<Codec> {
      struct Compressor final : ChunkCompressor {
        std::uint64_t compress_chunk(ByteView, ByteView input, bool, Buffer& out) override {
          out.resize(input.size());
          for (std::size_t i = 0; i < input.size(); ++i) out.data()[i] = input[i] ^ 0x5A;
          return 0;
        }
      };
      struct Framer final : StreamFramer {
        void header(Buffer& out) override { out.append(as_bytes("XOR1")); }
        void add_chunk(const ChunkRecord&) override {}
        void trailer(Buffer&) override {}
      };
      struct Decoder final : StreamDecoder {
        std::size_t magic_left = 4;
        void decode(ByteView input, const Emit& emit) override {
          const std::size_t skip = std::min(magic_left, input.size());
          magic_left -= skip;
          Bytes plain(input.begin() + static_cast<std::ptrdiff_t>(skip), input.end());
          for (auto& byte : plain) byte ^= 0x5A;
          emit(testing::view(plain));
        }
        void finish() override {
          if (magic_left) throw Error(ErrorKind::kCorruptData, "truncated xor stream");
        }
        void resume_at(std::uint64_t) override {}
      };
      struct Xor final : Codec {
        CodecInfo info_;
        CodecOptions options_;
        Xor(CodecInfo i, CodecOptions o) : info_(std::move(i)), options_(o) {}
        const CodecInfo& info() const override { return info_; }
        const CodecOptions& options() const override { return options_; }
        std::unique_ptr<ChunkCompressor> new_chunk_compressor() const override {
          return std::make_unique<Compressor>();
        }
        std::unique_ptr<StreamFramer> new_framer(const StreamInfo&) const override {
          return std::make_unique<Framer>();
        }
        std::unique_ptr<StreamDecoder> new_decoder() const override { return std::make_unique<Decoder>(); }
      };
      return std::make_unique<Xor>(info, resolve_options(info, requested));
    });
    return info.name;
  }();
  return name;
}

TEST_F(Pipeline, AUserRegisteredCodecRunsInAPipelineFile) {
  register_xor_codec();
  write_file(dir_ / "in.txt", text_bytes(500000, 31));
  put_text("xor.toml", R"(
[input]
paths = ["in.txt"]
[[stage]]
kind = "compress"
codec = "xor-test"
[[stage]]
kind = "checksum"
[output]
directory = "out"
)");
  const PipelineSpec spec = parse_pipeline_file((dir_ / "xor.toml").string());
  PipelineSpec run = spec;
  run.inputs = {(dir_ / "in.txt").string()};
  run.output = (dir_ / "out").string();
  const PipelineReport report = run_pipeline(run);
  ASSERT_EQ(report.items.size(), 1u);
  EXPECT_EQ(report.items[0].output, (dir_ / "out/in.txt.xor").string());
  const Bytes packed = read_file(dir_ / "out/in.txt.xor");
  EXPECT_EQ(std::string(packed.begin(), packed.begin() + 4), "XOR1");
  // Decoded back through the registry (detected by its magic), and the manifest checks.
  EXPECT_EQ(to_bytes(decompress_buffer(testing::view(packed))), read_file(dir_ / "in.txt"));
  const auto r = sh("cd out && sha256sum -c --quiet SHA256SUMS");
  EXPECT_EQ(r.status, 0) << describe(r);
}

}  // namespace
}  // namespace sluice
