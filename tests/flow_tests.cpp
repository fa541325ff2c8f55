// CompressNode inside a caller's own flow graph, with the caller's transform node in front of it:
// output in order, byte-identical to sluice::compress() over the same chunks, bounded by the
// caller's limiter, and a codec failure surfacing from wait_for_all().
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <optional>

#include <oneapi/tbb/flow_graph.h>

#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/flow.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

namespace flow = tbb::flow;
using testing::Bytes;
using testing::text_bytes;
using testing::to_bytes;
using testing::view;

struct GraphRun {
  Bytes output;
  std::size_t peak_in_flight = 0;
};

// source -> limiter -> uppercase (parallel, the "user's" node) -> CompressNode -> collector -> decrement
// The transform throws on the chunk numbered `fail_at`, if given.
GraphRun run_user_graph(const Bytes& input, std::size_t chunk_bytes, const CompressOptions& options, std::size_t limit,
                        std::optional<std::uint64_t> fail_at = std::nullopt) {
  flow::graph graph;
  std::size_t next = 0;
  std::uint64_t sequence = 0;
  bool done = false;
  std::atomic<std::size_t> in_flight{0};  // admitted by the limiter, not yet collected
  std::atomic<std::size_t> peak{0};
  flow::input_node<ByteChunk> source(graph, [&](tbb::flow_control& control) {
    if (done) {
      control.stop();
      return ByteChunk{};
    }
    auto bytes = std::make_shared<Buffer>();
    const std::size_t n = std::min(chunk_bytes, input.size() - next);
    bytes->append(ByteView(input.data() + next, n));
    next += n;
    ByteChunk chunk;
    chunk.sequence = sequence++;
    chunk.last = next == input.size();
    chunk.bytes = std::move(bytes);
    done = chunk.last;
    return chunk;
  });
  flow::limiter_node<ByteChunk> limiter(graph, limit);
  flow::function_node<ByteChunk, ByteChunk> uppercase(graph, flow::unlimited, [&](ByteChunk chunk) {
    const std::size_t now = ++in_flight;
    std::size_t seen = peak.load();
    while (now > seen && !peak.compare_exchange_weak(seen, now)) {
    }
    if (fail_at && chunk.sequence == *fail_at) throw std::runtime_error("the transform broke");
    auto upper = std::make_shared<Buffer>();
    upper->append(chunk.bytes->view());
    for (std::size_t i = 0; i < upper->size(); ++i) upper->data()[i] = static_cast<std::uint8_t>(std::toupper(upper->data()[i]));
    chunk.bytes = std::move(upper);
    return chunk;
  });
  CompressNode compress_node(graph, options);
  Bytes output;
  std::uint64_t expected = 0;
  flow::function_node<ByteChunk, flow::continue_msg> collector(graph, flow::serial, [&](const ByteChunk& chunk) {
    EXPECT_EQ(chunk.sequence, expected++) << "out of order";
    output.insert(output.end(), chunk.bytes->data(), chunk.bytes->data() + chunk.bytes->size());
    --in_flight;
    return flow::continue_msg();
  });
  flow::make_edge(source, limiter);
  flow::make_edge(limiter, uppercase);
  flow::make_edge(uppercase, flow::input_port<0>(compress_node));
  flow::make_edge(flow::output_port<0>(compress_node), collector);
  flow::make_edge(collector, limiter.decrementer());
  source.activate();
  graph.wait_for_all();
  return {output, peak.load()};
}

Bytes uppercased(Bytes bytes) {
  for (auto& b : bytes) b = static_cast<std::uint8_t>(std::toupper(b));
  return bytes;
}

TEST(CompressNode, ACallersTransformThenCompressionInOrderAndIdenticalToCompress) {
  const Bytes input = text_bytes(3 * 1024 * 1024 + 123, 5);
  const std::size_t chunk = 128 * 1024;
  for (const char* codec : {"gzip", "zstd", "lz4"}) {
    SCOPED_TRACE(codec);
    CompressOptions options;
    options.codec = codec;
    options.codec_options.chunk_bytes = chunk;
    const GraphRun run = run_user_graph(input, chunk, options, 4);
    // The same bytes sluice::compress() writes for the transformed input cut the same way.
    const Buffer reference = compress_buffer(view(uppercased(input)), options);
    EXPECT_EQ(run.output, to_bytes(reference));
    EXPECT_EQ(to_bytes(decompress_buffer(view(run.output))), uppercased(input));
    EXPECT_LE(run.peak_in_flight, 4u) << "the caller's limiter bounds the chunks";
  }
}

