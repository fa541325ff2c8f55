// lz4 in the LZ4 frame format. A stream we write is one frame: the header once (version 01,
// independent blocks, block checksums, the block maximum), then every chunk's blocks in order,
// each a size word, the block (compressed, or stored as is under the size word's high bit) and
// the XXH32 checksum of the block as stored, then the EndMark. Every reader of lz4 frames reads
// the whole stream, including those that stop after one frame (Python's lz4.frame). An empty
// stream is the header and the EndMark.
//
// The header has no content size: StreamInfo carries none, the header is written before the
// stream has been read to its end, and a stream pushed piece by piece (sluice::Compressor) has no
// size up front. Nor is there a content checksum: XXH32 cannot be combined from the blocks', so it
// would be one hash over the whole stream, in order, on one thread, when writing and when reading
// (the serial stage that BENCHMARKS.md describes). The block checksums stand in for it: each is
// computed by the worker that compresses its chunk, and checked by the worker that decodes its
// block, since the splitter below cuts such a frame at every block. They cover the blocks' bytes
// but not their size words, so one bit a block goes unchecked: the stored flag, whose flip makes
// a compressed block come out as its compressed bytes (a content checksum would catch it).
//
// lz4 -d 1.9.4 reads such a frame, but not a frame after it (it reports the next stream as
// undecodable data: after a call that gives liblz4 no input, it is told to read 4 bytes past the
// EndMark). The lz4 tool's own `-BX --no-frame-crc` output meets the same fate.
//
// Streams of earlier versions, which wrote every block as a frame of its own (content size,
// content checksum, no block checksums), are concatenated frames and read as before.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <lz4.h>
#include <lz4frame.h>
#include <lz4hc.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>

#include "codecs/builtin_codecs.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

constexpr std::uint32_t kFrameMagic = 0x184D2204u;
constexpr std::uint32_t kUncompressedBit = 0x80000000u;

// The legacy format (`lz4 -l`, the Linux kernel's): this magic, then blocks of at most 8 MiB of
// content, each a size word and an independent lz4 block, with no checksums and no end mark. It
// ends at the end of the input, or where a size word is larger than any block can be: that word
// is the magic of the next frame.
constexpr std::uint32_t kLegacyMagic = 0x184C2102u;
constexpr std::size_t kLegacyBlockBytes = 8 * 1024 * 1024;
constexpr std::uint32_t kLegacyMaxPackedBytes = LZ4_COMPRESSBOUND(kLegacyBlockBytes);

// The frame's block maximum: the smallest the format offers that holds a whole chunk (4 MiB at
// most; larger chunks become several blocks).
struct BlockSize {
  std::size_t bytes;
  std::uint8_t code;  // BD field value
};
BlockSize block_size_for(std::size_t chunk_bytes) {
  static constexpr BlockSize kSizes[] = {{64 * 1024, 4}, {256 * 1024, 5}, {1024 * 1024, 6}, {4 * 1024 * 1024, 7}};
  for (const auto& size : kSizes)
    if (chunk_bytes <= size.bytes) return size;
  return kSizes[3];
}

// The header of the frame we write: version 01, independent blocks, block checksums, no content
// size, no content checksum; the block maximum; the header checksum.
constexpr std::uint8_t kOwnFrameFlags = 0x40 | 0x20 | 0x10;
constexpr std::size_t kOwnHeaderBytes = 7;
constexpr std::size_t kOwnBlockOverheadBytes = 4 + 4;  // size word, block checksum

// The frame's header before the first chunk and its EndMark after the last; the chunks in
// between are its blocks.
class Lz4Framer final : public StreamFramer {
 public:
  explicit Lz4Framer(std::uint8_t block_code) : block_code_(block_code) {}

  void header(Buffer& out) override {
    std::uint8_t header[kOwnHeaderBytes];
    store_le32(header, kFrameMagic);
    header[4] = kOwnFrameFlags;
    header[5] = static_cast<std::uint8_t>(block_code_ << 4);
    header[6] = static_cast<std::uint8_t>(XXH32(header + 4, 2, 0) >> 8);
    out.append(header);
  }
  void add_chunk(const ChunkRecord&) override {}
  void trailer(Buffer& out) override { put_le32(out, 0); }  // EndMark

 private:
  std::uint8_t block_code_;
};

class Lz4ChunkCompressor final : public ChunkCompressor {
 public:
  Lz4ChunkCompressor(int level, BlockSize block)
      : level_(level),
        block_bytes_(block.bytes),
        state_(std::make_unique<char[]>(
            static_cast<std::size_t>(level < LZ4HC_CLEVEL_MIN ? LZ4_sizeofState() : LZ4_sizeofStateHC()))) {}

