// Codec tests through the library: round trips at chunk-boundary sizes for every codec and a
// spread of levels, the gzip member layout, option validation and the registry.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "codecs/deflate_engines.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/deflate.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/parts.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

using testing::Bytes;
using testing::random_bytes;
using testing::raw_deflate;
using testing::text_bytes;
using testing::to_bytes;
using testing::view;

// Compresses and decompresses; a backend named in the options decodes too.
Bytes round_trip(const Bytes& input, const CompressOptions& options) {
  const Buffer packed = compress_buffer(view(input), options);
  DecompressOptions decompress;
  if (!options.codec_options.backend.empty()) decompress.backends[options.codec] = options.codec_options.backend;
  return to_bytes(decompress_buffer(packed.view(), decompress));
}

struct RoundTripCase {
  std::string codec;
  int level;
  std::size_t chunk_bytes;
  std::string form = {};  // gzip's form knob; empty: the default
  std::string backend = {};
};

std::string form_name(const std::string& form) { return form.empty() ? "default" : form; }

void PrintTo(const RoundTripCase& c, std::ostream* os) {
  *os << c.codec << " level " << c.level << " chunk " << c.chunk_bytes;
  if (c.codec == "gzip") *os << " " << form_name(c.form) << " " << (c.backend.empty() ? "auto" : c.backend);
}

class RoundTrip : public ::testing::TestWithParam<RoundTripCase> {};

CompressOptions options_of(const RoundTripCase& param) {
  CompressOptions options;
  options.codec = param.codec;
  options.codec_options = {param.level, param.chunk_bytes, {}, param.backend};
  if (!param.form.empty()) options.codec_options.knobs["form"] = param.form;
  options.threads = 2;
  return options;
}

// Sizes around chunk boundaries, on compressible and incompressible data.
TEST_P(RoundTrip, EdgeSizesBothDataKinds) {
  const auto& param = GetParam();
  const std::size_t chunk = param.chunk_bytes;
  const CompressOptions options = options_of(param);
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, chunk - 1, chunk, chunk + 1, 2 * chunk, 7 * chunk + 123}) {
    for (bool compressible : {true, false}) {
      const Bytes input = compressible ? text_bytes(size, size + 1) : random_bytes(size, size + 1);
      EXPECT_EQ(round_trip(input, options), input)
          << param.codec << " level " << param.level << " size " << size << (compressible ? " text" : " random");
    }
  }
}

// A stream compressed in parts (sluice/parts.h: on other machines, by sluice.dask) is byte for
// byte the graph's, for parts of one chunk and of several, with and without a name to record.
TEST_P(RoundTrip, PartsMakeTheGraphsBytes) {
  const auto& param = GetParam();
  const std::size_t chunk = param.chunk_bytes;
  const CompressOptions options = options_of(param);
  const StreamInfo named{"data.csv", 1700000000};
  for (std::size_t size : {std::size_t{0}, chunk - 1, 2 * chunk + 123}) {
    const Bytes input = text_bytes(size, size + 3);
    for (const StreamInfo& info : {StreamInfo{}, named}) {
      MemorySource source(view(input));
      MemorySink sink;
      compress(source, sink, options, info);
      for (std::size_t part_chunks : {std::size_t{1}, std::size_t{2}}) {
        Buffer out = stream_header(options, info);
        std::vector<ChunkRecord> records;
        std::size_t at = 0;
        do {
          const std::size_t length = std::min(part_chunks * chunk, input.size() - at);
          const ByteView history = view(input).subspan(0, at);
          const bool last = at + length == input.size();
          const CompressedPart part = compress_part(history, view(input).subspan(at, length), last, options);
          // The same part, chunk by chunk (as a worker writes it to storage).
          Buffer emitted;
          std::size_t pieces = 0;
          const std::vector<ChunkRecord> chunks =
              compress_part(history, view(input).subspan(at, length), last, options, [&](ByteView bytes) {
                emitted.append(bytes);
                ++pieces;
              });
          EXPECT_EQ(to_bytes(emitted), to_bytes(part.bytes));
          EXPECT_EQ(pieces, chunks.size());
          ASSERT_EQ(chunks.size(), part.chunks.size());
          for (std::size_t i = 0; i < chunks.size(); ++i) {
            EXPECT_EQ(chunks[i].output_bytes, part.chunks[i].output_bytes);
            EXPECT_EQ(chunks[i].check, part.chunks[i].check);
          }
          out.append(part.bytes.view());
          records.insert(records.end(), part.chunks.begin(), part.chunks.end());
          at += length;
        } while (at < input.size());
        out.append(stream_trailer(options, info, records).view());
        EXPECT_EQ(to_bytes(out), to_bytes(sink.buffer()))
            << "size " << size << ", parts of " << part_chunks << " chunks, name '" << info.name << "'";
      }
    }
  }
}

// Fills the stack below the caller's frame, where the next call's locals will be, with 16-bit
// words of `value`: a small one reads as a plausible count or size in a field left unset.
[[gnu::noinline]] void soil_stack(std::uint16_t value) {
  volatile std::uint16_t area[256 * 1024];
  for (auto& word : area) word = value;
}

