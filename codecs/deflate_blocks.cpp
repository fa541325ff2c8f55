// Walks the blocks of a raw deflate stream (RFC 1951) without producing its output, to find where
// its final block starts and where it ends: what it takes to turn a complete stream into one that
// a following chunk can continue (deflate_engines.h, end_with_sync_flush). Used on the output of
// engines that write only complete streams (libdeflate); every read is bounds-checked and any
// malformed stream is our bug, reported as kInternal.
//
// Also finds where a dynamic-Huffman block may begin in the middle of a stream, at any bit
// (find_dynamic_block): cheap filters on 64 positions at a time, then the header's check by
// zlib's rules, the same one the walk makes, on the few positions they leave. The filters read
// whole words unchecked, within bounds by construction (kScanSlack); the check reads as the walk.
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "codecs/builtin_codecs.h"
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
  // From bit `start` on.
  BitReader(ByteView bytes, std::size_t start) : bytes_(bytes), next_(start / 8), position_(start / 8 * 8) {
    refill();
    skip(static_cast<int>(start % 8));
  }

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
    // Whole bytes to 56 to 63 bits, at once. (held_ is below 64 here: only the loop below fills all
    // 64, at the end, and next_ stays there until skip_bytes() empties the buffer.)
    if (next_ + 8 <= bytes_.size()) {
      buffer_ |= load_le64(bytes_.data() + next_) << held_;
      next_ += static_cast<std::size_t>(63 - held_) / 8;
      held_ |= 56;
      return;
    }
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

// The code lengths of a dynamic block's two codes, from its header.
struct DynamicHeader {
  int literal_count = 0;
  int distance_count = 0;
  // Incomplete codes that zlib accepts, besides a distance code of one code of length 1: a
  // literal/length code of one code (end of block, length 1), or no distance code at all.
  bool odd_codes = false;
  std::uint8_t lengths[286 + 30];  // the most the counts allow
};

// Reads a dynamic block's header from HLIT on (after BFINAL and BTYPE) into `header` and checks it
// by zlib's rules: what is wrong with it, or nullptr. `scratch` holds the code-length code.
const char* read_dynamic_header(BitReader& bits, HuffmanTable& scratch, DynamicHeader& header) {
  static constexpr std::uint8_t kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  const int literal_count = static_cast<int>(bits.take(5)) + 257;
  const int distance_count = static_cast<int>(bits.take(5)) + 1;
  if (literal_count > 286 || distance_count > 30) return "too many codes";
  header.literal_count = literal_count;
  header.distance_count = distance_count;
  const int length_codes = static_cast<int>(bits.take(4)) + 4;
  std::uint8_t code_lengths[19] = {};
  int room = 128;  // 2^7 times what the Kraft sum of the code-length code leaves
  for (int i = 0; i < length_codes; ++i) {
    const auto length = static_cast<std::uint8_t>(bits.take(3));
    code_lengths[kOrder[i]] = length;
    if (length != 0) room -= 128 >> length;
  }
  if (room != 0) return "an incomplete or over-subscribed code-length code";
  scratch.build(code_lengths, 19);
  // 2^15 times the Kraft sums of the literal/length and distance codes, and their numbers of codes,
  // as the lengths come: an over-subscribed code is caught as soon as it is.
  int kraft[2] = {}, codes[2] = {};
  // zlib takes an incomplete code only when it has one code, of length 1 (inflate_table()), or
  // for distances none.
  const auto lone = [&](int code) { return codes[code] == 1 && kraft[code] == 1 << 14; };
  std::uint8_t* const lengths = header.lengths;
  const int total = literal_count + distance_count;
  int judged_at = 257;  // where the end-of-block code, then the literal/length code, can be judged
  for (int at = 0; at < total;) {
    const int symbol = scratch.decode(bits);
    int repeat = 1;
    std::uint8_t value = static_cast<std::uint8_t>(symbol);
    if (symbol == 16) {
      if (at == 0) return "a repeat with nothing before it";
      value = lengths[at - 1];
      repeat = 3 + static_cast<int>(bits.take(2));
    } else if (symbol == 17) {
      value = 0;
      repeat = 3 + static_cast<int>(bits.take(3));
    } else if (symbol == 18) {
      value = 0;
      repeat = 11 + static_cast<int>(bits.take(7));
    }
    if (at + repeat > total) return "code lengths past their count";
    std::memset(lengths + at, value, static_cast<std::size_t>(repeat));
    if (value != 0) {
      const int literals = std::clamp(literal_count - at, 0, repeat);
      kraft[0] += literals << (15 - value);
      kraft[1] += (repeat - literals) << (15 - value);
      codes[0] += literals;
      codes[1] += repeat - literals;
      if (kraft[0] > 1 << 15 || kraft[1] > 1 << 15) return "an over-subscribed code";
    }
    at += repeat;
    // What can be judged before the end, is (a header that is not one fails sooner).
    if (at >= judged_at) {
      if (lengths[256] == 0) return "no end-of-block code";
      if (at < literal_count) {
        judged_at = literal_count;
      } else {
        if (kraft[0] != 1 << 15 && !lone(0)) return "an incomplete literal/length code";
        judged_at = total + 1;
      }
    }
  }
  if (bits.overran()) return "a header running past the end";
  if (kraft[1] != 1 << 15 && !lone(1) && codes[1] != 0) return "an incomplete distance code";
  header.odd_codes = kraft[0] != 1 << 15 || codes[1] == 0;
  return nullptr;
}

