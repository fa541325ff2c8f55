// The finder of dynamic-Huffman block headers at any bit (codecs/deflate_blocks.cpp,
// find_dynamic_block), on the streams the real gzip and pigz write at levels 1, 6 and 9 from text,
// random bytes, zeros and a mix: it finds every true non-final dynamic block, what it finds is a
// header by its rules (by a slow reading of our own, written apart from it, and by zlib itself),
// it finds the first such position (the same as the slow reading on every position of windows of
// those streams, of damaged headers and of random bytes), headers written for the rules' edges
// are judged as the rules say, and it never reads outside its bytes (random bytes of many sizes,
// searches to and past the end, headers cut short by the end; run it under the asan build too).
// It prints how many positions it finds in each whole stream that are not block starts.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "codecs/deflate_engines.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

using codecs::find_dynamic_block;
using testing::Bytes;
using testing::random_bytes;
using testing::text_bytes;
using testing::view;

// The rules find_dynamic_block promises, read the slow way, bit by bit, with the canonical codes
// decoded as RFC 1951 builds them (one length at a time, as puff.c does): where the header that
// starts at bit `at` of `bytes` ends, or nullopt when it is not one or runs past the end.
class SlowHeader {
 public:
  explicit SlowHeader(const Bytes& bytes) : bytes_(bytes) {}

  std::optional<std::size_t> end_of(std::size_t at) {
    at_ = at;
    past_ = false;
    if (bits(1) != 0 || bits(2) != 2) return std::nullopt;  // BFINAL 0, BTYPE 2 (LSB first: bits 0, 1)
    const unsigned literal_count = bits(5) + 257, distance_count = bits(5) + 1, length_codes = bits(4) + 4;
    if (literal_count > 286 || distance_count > 30) return std::nullopt;
    static constexpr int kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    std::vector<int> code_lengths(19, 0);
    for (unsigned i = 0; i < length_codes; ++i) code_lengths[kOrder[i]] = static_cast<int>(bits(3));
    if (past_ || room(code_lengths) != 0) return std::nullopt;
    sort_code(code_lengths);
    std::vector<int> lengths;
    const std::size_t total = literal_count + distance_count;
    while (lengths.size() < total) {
      const int symbol = decode();
      if (symbol < 0) return std::nullopt;
      if (symbol < 16) {
        lengths.push_back(symbol);
        continue;
      }
      if (symbol == 16 && lengths.empty()) return std::nullopt;
      const int value = symbol == 16 ? lengths.back() : 0;
      const unsigned repeat = symbol == 16 ? 3 + bits(2) : symbol == 17 ? 3 + bits(3) : 11 + bits(7);
      if (lengths.size() + repeat > total) return std::nullopt;
      lengths.insert(lengths.end(), repeat, value);
    }
    if (past_) return std::nullopt;
    const std::vector<int> literals(lengths.begin(), lengths.begin() + literal_count);
    const std::vector<int> distances(lengths.begin() + literal_count, lengths.end());
    if (literals[256] == 0 || room(literals) != 0) return std::nullopt;
    const auto codes = std::count_if(distances.begin(), distances.end(), [](int length) { return length != 0; });
    const bool lone_distance = codes == 1 && *std::max_element(distances.begin(), distances.end()) == 1;
    if (room(distances) != 0 && !lone_distance) return std::nullopt;
    return at_;
  }

 private:
  unsigned bits(int count) {
    unsigned value = 0;
    for (int i = 0; i < count; ++i, ++at_) {
      if (at_ >= bytes_.size() * 8) {
        past_ = true;
        return 0;
      }
      value |= static_cast<unsigned>(bytes_[at_ / 8] >> (at_ % 8) & 1) << i;
    }
    return value;
  }
  // What a set of code lengths leaves of the code space: 0 when complete, -1 when over-subscribed.
  static long room(const std::vector<int>& lengths) {
    long left = 1;
    for (int length = 1; length <= 15; ++length) {
      left = 2 * left - std::count(lengths.begin(), lengths.end(), length);
      if (left < 0) return -1;
    }
    return left;
  }
  void sort_code(const std::vector<int>& lengths) {
    count_.assign(16, 0);
    symbols_.clear();
    for (int length = 1; length <= 15; ++length) {
      for (std::size_t symbol = 0; symbol < lengths.size(); ++symbol) {
        if (lengths[symbol] == length) {
          ++count_[length];
          symbols_.push_back(static_cast<int>(symbol));
        }
      }
    }
  }
  int decode() {
    int code = 0, first = 0, index = 0;
    for (int length = 1; length <= 15; ++length) {
      code |= static_cast<int>(bits(1));
      if (past_) return -1;
      if (code - count_[length] < first) return symbols_[index + code - first];
      index += count_[length];
      first = (first + count_[length]) << 1;
      code <<= 1;
    }
    return -1;
  }

