// Decoder robustness through the library: truncation at every offset, every single-bit flip,
// trailing garbage and non-compressed input. A damaged stream must either fail with a
// kCorruptData error or (for bytes that carry no meaning, like gzip's MTIME) decode to exactly
// the original: never a crash, a hang, or wrong output without an error.
#include <gtest/gtest.h>
#include <lz4.h>
#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <set>

#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/stream.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

using testing::Bytes;
using testing::random_bytes;
using testing::text_bytes;
using testing::to_bytes;
using testing::view;

struct Packed {
  Bytes input;
  Bytes packed;
};

// A stream decoded whole on `threads` threads: its bytes and the run's counts.
struct Decoded {
  Bytes output;
  DecompressStats stats;
};
Decoded decode_on(const Bytes& packed, int threads) {
  MemorySource source(view(packed));
  MemorySink sink;
  DecompressOptions decode;
  decode.threads = threads;
  const DecompressStats stats = decompress(source, sink, decode);
  return {to_bytes(sink.buffer()), stats};
}

// A format as sluice writes it: the codec, and for gzip its form ("single-member",
// "multi-member", "independent": one member of independent chunks). A gzip backend named here
// decodes as well as encodes.
struct Format {
  std::string codec;
  std::string form = {};
  std::string backend = {};

  bool multi_member() const { return form == "multi-member"; }
  bool single_member() const { return form == "single-member"; }
  CodecOptions codec_options() const {
    CodecOptions options;
    if (!form.empty()) options.knobs["form"] = form;
    options.backend = backend;
    return options;
  }
  DecompressOptions decompress_options() const {
    DecompressOptions options;
    if (!backend.empty()) options.backends[codec] = backend;
    return options;
  }
};
void PrintTo(const Format& f, std::ostream* os) {
  *os << f.codec << (f.form.empty() ? "" : " " + f.form) << (f.backend.empty() ? "" : " " + f.backend);
}
std::string format_name(const ::testing::TestParamInfo<Format>& info) {
  std::string name = info.param.codec + (info.param.form.empty() ? "" : "_" + info.param.form) +
                     (info.param.backend.empty() ? "" : "_" + info.param.backend);
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}
// gzip's default engines (ISA-L streaming, libdeflate members) and zlib, the fallback, in each form.
const auto kFormats = ::testing::Values(
    Format{"gzip", "single-member"}, Format{"gzip", "multi-member"}, Format{"gzip", "single-member", "zlib"},
    Format{"gzip", "multi-member", "zlib"}, Format{"gzip", "multi-member", "isal"}, Format{"gzip", "independent"},
    Format{"gzip", "independent", "zlib"}, Format{"gzip", "independent", "isal"}, Format{"zstd"}, Format{"lz4"});

// Three chunks of 4 KiB and a short one: small enough to try every byte.
Packed packed_sample(const Format& format) {
  Packed sample;
  sample.input = text_bytes(3 * 4096 + 1000, 21);
  CompressOptions options;
  options.codec = format.codec;
  options.codec_options.chunk_bytes = 4096;
  options.codec_options = format.codec_options();
  options.codec_options.chunk_bytes = 4096;
  sample.packed = to_bytes(compress_buffer(view(sample.input), options));
  return sample;
}

// Where each zstd frame ends: cutting there leaves a valid, shorter stream.
std::set<std::size_t> zstd_frame_ends(const Bytes& packed) {
  std::set<std::size_t> ends;
  std::size_t at = 0;
  while (at < packed.size()) {
    const std::size_t size = ZSTD_findFrameCompressedSize(packed.data() + at, packed.size() - at);
    if (ZSTD_isError(size)) break;
    at += size;
    ends.insert(at);
  }
  return ends;
}

// Where each gzip member with a size field ends: cutting there leaves a valid, shorter stream.
std::set<std::size_t> gzip_member_ends(const Bytes& packed) {
  std::set<std::size_t> ends;
  for (std::size_t at = 0; at + 24 <= packed.size();) {
    at += packed[at + 16] | packed[at + 17] << 8 | packed[at + 18] << 16 | static_cast<std::size_t>(packed[at + 19]) << 24;
    ends.insert(at);
  }
  return ends;
}

// lz4 as earlier versions of sluice wrote it: every block of `block_bytes` (64 KiB at most) a
// frame of its own, with its content size and content checksum, no block checksum (what
// liblz4's frame API writes for one block with these preferences).
Bytes frame_per_block_lz4(const Bytes& input, std::size_t block_bytes) {
  Bytes packed;
  for (std::size_t at = 0; at < input.size(); at += block_bytes) {
    const std::size_t length = std::min(block_bytes, input.size() - at);
    LZ4F_preferences_t preferences{};
    preferences.frameInfo.blockMode = LZ4F_blockIndependent;
    preferences.frameInfo.blockSizeID = LZ4F_max64KB;
    preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    preferences.frameInfo.contentSize = length;
    Bytes frame(LZ4F_compressFrameBound(length, &preferences));
    const std::size_t size = LZ4F_compressFrame(frame.data(), frame.size(), input.data() + at, length, &preferences);
    EXPECT_FALSE(LZ4F_isError(size)) << LZ4F_getErrorName(size);
    if (LZ4F_isError(size)) return {};
    packed.insert(packed.end(), frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(size));
  }
  return packed;
}

// Where each frame of frame_per_block_lz4() ends (a 15-byte header with the content size,
// blocks, the EndMark, a content checksum): cutting there leaves a valid, shorter stream.
std::set<std::size_t> lz4_frame_ends(const Bytes& packed) {
  const auto word_at = [&](std::size_t at) {
    return packed[at] | packed[at + 1] << 8 | packed[at + 2] << 16 | static_cast<std::uint32_t>(packed[at + 3]) << 24;
  };
  std::set<std::size_t> ends;
  for (std::size_t at = 0; at + 15 <= packed.size();) {
    EXPECT_EQ(packed[at + 4], 0x6C) << "frame descriptor at byte " << at;
    for (at += 15; at + 4 <= packed.size() && word_at(at) != 0;) at += 4 + (word_at(at) & 0x7FFFFFFFu);
    at += 8;
    ends.insert(at);
  }
  return ends;
}

// What a stream of sluice's lz4 holds, as parsed by lz4_one_frame().
struct Lz4Frame {
  std::size_t max_block = 0;
  std::vector<std::size_t> blocks;  // where each block (its size word) starts
  std::size_t end_mark = 0;         // where the EndMark starts
  Bytes content;                    // the blocks decoded
};

// Parses `packed` as exactly one lz4 frame as sluice writes it: the magic; version 01,
// independent blocks and block checksums, and nothing else (no content size, no content
// checksum, no dictionary); a block maximum of 64 KiB to 4 MiB; the header checksum; blocks, each
// at most the maximum with the XXH32 of its bytes after it; the EndMark; the end of the data.
void lz4_one_frame(const Bytes& packed, Lz4Frame& frame) {
  const auto word_at = [&](std::size_t at) {
    return packed[at] | packed[at + 1] << 8 | packed[at + 2] << 16 | static_cast<std::uint32_t>(packed[at + 3]) << 24;
  };
  ASSERT_GE(packed.size(), 11u) << "a header and an EndMark at least";
  ASSERT_EQ(word_at(0), 0x184D2204u) << "the frame magic";
  ASSERT_EQ(packed[4], 0x70) << "FLG: version 01, independent blocks, block checksums, nothing more";
  ASSERT_EQ(packed[5] & 0x8F, 0) << "BD: reserved bits";
  const int block_code = (packed[5] >> 4) & 0x7;
  ASSERT_GE(block_code, 4);
  frame.max_block = std::size_t{1} << (8 + 2 * block_code);
  ASSERT_EQ(packed[6], static_cast<std::uint8_t>(XXH32(packed.data() + 4, 2, 0) >> 8)) << "header checksum";
  std::size_t at = 7;
  for (;;) {
    ASSERT_LE(at + 4, packed.size()) << "the frame ends before its EndMark";
    const std::uint32_t word = word_at(at);
    if (word == 0) break;
    const std::size_t size = word & 0x7FFFFFFFu;
    ASSERT_GT(size, 0u) << "block at byte " << at;
    ASSERT_LE(size, frame.max_block) << "block at byte " << at;
    ASSERT_LE(at + 4 + size + 4, packed.size()) << "block at byte " << at;
    const std::uint8_t* data = packed.data() + at + 4;
    ASSERT_EQ(word_at(at + 4 + size), XXH32(data, size, 0)) << "block checksum of the block at byte " << at;
    if (word & 0x80000000u) {
      frame.content.insert(frame.content.end(), data, data + size);
    } else {
      Bytes block(frame.max_block);
      const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(data), reinterpret_cast<char*>(block.data()),
                                          static_cast<int>(size), static_cast<int>(block.size()));
      ASSERT_GT(got, 0) << "block at byte " << at;
      frame.content.insert(frame.content.end(), block.begin(), block.begin() + got);
    }
    frame.blocks.push_back(at);
    at += 4 + size + 4;
  }
  frame.end_mark = at;
  ASSERT_EQ(at + 4, packed.size()) << "nothing after the EndMark: one frame";
}

// Where a stream in `format` may be cut and still be valid: between zstd frames and between
// independent gzip members. (sluice's lz4 is one frame: no cut short of its end is valid.)
std::set<std::size_t> valid_cuts(const Format& format, const Bytes& packed) {
  if (format.codec == "zstd") return zstd_frame_ends(packed);
  if (format.multi_member()) return gzip_member_ends(packed);
  return {};
}

// Decodes `bytes`; returns the output, or nothing if the decoder reported corrupt data (or, where
// damage turned a frame's start into something else, trailing garbage). Any other outcome fails
// the test.
// Both ways a buffer is decoded: through the graph, and, for a small input, on the calling
// thread (DecompressOptions::small_inputs_in_caller); they must agree.
std::optional<Bytes> decode_or_corrupt(const Bytes& bytes, const std::string& what,
                                       const DecompressOptions& options) {
  const auto one_way = [&](bool graph) -> std::optional<Bytes> {
    try {
      DecompressOptions way = options;
      way.small_inputs_in_caller = !graph;
      return to_bytes(decompress_buffer(view(bytes), way));
    } catch (const Error& e) {
      EXPECT_TRUE(e.kind() == ErrorKind::kCorruptData || e.kind() == ErrorKind::kTrailingGarbage)
          << what << ": " << e.what();
      EXPECT_TRUE(e.offset().has_value()) << what << ": no offset in " << e.what();
      return std::nullopt;
    }
  };
  const auto through_graph = one_way(true);
  // Every fourth case both ways: enough to cover every kind of damage at every place in a unit
  // (the cases come in long runs of neighbouring offsets), at a quarter of the time under ASan.
  static std::uint64_t cases = 0;
  if (bytes.size() <= 64 * 1024 && cases++ % 4 == 0) {
    EXPECT_EQ(one_way(false), through_graph) << what << ": decoded in the caller";
  }
  return through_graph;
}

class Damaged : public ::testing::TestWithParam<Format> {};