// The bytes depend on the input and options alone, not on what the stack held before. ISA-L's
// stateless deflate reads a field its init leaves unset (the window size, in 2.30): from a local
// stream it took a smaller window where the stack held a small number, and the bytes of a run
// differed from the next one's.
TEST_P(RoundTrip, SameBytesWhateverTheStackHeld) {
  const auto& param = GetParam();
  const CompressOptions options = options_of(param);
  const Bytes input = text_bytes(2 * param.chunk_bytes + 77, 11);
  std::vector<Bytes> made;
  for (const std::uint16_t value : {std::uint16_t{0}, std::uint16_t{9}, std::uint16_t{0x5A5A}}) {
    soil_stack(value);
    made.push_back(to_bytes(compress_part({}, view(input), true, options).bytes));
  }
  EXPECT_EQ(made[0], made[1]) << "after a stack of 9s";
  EXPECT_EQ(made[0], made[2]) << "after a stack of 0x5A5As";
}

// A chunk's bytes do not depend on which worker's deflater made it: the engines' state of several
// workers lives at several addresses. ISA-L 2.30's levels 1 and 2 gave other (valid) bytes for
// the same input from a stream at another address, about 1 chunk in 120 of 123 bytes, so that a
// run's output depended on which thread took which chunk (deflate_isal.cpp).
TEST(DeflateEngines, SameBytesFromEveryWorkersDeflater) {
  using codecs::ChunkDeflater;
  using codecs::DeflateEngine;
  const auto make = [](DeflateEngine engine, int level) {
    switch (engine) {
      case DeflateEngine::kZlib:
        return codecs::make_zlib_chunk_deflater(level);
      case DeflateEngine::kLibdeflate:
        return codecs::make_libdeflate_chunk_deflater(level);
      case DeflateEngine::kIsal:
        break;
    }
    return codecs::make_isal_chunk_deflater(level);
  };
  const Bytes text = text_bytes(512 * 1024, 5);
  for (const DeflateEngine engine : {DeflateEngine::kZlib, DeflateEngine::kLibdeflate, DeflateEngine::kIsal}) {
    for (const int level : {1, 2, 6}) {
      std::vector<std::unique_ptr<ChunkDeflater>> workers;
      for (int i = 0; i < 6; ++i) workers.push_back(make(engine, level));
      int differing = 0;
      for (std::size_t n = 0; n < 800; ++n) {
        // Mostly small chunks (where ISA-L's levels 1 and 2 differed most), every 100th 64 KiB.
        const std::size_t size = n % 100 == 99 ? 64 * 1024 : 40 + (n * 37) % 400;
        const std::size_t at = (n * 7919) % (text.size() - size);
        const ByteView input{text.data() + at, size};
        const bool final = n % 2 == 0;
        std::vector<std::uint8_t> first(workers[0]->bound(size));
        first.resize(workers[0]->deflate(input, first, final));
        for (std::size_t w = 1; w < workers.size(); ++w) {
          std::vector<std::uint8_t> out(workers[w]->bound(size));
          out.resize(workers[w]->deflate(input, out, final));
          if (out != first && differing++ < 3) {
            ADD_FAILURE() << codecs::engine_name(engine) << " level " << level << ": " << size << " bytes at " << at
                          << (final ? " (final)" : "") << " gave " << out.size() << " bytes from worker " << w << ", "
                          << first.size() << " from worker 0";
          }
        }
      }
      EXPECT_EQ(differing, 0) << codecs::engine_name(engine) << " level " << level;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Codecs, RoundTrip,
    ::testing::Values(
        // 16 KiB chunks are smaller than deflate's 32 KiB window: history spans several chunks.
        RoundTripCase{"gzip", 1, 16 * 1024, "single-member"}, RoundTripCase{"gzip", 6, 64 * 1024, "single-member"},
        RoundTripCase{"gzip", 9, 64 * 1024, "single-member"},
        // Independent chunks (the default form) with each engine picked by default or by name.
        RoundTripCase{"gzip", 1, 16 * 1024}, RoundTripCase{"gzip", 6, 64 * 1024},
        RoundTripCase{"gzip", 9, 64 * 1024, "independent"}, RoundTripCase{"gzip", 6, 16 * 1024, "independent", "zlib"},
        RoundTripCase{"gzip", 2, 16 * 1024, "independent", "isal"},
        // One member per chunk, and BGZF (whose chunk size is its own).
        RoundTripCase{"gzip", 1, 16 * 1024, "multi-member"}, RoundTripCase{"gzip", 9, 64 * 1024, "multi-member"},
        RoundTripCase{"gzip", 6, 65280, "bgzf"}, RoundTripCase{"gzip", 6, 64 * 1024, "", "zlib"},
        RoundTripCase{"gzip", 1, 16 * 1024, "", "libdeflate"}, RoundTripCase{"gzip", 9, 64 * 1024, "", "libdeflate"},
        RoundTripCase{"gzip", 1, 64 * 1024, "", "isal"}, RoundTripCase{"gzip", 3, 16 * 1024, "", "isal"},
        RoundTripCase{"gzip", 6, 64 * 1024, "single-member", "zlib"}, RoundTripCase{"zstd", 1, 64 * 1024},
        RoundTripCase{"zstd", 3, 16 * 1024}, RoundTripCase{"zstd", 19, 64 * 1024}, RoundTripCase{"lz4", 1, 64 * 1024},
        RoundTripCase{"lz4", 3, 16 * 1024}, RoundTripCase{"lz4", 12, 64 * 1024},
        // lz4 chunks bigger than its largest block (4 MiB) become several blocks.
        RoundTripCase{"lz4", 1, 5 * 1024 * 1024}),
    [](const auto& test) {
      const auto& c = test.param;
      std::string name = fmt::format(
          "{}_level{}_chunk{}k{}", c.codec, c.level, c.chunk_bytes / 1024,
          c.codec == "gzip" ? fmt::format("_{}_{}", form_name(c.form), c.backend.empty() ? "auto" : c.backend) : "");
      std::replace(name.begin(), name.end(), '-', '_');
      return name;
    });

TEST(RoundTrip, EveryLevelOfEveryCodec) {
  const Bytes input = text_bytes(100 * 1024, 7);
  for (const auto& name : CodecRegistry::global().names()) {
    const auto info = *CodecRegistry::global().find(name);
    // Every level from -5 up; of zstd's negative levels (its --fast=N, down to ZSTD_minCLevel(),
    // -131072: a loop over all of them took 20 s, and 170 s under ASan), the lowest and a middle one.
    std::vector<int> levels;
    if (info.min_level < -5) levels = {info.min_level, info.min_level / 2};
    for (int level = std::max(info.min_level, -5); level <= info.max_level; ++level) levels.push_back(level);
    for (const int level : levels) {
      CompressOptions options;
      options.codec = name;
      options.codec_options.level = level;
      options.codec_options.chunk_bytes = 32 * 1024;
      EXPECT_EQ(round_trip(input, options), input) << name << " level " << level;
    }
  }
}

// What zlib's one-shot gzip inflate (a browser's, an HTTP client's) makes of `packed`: the first
// member's data; the test fails if that is not the whole of `packed` or its checks fail.
Bytes inflate_first_member(const Bytes& packed, std::size_t expected_size) {
  z_stream stream{};
  EXPECT_EQ(inflateInit2(&stream, 15 + 16), Z_OK);
  Bytes out(expected_size + 1);
  stream.next_in = const_cast<Bytef*>(packed.data());
  stream.avail_in = static_cast<uInt>(packed.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(inflate(&stream, Z_FINISH), Z_STREAM_END);  // CRC-32 and ISIZE checked here
  EXPECT_EQ(stream.avail_in, 0u) << "more than one member";
  out.resize(stream.total_out);
  inflateEnd(&stream);
  return out;
}

// decompress_buffer allocates the output once where the stream records its size (sluice's gzip
// forms, zstd; not lz4's one frame): the buffer it returns has the size's room (rounded up to a
// huge page), where growing it as the output came would have copied it into new memory several
// times (and ended with room for 10 or 16 MiB here).
TEST(DecompressBuffer, AllocatesTheSizeAStreamRecordsOnce) {
  constexpr std::size_t kHugePage = 2 * 1024 * 1024;
  for (const std::size_t size : {std::size_t{7 * 1024 * 1024 + 1}, std::size_t{13 * 1024 * 1024 + 1}}) {
    const Bytes input = text_bytes(size, 9);
    for (const auto& [codec, form] : std::vector<std::pair<std::string, std::string>>{
             {"gzip", "independent"}, {"gzip", "multi-member"}, {"gzip", "bgzf"}, {"zstd", ""}}) {
      CompressOptions options;
      options.codec = codec;
      if (!form.empty()) options.codec_options.knobs["form"] = form;
      if (form != "bgzf") options.codec_options.chunk_bytes = 256 * 1024;
      const Buffer packed = compress_buffer(view(input), options);
      const Buffer output = decompress_buffer(packed.view());
      EXPECT_EQ(to_bytes(output), input) << codec << " " << form;
      EXPECT_EQ(output.capacity(), (size + kHugePage - 1) / kHugePage * kHugePage)
          << codec << " " << form << " " << size;
    }
  }
}

// A gzip stream of another tool's records no size but its last member's ISIZE, exact for one
// member under 4 GiB: decompress_buffer allocates that once too (it grew the output as it came:
// pigz's stream of the Silesia tar took 1.8x the time of decoding it into a counting sink).
TEST(DecompressBuffer, AllocatesWhatAGzipMembersSizeFieldSays) {
  constexpr std::size_t kHugePage = 2 * 1024 * 1024;
  for (const std::size_t size : {std::size_t{7 * 1024 * 1024 + 1}, std::size_t{13 * 1024 * 1024 + 1}}) {
    const Bytes input = text_bytes(size, 9);
    CompressOptions single;
    single.codec_options.knobs["form"] = "single-member";
    for (const auto& [made_by, packed] : std::vector<std::pair<std::string, Bytes>>{
             {"zlib", testing::gzip_with_header_fields(input, "", "", "")},
             {"sluice --single-member", to_bytes(compress_buffer(view(input), single))}}) {
      ASSERT_FALSE(
          CodecRegistry::global().create("gzip", CodecOptions{})->describe_stream(view(packed)).uncompressed_bytes)
          << made_by << ": a size recorded, not guessed";
      const Buffer output = decompress_buffer(view(packed));
      EXPECT_EQ(to_bytes(output), input) << made_by;
      EXPECT_EQ(output.capacity(), (size + kHugePage - 1) / kHugePage * kHugePage) << made_by << " " << size;
    }
  }
  // An ISIZE that claims more than deflate can make of the member (1,032 to 1) is believed no
  // further: a small hostile input reserves little.
  Bytes lying = testing::gzip_with_header_fields(text_bytes(1000, 3), "", "", "");
  for (std::size_t i = 0; i < 4; ++i) lying[lying.size() - 4 + i] = 0xFF;
  const auto facts = CodecRegistry::global().create("gzip", CodecOptions{})->describe_stream(view(lying));
  ASSERT_TRUE(facts.likely_uncompressed_bytes.has_value());
  EXPECT_LE(*facts.likely_uncompressed_bytes, 1032 * lying.size());
  EXPECT_THROW(decompress_buffer(view(lying)), Error);
}

// What a stream records about itself is read without throwing whatever its header holds (the
// decoder reports what is wrong): a bad method, reserved flags or a bad header CRC once made
// `sluice -l` abort on an exception of the gzip reader's own.
TEST(Gzip, AStreamsFactsAreReadWhateverItsHeaderHolds) {
  const Bytes input = text_bytes(200 * 1024, 5);
  const auto gzip = CodecRegistry::global().create("gzip", CodecOptions{});
  for (const std::string form : {"independent", "multi-member", "bgzf"}) {
    CompressOptions options;
    options.codec_options.knobs["form"] = form;
    const Bytes packed = to_bytes(compress_buffer(view(input), options));
    ASSERT_TRUE(gzip->describe_stream(view(packed)).uncompressed_bytes.has_value()) << form;
    for (const auto& [at, value] : std::vector<std::pair<std::size_t, std::uint8_t>>{{2, 7}, {3, 0xE4}, {3, 0x06}}) {
      Bytes damaged = packed;
      damaged[at] = value;  // method 7; reserved flags; FHCRC with no such CRC
      StreamFacts facts;
      EXPECT_NO_THROW(facts = gzip->describe_stream(view(damaged))) << form << ", byte " << at;
      EXPECT_FALSE(facts.uncompressed_bytes.has_value()) << form << ", byte " << at;
      EXPECT_NO_THROW(gzip->recorded_info(view(damaged))) << form << ", byte " << at;
      EXPECT_THROW(decompress_buffer(view(damaged)), Error) << form << ", byte " << at;
    }
  }
}

// A default-form member followed by another writer's member that was flushed before its end (a
// sync flush, then an empty final block: gzip.open appending, flushed, closed) is not one member
// of short chunks: its size is the two members', or none (decoded), never the last ISIZE alone.
TEST(Gzip, AnAppendedFlushedMemberIsNotTakenForShortChunks) {
  const Bytes first = text_bytes(200 * 1024, 10);
  const Bytes second = text_bytes(5000, 11);
  CompressOptions options;
  options.codec_options.chunk_bytes = 64 * 1024;
  Bytes stream = to_bytes(compress_buffer(view(first), options));
  z_stream z{};
  ASSERT_EQ(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes member(second.size() + 1024);
  z.next_in = const_cast<Bytef*>(second.data());
  z.avail_in = static_cast<uInt>(second.size());
  z.next_out = member.data();
  z.avail_out = static_cast<uInt>(member.size());
  ASSERT_EQ(deflate(&z, Z_SYNC_FLUSH), Z_OK);
  ASSERT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  member.resize(z.total_out);
  deflateEnd(&z);
  stream.insert(stream.end(), member.begin(), member.end());
  const auto facts = CodecRegistry::global().create("gzip", CodecOptions{})->describe_stream(view(stream));
  if (facts.uncompressed_bytes) {
    EXPECT_EQ(*facts.uncompressed_bytes, first.size() + second.size());
  }
  Bytes both = first;
  both.insert(both.end(), second.begin(), second.end());
  EXPECT_EQ(to_bytes(decompress_buffer(view(stream))), both);
}

// The single-member form is one member, like pigz: one header, zlib's own single-stream inflate
// (which stops at the first member's end) decodes all of it, and CRC and ISIZE are right.
TEST(Gzip, SingleMemberFormMakesOneMemberThatZlibInflatesInOnePass) {
  const Bytes input = text_bytes(10 * 64 * 1024 + 99, 3);
  CompressOptions options;
  options.codec_options.chunk_bytes = 64 * 1024;
  options.codec_options.knobs["form"] = "single-member";
  const Buffer packed = compress_buffer(view(input), options);
  EXPECT_EQ(inflate_first_member(to_bytes(packed), input.size()), input);
}

TEST(Gzip, SingleMemberHeaderRecordsNameAndTimeOnlyWhenGiven) {
  CompressOptions options;
  options.codec_options.knobs["form"] = "single-member";
  MemorySource source({});
  MemorySink sink;
  compress(source, sink, options, StreamInfo{"report.csv", 1700000000});
  const Bytes named = to_bytes(sink.buffer());
  ASSERT_GE(named.size(), 21u);
  EXPECT_EQ(named[3], 0x08) << "FNAME flag";
  EXPECT_EQ(named[4] | named[5] << 8 | named[6] << 16 | static_cast<std::uint32_t>(named[7]) << 24, 1700000000u);
  EXPECT_EQ(std::string(named.begin() + 10, named.begin() + 20), "report.csv");

  const Buffer anonymous = compress_buffer({}, options);
  EXPECT_EQ(anonymous.data()[3], 0) << "no flags";
  for (int i = 4; i < 8; ++i) EXPECT_EQ(anonymous.data()[i], 0) << "MTIME must be 0 for reproducible output";
}

// Independent members carry no name; a stream with a name or time starts with an empty member
// that records them, where gunzip -N and gzip -l look (the first member's header).
TEST(Gzip, MultiMemberFormRecordsNameAndTimeInAnEmptyFirstMember) {
  const Bytes input = text_bytes(3 * 64 * 1024, 5);
  CompressOptions options;
  options.codec_options.chunk_bytes = 64 * 1024;
  options.codec_options.knobs["form"] = "multi-member";
  MemorySource source(view(input));
  MemorySink sink;
  compress(source, sink, options, StreamInfo{"report.csv", 1700000000});
  const Bytes named = to_bytes(sink.buffer());
  ASSERT_GE(named.size(), 50u);
  EXPECT_EQ(named[3], 0x0C) << "FEXTRA and FNAME";
  EXPECT_EQ(named[4] | named[5] << 8 | named[6] << 16 | static_cast<std::uint32_t>(named[7]) << 24, 1700000000u);
  EXPECT_EQ(std::string(named.begin() + 24, named.begin() + 34), "report.csv");
  const std::uint32_t first_member = named[16] | named[17] << 8 | named[18] << 16 | named[19] << 24;
  EXPECT_EQ(first_member, 24u + 11 + 2 + 8) << "header, name, empty deflate, trailer";
  EXPECT_EQ(named[first_member + 3], 0x04) << "the data members carry only the size field";
  EXPECT_EQ(to_bytes(decompress_buffer(view(named))), input);

  const Buffer anonymous = compress_buffer({}, options);
  EXPECT_EQ(anonymous.data()[3], 0x04) << "no name: no extra member";
  for (int i = 4; i < 8; ++i) EXPECT_EQ(anonymous.data()[i], 0) << "MTIME must be 0 for reproducible output";
}

// The default form is one member, as gzip writes it (name and time in its header), whose FEXTRA
// says its chunks are independent ('S','I': chunk size, flags); each chunk but the last ends on a
// sync flush, and zlib's one-member inflate (what browsers and HTTP clients use) reads it all.
TEST(Gzip, IndependentFormIsOneMemberOfSyncFlushedChunks) {
  const std::size_t chunk = 64 * 1024;
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, chunk - 1, chunk, chunk + 1, 5 * chunk + 7}) {
    const Bytes input = text_bytes(size, 5);
    CompressOptions options;
    options.codec_options.chunk_bytes = chunk;
    MemorySource source(view(input));
    MemorySink sink;
    compress(source, sink, options, StreamInfo{"report.csv", 1700000000});
    const Bytes packed = to_bytes(sink.buffer());
    ASSERT_GE(packed.size(), 24u + 11 + 2 + 8);
    EXPECT_EQ(packed[3], 0x0C) << "FEXTRA and FNAME";
    EXPECT_EQ(packed[4] | packed[5] << 8 | packed[6] << 16 | static_cast<std::uint32_t>(packed[7]) << 24, 1700000000u);
    EXPECT_EQ(packed[10] | packed[11] << 8, 12) << "XLEN";
    EXPECT_EQ(packed[12], 'S');
    EXPECT_EQ(packed[13], 'I');
    EXPECT_EQ(packed[14] | packed[15] << 8, 8);
    EXPECT_EQ(packed[16] | packed[17] << 8 | packed[18] << 16 | static_cast<std::uint32_t>(packed[19]) << 24, chunk);
    EXPECT_EQ(packed[20] | packed[21] << 8 | packed[22] << 16 | static_cast<std::uint32_t>(packed[23]) << 24, 1u);
    EXPECT_EQ(std::string(packed.begin() + 24, packed.begin() + 34), "report.csv");

    EXPECT_EQ(inflate_first_member(packed, input.size()), input) << size;

    // A sync flush ("00 00 ff ff") ends every chunk but the last.
    std::size_t flushes = 0;
    for (std::size_t at = 0; at + 4 <= packed.size(); ++at) {
      flushes += packed[at] == 0 && packed[at + 1] == 0 && packed[at + 2] == 0xFF && packed[at + 3] == 0xFF;
    }
    EXPECT_GE(flushes, size == 0 ? 0 : (size - 1) / chunk) << size;
    EXPECT_EQ(to_bytes(decompress_buffer(view(packed))), input) << size;
  }
}

// The CRC-32 of two parts from theirs: zlib's combine, or for a short second part the CRC of
// zeros, at the lengths around where one gives way to the other.
TEST(DeflateEngines, CombinedCrc32IsTheCrcOfBothPartsAtEveryLength) {
  const Bytes data = random_bytes(5000, 41);
  for (const std::size_t first : {std::size_t{0}, std::size_t{1}, std::size_t{777}}) {
    for (const std::size_t second : {0, 1, 2, 120, 1023, 1024, 1025, 4000}) {
      const ByteView a = view(data).first(first), b = view(data).subspan(first, second);
      const auto expected = static_cast<std::uint32_t>(crc32(0, data.data(), static_cast<uInt>(first + second)));
      EXPECT_EQ(codecs::combine_crc32(codecs::update_crc32(0, a), codecs::update_crc32(0, b), second), expected)
          << first << " + " << second;
    }
  }
}

// sluice/deflate.h: a complete raw deflate stream into exactly its size, or kCorruptData.
TEST(Deflate, InflateExactTakesACompleteStreamOfItsSizeOnly) {
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{100000}}) {
    for (const int level : {0, 1, 9}) {
      const Bytes input = text_bytes(size, size + static_cast<std::size_t>(level));
      const Bytes deflated = raw_deflate(input, level);
      Bytes out(size);
      inflate_exact(view(deflated), out);
      EXPECT_EQ(out, input) << size << " bytes at level " << level;
      const auto corrupt = [&](ByteView bytes, std::size_t out_size) {
        Bytes target(out_size);
        try {
          inflate_exact(bytes, target);
          ADD_FAILURE() << "no error: " << size << " bytes at level " << level << ", " << bytes.size() << " in, "
                        << out_size << " out";
        } catch (const Error& e) {
          EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
        }
      };
      corrupt(view(deflated), size + 1);                         // fewer bytes than asked
      if (size > 0) corrupt(view(deflated), size - 1);           // more
      corrupt(view(deflated).first(deflated.size() - 1), size);  // cut short
      Bytes longer = deflated;
      longer.push_back(0);
      corrupt(view(longer), size);  // bytes after the final block
    }
  }
}

