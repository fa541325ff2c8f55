// CompressNode inside a caller's own flow graph, with the caller's transform node in front of it:
// output in order, byte-identical to sluice::compress() over the same chunks, bounded by the
// caller's limiter, and a codec failure surfacing from wait_for_all().
#include <gtest/gtest.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/flow.h"
#include "sluice/io.h"
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
    CodecRegistry::global().add(info, [info](const CodecOptions& codec_options) -> std::unique_ptr<Codec> {
      struct Broken final : Codec {
        Broken(std::unique_ptr<Codec> wrapped, CodecInfo info) : inner(std::move(wrapped)), own(std::move(info)) {}
        const CodecInfo& info() const override { return own; }
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
        CodecInfo own;
      };
      return std::make_unique<Broken>(CodecRegistry::global().create("lz4", codec_options), info);
    });
    return info.name;
  }();
  CompressOptions options;
  options.codec = name;
  try {
    run_user_graph(text_bytes(1024 * 1024, 8), 64 * 1024, options, 4);
    ADD_FAILURE() << "the codec's exception was lost";
  } catch (const Error& e) {  // a sluice::Error naming the codec, not the codec's raw exception
    EXPECT_EQ(e.kind(), ErrorKind::kInternal) << e.what();
    EXPECT_NE(std::string(e.what()).find("codec 'flow-test-broken': user codec failed"), std::string::npos) << e.what();
  }
}

// Puts `bytes` into `node` twice, as chunks 0 and 1, both marked last, with a writer after it;
// returns what graph.wait_for_all() throws ("" if nothing).
template <typename Node>
std::string two_chunks_marked_last(flow::graph& graph, Node& node, ByteView bytes) {
  flow::function_node<ByteChunk> writer(graph, flow::serial, [](const ByteChunk&) {});
  flow::make_edge(flow::output_port<0>(node), writer);
  for (std::uint64_t sequence : {0u, 1u}) {
    auto copy = std::make_shared<Buffer>();
    copy->append(bytes);
    ByteChunk chunk;
    chunk.sequence = sequence;
    chunk.last = true;
    chunk.bytes = std::move(copy);
    flow::input_port<0>(node).try_put(chunk);
  }
  try {
    graph.wait_for_all();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    return e.what();
  }
  return "";
}