TEST_P(Damaged, EveryTruncationIsAnError) {
  const auto sample = packed_sample(GetParam());
  const auto ends = valid_cuts(GetParam(), sample.packed);
  const bool one_frame = GetParam().codec == "lz4" || (GetParam().codec == "gzip" && !GetParam().multi_member());
  // One frame per chunk (zstd: and the seek table's skippable frame after them).
  EXPECT_EQ(ends.size(), one_frame ? 0u : GetParam().codec == "zstd" ? 5u : 4u) << "one frame per chunk";
  for (std::size_t cut = 0; cut < sample.packed.size(); ++cut) {
    const Bytes truncated(sample.packed.begin(), sample.packed.begin() + static_cast<std::ptrdiff_t>(cut));
    const auto decoded = decode_or_corrupt(truncated, "cut at " + std::to_string(cut), GetParam().decompress_options());
    // zstd frames and independent gzip members are streams of their own: a cut between two is
    // valid.
    if (ends.count(cut)) {
      ASSERT_TRUE(decoded.has_value()) << "a cut at a frame end is a valid stream";
      EXPECT_EQ(*decoded, Bytes(sample.input.begin(), sample.input.begin() + static_cast<std::ptrdiff_t>(decoded->size())));
    } else {
      EXPECT_FALSE(decoded.has_value()) << GetParam().codec << " accepted a stream cut at byte " << cut;
    }
  }
}

TEST_P(Damaged, EveryBitFlipIsCaughtOrHarmless) {
  const auto sample = packed_sample(GetParam());
  // The one bit of sluice's lz4 that no checksum covers: a block's "stored" flag, the high bit of
  // its size word. Block checksums cover the block's bytes, not its size word; set on a compressed
  // block, it makes the compressed bytes come out as they are. Only a content checksum would catch
  // that, and sluice's lz4 has none (codecs/lz4_codec.cpp says why).
  std::set<std::size_t> unchecked;
  if (GetParam().codec == "lz4") {
    Lz4Frame frame;
    ASSERT_NO_FATAL_FAILURE(lz4_one_frame(sample.packed, frame));
    for (const std::size_t block : frame.blocks) unchecked.insert(block + 3);
  }
  // Under the sanitizers one of the two bits of each byte (the low at even bytes, the high at odd):
  // every byte still, at half the sanitizers' time (12 s of it for each gzip form); the release
  // build flips both.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr bool kOneBitAByte = true;
#else
  constexpr bool kOneBitAByte = false;
#endif
  std::size_t caught = 0;
  for (std::size_t at = 0; at < sample.packed.size(); ++at) {
    for (std::uint8_t bit : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
      if (kOneBitAByte && (bit == 0x80) != (at % 2 == 1)) continue;
      if (bit == 0x80 && unchecked.count(at)) continue;
      Bytes flipped = sample.packed;
      flipped[at] ^= bit;
      const auto decoded = decode_or_corrupt(flipped, "flip at " + std::to_string(at), GetParam().decompress_options());
      if (decoded) {
        EXPECT_EQ(*decoded, sample.input) << GetParam().codec << ": bit flip at byte " << at << " changed the output silently";
      } else {
        ++caught;
      }
    }
  }
  // Nearly every byte matters; only a few header fields (gzip MTIME, XFL, OS) do not.
  EXPECT_GT(caught, kOneBitAByte ? sample.packed.size() / 2 : sample.packed.size());
}

// Trailing garbage is an error of its own kind, raised after everything before it was written (the
// command keeps that output and warns, as gzip does); on the parallel and the serial path alike.
TEST_P(Damaged, TrailingGarbageIsNamedAsSuchAfterEverythingBeforeItIsWritten) {
  auto sample = packed_sample(GetParam());
  const std::size_t end = sample.packed.size();
  const std::vector<std::string> garbages = {"garbage after the stream", "x", std::string(16, '\0') + "x"};
  for (const std::string& garbage : garbages) {
    for (int threads : {1, 2, 8}) {
      SCOPED_TRACE(fmt::format("{} bytes of garbage, {} threads", garbage.size(), threads));
      Bytes bytes = sample.packed;
      bytes.insert(bytes.end(), garbage.begin(), garbage.end());
      MemorySource source(view(bytes));
      MemorySink sink;
      DecompressOptions options = GetParam().decompress_options();
      options.threads = threads;
      try {
        decompress(source, sink, options);
        ADD_FAILURE() << GetParam().codec << " accepted trailing garbage of " << garbage.size() << " bytes";
      } catch (const Error& e) {
        if (garbage.size() >= 4) {
          EXPECT_EQ(e.kind(), ErrorKind::kTrailingGarbage) << e.what();
          EXPECT_NE(e.detail().find("trailing garbage"), std::string::npos) << e.what();
          EXPECT_EQ(e.offset(), end) << e.what();
          EXPECT_EQ(to_bytes(sink.buffer()), sample.input);
        } else {
          EXPECT_TRUE(e.kind() == ErrorKind::kCorruptData || e.kind() == ErrorKind::kTrailingGarbage) << e.what();
        }
      }
    }
  }
}

// Zeros after the last gzip member are padding (a tape's, dd's block): gzip -d and pigz -d skip
// them, and so does sluice, on the parallel and the serial path alike. zstd and lz4 have no such
// rule (zstd -d and lz4 -d reject them), and neither has sluice.
TEST_P(Damaged, ZerosAfterTheLastGzipMemberArePadding) {
  const auto sample = packed_sample(GetParam());
  for (std::size_t zeros : {1, 3, 12, 10240}) {
    Bytes padded = sample.packed;
    padded.insert(padded.end(), zeros, std::uint8_t{0});
    for (int threads : {1, 2}) {
      DecompressOptions options = GetParam().decompress_options();
      options.threads = threads;
      if (GetParam().codec == "gzip") {
        EXPECT_EQ(to_bytes(decompress_buffer(view(padded), options)), sample.input) << zeros << " zeros";
      } else {
        EXPECT_FALSE(decode_or_corrupt(padded, std::to_string(zeros) + " zeros", options).has_value());
      }
    }
  }
}

TEST_P(Damaged, TheDecoderReadsEveryFrameOfAConcatenation) {
  const auto sample = packed_sample(GetParam());
  Bytes twice = sample.packed;
  twice.insert(twice.end(), sample.packed.begin(), sample.packed.end());
  Bytes expected = sample.input;
  expected.insert(expected.end(), sample.input.begin(), sample.input.end());
  EXPECT_EQ(to_bytes(decompress_buffer(view(twice), GetParam().decompress_options())), expected);
}

INSTANTIATE_TEST_SUITE_P(Codecs, Damaged, kFormats, format_name);

// ---- Parallel decoding ----

class Parallel : public ::testing::TestWithParam<Format> {};

// sluice's own output decodes unit by unit, the same on any thread count.
TEST_P(Parallel, OwnOutputDecodesInUnitsOnAnyThreadCount) {
  const Bytes input = text_bytes(3 * 1024 * 1024 + 11, 60);
  CompressOptions options;
  options.codec = GetParam().codec;
  options.codec_options = GetParam().codec_options();
  options.codec_options.chunk_bytes = 64 * 1024;
  const Buffer packed = compress_buffer(view(input), options);
  const std::size_t chunks = (input.size() + 64 * 1024 - 1) / (64 * 1024);
  for (int threads : {1, 2, 8}) {
    MemorySource source(packed.view());
    MemorySink sink;
    DecompressOptions decode = GetParam().decompress_options();
    decode.threads = threads;
    const DecompressStats stats = decompress(source, sink, decode);
    EXPECT_EQ(to_bytes(sink.buffer()), input) << threads << " threads";
    EXPECT_EQ(stats.input_bytes, packed.size());
    if (GetParam().single_member() && threads == 1) {
      EXPECT_EQ(stats.serial_from, 0u) << "one pigz-style member is inflated in order on one thread";
      EXPECT_EQ(stats.units, 0u);
    } else if (GetParam().single_member()) {
      // Pieces cut at its sync flushes (inflate_tests.cpp), all but the last, which ends it.
      EXPECT_GT(stats.units, 0u) << threads << " threads";
      EXPECT_GT(stats.serial_from.value_or(0), 0u) << threads << " threads";
    } else if (GetParam().codec == "gzip" && !GetParam().multi_member()) {
      // Independent chunks: every one but the last, which ends the member, in parallel.
      EXPECT_TRUE(stats.serial_from.has_value());
      EXPECT_EQ(stats.units, chunks - 1);
      EXPECT_LE(stats.decoder_threads, static_cast<std::size_t>(threads));
    } else {
      EXPECT_FALSE(stats.serial_from.has_value());
      EXPECT_EQ(stats.units, chunks);
      EXPECT_LE(stats.decoder_threads, static_cast<std::size_t>(threads));
    }
  }
}