  // The chunk's blocks, each of at most the block maximum; an empty chunk (only ever a whole
  // empty stream) has none.
  std::uint64_t compress_chunk(ByteView /*history*/, ByteView input, bool /*last*/, Buffer& out) override {
    const std::size_t blocks = (input.size() + block_bytes_ - 1) / block_bytes_;
    out.resize(input.size() + kOwnBlockOverheadBytes * blocks);
    std::size_t written = 0;
    for (std::size_t at = 0; at < input.size();) {
      const std::size_t length = std::min(block_bytes_, input.size() - at);
      written += put_block(input.subspan(at, length), out.data() + written);
      at += length;
    }
    out.resize(written);
    return 0;
  }

 private:
  // Writes the block's size word, its bytes and their checksum at `dst`; returns how many bytes
  // that took.
  std::size_t put_block(ByteView content, std::uint8_t* dst) {
    const char* src = reinterpret_cast<const char*>(content.data());
    std::uint8_t* data = dst + 4;
    const int length = static_cast<int>(content.size());
    // Room for one byte less than the input: a block that does not shrink is stored as is.
    const int room = length - 1;
    char* packed_at = reinterpret_cast<char*>(data);
    const int packed = level_ < LZ4HC_CLEVEL_MIN
                           ? LZ4_compress_fast_extState(state_.get(), src, packed_at, length, room, 1)
                           : LZ4_compress_HC_extStateHC(state_.get(), src, packed_at, length, room, level_);
    std::size_t size = 0;
    if (packed > 0) {
      size = static_cast<std::size_t>(packed);
      store_le32(dst, static_cast<std::uint32_t>(size));
    } else {
      size = content.size();
      store_le32(dst, static_cast<std::uint32_t>(size) | kUncompressedBit);
      std::memcpy(data, src, size);
    }
    store_le32(data + size, XXH32(data, size, 0));  // the block checksum: of the block as stored
    return 4 + size + 4;
  }

  int level_;
  std::size_t block_bytes_;
  std::unique_ptr<char[]> state_;
};

// Streaming decoder over liblz4's frame API: concatenated and skippable frames, linked or
// independent blocks, block and content checksums verified when present; legacy frames (which
// liblz4's frame API does not read) block by block itself.
class Lz4Decoder final : public StreamDecoder {
 public:
  Lz4Decoder() : out_(kDecodeOutputBytes) {
    const LZ4F_errorCode_t ret = LZ4F_createDecompressionContext(&context_, LZ4F_VERSION);
    if (LZ4F_isError(ret)) throw Error(ErrorKind::kInternal, "lz4: cannot allocate a decompression context");
  }
  ~Lz4Decoder() override { LZ4F_freeDecompressionContext(context_); }

  void decode(ByteView input, const Emit& emit) override {
    while (!input.empty()) {
      if (legacy_) {
        input = legacy_bytes(input, emit);
      } else if (in_frame_) {
        input = frame_bytes(input, emit);
      } else {
        input = next_frame(input, emit);
      }
    }
  }

  void resume_at(std::uint64_t offset) override {
    position_ = frame_start_ = offset;
    frames_ = std::max<std::uint64_t>(frames_, 1);
  }