// Two chunks marked last: the second's bytes went out after the stream's trailer (a stream with
// trailing garbage) and wait_for_all() returned as if all were well.
TEST(CompressNode, AChunkAfterTheLastIsAUsageError) {
  flow::graph graph;
  CompressOptions options;
  options.codec = "gzip";
  CompressNode node(graph, options);
  const Bytes data = text_bytes(1000, 3);
  EXPECT_EQ(two_chunks_marked_last(graph, node, view(data)), "CompressNode: chunk 1 comes after chunk 0, marked last");
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

// ---- DecompressNode ----

struct Decoded {
  Bytes output;
  std::size_t pieces = 0;
  std::size_t lasts = 0;  // pieces marked last (exactly one, the final, when the stream is whole)
  std::exception_ptr error;
};

// Puts `packed` into a DecompressNode as pieces of the given sizes (cycling), in the order
// `order` gives (their sequence numbers are always their place in the stream), and collects
// what comes out.
Decoded decode_in_graph(const Bytes& packed, const std::vector<std::size_t>& sizes, const DecompressOptions& options,
                        bool reversed = false);

// The same, in a graph made in an arena of `threads`.
Decoded decode_in_arena(int threads, const Bytes& packed, const std::vector<std::size_t>& sizes,
                        const DecompressOptions& options) {
  tbb::task_arena arena(threads);
  Decoded decoded;
  arena.execute([&] { decoded = decode_in_graph(packed, sizes, options); });
  return decoded;
}

Decoded decode_in_graph(const Bytes& packed, const std::vector<std::size_t>& sizes, const DecompressOptions& options,
                        bool reversed) {
  std::vector<ByteChunk> pieces;
  for (std::size_t at = 0, i = 0; at < packed.size() || pieces.empty(); ++i) {
    const std::size_t n = std::min(sizes[i % sizes.size()], packed.size() - at);
    auto bytes = std::make_shared<Buffer>();
    bytes->append(ByteView(packed.data() + at, n));
    at += n;
    ByteChunk chunk;
    chunk.sequence = pieces.size();
    chunk.last = at == packed.size();
    chunk.bytes = std::move(bytes);
    pieces.push_back(std::move(chunk));
  }
  if (reversed) std::reverse(pieces.begin(), pieces.end());
  flow::graph graph;
  DecompressNode node(graph, options);
  Decoded decoded;
  std::uint64_t expected = 0;
  flow::function_node<ByteChunk, flow::continue_msg> collector(graph, flow::serial, [&](const ByteChunk& chunk) {
    EXPECT_EQ(chunk.sequence, expected++) << "out of order";
    EXPECT_EQ(decoded.lasts, 0u) << "a piece after the last";
    decoded.output.insert(decoded.output.end(), chunk.bytes->data(), chunk.bytes->data() + chunk.bytes->size());
    ++decoded.pieces;
    decoded.lasts += chunk.last;
    return flow::continue_msg();
  });
  flow::make_edge(flow::output_port<0>(node), collector);
  for (const auto& piece : pieces) flow::input_port<0>(node).try_put(piece);
  try {
    graph.wait_for_all();
  } catch (...) {
    decoded.error = std::current_exception();
  }
  return decoded;
}

TEST(DecompressNode, EveryFormatInPiecesOfAnySizeAndOrder) {
  const Bytes input = text_bytes(3 * 1024 * 1024 + 17, 41);
  struct Case {
    std::string codec, form;
  };
  for (const auto& [codec, form] : std::vector<Case>{{"gzip", "independent"},
                                                     {"gzip", "multi-member"},
                                                     {"gzip", "single-member"},
                                                     {"gzip", "bgzf"},
                                                     {"zstd", ""},
                                                     {"lz4", ""}}) {
    CompressOptions options;
    options.codec = codec;
    if (!form.empty()) options.codec_options.knobs["form"] = form;
    if (form != "bgzf") options.codec_options.chunk_bytes = 256 * 1024;
    const Bytes packed = to_bytes(compress_buffer(view(input), options));
    for (const auto& sizes :
         std::vector<std::vector<std::size_t>>{{1 << 20}, {1, 7, 4093, 65536, 300000}, {packed.size()}}) {
      for (const bool reversed : {false, true}) {
        const Decoded decoded = decode_in_graph(packed, sizes, {}, reversed);
        SCOPED_TRACE(codec + " " + form + " pieces from " + std::to_string(sizes.front()) +
                     (reversed ? " reversed" : ""));
        EXPECT_FALSE(decoded.error);
        EXPECT_TRUE(decoded.output == input);
        EXPECT_EQ(decoded.lasts, 1u);
      }
    }
  }
}

// Two pieces marked last: the second was dropped without a word.
TEST(DecompressNode, APieceAfterTheLastIsAUsageError) {
  flow::graph graph;
  DecompressNode node(graph);
  const Buffer packed = compress_buffer(view(text_bytes(1000, 4)), CompressOptions{});
  EXPECT_EQ(two_chunks_marked_last(graph, node, packed.view()),
            "DecompressNode: piece 1 comes after piece 0, marked last");
}

TEST(DecompressNode, AStreamOfNothingIsOneEmptyLastPiece) {
  const Bytes packed = to_bytes(compress_buffer({}, CompressOptions{}));
  const Decoded decoded = decode_in_graph(packed, {3}, {});
  EXPECT_FALSE(decoded.error);
  EXPECT_TRUE(decoded.output.empty());
  EXPECT_EQ(decoded.pieces, 1u);
  EXPECT_EQ(decoded.lasts, 1u);
}

// A failure surfaces from wait_for_all(), after the output before it, and nothing is marked last.
TEST(DecompressNode, TruncationCorruptionAndTheOutputLimitAreThrownInOrder) {
  const Bytes input = text_bytes(2 * 1024 * 1024, 43);
  CompressOptions options;
  options.codec = "zstd";
  options.codec_options.chunk_bytes = 256 * 1024;
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  const auto kind_of = [](const std::exception_ptr& error) {
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      return e.kind();
    }
  };
  const Bytes truncated(packed.begin(), packed.end() - 100);
  Decoded decoded = decode_in_graph(truncated, {65536}, {});
  ASSERT_TRUE(decoded.error);
  EXPECT_EQ(kind_of(decoded.error), ErrorKind::kCorruptData);
  EXPECT_EQ(decoded.lasts, 0u);
  EXPECT_TRUE(Bytes(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(decoded.output.size())) ==
              decoded.output)
      << "output before the error is the stream's prefix";

  decoded = decode_in_graph(Bytes{'n', 'o', 'p', 'e'}, {4}, {});
  ASSERT_TRUE(decoded.error);
  EXPECT_EQ(kind_of(decoded.error), ErrorKind::kCorruptData);

  DecompressOptions limited;
  limited.max_output_bytes = 1024 * 1024;
  decoded = decode_in_graph(packed, {65536}, limited);
  ASSERT_TRUE(decoded.error);
  EXPECT_EQ(kind_of(decoded.error), ErrorKind::kLimit);
  EXPECT_LE(decoded.output.size(), limited.max_output_bytes);
}

