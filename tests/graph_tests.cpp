// Tests of the compression graph itself: deterministic output for any thread count, real
// parallelism, the in-flight bound, several streams in one run, and clean failure from any node.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif

#include <fmt/format.h>

#include "engine/thread_arena.h"
#include "sluice/batch.h"
#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/parts.h"
#include "sluice/stream.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

using testing::Bytes;
using testing::FailingSink;
using testing::text_bytes;
using testing::to_bytes;
using testing::view;

// ---- A user codec: stores chunks as they are, and can be made to misbehave. ----

struct IdentityBehaviour {
  // When set, a chunk waits (up to 30 s) until this many distinct threads have entered.
  std::size_t rendezvous_threads = 0;
  // A chunk whose payload starts with this marker throws.
  std::string fail_marker;
  // Prefix every chunk with its length so that a splitter can find units (parallel decoding).
  bool framed = false;
  // A unit whose payload starts with this marker throws when decoded.
  std::string decode_fail_marker;
  // Rewrites every unit cut the splitter makes (a misbehaving plugin).
  std::function<Cut(Cut)> tamper_cut;
  // Appends this many bytes to every decoded unit (more than its cut promised).
  std::size_t decode_extra_bytes = 0;
  // The stream decoder's decode_to() reports this many bytes more than it copied, once.
  std::size_t produced_extra_bytes = 0;
  // The compressor appends to what it is given without clearing it, or writes nothing, or
  // throws something that is no exception.
  bool append_to_out = false;
  bool write_nothing = false;
  // The compressor writes each chunk this many times over (a bloating codec).
  std::size_t repeat_output = 1;
  bool throw_int = false;
  // The stream decoder throws: 1 a std::runtime_error, 2 an int.
  int stream_decoder_throws = 0;
  // The codec sets its options' chunk size to this itself (CodecBase leaves options_ to it).
  std::optional<std::size_t> chunk_bytes;

  std::mutex mutex;
  std::condition_variable changed;
  std::set<std::thread::id> threads;
  std::set<std::vector<int>> cpu_masks;  // the CPUs each chunk's thread was allowed (rendezvous only)
};

// The CPUs the calling thread may run on; empty where that cannot be read.
std::vector<int> thread_cpus() {
  std::vector<int> cpus;
#ifdef __linux__
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &mask)) cpus.push_back(cpu);
  }
#endif
  return cpus;
}

class IdentityCompressor final : public ChunkCompressor {
 public:
  explicit IdentityCompressor(IdentityBehaviour& behaviour) : behaviour_(behaviour) {}
  std::uint64_t compress_chunk(ByteView, ByteView input, bool, Buffer& out) override {
    auto& b = behaviour_;
    if (!b.fail_marker.empty() && input.size() >= b.fail_marker.size() &&
        std::memcmp(input.data(), b.fail_marker.data(), b.fail_marker.size()) == 0) {
      throw std::runtime_error("booby-trapped chunk");
    }
    if (b.rendezvous_threads > 0) {
      std::unique_lock lock(b.mutex);
      b.threads.insert(std::this_thread::get_id());
      b.cpu_masks.insert(thread_cpus());
      b.changed.notify_all();
      if (!b.changed.wait_for(lock, std::chrono::seconds(30), [&] { return b.threads.size() >= b.rendezvous_threads; })) {
        throw Error(ErrorKind::kInternal, "no second worker thread ever took a chunk");
      }
    }
    if (b.throw_int) throw 42;
    if (b.write_nothing) return 0;
    if (!b.append_to_out) out.clear();
    if (b.framed) {
      const auto length = static_cast<std::uint32_t>(input.size());
      out.append({reinterpret_cast<const std::uint8_t*>(&length), 4});
    }
    for (std::size_t i = 0; i < b.repeat_output; ++i) out.append(input);
    return 0;
  }

 private:
  IdentityBehaviour& behaviour_;
};

// Waits (up to 30 s) until `behaviour.rendezvous_threads` distinct threads have arrived.
void rendezvous(IdentityBehaviour& b) {
  if (b.rendezvous_threads == 0) return;
  std::unique_lock lock(b.mutex);
  b.threads.insert(std::this_thread::get_id());
  b.cpu_masks.insert(thread_cpus());
  b.changed.notify_all();
  if (!b.changed.wait_for(lock, std::chrono::seconds(30), [&] { return b.threads.size() >= b.rendezvous_threads; })) {
    throw Error(ErrorKind::kInternal, "no second worker thread ever took a unit");
  }
}

// Framed identity: a unit is a 4-byte length and that many bytes.
class FramedSplitter final : public StreamSplitter {
 public:
  explicit FramedSplitter(IdentityBehaviour& behaviour) : behaviour_(behaviour) {}
  Cut find_cut(ByteView b, std::uint64_t) override {
    if (b.size() < 4) return cuts::need_more();
    std::uint32_t length = 0;
    std::memcpy(&length, b.data(), 4);
    if (b.size() < 4 + std::size_t{length}) return cuts::need_more();
    const Cut cut = cuts::unit(4 + std::size_t{length}, length);
    return behaviour_.tamper_cut ? behaviour_.tamper_cut(cut) : cut;
  }
  void finish_at(std::uint64_t) override {}

 private:
  IdentityBehaviour& behaviour_;
};

