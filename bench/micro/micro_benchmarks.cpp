// Micro-benchmarks of what one worker does per chunk and of the graphs' serial stages.
//
// Chunk paths (parallel in the graphs, so their speed times the cores is the codec's ceiling):
//   Compress/<codec>/<level>[/<engine>]: one chunk through ChunkCompressor::compress;
//   Decode/<codec>[/<engine>]: one unit through UnitDecoder::decode.
// Serial stages (one thread each, whatever the core count; the design tops out at the slowest):
//   Read: the reader's copy of input into a chunk (read(2) from the page cache);
//   Crc32 / Crc32Combine: a single gzip member's check, streaming or combined per chunk;
//   Xxh32: the content checksum of an lz4 frame of many blocks (the lz4 tool's), computed in order
//     by the writer (sluice's own lz4 has none: its block checksums are checked in Decode/lz4);
//   Write: the writer's write(2) of output into a pipe drained by another thread.
// Streams:
//   CompressorSmallWrites/<codec>: a Compressor fed 120-byte writes (a log's records), unflushed:
//     what a write costs the caller besides the compression, against one write of it all.
//
// Input: SLUICE_BENCH_INPUT (a file; bench/run_bench.py passes the Silesia tar), else 8 MiB of
// built-in text. Throughput is in uncompressed bytes per second.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "sluice/codec_author.h"
#include "sluice/stream.h"

namespace {

using sluice::Buffer;
using sluice::ByteView;
using sluice::CodecOptions;
using sluice::CodecRegistry;
using sluice::Cut;

const std::vector<std::uint8_t>& input() {
  static const std::vector<std::uint8_t> bytes = [] {
    if (const char* path = std::getenv("SLUICE_BENCH_INPUT")) {
      std::ifstream in(path, std::ios::binary);
      if (!in) throw std::runtime_error(std::string("cannot read ") + path);
      return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
    }
    std::vector<std::uint8_t> text;
    std::uint64_t state = 88172645463325252ull;
    static const char* const kWords[] = {"the ", "flow ", "graph ", "of ", "chunks\n", "and ", "order ", "2026 "};
    while (text.size() < (8u << 20)) {
      state ^= state << 13, state ^= state >> 7, state ^= state << 17;
      const char* word = kWords[state % 8];
      text.insert(text.end(), word, word + std::strlen(word));
    }
    return text;
  }();
  return bytes;
}

// The chunks of the input, cut as the graph cuts them.
std::vector<ByteView> chunks_of(std::size_t chunk_bytes) {
  std::vector<ByteView> chunks;
  const auto& in = input();
  for (std::size_t at = 0; at < in.size(); at += chunk_bytes) {
    chunks.emplace_back(in.data() + at, std::min(chunk_bytes, in.size() - at));
  }
  return chunks;
}

CodecOptions options_for(int level, const std::string& engine) {
  CodecOptions options;
  options.level = level;
  options.backend = engine;
  return options;
}

// Compresses every chunk of the input with one compressor (as one worker would).
void compress_chunks(benchmark::State& state, const std::string& codec_name, int level, const std::string& engine) {
  const auto codec = CodecRegistry::global().create(codec_name, options_for(level, engine));
  const auto chunks = chunks_of(codec->options().chunk_bytes);
  const auto compressor = codec->make_chunk_compressor();
  Buffer out;
  std::size_t packed = 0;
  for (auto _ : state) {
    packed = 0;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      compressor->compress({}, chunks[i], i + 1 == chunks.size(), out);
      packed += out.size();
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input().size()));
  state.counters["ratio"] = static_cast<double>(packed) / static_cast<double>(input().size());
}

// Decodes every unit of the codec's own output with one unit decoder.
void decode_units(benchmark::State& state, const std::string& codec_name, const std::string& engine) {
  const auto codec = CodecRegistry::global().create(codec_name, options_for(0, engine));
  const auto compressor = codec->make_chunk_compressor();
  const auto splitter = codec->make_splitter();
  const auto decoder = codec->make_unit_decoder();
  // The whole stream as the graph's reader sees it: header, chunks, trailer.
  Buffer stream, piece;
  const auto framer = codec->make_framer({});
  framer->header(stream);
  const auto chunks = chunks_of(codec->options().chunk_bytes);
  for (std::size_t i = 0; i < chunks.size(); ++i) {
    const std::uint64_t check = compressor->compress({}, chunks[i], i + 1 == chunks.size(), piece);
    framer->add_chunk({chunks[i].size(), piece.size(), check});
    stream.append(piece.view());
  }
  framer->trailer(stream);
  std::vector<std::pair<ByteView, Cut>> units;
  for (std::size_t at = 0; at < stream.size();) {
    const Cut cut = splitter->next(stream.view().subspan(at), at);
    if (cut.kind == Cut::Kind::kUnit) units.emplace_back(stream.view().subspan(at, cut.bytes), cut);
    if (cut.kind != Cut::Kind::kUnit && cut.kind != Cut::Kind::kMarker) throw std::runtime_error("cannot split");
    at += cut.bytes;
  }
  Buffer out;
  for (auto _ : state) {
    for (const auto& [unit, cut] : units) decoder->decode(unit, cut, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input().size()));
}

