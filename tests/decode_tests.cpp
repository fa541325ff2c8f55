// Decoder robustness through the library: truncation at every offset, every single-bit flip,
// trailing garbage and non-compressed input. A damaged stream must either fail with a
// kCorruptData error or (for bytes that carry no meaning, like gzip's MTIME) decode to exactly
// the original: never a crash, a hang, or wrong output without an error.
#include <gtest/gtest.h>
#include <zstd.h>

#include <set>

#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

using testing::Bytes;
using testing::text_bytes;
using testing::to_bytes;
using testing::view;

struct Packed {
  Bytes input;
  Bytes packed;
};

// Three chunks of 4 KiB and a short one: small enough to try every byte.
Packed packed_sample(const std::string& codec) {
  Packed sample;
  sample.input = text_bytes(3 * 4096 + 1000, 21);
  CompressOptions options;
  options.codec = codec;
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

// Decodes `bytes`; returns the output, or nothing if the decoder reported corrupt data.
// Any other outcome fails the test.
std::optional<Bytes> decode_or_corrupt(const Bytes& bytes, const std::string& what) {
  try {
    return to_bytes(decompress_buffer(view(bytes)));
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << what << ": " << e.what();
    EXPECT_TRUE(e.offset().has_value()) << what << ": no offset in " << e.what();
    return std::nullopt;
  }
}

class Damaged : public ::testing::TestWithParam<std::string> {};

TEST_P(Damaged, EveryTruncationIsAnError) {
  const auto sample = packed_sample(GetParam());
  const auto frame_ends = zstd_frame_ends(sample.packed);
  for (std::size_t cut = 0; cut < sample.packed.size(); ++cut) {
    const Bytes truncated(sample.packed.begin(), sample.packed.begin() + static_cast<std::ptrdiff_t>(cut));
    const auto decoded = decode_or_corrupt(truncated, "cut at " + std::to_string(cut));
    if (GetParam() == "zstd" && frame_ends.count(cut)) {
      ASSERT_TRUE(decoded.has_value()) << "a cut at a frame end is a valid stream";
      EXPECT_EQ(*decoded, Bytes(sample.input.begin(), sample.input.begin() + static_cast<std::ptrdiff_t>(decoded->size())));
    } else {
      EXPECT_FALSE(decoded.has_value()) << GetParam() << " accepted a stream cut at byte " << cut;
    }
  }
}

TEST_P(Damaged, EveryBitFlipIsCaughtOrHarmless) {
  const auto sample = packed_sample(GetParam());
  std::size_t caught = 0;
  for (std::size_t at = 0; at < sample.packed.size(); ++at) {
    for (std::uint8_t bit : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
      Bytes flipped = sample.packed;
      flipped[at] ^= bit;
      const auto decoded = decode_or_corrupt(flipped, "flip at " + std::to_string(at));
      if (decoded) {
        EXPECT_EQ(*decoded, sample.input) << GetParam() << ": bit flip at byte " << at << " changed the output silently";
      } else {
        ++caught;
      }
    }
  }
  // Nearly every byte matters; only a few header fields (gzip MTIME, XFL, OS) do not.
  EXPECT_GT(caught, sample.packed.size());
}

TEST_P(Damaged, TrailingGarbageIsNamedAsSuch) {
  auto sample = packed_sample(GetParam());
  const std::size_t end = sample.packed.size();
  for (const std::string& garbage : std::vector<std::string>{"garbage after the stream", "x", std::string(16, '\0')}) {
    Bytes bytes = sample.packed;
    bytes.insert(bytes.end(), garbage.begin(), garbage.end());
    try {
      decompress_buffer(view(bytes));
      ADD_FAILURE() << GetParam() << " accepted trailing garbage of " << garbage.size() << " bytes";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorruptData);
      if (garbage.size() >= 4) {
        EXPECT_NE(e.detail().find("trailing garbage"), std::string::npos) << e.what();
        EXPECT_EQ(e.offset(), end) << e.what();
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
  EXPECT_EQ(to_bytes(decompress_buffer(view(twice))), expected);
}

INSTANTIATE_TEST_SUITE_P(Codecs, Damaged, ::testing::Values("gzip", "zstd", "lz4"));

TEST(Detect, InputThatIsNotCompressedIsRejected) {
  for (const Bytes& input : {Bytes{}, to_bytes(std::string("plain text, not compressed")), Bytes{0x1f}}) {
    try {
      decompress_buffer(view(input));
      ADD_FAILURE() << "accepted " << input.size() << " bytes of non-compressed data";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
    }
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

}  // namespace
}  // namespace sluice