class FramedUnitDecoder final : public UnitDecoder {
 public:
  explicit FramedUnitDecoder(IdentityBehaviour& behaviour) : behaviour_(behaviour) {}
  void decode_unit(ByteView unit, const Cut&, Buffer& out) override {
    rendezvous(behaviour_);
    const std::string& marker = behaviour_.decode_fail_marker;
    if (!marker.empty() && unit.size() >= 4 + marker.size() &&
        std::memcmp(unit.data() + 4, marker.data(), marker.size()) == 0) {
      throw std::runtime_error("booby-trapped unit");
    }
    out.clear();
    out.append(unit.subspan(4));
    for (std::size_t i = 0; i < behaviour_.decode_extra_bytes; ++i) out.append({reinterpret_cast<const std::uint8_t*>("x"), 1});
  }

 private:
  IdentityBehaviour& behaviour_;
};

// Unframed identity, decoded as a stream (serially); notes the CPUs its thread may use.
class IdentityStreamDecoder final : public StreamDecoder {
 public:
  explicit IdentityStreamDecoder(IdentityBehaviour& behaviour) : behaviour_(behaviour) {}
  void decode(ByteView input, const Emit& emit) override {
    {
      std::lock_guard lock(behaviour_.mutex);
      behaviour_.cpu_masks.insert(thread_cpus());
    }
    if (behaviour_.stream_decoder_throws == 1) throw std::runtime_error("a decoder's bug");
    if (behaviour_.stream_decoder_throws == 2) throw 7;
    emit(input);
  }
  void decode_to(ByteView input, Output& output) override {
    if (behaviour_.produced_extra_bytes == 0) return StreamDecoder::decode_to(input, output);
    decode(input, [&](ByteView bytes) {
      while (!bytes.empty()) {  // the library's copy loop, but the first count is off
        const std::span<std::uint8_t> space = output.space();
        const std::size_t n = std::min(space.size(), bytes.size());
        std::memcpy(space.data(), bytes.data(), n);
        output.produced(n + std::exchange(behaviour_.produced_extra_bytes, 0));
        bytes = bytes.subspan(n);
      }
    });
  }
  void finish() override {}
  void resume_at(std::uint64_t) override {}

 private:
  IdentityBehaviour& behaviour_;
};

// Written as a user writes a codec: public headers only (sluice/codec.h, sluice/codec_author.h).
class IdentityCodec final : public CodecBase {
 public:
  IdentityCodec(CodecInfo info, const CodecOptions& options, IdentityBehaviour& behaviour)
      : CodecBase(std::move(info), options), behaviour_(behaviour) {
    if (behaviour.chunk_bytes) options_.chunk_bytes = *behaviour.chunk_bytes;
  }
  std::unique_ptr<ChunkCompressor> new_chunk_compressor() const override {
    return std::make_unique<IdentityCompressor>(behaviour_);
  }
  std::unique_ptr<StreamFramer> new_framer(const StreamInfo&) const override {
    return std::make_unique<SelfFramedChunks>();
  }
  std::unique_ptr<StreamDecoder> new_decoder() const override {
    return std::make_unique<IdentityStreamDecoder>(behaviour_);
  }
  std::unique_ptr<StreamSplitter> new_splitter() const override {
    return behaviour_.framed ? std::make_unique<FramedSplitter>(behaviour_) : nullptr;
  }
  std::unique_ptr<UnitDecoder> new_unit_decoder() const override {
    return std::make_unique<FramedUnitDecoder>(behaviour_);
  }

 private:
  IdentityBehaviour& behaviour_;
};

// Registers an identity codec under a fresh name, driven by `behaviour`.
std::string register_identity(IdentityBehaviour& behaviour) {
  static int counter = 0;
  CodecInfo info;
  info.name = "identity-" + std::to_string(counter++);
  info.default_chunk_bytes = 4096;
  CodecRegistry::global().add(info, [info, &behaviour](const CodecOptions& options) {
    return std::make_unique<IdentityCodec>(info, options, behaviour);
  });
  return info.name;
}

// ---- Sources and sinks with quirks. ----

// Hands out at most `step` bytes per read, like a slow pipe.
class TrickleSource final : public ByteSource {
 public:
  TrickleSource(ByteView bytes, std::size_t step) : inner_(bytes, "<trickle>"), step_(step) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    return inner_.read(dst, std::min(max_bytes, step_));
  }
  const std::string& name() const override { return inner_.name(); }

 private:
  MemorySource inner_;
  std::size_t step_;
};

// Fails once `limit` bytes have been read.
class FailingSource final : public ByteSource {
 public:
  FailingSource(ByteView bytes, std::size_t limit) : inner_(bytes, "failing-input.bin"), limit_(limit) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    if (served_ >= limit_) throw Error(ErrorKind::kIo, "read failed: disk on fire", {}, served_);
    const std::size_t got = inner_.read(dst, std::min(max_bytes, limit_ - served_));
    served_ += got;
    return got;
  }
  const std::string& name() const override { return inner_.name(); }

 private:
  MemorySource inner_;
  std::size_t limit_;
  std::size_t served_ = 0;
};

CompressOptions options_for(const std::string& codec, int threads, std::size_t chunk_bytes) {
  CompressOptions options;
  options.codec = codec;
  options.threads = threads;
  options.codec_options.chunk_bytes = chunk_bytes;
  return options;
}

// ---- Tests ----