// A failure is raised in order: everything before the damaged unit reaches the sink first (tar
// extraction keeps the entries before a break, as GNU tar does).
TEST_P(Parallel, TheGoodPrefixIsWrittenBeforeTheError) {
  const Bytes input = text_bytes(2 * 1024 * 1024, 61);
  CompressOptions options;
  options.codec = GetParam().codec;
  options.codec_options = GetParam().codec_options();
  options.codec_options.chunk_bytes = 64 * 1024;
  const Buffer packed = compress_buffer(view(input), options);
  for (const bool flip : {false, true}) {
    Bytes damaged(packed.data(), packed.data() + packed.size());
    if (flip) damaged[damaged.size() * 3 / 4] ^= 0x55;  // corrupt a unit three quarters in
    else damaged.resize(damaged.size() * 3 / 4);         // or cut there
    for (int threads : {1, 2, 8}) {
      MemorySource source(view(damaged));
      MemorySink sink;
      DecompressOptions decode = GetParam().decompress_options();
      decode.threads = threads;
      EXPECT_THROW(decompress(source, sink, decode), Error);
      // A flipped bit is only caught where a checksum covers it: for a pigz-style gzip member that
      // is the end of the stream, after the damaged bytes were written.
      if (flip) continue;
      const Bytes written = to_bytes(sink.buffer());
      EXPECT_GE(written.size(), input.size() / 2) << threads << " threads, flip " << flip;
      EXPECT_EQ(written, Bytes(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(written.size())));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, Parallel, kFormats, format_name);

// One zstd frame without a content size (as `zstd` writes from a pipe): decoded serially where its
// blocks could hold more than a unit (16 MiB), with the output handed to a writing thread of its
// own on more than one thread; a smaller one is a unit.
Bytes single_zstd_frame(const Bytes& input) {
  ZSTD_CCtx* context = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 0);
  Bytes packed(ZSTD_compressBound(input.size()) + 64);
  ZSTD_outBuffer out{packed.data(), packed.size(), 0};
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  const std::size_t left = ZSTD_compressStream2(context, &out, &in, ZSTD_e_end);
  ZSTD_freeCCtx(context);
  EXPECT_EQ(left, 0u);
  packed.resize(out.pos);
  return packed;
}

// Accepts writes in small pieces, optionally failing after some bytes.
class PickySink final : public ByteSink {
 public:
  explicit PickySink(std::size_t fail_after = SIZE_MAX) : fail_after_(fail_after) {}
  void write(ByteView bytes) override {
    if (bytes_.size() + bytes.size() > fail_after_) throw Error(ErrorKind::kIo, "write failed: No space left on device", name_);
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
  }
  const std::string& name() const override { return name_; }
  const Bytes& bytes() const { return bytes_; }

 private:
  std::size_t fail_after_;
  Bytes bytes_;
  std::string name_ = "picky";
};

// pigz-style members of text of the given sizes, one after another (seeds from `seed`).
Packed single_members(std::initializer_list<std::size_t> sizes, std::size_t seed) {
  Packed members;
  for (std::size_t size : sizes) {
    const Bytes input = text_bytes(size, seed + size);
    CompressOptions single;
    single.codec_options.knobs["form"] = "single-member";
    single.codec_options.chunk_bytes = 64 * 1024;
    const Bytes member = to_bytes(compress_buffer(view(input), single));
    members.packed.insert(members.packed.end(), member.begin(), member.end());
    members.input.insert(members.input.end(), input.begin(), input.end());
  }
  return members;
}

// The streaming gzip decoder gets its input in pieces of any size, for every engine that can
// stream: a member's end (where ISA-L has read ahead into the trailer, or past it) may fall
// anywhere in a piece, and several members may share one.
TEST(Serial, GzipStreamsDecodeFromPiecesOfAnySizeWithEveryEngine) {
  const auto [expected, packed] = single_members({200000, 0, 1, 70000}, 70);
  for (const char* backend : {"isal", "zlib"}) {
    CodecOptions options;
    options.backend = backend;
    const auto codec = CodecRegistry::global().create("gzip", options);
    for (std::size_t piece : {1, 2, 3, 5, 8, 13, 4096, 100000}) {
      const auto decoder = codec->make_decoder();
      Bytes out;
      for (std::size_t at = 0; at < packed.size(); at += piece) {
        const ByteView bytes = view(packed).subspan(at, std::min(piece, packed.size() - at));
        decoder->decode(bytes, [&out](ByteView b) { out.insert(out.end(), b.begin(), b.end()); });
      }
      decoder->finish();
      EXPECT_EQ(out, expected) << backend << ", pieces of " << piece;
    }
  }
}

// Space lent in pieces of `space_bytes` from one buffer that is never reused: what
// keeps_produced_bytes() promises, at its most generous.
class KeepingOutput final : public StreamDecoder::Output {
 public:
  KeepingOutput(std::size_t space_bytes, std::size_t capacity_bytes)
      : space_bytes_(space_bytes), bytes_(capacity_bytes + space_bytes) {}
  std::span<std::uint8_t> space() override {
    if (size_ + space_bytes_ > bytes_.size()) throw std::length_error("test output full");
    return {bytes_.data() + size_, space_bytes_};
  }
  void produced(std::size_t bytes) override { size_ += bytes; }
  std::size_t keeps_produced_bytes() const override { return SIZE_MAX; }
  Bytes bytes() const { return Bytes(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(size_)); }

 private:
  std::size_t space_bytes_;
  Bytes bytes_;
  std::size_t size_ = 0;
};

// decode_to() inflates straight into an output that keeps what it is given (checksumming it on
// another worker meanwhile), in spaces of any size, also after decode() held some output back.
TEST(Serial, GzipDecodesStraightIntoAnOutputThatKeepsItsBytes) {
  const auto [expected, packed] = single_members({700000, 0, 1, 300000}, 40);
  const auto codec = CodecRegistry::global().create("gzip");
  for (std::size_t space : {1, 1000, 300 * 1024}) {
    for (std::size_t piece : {7, 100000}) {
      for (bool decode_first : {false, true}) {
        const auto decoder = codec->make_decoder();
        KeepingOutput output(space, expected.size());
        Bytes held;
        std::size_t at = 0;
        if (decode_first) {  // the first pieces through decode(), which may hold output back
          for (; at < packed.size() / 3; at += piece) {
            decoder->decode(view(packed).subspan(at, std::min(piece, packed.size() - at)),
                            [&held](ByteView b) { held.insert(held.end(), b.begin(), b.end()); });
          }
        }
        for (; at < packed.size(); at += piece) {
          decoder->decode_to(view(packed).subspan(at, std::min(piece, packed.size() - at)), output);
        }
        decoder->finish();
        Bytes out = held;
        const Bytes lent = output.bytes();
        out.insert(out.end(), lent.begin(), lent.end());
        EXPECT_EQ(out, expected) << "space " << space << ", pieces of " << piece << ", decode first " << decode_first;
      }
    }
  }
  // A wrong CRC-32 is caught on this path too.
  Bytes damaged = single_members({700000}, 40).packed;
  damaged[damaged.size() - 8] ^= 0x01;
  const auto decoder = codec->make_decoder();
  KeepingOutput output(4096, 700000);
  try {
    decoder->decode_to(view(damaged), output);
    decoder->finish();
    ADD_FAILURE() << "a wrong CRC-32 was not caught";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruptData);
    EXPECT_NE(std::string(e.what()).find("CRC-32 mismatch"), std::string::npos) << e.what();
  }
}

// Decodes `damaged` on 1, 2 and 8 threads: each run must fail with `kind`, `message` and
// `offset`, after writing exactly `written`.
void expect_failure_after(const Bytes& damaged, const std::string& message, std::uint64_t offset,
                          const Bytes& written, ErrorKind kind = ErrorKind::kCorruptData) {
  for (int threads : {1, 2, 8}) {
    MemorySource source(view(damaged));
    MemorySink sink;
    DecompressOptions decode;
    decode.threads = threads;
    try {
      decompress(source, sink, decode);
      ADD_FAILURE() << "no error on " << threads << " threads, expected " << message;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
      EXPECT_EQ(e.offset(), offset) << e.what();
    }
    EXPECT_EQ(to_bytes(sink.buffer()), written) << threads;
  }
}

// ---- One gzip member of independent chunks: false chunk ends ----

// Data that holds the sync flush pattern "00 00 ff ff" between random bytes: deflate keeps it in
// stored blocks, so the compressed stream has the pattern at byte boundaries inside chunks, where
// the splitter guesses a chunk ends. Every wrong guess is redone in order, never emitted.
TEST(IndependentChunks, FalseChunkEndsInStoredDataDecodeExactly) {
  Bytes input;
  for (int i = 0; i < 600; ++i) {
    const Bytes noise = random_bytes(997, static_cast<std::uint64_t>(i) + 1);
    input.insert(input.end(), noise.begin(), noise.end());
    input.insert(input.end(), {0x00, 0x00, 0xFF, 0xFF});
  }
  for (const int level : {1, 9}) {
    for (const std::string backend : {"", "zlib"}) {
      CompressOptions options;
      options.codec_options.level = level;
      options.codec_options.chunk_bytes = 64 * 1024;
      options.codec_options.backend = backend;
      const Bytes packed = to_bytes(compress_buffer(view(input), options));
      std::size_t patterns = 0;
      for (std::size_t at = 0; at + 4 <= packed.size(); ++at) {
        patterns += packed[at] == 0 && packed[at + 1] == 0 && packed[at + 2] == 0xFF && packed[at + 3] == 0xFF;
      }
      ASSERT_GT(patterns, 2 * (input.size() / (64 * 1024))) << "more false chunk ends than true ones";
      for (const int threads : {1, 2, 8}) {
        DecompressOptions decode;
        decode.threads = threads;
        EXPECT_EQ(to_bytes(decompress_buffer(view(packed), decode)), input)
            << "level " << level << " " << backend << " on " << threads << " threads";
      }
    }
  }
}

// A member whose header claims independent chunks but whose chunks share history (pigz's shape
// with the 'SI' subfield put in): every guess that leans on the window fails, and the serial
// decoder takes over with the window of the chunks accepted so far.
TEST(IndependentChunks, AFalseClaimOfIndependenceStillDecodesExactly) {
  const Bytes input = text_bytes(1024 * 1024 + 777, 5);
  CompressOptions options;
  options.codec_options.knobs["form"] = "single-member";
  options.codec_options.chunk_bytes = 32 * 1024;
  const Bytes single = to_bytes(compress_buffer(view(input), options));
  ASSERT_EQ(single[3], 0) << "no header fields to move";
  Bytes claimed(single.begin(), single.begin() + 10);
  claimed[3] = 0x04;                                                                  // FEXTRA
  const std::uint8_t extra[14] = {12, 0, 'S', 'I', 8, 0, 0, 0x80, 0, 0, 1, 0, 0, 0};  // chunks of 32 KiB
  claimed.insert(claimed.end(), std::begin(extra), std::end(extra));
  claimed.insert(claimed.end(), single.begin() + 10, single.end());
  for (const int threads : {1, 2, 8}) {
    DecompressOptions decode;
    decode.threads = threads;
    EXPECT_EQ(to_bytes(decompress_buffer(view(claimed), decode)), input) << threads << " threads";
  }
  // Cut short, it is still a truncation, wherever the cut falls.
  for (const std::size_t cut : {std::size_t{24}, claimed.size() / 2, claimed.size() - 1}) {
    const Bytes truncated(claimed.begin(), claimed.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_THROW(decompress_buffer(view(truncated)), Error) << "cut at " << cut;
  }
}

// Two such members one after the other (cat a.gz b.gz): the second is found by the serial decoder.
TEST(IndependentChunks, ConcatenatedMembersDecodeOnAnyThreadCount) {
  const Bytes first = text_bytes(300 * 1024 + 1, 1), second = text_bytes(200 * 1024, 2);
  CompressOptions options;
  options.codec_options.chunk_bytes = 64 * 1024;
  Bytes packed = to_bytes(compress_buffer(view(first), options));
  const Bytes more = to_bytes(compress_buffer(view(second), options));
  packed.insert(packed.end(), more.begin(), more.end());
  Bytes expected = first;
  expected.insert(expected.end(), second.begin(), second.end());
  for (const int threads : {1, 2, 8}) {
    DecompressOptions decode;
    decode.threads = threads;
    EXPECT_EQ(to_bytes(decompress_buffer(view(packed), decode)), expected) << threads << " threads";
  }
}

// A member of independent chunks flooded with empty ones (each an empty stored block of 5 bytes,
// 00 00 00 ff ff, which a sync flush writes): the chunks are gathered into units, where a unit
// each made decoding a megabyte of them take seconds; the bytes come out exactly, in parallel.
TEST(IndependentChunks, AFloodOfEmptyChunksIsGatheredIntoFewUnits) {
  const Bytes input = text_bytes(4 * 64 * 1024 + 3, 7);  // the last chunk: 3 bytes and the trailer, 16
  CompressOptions options;
  options.codec_options.chunk_bytes = 64 * 1024;
  Bytes packed = to_bytes(compress_buffer(view(input), options));
  const std::uint8_t sync_flush[4] = {0x00, 0x00, 0xFF, 0xFF};
  const auto first_chunk_end = std::search(packed.begin(), packed.end(), std::begin(sync_flush), std::end(sync_flush));
  ASSERT_NE(first_chunk_end, packed.end());
  constexpr std::size_t kEmptyChunks = 200'000;
  Bytes flood;
  for (std::size_t i = 0; i < kEmptyChunks; ++i) flood.insert(flood.end(), {0x00, 0x00, 0x00, 0xFF, 0xFF});
  packed.insert(first_chunk_end + 4, flood.begin(), flood.end());
  for (const int threads : {2, 8}) {
    const auto [output, stats] = decode_on(packed, threads);
    EXPECT_TRUE(output == input) << threads << " threads";
    // Only the last chunk and the trailer are decoded in order, as in any member of chunks.
    EXPECT_EQ(stats.serial_from, std::optional<std::uint64_t>{packed.size() - 16}) << threads << " threads";
    EXPECT_LT(stats.units, kEmptyChunks / 100) << threads << " threads";
  }
}

// A member of independent chunks whose header does not end within 64 KiB (a name of 2 MiB, past
// the first MiB a run gathers), arriving in pieces: read by the serial decoder from its start,
// where its header was parsed from the start again at every piece (a 60 MiB name from a pipe:
// 13 s); the bytes the same.
TEST(IndependentChunks, AHeaderLongerThan64KiBArrivingInPiecesIsReadSerially) {
  const Bytes input = text_bytes(3 * 64 * 1024 + 5, 8);
  CompressOptions options;
  options.codec_options.chunk_bytes = 64 * 1024;
  StreamInfo info;
  info.name = std::string(2 * 1024 * 1024, 'n');
  const Bytes packed = to_bytes(compress_buffer(view(input), options, info));
  ASSERT_EQ(packed[12], 'S');
  ASSERT_EQ(packed[13], 'I');
  MemorySink sink;
  DecompressOptions decode;
  decode.threads = 2;
  decode.small_inputs_in_caller = false;
  Decompressor decompressor(sink, decode);
  for (std::size_t at = 0; at < packed.size(); at += 16 * 1024) {
    decompressor.write(view(packed).subspan(at, std::min<std::size_t>(16 * 1024, packed.size() - at)));
  }
  const DecompressStats stats = decompressor.finish();
  EXPECT_TRUE(to_bytes(sink.buffer()) == input);
  EXPECT_EQ(stats.serial_from, std::optional<std::uint64_t>{0});
  EXPECT_EQ(decode_on(packed, 2).output, input);  // whole, in chunks
}

// ---- zstd: frames found by walking their blocks ----

// A zstd frame with no content size, of raw, RLE and compressed blocks, with its checksum.
Bytes unsized_zstd_frame(const Bytes& input, int checksum) {
  ZSTD_CCtx* context = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, checksum);
  ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 0);
  Bytes out(ZSTD_compressBound(input.size()) + 64);
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  const std::size_t left = ZSTD_compressStream2(context, &output, &in, ZSTD_e_end);
  ZSTD_freeCCtx(context);
  EXPECT_EQ(left, 0u);
  out.resize(output.pos);
  return out;
}