// Trailing garbage after a whole stream is an error from wait_for_all(); what reached the nodes
// after this one before the graph was cancelled is the stream's start.
TEST(DecompressNode, TrailingGarbageIsAnError) {
  const Bytes input = text_bytes(300 * 1000, 49);
  Bytes packed = to_bytes(compress_buffer(view(input), CompressOptions{}));
  for (const char c : std::string("garbage!")) packed.push_back(static_cast<std::uint8_t>(c));
  for (const std::size_t piece : {std::size_t{65536}, packed.size()}) {
    const Decoded decoded = decode_in_graph(packed, {piece}, {});
    ASSERT_TRUE(decoded.error);
    try {
      std::rethrow_exception(decoded.error);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kTrailingGarbage) << e.what();
    }
    EXPECT_TRUE(Bytes(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(decoded.output.size())) ==
                decoded.output);
    EXPECT_EQ(decoded.lasts, 0u);
  }
}

// A gzip member of another tool's (one deflate stream, no sizes recorded) is decoded in pieces on
// the caller's threads, as sluice::decompress does, where the arena has two or more: zlib's
// member without a flush (cut at its blocks) and sluice's single member (at its sync flushes).
// The output is exact either way, comes in a piece per unit, and a damaged byte gives the error
// decoding in order gives, after a prefix of the output.
TEST(DecompressNode, AMemberOfAnotherToolIsDecodedInPiecesOnTheArenasThreads) {
  const Bytes input = text_bytes(3 * 1024 * 1024 + 5, 53);
  CompressOptions single;
  single.codec_options.knobs["form"] = "single-member";
  const std::vector<std::pair<std::string, Bytes>> members = {
      {"zlib", testing::gzip_with_header_fields(input, "", "", "")},
      {"sluice --single-member", to_bytes(compress_buffer(view(input), single))}};
  DecompressOptions options;
  options.unit_input_bytes = 16 * 1024;
  for (const auto& [maker, packed] : members) {
    for (const int threads : {1, 2, 4}) {
      for (const std::vector<std::size_t>& sizes : {std::vector<std::size_t>{packed.size()}, {1, 100000, 70000}}) {
        SCOPED_TRACE(fmt::format("{} on {} threads, pieces from {}", maker, threads, sizes.front()));
        const Decoded decoded = decode_in_arena(threads, packed, sizes, options);
        EXPECT_FALSE(decoded.error);
        EXPECT_TRUE(decoded.output == input);
        EXPECT_EQ(decoded.lasts, 1u);
        // Fed whole (500 KB): its output in 1 MiB buffers on one thread, in a buffer per unit on
        // more (15 of zlib's, cut at its blocks; 30 of sluice's, at the sync flushes past 16 KiB).
        if (sizes.size() == 1) {
          if (threads == 1)
            EXPECT_LE(decoded.pieces, 6u);
          else
            EXPECT_GE(decoded.pieces, 12u);
        }
      }
    }
    Bytes damaged = packed;
    damaged[damaged.size() / 2] ^= 0x10;
    std::string in_order;
    MemorySource source(view(damaged));
    MemorySink written;  // what decoding in order writes before it fails
    try {
      DecompressOptions one_thread;
      one_thread.threads = 1;
      decompress(source, written, one_thread);
    } catch (const Error& e) {
      in_order = e.what();
    }
    ASSERT_FALSE(in_order.empty()) << maker << ": the damage went unnoticed";
    const Decoded decoded = decode_in_arena(2, damaged, {packed.size()}, options);
    ASSERT_TRUE(decoded.error) << maker;
    try {
      std::rethrow_exception(decoded.error);
    } catch (const Error& e) {
      // The same failure; the name differs (a file's against the node's).
      const std::string what = e.what(), tail = in_order.substr(in_order.find(':'));
      EXPECT_NE(what.find(tail), std::string::npos) << maker << ": " << what << " against " << in_order;
    }
    // What it sent on is what decoding in order writes, or the start of it.
    const Bytes before = to_bytes(written.buffer());
    ASSERT_LE(decoded.output.size(), before.size()) << maker;
    EXPECT_TRUE(Bytes(before.begin(), before.begin() + static_cast<std::ptrdiff_t>(decoded.output.size())) ==
                decoded.output)
        << maker;
    EXPECT_EQ(decoded.lasts, 0u);
  }
}