  void finish() override {
    if (frames_ == 0 && !in_frame_ && pending_.empty()) {
      throw Error(ErrorKind::kCorruptData, "empty input: not lz4 data", {}, 0);
    }
    // A skippable frame cut short after its header ends the stream, as lz4 -d takes it.
    if (in_frame_ && skippable_ && position_ - frame_start_ >= 8) return;
    // Fewer than four bytes after the last frame (a newline, say) that no frame begins with:
    // garbage, as four or more that are not a magic are, not a frame cut short.
    if (!in_frame_ && !legacy_ && frames_ > 0 && !pending_.empty() &&
        !could_begin_frame(
            pending_.view(),
            {{kFrameMagic, 0xFFFFFFFFu}, {kLegacyMagic, 0xFFFFFFFFu}, {kOnlySkippableFrames, 0xFFFFFFF0u}})) {
      throw Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last lz4 frame", {}, position_);
    }
    // pending_ holds the start of a legacy block, or of the next frame's magic.
    if (in_frame_ || !pending_.empty()) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("unexpected end of input: the lz4 {} starting at byte {} is truncated",
                              legacy_ ? "legacy block" : "frame", in_frame_ ? frame_start_ : position_),
                  {}, position_ + pending_.size());
    }
  }

 private:
  // Between frames: the first four bytes tell a legacy frame from one for liblz4.
  ByteView next_frame(ByteView input, const Emit& emit) {
    input = gather(input, 4);
    if (pending_.size() < 4) return input;
    frame_start_ = position_;
    const std::uint32_t magic = load_le32(pending_.data());
    if (magic == kLegacyMagic) {
      legacy_ = true;
      ++frames_;
      position_ += 4;
      pending_.clear();
      return input;
    }
    if (magic != kFrameMagic && (magic & 0xFFFFFFF0u) != kOnlySkippableFrames) {
      if (frames_ > 0) throw Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last lz4 frame", {}, position_);
      throw Error(ErrorKind::kCorruptData, "not an lz4 frame", {}, position_);
    }
    skippable_ = magic != kFrameMagic;
    std::uint8_t magic_bytes[4];
    std::memcpy(magic_bytes, pending_.data(), 4);
    pending_.clear();
    frame_bytes({magic_bytes, 4}, emit);
    return input;
  }

  // Feeds liblz4 until `input` is used up or a frame ends; returns what is left.
  ByteView frame_bytes(ByteView input, const Emit& emit) {
    const std::uint8_t* next = input.data();
    std::size_t left = input.size();
    for (;;) {
      std::size_t produced = out_.capacity();
      std::size_t taken = left;
      const std::size_t ret = LZ4F_decompress(context_, out_.data(), &produced, next, &taken, nullptr);
      if (LZ4F_isError(ret)) fail(ret, frame_start_);  // taken means nothing after an error
      if (taken == 0 && produced == 0 && left > 0) {
        throw Error(ErrorKind::kInternal, "lz4 decoder made no progress", {}, position_);
      }
      next += taken;
      left -= taken;
      position_ += taken;
      if (produced > 0) emit({out_.data(), produced});
      in_frame_ = ret != 0;
      if (!in_frame_) {
        ++frames_;
        return {next, left};
      }
      if (left == 0 && produced < out_.capacity()) return {next, 0};
    }
  }

  // A legacy frame's blocks, each gathered whole and decoded alone, until a size word that no
  // block can have: the next frame's magic, left in pending_ for next_frame().
  ByteView legacy_bytes(ByteView input, const Emit& emit) {
    input = gather(input, 4);
    if (pending_.size() < 4) return input;
    const std::uint32_t word = load_le32(pending_.data());
    if (word > kLegacyMaxPackedBytes) {
      legacy_ = false;
      return input;
    }
    if (word == 0) throw Error(ErrorKind::kCorruptData, "corrupt lz4 legacy block: 0 bytes", {}, position_);
    input = gather(input, 4 + std::size_t{word});
    if (pending_.size() < 4 + std::size_t{word}) return input;
    if (legacy_out_.capacity() < kLegacyBlockBytes) legacy_out_.reserve(kLegacyBlockBytes);
    const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(pending_.data() + 4),
                                        reinterpret_cast<char*>(legacy_out_.data()), static_cast<int>(word),
                                        static_cast<int>(kLegacyBlockBytes));
    if (got < 0) throw Error(ErrorKind::kCorruptData, "corrupt lz4 legacy block", {}, position_);
    emit({legacy_out_.data(), static_cast<std::size_t>(got)});
    position_ += pending_.size();
    pending_.clear();
    return input;
  }

  // Moves bytes from `input` into pending_ until it holds `bytes`; returns the rest of `input`.
  ByteView gather(ByteView input, std::size_t bytes) {
    const std::size_t take = std::min(input.size(), bytes - std::min(bytes, pending_.size()));
    pending_.append(input.first(take));
    return input.subspan(take);
  }

  [[noreturn]] void fail(std::size_t ret, std::uint64_t position) {
    throw Error(ErrorKind::kCorruptData,
                fmt::format("corrupt lz4 frame starting at byte {}: {}", frame_start_, LZ4F_getErrorName(ret)), {},
                position);
  }

  LZ4F_dctx* context_ = nullptr;
  Buffer out_;
  Buffer pending_;      // bytes gathered across calls: a frame's magic, or a legacy block
  Buffer legacy_out_;   // a legacy block's content (allocated with the first one)
  std::uint64_t position_ = 0;  // stream offset of the first byte not yet decoded (pending_ starts there)
  std::uint64_t frame_start_ = 0;
  std::uint64_t frames_ = 0;
  bool in_frame_ = false;
  bool skippable_ = false;  // the frame being read is a skippable one
  bool legacy_ = false;
};

