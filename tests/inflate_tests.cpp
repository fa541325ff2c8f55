// Parallel inflate of one gzip member whose pieces share history (pigz's, gzip's, any deflate
// stream): pieces cut at "00 00 ff ff" (sync flushes) or, in a stream without them, where a
// dynamic block's header is found, at any bit; some guessed ahead behind made-up windows and
// filled in, the rest inflated in order (codecs/gzip_codec.cpp, GzipSplitter). Every stream here
// is built to catch a wrong guess: false sync flushes in stored data, tiny blocks, fixed Huffman,
// data made of the pattern, level 1 to 9, random data, huge ratios, damage. The output must be
// exactly the input on every thread count and piece size, or the same error as in order.
#include <gtest/gtest.h>
#include <zlib.h>

#include <fmt/format.h>

#include <string>
#include <vector>

#include "sluice/codec.h"
#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

using testing::Bytes;
using testing::random_bytes;
using testing::text_bytes;
using testing::to_bytes;
using testing::view;

// A gzip member written by zlib with `flush` (Z_SYNC_FLUSH, Z_FULL_FLUSH) every `flush_every`
// input bytes, as pigz ends its blocks (kNoFlush: none, as gzip writes). `mem_level` 1 makes
// blocks of at most 128 symbols.
constexpr std::size_t kNoFlush = ~std::size_t{0};
Bytes zlib_gzip(const Bytes& input, int level, int strategy, std::size_t flush_every, int flush = Z_SYNC_FLUSH,
                int mem_level = 8) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, 31, mem_level, strategy), Z_OK);
  Bytes out(deflateBound(&z, input.size()) + (input.size() / std::min(flush_every, input.size() + 1) + 1) * 16 +
            1024);  // flushes: 5-6 bytes each
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  for (std::size_t at = 0; at < input.size() || at == 0;) {
    const std::size_t take = std::min(flush_every, input.size() - at);
    z.next_in = const_cast<Bytef*>(input.data() + at);
    z.avail_in = static_cast<uInt>(take);
    at += take;
    const bool last = at >= input.size();
    EXPECT_NE(deflate(&z, last ? Z_FINISH : flush), Z_STREAM_ERROR);
    EXPECT_EQ(z.avail_in, 0u) << "output room";
    if (last) break;
  }
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::size_t sync_flush_patterns(const Bytes& packed) {
  std::size_t found = 0;
  for (std::size_t at = 0; at + 4 <= packed.size(); ++at) {
    found += packed[at] == 0 && packed[at + 1] == 0 && packed[at + 2] == 0xFF && packed[at + 3] == 0xFF;
  }
  return found;
}

struct Decoded {
  Bytes output;
  DecompressStats stats;
};

Decoded decode(const Bytes& packed, int threads, std::size_t unit_input_bytes, const std::string& backend = {}) {
  DecompressOptions options;
  if (!backend.empty()) options.backends["gzip"] = backend;
  options.threads = threads;
  options.unit_input_bytes = unit_input_bytes;
  options.small_inputs_in_caller = false;
  MemorySource source(view(packed));
  MemorySink sink;
  Decoded decoded;
  decoded.stats = decompress(source, sink, options);
  decoded.output = to_bytes(sink.buffer());
  return decoded;
}

// Exactly `expected` on 1, 2, 3 and 8 threads, with the default pieces and small ones. With small
// pieces and more than one thread, `pieces` says whether the member must have been decoded in
// pieces (the test then fails if the splitter stops cutting them).
void expect_exact(const Bytes& packed, const Bytes& expected, const std::string& what, bool pieces = true) {
  for (const int threads : {1, 2, 3, 8}) {
    for (const std::size_t unit : {std::size_t{0}, std::size_t{1024}, std::size_t{16 * 1024}}) {
      const Decoded decoded = decode(packed, threads, unit);
      EXPECT_TRUE(decoded.output == expected) << what << " on " << threads << " threads, pieces of " << unit;
      if (pieces && threads > 1 && unit == 1024) {
        EXPECT_GT(decoded.stats.units, 2u) << what << " on " << threads << " threads: not decoded in pieces";
      }
      if (threads == 1) {
        EXPECT_EQ(decoded.stats.units, 0u) << what << ": one thread guesses nothing";
      }
    }
  }
}

// Text and binary-like data, with a few stretches of random bytes.
Bytes mixed_input(std::size_t size, std::uint64_t seed) {
  Bytes input = text_bytes(size, seed);
  for (std::size_t at = size / 7; at + 5000 < size; at += size / 5) {
    const Bytes noise = random_bytes(5000, seed + at);
    std::copy(noise.begin(), noise.end(), input.begin() + static_cast<std::ptrdiff_t>(at));
  }
  return input;
}

class SharedHistory : public testing::CommandTest {};

// pigz at levels 0 (stored blocks, no sync flush), 1, 6, 9 and 11 (zopfli), blocks of 32 KiB, a
// sync flush after each.
TEST_F(SharedHistory, PigzStreamsOfEveryLevelDecodeExactlyInPieces) {
  const Bytes input = mixed_input(1536 * 1024 + 77, 3);
  put("data", input);
  for (const std::string level : {"0", "1", "6", "9", "11"}) {
    const bool zopfli = level == "11";  // slow: less data
    const std::string data = zopfli ? "head -c 300000 data" : "cat data";
    const auto made = sh(fmt::format("{} | pigz -{} -b 32 -p 2 -c > p.gz", data, level));
    ASSERT_EQ(made.status, 0) << testing::describe(made);
    const Bytes packed = get("p.gz");
    const bool stored = level == "0";  // stored blocks, no sync flush: decoded serially
    if (!stored) {
      ASSERT_GT(sync_flush_patterns(packed), 4u) << "pigz -" << level;
    }
    const Bytes expected = zopfli ? Bytes(input.begin(), input.begin() + 300000) : input;
    expect_exact(packed, expected, "pigz -" + level, !stored);
  }
}

