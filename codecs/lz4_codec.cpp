// lz4 in the LZ4 frame format: one frame header, then each chunk as one or more independently
// compressed blocks, then the EndMark and the XXH32 content checksum. Blocks are compressed in
// parallel; the content checksum is a running hash, so the framer computes it in stream order.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <lz4.h>
#include <lz4frame.h>
#include <lz4hc.h>

#include <fmt/format.h>

#include "codecs/builtin_codecs.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

constexpr std::uint32_t kFrameMagic = 0x184D2204u;
constexpr std::uint32_t kUncompressedBit = 0x80000000u;

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

class Lz4ChunkCompressor final : public ChunkCompressor {
 public:
  Lz4ChunkCompressor(int level, std::size_t block_bytes)
      : level_(level),
        block_bytes_(block_bytes),
        state_(std::make_unique<char[]>(static_cast<std::size_t>(level < LZ4HC_CLEVEL_MIN ? LZ4_sizeofState()
                                                                                           : LZ4_sizeofStateHC()))) {}

  std::uint64_t compress(ByteView /*history*/, ByteView input, bool /*last*/, Buffer& out) override {
    const std::size_t blocks = (input.size() + block_bytes_ - 1) / block_bytes_;
    out.resize(input.size() + 4 * blocks);
    std::size_t written = 0;
    for (std::size_t at = 0; at < input.size(); at += block_bytes_) {
      const std::size_t length = std::min(block_bytes_, input.size() - at);
      const char* src = reinterpret_cast<const char*>(input.data() + at);
      char* dst = reinterpret_cast<char*>(out.data() + written + 4);
      // Room for one byte less than the input: a block that does not shrink is stored as is.
      const int room = static_cast<int>(length) - 1;
      const int packed = level_ < LZ4HC_CLEVEL_MIN
                             ? LZ4_compress_fast_extState(state_.get(), src, dst, static_cast<int>(length), room, 1)
                             : LZ4_compress_HC_extStateHC(state_.get(), src, dst, static_cast<int>(length), room, level_);
      if (packed > 0) {
        store_le32(out.data() + written, static_cast<std::uint32_t>(packed));
        written += 4 + static_cast<std::size_t>(packed);
      } else {
        store_le32(out.data() + written, static_cast<std::uint32_t>(length) | kUncompressedBit);
        std::memcpy(out.data() + written + 4, src, length);
        written += 4 + length;
      }
    }
    out.resize(written);
    return 0;
  }

 private:
  int level_;
  std::size_t block_bytes_;
  std::unique_ptr<char[]> state_;
};

class Lz4Framer final : public StreamFramer {
 public:
  explicit Lz4Framer(std::uint8_t block_code) : block_code_(block_code) { XXH32_reset(&content_hash_, 0); }

  void header(Buffer& out) override {
    put_le32(out, kFrameMagic);
    // FLG: version 01, independent blocks, no block checksums, no content size, content checksum.
    const std::uint8_t descriptor[2] = {0x40 | 0x20 | 0x04, static_cast<std::uint8_t>(block_code_ << 4)};
    out.append(descriptor);
    const std::uint8_t header_check = static_cast<std::uint8_t>(XXH32(descriptor, sizeof descriptor, 0) >> 8);
    out.append({&header_check, 1});
  }

  void add_chunk(ByteView input, std::uint64_t) override {
    XXH32_update(&content_hash_, input.data(), input.size());
  }

  void trailer(Buffer& out) override {
    put_le32(out, 0);  // EndMark
    put_le32(out, XXH32_digest(&content_hash_));
  }

 private:
  std::uint8_t block_code_;
  XXH32_state_t content_hash_{};
};