// Flags passed from the splitter to the unit decoder and the verifier.
constexpr std::uint32_t kFrameHeader = 1;      // marker: a frame begins
constexpr std::uint32_t kFrameEnd = 2;         // marker: a frame ends
constexpr std::uint32_t kHasContentCheck = 4;  // header: the frame ends with a content checksum
constexpr std::uint32_t kHasContentSize = 8;   // header: value is the declared content size
constexpr std::uint32_t kHasBlockCheck = 16;   // unit: the block ends with its own checksum
constexpr std::uint32_t kWholeFrame = 32;      // unit: whole frames of at most one block each
constexpr std::uint32_t kLegacyBlock = 64;     // unit: a legacy block (its data may exceed the block size)
// Small blocks or one-block frames are gathered into units of at least this many bytes (while
// what they can decode to stays within kMaxGatheredOutputBytes, or one block): a unit each let a
// flood of them (6-byte blocks of one literal, empty frames) run 20-43 times slower than lz4 -t.
constexpr std::size_t kMinUnitInputBytes = 4 * 1024;
constexpr std::size_t kMaxGatheredOutputBytes = 4 * 1024 * 1024;
// The most an lz4 block decodes to, per byte: a match length extension byte adds 255.
constexpr std::size_t kMaxLz4Ratio = 256;

// Finds the blocks of lz4 frames whose blocks are independent, and of legacy frames. A frame with
// linked blocks (or a dictionary) sends the rest of the stream to the serial decoder.
class Lz4Splitter final : public StreamSplitter {
 public:
  Cut find_cut(ByteView b, std::uint64_t offset) override {
    if (legacy_) return next_legacy_block(b, offset);
    return in_frame_ ? next_block(b, offset) : next_frame(b, offset);
  }