  const Bytes& bytes_;
  std::size_t at_ = 0;
  bool past_ = false;
  std::vector<int> count_;
  std::vector<int> symbols_;
};

// zlib's own judgement: it reads a block header at bit `at` of `bytes` (all it is given), non-final
// and dynamic, to its end (inflate() with Z_TREES stops there) without an error.
bool zlib_takes_header(const Bytes& bytes, std::size_t at) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, -15), Z_OK);
  std::size_t byte = at / 8;
  if (at % 8 != 0) {
    EXPECT_EQ(inflatePrime(&z, static_cast<int>(8 - at % 8), bytes[byte] >> (at % 8)), Z_OK);
    ++byte;
  }
  z.next_in = const_cast<Bytes::value_type*>(bytes.data()) + byte;
  z.avail_in = static_cast<uInt>(bytes.size() - byte);
  std::uint8_t out[1];
  z.next_out = out;
  z.avail_out = sizeof out;
  const int status = inflate(&z, Z_TREES);
  const bool header_read = (z.data_type & 256) != 0 && (z.data_type & 64) == 0;  // in a block, not the last
  inflateEnd(&z);
  return (status == Z_OK || status == Z_BUF_ERROR) && header_read;
}

// Every position find_dynamic_block finds in [from, to), one search after another from just past
// the last.
std::vector<std::size_t> all_found(const Bytes& bytes, std::size_t from, std::size_t to) {
  std::vector<std::size_t> found;
  for (auto hit = find_dynamic_block(view(bytes), from, to); hit; hit = find_dynamic_block(view(bytes), *hit + 1, to)) {
    EXPECT_GE(*hit, from);
    EXPECT_LT(*hit, to);
    found.push_back(*hit);
  }
  return found;
}

// The finder finds exactly the positions in [from, to) the slow reading takes.
void expect_as_slow(const Bytes& bytes, std::size_t from, std::size_t to) {
  SlowHeader slow(bytes);
  std::vector<std::size_t> expected;
  for (std::size_t at = from; at < std::min(to, bytes.size() * 8); ++at) {
    if (slow.end_of(at)) expected.push_back(at);
  }
  EXPECT_EQ(all_found(bytes, from, to), expected) << bytes.size() << " bytes, from " << from << " to " << to;
}

struct Stream {
  std::string name;  // "gzip -6"
  Bytes deflate;     // raw, the gzip header and trailer taken off
};

// Text-like bytes with more in them than text_bytes() (whose 16 words make few, long blocks): words
// of a vocabulary of 4000, the common ones far more often, in lines of sentences.
Bytes prose(std::size_t size, std::uint64_t seed) {
  const Bytes letters = random_bytes(4000 * 12, seed);
  std::vector<std::string> words;
  for (std::size_t i = 0; i < 4000; ++i) {
    std::string word;
    for (std::size_t j = 0; j < 2u + letters[i * 12] % 9u; ++j)
      word += static_cast<char>('a' + letters[i * 12 + j + 1] % 26);
    words.push_back(word);
  }
  const Bytes picks = random_bytes(size, seed + 1);
  Bytes text;
  for (std::size_t i = 0; text.size() < size; i += 2) {
    const unsigned pick = picks[i % size] | picks[(i + 1) % size] << 8;
    const std::string& word = words[pick % 4000 * (pick >> 12) / 16];  // the first ones likelier
    text.insert(text.end(), word.begin(), word.end());
    text.push_back(pick % 17 == 0 ? '\n' : pick % 11 == 0 ? '.' : ' ');
  }
  text.resize(size);
  return text;
}