// zstd, registered under another name, whose unit decoder stops at the unit that decodes to
// `gate.held` until the gate is opened.
struct Gate {
  std::mutex mutex;
  std::condition_variable changed;
  Bytes held;
  bool entered = false, open = false;
};

std::string register_gated_zstd(Gate& gate) {
  CodecInfo info = *CodecRegistry::global().find("zstd");
  info.name = "flow-test-gated-zstd";
  info.extension = ".gated";
  info.matches_magic = nullptr;
  CodecRegistry::global().add(info, [info, &gate](const CodecOptions& codec_options) -> std::unique_ptr<Codec> {
    struct GatedDecoder final : UnitDecoder {
      GatedDecoder(std::unique_ptr<UnitDecoder> wrapped, Gate& g) : inner(std::move(wrapped)), gate(g) {}
      void decode_unit(ByteView unit, const Cut& cut, Buffer& out) override {
        inner->decode(unit, cut, out);
        if (to_bytes(out) != gate.held) return;
        std::unique_lock lock(gate.mutex);
        gate.entered = true;
        gate.changed.notify_all();
        gate.changed.wait(lock, [this] { return gate.open; });
      }
      std::unique_ptr<UnitDecoder> inner;
      Gate& gate;
    };
    struct Gated final : Codec {
      Gated(CodecInfo i, std::unique_ptr<Codec> wrapped, Gate& g)
          : own(std::move(i)), inner(std::move(wrapped)), gate(g) {}
      const CodecInfo& info() const override { return own; }
      const CodecOptions& options() const override { return inner->options(); }
      std::unique_ptr<ChunkCompressor> new_chunk_compressor() const override { return inner->make_chunk_compressor(); }
      std::unique_ptr<StreamFramer> new_framer(const StreamInfo& stream) const override {
        return inner->make_framer(stream);
      }
      std::unique_ptr<StreamDecoder> new_decoder() const override { return inner->make_decoder(); }
      std::unique_ptr<StreamSplitter> new_splitter() const override { return inner->make_splitter(); }
      std::unique_ptr<UnitVerifier> new_unit_verifier() const override { return inner->make_unit_verifier(); }
      std::unique_ptr<UnitDecoder> new_unit_decoder() const override {
        return std::make_unique<GatedDecoder>(inner->make_unit_decoder(), gate);
      }
      CodecInfo own;
      std::unique_ptr<Codec> inner;
      Gate& gate;
    };
    return std::make_unique<Gated>(info, CodecRegistry::global().create("zstd", codec_options), gate);
  });
  return info.name;
}