  void finish_at(std::uint64_t offset) override {
    if (in_frame_) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("unexpected end of input: the lz4 frame starting at byte {} is truncated", frame_start_),
                  {}, offset);
    }
  }
  // Left at the end between frames: a frame cut short (a one-block frame is one unit, so it is
  // all that is left), or fewer than four bytes after the last frame. The streaming decoder gives
  // what its complete blocks decode to, then tells a frame cut short from trailing garbage
  // (Lz4Decoder::finish). Within a frame of several blocks the complete ones are units already.
  Cut cut_at_end(ByteView, std::uint64_t) override { return !in_frame_ && !legacy_ ? serial() : Cut{}; }
  // Between frames: a new decoder starts at the next one (not within a frame's blocks, nor in a
  // legacy stream, whose blocks a resumed decoder would not know for one).
  bool serial_may_start_here() const override { return !in_frame_ && !legacy_; }

 private:
  Cut next_frame(ByteView b, std::uint64_t offset) {
    if (b.size() < 4) return need_more();
    const std::uint32_t magic = load_le32(b.data());
    if (magic == kLegacyMagic) {
      legacy_ = true;
      ++frames_;
      return marker(4);
    }
    const bool skippable = (magic & 0xFFFFFFF0u) == kOnlySkippableFrames;
    if (!skippable && magic != kFrameMagic) {  // told from four bytes, however few follow
      if (frames_ > 0) throw Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last lz4 frame", {}, offset);
      throw Error(ErrorKind::kCorruptData, "not an lz4 frame", {}, offset);
    }
    if (b.size() < 8) return need_more();
    if (skippable) {
      Cut cut = marker(8 + std::size_t{load_le32(b.data() + 4)});
      cut.may_end_early = true;  // as lz4 -d, which takes a skippable frame cut short at the end
      return cut;
    }
    const std::uint8_t flags = b[4], descriptor = b[5];
    const std::size_t header = 7 + (flags & 0x08 ? 8 : 0) + (flags & 0x01 ? 4 : 0);
    if (b.size() < header) return need_more();
    const int block_code = (descriptor >> 4) & 0x7;
    if ((flags >> 6) != 1 || (flags & 0x02) || (descriptor & 0x8F) || block_code < 4) {
      throw Error(ErrorKind::kCorruptData, "corrupt lz4 frame header", {}, offset);
    }
    if (static_cast<std::uint8_t>(XXH32(b.data() + 4, header - 5, 0) >> 8) != b[header - 1]) {
      throw Error(ErrorKind::kCorruptData, "corrupt lz4 frame header: header checksum mismatch", {}, offset);
    }
    if (!(flags & 0x20) || (flags & 0x01)) return serial();  // linked blocks or a dictionary
    const std::size_t max_block = std::size_t{1} << (8 + 2 * block_code);
    // A frame of one block or none (a stream sluice writes of at most one block, every frame an
    // older sluice wrote) is one unit, decoded and checked, checksums and all, by a worker.
    // Finding out takes the first block buffered, which the block-by-block path below would need
    // next anyway. A frame of more blocks (sluice's of more than one block, the lz4 tool's) is a
    // unit per block, its block checksum (if any) checked by the worker that decodes it.
    if (b.size() < header + 4) return need_more();
    std::size_t end_mark = header;
    if (const std::uint32_t word = load_le32(b.data() + header); word != 0) {
      end_mark += block_bytes(word, max_block, flags & 0x10, offset + header);
      if (b.size() < end_mark + 4) return need_more();
    }
    if (load_le32(b.data() + end_mark) == 0) {
      std::size_t bytes = end_mark + 4 + (flags & 0x04 ? 4 : 0);
      if (b.size() < bytes) return need_more();
      ++frames_;
      std::size_t most = std::min(max_block, kMaxLz4Ratio * (end_mark - header));
      while (bytes < kMinUnitInputBytes) {  // and the whole one-block frames buffered after it
        const std::optional<std::pair<std::size_t, std::size_t>> next = whole_frame(b.subspan(bytes));
        if (!next || most + next->second > std::max(max_block, kMaxGatheredOutputBytes)) break;
        bytes += next->first;
        most += next->second;
        ++frames_;
      }
      return unit(bytes, std::max<std::size_t>(most, 1), kWholeFrame);
    }
    in_frame_ = true;
    frame_start_ = offset;
    ++frames_;
    max_block_ = max_block;
    block_check_ = flags & 0x10;
    content_check_ = flags & 0x04;
    std::uint32_t marker_flags = kFrameHeader | (content_check_ ? kHasContentCheck : 0);
    std::uint64_t content_size = 0;
    if (flags & 0x08) {
      marker_flags |= kHasContentSize;
      content_size = std::uint64_t{load_le32(b.data() + 6)} | std::uint64_t{load_le32(b.data() + 10)} << 32;
    }
    return marker(header, marker_flags, content_size);
  }

  // A block, and the blocks buffered after it while the unit is small (kMinUnitInputBytes); the
  // unit's value is the frame's block size, which each of its blocks must keep to.
  Cut next_block(ByteView b, std::uint64_t offset) {
    if (b.size() < 4) return need_more();
    const std::uint32_t word = load_le32(b.data());
    if (word == 0) {  // EndMark, then the content checksum if the frame has one
      const std::size_t bytes = content_check_ ? 8 : 4;
      if (b.size() < bytes) return need_more();
      in_frame_ = false;
      return marker(bytes, kFrameEnd | (content_check_ ? kHasContentCheck : 0),
                    content_check_ ? load_le32(b.data() + 4) : 0);
    }
    std::size_t bytes = block_bytes(word, max_block_, block_check_, offset), blocks = 1;
    if (b.size() < bytes) return need_more();
    const auto most = [&](std::size_t count, std::size_t in) {
      return std::min(count * max_block_, kMaxLz4Ratio * in);
    };
    while (bytes < kMinUnitInputBytes && b.size() >= bytes + 4) {
      const std::uint32_t next = load_le32(b.data() + bytes);
      // The EndMark, or a size the next call refuses at its own offset, ends the gathering.
      if (next == 0 || (next & ~kUncompressedBit) > max_block_) break;
      const std::size_t more = block_bytes(next, max_block_, block_check_, offset + bytes);
      if (b.size() < bytes + more || most(blocks + 1, bytes + more) > std::max(max_block_, kMaxGatheredOutputBytes))
        break;
      bytes += more;
      ++blocks;
    }
    Cut cut = unit(bytes, most(blocks, bytes), block_check_ ? kHasBlockCheck : 0);
    cut.value = max_block_;
    return cut;
  }

  // The length of the frame at the start of `b`, and the most it decodes to, where it is a whole frame
  // next_frame would make one unit of (independent blocks, no dictionary, at most one block, its
  // header valid), all buffered; else nothing (next_frame then says what it is).
  static std::optional<std::pair<std::size_t, std::size_t>> whole_frame(ByteView b) {
    if (b.size() < 7 || load_le32(b.data()) != kFrameMagic) return std::nullopt;
    const std::uint8_t flags = b[4], descriptor = b[5];
    const std::size_t header = 7 + (flags & 0x08 ? 8 : 0) + (flags & 0x01 ? 4 : 0);
    const int block_code = (descriptor >> 4) & 0x7;
    if (b.size() < header + 4 || (flags >> 6) != 1 || (flags & 0x02) || (descriptor & 0x8F) || block_code < 4 ||
        !(flags & 0x20) || (flags & 0x01) ||
        static_cast<std::uint8_t>(XXH32(b.data() + 4, header - 5, 0) >> 8) != b[header - 1]) {
      return std::nullopt;
    }
    const std::size_t max_block = std::size_t{1} << (8 + 2 * block_code);
    std::size_t end_mark = header;
    if (const std::uint32_t word = load_le32(b.data() + header); word != 0) {
      if ((word & ~kUncompressedBit) > max_block) return std::nullopt;
      end_mark += block_bytes(word, max_block, flags & 0x10, 0);
      if (b.size() < end_mark + 4) return std::nullopt;
    }
    const std::size_t bytes = end_mark + 4 + (flags & 0x04 ? 4 : 0);
    if (load_le32(b.data() + end_mark) != 0 || b.size() < bytes) return std::nullopt;
    return std::pair{bytes, std::min(max_block, kMaxLz4Ratio * (end_mark - header))};
  }

  // A legacy block is a unit of its own (the unit decoder's plain-block path: no block checksum, and
  // its size word never has the stored bit, which no block of at most 8 MiB needs).
  Cut next_legacy_block(ByteView b, std::uint64_t offset) {
    if (b.size() < 4) return need_more();
    const std::uint32_t word = load_le32(b.data());
    if (word > kLegacyMaxPackedBytes) {  // no block is this large: the next frame's magic
      legacy_ = false;
      return next_frame(b, offset);
    }
    if (word == 0) throw Error(ErrorKind::kCorruptData, "corrupt lz4 legacy block: 0 bytes", {}, offset);
    if (b.size() < 4 + std::size_t{word}) return need_more();
    Cut cut = unit(4 + std::size_t{word}, kLegacyBlockBytes, kLegacyBlock);
    cut.value = kLegacyBlockBytes;  // the most a legacy block decodes to
    return cut;
  }

  // The bytes of the block whose size word is `word` (at stream offset `offset`): the word, the
  // data and the block checksum if the frame has them.
  static std::size_t block_bytes(std::uint32_t word, std::size_t max_block, bool block_check, std::uint64_t offset) {
    const std::size_t size = word & ~kUncompressedBit;
    if (size > max_block) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("corrupt lz4 block: {} bytes in a frame of {}-byte blocks", size, max_block), {}, offset);
    }
    return 4 + size + (block_check ? 4 : 0);
  }

  bool in_frame_ = false;
  bool legacy_ = false;  // between the blocks of a legacy frame, which has no end mark
  std::uint64_t frame_start_ = 0;
  std::uint64_t frames_ = 0;
  std::size_t max_block_ = 0;
  bool block_check_ = false;
  bool content_check_ = false;
};

