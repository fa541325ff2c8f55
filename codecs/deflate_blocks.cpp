// Walks the blocks of a raw deflate stream (RFC 1951) without producing its output, to find where
// its final block starts and where it ends: what it takes to turn a complete stream into one that
// a following chunk can continue (deflate_engines.h, end_with_sync_flush). Used on the output of
// engines that write only complete streams (libdeflate); every read is bounds-checked and any
// malformed stream is our bug, reported as kInternal.
#include <array>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "codecs/deflate_engines.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

[[noreturn]] void malformed(const char* what) {
  throw Error(ErrorKind::kInternal, fmt::format("deflate block walker: {} in a stream a deflate engine wrote", what));
}

// LSB-first bits of a byte span. Past the end it reads zeros and remembers that it did, so a
// walk that ran off the end is caught once, by the caller, instead of at every read.
class BitReader {
 public:
  explicit BitReader(ByteView bytes) : bytes_(bytes) {}

  std::uint32_t peek(int count) {
    refill();
    return static_cast<std::uint32_t>(buffer_ & ((std::uint64_t{1} << count) - 1));
  }
  void skip(int count) {
    buffer_ >>= count;
    held_ -= count;
    position_ += static_cast<std::size_t>(count);
  }
  std::uint32_t take(int count) {
    const std::uint32_t bits = peek(count);
    skip(count);
    return bits;
  }
  // To the next byte boundary (stored blocks).
  void align() { skip(static_cast<int>((8 - position_ % 8) % 8)); }
  // Past `count` whole bytes, the reader being byte-aligned.
  void skip_bytes(std::size_t count) {
    position_ += count * 8;
    buffer_ = 0;
    held_ = 0;
    next_ = position_ / 8;
  }
  std::size_t position() const { return position_; }  // in bits
  bool overran() const { return position_ > bytes_.size() * 8; }

 private:
  void refill() {
    while (held_ <= 56) {
      const std::uint64_t byte = next_ < bytes_.size() ? bytes_[next_] : 0;
      buffer_ |= byte << held_;
      held_ += 8;
      ++next_;
    }
  }

  ByteView bytes_;
  std::uint64_t buffer_ = 0;
  int held_ = 0;
  std::size_t next_ = 0;      // the next byte to load
  std::size_t position_ = 0;  // bits consumed
};

constexpr int kMaxCodeBits = 15;

// A canonical Huffman code as a table indexed by the next max_bits bits of the stream: each entry
// is (symbol << 4) | code length, 0 where no code matches (an incomplete code).
class HuffmanTable {
 public:
  void build(const std::uint8_t* lengths, int count) {
    std::array<int, kMaxCodeBits + 1> per_length{};
    max_bits_ = 1;
    for (int i = 0; i < count; ++i) {
      ++per_length[lengths[i]];
      if (lengths[i] > max_bits_) max_bits_ = lengths[i];
    }
    per_length[0] = 0;
    std::array<int, kMaxCodeBits + 2> next_code{};
    int code = 0, left = 1;
    for (int bits = 1; bits <= kMaxCodeBits; ++bits) {
      code = (code + per_length[bits - 1]) << 1;
      next_code[bits] = code;
      left = (left << 1) - per_length[bits];
      if (left < 0) malformed("an over-subscribed code");
    }
    entries_.assign(std::size_t{1} << max_bits_, 0);
    for (int symbol = 0; symbol < count; ++symbol) {
      const int length = lengths[symbol];
      if (length == 0) continue;
      const int reversed = reverse(next_code[length]++, length);
      const auto entry = static_cast<std::uint32_t>(symbol << 4 | length);
      for (std::size_t at = static_cast<std::size_t>(reversed); at < entries_.size(); at += std::size_t{1} << length) {
        entries_[at] = entry;
      }
    }
  }

  int decode(BitReader& bits) const {
    const std::uint32_t entry = entries_[bits.peek(max_bits_)];
    if (entry == 0) malformed("an unassigned code");
    bits.skip(static_cast<int>(entry & 15));
    return static_cast<int>(entry >> 4);
  }

 private:
  static int reverse(int code, int length) {
    int reversed = 0;
    for (int i = 0; i < length; ++i) reversed |= ((code >> i) & 1) << (length - 1 - i);
    return reversed;
  }

  int max_bits_ = 1;
  std::vector<std::uint32_t> entries_;
};

constexpr std::uint8_t kLengthExtraBits[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                               2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};