// Raw deflate of `pieces` in one stream, each ended by a sync flush (the last by the final block
// when `finish`); returns where each piece's deflate data ends.
static std::vector<std::size_t> sync_flushed(const std::vector<Bytes>& pieces, int level, bool finish, Bytes& out) {
  z_stream stream{};
  if (deflateInit2(&stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("init");
  std::vector<std::size_t> ends;
  out.clear();
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const bool last = finish && i + 1 == pieces.size();
    Bytes room(deflateBound(&stream, static_cast<uLong>(pieces[i].size())) + 64);
    stream.next_in = const_cast<Bytef*>(pieces[i].data());
    stream.avail_in = static_cast<uInt>(pieces[i].size());
    stream.next_out = room.data();
    stream.avail_out = static_cast<uInt>(room.size());
    const int ret = deflate(&stream, last ? Z_FINISH : Z_SYNC_FLUSH);
    if (ret != (last ? Z_STREAM_END : Z_OK) || stream.avail_in != 0) throw std::runtime_error("deflate");
    out.insert(out.end(), room.data(), stream.next_out);
    ends.push_back(out.size());
  }
  deflateEnd(&stream);
  return ends;
}

// sluice/deflate.h: whole non-final blocks from a block boundary, their end proven, or kCorruptData.
TEST(Deflate, InflateBlocksTakesWholeBlocksThatEndTheirBytesOnly) {
  const auto corrupt = [](ByteView bytes, std::size_t room, const char* what) {
    Bytes target(room);
    try {
      inflate_blocks(bytes, target);
      ADD_FAILURE() << "no error: " << what;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << what << ": " << e.what();
    }
  };
  for (const int level : {0, 1, 6, 9}) {
    SCOPED_TRACE(level);
    // Stored data (level 0) that holds the sync flush pattern and a stored block's header.
    Bytes a = text_bytes(70000, 1);
    const std::uint8_t decoy[] = {0x00, 0x00, 0xff, 0xff, 0x00, 0x05, 0x00, 0xfa, 0xff};
    a.insert(a.begin() + 30000, std::begin(decoy), std::end(decoy));
    const Bytes b = text_bytes(5000, 2);
    Bytes deflated;
    const std::vector<std::size_t> ends = sync_flushed({a, b, b, b}, level, true, deflated);
    Bytes out(a.size() + 10);
    ASSERT_EQ(inflate_blocks(ByteView(deflated.data(), ends[0]), out), a.size());
    EXPECT_TRUE(std::equal(a.begin(), a.end(), out.begin()));
    Bytes exact(a.size());
    EXPECT_EQ(inflate_blocks(ByteView(deflated.data(), ends[0]), exact), a.size());
    corrupt(ByteView(deflated.data(), ends[0]), a.size() - 1, "more than the room");
    corrupt(ByteView(deflated.data(), ends[0] - 1), a.size(), "cut inside the flush");
    corrupt(ByteView(deflated.data(), ends[0] + 1), a.size() + 10, "a byte of the next block");
    corrupt(view(deflated), a.size() + 3 * b.size() + 10, "the final block");
    // The third piece repeats the second: alone, it refers before its start; after the output
    // before it (given whole: only its last 32 KiB count), it inflates.
    const ByteView third(deflated.data() + ends[1], ends[2] - ends[1]);
    if (level > 0) corrupt(third, b.size(), "history");
    Bytes before = a;
    before.insert(before.end(), b.begin(), b.end());
    Bytes again(b.size());
    ASSERT_EQ(inflate_blocks(third, again, ByteView(before.data(), before.size())), b.size());
    EXPECT_EQ(again, b);
    // Every place the pattern appears but the flushes' own is inside a block.
    const std::uint8_t pattern[] = {0x00, 0x00, 0xff, 0xff};
    auto at = deflated.begin();
    int inside = 0;
    while ((at = std::search(at, deflated.end(), std::begin(pattern), std::end(pattern))) != deflated.end()) {
      const auto end = static_cast<std::size_t>(at++ - deflated.begin()) + 4;
      if (end == ends[0] || end == ends[1] || end == ends[2]) continue;
      corrupt(ByteView(deflated.data(), end), a.size() + 3 * b.size(), "a pattern inside a block");
      ++inside;
    }
    if (level == 0) {
      EXPECT_GT(inside, 0) << "the decoy, stored";
    }
  }
}

TEST(Gzip, BgzfFormIsWhatBgzipWrites) {
  const Bytes input = text_bytes(200 * 1000, 9);
  CompressOptions options;
  options.codec_options.knobs["form"] = "bgzf";
  const Bytes packed = to_bytes(compress_buffer(view(input), options));
  // Blocks of at most 64 KiB holding at most 0xff00 bytes each, their BC subfield giving their size.
  std::size_t at = 0, blocks = 0, content = 0;
  while (at < packed.size()) {
    ASSERT_GE(packed.size() - at, 28u);
    EXPECT_EQ(packed[at + 3], 0x04);
    EXPECT_EQ(packed[at + 12], 'B');
    EXPECT_EQ(packed[at + 13], 'C');
    const std::size_t block = (packed[at + 16] | packed[at + 17] << 8) + 1;
    ASSERT_LE(at + block, packed.size());
    const std::size_t isize = packed[at + block - 4] | packed[at + block - 3] << 8 | packed[at + block - 2] << 16;
    EXPECT_LE(isize, 0xff00u);
    content += isize;
    at += block;
    ++blocks;
  }
  EXPECT_EQ(content, input.size());
  EXPECT_EQ(blocks, (input.size() + 0xff00 - 1) / 0xff00 + 1) << "and the empty end-of-file block";
  static constexpr std::uint8_t kEof[28] = {0x1f, 0x8b, 8,    4, 0, 0, 0, 0, 0, 0xff, 6, 0, 'B', 'C',
                                            2,    0,    0x1b, 0, 3, 0, 0, 0, 0, 0,    0, 0, 0,   0};
  EXPECT_TRUE(std::equal(packed.end() - 28, packed.end(), kEof));
  EXPECT_EQ(to_bytes(decompress_buffer(view(packed))), input);
  options.codec_options.chunk_bytes = 1 << 20;
  EXPECT_THROW(compress_buffer(view(input), options), Error) << "BGZF's block size is fixed";
}

TEST(Gzip, XflRecordsFastestAndBestLevels) {
  auto xfl = [](int level) {
    CompressOptions options;
    options.codec_options.level = level;
    return compress_buffer({}, options).data()[8];
  };
  EXPECT_EQ(xfl(1), 4);
  EXPECT_EQ(xfl(6), 0);
  EXPECT_EQ(xfl(9), 2);
}

// A zstd frame holds two of its level's windows when the user names no chunk size, between 4 MiB
// and 16 MiB (the largest unit decoded in parallel); a chunk size the user names is kept.
TEST(Zstd, DefaultFramesHoldTwoWindowsOfTheirLevel) {
  constexpr std::size_t kMiB = 1024 * 1024;
  for (const auto& [level, frame_bytes] : {std::pair{0, 4 * kMiB}, {1, 4 * kMiB}, {3, 4 * kMiB}, {9, 8 * kMiB},
                                           {16, 8 * kMiB}, {19, 16 * kMiB}, {22, 16 * kMiB}}) {
    CodecOptions options;
    options.level = level;
    EXPECT_EQ(CodecRegistry::global().create("zstd", options)->options().chunk_bytes, frame_bytes) << level;
    options.chunk_bytes = kMiB;
    EXPECT_EQ(CodecRegistry::global().create("zstd", options)->options().chunk_bytes, kMiB) << level;
  }
  // The largest default frame is still a unit of parallel decoding.
  const Bytes input = text_bytes(32 * kMiB + 100, 8);
  CompressOptions compress;
  compress.codec = "zstd";
  compress.codec_options.level = 1;
  compress.codec_options.chunk_bytes = 16 * kMiB;
  const Buffer packed = compress_buffer(view(input), compress);
  MemorySource source(packed.view());
  MemorySink sink;
  DecompressOptions decode;
  decode.threads = 2;
  const DecompressStats stats = decompress(source, sink, decode);
  EXPECT_EQ(stats.units, 3u);
  EXPECT_FALSE(stats.serial_from.has_value());
  EXPECT_EQ(to_bytes(sink.buffer()), input);
}

TEST(Options, LevelOutOfRangeIsAUsageError) {
  for (auto [codec, level] : {std::pair{"gzip", 10}, {"gzip", -1}, {"zstd", 23}, {"lz4", 13}}) {
    CompressOptions options;
    options.codec = codec;
    options.codec_options.level = level;
    try {
      compress_buffer({}, options);
      ADD_FAILURE() << codec << " accepted level " << level;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage);
      EXPECT_NE(std::string(e.what()).find("level"), std::string::npos) << e.what();
    }
  }
}

