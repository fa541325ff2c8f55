// gzip (RFC 1952) through zlib, built the way pigz builds it: one member whose deflate stream is
// the concatenation of independently compressed chunks. Each chunk is raw-deflated with the
// previous 32 KiB as preset dictionary (so the ratio matches serial gzip), and ends on a byte
// boundary with a sync flush (the last chunk with finish). Each worker computes its chunk's
// CRC-32; the writer combines them in order with crc32_combine.
#include <zlib.h>

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "codecs/builtin_codecs.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

constexpr std::size_t kWindowBytes = 32 * 1024;
constexpr std::uint8_t kMagic0 = 0x1f, kMagic1 = 0x8b;
constexpr std::uint8_t kFlagName = 0x08;
constexpr std::uint8_t kOsUnix = 3;

// The one place zlib's return codes become our errors.
void check_zlib(int ret, const char* call, const z_stream& stream) {
  if (ret == Z_OK || ret == Z_STREAM_END) return;
  throw Error(ErrorKind::kInternal,
              fmt::format("zlib {} failed: {} ({})", call, stream.msg ? stream.msg : zError(ret), ret));
}

class GzipChunkCompressor final : public ChunkCompressor {
 public:
  explicit GzipChunkCompressor(int level) {
    // Raw deflate (negative window bits): the gzip header and trailer come from the framer.
    check_zlib(deflateInit2(&stream_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), "deflateInit2", stream_);
  }
  ~GzipChunkCompressor() override { deflateEnd(&stream_); }

  std::uint64_t compress(ByteView history, ByteView input, bool last, Buffer& out) override {
    check_zlib(deflateReset(&stream_), "deflateReset", stream_);
    if (!history.empty()) {
      const ByteView window = history.last(std::min(history.size(), kWindowBytes));
      check_zlib(deflateSetDictionary(&stream_, window.data(), static_cast<uInt>(window.size())),
                 "deflateSetDictionary", stream_);
    }
    // deflateBound covers the data; a sync flush adds at most a few bytes more.
    out.resize(deflateBound(&stream_, static_cast<uLong>(input.size())) + 16);
    stream_.next_in = const_cast<Bytef*>(input.data());
    stream_.avail_in = static_cast<uInt>(input.size());
    stream_.next_out = out.data();
    stream_.avail_out = static_cast<uInt>(out.size());
    const int flush = last ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
      const int ret = deflate(&stream_, flush);
      if (ret == Z_STREAM_ERROR) check_zlib(ret, "deflate", stream_);
      if (last ? ret == Z_STREAM_END : (stream_.avail_in == 0 && stream_.avail_out != 0)) break;
      if (stream_.avail_out != 0) check_zlib(ret == Z_OK ? Z_BUF_ERROR : ret, "deflate (no progress)", stream_);
      const std::size_t used = out.size();
      out.resize(used * 2);
      stream_.next_out = out.data() + used;
      stream_.avail_out = static_cast<uInt>(out.size() - used);
    }
    out.resize(out.size() - stream_.avail_out);
    return crc32_z(0, input.data(), input.size());
  }

 private:
  z_stream stream_{};
};

class GzipFramer final : public StreamFramer {
 public:
  GzipFramer(int level, StreamInfo info) : level_(level), info_(std::move(info)) {}

  void header(Buffer& out) override {
    const bool has_name = !info_.name.empty();
    const std::uint32_t mtime =
        info_.mtime_seconds > 0 && info_.mtime_seconds <= std::numeric_limits<std::uint32_t>::max()
            ? static_cast<std::uint32_t>(info_.mtime_seconds)
            : 0;
    const std::uint8_t xfl = level_ >= 9 ? 2 : (level_ == 1 ? 4 : 0);
    const std::uint8_t start[4] = {kMagic0, kMagic1, Z_DEFLATED, has_name ? kFlagName : std::uint8_t{0}};
    out.append(start);
    put_le32(out, mtime);
    const std::uint8_t tail[2] = {xfl, kOsUnix};
    out.append(tail);
    if (has_name) {
      std::string name = info_.name;
      std::erase(name, '\0');
      out.append(as_bytes(name));
      const std::uint8_t nul = 0;
      out.append({&nul, 1});
    }
  }

  void add_chunk(ByteView input, std::uint64_t check) override {
    crc_ = crc32_combine(crc_, static_cast<uLong>(check), static_cast<z_off_t>(input.size()));
    size_ += input.size();
  }

  void trailer(Buffer& out) override {
    put_le32(out, static_cast<std::uint32_t>(crc_));
    put_le32(out, static_cast<std::uint32_t>(size_));  // ISIZE is the size modulo 2^32
  }

 private:
  int level_;
  StreamInfo info_;
  uLong crc_ = crc32(0, nullptr, 0);
  std::uint64_t size_ = 0;
};