// Many tiny chunks: a serial node may pass its outputs on out of order (oneTBB starts its next
// input first), so the node must re-sequence what it emits.
TEST(CompressNode, ManySmallChunksStillArriveInOrder) {
  const Bytes input = text_bytes(4 * 1024 * 1024, 6);
  CompressOptions options;
  options.codec = "lz4";
  options.codec_options.chunk_bytes = 64 * 1024;
  for (int round = 0; round < 3; ++round) {
    const GraphRun run = run_user_graph(input, 2048, options, 16);
    EXPECT_EQ(to_bytes(decompress_buffer(view(run.output))), uppercased(input)) << "round " << round;
  }
}

TEST(CompressNode, AStreamOfOneEmptyChunk) {
  CompressOptions options;
  options.codec = "zstd";
  const GraphRun run = run_user_graph({}, 1024, options, 2);
  EXPECT_EQ(run.output, to_bytes(compress_buffer({}, options)));
  EXPECT_TRUE(decompress_buffer(view(run.output)).empty());
}

// An exception in the caller's node or in a codec stops the caller's graph: wait_for_all()
// rethrows it (no deadlock on the limiter, whose decrements stop with the failing chunk).
TEST(CompressNode, AnExceptionInTheCallersTransformStopsTheGraph) {
  const Bytes input = text_bytes(4 * 1024 * 1024, 7);
  CompressOptions options;
  options.codec = "zstd";
  for (std::uint64_t fail_at : {0u, 5u, 63u}) {
    try {
      run_user_graph(input, 64 * 1024, options, 4, fail_at);
      ADD_FAILURE() << "the transform's exception was lost at chunk " << fail_at;
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "the transform broke");
    }
  }
}

TEST(CompressNode, AFailingUserCodecSurfacesFromWaitForAll) {
  static const std::string name = [] {
    CodecInfo info = *CodecRegistry::global().find("lz4");
    info.name = "flow-test-broken";
    info.extension = ".broken";
    info.matches_magic = nullptr;
    CodecRegistry::global().add(info, [](const CodecOptions& codec_options) -> std::unique_ptr<Codec> {
      struct Broken final : Codec {
        explicit Broken(std::unique_ptr<Codec> wrapped) : inner(std::move(wrapped)) {}
        const CodecInfo& info() const override { return inner->info(); }
        const CodecOptions& options() const override { return inner->options(); }
        std::unique_ptr<ChunkCompressor> new_chunk_compressor() const override {
          struct Throws final : ChunkCompressor {
            std::uint64_t compress_chunk(ByteView, ByteView, bool, Buffer&) override {
              throw std::runtime_error("user codec failed");
            }
          };
          return std::make_unique<Throws>();
        }
        std::unique_ptr<StreamFramer> new_framer(const StreamInfo& stream) const override {
          return inner->make_framer(stream);
        }
        std::unique_ptr<StreamDecoder> new_decoder() const override { return inner->make_decoder(); }
        std::unique_ptr<Codec> inner;
      };
      return std::make_unique<Broken>(CodecRegistry::global().create("lz4", codec_options));
    });
    return info.name;
  }();
  CompressOptions options;
  options.codec = name;
  try {
    run_user_graph(text_bytes(1024 * 1024, 8), 64 * 1024, options, 4);
    ADD_FAILURE() << "the codec's exception was lost";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("user codec failed"), std::string::npos) << e.what();
  }
}

TEST(CompressNode, UnknownCodecIsAUsageError) {
  flow::graph graph;
  CompressOptions options;
  options.codec = "nope";
  try {
    CompressNode node(graph, options);
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
  }
}

}  // namespace
}  // namespace sluice