// gzip's own output and that of the other tools that write no sync flush (libdeflate, ISA-L,
// zlib): pieces are cut where a dynamic block's header is found, mostly inside a byte. (Blocks
// of these tools hold 30-110 KB of deflate data here; pieces end at the next one.)
TEST_F(SharedHistory, StreamsWithoutSyncFlushesDecodeExactlyInPiecesCutAtBlocks) {
  const Bytes input = mixed_input(3 * 1024 * 1024 + 33, 21);
  put("data", input);
  std::vector<std::pair<std::string, Bytes>> streams;
  for (const std::string tool :
       {"gzip -1", "gzip -6", "gzip -9", "libdeflate-gzip -6", "libdeflate-gzip -12", "igzip -1", "igzip -3"}) {
    const auto made = sh(fmt::format("{} -c < data > p.gz", tool));
    ASSERT_EQ(made.status, 0) << testing::describe(made);
    streams.emplace_back(tool, get("p.gz"));
  }
  streams.emplace_back("zlib, no flush", zlib_gzip(input, 6, Z_DEFAULT_STRATEGY, kNoFlush));
  streams.emplace_back("zlib, blocks of 128 symbols", zlib_gzip(input, 6, Z_DEFAULT_STRATEGY, kNoFlush, 0, 1));
  for (const auto& [tool, packed] : streams) {
    EXPECT_LT(sync_flush_patterns(packed), 3u) << tool;
    for (const int threads : {1, 2, 3, 8}) {
      for (const std::size_t unit : {std::size_t{0}, std::size_t{16 * 1024}, std::size_t{64 * 1024}}) {
        const Decoded decoded = decode(packed, threads, unit);
        EXPECT_TRUE(decoded.output == input) << tool << " on " << threads << " threads, pieces of " << unit;
        if (threads > 1 && unit == 64 * 1024) {
          EXPECT_GT(decoded.stats.units, 2u) << tool << " on " << threads << " threads: not decoded in pieces";
        }
      }
    }
    // The serial decoder that goes on after the last piece, inside a byte: zlib's too.
    EXPECT_TRUE(decode(packed, 2, 16 * 1024, "zlib").output == input) << tool << ", zlib after the pieces";
  }
}

// A member without sync flushes that ends before the search for one would (1 MiB past the first
// piece): the input's end settles it, and it is cut at blocks, as far as they are found.
TEST(SharedHistoryStreams, AShortMemberWithoutSyncFlushesIsInPiecesToo) {
  const Bytes input = mixed_input(2 * 1024 * 1024, 91);
  const Bytes packed = zlib_gzip(input, 6, Z_DEFAULT_STRATEGY, kNoFlush);
  ASSERT_LT(packed.size(), std::size_t{1024 * 1024});  // less than the default piece and search
  ASSERT_GT(packed.size(), std::size_t{300 * 1024});   // more than one piece
  for (const int threads : {2, 3}) {
    const Decoded decoded = decode(packed, threads, 0);
    EXPECT_TRUE(decoded.output == input) << threads << " threads";
    EXPECT_GE(decoded.stats.units, 1u) << threads << " threads";  // serial from the start without it
  }
}

// Incompressible data in the middle, which gzip stores: pieces are cut at the ends of stored
// blocks there, and at dynamic blocks again after it, not serially from the stored data on.
TEST_F(SharedHistory, StoredStretchesAreCutAtTheirBlocksEnds) {
  Bytes input = mixed_input(300 * 1024, 31);
  const Bytes noise = random_bytes(3 * 1024 * 1024, 32), tail = mixed_input(1024 * 1024, 33);
  input.insert(input.end(), noise.begin(), noise.end());
  input.insert(input.end(), tail.begin(), tail.end());
  put("data", input);
  for (const std::string tool : {"gzip -6", "libdeflate-gzip -6"}) {
    const auto made = sh(fmt::format("{} -c < data > p.gz", tool));
    ASSERT_EQ(made.status, 0) << testing::describe(made);
    const Bytes packed = get("p.gz");
    for (const int threads : {2, 3}) {
      const Decoded decoded = decode(packed, threads, 64 * 1024);
      EXPECT_TRUE(decoded.output == input) << tool << " on " << threads << " threads";
      EXPECT_GT(decoded.stats.units, 15u) << tool << ": pieces through the stored data";
      ASSERT_TRUE(decoded.stats.serial_from.has_value()) << tool;  // the last piece
      EXPECT_GT(*decoded.stats.serial_from, packed.size() * 9 / 10) << tool << ": serial from the stored data on";
    }
  }
}

// Stored blocks whose data is full of "00 00 ff ff": false piece ends inside stored data, and
// each false end is also where a true one might be expected.
TEST(SharedHistoryStreams, FalseSyncFlushesInStoredDataDecodeExactly) {
  Bytes input;
  for (int i = 0; i < 400; ++i) {
    const Bytes noise = random_bytes(997, static_cast<std::uint64_t>(i) + 1);
    input.insert(input.end(), noise.begin(), noise.end());
    input.insert(input.end(), {0x00, 0x00, 0xFF, 0xFF});
  }
  for (const int level : {0, 1, 6, 9}) {
    const Bytes packed = zlib_gzip(input, level, Z_DEFAULT_STRATEGY, 5000);
    ASSERT_GT(sync_flush_patterns(packed), 2 * input.size() / 5000) << "more false ends than true ones";
    expect_exact(packed, input, fmt::format("stored patterns, level {}", level), /*pieces=*/false);
  }
}