// Streaming gzip decoder: any number of members, every header flag zlib knows (FNAME, FCOMMENT,
// FEXTRA, FHCRC), CRC-32 and ISIZE checked by zlib at the end of each member.
class GzipDecoder final : public StreamDecoder {
 public:
  GzipDecoder() : out_(kDecodeOutputBytes) {
    // 15 + 16: a 32 KiB window, gzip wrapper only (no zlib or raw streams).
    check_zlib(inflateInit2(&stream_, 15 + 16), "inflateInit2", stream_);
    start_member(0);
  }
  ~GzipDecoder() override { inflateEnd(&stream_); }

  void decode(ByteView input, const Emit& emit) override {
    stream_.next_in = const_cast<Bytef*>(input.data());
    stream_.avail_in = static_cast<uInt>(input.size());
    const std::uint64_t base = consumed_;
    for (;;) {
      if (!in_member_ && stream_.avail_in > 0) {
        in_member_ = true;
        member_start_ = base + (input.size() - stream_.avail_in);
      }
      stream_.next_out = out_.data();
      stream_.avail_out = static_cast<uInt>(out_.capacity());
      const int ret = inflate(&stream_, Z_NO_FLUSH);
      const std::size_t produced = out_.capacity() - stream_.avail_out;
      const std::uint64_t position = base + (input.size() - stream_.avail_in);
      if (ret != Z_OK && ret != Z_STREAM_END && !(ret == Z_BUF_ERROR && stream_.avail_in == 0)) {
        consumed_ = position;
        fail(ret);
      }
      if (produced > 0) emit({out_.data(), produced});
      if (ret == Z_STREAM_END) {
        ++members_;
        in_member_ = false;
        check_zlib(inflateReset(&stream_), "inflateReset", stream_);
        start_member(position);
        continue;
      }
      if (stream_.avail_in == 0 && stream_.avail_out != 0) break;
    }
    consumed_ = base + input.size();
  }

  void finish() override {
    if (members_ == 0 && !in_member_) {
      throw Error(ErrorKind::kCorruptData, "empty input: not gzip data", {}, consumed_);
    }
    if (in_member_) {
      if (members_ > 0 && header_.done != 1) {
        throw Error(ErrorKind::kCorruptData,
                    fmt::format("trailing garbage after the last gzip member (which ends at byte {})", member_start_),
                    {}, member_start_);
      }
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("unexpected end of input: the gzip member starting at byte {} is truncated",
                              member_start_),
                  {}, consumed_);
    }
  }

 private:
  void start_member(std::uint64_t /*position*/) {
    header_ = {};
    // Ask zlib to report header progress: done is 1 once a gzip header has been parsed, -1 if
    // the bytes are not a gzip header at all.
    check_zlib(inflateGetHeader(&stream_, &header_), "inflateGetHeader", stream_);
  }

  [[noreturn]] void fail(int ret) {
    const std::string reason = stream_.msg ? stream_.msg : zError(ret);
    if (members_ > 0 && header_.done != 1) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("trailing garbage after the last gzip member (which ends at byte {})", member_start_),
                  {}, member_start_);
    }
    if (ret == Z_MEM_ERROR) throw Error(ErrorKind::kInternal, "out of memory in zlib inflate", {}, consumed_);
    throw Error(ErrorKind::kCorruptData,
                fmt::format("corrupt gzip member starting at byte {}: {}", member_start_, reason), {}, consumed_);
  }

  z_stream stream_{};
  gz_header header_{};
  Buffer out_;
  std::uint64_t consumed_ = 0;      // compressed bytes fully handed to zlib so far
  std::uint64_t member_start_ = 0;  // where the current (or last) member began
  std::uint64_t members_ = 0;       // members completed
  bool in_member_ = false;
};

class GzipCodec final : public CodecBase {
 public:
  using CodecBase::CodecBase;
  std::unique_ptr<ChunkCompressor> make_chunk_compressor() const override {
    return std::make_unique<GzipChunkCompressor>(options_.level);
  }
  std::unique_ptr<StreamFramer> make_framer(const StreamInfo& stream) const override {
    return std::make_unique<GzipFramer>(options_.level, stream);
  }
  std::unique_ptr<StreamDecoder> make_decoder() const override { return std::make_unique<GzipDecoder>(); }
};

CodecInfo gzip_info() {
  CodecInfo info;
  info.name = "gzip";
  info.extension = ".gz";
  info.min_level = 1;
  info.max_level = 9;
  info.default_level = 6;
  info.default_chunk_bytes = 128 * 1024;  // pigz's block size: same ratio, same granularity
  info.history_bytes = kWindowBytes;
  info.matches_magic = [](ByteView p) { return p.size() >= 2 && p[0] == kMagic0 && p[1] == kMagic1; };
  return info;
}

}  // namespace

CodecEntry gzip_entry() { return entry_for<GzipCodec>(gzip_info()); }

}  // namespace sluice::codecs