// The input: text-like, random, zeros, and a mix of the three in small pieces (block types change).
Bytes varied_input() {
  Bytes input = prose(1536 * 1024, 3);
  const Bytes noise = random_bytes(256 * 1024, 4);
  input.insert(input.end(), noise.begin(), noise.end());
  input.resize(input.size() + 256 * 1024, 0);
  for (std::uint64_t piece = 0; piece < 160; ++piece) {
    const Bytes text = prose(1024 + piece * 61, 10 + piece), bits = random_bytes(200 + piece * 13, 300 + piece);
    const Bytes words = text_bytes(500 + piece * 7, 500 + piece);
    input.insert(input.end(), text.begin(), text.end());
    input.insert(input.end(), bits.begin(), bits.end());
    input.insert(input.end(), words.begin(), words.end());
    input.resize(input.size() + piece * 37, 0);
  }
  return input;
}

// The input written by gzip and pigz at levels 1, 6 and 9, as raw deflate.
std::vector<Stream> real_streams() {
  testing::ScratchDir dir;
  testing::write_file(dir / "in", varied_input());
  std::vector<Stream> streams;
  for (const std::string program : {"gzip", "pigz"}) {
    for (const int level : {1, 6, 9}) {
      const std::string name = program + " -" + std::to_string(level);
      const testing::CommandResult result = testing::run(name + " -n -c in > in.gz", dir.path());
      EXPECT_EQ(result.status, 0) << testing::describe(result);
      const Bytes gz = testing::read_file(dir / "in.gz");
      EXPECT_GT(gz.size(), 18u);
      if (gz.size() <= 18) continue;
      EXPECT_EQ(gz[3], 0) << name << ": a header with fields";  // no name: 10 bytes
      streams.push_back({name, Bytes(gz.begin() + 10, gz.end() - 8)});
    }
  }
  return streams;
}

TEST(DeflateFinder, FindsEveryBlockGzipAndPigzWriteAndOnlyHeaders) {
  for (const Stream& stream : real_streams()) {
    SCOPED_TRACE(stream.name);
    const Bytes& bytes = stream.deflate;
    const std::vector<codecs::DeflateBlockStart> blocks = codecs::list_deflate_blocks(view(bytes));
    ASSERT_FALSE(blocks.empty());
    EXPECT_TRUE(blocks.back().final);
    std::vector<std::size_t> truth;  // the non-final dynamic blocks
    std::size_t types[3] = {};
    SlowHeader slow(bytes);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      ASSERT_LT(blocks[i].type, 3);
      ++types[blocks[i].type];
      if (blocks[i].type != 2 || blocks[i].final) continue;
      const std::size_t start = blocks[i].bit;
      truth.push_back(start);
      EXPECT_TRUE(slow.end_of(start)) << "block " << i << " at bit " << start;  // the slow reading's own check
      EXPECT_EQ(find_dynamic_block(view(bytes), start, start + 1), start) << "block " << i;
      const std::size_t after = i == 0 ? 0 : blocks[i - 1].bit + 1;
      const auto found = find_dynamic_block(view(bytes), after, bytes.size() * 8);
      ASSERT_TRUE(found) << "block " << i;
      EXPECT_LE(*found, start) << "block " << i;
    }
    EXPECT_GT(truth.size(), 10u);

    // The whole stream, position after position found: each a header by both readings.
    const std::vector<std::size_t> found = all_found(bytes, 0, bytes.size() * 8);
    std::size_t false_positives = 0;
    for (const std::size_t at : found) {
      EXPECT_TRUE(slow.end_of(at)) << "at bit " << at;
      EXPECT_TRUE(zlib_takes_header(bytes, at)) << "at bit " << at;
      false_positives += !std::binary_search(truth.begin(), truth.end(), at);
    }
    EXPECT_TRUE(std::includes(found.begin(), found.end(), truth.begin(), truth.end()));
    std::printf(
        "%s: %zu bytes of deflate, blocks %zu stored, %zu fixed, %zu dynamic; found %zu, %zu of them not "
        "block starts\n",
        stream.name.c_str(), bytes.size(), types[0], types[1], types[2], found.size(), false_positives);

    // The first position, not only a position: the same as the slow reading on every position of
    // the stream's start and of windows around blocks.
    expect_as_slow(bytes, 0, std::min<std::size_t>(bytes.size() * 8, 24 * 1024 * 8));
    for (std::size_t i = 1; i < truth.size(); i += truth.size() / 4 + 1) {
      expect_as_slow(bytes, std::max<std::size_t>(truth[i], 3000) - 3000, truth[i] + 1000);
    }
  }
}