TEST(Graph, OutputIsByteIdenticalForAnyThreadCount) {
  const Bytes input = text_bytes(3 * 1024 * 1024 + 17, 11);
  for (const char* codec : {"gzip", "zstd", "lz4"}) {
    const Bytes one = to_bytes(compress_buffer(view(input), options_for(codec, 1, 64 * 1024)));
    for (int threads : {2, 8}) {
      EXPECT_EQ(to_bytes(compress_buffer(view(input), options_for(codec, threads, 64 * 1024))), one)
          << codec << " with " << threads << " threads";
    }
    EXPECT_EQ(to_bytes(decompress_buffer(view(one))), input) << codec;
  }
}

// An input of one chunk at most is compressed on the calling thread, without the graph: the
// bytes must be the graph's, for every codec and gzip form, at every size up to the chunk, and
// from a context kept across calls with the same options (and made anew when they change).
TEST(Graph, SmallBuffersCompressedInTheCallerGiveTheGraphsBytes) {
  for (const std::string form : {"", "multi-member", "single-member", "bgzf"}) {
    const std::size_t chunk = form == "bgzf" ? 65280 : 64 * 1024;  // BGZF's blocks are fixed
    for (const char* codec : {"gzip", "zstd", "lz4"}) {
      if (!form.empty() && std::string(codec) != "gzip") continue;
      for (const int level : {1, 9}) {
        for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, chunk - 1, chunk}) {
          const Bytes input = text_bytes(size, 31);
          auto options = options_for(codec, 2, form == "bgzf" ? 0 : chunk);
          options.codec_options.level = level;
          if (!form.empty()) options.codec_options.knobs["form"] = form;
          MemorySource source(view(input));
          MemorySink graph_sink;
          const CompressStats stats = compress(source, graph_sink, options);  // always the graph
          ASSERT_EQ(stats.chunks, 1u);
          for (int call = 0; call < 2; ++call) {
            EXPECT_EQ(to_bytes(compress_buffer(view(input), options)), to_bytes(graph_sink.buffer()))
                << codec << " " << form << " level " << level << " size " << size << " call " << call;
          }
        }
      }
    }
  }
  // A bad option is still refused, and the cached context does not hide it.
  auto bad = options_for("gzip", 2, 4096);
  bad.codec_options.level = 42;
  EXPECT_THROW(compress_buffer(view(text_bytes(10, 1)), bad), Error);
  bad = options_for("gzip", 2000, 4096);
  EXPECT_THROW(compress_buffer(view(text_bytes(10, 1)), bad), Error);
}

TEST(Graph, OutputDoesNotDependOnHowTheSourceDeliversBytes) {
  const Bytes input = text_bytes(300 * 1024 + 5, 12);
  for (const char* codec : {"gzip", "zstd", "lz4"}) {
    const auto options = options_for(codec, 2, 32 * 1024);
    const Bytes whole = to_bytes(compress_buffer(view(input), options));
    TrickleSource trickle(view(input), 777);
    MemorySink sink;
    compress(trickle, sink, options);
    EXPECT_EQ(to_bytes(sink.buffer()), whole) << codec;
  }
}

TEST(Graph, ChunksReallyRunOnSeveralWorkerThreads) {
  IdentityBehaviour behaviour;
  behaviour.rendezvous_threads = 2;  // every chunk waits until two threads have taken one
  const std::string codec = register_identity(behaviour);
  const Bytes input = text_bytes(64 * 4096, 13);
  MemorySource source(view(input));
  MemorySink sink;
  const CompressStats stats = compress(source, sink, options_for(codec, 2, 4096));
  EXPECT_GE(stats.compressor_threads, 2u);
  EXPECT_EQ(behaviour.threads.size(), 2u);
  EXPECT_EQ(to_bytes(sink.buffer()), input) << "chunks must come out in order";
}

TEST(Graph, UnitsReallyDecodeOnSeveralWorkerThreads) {
  IdentityBehaviour behaviour;
  behaviour.framed = true;
  const std::string codec = register_identity(behaviour);
  const Bytes input = text_bytes(64 * 4096 + 100, 19);
  const Buffer packed = compress_buffer(view(input), options_for(codec, 1, 4096));
  behaviour.rendezvous_threads = 2;  // from now on every unit waits until two threads have taken one
  MemorySource source(packed.view());
  MemorySink sink;
  DecompressOptions decode;
  decode.codec = codec;
  decode.threads = 2;
  const DecompressStats stats = decompress(source, sink, decode);
  EXPECT_EQ(stats.decoder_threads, 2u);
  EXPECT_EQ(stats.units, 65u);
  EXPECT_EQ(to_bytes(sink.buffer()), input) << "units must come out in order";
}

#ifdef __linux__
// Whether this process may pin a thread (a sandbox can forbid sched_setaffinity): tries on the
// calling thread and puts its mask back.
bool can_pin(const std::vector<int>& cpus) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus[0], &one);
  if (sched_setaffinity(0, sizeof one, &one) != 0) return false;
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int cpu : cpus) CPU_SET(cpu, &all);
  return sched_setaffinity(0, sizeof all, &all) == 0;
}

// Runs the identity codec on `threads` threads, every chunk waiting until all of them have taken
// one, and returns the CPU masks the chunks ran under.
std::set<std::vector<int>> masks_of_a_run(int threads) {
  IdentityBehaviour behaviour;
  behaviour.rendezvous_threads = static_cast<std::size_t>(threads);
  const std::string codec = register_identity(behaviour);
  const Bytes input = text_bytes(32 * 4096, 23);
  MemorySource source(view(input));
  MemorySink sink;
  compress(source, sink, options_for(codec, threads, 4096));
  EXPECT_EQ(to_bytes(sink.buffer()), input);
  return behaviour.cpu_masks;
}

