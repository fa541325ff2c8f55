// The libdeflate engine: whole-buffer deflate and inflate, the fastest at gzip's middle and high
// levels (and smaller output than zlib at the same level). It cannot stream, flush or take a
// preset dictionary, so it compresses independent chunks and inflates whole members only.
#include <libdeflate.h>

#include <fmt/format.h>

#include "codecs/deflate_engines.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

// Room end_with_sync_flush() needs past a stream.
constexpr std::size_t kSyncFlushBytes = 6;

class LibdeflateChunkDeflater final : public ChunkDeflater {
 public:
  explicit LibdeflateChunkDeflater(int level) : compressor_(libdeflate_alloc_compressor(level)) {
    if (!compressor_) throw Error(ErrorKind::kInternal, fmt::format("libdeflate: no compressor for level {}", level));
  }
  ~LibdeflateChunkDeflater() override { libdeflate_free_compressor(compressor_); }

  std::size_t bound(std::size_t input_bytes) const override {
    return libdeflate_deflate_compress_bound(compressor_, input_bytes) + kSyncFlushBytes;
  }

  // libdeflate writes only complete streams: a chunk that does not end the stream is walked to
  // its final block, which is made not final, and a sync flush appended (end_with_sync_flush).
  std::size_t deflate(ByteView input, std::span<std::uint8_t> out, bool final) override {
    const std::size_t written =
        libdeflate_deflate_compress(compressor_, input.data(), input.size(), out.data(), out.size() - kSyncFlushBytes);
    // 0 means "did not fit", which bound() rules out: our bug if it happens.
    if (written == 0) throw Error(ErrorKind::kInternal, "libdeflate: compressed chunk larger than its bound");
    return final ? written : end_with_sync_flush(out, written);
  }

 private:
  libdeflate_compressor* compressor_;
};

class LibdeflateWholeInflater final : public WholeInflater {
 public:
  LibdeflateWholeInflater() : decompressor_(libdeflate_alloc_decompressor()) {
    if (!decompressor_) throw Error(ErrorKind::kInternal, "libdeflate: cannot allocate a decompressor");
  }
  ~LibdeflateWholeInflater() override { libdeflate_free_decompressor(decompressor_); }

  void inflate(ByteView deflated, std::span<std::uint8_t> out) override {
    std::size_t in_bytes = 0, out_bytes = 0;
    const libdeflate_result result = libdeflate_deflate_decompress_ex(decompressor_, deflated.data(), deflated.size(),
                                                                      out.data(), out.size(), &in_bytes, &out_bytes);
    switch (result) {
      case LIBDEFLATE_SUCCESS: break;
      case LIBDEFLATE_BAD_DATA: throw Error(ErrorKind::kCorruptData, "invalid deflate data (or truncated)");
      case LIBDEFLATE_INSUFFICIENT_SPACE:
        throw Error(ErrorKind::kCorruptData, "inflates to more than its size field says");
      default: throw Error(ErrorKind::kInternal, fmt::format("libdeflate: unexpected result {}", static_cast<int>(result)));
    }
    if (out_bytes != out.size() || in_bytes != deflated.size()) {
      throw Error(ErrorKind::kCorruptData, "its size field does not match its contents");
    }
  }

 private:
  libdeflate_decompressor* decompressor_;
};

}  // namespace

std::unique_ptr<ChunkDeflater> make_libdeflate_chunk_deflater(int level) {
  return std::make_unique<LibdeflateChunkDeflater>(level);
}
std::unique_ptr<WholeInflater> make_libdeflate_whole_inflater() { return std::make_unique<LibdeflateWholeInflater>(); }

}  // namespace sluice::codecs