TEST(DeflateFinder, RandomBytesOfManySizes) {
  std::uint64_t seed = 1;
  for (std::size_t size = 0; size < 300; size += size < 80 ? 1 : 7) {
    const Bytes bytes = random_bytes(size, ++seed);  // its own allocation of exactly `size`: asan sees past it
    const std::size_t bits = size * 8;
    expect_as_slow(bytes, 0, bits);
    expect_as_slow(bytes, 0, bits + 77);
    expect_as_slow(bytes, bits / 3, bits);
    expect_as_slow(bytes, bits / 2 + 5, bits - bits / 5);
    EXPECT_FALSE(find_dynamic_block(view(bytes), bits, bits + 100));
    EXPECT_FALSE(find_dynamic_block(view(bytes), bits + 9, bits + 100));
  }
  for (const std::size_t size : {4095u, 4096u, 65536u + 3}) {
    const Bytes bytes = random_bytes(size, ++seed);
    expect_as_slow(bytes, 0, size * 8);
    expect_as_slow(bytes, size * 8 - 500, size * 8 + 1000);
  }
  // Random bits that pass the first filters more often (BFINAL 0, BTYPE 2 every 3 bits): the later
  // filters and the full reading are reached at every kind of position.
  Bytes biased = random_bytes(200 * 1024, 99);
  for (std::size_t i = 0; i < biased.size(); i += 3) biased[i] = static_cast<std::uint8_t>((biased[i] & 0xF8) | 0x04);
  expect_as_slow(biased, 0, biased.size() * 8);
}

// A raw deflate stream zlib writes at level 6 from prose with random bytes in it.
Bytes zlib_stream() {
  Bytes input = prose(512 * 1024, 7);
  const Bytes noise = random_bytes(64 * 1024, 8);
  input.insert(input.begin() + 100000, noise.begin(), noise.end());
  return testing::raw_deflate(input, 6);
}