// Blocks of every kind and size: fixed Huffman, Huffman only, run lengths, tiny blocks (a flush
// every few bytes), full flushes, data made of the pattern itself, random data.
TEST(SharedHistoryStreams, EveryBlockKindAndSizeDecodesExactly) {
  const Bytes text = mixed_input(600 * 1024, 9);
  Bytes pattern;
  for (int i = 0; i < 100000; ++i)
    pattern.insert(pattern.end(), {0x00, 0x00, 0xFF, 0xFF, static_cast<std::uint8_t>(i)});
  const Bytes noise = random_bytes(700 * 1024, 4);
  struct Case {
    std::string name;
    const Bytes& input;
    int level;
    int strategy;
    std::size_t flush_every;
    int flush = Z_SYNC_FLUSH;
    bool pieces = true;  // more than two with pieces of 1 KiB
  };
  const std::vector<Case> cases = {
      {"fixed Huffman", text, 6, Z_FIXED, 3000},
      {"fixed Huffman, tiny blocks", text, 6, Z_FIXED, 40},
      {"Huffman only", text, 6, Z_HUFFMAN_ONLY, 4000},
      {"run lengths", text, 6, Z_RLE, 4000},
      {"level 1, a flush every 10 bytes", text, 1, Z_DEFAULT_STRATEGY, 10},
      {"level 9, full flushes", text, 9, Z_DEFAULT_STRATEGY, 64 * 1024, Z_FULL_FLUSH},
      {"level 9, large blocks", text, 9, Z_DEFAULT_STRATEGY, 200 * 1024, Z_SYNC_FLUSH, false},
      {"the pattern as data", pattern, 6, Z_DEFAULT_STRATEGY, 2000},
      {"the pattern as data, fixed Huffman", pattern, 1, Z_FIXED, 2000},
      {"random data", noise, 6, Z_DEFAULT_STRATEGY, 8000},
  };
  for (const Case& c : cases) {
    const Bytes packed = zlib_gzip(c.input, c.level, c.strategy, c.flush_every, c.flush);
    expect_exact(packed, c.input, c.name, c.pieces);
  }
}

// Random mixes (text, noise, zero runs, the pattern itself) at random levels, strategies, block
// sizes, flush kinds and intervals (or none), in pieces of 64 bytes to 4 KiB: a seed that fails
// names its stream.
TEST(SharedHistoryStreams, RandomStreamsDecodeExactly) {
  std::uint64_t state = 0x9e3779b97f4a7c15u;
  auto next = [&state](std::uint64_t bound) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state % bound;
  };
  const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
  for (int seed = 0; seed < 40; ++seed) {
    Bytes input;
    while (input.size() < 150 * 1024) {
      const std::size_t length = 1 + next(20000);
      Bytes part;
      switch (next(4)) {
        case 0:
          part = text_bytes(length, next(1000));
          break;
        case 1:
          part = random_bytes(length, next(1000));
          break;
        case 2:
          part.assign(length, 0);
          break;
        default:
          for (std::size_t i = 0; i < length; ++i) part.push_back(i % 5 < 2 ? 0 : i % 5 < 4 ? 0xFF : 0);
      }
      input.insert(input.end(), part.begin(), part.end());
    }
    const int level = static_cast<int>(next(10));
    const int strategy = strategies[next(5)];
    const std::size_t flush_every = next(3) == 0 ? kNoFlush : 1 + next(next(2) ? 200 : 20000);
    const int flush = next(4) == 0 ? Z_FULL_FLUSH : Z_SYNC_FLUSH;
    const int mem_level = 1 + static_cast<int>(next(9));  // 1: blocks of 128 symbols
    const Bytes packed = zlib_gzip(input, level, strategy, flush_every, flush, mem_level);
    for (const int threads : {2, 3}) {
      for (const std::size_t unit : {std::size_t{64}, std::size_t{512}, std::size_t{4096}}) {
        EXPECT_TRUE(decode(packed, threads, unit).output == input)
            << "seed " << seed << ": level " << level << ", strategy " << strategy << ", memory level " << mem_level
            << ", flush " << flush << " every " << flush_every << "; " << threads << " threads, pieces of " << unit;
      }
    }
  }
}

// The parts one by one, as the graph runs them, through the gzip codec's own splitter, unit
// decoder and verifier: with 8 threads most pieces are guessed (the unit decoder leaves output
// for the verifier to fill in) and the verifier turns each into exactly the input's bytes; the
// serial decoder goes on from the last piece, inside a byte where it ended inside one.
void expect_guessed_and_filled_in(const Bytes& packed, const Bytes& input, std::size_t unit_input_bytes) {
  const auto codec = CodecRegistry::global().create("gzip", {});
  const auto splitter = codec->make_splitter();
  splitter->set_hints({8, unit_input_bytes});
  const auto decoder = codec->make_unit_decoder();
  const auto verifier = codec->make_unit_verifier();
  Bytes output;
  std::size_t guessed = 0, in_order = 0, at = 0;
  for (;;) {
    const Cut cut = splitter->next(view(packed).subspan(at), at);
    if (cut.kind == Cut::Kind::kMarker) verifier->on_marker(cut, at);
    if (cut.kind == Cut::Kind::kUnit) {
      Buffer decoded;
      decoder->decode(view(packed).subspan(at, cut.bytes), cut, decoded);
      (decoded.empty() ? in_order : guessed) += 1;
      verifier->complete(cut, view(packed).subspan(at, cut.bytes), decoded);
      verifier->on_unit(cut, decoded.view());
      output.insert(output.end(), decoded.data(), decoded.data() + decoded.size());
    }
    if (cut.kind != Cut::Kind::kUnit && cut.kind != Cut::Kind::kMarker) break;
    at += cut.bytes;
  }
  EXPECT_GT(guessed, 2 * in_order) << "most pieces guessed on 8 threads";
  EXPECT_GT(in_order, 0u) << "the first piece is inflated in order";
  // The rest (the last piece and the trailer) is the verifier's serial decoder's.
  const auto rest = verifier->serial_decoder();
  ASSERT_NE(rest, nullptr);
  rest->decode(view(packed).subspan(at),
               [&](ByteView bytes) { output.insert(output.end(), bytes.begin(), bytes.end()); });
  rest->finish();
  EXPECT_TRUE(output == input);
}