class Lz4UnitDecoder final : public UnitDecoder {
 public:
  void decode_unit(ByteView unit, const Cut& cut, Buffer& out) override {
    out.clear();
    const bool frames = cut.flags & kWholeFrame;
    for (std::size_t at = 0; at < unit.size();) {  // its frames or blocks (the splitter's walk)
      try {
        at += frames ? decode_frame(unit.subspan(at), out) : decode_block(unit.subspan(at), cut, out);
      } catch (const Error& e) {
        if (e.offset()) throw;
        throw Error(e.kind(), e.detail(), {}, at);  // where in the unit the failing block or frame starts
      }
    }
  }

 private:
  // A frame whose header the splitter checked (no dictionary, at most one block) at the start of
  // `frames`: its output appended to `out`; returns its length.
  static std::size_t decode_frame(ByteView frames, Buffer& out) {
    const std::uint8_t flags = frames[4], descriptor = frames[5];
    const bool content_size = flags & 0x08, content_check = flags & 0x04, block_check = flags & 0x10;
    const std::size_t max_block = std::size_t{1} << (8 + 2 * ((descriptor >> 4) & 0x7));
    const std::size_t header = 7 + (content_size ? 8 : 0);
    const std::size_t before = out.size();
    std::size_t end_mark = header;
    if (load_le32(frames.data() + header) != 0)
      end_mark += append_block(frames.subspan(header), block_check, max_block, out, max_block);
    const ByteView decoded = out.view().subspan(before);
    if (content_size) {
      const std::uint64_t declared =
          std::uint64_t{load_le32(frames.data() + 6)} | std::uint64_t{load_le32(frames.data() + 10)} << 32;
      if (declared != decoded.size()) {
        throw Error(ErrorKind::kCorruptData,
                    fmt::format("corrupt lz4 frame: {} bytes decoded, header says {}", decoded.size(), declared));
      }
    }
    if (content_check && XXH32(decoded.data(), decoded.size(), 0) != load_le32(frames.data() + end_mark + 4)) {
      throw Error(ErrorKind::kCorruptData, "corrupt lz4 frame: content checksum mismatch");
    }
    return end_mark + 4 + (content_check ? 4 : 0);
  }

