// The zlib deflate engine: the reference implementation, the only one that can write pigz-style
// members (preset dictionaries and sync flushes), and the fallback for every other operation.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <limits>

#include <fmt/format.h>

#include "codecs/deflate_engines.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

constexpr std::size_t kWindowBytes = 32 * 1024;

// The one place zlib's return codes become our errors: an unexpected code is our bug (kInternal);
// corrupt input is reported by the callers, which know what they were reading.
void check_zlib(int ret, const char* call, const z_stream& stream) {
  if (ret == Z_OK || ret == Z_STREAM_END) return;
  throw Error(ErrorKind::kInternal,
              fmt::format("zlib {} failed: {} ({})", call, stream.msg ? stream.msg : zError(ret), ret));
}

uInt clamp_uint(std::size_t n) { return static_cast<uInt>(std::min<std::size_t>(n, std::numeric_limits<uInt>::max())); }

class ZlibChunkDeflater final : public ChunkDeflater {
 public:
  explicit ZlibChunkDeflater(int level) {
    // Raw deflate (negative window bits): gzip_codec.cpp writes the header and trailer.
    check_zlib(deflateInit2(&stream_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), "deflateInit2", stream_);
  }
  ~ZlibChunkDeflater() override { deflateEnd(&stream_); }

  std::size_t bound(std::size_t input_bytes) const override {
    // deflateBound covers the data; a sync flush adds at most a few bytes more.
    return deflateBound(const_cast<z_stream*>(&stream_), static_cast<uLong>(input_bytes)) + 16;
  }

  // A sync flush leaves an empty stored block: byte-aligned, the stream not ended.
  std::size_t deflate(ByteView input, std::span<std::uint8_t> out, bool final) override {
    check_zlib(deflateReset(&stream_), "deflateReset", stream_);
    stream_.next_in = const_cast<Bytef*>(input.data());
    stream_.avail_in = clamp_uint(input.size());
    stream_.next_out = out.data();
    stream_.avail_out = clamp_uint(out.size());
    const int ret = ::deflate(&stream_, final ? Z_FINISH : Z_SYNC_FLUSH);
    if (final && ret != Z_STREAM_END) check_zlib(ret == Z_OK ? Z_BUF_ERROR : ret, "deflate (chunk)", stream_);
    if (!final && (ret != Z_OK || stream_.avail_in != 0 || stream_.avail_out == 0)) {
      check_zlib(ret == Z_OK ? Z_BUF_ERROR : ret, "deflate (chunk, sync flush)", stream_);
    }
    return out.size() - stream_.avail_out;
  }

 private:
  z_stream stream_{};
};

// Deflates all of `input`, appending to `out` from byte `from` on, ended by `flush` (Z_FINISH:
// the stream's end); `out` grows until zlib is done.
void deflate_all(z_stream& stream, ByteView input, int flush, Buffer& out, std::size_t from = 0) {
  // deflateBound covers the data; a flush adds at most a few bytes more.
  out.resize(from + deflateBound(&stream, static_cast<uLong>(input.size())) + 16);
  stream.next_in = const_cast<Bytef*>(input.data());
  stream.avail_in = clamp_uint(input.size());
  stream.next_out = out.data() + from;
  stream.avail_out = clamp_uint(out.size() - from);
  for (;;) {
    const int ret = ::deflate(&stream, flush);
    if (ret == Z_STREAM_ERROR) check_zlib(ret, "deflate", stream);
    if (flush == Z_FINISH ? ret == Z_STREAM_END : (stream.avail_in == 0 && stream.avail_out != 0)) break;
    if (stream.avail_out != 0) check_zlib(ret == Z_OK ? Z_BUF_ERROR : ret, "deflate (no progress)", stream);
    const std::size_t used = out.size();
    out.resize(used * 2);
    stream.next_out = out.data() + used;
    stream.avail_out = clamp_uint(out.size() - used);
  }
  out.resize(out.size() - stream.avail_out);
}

// Makes the last 32 KiB of `history` the window of a stream just reset (a preset dictionary).
void set_window(z_stream& stream, ByteView history) {
  if (history.empty()) return;
  const ByteView window = history.last(std::min(history.size(), kWindowBytes));
  check_zlib(deflateSetDictionary(&stream, window.data(), static_cast<uInt>(window.size())), "deflateSetDictionary",
             stream);
}

class ZlibHistoryDeflater final : public HistoryDeflater {
 public:
  explicit ZlibHistoryDeflater(int level) {
    check_zlib(deflateInit2(&stream_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), "deflateInit2", stream_);
  }
  ~ZlibHistoryDeflater() override { deflateEnd(&stream_); }

  void deflate(ByteView history, ByteView input, bool last, Buffer& out) override {
    check_zlib(deflateReset(&stream_), "deflateReset", stream_);
    set_window(stream_, history);
    deflate_all(stream_, input, last ? Z_FINISH : Z_SYNC_FLUSH, out);
  }

 private:
  z_stream stream_{};
};

// One deflate stream written piece after piece, the window kept between pieces.
class ZlibPieceDeflater final : public PieceDeflater {
 public:
  explicit ZlibPieceDeflater(int level) {
    check_zlib(deflateInit2(&stream_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), "deflateInit2", stream_);
  }
  ~ZlibPieceDeflater() override { deflateEnd(&stream_); }