// Frames cut from a buffer that grows in pieces of any size (as from a pipe, or pushed by a
// caller) are the frames cut from the whole: the splitter walks a frame's blocks from where it
// stopped at the last piece; a block of the reserved type is refused there as from the whole.
TEST(ZstdFrames, FramesArrivingInPiecesAreCutWhereTheyEnd) {
  Bytes packed, input;
  for (int k = 0; k < 4; ++k) {
    Bytes part = random_bytes(150'000 + 1000 * k, 60 + k);                 // raw blocks
    part.insert(part.end(), 300'000, static_cast<std::uint8_t>('a' + k));  // RLE blocks
    const Bytes text = text_bytes(200'000, 70 + k);                        // compressed blocks
    part.insert(part.end(), text.begin(), text.end());
    const Bytes frame = unsized_zstd_frame(part, k % 2);
    packed.insert(packed.end(), frame.begin(), frame.end());
    input.insert(input.end(), part.begin(), part.end());
  }
  const auto cuts_of = [](const Bytes& stream, std::size_t piece) {
    const auto splitter = CodecRegistry::global().create("zstd")->make_splitter();
    std::vector<std::size_t> ends;
    for (std::size_t at = 0, have = std::min(piece, stream.size()); at < stream.size();) {
      const ByteView shown = view(stream).subspan(at, have - at);
      Cut cut = splitter->next(shown, at);
      if (cut.kind == Cut::Kind::kNeedMore && have == stream.size()) cut = splitter->at_end(shown, at);
      if (cut.kind == Cut::Kind::kNeedMore && have < stream.size()) {
        have = std::min(stream.size(), have + piece);
        continue;
      }
      EXPECT_EQ(cut.kind, Cut::Kind::kUnit) << "at " << at << ", pieces of " << piece;
      if (cut.kind != Cut::Kind::kUnit) break;
      at += cut.bytes;
      ends.push_back(at);
      have = std::max(have, std::min(stream.size(), at + piece));
    }
    return ends;
  };
  const std::vector<std::size_t> whole = cuts_of(packed, packed.size());
  ASSERT_EQ(whole.size(), 4u);
  for (const std::size_t piece : {std::size_t{1}, std::size_t{3}, std::size_t{1000}, std::size_t{65536}}) {
    EXPECT_EQ(cuts_of(packed, piece), whole) << "pieces of " << piece;
  }
  EXPECT_EQ(decode_on(packed, 2).output, input);
  // The third frame's first block made a reserved one: an error at that frame, in pieces or not.
  Bytes broken = packed;
  const std::size_t third = whole[1];
  ASSERT_EQ(broken[third + 4] & 0xE3, 0) << "no content size, single segment or dictionary: a 6-byte header";
  broken[third + 6] |= 0x06;
  for (const std::size_t piece : {std::size_t{7}, broken.size()}) {
    const auto splitter = CodecRegistry::global().create("zstd")->make_splitter();
    std::size_t at = 0;
    for (const std::size_t end : {whole[0], whole[1]}) {
      ASSERT_EQ(splitter->next(view(broken).subspan(at, end - at), at).kind, Cut::Kind::kUnit);
      at = end;
    }
    try {
      for (std::size_t have = at + std::min(piece, broken.size() - at);; have = std::min(broken.size(), have + piece)) {
        if (splitter->next(view(broken).subspan(at, have - at), at).kind != Cut::Kind::kNeedMore) break;
      }
      ADD_FAILURE() << "a reserved block was cut, pieces of " << piece;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
      EXPECT_EQ(e.offset(), std::optional<std::uint64_t>{third}) << e.what();
    }
  }
}

// ---- lz4: a stream is one frame ----

// Every size around a block's (and so a chunk's) edges, several chunks, and chunks larger than
// the largest block (several blocks each): one frame, whose blocks hold the input in order, of the
// block maximum that the chunk size gives.
TEST(Lz4OneFrame, AStreamIsExactlyOneFrameOfIndependentCheckedBlocks) {
  struct Case {
    std::size_t chunk;
    std::size_t size;
    std::size_t blocks;
    std::size_t max_block;
  };
  constexpr std::size_t k64 = 64 * 1024, k4m = 4 * 1024 * 1024;
  for (const auto& [chunk, size, blocks, max_block] :
       {Case{k64, 0, 0, k64}, Case{k64, 1, 1, k64}, Case{k64, k64 - 1, 1, k64}, Case{k64, k64, 1, k64},
        Case{k64, k64 + 1, 2, k64}, Case{k64, 10 * k64 + 5, 11, k64}, Case{100 * 1024, 350 * 1024, 4, 256 * 1024},
        Case{k4m, 3 * k4m + 7, 4, k4m}, Case{5 * 1024 * 1024, 11 * 1024 * 1024, 5, k4m}}) {
    SCOPED_TRACE(fmt::format("chunks of {}, {} bytes", chunk, size));
    const Bytes input = text_bytes(size, 90 + size);
    CompressOptions options;
    options.codec = "lz4";
    options.codec_options.chunk_bytes = chunk;
    const Bytes packed = to_bytes(compress_buffer(view(input), options));
    Lz4Frame frame;
    ASSERT_NO_FATAL_FAILURE(lz4_one_frame(packed, frame));
    EXPECT_EQ(frame.max_block, max_block);
    EXPECT_EQ(frame.blocks.size(), blocks);
    EXPECT_TRUE(frame.content == input);
    EXPECT_EQ(to_bytes(decompress_buffer(view(packed))), input);
  }
  // Data that does not shrink is stored, under the size word's high bit, still with its checksum.
  const Bytes noise = random_bytes(150 * 1024, 91);
  CompressOptions options;
  options.codec = "lz4";
  options.codec_options.chunk_bytes = k64;
  const Bytes packed = to_bytes(compress_buffer(view(noise), options));
  Lz4Frame frame;
  ASSERT_NO_FATAL_FAILURE(lz4_one_frame(packed, frame));
  EXPECT_EQ(frame.blocks.size(), 3u);
  EXPECT_NE(packed[frame.blocks[0] + 3] & 0x80, 0) << "stored";
  EXPECT_TRUE(frame.content == noise);
}

// A frame cut short in a later block is named by where the frame starts, on any thread count (it
// was named by where its last block started: "starting at byte 862815", of 894814).
TEST(Lz4OneFrame, AFrameCutShortIsNamedByItsStart) {
  const Bytes input = text_bytes(40 * 64 * 1024, 94);
  CompressOptions options;
  options.codec = "lz4";
  options.codec_options.chunk_bytes = 64 * 1024;
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  const Bytes cut(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(packed.size() * 7 / 10));
  for (const int threads : {1, 2}) {
    DecompressOptions decode;
    decode.threads = threads;
    try {
      decompress_buffer(view(cut), decode);
      ADD_FAILURE() << threads << " threads: no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("the lz4 frame starting at byte 0 is truncated"), std::string::npos)
          << threads << " threads: " << e.what();
    }
  }
}

// The same bytes from any thread count, through compress_buffer and through the push API in
// pieces of any size, for any level.
TEST(Lz4OneFrame, TheSameBytesFromAnyThreadCountAndThePushApi) {
  const Bytes input = text_bytes(1024 * 1024 + 333, 92);
  for (const int level : {1, 9}) {
    CompressOptions options;
    options.codec = "lz4";
    options.codec_options.level = level;
    options.codec_options.chunk_bytes = 64 * 1024;
    options.threads = 1;
    const Bytes one = to_bytes(compress_buffer(view(input), options));
    for (const int threads : {2, 8}) {
      options.threads = threads;
      EXPECT_TRUE(to_bytes(compress_buffer(view(input), options)) == one) << "level " << level << ", -j" << threads;
      for (const std::size_t piece : {std::size_t{1000}, std::size_t{64 * 1024}, std::size_t{300000}}) {
        MemorySink sink;
        Compressor compressor(sink, options);
        for (std::size_t at = 0; at < input.size(); at += piece) {
          compressor.write(view(input).subspan(at, std::min(piece, input.size() - at)));
        }
        compressor.finish();
        EXPECT_TRUE(to_bytes(sink.buffer()) == one)
            << "level " << level << ", -j" << threads << ", pieces of " << piece;
      }
    }
  }
}

// The equivalent of the old frames' valid cuts: every block is a unit of its own (the header and
// the EndMark markers), cut by the splitter where the parse says the block is, and decoded on
// every worker, never serially; a stream of one block is one unit.
TEST(Lz4OneFrame, EveryBlockIsAUnitOfItsOwn) {
  constexpr std::size_t kChunkBytes = 64 * 1024;
  for (const std::size_t size : {std::size_t{0}, std::size_t{1000}, 40 * kChunkBytes + 17}) {
    SCOPED_TRACE(fmt::format("{} bytes", size));
    const Bytes input = text_bytes(size, 93);
    CompressOptions options;
    options.codec = "lz4";
    options.codec_options.chunk_bytes = kChunkBytes;
    const Bytes packed = to_bytes(compress_buffer(view(input), options));
    Lz4Frame frame;
    ASSERT_NO_FATAL_FAILURE(lz4_one_frame(packed, frame));
    const auto codec = CodecRegistry::global().create("lz4");
    const auto splitter = codec->make_splitter();
    ASSERT_TRUE(splitter);
    std::vector<std::pair<Cut::Kind, std::size_t>> cuts;  // kind, offset
    for (std::size_t at = 0; at < packed.size();) {
      const Cut cut = splitter->next(view(packed).subspan(at), at);
      ASSERT_TRUE(cut.kind == Cut::Kind::kUnit || cut.kind == Cut::Kind::kMarker) << "at byte " << at;
      cuts.emplace_back(cut.kind, at);
      at += cut.bytes;
    }
    splitter->finish(packed.size());
    std::vector<std::pair<Cut::Kind, std::size_t>> expected;
    if (frame.blocks.size() <= 1) {
      expected = {{Cut::Kind::kUnit, 0}};  // a whole frame
    } else {
      expected.emplace_back(Cut::Kind::kMarker, 0);
      for (const std::size_t block : frame.blocks) expected.emplace_back(Cut::Kind::kUnit, block);
      expected.emplace_back(Cut::Kind::kMarker, frame.end_mark);
    }
    EXPECT_EQ(cuts, expected);
    for (const int threads : {1, 2, 8}) {
      const auto [output, stats] = decode_on(packed, threads);
      EXPECT_TRUE(output == input) << threads << " threads";
      EXPECT_EQ(stats.units, std::max<std::size_t>(1, frame.blocks.size())) << threads << " threads";
      EXPECT_FALSE(stats.serial_from.has_value()) << threads << " threads";
      EXPECT_LE(stats.decoder_threads, static_cast<std::size_t>(threads));
    }
  }
}

// A frame of 100,000 one-byte blocks (each with its checksum), and 100,000 empty frames: blocks
// and frames are gathered into units of a few KiB, where a unit each ran 20-43 times slower than
// lz4 -t; the bytes the same, on any thread count; a bad checksum in the middle still an error.
TEST(Lz4OneFrame, FloodsOfTinyBlocksOrFramesAreGatheredIntoFewUnits) {
  constexpr std::size_t kCount = 100'000;
  const auto frame_header = [](Bytes& out, std::uint8_t flags) {
    const std::uint8_t descriptor = 0x40;  // blocks of at most 64 KiB
    out.insert(out.end(), {0x04, 0x22, 0x4D, 0x18, flags, descriptor});
    out.push_back(static_cast<std::uint8_t>(XXH32(out.data() + out.size() - 2, 2, 0) >> 8));
  };
  Bytes blocks, input;
  frame_header(blocks, 0x70);  // version 1, independent blocks, block checksums
  for (std::size_t i = 0; i < kCount; ++i) {
    const auto byte = static_cast<std::uint8_t>('a' + i % 26);
    input.push_back(byte);
    blocks.insert(blocks.end(), {0x01, 0x00, 0x00, 0x80, byte});  // one byte, stored as it is
    const std::uint32_t check = XXH32(&byte, 1, 0);
    for (int k = 0; k < 4; ++k) blocks.push_back(static_cast<std::uint8_t>(check >> (8 * k)));
  }
  blocks.insert(blocks.end(), {0, 0, 0, 0});
  Bytes frames;
  for (std::size_t i = 0; i < kCount; ++i) {
    frame_header(frames, 0x60);
    frames.insert(frames.end(), {0, 0, 0, 0});
  }
  for (const int threads : {1, 2, 8}) {
    const auto [output, stats] = decode_on(blocks, threads);
    EXPECT_TRUE(output == input) << threads << " threads";
    EXPECT_LT(stats.units, kCount / 100) << threads << " threads";
    const auto [none, frame_stats] = decode_on(frames, threads);
    EXPECT_TRUE(none.empty()) << threads << " threads";
    EXPECT_LT(frame_stats.units, kCount / 100) << threads << " threads";
  }
  // A block checksum halfway: an error at that block, not at the start of the unit it was
  // gathered in; the same for an empty frame whose end mark was made a bad block.
  Bytes damaged = blocks;
  const std::size_t bad_block = 7 + 9 * (kCount / 2);
  damaged[bad_block + 5] ^= 1;
  Bytes bad_frames = frames;
  const std::size_t bad_frame = 11 * (kCount / 2) + 7;  // the end mark after the header
  bad_frames[bad_frame] = 0x05;                         // a block of 5 bytes, which run into the next frame
  for (const int threads : {1, 2}) {
    for (const auto& [stream, at] : {std::pair{&damaged, bad_block}, std::pair{&bad_frames, bad_frame}}) {
      try {
        decode_on(*stream, threads);
        ADD_FAILURE() << "a damaged stream decoded, " << threads << " threads";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
        EXPECT_EQ(e.offset(), std::optional<std::uint64_t>{at}) << e.what();
      }
    }
  }
}

// A block's checksum is checked by the worker that decodes the block: a bad checksum, or a bad
// byte in the block it covers, fails at that block's offset, after exactly the blocks before it
// were written, on any thread count; so does the streaming decoder (liblz4's), fed in pieces.
TEST(Lz4OneFrame, ABadBlockChecksumIsCaughtAtTheBlock) {
  constexpr std::size_t kChunkBytes = 64 * 1024;
  const Bytes input = text_bytes(32 * kChunkBytes, 74);
  CompressOptions options;
  options.codec = "lz4";
  options.codec_options.chunk_bytes = kChunkBytes;
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  Lz4Frame frame;
  ASSERT_NO_FATAL_FAILURE(lz4_one_frame(packed, frame));
  ASSERT_EQ(frame.blocks.size(), 32u);
  const std::size_t block_20 = frame.blocks[20], block_21 = frame.blocks[21];
  Bytes bad_checksum = packed;
  bad_checksum[block_21 - 1] ^= 0x10;  // the last byte of block 20's checksum (counting from 0)
  Bytes bad_data = packed;
  bad_data[(block_20 + block_21) / 2] ^= 0x01;  // a byte of its data
  for (const Bytes* damaged : {&bad_checksum, &bad_data}) {
    expect_failure_after(*damaged, "corrupt lz4 block: block checksum mismatch", block_20,
                         Bytes(input.begin(), input.begin() + 20 * kChunkBytes));
    const auto decoder = CodecRegistry::global().create("lz4")->make_decoder();
    try {
      for (std::size_t at = 0; at < damaged->size(); at += 1000) {
        decoder->decode(view(*damaged).subspan(at, std::min<std::size_t>(1000, damaged->size() - at)), [](ByteView) {});
      }
      decoder->finish();
      ADD_FAILURE() << "the streaming decoder missed the bad block";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
      EXPECT_NE(std::string(e.what()).find("blockChecksum_invalid"), std::string::npos) << e.what();  // liblz4's name
    }
  }
}

// Streams of earlier versions, a frame per block with its content size and checksum, decode as
// before: each frame one unit, whose content checksum and size are checked by the worker that
// decodes it, failing at that frame's offset after exactly the frames before it were written.
TEST(Lz4OneFrame, FramePerBlockStreamsOfEarlierVersionsAreCheckedByTheWorkerThatDecodesThem) {
  constexpr std::size_t kChunkBytes = 64 * 1024;
  const Bytes input = text_bytes(32 * kChunkBytes, 74);
  const Bytes packed = frame_per_block_lz4(input, kChunkBytes);
  const auto ends = lz4_frame_ends(packed);
  ASSERT_EQ(ends.size(), 32u) << "one frame per block";
  const std::size_t frame_20 = *std::next(ends.begin(), 19), frame_21 = *std::next(ends.begin(), 20);

  Bytes bad_checksum = packed;
  bad_checksum[frame_21 - 1] ^= 0x10;  // the content checksum of frame 20 (counting from 0)
  Bytes bad_size = packed;
  ASSERT_EQ(bad_size[frame_20 + 6], 0x00) << "64 KiB: 0x00010000";
  bad_size[frame_20 + 6] = 0x01;  // one byte more than the block holds, under a valid header checksum
  bad_size[frame_20 + 14] = static_cast<std::uint8_t>(XXH32(bad_size.data() + frame_20 + 4, 10, 0) >> 8);
  for (const auto& [damaged, message] : {std::pair{&bad_checksum, "content checksum mismatch"},
                                         std::pair{&bad_size, "65536 bytes decoded, header says 65537"}}) {
    expect_failure_after(*damaged, message, frame_20, Bytes(input.begin(), input.begin() + 20 * kChunkBytes));
  }
  // Every cut between two frames is a valid, shorter stream.
  for (const std::size_t end : ends) {
    const Bytes cut(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(end));
    const Bytes decoded = to_bytes(decompress_buffer(view(cut)));
    EXPECT_TRUE(decoded == Bytes(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(decoded.size())));
  }
  const auto [output, stats] = decode_on(packed, 2);
  EXPECT_EQ(stats.units, 32u) << "every frame one unit";
  EXPECT_FALSE(stats.serial_from.has_value());
  EXPECT_EQ(output, input);
}

// ---- lz4's legacy format (`lz4 -l`, the Linux kernel's) ----

// A legacy frame: its magic, then each block of `input` as a size word and an lz4 block.
// block_ends gets the offset after each block (where the stream may end).
Bytes legacy_lz4(const Bytes& input, std::size_t block_bytes, std::vector<std::size_t>* block_ends = nullptr) {
  Bytes out = {0x02, 0x21, 0x4C, 0x18};
  for (std::size_t at = 0; at < input.size(); at += block_bytes) {
    const int length = static_cast<int>(std::min(block_bytes, input.size() - at));
    std::vector<char> packed(static_cast<std::size_t>(LZ4_compressBound(length)));
    const int size = LZ4_compress_default(reinterpret_cast<const char*>(input.data() + at), packed.data(), length,
                                          static_cast<int>(packed.size()));
    EXPECT_GT(size, 0);
    for (int shift = 0; shift < 32; shift += 8) out.push_back(static_cast<std::uint8_t>(size >> shift));
    out.insert(out.end(), packed.begin(), packed.begin() + size);
    if (block_ends) block_ends->push_back(out.size());
  }
  return out;
}

Bytes concatenated(std::initializer_list<const Bytes*> parts) {
  Bytes all;
  for (const Bytes* part : parts) all.insert(all.end(), part->begin(), part->end());
  return all;
}

// Legacy blocks are independent, so each is a unit of its own, decoded on any worker.
// A legacy block of 8 MiB of incompressible data packs to more than the 8 MiB it decodes to (the
// format has no stored blocks): decoded, where a check of its data against the block size refused
// what lz4 -l wrote (a second reader's find).
TEST(Lz4Legacy, ABlockOfIncompressibleDataLongerThanItDecodesToIsRead) {
  constexpr std::size_t kLegacyBlockBytes = 8 * 1024 * 1024;
  const Bytes input = random_bytes(kLegacyBlockBytes + 1000, 82);
  std::vector<std::size_t> ends;
  const Bytes packed = legacy_lz4(input, kLegacyBlockBytes, &ends);
  ASSERT_GT(ends[0] - 8, kLegacyBlockBytes) << "the first block's data is longer than it decodes to";
  for (const int threads : {1, 2}) EXPECT_TRUE(decode_on(packed, threads).output == input) << threads << " threads";
}

TEST(Lz4Legacy, BlocksAreUnitsAndDecodeAlikeOnAnyThreadCount) {
  constexpr std::size_t kBlockBytes = 64 * 1024;
  const Bytes input = text_bytes(40 * kBlockBytes + 77, 81);
  const Bytes packed = legacy_lz4(input, kBlockBytes);
  for (int threads : {1, 2, 8}) {
    const auto [output, stats] = decode_on(packed, threads);
    EXPECT_EQ(output, input) << threads;
    EXPECT_EQ(stats.units, 41u) << threads;
    EXPECT_FALSE(stats.serial_from.has_value());
  }
  // Only the magic: an empty stream, as `lz4 -l` writes for empty input.
  EXPECT_TRUE(to_bytes(decompress_buffer(view(Bytes{0x02, 0x21, 0x4C, 0x18}), {})).empty());
}

// A legacy frame has no end mark: it ends where the input does, or where a size word is one no
// block can have, which is the next frame's magic (legacy or not).
TEST(Lz4Legacy, ConcatenatedWithOtherFramesOfEitherKind) {
  const Bytes first = text_bytes(300000, 82), second = text_bytes(200000, 83), third = text_bytes(1, 84);
  CompressOptions options;
  options.codec = "lz4";
  const Bytes legacy_first = legacy_lz4(first, 100000), framed = to_bytes(compress_buffer(view(second), options)),
              legacy_third = legacy_lz4(third, 100000);
  const Bytes stream = concatenated({&legacy_first, &framed, &legacy_third, &legacy_first});
  const Bytes expected = concatenated({&first, &second, &third, &first});
  for (int threads : {1, 2}) {
    DecompressOptions decode;
    decode.threads = threads;
    EXPECT_EQ(to_bytes(decompress_buffer(view(stream), decode)), expected) << threads;
  }
}

TEST(Lz4Legacy, EveryCutButOneAtABlockEndIsAnError) {
  const Bytes input = text_bytes(3 * 2048 + 100, 85);
  std::vector<std::size_t> ends = {4};  // the magic alone is an empty stream
  const Bytes packed = legacy_lz4(input, 2048, &ends);
  for (std::size_t cut = 0; cut <= packed.size(); ++cut) {
    const Bytes truncated(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(cut));
    const auto decoded = decode_or_corrupt(truncated, "cut at " + std::to_string(cut), {});
    const auto end = std::find(ends.begin(), ends.end(), cut);
    if (end != ends.end()) {
      const std::size_t blocks = static_cast<std::size_t>(end - ends.begin());
      ASSERT_TRUE(decoded.has_value()) << "a cut after block " << blocks << " is a valid stream";
      EXPECT_EQ(*decoded, Bytes(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(
                                                               std::min(input.size(), blocks * 2048))));
    } else {
      EXPECT_FALSE(decoded.has_value()) << "a legacy stream cut at byte " << cut << " was accepted";
    }
  }
}

// With no checksums in the format, a block that does not decode is what is caught: the error
// names its offset, and the blocks before it are written, on any thread count.
TEST(Lz4Legacy, ABadBlockAZeroSizeAndGarbageAfterAreErrorsAtTheirOffset) {
  constexpr std::size_t kBlockBytes = 16 * 1024;
  const Bytes input = text_bytes(8 * kBlockBytes, 86);
  std::vector<std::size_t> ends;
  const Bytes packed = legacy_lz4(input, kBlockBytes, &ends);
  const std::size_t block_5 = ends[4];
  Bytes bad_block = packed;
  // A first token that promises 15 + 255 * 8 literals, more than the block holds.
  std::fill_n(bad_block.begin() + static_cast<std::ptrdiff_t>(block_5 + 4), 9, std::uint8_t{0xFF});
  Bytes zero_size(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(block_5));
  zero_size.insert(zero_size.end(), 4, std::uint8_t{0});
  Bytes garbage(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(block_5));
  const std::string text = "garbage after the stream";
  garbage.insert(garbage.end(), text.begin(), text.end());
  Bytes short_garbage(packed.begin(), packed.begin() + static_cast<std::ptrdiff_t>(block_5));
  short_garbage.insert(short_garbage.end(), text.begin(), text.begin() + 5);  // fewer bytes than a frame header
  for (const auto& [damaged, message] : {std::pair{&bad_block, "corrupt lz4 block"},
                                         std::pair{&zero_size, "corrupt lz4 legacy block: 0 bytes"},
                                         std::pair{&garbage, "trailing garbage"},
                                         std::pair{&short_garbage, "trailing garbage"}}) {
    const bool garbage_after = std::string(message) == "trailing garbage";
    expect_failure_after(*damaged, message, block_5, Bytes(input.begin(), input.begin() + 5 * kBlockBytes),
                         garbage_after ? ErrorKind::kTrailingGarbage : ErrorKind::kCorruptData);
  }
}

// The streaming decoder (which takes over after a frame with linked blocks) reads legacy frames
// too, from pieces of any size, and says where a stream was cut or damaged.
TEST(Lz4Legacy, TheStreamingDecoderReadsThemFromPiecesOfAnySize) {
  const Bytes first = text_bytes(150000, 87), second = text_bytes(90000, 88);
  CompressOptions options;
  options.codec = "lz4";
  std::vector<std::size_t> ends;
  const Bytes legacy_first = legacy_lz4(first, 50000, &ends), framed = to_bytes(compress_buffer(view(second), options));
  const Bytes stream = concatenated({&legacy_first, &framed, &legacy_first});
  const Bytes expected = concatenated({&first, &second, &first});
  const auto codec = CodecRegistry::global().create("lz4");
  const auto decode_in_pieces = [&codec](const Bytes& bytes, std::size_t piece) {
    const auto decoder = codec->make_decoder();
    Bytes out;
    for (std::size_t at = 0; at < bytes.size(); at += piece) {
      decoder->decode(view(bytes).subspan(at, std::min(piece, bytes.size() - at)),
                      [&out](ByteView b) { out.insert(out.end(), b.begin(), b.end()); });
    }
    decoder->finish();
    return out;
  };
  for (std::size_t piece : {1, 3, 4, 5, 4096, 1000000}) {
    EXPECT_EQ(decode_in_pieces(stream, piece), expected) << "pieces of " << piece;
  }
  const auto error_of = [&](const Bytes& bytes) -> std::string {
    try {
      decode_in_pieces(bytes, 7);
    } catch (const Error& e) {
      const bool garbage = std::string(e.what()).find("trailing garbage") != std::string::npos;
      EXPECT_EQ(e.kind(), garbage ? ErrorKind::kTrailingGarbage : ErrorKind::kCorruptData) << e.what();
      return e.what();
    }
    return "no error";
  };
  const Bytes cut_in_block_2(legacy_first.begin(), legacy_first.begin() + static_cast<std::ptrdiff_t>(ends[0] + 10));
  const std::string truncated = fmt::format("the lz4 legacy block starting at byte {} is truncated", ends[0]);
  EXPECT_NE(error_of(cut_in_block_2).find(truncated), std::string::npos) << error_of(cut_in_block_2);
  Bytes garbage = legacy_first;
  for (char c : std::string("garbage")) garbage.push_back(static_cast<std::uint8_t>(c));
  EXPECT_NE(error_of(garbage).find("trailing garbage after the last lz4 frame"), std::string::npos)
      << error_of(garbage);
  Bytes bad_block = legacy_first;
  std::fill_n(bad_block.begin() + static_cast<std::ptrdiff_t>(ends[0] + 4), 9, std::uint8_t{0xFF});
  EXPECT_NE(error_of(bad_block).find(fmt::format("corrupt lz4 legacy block (at byte {})", ends[0])), std::string::npos)
      << error_of(bad_block);
}

TEST(Parallel, AnInFlightLimitOfOnePieceStillDecodesEverything) {
  const Bytes input = text_bytes(2 * 1024 * 1024 + 9, 72);
  CompressOptions options;
  options.codec = "zstd";
  options.codec_options.chunk_bytes = 256 * 1024;
  const Buffer packed = compress_buffer(view(input), options);
  for (std::size_t limit : {1u, 2u}) {
    MemorySource source(packed.view());
    MemorySink sink;
    DecompressOptions decode;
    decode.threads = 2;
    decode.max_pieces_in_flight = limit;
    const DecompressStats stats = decompress(source, sink, decode);
    EXPECT_EQ(to_bytes(sink.buffer()), input) << limit;
    EXPECT_EQ(stats.units, 9u);
  }
}

TEST(Serial, OutputIsTheSameOnAnyThreadCount) {
  // One frame with no content size whose blocks may hold more than a unit (16 MiB): serial.
  const Bytes input = text_bytes(17 * 1024 * 1024 + 3, 70);
  const Bytes packed = single_zstd_frame(input);
  for (int threads : {1, 2, 8}) {
    MemorySource source(view(packed));
    PickySink sink;
    DecompressOptions options;
    options.threads = threads;
    const DecompressStats stats = decompress(source, sink, options);
    EXPECT_EQ(sink.bytes(), input) << threads << " threads";
    EXPECT_EQ(stats.serial_from, 0u);
    EXPECT_EQ(stats.output_bytes, input.size());
  }
}

// A stream cut short: what decoded before the cut is written whatever the thread count, as
// gzip -d writes it (at -j2 the serial decoder's writing thread held up to 4 MiB of it and dropped
// it at the error). Damaged inside: at most what gzip -d writes, and the error.
TEST(Serial, WhatDecodedBeforeACutIsWrittenOnAnyThreadCount) {
  const Bytes input = text_bytes(6 * 1024 * 1024 + 11, 73);
  testing::ScratchDir dir;
  testing::write_file(dir / "input", input);
  ASSERT_EQ(testing::run("gzip -c input > whole.gz", dir.path()).status, 0);
  const Bytes whole = testing::read_file(dir / "whole.gz");
  Bytes flipped = whole;
  flipped[whole.size() / 2] ^= 0x55;
  for (const auto& [what, bad] : std::vector<std::pair<std::string, Bytes>>{
           {"cut", Bytes(whole.begin(), whole.end() - 1000)}, {"flipped", flipped}}) {
    testing::write_file(dir / "bad.gz", bad);
    const auto stock = testing::run("gzip -dc bad.gz 2>/dev/null | wc -c", dir.path());
    const std::size_t gzip_wrote = std::stoul(stock.out);
    ASSERT_GT(gzip_wrote, input.size() / 3) << what;
    for (const int threads : {1, 2}) {
      MemorySource source(view(bad));
      MemorySink sink;
      DecompressOptions options;
      options.threads = threads;
      try {
        decompress(source, sink, options);
        ADD_FAILURE() << what << ": no error";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
      }
      if (what == "cut") {
        EXPECT_EQ(sink.buffer().size(), gzip_wrote) << what << ", " << threads << " threads";
        EXPECT_TRUE(to_bytes(sink.buffer()) ==
                    Bytes(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(sink.buffer().size())));
      } else {
        EXPECT_LE(sink.buffer().size(), gzip_wrote) << what << ", " << threads << " threads";
      }
    }
  }
}

// A member too small to go through the graph, damaged so that inflating it fails (not only its
// CRC-32): what inflated before the fault is written, as gzip -dc and pigz -dc write it, and the
// error names where the fault is. Both were lost: the decoder was given the member in one call,
// whose output an error discarded, and the error named the start of the deflate data (byte 10).
TEST(Serial, WhatInflatedBeforeAFaultInASmallMemberIsWrittenAndTheFaultIsNamed) {
  const Bytes input = text_bytes(20000, 74);
  testing::ScratchDir dir;
  testing::write_file(dir / "input", input);
  ASSERT_EQ(testing::run("gzip -6 -n -c input > whole.gz", dir.path()).status, 0);
  const Bytes whole = testing::read_file(dir / "whole.gz");
  // The first flip from the middle on that makes invalid deflate data, as zlib finds it.
  std::size_t flip = whole.size() / 2;
  std::size_t pigz_wrote = 0;
  for (;; ++flip) {
    ASSERT_LT(flip, whole.size() - 8) << "no flip makes invalid deflate data";
    Bytes bad = whole;
    bad[flip] ^= 0x55;
    testing::write_file(dir / "bad.gz", bad);
    const auto stock = testing::run("pigz -dc bad.gz 2>err | wc -c; cat err", dir.path());
    if (stock.out.find("invalid") == std::string::npos) continue;
    pigz_wrote = std::stoul(stock.out);
    break;
  }
  ASSERT_GT(pigz_wrote, 1000u);
  ASSERT_NE(testing::run("pigz -dc bad.gz > stock 2>/dev/null", dir.path()).status, 0);
  const Bytes stock_prefix = testing::read_file(dir / "stock");
  const Bytes bad = testing::read_file(dir / "bad.gz");
  for (const char* backend : {"isal", "zlib"}) {
    for (const int threads : {1, 2}) {
      SCOPED_TRACE(fmt::format("{}, {} threads", backend, threads));
      MemorySource source(view(bad));
      MemorySink sink;
      DecompressOptions options;
      options.threads = threads;
      options.backends = {{"gzip", backend}};
      try {
        decompress(source, sink, options);
        ADD_FAILURE() << "no error";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
        ASSERT_TRUE(e.offset().has_value()) << e.what();
        EXPECT_GE(*e.offset(), flip) << e.what();
        EXPECT_LE(*e.offset(), flip + 64) << e.what();
      }
      ASSERT_GE(sink.buffer().size(), pigz_wrote);
      const Bytes out = to_bytes(sink.buffer());
      EXPECT_TRUE(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(pigz_wrote)) == stock_prefix);
      EXPECT_LE(out.size(), pigz_wrote + 258) << "at most a match more than zlib's";
    }
    // Decoding straight into an output lent to the decoder (the graph's serial path) alike. Lent
    // less than 64 KiB at a time, ISA-L inflates into a buffer of its own first, and a fault
    // loses what it holds there (4 KiB lent: 4,096 bytes out, not 9,130); the graph lends more.
    CodecOptions codec_options;
    codec_options.backend = backend;
    const auto decoder = CodecRegistry::global().create("gzip", codec_options)->make_decoder();
    KeepingOutput output(64 * 1024, 64 * 1024);
    try {
      decoder->decode_to(view(bad), output);
      decoder->finish();
      ADD_FAILURE() << backend << ": no error";
    } catch (const Error& e) {
      ASSERT_TRUE(e.offset().has_value()) << e.what();
      EXPECT_GE(*e.offset(), flip) << backend << ": " << e.what();
      EXPECT_LE(*e.offset(), flip + 64) << backend << ": " << e.what();
    }
    const Bytes out = output.bytes();
    ASSERT_GE(out.size(), pigz_wrote) << backend;
    EXPECT_TRUE(Bytes(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(pigz_wrote)) == stock_prefix) << backend;
  }
}

TEST(Serial, ASinkThatFailsMidwayStopsTheRunWithItsError) {
  const Bytes input = text_bytes(17 * 1024 * 1024, 71);
  const Bytes packed = single_zstd_frame(input);
  for (int threads : {1, 2, 8}) {
    MemorySource source(view(packed));
    PickySink sink(3 * 1024 * 1024 + 17);
    DecompressOptions options;
    options.threads = threads;
    try {
      decompress(source, sink, options);
      ADD_FAILURE() << "no error with " << threads << " threads";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kIo) << e.what();
      EXPECT_NE(std::string(e.what()).find("No space left"), std::string::npos) << e.what();
    }
    EXPECT_EQ(sink.bytes(), Bytes(input.begin(), input.begin() + static_cast<std::ptrdiff_t>(sink.bytes().size())));
  }
}

// A stream that starts splittable and continues with something that is not goes serial from there.
TEST(Parallel, AStreamSwitchesToSerialWhereItCanNoLongerBeSplit) {
  const Bytes first = text_bytes(300 * 1024, 61), second = text_bytes(200 * 1024, 62);
  CompressOptions independent;
  independent.codec_options.knobs["form"] = "multi-member";
  Bytes packed = to_bytes(compress_buffer(view(first), independent));
  const std::size_t switch_at = packed.size();
  CompressOptions single;
  single.codec_options.knobs["form"] = "single-member";
  const Bytes plain = to_bytes(compress_buffer(view(second), single));  // one pigz-style member
  packed.insert(packed.end(), plain.begin(), plain.end());
  MemorySource source(view(packed));
  MemorySink sink;
  DecompressOptions two_threads;
  two_threads.threads = 2;
  const DecompressStats stats = decompress(source, sink, two_threads);
  Bytes expected = first;
  expected.insert(expected.end(), second.begin(), second.end());
  EXPECT_EQ(to_bytes(sink.buffer()), expected);
  // After the member's 10-byte header, which the splitter reads in case the member can be cut
  // at its sync flushes; it has none far enough apart to make pieces.
  EXPECT_EQ(stats.serial_from, switch_at + 10);
  EXPECT_GT(stats.units, 0u);
  // Damage after the switch is reported at the stream's offsets, not the serial part's.
  packed.push_back('x');
  try {
    decompress_buffer(view(packed));
    ADD_FAILURE() << "trailing garbage accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.detail().find("trailing garbage"), std::string::npos) << e.what();
    EXPECT_EQ(e.offset(), packed.size() - 1) << e.what();
  }
}

using testing::peak_rss_kib;

// Size fields are hints to be checked, never allocations to be made.
TEST(Bombs, AZstdHeaderClaimingATerabyteAllocatesNothingLikeIt) {
  // Single-segment frame, 8-byte content size = 1 TiB, one raw block of 5 bytes.
  Bytes frame = {0x28, 0xb5, 0x2f, 0xfd, 0xE0};
  for (int i = 0; i < 8; ++i) frame.push_back(static_cast<std::uint8_t>((std::uint64_t{1} << 40) >> (8 * i)));
  for (int b : {0x29, 0x00, 0x00, int{'h'}, int{'e'}, int{'l'}, int{'l'}, int{'o'}}) frame.push_back(static_cast<std::uint8_t>(b));
  const long before = peak_rss_kib();
  try {
    decompress_buffer(view(frame));
    ADD_FAILURE() << "a frame claiming 1 TiB with 5 bytes of content was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
  }
  EXPECT_LT(peak_rss_kib() - before, 200 * 1024) << "KiB of peak RSS growth";
}

// A bomb: 512 MiB of zeros in one zstd frame without a content size (a few KB), decoded serially.
Bytes zstd_bomb() {
  ZSTD_CCtx* context = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 0);
  const Bytes zeros(1 << 20, 0);
  Bytes packed(1 << 20);
  std::size_t used = 0;
  for (int i = 0; i < 512; ++i) {
    ZSTD_inBuffer in{zeros.data(), zeros.size(), 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer out{packed.data() + used, packed.size() - used, 0};
      ZSTD_compressStream2(context, &out, &in, ZSTD_e_continue);
      used += out.pos;
    }
  }
  for (;;) {
    ZSTD_inBuffer in{nullptr, 0, 0};
    ZSTD_outBuffer out{packed.data() + used, packed.size() - used, 0};
    const std::size_t left = ZSTD_compressStream2(context, &out, &in, ZSTD_e_end);
    used += out.pos;
    if (left == 0) break;
  }
  ZSTD_freeCCtx(context);
  packed.resize(used);
  return packed;
}