TEST(Options, ChunkSizeOutOfRangeIsAUsageError) {
  for (std::size_t chunk : {std::size_t{100}, std::size_t{2} << 30}) {
    CompressOptions options;
    options.codec_options.chunk_bytes = chunk;
    try {
      compress_buffer({}, options);
      ADD_FAILURE() << "accepted chunk size " << chunk;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    }
  }
}

TEST(Options, ParseByteCount) {
  EXPECT_EQ(parse_byte_count("65536"), 65536u);
  EXPECT_EQ(parse_byte_count("128K"), 128u * 1024);
  EXPECT_EQ(parse_byte_count("4M"), 4u << 20);
  EXPECT_EQ(parse_byte_count("4MiB"), 4u << 20);
  EXPECT_EQ(parse_byte_count("1g"), 1u << 30);
  for (const char* bad : {"", "M", "4X", "-1", "1.5M", "99999999999999999999"}) {
    EXPECT_THROW(parse_byte_count(bad), Error) << bad;
  }
}

TEST(Registry, KnowsTheBuiltInsAndRejectsUnknownNames) {
  auto& registry = CodecRegistry::global();
  for (const char* name : {"gzip", "zstd", "lz4"}) EXPECT_TRUE(registry.find(name).has_value()) << name;
  EXPECT_EQ(registry.by_extension("a/b.tar.zst")->name, "zstd");
  EXPECT_EQ(registry.by_extension("x.gz")->name, "gzip");
  EXPECT_FALSE(registry.by_extension(".gz").has_value()) << "a bare suffix is not a name";
  EXPECT_FALSE(registry.by_extension("x.txt").has_value());
  try {
    (void)registry.create("brotli");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("gzip"), std::string::npos) << "should list the known codecs";
  }
  EXPECT_THROW(registry.add(*registry.find("gzip"), [](const CodecOptions&) { return nullptr; }), Error)
      << "names are unique";
  // Defaults that create() would refuse are the codec's mistake, named at add(), not the caller's
  // at every create() ("chunk size must be between 1 KiB and 1 GiB, not 0 bytes").
  const auto refusal = [&](CodecInfo info) {
    try {
      registry.add(info, [](const CodecOptions&) { return nullptr; });
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage) << e.what();
      return std::string(e.what());
    }
    return std::string("registered");
  };
  CodecInfo info;
  info.name = "defaults-unset";
  EXPECT_NE(refusal(info).find("codec 'defaults-unset' cannot be registered: its default chunk size must be between "
                               "1 KiB and 1 GiB, not 0 bytes"),
            std::string::npos);
  info.default_chunk_bytes = 64 * 1024;
  info.min_level = 1;
  info.max_level = 3;
  info.default_level = 9;
  EXPECT_NE(refusal(info).find("its default level 9 is not within its levels 1 to 3"), std::string::npos);
  EXPECT_FALSE(registry.find("defaults-unset").has_value());
}

TEST(Detect, FormatComesFromMagicBytes) {
  auto& registry = CodecRegistry::global();
  for (const char* name : {"gzip", "zstd", "lz4"}) {
    CompressOptions options;
    options.codec = name;
    const Buffer packed = compress_buffer(view(text_bytes(1000)), options);
    EXPECT_EQ(registry.detect(packed.view())->name, name);
  }
  EXPECT_FALSE(registry.detect(view(text_bytes(100))).has_value());
  EXPECT_FALSE(registry.detect({}).has_value());
}

}  // namespace
}  // namespace sluice