// Memory in flight is bounded: the node cuts at most max_pieces_in_flight pieces ahead of what it
// has written, and the caller's pieces beyond them wait, whole and untouched (the node still holds
// them), however many were sent at once. Each piece here is a zstd frame, one unit; while unit 10
// is being decoded the writer cannot retire it, so the node cuts no further than unit 11 (two in
// flight) and the reader has let go of no frame past the 11th (12th, if it looked ahead).
TEST(DecompressNode, CutsOnlyAFewPiecesAheadOfWhatItWrote) {
  static Gate gate;
  static const std::string gated = register_gated_zstd(gate);
  gate.entered = gate.open = false;  // a repeated run
  const std::size_t frames = 64, frame_bytes = 4096, in_flight = 2, held = 10;
  CompressOptions zstd;
  zstd.codec = "zstd";
  std::vector<ByteChunk> pieces;
  std::vector<std::weak_ptr<const Buffer>> sent;
  Bytes input;
  for (std::size_t i = 0; i < frames; ++i) {
    const Bytes slice = text_bytes(frame_bytes, 100 + i);
    if (i == held) gate.held = slice;
    input.insert(input.end(), slice.begin(), slice.end());
    auto frame = std::make_shared<const Buffer>(compress_buffer(view(slice), zstd));
    sent.push_back(frame);
    pieces.push_back(ByteChunk{i, i + 1 == frames, std::move(frame)});
  }
  DecompressOptions options;
  options.codec = gated;
  options.max_pieces_in_flight = in_flight;
  flow::graph graph;
  DecompressNode node(graph, options);
  Bytes output;
  flow::function_node<ByteChunk, flow::continue_msg> collector(graph, flow::serial, [&](const ByteChunk& chunk) {
    output.insert(output.end(), chunk.bytes->data(), chunk.bytes->data() + chunk.bytes->size());
    return flow::continue_msg();
  });
  flow::make_edge(flow::output_port<0>(node), collector);
  for (auto& piece : pieces) flow::input_port<0>(node).try_put(std::exchange(piece, {}));
  {
    std::unique_lock lock(gate.mutex);
    const bool held_up = gate.changed.wait_for(lock, std::chrono::seconds(60), [] { return gate.entered; });
    EXPECT_TRUE(held_up) << "unit " << held << " was never decoded";
    if (held_up) {
      // Time for a cutter without the bound to run on (the check holds however long this is).
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      lock.lock();
      for (std::size_t i = held + in_flight; i < frames; ++i) {
        EXPECT_FALSE(sent[i].expired()) << "frame " << i << " let go while unit " << held << " was decoded";
      }
    }
    gate.open = true;
    gate.changed.notify_all();
  }
  graph.wait_for_all();
  EXPECT_TRUE(output == input);
  for (const auto& frame : sent) EXPECT_TRUE(frame.expired()) << "the node keeps a piece after the stream's end";
}

// CompressNode into DecompressNode in one graph gives the input back.
TEST(DecompressNode, AfterACompressNodeInTheSameGraph) {
  const Bytes input = text_bytes(1024 * 1024 + 3, 47);
  flow::graph graph;
  CompressOptions options;
  options.codec = "gzip";
  CompressNode compress_node(graph, options);
  DecompressNode decompress_node(graph);
  Bytes output;
  flow::function_node<ByteChunk, flow::continue_msg> collector(graph, flow::serial, [&](const ByteChunk& chunk) {
    output.insert(output.end(), chunk.bytes->data(), chunk.bytes->data() + chunk.bytes->size());
    return flow::continue_msg();
  });
  flow::make_edge(flow::output_port<0>(compress_node), flow::input_port<0>(decompress_node));
  flow::make_edge(flow::output_port<0>(decompress_node), collector);
  const std::size_t piece = 100 * 1000;
  for (std::size_t at = 0, sequence = 0; at < input.size(); at += piece, ++sequence) {
    auto bytes = std::make_shared<Buffer>();
    bytes->append(ByteView(input.data() + at, std::min(piece, input.size() - at)));
    flow::input_port<0>(compress_node).try_put(ByteChunk{sequence, at + piece >= input.size(), std::move(bytes)});
  }
  graph.wait_for_all();
  EXPECT_TRUE(output == input);
}

}  // namespace
}  // namespace sluice