  // The block at the start of `blocks`, of a frame whose block size is the cut's value (or a
  // legacy block: incompressible data makes its data longer than the 8 MiB it decodes to).
  static std::size_t decode_block(ByteView blocks, const Cut& cut, Buffer& out) {
    const auto max_block = static_cast<std::size_t>(cut.value);
    const std::size_t max_data = (cut.flags & kLegacyBlock) ? kLegacyMaxPackedBytes : max_block;
    return append_block(blocks, cut.flags & kHasBlockCheck, max_block, out, max_data);
  }

  // A block: its size word, its data (at most `max_data` bytes: a frame's blocks hold at most
  // their block size), its checksum if `block_check`; at most `max_block` bytes decoded, appended
  // to `out`. Returns its length.
  static std::size_t append_block(ByteView block, bool block_check, std::size_t max_block, Buffer& out,
                                  std::size_t max_data) {
    const std::uint32_t word = load_le32(block.data());
    const std::size_t size = word & ~kUncompressedBit;
    const std::size_t bytes = 4 + size + (block_check ? 4 : 0);
    if (size > max_data || bytes > block.size()) throw Error(ErrorKind::kCorruptData, "corrupt lz4 block");
    const std::uint8_t* data = block.data() + 4;
    if (block_check && XXH32(data, size, 0) != load_le32(data + size)) {
      throw Error(ErrorKind::kCorruptData, "corrupt lz4 block: block checksum mismatch");
    }
    if (word & kUncompressedBit) {
      out.append({data, size});
      return bytes;
    }
    const std::size_t before = out.size();
    out.resize(before + max_block);
    const int got =
        LZ4_decompress_safe(reinterpret_cast<const char*>(data), reinterpret_cast<char*>(out.data() + before),
                            static_cast<int>(size), static_cast<int>(max_block));
    if (got < 0) throw Error(ErrorKind::kCorruptData, "corrupt lz4 block");
    out.resize(before + static_cast<std::size_t>(got));
    return bytes;
  }
};

// Checks, in stream order, what spans the blocks of a frame decoded block by block: the declared
// size, and the content checksum where the frame has one (the lz4 tool's; sluice's has none, so
// its blocks are counted here, never hashed). A whole-frame unit was checked by its decoder.
class Lz4Verifier final : public UnitVerifier {
 public:
  void on_marker(const Cut& cut, std::uint64_t offset) override {
    if (cut.flags & kFrameHeader) {
      in_frame_ = true;
      content_check_ = cut.flags & kHasContentCheck;
      XXH32_reset(&hash_, 0);
      content_bytes_ = 0;
      declared_size_ = (cut.flags & kHasContentSize) ? std::optional<std::uint64_t>(cut.value) : std::nullopt;
    } else if (cut.flags & kFrameEnd) {
      in_frame_ = false;
      if ((cut.flags & kHasContentCheck) && XXH32_digest(&hash_) != static_cast<std::uint32_t>(cut.value)) {
        throw Error(ErrorKind::kCorruptData, "corrupt lz4 frame: content checksum mismatch", {}, offset);
      }
      if (declared_size_ && *declared_size_ != content_bytes_) {
        throw Error(ErrorKind::kCorruptData,
                    fmt::format("corrupt lz4 frame: {} bytes decoded, header says {}", content_bytes_, *declared_size_),
                    {}, offset);
      }
    }
  }
  void on_unit(const Cut&, ByteView decoded) override {
    if (!in_frame_) return;
    if (content_check_) XXH32_update(&hash_, decoded.data(), decoded.size());
    content_bytes_ += decoded.size();
  }

 private:
  bool in_frame_ = false;
  bool content_check_ = false;  // the frame ends with a content checksum: hash what it holds
  XXH32_state_t hash_{};
  std::uint64_t content_bytes_ = 0;
  std::optional<std::uint64_t> declared_size_;
};