// Counts what it is given without keeping it.
class CountingSink final : public ByteSink {
 public:
  void write(ByteView bytes) override { bytes_ += bytes.size(); }
  const std::string& name() const override { return name_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  std::uint64_t bytes_ = 0;
  std::string name_ = "counter";
};

// 64 MiB of zeros as one ordinary (zlib-made, single-member) gzip stream: decoded serially,
// at -j2 straight into the writing thread's buffers.
Bytes gzip_bomb() {
  z_stream stream{};
  EXPECT_EQ(deflateInit2(&stream, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes zeros(1 << 20, 0);
  Bytes packed(1 << 20);
  for (int i = 0; i < 64; ++i) {
    stream.next_in = zeros.data();
    stream.avail_in = static_cast<uInt>(zeros.size());
    const int flush = i == 63 ? Z_FINISH : Z_NO_FLUSH;
    do {
      stream.next_out = packed.data() + stream.total_out;
      stream.avail_out = static_cast<uInt>(packed.size() - stream.total_out);
      deflate(&stream, flush);
    } while (stream.avail_in > 0 || (flush == Z_FINISH && stream.avail_out == 0));
  }
  packed.resize(stream.total_out);
  deflateEnd(&stream);
  return packed;
}

TEST(Bombs, AnOutputLimitStopsABombAndNothingPastItIsWritten) {
  const Bytes bomb = zstd_bomb();
  ASSERT_LT(bomb.size(), 100u * 1024);
  for (const Bytes& packed : {bomb, gzip_bomb()}) {
    for (int threads : {1, 2}) {
      MemorySource source(view(packed));
      CountingSink sink;
      DecompressOptions options;
      options.threads = threads;
      options.max_output_bytes = 10 * 1024 * 1024 + 5;
      try {
        decompress(source, sink, options);
        ADD_FAILURE() << "no limit error with " << threads << " threads";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kLimit) << e.what();
        EXPECT_NE(std::string(e.what()).find("limit of 10485765 bytes"), std::string::npos) << e.what();
      }
      EXPECT_LE(sink.bytes(), options.max_output_bytes) << threads << " threads";
    }
  }
  // Without a limit it streams through in bounded memory.
  const long before = peak_rss_kib();
  MemorySource source(view(bomb));
  CountingSink sink;
  DecompressOptions options;
  options.threads = 2;
  decompress(source, sink, options);
  EXPECT_EQ(sink.bytes(), 512u << 20);
  EXPECT_LT(peak_rss_kib() - before, 64 * 1024) << "KiB of peak RSS growth for 512 MiB of output";
}

// A stop (Ctrl-C in Python) during a bomb decoded serially: the run ended only once the decoder
// had made all that its piece of input makes (a few KB here; 3 GiB from 109 KB of zstd took 9.6 s
// to stop). It ends within a buffer of output now, at one thread (emit) and two (the writing
// thread's buffers).
TEST(Bombs, AStopEndsASerialDecodeWithinABufferOfOutput) {
  for (const Bytes& packed : {zstd_bomb(), gzip_bomb()}) {
    for (int threads : {1, 2}) {
      std::stop_source stop;
      struct StoppingSink final : ByteSink {
        explicit StoppingSink(std::stop_source& s) : stop(s) {}
        void write(ByteView bytes) override {
          stop.request_stop();
          written += bytes.size();
        }
        const std::string& name() const override { return name_; }
        std::stop_source& stop;
        std::uint64_t written = 0;
        std::string name_ = "stopping";
      } sink(stop);
      MemorySource source(view(packed));
      DecompressOptions options;
      options.threads = threads;
      options.small_inputs_in_caller = false;  // a run with its writing thread at -j2 (the bombs are small)
      options.stop = stop.get_token();
      try {
        decompress(source, sink, options);
        ADD_FAILURE() << "not stopped at " << threads << " threads";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kCancelled) << e.what();
      }
      EXPECT_LE(sink.written, 8u << 20) << threads << " threads";
    }
  }
}

TEST(Bombs, TheLimitAppliesToUnitsDecodedInParallelToo) {
  const Bytes zeros(20 * 1024 * 1024, 0);
  CompressOptions zstd;
  zstd.codec = "zstd";
  const Buffer packed = compress_buffer(view(zeros), zstd);
  MemorySource source(packed.view());
  CountingSink sink;
  DecompressOptions options;
  options.threads = 2;
  options.max_output_bytes = 6 * 1024 * 1024;
  EXPECT_THROW(decompress(source, sink, options), Error);
  EXPECT_LE(sink.bytes(), options.max_output_bytes);
  options.max_output_bytes = zeros.size();  // exactly the output: allowed
  MemorySource again(packed.view());
  CountingSink all;
  decompress(again, all, options);
  EXPECT_EQ(all.bytes(), zeros.size());
}

// The most a kilobyte can expand in these formats: a hand-made zstd frame of blocks that each
// repeat one byte 128 KiB times (4 bytes a block), 1 KB in all, decoding to 31.75 MiB.
TEST(Bombs, AKilobyteOfRepeatedByteBlocksStreamsAndMeetsTheLimit) {
  Bytes frame = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38};  // no content size; 128 KiB window
  const int blocks = 254;
  for (int i = 0; i < blocks; ++i) {
    const std::uint32_t header = (i == blocks - 1 ? 1u : 0u) | (1u << 1) | (131072u << 3);  // RLE
    for (int b = 0; b < 3; ++b) frame.push_back(static_cast<std::uint8_t>(header >> (8 * b)));
    frame.push_back('z');
  }
  ASSERT_LE(frame.size(), 1024u);
  for (int threads : {1, 2}) {
    MemorySource source(view(frame));
    CountingSink sink;
    DecompressOptions options;
    options.threads = threads;
    decompress(source, sink, options);
    EXPECT_EQ(sink.bytes(), std::uint64_t{blocks} * 131072) << threads << " threads";
    MemorySource again(view(frame));
    CountingSink limited;
    options.max_output_bytes = 1 << 20;
    EXPECT_THROW(decompress(again, limited, options), Error) << threads << " threads";
    EXPECT_LE(limited.bytes(), options.max_output_bytes) << threads << " threads";
  }
}