// The same for decoding: framed units (parallel, every unit waiting until all threads have taken
// one) or the unframed stream (serial, through the codec's stream decoder).
std::set<std::vector<int>> masks_of_a_decode(int threads, bool framed) {
  IdentityBehaviour behaviour;
  behaviour.framed = framed;
  const std::string codec = register_identity(behaviour);
  const Bytes input = text_bytes(32 * 4096 + 9, 24);
  const Buffer packed = compress_buffer(view(input), options_for(codec, 1, 4096));
  behaviour.cpu_masks.clear();
  if (framed) behaviour.rendezvous_threads = static_cast<std::size_t>(threads);
  TrickleSource source(packed.view(), 1000);  // the serial decoder sees several pieces
  MemorySink sink;
  DecompressOptions decode;
  decode.codec = codec;
  decode.threads = threads;
  // From a thread new to oneTBB: one that has been in oneTBB's default arena (this test's main
  // thread may have) decodes in that arena, as a batch's worker does, with no arena of its own.
  std::thread([&] { decompress(source, sink, decode); }).join();
  EXPECT_EQ(to_bytes(sink.buffer()), input);
  return behaviour.cpu_masks;
}

TEST(Graph, OneThreadPerCpuPinsEachToItsOwnCpuAndGivesTheMasksBack) {
  const std::vector<int> cpus = thread_cpus();
  if (cpus.size() < 2 || !can_pin(cpus)) GTEST_SKIP() << "needs two CPUs and leave to pin threads";
  const int threads = static_cast<int>(cpus.size());
  ASSERT_TRUE(thread_pinning()) << "on by default";

  // Pinned: every chunk ran on a one-CPU mask, and together they cover every CPU.
  std::set<std::vector<int>> expected;
  for (int cpu : cpus) expected.insert({cpu});
  EXPECT_EQ(masks_of_a_run(threads), expected);
  EXPECT_EQ(thread_cpus(), cpus) << "the calling thread gets its mask back";
  // Decoding pins for parallel units, not for a stream decoded serially.
  EXPECT_EQ(masks_of_a_decode(threads, true), expected);
  EXPECT_EQ(masks_of_a_decode(threads, false), std::set<std::vector<int>>{cpus});
  EXPECT_EQ(thread_cpus(), cpus);

  // Not pinned: more threads than CPUs, or pinning turned off. The workers pinned above run
  // with the whole mask again, so they were given it back when their arena ended.
  const std::set<std::vector<int>> whole{cpus};
  EXPECT_EQ(masks_of_a_run(threads + 1), whole);
  set_thread_pinning(false);
  const auto unpinned = masks_of_a_run(threads);
  set_thread_pinning(true);
  EXPECT_EQ(unpinned, whole);
  EXPECT_EQ(masks_of_a_run(threads), expected) << "on again";

  // A caller allowed fewer CPUs than the run has threads: nothing pinned, its mask kept.
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus[0], &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const auto narrowed = masks_of_a_run(threads);
  EXPECT_EQ(thread_cpus(), std::vector<int>{cpus[0]});
  cpu_set_t all;
  CPU_ZERO(&all);
  for (int cpu : cpus) CPU_SET(cpu, &all);
  ASSERT_EQ(sched_setaffinity(0, sizeof all, &all), 0);
  EXPECT_TRUE(narrowed.count({cpus[0]}) == 1) << "the caller's own one-CPU mask, kept";
}

TEST(Graph, TwoArenasAtOnceUnpinTheFirstAndPinNeither) {
  const std::vector<int> cpus = thread_cpus();
  if (cpus.size() < 2 || !can_pin(cpus)) GTEST_SKIP() << "needs two CPUs and leave to pin threads";
  const int threads = static_cast<int>(cpus.size());
  std::vector<int> in_first, in_second, in_first_again;
  {
    detail::ThreadArena first(threads);
    first.execute([&] {
      detail::pin_this_thread();  // as a graph's task does
      in_first = thread_cpus();
      detail::ThreadArena second(threads);  // as transcode's second graph comes
      in_first_again = thread_cpus();
      second.execute([&] {
        detail::pin_this_thread();
        in_second = thread_cpus();
      });
    });
  }
  EXPECT_EQ(in_first.size(), 1u) << "alone, the first arena pins";
  EXPECT_EQ(in_first_again, cpus) << "a second arena unpins the first";
  EXPECT_EQ(in_second, cpus) << "and does not pin";
  EXPECT_EQ(thread_cpus(), cpus);
}
#endif

TEST(Graph, OneThreadMeansOneCompressorThread) {
  const Bytes input = text_bytes(1 << 20, 14);
  MemorySource source(view(input));
  MemorySink sink;
  const CompressStats stats = compress(source, sink, options_for("gzip", 1, 64 * 1024));
  EXPECT_EQ(stats.compressor_threads, 1u);
  EXPECT_EQ(stats.chunks, 16u);
}