TEST(SharedHistoryStreams, GuessedPiecesAreFilledInToTheInput) {
  const Bytes input = mixed_input(700 * 1024, 12);
  for (const bool flushes : {true, false}) {
    SCOPED_TRACE(flushes ? "sync flushes" : "no flush");
    expect_guessed_and_filled_in(flushes ? zlib_gzip(input, 6, Z_DEFAULT_STRATEGY, 4096)
                                         : zlib_gzip(input, 6, Z_DEFAULT_STRATEGY, kNoFlush, 0, 4),
                                 input, flushes ? 1024 : 4 * 1024);
  }
}

// A member whose deflate data refers to a preset dictionary (before the member's start): invalid
// in gzip. In a guessed piece the reference only shows when it is filled in, with less than 32
// KiB before it; it must be the error it is in order, not bytes of the made-up window.
TEST(SharedHistoryStreams, AReferenceBeforeTheStartIsTheErrorItIsInOrder) {
  const Bytes dictionary = random_bytes(32 * 1024, 8);
  Bytes input = random_bytes(500, 9);  // the first two pieces (in order): 200 and 300 bytes
  for (int i = 0; i < 20; ++i) {       // each later piece copies from the dictionary's last 12 KiB:
    const auto from = dictionary.begin() + 20000 + i * 300;  // within reach of a 32 KiB window
    input.insert(input.end(), from, from + 300);
  }
  const Bytes own = random_bytes(1000, 10);  // the last piece, decoded serially
  input.insert(input.end(), own.begin(), own.end());
  // Random bytes stored (level 0: no match can reach into the dictionary by chance), the copies
  // at level 6 (matches into it), a sync flush after each part.
  z_stream z{};
  ASSERT_EQ(deflateInit2(&z, 0, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  ASSERT_EQ(deflateSetDictionary(&z, dictionary.data(), static_cast<uInt>(dictionary.size())), Z_OK);
  Bytes deflated(deflateBound(&z, input.size()) + 4096);
  z.next_out = deflated.data();
  z.avail_out = static_cast<uInt>(deflated.size());
  for (std::size_t at = 0; at < input.size();) {
    const bool last = at + 1000 == input.size();
    const std::size_t take = at == 0 ? 200 : last ? 1000 : 300;
    if (at == 500 || last) {
      ASSERT_EQ(deflateParams(&z, last ? 0 : 6, Z_DEFAULT_STRATEGY), Z_OK);
    }
    z.next_in = const_cast<Bytef*>(input.data() + at);
    z.avail_in = static_cast<uInt>(take);
    at += take;
    ASSERT_NE(deflate(&z, at >= input.size() ? Z_FINISH : Z_SYNC_FLUSH), Z_STREAM_ERROR);
  }
  deflated.resize(z.total_out);
  deflateEnd(&z);
  Bytes packed = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
  packed.insert(packed.end(), deflated.begin(), deflated.end());
  const uLong crc = crc32(0, input.data(), static_cast<uInt>(input.size()));
  for (const uLong field : {crc, static_cast<uLong>(input.size())}) {
    for (int shift = 0; shift < 32; shift += 8) packed.push_back(static_cast<std::uint8_t>(field >> shift));
  }
  auto error_of = [&](int threads) -> std::string {
    try {
      (void)decode(packed, threads, 1);  // a piece per sync flush: the last piece is the 1000 bytes
      return "no error";
    } catch (const Error& e) {
      return e.detail();
    }
  };
  const std::string in_order = error_of(1);
  EXPECT_NE(in_order.find("distance too far back"), std::string::npos) << in_order;
  EXPECT_EQ(error_of(2), in_order);
  EXPECT_EQ(error_of(64), in_order);  // 64 threads: the third piece to the 27th are guessed
}

// Zeros: a piece of 16 KiB inflates to more than a unit may hold, and goes in order, then
// serially; pieces of 1 KiB are guessed.
TEST(SharedHistoryStreams, AHugeRatioStillDecodesExactly) {
  const Bytes zeros(48 * 1024 * 1024, 0);
  const Bytes packed = zlib_gzip(zeros, 9, Z_DEFAULT_STRATEGY, 1024 * 1024);
  for (const int threads : {1, 2}) {
    for (const std::size_t unit : {std::size_t{0}, std::size_t{1024}, std::size_t{16 * 1024}}) {
      EXPECT_TRUE(decode(packed, threads, unit).output == zeros) << threads << " threads, pieces of " << unit;
    }
  }
}

// The error a damaged stream gets in order (one thread) is the one it gets in pieces (kind and
// reason); a cut anywhere is a truncation. With sync flushes and without (pieces cut at blocks).
void expect_same_errors(const Bytes& packed, std::size_t unit_input_bytes) {
  // The kind and the message; not where it was found, which in order is the start of what the
  // serial decoder was given (the member's data) and in pieces the start of the piece.
  auto error_of = [unit_input_bytes](const Bytes& damaged, int threads) -> std::string {
    try {
      (void)decode(damaged, threads, unit_input_bytes);
      return "no error";
    } catch (const Error& e) {
      return fmt::format("{}: {}", static_cast<int>(e.kind()), e.detail());
    }
  };
  for (std::size_t at = 20; at < packed.size() - 8; at += packed.size() / 23) {
    for (const int flip : {0x01, 0x80}) {
      Bytes damaged = packed;
      damaged[at] = static_cast<std::uint8_t>(damaged[at] ^ flip);
      const std::string in_order = error_of(damaged, 1);
      EXPECT_NE(in_order, "no error") << "flip " << flip << " at " << at;
      EXPECT_EQ(error_of(damaged, 2), in_order) << "flip " << flip << " at " << at;
      EXPECT_EQ(error_of(damaged, 8), in_order) << "flip " << flip << " at " << at;
    }
  }
  for (const std::size_t cut : {packed.size() / 3, packed.size() / 2, packed.size() - 9, packed.size() - 1}) {
    const Bytes truncated(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_EQ(error_of(truncated, 2), error_of(truncated, 1)) << "cut at " << cut;
    EXPECT_NE(error_of(truncated, 2), "no error") << "cut at " << cut;
  }
}

TEST(SharedHistoryStreams, DamageIsTheSameErrorInPiecesAsInOrder) {
  const Bytes input = mixed_input(512 * 1024, 5);
  expect_same_errors(zlib_gzip(input, 6, Z_DEFAULT_STRATEGY, 16 * 1024), 1024);
  expect_same_errors(zlib_gzip(input, 6, Z_DEFAULT_STRATEGY, kNoFlush), 16 * 1024);
}

// Members one after another, then garbage: every member decodes, and the garbage is reported
// after all of them, in pieces as in order.
TEST(SharedHistoryStreams, ConcatenatedMembersThenGarbage) {
  const Bytes first = mixed_input(300 * 1024, 1), second = mixed_input(200 * 1024 + 3, 2);
  Bytes packed = zlib_gzip(first, 6, Z_DEFAULT_STRATEGY, 8192);
  const Bytes more = zlib_gzip(second, 1, Z_DEFAULT_STRATEGY, 8192);
  packed.insert(packed.end(), more.begin(), more.end());
  Bytes expected = first;
  expected.insert(expected.end(), second.begin(), second.end());
  expect_exact(packed, expected, "two members");
  // Without flushes, in blocks of at most 512 symbols: pieces cut at blocks, one of which may be
  // found in the next member (a piece across the end of the first, refused, then serial).
  Bytes unflushed = zlib_gzip(first, 6, Z_DEFAULT_STRATEGY, kNoFlush, 0, 3);
  const Bytes more_unflushed = zlib_gzip(second, 6, Z_DEFAULT_STRATEGY, kNoFlush, 0, 3);
  unflushed.insert(unflushed.end(), more_unflushed.begin(), more_unflushed.end());
  expect_exact(unflushed, expected, "two members without flushes");
  packed.insert(packed.end(), {'j', 'u', 'n', 'k'});
  for (const int threads : {1, 2}) {
    try {
      (void)decode(packed, threads, 1024);
      ADD_FAILURE() << "trailing garbage not reported on " << threads << " threads";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kTrailingGarbage) << e.what();
    }
  }
}

// ---- Many members, one after another ----
//
// Files of many small gzip members (logs appended to, web archives with a member per record, a
// tool run per part): a member whose end is found (the next member's header after it) is a unit
// of its own, decoded on any worker; the guess is checked to the byte, and a wrong one sends the
// stream to the serial decoder from that member on.

// A gzip member of `input` by zlib; `named`: a header with a name, a comment, an extra field and a
// header CRC.
Bytes zlib_member(const Bytes& input, int level, bool named, int strategy = Z_DEFAULT_STRATEGY) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, 31, 8, strategy), Z_OK);
  std::string name = "record.txt", comment = "one record";
  Bytes extra = {'A', 'B', 4, 0, 1, 2, 3, 4};
  gz_header header{};
  if (named) {
    header.name = reinterpret_cast<Bytef*>(name.data());
    header.comment = reinterpret_cast<Bytef*>(comment.data());
    header.extra = extra.data();
    header.extra_len = static_cast<uInt>(extra.size());
    header.hcrc = 1;
    header.os = 3;
    EXPECT_EQ(deflateSetHeader(&z, &header), Z_OK);
  }
  Bytes out(deflateBound(&z, input.size()) + 256);
  z.next_in = const_cast<Bytef*>(input.data());
  z.avail_in = static_cast<uInt>(input.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct Members {
  Bytes packed, input;
  std::vector<std::size_t> starts;  // where each member begins in `packed`
  void add(const Bytes& data, const Bytes& member) {
    starts.push_back(packed.size());
    packed.insert(packed.end(), member.begin(), member.end());
    input.insert(input.end(), data.begin(), data.end());
  }
};

// Empty members and one-byte ones, up to 200 KB; stored, fixed Huffman, levels 1 to 9; plain
// headers and ones with every optional field.
Members members_of_every_kind(std::size_t count) {
  Members members;
  constexpr std::size_t kSizes[] = {0, 1, 100, 4000, 30000, 70000, 200000};
  constexpr int kLevels[] = {0, 1, 6, 9};
  for (std::size_t i = 0; i < count; ++i) {
    const Bytes data = mixed_input(kSizes[i % std::size(kSizes)], 100 + i);
    const int strategy = i % 5 == 4 ? Z_FIXED : Z_DEFAULT_STRATEGY;
    members.add(data, zlib_member(data, kLevels[i % std::size(kLevels)], i % 3 == 0, strategy));
  }
  return members;
}

TEST(ManyMembers, EachMemberButTheLastIsAUnit) {
  const Members members = members_of_every_kind(24);
  for (const int threads : {1, 2, 8}) {
    const Decoded decoded = decode(members.packed, threads, 0);
    EXPECT_TRUE(decoded.output == members.input) << threads << " threads";
    if (threads == 1) {
      EXPECT_EQ(decoded.stats.units, 0u);
      continue;
    }
    // The last has no header after it to end it: the serial decoder takes it (after its header,
    // in case it was long enough for pieces).
    EXPECT_EQ(decoded.stats.units, members.starts.size() - 1) << threads << " threads";
    ASSERT_TRUE(decoded.stats.serial_from.has_value()) << threads << " threads";
    EXPECT_GE(*decoded.stats.serial_from, members.starts.back()) << threads << " threads";
  }
}

// A member that holds whole gzip members, stored (gzip stores what it cannot compress): the second
// inner member's header, after the first's trailer, looks like the outer member's end, and its
// size is plausible that near the start. The guess fails to the byte, and the serial decoder goes
// on from there.
TEST(ManyMembers, AMemberHeaderInsideAMemberIsNotItsEnd) {
  const Bytes inner_data = text_bytes(1000, 1);
  const Bytes inner = zlib_member(inner_data, 6, false);
  Bytes holder;
  for (int i = 0; i < 2; ++i) holder.insert(holder.end(), inner.begin(), inner.end());
  const Bytes after = text_bytes(3000, 3);
  holder.insert(holder.end(), after.begin(), after.end());
  Members members;
  const Bytes first = text_bytes(5000, 4);
  members.add(first, zlib_member(first, 6, false));
  members.add(holder, zlib_member(holder, 0, false));  // stored: the inner members' bytes as they are
  for (std::uint64_t seed = 5; seed < 9; ++seed) {
    const Bytes more = text_bytes(4000, seed);
    members.add(more, zlib_member(more, 6, true));
  }
  for (const int threads : {2, 8}) {
    const Decoded decoded = decode(members.packed, threads, 0);
    EXPECT_TRUE(decoded.output == members.input) << threads << " threads";
    EXPECT_EQ(decoded.stats.units, 1u) << threads << " threads";
    EXPECT_EQ(decoded.stats.serial_from, members.starts[1]) << threads << " threads: serial from the holder on";
  }
}

// Bytes in a member that match a header's magic, method and flags but not its XFL or OS (as the
// Silesia tar's deflate data holds once in its 20 MB) after a plausible size: not taken for an end.
TEST(ManyMembers, BytesThatOnlyResembleAHeaderAreNotTakenForOne) {
  Bytes holder = text_bytes(2000, 1);
  const Bytes resembling = {0xd0, 0x07, 0, 0, 0x1f, 0x8b, 8, 0x14, 0xbe, 0xa1, 0x5f, 0xdc, 0xfd, 0xbd};  // size 2000
  holder.insert(holder.end(), resembling.begin(), resembling.end());
  const Bytes after = text_bytes(2000, 2);
  holder.insert(holder.end(), after.begin(), after.end());
  Members members;
  members.add(holder, zlib_member(holder, 0, false));  // stored: the bytes as they are
  for (std::uint64_t seed = 3; seed < 6; ++seed) {
    const Bytes more = text_bytes(3000, seed);
    members.add(more, zlib_member(more, 6, false));
  }
  const Decoded decoded = decode(members.packed, 2, 0);
  EXPECT_TRUE(decoded.output == members.input);
  EXPECT_EQ(decoded.stats.units, members.starts.size() - 1);
}

// A member that inflates to more than a unit may hold (16 MiB of zeros, 70 KB of deflate data),
// among small ones: not a unit (its ISIZE is too large), and its one piece, which would inflate to
// all of it, is more than a piece may hold either: serial from the long member on.
TEST(ManyMembers, AMemberLongerThanAUnitGoesSerialFromThere) {
  Members members;
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    const Bytes data = seed == 4 ? Bytes(kMaxUnitOutputBytes + 1, 0) : text_bytes(3000, seed);
    members.add(data, zlib_member(data, 1, false));
  }
  const Decoded decoded = decode(members.packed, 2, 0);
  EXPECT_TRUE(decoded.output == members.input);
  EXPECT_EQ(decoded.stats.units, 3u);
  ASSERT_TRUE(decoded.stats.serial_from.has_value());
  EXPECT_GE(*decoded.stats.serial_from, members.starts[3]);  // at its start, or after its header
  EXPECT_LT(*decoded.stats.serial_from, members.starts[4]);
}

