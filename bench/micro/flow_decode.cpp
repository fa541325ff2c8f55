// A DecompressNode in a caller's graph against sluice::decompress, on one and two threads, and
// sluice::decompress_buffer on two: sluice_flow_decode FILE [REPS] [PIECE_BYTES]. The file is
// read into memory first and fed to the node in pieces (1 MiB by default) from an arena of the
// given threads; the output is counted, not kept (decompress_buffer's is returned, then freed).
// The runs are interleaved; medians in ms and MB/s of output are printed.
// SLUICE_FLOW_DECODE_ONLY=N runs the Nth alone (bench/flow_node_bench.py runs each in a process).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include "sluice/decompress.h"
#include "sluice/flow.h"
#include "sluice/io.h"

namespace {

namespace flow = tbb::flow;

class CountingSink final : public sluice::ByteSink {
 public:
  void write(sluice::ByteView bytes) override { count += bytes.size(); }
  const std::string& name() const override { return name_; }
  std::uint64_t count = 0;

 private:
  std::string name_ = "<count>";
};

std::uint64_t through_node(const std::vector<std::shared_ptr<sluice::Buffer>>& pieces) {
  flow::graph graph;
  sluice::DecompressNode node(graph);
  std::uint64_t out = 0;
  flow::function_node<sluice::ByteChunk, flow::continue_msg> counter(graph, flow::serial,
                                                                     [&](const sluice::ByteChunk& chunk) {
                                                                       out += chunk.bytes->size();
                                                                       return flow::continue_msg();
                                                                     });
  flow::make_edge(flow::output_port<0>(node), counter);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    flow::input_port<0>(node).try_put(sluice::ByteChunk{i, i + 1 == pieces.size(), pieces[i]});
  }
  graph.wait_for_all();
  return out;
}

std::uint64_t through_decompress(const std::string& packed, int threads) {
  sluice::MemorySource source(
      sluice::ByteView(reinterpret_cast<const std::uint8_t*>(packed.data()), packed.size()));
  CountingSink sink;
  sluice::DecompressOptions options;
  options.threads = threads;
  sluice::decompress(source, sink, options);
  return sink.count;
}

// Into memory the caller owns, as the one-call API (and Python's sluice.decompress) returns it.
std::uint64_t into_buffer(const std::string& packed, int threads) {
  sluice::DecompressOptions options;
  options.threads = threads;
  return sluice::decompress_buffer(
             sluice::ByteView(reinterpret_cast<const std::uint8_t*>(packed.data()), packed.size()), options)
      .size();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: sluice_flow_decode FILE [REPS] [PIECE_BYTES]\n");
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  const std::string packed{std::istreambuf_iterator<char>(in), {}};
  const int reps = argc > 2 ? std::stoi(argv[2]) : 9;
  const std::size_t piece = argc > 3 ? std::stoul(argv[3]) : 1024 * 1024;
  std::vector<std::shared_ptr<sluice::Buffer>> pieces;
  for (std::size_t at = 0; at < packed.size() || pieces.empty(); at += piece) {
    auto bytes = std::make_shared<sluice::Buffer>();
    bytes->append(sluice::ByteView(reinterpret_cast<const std::uint8_t*>(packed.data()) + at,
                                   std::min(piece, packed.size() - at)));
    pieces.push_back(std::move(bytes));
  }
  enum class Kind { kNode, kDecompress, kBuffer };
  struct Run {
    std::string name;
    int threads;
    Kind kind;
    std::vector<double> ms;
  };
  std::vector<Run> runs = {{"DecompressNode", 1, Kind::kNode, {}},
                           {"DecompressNode", 2, Kind::kNode, {}},
                           {"decompress()", 1, Kind::kDecompress, {}},
                           {"decompress()", 2, Kind::kDecompress, {}},
                           {"decompress_buffer()", 2, Kind::kBuffer, {}}};
  if (const char* only = std::getenv("SLUICE_FLOW_DECODE_ONLY")) {  // one run alone, for perf stat
    const std::size_t keep = std::stoul(only);
    runs = {runs.at(keep)};
  }
  std::uint64_t output = 0;
  for (int rep = -1; rep < reps; ++rep) {  // -1: a warm-up
    for (auto& run : runs) {
      const auto start = std::chrono::steady_clock::now();
      tbb::task_arena arena(run.threads);
      arena.execute([&] {
        switch (run.kind) {
          case Kind::kNode:
            output = through_node(pieces);
            break;
          case Kind::kDecompress:
            output = through_decompress(packed, run.threads);
            break;
          case Kind::kBuffer:
            output = into_buffer(packed, run.threads);
            break;
        }
      });
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (rep >= 0) run.ms.push_back(ms);
    }
  }
  std::printf("%s: %zu bytes in pieces of %zu, %llu out, median of %d\n", argv[1], packed.size(), piece,
              static_cast<unsigned long long>(output), reps);
  for (const auto& run : runs) {
    const double ms = median(run.ms);
    std::printf("%-16s -j%d  %8.1f ms  %7.0f MB/s\n", run.name.c_str(), run.threads, ms,
                static_cast<double>(output) / ms / 1000.0);
  }
  return 0;
}