// Streaming decoder over liblz4's frame API: concatenated and skippable frames, linked or
// independent blocks, block and content checksums verified when present.
class Lz4Decoder final : public StreamDecoder {
 public:
  Lz4Decoder() : out_(kDecodeOutputBytes) {
    const LZ4F_errorCode_t ret = LZ4F_createDecompressionContext(&context_, LZ4F_VERSION);
    if (LZ4F_isError(ret)) throw Error(ErrorKind::kInternal, "lz4: cannot allocate a decompression context");
  }
  ~Lz4Decoder() override { LZ4F_freeDecompressionContext(context_); }

  void decode(ByteView input, const Emit& emit) override {
    const std::uint8_t* next = input.data();
    std::size_t left = input.size();
    if (left == 0) return;
    for (;;) {
      std::size_t produced = out_.capacity();
      std::size_t taken = left;
      const std::size_t ret = LZ4F_decompress(context_, out_.data(), &produced, next, &taken, nullptr);
      const std::uint64_t position = consumed_ + static_cast<std::uint64_t>(next - input.data()) + taken;
      if (LZ4F_isError(ret)) fail(ret, position);
      if (taken == 0 && produced == 0 && left > 0) {
        throw Error(ErrorKind::kInternal, "lz4 decoder made no progress", {}, position);
      }
      next += taken;
      left -= taken;
      if (produced > 0) emit({out_.data(), produced});
      in_frame_ = ret != 0;
      if (!in_frame_) {
        ++frames_;
        frame_start_ = position;
      }
      if (left == 0 && (produced < out_.capacity() || ret == 0)) break;
    }
    consumed_ += input.size();
  }

  void finish() override {
    if (frames_ == 0 && !in_frame_) throw Error(ErrorKind::kCorruptData, "empty input: not lz4 data", {}, 0);
    if (in_frame_) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("unexpected end of input: the lz4 frame starting at byte {} is truncated",
                              frame_start_),
                  {}, consumed_);
    }
  }

 private:
  [[noreturn]] void fail(std::size_t ret, std::uint64_t position) {
    const std::string reason = LZ4F_getErrorName(ret);
    if (frames_ > 0 && !in_frame_ && reason.find("frameType_unknown") != std::string::npos) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("trailing garbage after the last lz4 frame (which ends at byte {})", frame_start_),
                  {}, frame_start_);
    }
    throw Error(ErrorKind::kCorruptData,
                fmt::format("corrupt lz4 frame starting at byte {}: {}", frame_start_, reason), {}, position);
  }

  LZ4F_dctx* context_ = nullptr;
  Buffer out_;
  std::uint64_t consumed_ = 0;
  std::uint64_t frame_start_ = 0;
  std::uint64_t frames_ = 0;
  bool in_frame_ = false;
};

class Lz4Codec final : public CodecBase {
 public:
  Lz4Codec(CodecInfo info, const CodecOptions& options)
      : CodecBase(std::move(info), options), block_(block_size_for(options_.chunk_bytes)) {}
  std::unique_ptr<ChunkCompressor> make_chunk_compressor() const override {
    return std::make_unique<Lz4ChunkCompressor>(options_.level, block_.bytes);
  }
  std::unique_ptr<StreamFramer> make_framer(const StreamInfo&) const override {
    return std::make_unique<Lz4Framer>(block_.code);
  }
  std::unique_ptr<StreamDecoder> make_decoder() const override { return std::make_unique<Lz4Decoder>(); }

 private:
  BlockSize block_;
};

CodecInfo lz4_info() {
  CodecInfo info;
  info.name = "lz4";
  info.extension = ".lz4";
  info.min_level = 1;
  info.max_level = LZ4HC_CLEVEL_MAX;
  info.default_level = 1;
  info.default_chunk_bytes = 1024 * 1024;  // lz4's window is 64 KiB: bigger blocks gain no ratio
  info.history_bytes = 0;
  info.matches_magic = [](ByteView p) {
    const auto magic = first_frame_magic(p);
    return magic && *magic == kFrameMagic;
  };
  return info;
}

}  // namespace

CodecEntry lz4_entry() { return entry_for<Lz4Codec>(lz4_info()); }

}  // namespace sluice::codecs