// Members longer than a piece's reach, one after another: each is cut into pieces, the last ending
// at the next member's header (its trailer checked there), and the next member is split again;
// only the last member's last piece is decoded serially. With and without sync flushes, with
// small members among them.
TEST(ManyMembers, MembersInPiecesEndInTheirLastPiece) {
  Members members;
  const Bytes a = mixed_input(600 * 1024, 71), b = mixed_input(500 * 1024 + 1, 72), c = text_bytes(3000, 73);
  members.add(a, zlib_gzip(a, 6, Z_DEFAULT_STRATEGY, kNoFlush));
  members.add(b, zlib_gzip(b, 6, Z_DEFAULT_STRATEGY, 32 * 1024));
  members.add(c, zlib_member(c, 6, true));
  members.add(c, zlib_member(c, 6, false));
  members.add(a, zlib_gzip(a, 1, Z_DEFAULT_STRATEGY, kNoFlush));
  for (const int threads : {2, 3, 8}) {
    for (const std::size_t unit : {std::size_t{1024}, std::size_t{16 * 1024}}) {
      const Decoded decoded = decode(members.packed, threads, unit);
      EXPECT_TRUE(decoded.output == members.input) << threads << " threads, pieces of " << unit;
      EXPECT_GT(decoded.stats.units, 10u) << threads << " threads, pieces of " << unit;
      EXPECT_GT(decoded.stats.serial_from.value_or(0), members.starts.back())
          << threads << " threads, pieces of " << unit;
    }
  }
}