void read_dynamic_tables(BitReader& bits, HuffmanTable& literals, HuffmanTable& distances) {
  HuffmanTable lengths_code;
  DynamicHeader header;
  if (const char* what = read_dynamic_header(bits, lengths_code, header)) malformed(what);
  literals.build(header.lengths, header.literal_count);
  distances.build(header.lengths + header.literal_count, header.distance_count);
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

// Walks the blocks of a complete stream; `starts`, when not null, gets each block's start.
DeflateBlocks walk_blocks(ByteView stream, std::vector<DeflateBlockStart>* starts) {
  BitReader bits(stream);
  HuffmanTable literals, distances;
  for (;;) {
    const std::size_t header = bits.position();
    const bool final = bits.take(1) != 0;
    const auto type = static_cast<std::uint8_t>(bits.take(2));
    if (starts) starts->push_back({header, type, final});
    switch (type) {
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

// The finder's filters, cheapest first. A position passes the first when its bits say BFINAL 0,
// BTYPE 2, HLIT <= 29 and HDIST <= 29 (HLIT's and HDIST's top four bits are not all ones): about
// one in nine positions of random bits. It is made on 64 positions at once, one word per bit of
// the header: word k holds bit p + k of the 64 positions p.
//
// The second: the code-length code is complete (its Kraft sum is 1), looked up three bits a
// length, four lengths at a time: about one in 250 of what the first lets through. The last is
// read_dynamic_header(), on what is left.
constexpr auto kKraftOfFour = [] {
  std::array<std::uint16_t, 1 << 12> sums{};  // 128 times the Kraft sum of four 3-bit lengths
  for (unsigned packed = 0; packed < sums.size(); ++packed) {
    unsigned sum = 0;
    for (unsigned length = packed; length != 0; length >>= 3) {
      if ((length & 7) != 0) sum += 128u >> (length & 7);
    }
    sums[packed] = static_cast<std::uint16_t>(sum);
  }
  return sums;
}();

// How many bytes past the byte of its last position scan() reads.
constexpr std::size_t kScanSlack = 24;

// The first position in [begin, end) of `data` that passes the filters and `confirm` (given the
// position plus `offset`), plus `offset`. `data` must have kScanSlack bytes after the byte of
// position end - 1.
template <typename Confirm>
std::optional<std::size_t> scan(const std::uint8_t* data, std::size_t begin, std::size_t end, std::size_t offset,
                                Confirm& confirm) {
  for (std::size_t byte = begin / 8; byte * 8 < end; byte += 8) {
    const std::uint64_t low = load_le64(data + byte), high = load_le64(data + byte + 8);
    const auto bit = [low, high](int k) { return low >> k | high << (64 - k); };  // k in 1..63
    std::uint64_t passing =
        ~low & ~bit(1) & bit(2) & ~(bit(4) & bit(5) & bit(6) & bit(7)) & ~(bit(9) & bit(10) & bit(11) & bit(12));
    const std::size_t first = byte * 8;
    if (first < begin) passing &= ~std::uint64_t{0} << (begin - first);
    if (end - first < 64) passing &= (std::uint64_t{1} << (end - first)) - 1;
    for (; passing != 0; passing &= passing - 1) {
      const std::size_t position = first + static_cast<std::size_t>(std::countr_zero(passing));
      const std::size_t counts = position + 13, lengths_at = position + 17;
      const auto length_codes = static_cast<unsigned>((load_le64(data + counts / 8) >> (counts % 8) & 15)) + 4;
      const std::uint64_t lengths = (load_le64(data + lengths_at / 8) >> (lengths_at % 8)) &
                                    ((std::uint64_t{1} << (3 * length_codes)) - 1);  // at most 57 bits
      const unsigned kraft = kKraftOfFour[lengths & 0xFFF] + kKraftOfFour[lengths >> 12 & 0xFFF] +
                             kKraftOfFour[lengths >> 24 & 0xFFF] + kKraftOfFour[lengths >> 36 & 0xFFF] +
                             kKraftOfFour[lengths >> 48];
      if (kraft == 128 && confirm(position + offset)) return position + offset;
    }
  }
  return std::nullopt;
}

}  // namespace

DeflateBlocks walk_deflate_blocks(ByteView stream) { return walk_blocks(stream, nullptr); }

std::vector<DeflateBlockStart> list_deflate_blocks(ByteView stream) {
  std::vector<DeflateBlockStart> starts;
  walk_blocks(stream, &starts);
  return starts;
}

std::optional<std::size_t> find_dynamic_block(ByteView bytes, std::size_t from_bit, std::size_t to_bit) {
  const std::size_t end = std::min(to_bit, bytes.size() * 8);
  HuffmanTable scratch;
  DynamicHeader header;
  auto confirm = [&](std::size_t position) {
    BitReader bits(bytes, position + 3);  // past BFINAL and BTYPE
    return read_dynamic_header(bits, scratch, header) == nullptr && !header.odd_codes;
  };
  // In place where the filters read inside `bytes`; the rest from a copy of its end, zeros after.
  const std::size_t in_place_end =
      bytes.size() > kScanSlack ? std::min(end, (bytes.size() - kScanSlack) * 8) : std::size_t{0};
  if (from_bit < in_place_end) {
    if (auto found = scan(bytes.data(), from_bit, in_place_end, 0, confirm)) return found;
  }
  const std::size_t rest = std::max(from_bit, in_place_end);
  if (rest >= end) return std::nullopt;
  const std::size_t copied = rest / 8;  // the first byte copied; at most kScanSlack bytes follow
  std::uint8_t tail[3 * kScanSlack] = {};
  std::memcpy(tail, bytes.data() + copied, bytes.size() - copied);
  return scan(tail, rest - copied * 8, end - copied * 8, copied * 8, confirm);
}

std::optional<StoredBlockEnd> find_stored_block_end(ByteView bytes, std::size_t from_byte, std::size_t to_byte) {
  auto stored_header_at = [&bytes](std::size_t at) {  // LEN and NLEN at `at`: the block's length
    if (at + 4 > bytes.size()) return std::optional<std::size_t>{};
    const unsigned length = bytes[at] | unsigned{bytes[at + 1]} << 8;
    const unsigned complement = bytes[at + 2] | unsigned{bytes[at + 3]} << 8;
    return (length ^ complement) == 0xFFFF ? std::optional<std::size_t>{length} : std::nullopt;
  };
  auto candidate = [&](std::size_t at) -> std::optional<StoredBlockEnd> {
    const auto length = stored_header_at(at);
    if (!length) return std::nullopt;
    const std::size_t end = at + 4 + *length;
    if (end >= bytes.size()) return std::nullopt;
    const bool stored_next = bytes[end] == 0 && stored_header_at(end + 1);
    if (stored_next || find_dynamic_block(bytes, end * 8, end * 8 + 1)) return StoredBlockEnd{at, end};
    return std::nullopt;
  };
  const std::size_t stop = std::min(to_byte, bytes.size() >= 4 ? bytes.size() - 3 : 0);
  std::size_t at = from_byte;
#if defined(__SSE2__)
  // 15 positions at a time: byte k and k + 1 each the complement of the byte two after it.
  for (; at + 18 <= bytes.size() && at + 15 <= stop; at += 15) {
    const __m128i here = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes.data() + at));
    const __m128i after = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes.data() + at + 2));
    const auto complements = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_xor_si128(here, after), _mm_set1_epi8(static_cast<char>(0xFF)))));
    for (unsigned both = complements & (complements >> 1) & 0x7FFF; both != 0; both &= both - 1) {
      if (auto found = candidate(at + static_cast<std::size_t>(std::countr_zero(both)))) return found;
    }
  }
#endif
  for (; at < stop; ++at) {
    if (auto found = candidate(at)) return found;
  }
  return std::nullopt;
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