// What an lz4 stream records (sluice -l): frames walked by their blocks' size words; the size is
// known when every frame's header has a content size (ours have none: lz4's CLI writes one only
// with --content-size). Skippable frames hold no data; the legacy format records nothing.
StreamFacts lz4_stream_facts(ByteView s) {
  StreamFacts facts;
  std::uint64_t total = 0;
  bool sized = true;
  std::string check;
  const auto unknown = [&] { return StreamFacts{facts.units, std::nullopt, check}; };
  for (std::size_t at = 0; at < s.size();) {
    if (s.size() - at < 8) return unknown();
    const std::uint32_t magic = load_le32(s.data() + at);
    if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) {  // skippable frame
      at += 8 + std::size_t{load_le32(s.data() + at + 4)};
      continue;
    }
    if (magic != kFrameMagic) return unknown();
    const std::uint8_t flags = s[at + 4];
    const bool block_checks = flags & 0x10, content_size = flags & 0x08, content_check = flags & 0x04;
    std::size_t next = at + 6 + (content_size ? 8 : 0) + (flags & 0x01 ? 4 : 0) + 1;
    if (next > s.size()) return unknown();
    // Sizes that add up past 2^64 are no record (zstd_codec.cpp): decoded to count.
    if (!content_size || __builtin_add_overflow(total, load_le64(s.data() + at + 6), &total)) sized = false;
    while (true) {
      if (next + 4 > s.size()) return unknown();
      const std::uint32_t word = load_le32(s.data() + next);
      next += 4;
      if (word == 0) break;  // EndMark
      next += (word & ~kUncompressedBit) + (block_checks ? 4 : 0);
    }
    next += content_check ? 4 : 0;
    if (next > s.size()) return unknown();
    const std::string frame_check = content_check ? "XXH32" : block_checks ? "XXH32 (blocks)" : "none";
    check = facts.units == 0 || check == frame_check ? frame_check : "mixed";
    ++facts.units;
    at = next;
  }
  facts.check = check;
  if (sized) facts.uncompressed_bytes = total;
  return facts;
}

class Lz4Codec final : public CodecBase {
 public:
  Lz4Codec(CodecInfo info, const CodecOptions& options)
      : CodecBase(std::move(info), options), block_(block_size_for(options_.chunk_bytes)) {}
  std::unique_ptr<ChunkCompressor> new_chunk_compressor() const override {
    return std::make_unique<Lz4ChunkCompressor>(options_.level, block_);
  }
  std::unique_ptr<StreamFramer> new_framer(const StreamInfo&) const override {
    return std::make_unique<Lz4Framer>(block_.code);
  }
  std::unique_ptr<StreamDecoder> new_decoder() const override { return std::make_unique<Lz4Decoder>(); }
  std::unique_ptr<StreamSplitter> new_splitter() const override { return std::make_unique<Lz4Splitter>(); }
  std::unique_ptr<UnitDecoder> new_unit_decoder() const override { return std::make_unique<Lz4UnitDecoder>(); }
  std::unique_ptr<UnitVerifier> new_unit_verifier() const override { return std::make_unique<Lz4Verifier>(); }
  StreamFacts stream_facts(ByteView stream) const override { return lz4_stream_facts(stream); }

 private:
  BlockSize block_;
};

CodecInfo lz4_info() {
  CodecInfo info;
  info.name = "lz4";
  info.extension = ".lz4";
  info.tar_suffixes = {".tlz4"};
  info.min_level = 1;
  info.max_level = LZ4HC_CLEVEL_MAX;
  info.default_level = 1;
  // 4 MiB blocks, as the lz4 program writes by default. lz4's window is 64 KiB, so the block size
  // barely moves the ratio; larger blocks decode faster in parallel (fewer units, outputs in huge
  // pages) at the same compression speed (BENCHMARKS.md, why lz4 blocks are 4 MiB).
  info.default_chunk_bytes = 4 * 1024 * 1024;
  info.history_bytes = 0;
  info.matches_magic = [](ByteView p) {
    const auto magic = first_frame_magic(p);
    return magic && (*magic == kFrameMagic || *magic == kLegacyMagic);
  };
  info.magic_bytes = 4;
  info.unfinished_mark = std::string("\x04\x22\x4d\x18", 4);  // a frame's magic number, and no descriptor
  return info;
}

}  // namespace

CodecEntry lz4_entry() { return entry_for<Lz4Codec>(lz4_info()); }

}  // namespace sluice::codecs