// A member in pieces that holds gzip members stored: the second inner member's header follows the
// first's trailer, whose size (1 MiB of zeros, in fixed-Huffman blocks, which the block finder does
// not take for cuts) is plausible for the outer member's deflate data before it. Taken for the
// outer member's end, its last piece does not end there (the member goes on): the serial decoder
// goes on from that piece.
TEST(ManyMembers, AMemberHeaderInsideAMemberInPiecesIsNotItsEnd) {
  const Bytes zeros(1024 * 1024, 0);
  const Bytes inner = zlib_member(zeros, 9, false, Z_FIXED);
  Bytes holder = text_bytes(200 * 1024, 82);  // past where the first member's end is looked for
  for (int i = 0; i < 2; ++i) holder.insert(holder.end(), inner.begin(), inner.end());
  const Bytes after = text_bytes(100 * 1024, 83);
  holder.insert(holder.end(), after.begin(), after.end());
  Members members;
  members.add(holder, zlib_gzip(holder, 0, Z_DEFAULT_STRATEGY, kNoFlush));  // stored
  members.add(after, zlib_gzip(after, 6, Z_DEFAULT_STRATEGY, kNoFlush));
  for (const int threads : {2, 8}) {
    const Decoded decoded = decode(members.packed, threads, 16 * 1024);
    EXPECT_TRUE(decoded.output == members.input) << threads << " threads";
    EXPECT_GE(decoded.stats.units, 1u) << threads << " threads";  // a piece before the false end
    EXPECT_LT(decoded.stats.serial_from.value_or(members.packed.size()), 200u * 1024) << threads << " threads";
  }
}