TEST(DeflateFinder, HeadersCutShortByTheEnd) {
  const Bytes stream = zlib_stream();
  SlowHeader slow(stream);
  std::size_t checked = 0;
  for (const codecs::DeflateBlockStart& block : codecs::list_deflate_blocks(view(stream))) {
    if (block.type != 2 || block.final) continue;
    const std::optional<std::size_t> end = slow.end_of(block.bit);
    ASSERT_TRUE(end) << "block at bit " << block.bit;
    // The stream cut after each byte from just past the header's start to well past its end, the
    // cut piece starting a byte or two before the header: found exactly when the header fits.
    for (std::size_t first = std::max<std::size_t>(block.bit / 8, 2) - 2; first <= block.bit / 8; ++first) {
      const std::size_t at = block.bit - first * 8;
      for (std::size_t last = block.bit / 8 + 1; last <= (*end + 7) / 8 + 40; ++last) {
        const Bytes piece(stream.begin() + static_cast<std::ptrdiff_t>(first),
                          stream.begin() + static_cast<std::ptrdiff_t>(last));
        const bool fits = *end <= last * 8;
        EXPECT_EQ(find_dynamic_block(view(piece), at, at + 1), fits ? std::optional(at) : std::nullopt)
            << "header at bit " << block.bit << ", ending at " << *end << ", cut at byte " << last;
        expect_as_slow(piece, at, piece.size() * 8 + 64);
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 500u);
}

// True headers with a bit or two flipped: headers that fail at every stage of the reading (and
// some that still pass), the finder and the slow reading agreeing on every position near them.
TEST(DeflateFinder, DamagedHeaders) {
  Bytes stream = zlib_stream();
  const Bytes noise = random_bytes(4096, 11);
  std::size_t next_noise = 0;
  std::size_t damaged = 0;
  for (const codecs::DeflateBlockStart& block : codecs::list_deflate_blocks(view(stream))) {
    if (block.type != 2 || block.final) continue;
    const std::optional<std::size_t> end = SlowHeader(stream).end_of(block.bit);
    ASSERT_TRUE(end);
    for (int round = 0; round < 60; ++round, ++damaged) {
      Bytes copy = stream;
      for (int flip = 0; flip < 1 + round % 2; ++flip) {
        const unsigned pick = noise[next_noise % noise.size()] | noise[(next_noise + 1) % noise.size()] << 8;
        next_noise += 2;
        const std::size_t bit = block.bit + pick % (*end - block.bit);
        copy[bit / 8] ^= static_cast<std::uint8_t>(1u << bit % 8);
      }
      expect_as_slow(copy, block.bit - std::min<std::size_t>(block.bit, 40), block.bit + 40);
    }
  }
  EXPECT_GT(damaged, 500u);
}

// Bits LSB first, and Huffman codes most significant bit first, as deflate packs them.
class BitWriter {
 public:
  void put(unsigned value, int count) {
    for (int i = 0; i < count; ++i, ++bits_) {
      if (bits_ % 8 == 0) bytes_.push_back(0);
      bytes_.back() = static_cast<std::uint8_t>(bytes_.back() | ((value >> i) & 1) << bits_ % 8);
    }
  }
  void put_code(unsigned code, int length) {
    for (int i = length - 1; i >= 0; --i) put(code >> i, 1);
  }
  const Bytes& bytes() const { return bytes_; }

 private:
  Bytes bytes_;
  std::size_t bits_ = 0;
};

// A dynamic block header (not final) at bit `offset` of its bytes (random bits before it), with
// HLIT and HDIST as given and the code lengths written as `symbols`, pairs of a code-length symbol
// and its extra bits: a complete code-length code of all 19 symbols (0 to 12 4 bits, the rest 5).
struct CodeLengthSymbol {
  unsigned symbol;
  unsigned extra = 0;
};
Bytes dynamic_header(unsigned hlit, unsigned hdist, const std::vector<CodeLengthSymbol>& symbols, int offset) {
  static constexpr unsigned kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  static constexpr int kExtra[3] = {2, 3, 7};
  BitWriter out;
  out.put(0x5A, offset);
  out.put(0b100, 3);  // BFINAL 0, BTYPE 2
  out.put(hlit, 5);
  out.put(hdist, 5);
  out.put(15, 4);  // 19 code-length code lengths
  for (const unsigned symbol : kOrder) out.put(symbol <= 12 ? 4 : 5, 3);
  for (const CodeLengthSymbol& length : symbols) {
    // The canonical code: 0 to 12 are 0000 to 1100, 13 to 18 are 11010 to 11111.
    if (length.symbol <= 12) {
      out.put_code(length.symbol, 4);
    } else {
      out.put_code(0b11010 + length.symbol - 13, 5);
    }
    if (length.symbol >= 16) out.put(length.extra, kExtra[length.symbol - 16]);
  }
  out.put(0, 8);  // room after it
  return out.bytes();
}

// Code lengths written one symbol each.
std::vector<CodeLengthSymbol> each(const std::vector<unsigned>& lengths) {
  std::vector<CodeLengthSymbol> symbols;
  for (const unsigned length : lengths) symbols.push_back({length});
  return symbols;
}

// Literal/length code lengths: 0 to 254 of length 8, then `rest` from 255 on.
std::vector<unsigned> literals_then(const std::vector<unsigned>& rest) {
  std::vector<unsigned> lengths(255, 8);
  lengths.insert(lengths.end(), rest.begin(), rest.end());
  return lengths;
}

template <typename T>
std::vector<T> join(std::vector<T> a, const std::vector<T>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Every repeat: 138 zeros, lengths of 6 and 7 in runs (a complete code with 256), then the
// distances 0 0 0 1 0 1 (HLIT 1, HDIST 5).
std::vector<CodeLengthSymbol> with_repeats() {
  std::vector<CodeLengthSymbol> symbols = {{18, 127}, {6}, {16, 3}, {6}, {7}};  // 0-137, 138-145 6, 146 7
  symbols.insert(symbols.end(), 18, {16, 3});                                   // 147-254
  return join(symbols, {{16, 0}, {17, 0}, {1}, {0}, {1}});                      // 255-257; the distances
}

// The rules at their edges, on headers written for them: what the finder takes, and what zlib does
// (it also takes an end-of-block code alone and no distance code at all).
TEST(DeflateFinder, TheRulesAtTheirEdges) {
  const std::vector<unsigned> complete_literals = literals_then({0, 9, 9});  // 255 unused; 256, 257 9 bits
  struct Case {
    const char* what;
    unsigned hlit, hdist;
    std::vector<CodeLengthSymbol> symbols;
    bool found, zlib;
  };
  const std::vector<Case> cases = {
      {"complete codes", 1, 1, each(join(complete_literals, {1, 1})), true, true},
      {"a lone distance code of length 1", 1, 1, each(join(complete_literals, {0, 1})), true, true},
      {"a lone distance code of length 2", 1, 1, each(join(complete_literals, {2, 0})), false, false},
      {"no distance code", 1, 1, each(join(complete_literals, {0, 0})), false, true},
      {"an over-subscribed distance code", 1, 2, each(join(complete_literals, {1, 1, 1})), false, false},
      {"an incomplete distance code", 1, 2, each(join(complete_literals, {1, 2, 0})), false, false},
      {"end of block alone, 1 bit", 0, 0, each(join(std::vector<unsigned>(256, 0), {1, 1})), false, true},
      {"no end-of-block code", 0, 0, each(join(std::vector<unsigned>(256, 8), {0, 1})), false, false},
      {"an incomplete literal/length code", 1, 0, each(literals_then({0, 9, 0, 1})), false, false},
      {"an over-subscribed literal/length code", 1, 0, each(literals_then({8, 9, 9, 1})), false, false},
      {"HLIT 29, HDIST 29", 29, 29,
       each(join(literals_then(join({0, 9}, join(std::vector<unsigned>(28, 0), {9}))),
                 join(std::vector<unsigned>(28, 0), {1, 1}))),
       true, true},
      {"HLIT 30", 30, 0, each(literals_then(join(std::vector<unsigned>(32, 0), {0, 9, 9, 1}))), false, false},
      {"HDIST 30", 1, 30, each(join(complete_literals, join(std::vector<unsigned>(29, 0), {1, 1}))), false, false},
      {"every kind of repeat", 1, 5, with_repeats(), true, true},
      {"a repeat first", 1, 1, {{16, 0}}, false, false},
      {"zeros past the count", 1, 1, join(each(join(complete_literals, {1})), {{17, 0}}), false, false},
  };
  for (const Case& test : cases) {
    for (int offset = 0; offset < 8; ++offset) {
      SCOPED_TRACE(std::string(test.what) + ", at bit " + std::to_string(offset));
      const Bytes header = dynamic_header(test.hlit, test.hdist, test.symbols, offset);
      EXPECT_EQ(find_dynamic_block(view(header), offset, offset + 1).has_value(), test.found);
      EXPECT_EQ(SlowHeader(header).end_of(static_cast<std::size_t>(offset)).has_value(), test.found);
      EXPECT_EQ(zlib_takes_header(header, static_cast<std::size_t>(offset)), test.zlib);
      expect_as_slow(header, 0, header.size() * 8);
    }
  }
}

// ---- Pieces cut at those blocks, at any bit (ChunkInflater with PieceEdges) ----

// A piece given as the bytes from the one holding its first bit to the one holding its last,
// with the edges inside them, as the gzip splitter cuts it.
struct PieceCut {
  Bytes bytes;
  codecs::PieceEdges edges;
};

PieceCut piece_between(const Bytes& stream, std::size_t from_bit, std::size_t to_bit) {
  PieceCut cut;
  const std::size_t first = from_bit / 8 + (from_bit % 8 ? 1 : 0);
  if (from_bit % 8) {
    cut.edges.lead.count = static_cast<std::uint8_t>(8 - from_bit % 8);
    cut.edges.lead.value = static_cast<std::uint8_t>(stream[from_bit / 8] >> (from_bit % 8));
  }
  cut.edges.tail_bits = static_cast<std::uint8_t>(to_bit % 8);
  cut.bytes.assign(stream.begin() + static_cast<std::ptrdiff_t>(first),
                   stream.begin() + static_cast<std::ptrdiff_t>((to_bit + 7) / 8));
  return cut;
}

std::string inflate_error(codecs::ChunkInflater& inflater, const PieceCut& cut, ByteView window) {
  static Bytes out(256 * 1024);
  try {
    (void)inflater.inflate(view(cut.bytes), {out.data(), out.size()}, window, cut.edges);
    return "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruptData) << e.what();
    return e.detail();
  }
}

// Every piece from one block to the next inflates, in order and knowing its window, to exactly
// the input, whatever bit the blocks start at; a piece whose end is moved by 1 to 7 bits either
// way is refused.
TEST(PieceEdges, APieceInflatesBetweenAnyTwoBlocksAndEndsNowhereElse) {
  const Bytes input = varied_input();
  const Bytes stream = testing::raw_deflate(input, 6, 2);  // blocks of at most 256 symbols
  std::vector<std::size_t> starts;
  for (const auto& block : codecs::list_deflate_blocks(view(stream))) starts.push_back(block.bit);
  ASSERT_GT(starts.size(), 200u);
  const auto inflater = codecs::make_isal_chunk_inflater();
  Bytes output;
  std::array<int, 8> seen{};
  for (std::size_t i = 0; i + 1 < starts.size(); ++i) {  // the last block is final: not a piece
    const PieceCut cut = piece_between(stream, starts[i], starts[i + 1]);
    ++seen[starts[i + 1] % 8];
    const ByteView window = view(output).last(std::min<std::size_t>(output.size(), 32 * 1024));
    static Bytes out(256 * 1024);  // a block of 256 symbols inflates to at most 66 KB
    const std::size_t size = inflater->inflate(view(cut.bytes), {out.data(), out.size()}, window, cut.edges);
    output.insert(output.end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(size));
    if (i % 16 == 0 && i > 0) {
      for (int shift = 1; shift < 8; ++shift) {
        EXPECT_NE(inflate_error(*inflater, piece_between(stream, starts[i], starts[i + 1] + shift), window), "accepted")
            << "piece " << i << " ending " << shift << " bits late";
        EXPECT_NE(inflate_error(*inflater, piece_between(stream, starts[i], starts[i + 1] - shift), window), "accepted")
            << "piece " << i << " ending " << shift << " bits early";
      }
    }
  }
  for (int bit = 0; bit < 8; ++bit) EXPECT_GT(seen[bit], 0) << "no block starts at bit " << bit << " of a byte";
  ASSERT_LE(output.size(), input.size());
  EXPECT_TRUE(std::equal(output.begin(), output.end(), input.begin())) << "the pieces' output is the input's start";
}

// A stream made to fool an end check that appends one kind of empty final block: a real block
// ends at bit 2 of a byte and a final stored block begins there, so the cut at bit 5 is not a
// block boundary. Given 1, 00 and LEN 0, NLEN 0xFFFF after bit 5, the real stored block would skip
// to the byte boundary and take them as its own; the piece must still be refused.
TEST(PieceEdges, AFinalStoredBlockInThePiecesLastBitsIsNotItsEnd) {
  Bytes stream(1, 0);
  std::size_t at = 0;
  auto put = [&](unsigned value, int count) {
    for (int i = 0; i < count; ++i, ++at) {
      if (at / 8 >= stream.size()) stream.push_back(0);
      stream[at / 8] = static_cast<std::uint8_t>(stream[at / 8] | ((value >> i) & 1u) << (at % 8));
    }
  };
  put(0, 1);  // not final
  put(1, 2);  // fixed Huffman
  for (const char c : std::string("fooled")) {
    // Literals 0-143: 8-bit codes 0x30 + c, most significant bit first.
    const unsigned code = 0x30u + static_cast<unsigned char>(c);
    for (int i = 7; i >= 0; --i) put(code >> i & 1u, 1);
  }
  put(0, 7);  // end of block: bit 3 + 48 + 7 = 58, bit 2 of byte 7
  ASSERT_EQ(at % 8, 2u);
  const std::size_t boundary = at;
  put(1, 1);                      // final
  put(0, 2);                      // stored
  const std::size_t cut_at = at;  // bit 5
  const auto inflater = codecs::make_isal_chunk_inflater();
  EXPECT_NE(inflate_error(*inflater, piece_between(stream, 0, cut_at), {}), "accepted");
  EXPECT_NE(inflate_error(*inflater, piece_between(stream, 0, cut_at - 1), {}), "accepted");
  // Where the real block ends, the piece is whole.
  EXPECT_EQ(inflate_error(*inflater, piece_between(stream, 0, boundary), {}), "accepted");
}

// ---- The ends of stored blocks (find_stored_block_end) ----

// The first position the slow way: every byte, LEN and NLEN, then what follows the data.
std::optional<codecs::StoredBlockEnd> slow_stored_end(const Bytes& bytes, std::size_t from, std::size_t to) {
  auto length_at = [&](std::size_t at) -> std::optional<std::size_t> {
    if (at + 4 > bytes.size()) return std::nullopt;
    const unsigned length = bytes[at] | unsigned{bytes[at + 1]} << 8;
    if ((bytes[at + 2] | unsigned{bytes[at + 3]} << 8) != (~length & 0xFFFFu)) return std::nullopt;
    return length;
  };
  for (std::size_t at = from; at < to; ++at) {
    const auto length = length_at(at);
    if (!length) continue;
    const std::size_t end = at + 4 + *length;
    if (end >= bytes.size()) continue;
    if ((bytes[end] == 0 && length_at(end + 1)) || codecs::find_dynamic_block(view(bytes), end * 8, end * 8 + 1)) {
      return codecs::StoredBlockEnd{at, end};
    }
  }
  return std::nullopt;
}

// zlib's stored blocks followed by a stored or dynamic one are all found, each at its length
// field, and on random bytes with stored
// headers planted (some followed by another, some not) the first found is the slow way's, from
// every start, up to every end, near the buffer's end too.
TEST(StoredBlockEnds, FoundWhereGzipStoresAndAsTheSlowWayFindsThem) {
  const Bytes noise = random_bytes(400 * 1024, 41);
  const Bytes stream = testing::raw_deflate(noise, 6);
  std::size_t stored = 0;
  const auto blocks = codecs::list_deflate_blocks(view(stream));
  for (std::size_t i = 0; i + 1 < blocks.size(); ++i) {
    const auto& block = blocks[i];
    const auto& next = blocks[i + 1];  // what the end is known by: a stored or dynamic block
    if (block.type != 0 || block.final || next.final || next.type == 1) continue;
    ++stored;
    const std::size_t length_at = (block.bit + 3 + 7) / 8;
    const auto found = codecs::find_stored_block_end(view(stream), length_at, length_at + 1);
    ASSERT_TRUE(found.has_value()) << "the stored block at bit " << block.bit;
    EXPECT_EQ(found->length_at, length_at);
  }
  EXPECT_GT(stored, 3u);

  Bytes bytes = random_bytes(64 * 1024, 42);
  auto plant = [&bytes](std::size_t at, unsigned length) {
    bytes[at] = static_cast<std::uint8_t>(length);
    bytes[at + 1] = static_cast<std::uint8_t>(length >> 8);
    bytes[at + 2] = static_cast<std::uint8_t>(~length);
    bytes[at + 3] = static_cast<std::uint8_t>(~length >> 8);
  };
  for (std::size_t at = 100; at + 2000 < bytes.size(); at += 997) {
    const unsigned length = static_cast<unsigned>(at % 300);
    plant(at, length);
    if (at % 3 != 0) {  // another stored block after it
      bytes[at + 4 + length] = 0;
      plant(at + 5 + length, 7);
    }
  }
  plant(bytes.size() - 10, 1);  // its data runs to the end: nothing after it
  for (std::size_t from = 0; from < bytes.size(); from += 331) {
    for (const std::size_t to : {from + 1, from + 17, from + 5000, bytes.size(), bytes.size() + 9}) {
      const auto fast = codecs::find_stored_block_end(view(bytes), from, to);
      const auto slow = slow_stored_end(bytes, from, std::min(to, bytes.size()));
      ASSERT_EQ(fast.has_value(), slow.has_value()) << from << " to " << to;
      if (fast) {
        EXPECT_EQ(fast->length_at, slow->length_at) << from << " to " << to;
        EXPECT_EQ(fast->end, slow->end) << from << " to " << to;
      }
    }
  }
}

}  // namespace
}  // namespace sluice