TEST(Graph, ChunksInFlightStayWithinTheBound) {
  const Bytes input = text_bytes(400 * 4096, 15);
  for (std::size_t bound : {std::size_t{1}, std::size_t{4}}) {
    auto options = options_for("lz4", 2, 4096);
    options.max_chunks_in_flight = bound;
    MemorySource source(view(input));
    MemorySink sink;
    const CompressStats stats = compress(source, sink, options);
    EXPECT_EQ(stats.chunks, 400u);
    // The limiter admits `bound`; the reader holds one look-ahead chunk and the input node one more.
    EXPECT_LE(stats.peak_chunks_in_flight, bound + 2) << "bound " << bound;
    EXPECT_EQ(to_bytes(decompress_buffer(sink.buffer().view())), input);
  }
}

TEST(Graph, SeveralStreamsInOneRunEachDecodeToTheirInput) {
  const std::vector<Bytes> inputs = {text_bytes(200 * 1024, 1), {}, text_bytes(1, 2), text_bytes(64 * 1024, 3)};
  for (const char* codec : {"gzip", "zstd", "lz4"}) {
    const auto options = options_for(codec, 2, 64 * 1024);
    std::vector<std::unique_ptr<MemorySource>> sources;
    std::vector<std::unique_ptr<MemorySink>> sinks;
    std::vector<CompressStream> streams;
    for (const auto& input : inputs) {
      sources.push_back(std::make_unique<MemorySource>(view(input)));
      sinks.push_back(std::make_unique<MemorySink>());
      streams.push_back({sources.back().get(), sinks.back().get(), {}});
    }
    compress_streams(streams, options);
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      EXPECT_EQ(to_bytes(sinks[i]->buffer()), to_bytes(compress_buffer(view(inputs[i]), options)))
          << codec << " stream " << i << " differs from compressing it alone";
    }
  }
}

TEST(Graph, AFailingChunkStopsTheRunWithItsOffset) {
  IdentityBehaviour behaviour;
  behaviour.fail_marker = "BOOM";
  const std::string codec = register_identity(behaviour);
  Bytes input = text_bytes(100 * 4096, 16);
  std::memcpy(input.data() + 37 * 4096, "BOOM", 4);  // chunk 37 starts with the marker
  for (int threads : {1, 2}) {
    MemorySource source(view(input), "trap.bin");
    MemorySink sink;
    try {
      compress(source, sink, options_for(codec, threads, 4096));
      ADD_FAILURE() << "the booby-trapped chunk did not fail the run";
    } catch (const Error& e) {
      EXPECT_EQ(e.path(), "trap.bin");
      EXPECT_EQ(e.offset(), 37u * 4096);
      EXPECT_NE(std::string(e.what()).find("booby-trapped chunk"), std::string::npos) << e.what();
    }
    EXPECT_LE(sink.buffer().size(), 37u * 4096) << "nothing from the failing chunk on is written";
  }
}

TEST(Graph, AReadErrorNamesTheInput) {
  const Bytes input = text_bytes(1 << 20, 17);
  FailingSource source(view(input), 300 * 1024);
  MemorySink sink;
  try {
    compress(source, sink, options_for("zstd", 2, 64 * 1024));
    ADD_FAILURE() << "the read error was lost";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kIo);
    EXPECT_EQ(e.path(), "failing-input.bin");
    EXPECT_EQ(e.offset(), 300u * 1024);
    EXPECT_NE(e.detail().find("disk on fire"), std::string::npos);
  }
}

TEST(Graph, AWriteErrorNamesTheOutput) {
  const Bytes input = text_bytes(1 << 20, 18);
  for (int threads : {1, 2}) {
    MemorySource source(view(input));
    FailingSink sink(100 * 1024);
    try {
      compress(source, sink, options_for("lz4", threads, 64 * 1024));
      ADD_FAILURE() << "the write error was lost";
    } catch (const Error& e) {
      EXPECT_EQ(e.path(), "full-disk.out");
      EXPECT_NE(e.detail().find("No space left"), std::string::npos);
    }
  }
}

TEST(Graph, AFailingUnitDecoderStopsDecodingWithItsOffset) {
  IdentityBehaviour behaviour;
  behaviour.framed = true;
  const std::string codec = register_identity(behaviour);
  Bytes input = text_bytes(100 * 4096, 20);
  std::memcpy(input.data() + 37 * 4096, "BOOM", 4);  // unit 37 starts with the marker
  const Buffer packed = compress_buffer(view(input), options_for(codec, 1, 4096));
  behaviour.decode_fail_marker = "BOOM";
  for (int threads : {1, 2, 8}) {
    MemorySource source(packed.view(), "trap.packed");
    MemorySink sink;
    DecompressOptions decode;
    decode.codec = codec;
    decode.threads = threads;
    try {
      decompress(source, sink, decode);
      ADD_FAILURE() << "the booby-trapped unit did not fail the run";
    } catch (const Error& e) {
      EXPECT_EQ(e.path(), "trap.packed");
      EXPECT_EQ(e.offset(), 37u * (4096 + 4)) << "the offset of the unit in the compressed stream";
      EXPECT_NE(std::string(e.what()).find("booby-trapped unit"), std::string::npos) << e.what();
    }
    EXPECT_EQ(sink.buffer().size(), 37u * 4096) << "everything before the failing unit is written, nothing after";
  }
}