  void deflate(ByteView input, End end, Buffer& out) override {
    if (ended_) throw Error(ErrorKind::kInternal, "a piece deflated after the last");
    const int flush = end == End::kFinish ? Z_FINISH : (end == End::kSyncFlush ? Z_SYNC_FLUSH : Z_PARTIAL_FLUSH);
    deflate_all(stream_, input, flush, out, out.size());
    ended_ = end == End::kFinish;
  }

  void reset(ByteView window) override {
    check_zlib(deflateReset(&stream_), "deflateReset", stream_);
    set_window(stream_, window);
    ended_ = false;
  }

 private:
  z_stream stream_{};
  bool ended_ = false;
};

std::string reason(int ret, const z_stream& stream) { return stream.msg ? stream.msg : zError(ret); }

class ZlibWholeInflater final : public WholeInflater {
 public:
  ZlibWholeInflater() { check_zlib(inflateInit2(&stream_, -15), "inflateInit2", stream_); }
  ~ZlibWholeInflater() override { inflateEnd(&stream_); }

  void inflate(ByteView deflated, std::span<std::uint8_t> out) override {
    check_zlib(inflateReset(&stream_), "inflateReset", stream_);
    std::uint8_t spare = 0;  // never a null output pointer, even for empty members
    stream_.next_in = const_cast<Bytef*>(deflated.data());
    stream_.avail_in = clamp_uint(deflated.size());
    stream_.next_out = out.empty() ? &spare : out.data();
    stream_.avail_out = clamp_uint(out.size());
    const int ret = ::inflate(&stream_, Z_FINISH);
    if (ret != Z_STREAM_END) {
      throw Error(ErrorKind::kCorruptData,
                  ret == Z_BUF_ERROR ? (stream_.avail_out == 0 ? "inflates to more than its size field says" : "truncated")
                                     : reason(ret, stream_));
    }
    if (stream_.avail_in != 0 || stream_.total_out != out.size()) {
      throw Error(ErrorKind::kCorruptData, "its size field does not match its contents");
    }
  }

 private:
  z_stream stream_{};
};

class ZlibStreamInflater final : public StreamInflater {
 public:
  ZlibStreamInflater() { check_zlib(inflateInit2(&stream_, -15), "inflateInit2", stream_); }
  ~ZlibStreamInflater() override { inflateEnd(&stream_); }

  void reset(ByteView window, LeadBits lead) override {
    check_zlib(inflateReset(&stream_), "inflateReset", stream_);
    if (!window.empty()) {
      check_zlib(inflateSetDictionary(&stream_, window.data(), clamp_uint(window.size())), "inflateSetDictionary",
                 stream_);
    }
    if (lead.count > 0) check_zlib(inflatePrime(&stream_, lead.count, lead.value), "inflatePrime", stream_);
  }

  Step inflate(ByteView input, std::span<std::uint8_t> out) override {
    stream_.next_in = const_cast<Bytef*>(input.data());
    stream_.avail_in = clamp_uint(input.size());
    const std::size_t offered = stream_.avail_in;
    stream_.next_out = out.data();
    stream_.avail_out = clamp_uint(out.size());
    const std::size_t room = stream_.avail_out;
    const int ret = ::inflate(&stream_, Z_NO_FLUSH);
    if (ret == Z_MEM_ERROR) throw Error(ErrorKind::kInternal, "out of memory in zlib inflate");
    Step step{offered - stream_.avail_in, room - stream_.avail_out, ret == Z_STREAM_END};
    if (ret != Z_OK && ret != Z_BUF_ERROR && ret != Z_STREAM_END) {
      step.error = stream_.msg ? stream_.msg : zError(ret);  // static strings, zlib's
    }
    return step;
  }

 private:
  z_stream stream_{};
};

}  // namespace

std::unique_ptr<ChunkDeflater> make_zlib_chunk_deflater(int level) { return std::make_unique<ZlibChunkDeflater>(level); }
std::unique_ptr<HistoryDeflater> make_zlib_history_deflater(int level) {
  return std::make_unique<ZlibHistoryDeflater>(level);
}
std::unique_ptr<PieceDeflater> make_zlib_piece_deflater(int level) { return std::make_unique<ZlibPieceDeflater>(level); }
std::unique_ptr<WholeInflater> make_zlib_whole_inflater() { return std::make_unique<ZlibWholeInflater>(); }
std::unique_ptr<StreamInflater> make_zlib_stream_inflater() { return std::make_unique<ZlibStreamInflater>(); }

std::uint32_t combine_crc32(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t length_b) {
  static_assert(sizeof(z_off_t) >= sizeof(std::uint64_t), "lengths past 2 GiB need a 64-bit z_off_t");
  // A short B (a flushed record: a combine per flush) is quicker through the CRC of zeros:
  // crc(A + B) = crc(A + zeros) ^ crc(zeros) ^ crc(B), with zeros as long as B. zlib's combine
  // takes the same ~0.3 us whatever the length (3.5% of 20,000 records flushed one by one).
  static constexpr std::size_t kByZeros = 1024;
  if (length_b <= kByZeros) {
    static constexpr std::array<std::uint8_t, kByZeros> kZeros{};
    const ByteView zeros(kZeros.data(), static_cast<std::size_t>(length_b));
    return update_crc32(crc_a, zeros) ^ update_crc32(0, zeros) ^ crc_b;
  }
  return static_cast<std::uint32_t>(crc32_combine(crc_a, crc_b, static_cast<z_off_t>(length_b)));
}

}  // namespace sluice::codecs