void skip_codes(BitReader& bits, const HuffmanTable& literals, const HuffmanTable& distances) {
  for (;;) {
    const int symbol = literals.decode(bits);
    if (bits.overran()) malformed("a block running past the end");
    if (symbol < 256) continue;
    if (symbol == 256) return;
    if (symbol > 285) malformed("a bad length symbol");
    bits.skip(kLengthExtraBits[symbol - 257]);
    const int distance = distances.decode(bits);
    if (distance > 29) malformed("a bad distance symbol");
    if (distance >= 4) bits.skip(distance / 2 - 1);
  }
}

void read_dynamic_tables(BitReader& bits, HuffmanTable& literals, HuffmanTable& distances) {
  static constexpr std::uint8_t kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  const int literal_count = static_cast<int>(bits.take(5)) + 257;
  const int distance_count = static_cast<int>(bits.take(5)) + 1;
  if (literal_count > 286 || distance_count > 30) malformed("too many codes");
  const int length_codes = static_cast<int>(bits.take(4)) + 4;
  std::uint8_t code_lengths[19] = {};
  for (int i = 0; i < length_codes; ++i) code_lengths[kOrder[i]] = static_cast<std::uint8_t>(bits.take(3));
  HuffmanTable lengths_code;
  lengths_code.build(code_lengths, 19);
  std::uint8_t lengths[286 + 30] = {};  // the most the counts checked above allow
  const int total = literal_count + distance_count;
  for (int at = 0; at < total;) {
    const int symbol = lengths_code.decode(bits);
    if (symbol < 16) {
      lengths[at++] = static_cast<std::uint8_t>(symbol);
      continue;
    }
    int repeat = 0;
    std::uint8_t value = 0;
    if (symbol == 16) {
      if (at == 0) malformed("a repeat with nothing before it");
      value = lengths[at - 1];
      repeat = 3 + static_cast<int>(bits.take(2));
    } else if (symbol == 17) {
      repeat = 3 + static_cast<int>(bits.take(3));
    } else {
      repeat = 11 + static_cast<int>(bits.take(7));
    }
    if (at + repeat > total) malformed("code lengths past their count");
    std::memset(lengths + at, value, static_cast<std::size_t>(repeat));
    at += repeat;
    if (bits.overran()) malformed("code lengths running past the end");
  }
  literals.build(lengths, literal_count);
  distances.build(lengths + literal_count, distance_count);
}

void fixed_tables(HuffmanTable& literals, HuffmanTable& distances) {
  std::uint8_t lengths[288];
  std::memset(lengths, 8, 144);
  std::memset(lengths + 144, 9, 112);
  std::memset(lengths + 256, 7, 24);
  std::memset(lengths + 280, 8, 8);
  literals.build(lengths, 288);
  std::uint8_t distance_lengths[30];
  std::memset(distance_lengths, 5, 30);
  distances.build(distance_lengths, 30);
}

}  // namespace

DeflateBlocks walk_deflate_blocks(ByteView stream) {
  BitReader bits(stream);
  HuffmanTable literals, distances;
  for (;;) {
    const std::size_t header = bits.position();
    const bool final = bits.take(1) != 0;
    switch (bits.take(2)) {
      case 0: {
        bits.align();
        const std::uint32_t length = bits.take(16), complement = bits.take(16);
        if ((length ^ 0xFFFF) != complement) malformed("a stored block with a bad length");
        bits.skip_bytes(length);
        break;
      }
      case 1:
        fixed_tables(literals, distances);
        skip_codes(bits, literals, distances);
        break;
      case 2:
        read_dynamic_tables(bits, literals, distances);
        skip_codes(bits, literals, distances);
        break;
      default:
        malformed("a reserved block type");
    }
    if (bits.overran()) malformed("a block running past the end");
    if (final) return {header, bits.position()};
  }
}

std::size_t end_with_sync_flush(std::span<std::uint8_t> out, std::size_t size) {
  const DeflateBlocks blocks = walk_deflate_blocks({out.data(), size});
  if (out.size() < blocks.end_bit / 8 + 6) malformed("no room for the sync flush");
  out[blocks.final_block_bit / 8] &= static_cast<std::uint8_t>(~(1u << (blocks.final_block_bit % 8)));
  // An empty stored block: three zero bits (not final, type 0), zeros to the byte boundary, then
  // LEN 0 and NLEN 0xFFFF.
  std::size_t at = blocks.end_bit / 8;
  out[at] &= static_cast<std::uint8_t>((1u << (blocks.end_bit % 8)) - 1);
  const std::size_t header_end = blocks.end_bit + 3;
  at = (header_end + 7) / 8;
  if (at > blocks.end_bit / 8 + 1) out[at - 1] = 0;
  const std::uint8_t flush[4] = {0x00, 0x00, 0xFF, 0xFF};
  std::memcpy(out.data() + at, flush, sizeof flush);
  return at + sizeof flush;
}

}  // namespace sluice::codecs