TEST(Bombs, GzipSizeFieldsThatLieAreCaughtOrIgnored) {
  const Bytes input = text_bytes(100 * 1024, 63);
  CompressOptions independent;
  independent.codec_options.knobs["form"] = "multi-member";
  const Bytes member = to_bytes(compress_buffer(view(input), independent));
  ASSERT_EQ(member[12], 'S');
  // Claims 4 GiB: too big to trust, so the member is inflated as a stream (CRC and ISIZE decide).
  Bytes huge = member;
  for (int i = 20; i < 24; ++i) huge[i] = 0xFF;
  const long before = peak_rss_kib();
  EXPECT_EQ(to_bytes(decompress_buffer(view(huge))), input);
  EXPECT_LT(peak_rss_kib() - before, 200 * 1024) << "KiB of peak RSS growth";
  // Claims 10 bytes: the member inflates to more than that, so the field lies; the member is
  // then inflated as gzip inflates any (its CRC-32 and ISIZE decide), on one thread and two.
  Bytes small = member;
  small[20] = 10;
  small[21] = small[22] = small[23] = 0;
  for (int threads : {1, 2}) {
    DecompressOptions options;
    options.threads = threads;
    EXPECT_EQ(to_bytes(decompress_buffer(view(small), options)), input) << threads << " threads";
  }
  // And the data itself corrupt: the error is the data's.
  Bytes corrupt = small;
  corrupt[corrupt.size() - 8] ^= 1;  // the CRC-32
  EXPECT_THROW(decompress_buffer(view(corrupt)), Error);
}