TEST(Graph, ADecompressionWriteErrorNamesTheOutput) {
  const Bytes input = text_bytes(4 << 20, 21);
  for (const auto& [codec, form] : std::vector<std::pair<std::string, std::string>>{
           {"gzip", "multi-member"}, {"gzip", "independent"}, {"zstd", ""}, {"lz4", ""}}) {
    CompressOptions options = options_for(codec, 2, 256 * 1024);
    if (!form.empty()) options.codec_options.knobs["form"] = form;
    const Buffer packed = compress_buffer(view(input), options);
    for (int threads : {1, 2}) {
      MemorySource source(packed.view());
      FailingSink sink(1 << 20);
      DecompressOptions decode;
      decode.threads = threads;
      try {
        decompress(source, sink, decode);
        ADD_FAILURE() << codec << ": the write error was lost";
      } catch (const Error& e) {
        EXPECT_EQ(e.path(), "full-disk.out") << codec;
        EXPECT_NE(e.detail().find("No space left"), std::string::npos) << codec << ": " << e.what();
      }
    }
  }
}

TEST(Graph, ThreadCountOutOfRangeIsAUsageError) {
  EXPECT_THROW(resolve_threads(-1), Error);
  EXPECT_THROW(resolve_threads(100000), Error);
  EXPECT_GE(resolve_threads(0), 1);
  EXPECT_EQ(resolve_threads(3), 3);
}