// The kind, message and offset of the error decoding `packed` gives, or "no error".
std::string error_of(const Bytes& packed, int threads, std::size_t unit_input_bytes) {
  try {
    (void)decode(packed, threads, unit_input_bytes);
    return "no error";
  } catch (const Error& e) {
    return fmt::format("{} {} at {}", static_cast<int>(e.kind()), e.detail(), e.offset().value_or(0));
  }
}

// Zeros after the members are padding and anything else trailing garbage, as in order; damage
// and truncation anywhere are the error they are in order.
TEST(ManyMembers, PaddingGarbageAndDamageAreAsInOrder) {
  const Members members = members_of_every_kind(10);
  Bytes padded = members.packed;
  padded.insert(padded.end(), 1000, 0);
  for (const int threads : {1, 2}) {
    EXPECT_TRUE(decode(padded, threads, 0).output == members.input) << threads << " threads";
  }
  Bytes garbage = members.packed;
  garbage.insert(garbage.end(), {'j', 'u', 'n', 'k'});
  const std::string trailing = error_of(garbage, 1, 0);
  EXPECT_NE(trailing.find(fmt::format("{} trailing garbage", static_cast<int>(ErrorKind::kTrailingGarbage))),
            std::string::npos)
      << trailing;
  EXPECT_NE(trailing.find(fmt::format("at {}", members.packed.size())), std::string::npos) << trailing;
  EXPECT_EQ(error_of(garbage, 2, 0), trailing);
  // What follows the members is a header cut short: the same error as in order.
  for (const Bytes& tail :
       {Bytes{0x1f, 0x8b, 8}, Bytes{0x1f, 0x8b, 8, 0}, Bytes{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3}}) {
    Bytes cut_short = members.packed;
    cut_short.insert(cut_short.end(), tail.begin(), tail.end());
    const std::string in_order = error_of(cut_short, 1, 0);
    EXPECT_NE(in_order, "no error") << tail.size() << " bytes after the members";
    EXPECT_EQ(error_of(cut_short, 2, 0), in_order) << tail.size() << " bytes after the members";
  }
  expect_same_errors(members.packed, 0);
}