void register_codec_benchmarks() {
  struct Case {
    const char* codec;
    int level;
    const char* engine;
  };
  for (const Case& c : {Case{"gzip", 1, "isal"}, Case{"gzip", 1, "libdeflate"}, Case{"gzip", 1, "zlib"},
                        Case{"gzip", 6, "libdeflate"}, Case{"gzip", 6, "zlib"}, Case{"gzip", 9, "libdeflate"},
                        Case{"zstd", 3, ""}, Case{"lz4", 1, ""}}) {
    const std::string name = std::string("Compress/") + c.codec + "/" + std::to_string(c.level) +
                             (*c.engine ? std::string("/") + c.engine : "");
    benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State& state) { compress_chunks(state, c.codec, c.level, c.engine); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
  for (const Case& c : {Case{"gzip", 0, "libdeflate"}, Case{"gzip", 0, "isal"}, Case{"gzip", 0, "zlib"},
                        Case{"zstd", 0, ""}, Case{"lz4", 0, ""}}) {
    const std::string name = std::string("Decode/") + c.codec + (*c.engine ? std::string("/") + c.engine : "");
    benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State& state) { decode_units(state, c.codec, c.engine); })
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

// ---- Serial stages ----

// The reader: read(2) of the whole input from the page cache into 1 MiB chunk buffers.
void BM_Read(benchmark::State& state) {
  const char* path = std::getenv("SLUICE_BENCH_INPUT");
  if (!path) {
    state.SkipWithError("needs SLUICE_BENCH_INPUT (a file to read)");
    return;
  }
  std::vector<std::uint8_t> chunk(1 << 20);
  for (auto _ : state) {
    const int fd = ::open(path, O_RDONLY);
    while (::read(fd, chunk.data(), chunk.size()) > 0) {
    }
    ::close(fd);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * input().size()));
}
BENCHMARK(BM_Read)->Unit(benchmark::kMillisecond)->UseRealTime();

// A single gzip member's CRC-32, computed in order. The streaming decoder uses ISA-L's CRC (an
// internal of the codecs library); zlib's crc32_z, the slower of the two, stands in for it here.
void BM_Crc32Zlib(benchmark::State& state) {
  const auto& in = input();
  for (auto _ : state) benchmark::DoNotOptimize(crc32_z(0, in.data(), in.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * in.size()));
}
BENCHMARK(BM_Crc32Zlib)->Unit(benchmark::kMillisecond);

// The writer's per-chunk work for a single gzip member: combining chunk CRCs (per 128 KiB chunk).
void BM_Crc32CombinePerChunk(benchmark::State& state) {
  const std::size_t chunks = input().size() / (128 * 1024);
  for (auto _ : state) {
    uLong crc = 0;
    for (std::size_t i = 0; i < chunks; ++i) crc = crc32_combine(crc, static_cast<uLong>(i), 128 * 1024);
    benchmark::DoNotOptimize(crc);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * chunks * 128 * 1024));
}
BENCHMARK(BM_Crc32CombinePerChunk)->Unit(benchmark::kMillisecond);

// The content checksum of an lz4 frame of many blocks (the lz4 tool's): one XXH32 over the whole
// stream, in order.
void BM_Xxh32(benchmark::State& state) {
  const auto& in = input();
  for (auto _ : state) benchmark::DoNotOptimize(XXH32(in.data(), in.size(), 0));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * in.size()));
}
BENCHMARK(BM_Xxh32)->Unit(benchmark::kMillisecond);

// The writer: write(2) of the input in 1 MiB pieces into a pipe that another thread drains.
void BM_WritePipe(benchmark::State& state) {
  int fds[2];
  if (::pipe(fds) != 0) {
    state.SkipWithError("pipe");
    return;
  }
  std::thread drain([fd = fds[0]] {
    std::vector<char> sink(1 << 20);
    while (::read(fd, sink.data(), sink.size()) > 0) {
    }
  });
  const auto& in = input();
  for (auto _ : state) {
    for (std::size_t at = 0; at < in.size();) {
      const std::size_t n = std::min<std::size_t>(1 << 20, in.size() - at);
      const ssize_t wrote = ::write(fds[1], in.data() + at, n);
      if (wrote <= 0) break;
      at += static_cast<std::size_t>(wrote);
    }
  }
  ::close(fds[1]);
  drain.join();
  ::close(fds[0]);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * in.size()));
}
BENCHMARK(BM_WritePipe)->Unit(benchmark::kMillisecond)->UseRealTime();

// A Compressor fed the input in writes of range(0) bytes (0: one write), output discarded.
void BM_CompressorSmallWrites(benchmark::State& state, const std::string& codec) {
  struct Discard final : sluice::ByteSink {
    void write(ByteView) override {}
    const std::string& name() const override { return name_; }
    std::string name_ = "discard";
  } discard;
  sluice::CompressOptions options;
  options.codec = codec;
  const auto& in = input();
  const std::size_t piece = state.range(0) > 0 ? static_cast<std::size_t>(state.range(0)) : in.size();
  for (auto _ : state) {
    sluice::Compressor compressor(discard, options);
    for (std::size_t at = 0; at < in.size(); at += piece) {
      compressor.write(ByteView(in).subspan(at, std::min(piece, in.size() - at)));
    }
    compressor.finish();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * in.size()));
}
BENCHMARK_CAPTURE(BM_CompressorSmallWrites, lz4, std::string("lz4"))->Arg(120)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_CompressorSmallWrites, zstd, std::string("zstd"))->Arg(120)->Arg(0)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  register_codec_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