// A user's splitter or unit decoder that breaks the engine's rules gets an error naming its codec,
// never a read past a buffer, a graph spinning in place, or a unit beyond the bound.
TEST(UserCodec, CutsThatBreakTheRulesAreErrorsNamingTheCodec) {
  IdentityBehaviour behaviour;
  behaviour.framed = true;
  const std::string name = register_identity(behaviour);
  CompressOptions options;
  options.codec = name;
  options.codec_options.chunk_bytes = 64 * 1024;
  const Bytes input = text_bytes(1 << 20, 31);
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  DecompressOptions decode;
  decode.codec = name;
  ASSERT_EQ(to_bytes(decompress_buffer(view(packed), decode)), input);
  const std::vector<std::pair<std::string, std::function<Cut(Cut)>>> tampers = {
      {"cut a unit of",
       [](Cut cut) {
         cut.bytes += 100 << 20;
         return cut;
       }},
      {"cut a piece of 0 bytes",
       [](Cut cut) {
         cut.bytes = 0;
         return cut;
       }},
      {"cut a piece of 0 bytes",
       [](Cut) {
         return Cut{Cut::Kind::kMarker, 0, 0, 0, 0};
       }},
      {"over the 16777216 a unit may hold",
       [](Cut cut) {
         cut.max_output_bytes = 1ull << 40;
         return cut;
       }},
      {"answered a cut of no known kind (9)",
       [](Cut cut) {
         cut.kind = static_cast<Cut::Kind>(9);
         return cut;
       }},
  };
  for (const auto& [message, tamper] : tampers) {
    for (int threads : {1, 2}) {
      SCOPED_TRACE(message);
      behaviour.tamper_cut = tamper;
      decode.threads = threads;
      try {
        decompress_buffer(view(packed), decode);
        ADD_FAILURE() << "a broken cut was acted on";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kInternal) << e.what();
        EXPECT_NE(std::string(e.what()).find("the " + name + " splitter"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      }
    }
  }
  behaviour.tamper_cut = {};
  behaviour.decode_extra_bytes = 1;
  try {
    decompress_buffer(view(packed), decode);
    ADD_FAILURE() << "a unit larger than promised was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInternal) << e.what();
    EXPECT_NE(std::string(e.what()).find("unit decoder made 65537 bytes of a unit its splitter bounded at 65536"),
              std::string::npos) << e.what();
  }
}

// compress_part drives a codec's compressor through the same checked entry point as the graph: a
// hook that appends to the buffer it is given, or writes nothing, or throws what is not an
// Error, neither changes the part's bytes nor escapes raw (the part held the chunks before it;
// a thrown int ended the caller, who catches sluice::Error).
TEST(UserCodec, CompressPartChecksTheCompressorAsTheGraphDoes) {
  IdentityBehaviour behaviour;
  behaviour.fail_marker = "BOOBY";
  const std::string name = register_identity(behaviour);
  CompressOptions options;
  options.codec = name;
  const Bytes input = text_bytes(5 * 4096 + 17, 35);  // chunks of 4096 bytes
  const Bytes whole = to_bytes(compress_buffer(view(input), options));
  behaviour.append_to_out = true;
  EXPECT_EQ(to_bytes(compress_part({}, view(input), true, options).bytes), whole);
  behaviour.append_to_out = false;
  const auto error_of = [&](ByteView part) {
    try {
      compress_part({}, part, true, options);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInternal) << e.what();
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const Bytes trapped = to_bytes("BOOBY and more");
  EXPECT_NE(error_of(view(trapped)).find("codec '" + name + "': booby-trapped chunk"), std::string::npos);
  behaviour.write_nothing = true;
  EXPECT_NE(error_of(view(input)).find("the " + name + " compressor wrote nothing for a chunk of 4096 bytes"),
            std::string::npos);
  behaviour.write_nothing = false;
  behaviour.throw_int = true;
  EXPECT_NE(error_of(view(input)).find("codec '" + name + "' threw something not an exception"), std::string::npos);
  behaviour.throw_int = false;
  // Output past 4 times the chunk and 1 MiB: the engine's memory bound counts chunks in flight.
  behaviour.repeat_output = 300;
  EXPECT_NE(error_of(view(input)).find("the " + name + " compressor wrote 1228800 bytes for a chunk of 4096 bytes"),
            std::string::npos);
  behaviour.repeat_output = 200;  // 800 KiB: bloated, but within the bound
  EXPECT_EQ(error_of(view(input)), "no error");
  behaviour.repeat_output = 1;
}

// A stream decoder that reports more bytes made than the space it was lent is an error, never a
// write past the buffer (the space left was computed as a wrapped-around size: a segfault).
TEST(UserCodec, ADecoderReportingMoreThanItWasLentIsAnError) {
  IdentityBehaviour behaviour;
  const std::string name = register_identity(behaviour);
  CompressOptions options;
  options.codec = name;
  const Bytes input = text_bytes(3 << 20, 32);
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  DecompressOptions decode;
  decode.codec = name;
  decode.threads = 2;  // the serial decoder writes into the writing thread's buffers
  ASSERT_EQ(to_bytes(decompress_buffer(view(packed), decode)), input);
  behaviour.produced_extra_bytes = 1;
  try {
    decompress_buffer(view(packed), decode);
    ADD_FAILURE() << "a count past the space was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInternal) << e.what();
    EXPECT_NE(std::string(e.what()).find("a decoder reported"), std::string::npos) << e.what();
  }
}

// A stream decoder's own exceptions are Errors naming the codec, as a compressor's are (a
// runtime_error reached the caller as its bare message, an int as "unknown exception"), while
// what the engine throws through it (a failing sink) still ends the run as itself.
TEST(UserCodec, AStreamDecodersExceptionsAreErrorsNamingTheCodec) {
  IdentityBehaviour behaviour;
  const std::string name = register_identity(behaviour);
  CompressOptions options;
  options.codec = name;
  const Bytes input = text_bytes(300'000, 34);
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  for (const int threads : {1, 2}) {
    DecompressOptions decode;
    decode.codec = name;
    decode.threads = threads;
    for (const int kind : {1, 2}) {
      SCOPED_TRACE(fmt::format("{} threads, throws {}", threads, kind));
      behaviour.stream_decoder_throws = kind;
      try {
        decompress_buffer(view(packed), decode);
        ADD_FAILURE() << "the decoder's exception was lost";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kInternal) << e.what();
        EXPECT_NE(std::string(e.what()).find("codec '" + name + "'"), std::string::npos) << e.what();
      }
    }
    behaviour.stream_decoder_throws = 0;
    // A streaming Decompressor decoding on the calling thread: its sink's failure crosses the
    // decoder as the engine's own signal, which must reach the engine as it was thrown (taken for
    // the codec's, it was "threw something not an exception").
    testing::FailingSink failing(1000, "failing");
    decode.threads = 1;
    Decompressor decompressor(failing, decode);
    try {
      decompressor.write(view(packed));
      decompressor.finish();
      ADD_FAILURE() << "the sink's failure was lost";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kIo) << e.what();
    }
  }
}

// A codec that sets its own chunk size to 0 (CodecBase's options_ are its to set) ended the
// process by a division by zero in the reader; one asking SIZE_MAX bytes of history before each
// chunk was handed the whole stream so far for each (memory with the stream, time its square).
TEST(UserCodec, AChunkSizeOfZeroAndAnUnboundedHistoryAreRefused) {
  IdentityBehaviour behaviour;
  const std::string name = register_identity(behaviour);
  for (const std::size_t chunk : {std::size_t{0}, std::size_t{1} << 40}) {
    behaviour.chunk_bytes = chunk;
    CompressOptions options;
    options.codec = name;
    for (const int threads : {1, 2}) {
      options.threads = threads;
      try {
        compress_buffer(as_bytes("some bytes to compress"), options);
        ADD_FAILURE() << "a chunk size of " << chunk << " was taken";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("codec '" + name + "' made with a chunk size of"), std::string::npos)
            << e.what();
      }
    }
  }
  CodecInfo info;
  info.name = "all-history";
  info.default_chunk_bytes = 4096;
  info.history_bytes = SIZE_MAX;
  try {
    CodecRegistry::global().add(info, [](const CodecOptions&) -> std::unique_ptr<Codec> { return nullptr; });
    ADD_FAILURE() << "a history of SIZE_MAX bytes was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("its history must be at most 1 GiB"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(CodecRegistry::global().find("all-history"));
}

// What a codec registers goes into flags, lookups by suffix and messages: names that differ from
// one another only in case, suffixes without their dot ("z" took "a.tgz"), names with control
// characters and knobs defaulting outside their values were all taken.
TEST(UserCodec, TheRegistryRefusesNamesSuffixesAndKnobsItCannotServe) {
  const auto refusal = [](const std::function<void(CodecInfo&)>& change) {
    CodecInfo info;
    info.name = "refused-codec";
    info.default_chunk_bytes = 4096;
    change(info);
    try {
      CodecRegistry::global().add(info, [](const CodecOptions&) -> std::unique_ptr<Codec> { return nullptr; });
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage) << e.what();
      return std::string(e.what());
    }
    return std::string("registered");
  };
  EXPECT_EQ(refusal([](CodecInfo& i) { i.name = "GZIP"; }), "a codec named 'gzip' is already registered");
  EXPECT_NE(refusal([](CodecInfo& i) { i.name = "bad\x1b[2Jname"; }).find("bad\\033[2Jname"), std::string::npos);
  EXPECT_NE(refusal([](CodecInfo& i) { i.name = "two words"; }).find("a name is up to 64"), std::string::npos);
  EXPECT_NE(refusal([](CodecInfo& i) { i.extension = "z"; }).find("its suffix z is not a dot and a name"),
            std::string::npos);
  EXPECT_NE(refusal([](CodecInfo& i) {
              i.knobs.push_back({"mode", "a setting", {"fast", "small"}, "medium", {}});
            }).find("its setting 'mode' defaults to 'medium'"),
            std::string::npos);
  EXPECT_FALSE(CodecRegistry::global().find("refused-codec"));
  EXPECT_EQ(refusal([](CodecInfo& i) {
              i.extension = ".rfz";
              i.knobs.push_back({"mode", "a setting", {"fast", "small"}, "small", {}});
            }),
            "registered");
}