// After a member in pieces, whatever follows is read as in order: sluice's sized members and BGZF
// (units of their own, which follow a guess and so are guesses too), damaged ones, padding and
// garbage after them, a header cut short. The same output, or the same error at the same offset.
TEST(ManyMembers, AfterAMemberInPiecesTheRestIsReadAsInOrder) {
  const Bytes big_input = mixed_input(600 * 1024, 95);
  const Bytes big = zlib_gzip(big_input, 6, Z_DEFAULT_STRATEGY, kNoFlush);  // pieces of 16 KiB
  const Bytes tail_input = text_bytes(150 * 1024, 96);
  std::vector<std::pair<std::string, Bytes>> tails;
  for (const char* form : {"bgzf", "multi-member"}) {
    CompressOptions options;
    options.codec_options.knobs["form"] = form;
    if (std::string(form) != "bgzf") options.codec_options.chunk_bytes = 64 * 1024;  // BGZF's are fixed
    const Bytes members = to_bytes(compress_buffer(view(tail_input), options));
    tails.emplace_back(form, members);
    Bytes junk = members;
    junk.insert(junk.end(), {'j', 'u', 'n', 'k'});
    tails.emplace_back(fmt::format("{} then junk", form), junk);
    Bytes padded = members;
    padded.insert(padded.end(), 100, 0);
    tails.emplace_back(fmt::format("{} then zeros", form), padded);
    padded.insert(padded.end(), {'j', 'u', 'n', 'k'});
    tails.emplace_back(fmt::format("{} then zeros and junk", form), padded);
    Bytes damaged = members;
    damaged[members.size() / 2] ^= 0x10;
    tails.emplace_back(fmt::format("{} damaged", form), damaged);
    Bytes cut_short = members;
    cut_short.insert(cut_short.end(), {0x1f, 0x8b, 8, 0});
    tails.emplace_back(fmt::format("{} then a header cut short", form), cut_short);
  }
  // A size field that claims one byte less than the member holds: only a unit decoder reads it.
  Bytes wrong_size = tails[6].second;  // multi-member
  ASSERT_EQ(wrong_size[12], 'S');
  wrong_size[20] = static_cast<std::uint8_t>(wrong_size[20] - 1);
  tails.emplace_back("a size field one short", wrong_size);
  for (const auto& [what, tail] : tails) {
    Bytes packed = big;
    packed.insert(packed.end(), tail.begin(), tail.end());
    const std::string in_order = error_of(packed, 1, 16 * 1024);
    EXPECT_EQ(error_of(packed, 2, 16 * 1024), in_order) << what;
    EXPECT_EQ(error_of(packed, 8, 16 * 1024), in_order) << what;
    if (in_order == "no error") {
      Bytes expected = big_input;
      expected.insert(expected.end(), tail_input.begin(), tail_input.end());
      EXPECT_TRUE(decode(packed, 2, 16 * 1024).output == expected) << what;
    }
  }
}

// A member whose last data bytes read as a size (2,000,000) and a header of the tools (its XFL and
// OS the trailer's ISIZE, zeros), whose extra field runs past the end of the input: taken for
// the member's end, its last piece fails, and the serial decoder reads the file whole, as in order.
TEST(ManyMembers, AFalseEndAtTheEndOfTheInputIsNoTruncation) {
  Bytes input = random_bytes(2 * 1024 * 1024, 97);
  const Bytes last = {0x80, 0x84, 0x1e, 0x00, 0x1f, 0x8b, 0x08, 0x04};
  std::copy(last.begin(), last.end(), input.end() - static_cast<std::ptrdiff_t>(last.size()));
  const Bytes packed = zlib_gzip(input, 0, Z_DEFAULT_STRATEGY, kNoFlush);  // stored
  for (const int threads : {1, 2, 8}) {
    EXPECT_EQ(error_of(packed, threads, 0), "no error") << threads << " threads";
    EXPECT_TRUE(decode(packed, threads, 0).output == input) << threads << " threads";
  }
}

// A tarball of .gz files in stored blocks (pigz -0; a tool may store what it cannot compress):
// each inner file's header follows the tar header's zero padding, a size of 0 that no deflate
// data that long holds. The member is cut into pieces as any other, not guessed to end there.
TEST_F(SharedHistory, ATarballOfGzipFilesIsNotTakenForManyMembers) {
  for (int i = 0; i < 4; ++i) put(fmt::format("f{}", i), random_bytes(300 * 1024, 50 + i));
  const auto made = sh("gzip -n f0 f1 f2 f3 && tar -cf t.tar f0.gz f1.gz f2.gz f3.gz && pigz -0 -c t.tar > t.tgz");
  ASSERT_EQ(made.status, 0) << testing::describe(made);
  const Bytes tar = get("t.tar"), packed = get("t.tgz");
  for (const int threads : {2, 3}) {
    const Decoded decoded = decode(packed, threads, 64 * 1024);
    EXPECT_TRUE(decoded.output == tar) << threads << " threads";
    EXPECT_GT(decoded.stats.units, 5u) << threads << " threads: in pieces";
    EXPECT_GT(decoded.stats.serial_from.value_or(0), packed.size() * 9 / 10) << threads << " threads";
  }
}

// Members written by the stock tools, one per part, mixed: each a unit but the last (bgzip's parts
// are several members each, its blocks and an empty one).
TEST_F(SharedHistory, MembersOfTheStockToolsOneAfterAnotherAreUnits) {
  const Bytes input = mixed_input(2 * 1024 * 1024 + 99, 41);
  put("data", input);
  const auto made =
      sh("split -b 150000 data part. && i=0 && for p in part.??; do "
         "case $((i++ % 5)) in 0) gzip -c $p;; 1) pigz -p2 -c $p;; 2) igzip -c $p;; 3) libdeflate-gzip -c $p;; "
         "4) bgzip -c < $p;; esac > $p.gz; done && cat part.??.gz > m.gz && ls part.??.gz | wc -l && "
         "stat -c %s $(ls part.??.gz | tail -n 1)");
  ASSERT_EQ(made.status, 0) << testing::describe(made);
  const Bytes packed = get("m.gz");
  const std::size_t newline = made.out.find('\n');
  const std::size_t parts = std::stoul(made.out.substr(0, newline)), last = std::stoul(made.out.substr(newline + 1));
  for (const int threads : {2, 3}) {
    const Decoded decoded = decode(packed, threads, 0);
    EXPECT_TRUE(decoded.output == input) << threads << " threads";
    EXPECT_GE(decoded.stats.units, parts - 1) << threads << " threads";
    ASSERT_TRUE(decoded.stats.serial_from.has_value()) << threads << " threads";
    EXPECT_GE(*decoded.stats.serial_from, packed.size() - last) << threads << " threads: serial before the last part";
  }
}
}  // namespace
}  // namespace sluice