// Including zeros, which are no zstd frame (only skippable frames in view are taken for zstd).
TEST(Detect, InputThatIsNotCompressedIsRejected) {
  for (const Bytes& input : {Bytes{}, to_bytes(std::string("plain text, not compressed")), Bytes{0x1f}, Bytes(16, 0)}) {
    try {
      decompress_buffer(view(input));
      ADD_FAILURE() << "accepted " << input.size() << " bytes of non-compressed data";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
      EXPECT_NE(e.detail().find(input.empty() ? "empty input" : "not compressed data in a known format"),
                std::string::npos)
          << e.what();
    }
  }
}

// A file larger than 1 MiB is mapped, and its format told from the mapping, not from a read: the
// magic is found behind a skippable frame, plain text is rejected, and a file read from the middle
// (a stream that starts where the descriptor was left) starts there.
TEST(Detect, TheFormatOfAMappedFileIsToldFromTheMapping) {
  const testing::ScratchDir dir;
  const Bytes input = testing::random_bytes(1536 * 1024, 6);  // stays larger than 1 MiB compressed
  for (const std::string codec : {"zstd", "lz4"}) {
    for (const std::uint32_t skipped : {16u, 200u * 1024u}) {
      Bytes stream = {0x50, 0x2A, 0x4D, 0x18};
      for (int b = 0; b < 4; ++b) stream.push_back(static_cast<std::uint8_t>(skipped >> (8 * b)));
      stream.resize(stream.size() + skipped, 0x5A);
      CompressOptions options;
      options.codec = codec;
      const Bytes packed = to_bytes(compress_buffer(view(input), options));
      stream.insert(stream.end(), packed.begin(), packed.end());
      const auto path = dir / (codec + std::to_string(skipped));
      testing::write_file(path, stream);
      FdSource source(path.string());
      MemorySink sink;
      const DecompressStats stats = decompress(source, sink);
      EXPECT_EQ(stats.codec, codec) << skipped;
      EXPECT_EQ(to_bytes(sink.buffer()), input) << codec << " after " << skipped << " skipped bytes";
    }
  }
  // Behind 100 bytes that the caller has read already.
  CompressOptions options;
  options.codec = "lz4";
  Bytes behind(100, 'x');
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  behind.insert(behind.end(), packed.begin(), packed.end());
  testing::write_file(dir / "behind", behind);
  FdSource from_100((dir / "behind").string());
  Bytes skipped(100);
  ASSERT_EQ(from_100.read_full(skipped.data(), skipped.size()), 100u);
  MemorySink decoded;
  decompress(from_100, decoded);
  EXPECT_EQ(to_bytes(decoded.buffer()), input) << "from byte 100";

  testing::write_file(dir / "plain", input);
  FdSource plain((dir / "plain").string());
  MemorySink sink;
  try {
    decompress(plain, sink);
    ADD_FAILURE() << "accepted a file of plain text";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
    EXPECT_NE(e.detail().find("not compressed data in a known format"), std::string::npos) << e.what();
  }
}