// A codec's magic test runs without the registry's lock: one that registers a codec the first
// time it is asked (a lazy plugin) waited for the lock its own detect() held, for ever.
TEST(UserCodec, AMagicTestMayUseTheRegistry) {
  CodecInfo info;
  info.name = "lazy-registrar";
  info.default_chunk_bytes = 4096;
  info.matches_magic = [](ByteView) {
    static std::once_flag once;
    std::call_once(once, [] {
      CodecInfo late;
      late.name = "registered-late";
      late.default_chunk_bytes = 4096;
      CodecRegistry::global().add(late, [](const CodecOptions&) -> std::unique_ptr<Codec> { return nullptr; });
    });
    return false;
  };
  CodecRegistry::global().add(info, [](const CodecOptions&) -> std::unique_ptr<Codec> { return nullptr; });
  auto detected = std::async(std::launch::async, [] { return CodecRegistry::global().detect(as_bytes("LAZY bytes")); });
  ASSERT_EQ(detected.wait_for(std::chrono::seconds(20)), std::future_status::ready) << "detect() hung";
  EXPECT_FALSE(detected.get());
  EXPECT_TRUE(CodecRegistry::global().find("registered-late"));
}

// A codec's factory or magic test that throws something other than an Error fails its own item of
// a batch, named (it escaped decompress_files raw, and the batch's other items were lost).
TEST(UserCodec, AFactoryOrMagicTestThrowingFailsItsItemOnly) {
  for (const std::string magic : {"FKTY", "BOOM"}) {
    SCOPED_TRACE(magic);
    CodecInfo info;
    info.name = "throwing-" + magic;
    info.default_chunk_bytes = 4096;
    info.matches_magic = [magic](ByteView prefix) {
      const bool ours = prefix.size() >= 4 && std::memcmp(prefix.data(), magic.data(), 4) == 0;
      if (ours && magic == "BOOM") throw std::out_of_range("a magic test's bug");
      return ours;
    };
    info.magic_bytes = 4;
    CodecRegistry::global().add(
        info, [](const CodecOptions&) -> std::unique_ptr<Codec> { throw std::runtime_error("a factory's bug"); });
    testing::ScratchDir dir;
    const auto path = [&](const std::string& name) { return (dir / name).string(); };
    const Bytes data = text_bytes(10000, 33);
    testing::write_file(dir / "a.gz", to_bytes(compress_buffer(view(data), CompressOptions{})));
    testing::write_file(dir / "b.x", to_bytes(magic + " and then some bytes"));
    testing::write_file(dir / "c.gz", to_bytes(compress_buffer(view(data), CompressOptions{})));
    DecompressOptions decode;
    decode.threads = 2;
    const auto report =
        decompress_files({{path("a.gz"), path("a")}, {path("b.x"), path("b")}, {path("c.gz"), path("c")}}, decode);
    ASSERT_EQ(report.items.size(), 3u);
    EXPECT_TRUE(report.items[0].ok());
    EXPECT_TRUE(report.items[2].ok());
    ASSERT_FALSE(report.items[1].ok());
    EXPECT_NE(std::string(report.items[1].error->what()).find("codec 'throwing-" + magic + "'"), std::string::npos)
        << report.items[1].error->what();
    EXPECT_EQ(testing::read_file(dir / "c"), data);
    EXPECT_THROW(decompress_buffer(as_bytes(magic + " more")), Error);
  }
}

// Detection does not depend on how the bytes arrive: a codec that matches any prefix, registered
// after gzip, does not take a gzip stream whose first byte came alone (gzip needs two).
TEST(UserCodec, ACodecMatchingAnythingDoesNotTakeAStreamArrivingAByteAtATime) {
  CodecInfo info;
  info.name = "catch-all";
  info.default_chunk_bytes = 4096;
  info.matches_magic = [](ByteView) { return true; };
  IdentityBehaviour behaviour;
  CodecRegistry::global().add(info, [info, &behaviour](const CodecOptions& options) {
    return std::make_unique<IdentityCodec>(info, options, behaviour);
  });
  const Bytes data = text_bytes(5000, 34);
  const Bytes packed = to_bytes(compress_buffer(view(data), CompressOptions{}));
  for (int threads : {1, 2}) {
    MemorySink out;
    DecompressOptions decode;
    decode.threads = threads;
    Decompressor decoder(out, decode);
    for (const std::uint8_t byte : packed) decoder.write(ByteView(&byte, 1));
    decoder.finish();
    EXPECT_EQ(to_bytes(out.buffer()), data) << threads;
  }
}

}  // namespace
}  // namespace sluice