TEST(Detect, AForcedCodecOverridesDetection) {
  const Bytes input = text_bytes(5000, 5);
  CompressOptions options;
  options.codec = "lz4";
  const Buffer packed = compress_buffer(view(input), options);
  DecompressOptions as_gzip;
  as_gzip.codec = "gzip";
  EXPECT_THROW(decompress_buffer(packed.view(), as_gzip), Error);
  DecompressOptions as_lz4;
  as_lz4.codec = "lz4";
  EXPECT_EQ(to_bytes(decompress_buffer(packed.view(), as_lz4)), input);
}

// ---- Headers and frames the other tools take ----

// gzip reads names and comments of any length (and so FHCRC over megabytes); the streaming
// decoder passes over them without holding them, from pieces of any size.
TEST(GzipHeader, NamesAndCommentsOfMegabytesAreReadFromPiecesOfAnySize) {
  const Bytes input = text_bytes(300 * 1024, 21);
  const std::string name(3 << 20, 'N'), comment(2 << 20, 'C'), extra = "xx\x02\x00hi";
  const Bytes packed = testing::gzip_with_header_fields(input, extra, name, comment);
  Bytes twice = packed;
  twice.insert(twice.end(), packed.begin(), packed.end());
  Bytes expected = input;
  expected.insert(expected.end(), input.begin(), input.end());
  const auto codec = CodecRegistry::global().create("gzip");
  for (std::size_t piece : {1000003, 4096, 7}) {
    SCOPED_TRACE(piece);
    const auto decoder = codec->make_decoder();
    Bytes out;
    for (std::size_t at = 0; at < twice.size(); at += piece) {
      decoder->decode(view(twice).subspan(at, std::min(piece, twice.size() - at)),
                      [&out](ByteView b) { out.insert(out.end(), b.begin(), b.end()); });
    }
    decoder->finish();
    EXPECT_EQ(out, expected);
  }
  EXPECT_EQ(to_bytes(decompress_buffer(view(twice))), expected);
  // The header CRC covers the name: one byte of it changed is caught, at the CRC.
  Bytes bad = packed;
  bad[10 + 2 + extra.size() + 1000] = 'M';
  try {
    decompress_buffer(view(bad));
    ADD_FAILURE() << "a wrong header CRC was not caught";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruptData);
    EXPECT_NE(e.detail().find("header crc mismatch"), std::string::npos) << e.what();
    EXPECT_EQ(e.offset(), 10 + 2 + extra.size() + name.size() + 1 + comment.size() + 1) << e.what();
  }
}

// lz4 -d takes a skippable frame cut short at the end of the input (its header complete), and so
// does sluice, on the parallel and the serial path; a header cut short is truncation, named at
// the frame's start.
TEST(Lz4Skippable, AFrameCutShortAtTheEndIsTakenAsLz4TakesIt) {
  const Bytes input = text_bytes(500 * 1024, 22);
  CompressOptions options;
  options.codec = "lz4";
  options.codec_options.chunk_bytes = 64 * 1024;
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  Bytes linked;  // the lz4 tool's linked blocks: the streaming decoder
  {
    LZ4F_preferences_t preferences{};
    preferences.frameInfo.blockMode = LZ4F_blockLinked;
    preferences.frameInfo.blockSizeID = LZ4F_max64KB;
    linked.resize(LZ4F_compressFrameBound(input.size(), &preferences));
    linked.resize(LZ4F_compressFrame(linked.data(), linked.size(), input.data(), input.size(), &preferences));
  }
  const Bytes skippable_header = {0x50, 0x2a, 0x4d, 0x18, 0x00, 0x01, 0x00, 0x00};
  for (const Bytes* stream : std::initializer_list<const Bytes*>{&packed, &linked}) {
    for (std::size_t kept : {8, 11}) {  // the header, and three of its 256 bytes
      Bytes cut = *stream;
      cut.insert(cut.end(), skippable_header.begin(), skippable_header.end());
      cut.insert(cut.end(), kept - 8, std::uint8_t{'s'});
      for (int threads : {1, 2}) {
        DecompressOptions decode;
        decode.threads = threads;
        EXPECT_EQ(to_bytes(decompress_buffer(view(cut), decode)), input) << kept << " bytes, " << threads << " threads";
      }
    }
    Bytes short_header = *stream;
    short_header.insert(short_header.end(), skippable_header.begin(), skippable_header.begin() + 6);
    const std::string message = fmt::format("the lz4 frame starting at byte {} is truncated", stream->size());
    if (stream == &packed) {
      expect_failure_after(short_header, message, stream->size() + 6, input);
      continue;
    }
    try {  // serial decoding: what was written before the error is not promised
      decompress_buffer(view(short_header));
      ADD_FAILURE() << "a cut skippable frame header was taken";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace sluice
