// gzip (RFC 1952) through zlib, built the way pigz builds it: one member whose deflate stream is
// the concatenation of independently compressed chunks. Each chunk is raw-deflated with the
// previous 32 KiB as preset dictionary (so the ratio matches serial gzip), and ends on a byte
// boundary with a sync flush (the last chunk with finish). Each worker computes its chunk's
// CRC-32; the writer combines them in order with crc32_combine.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "codecs/builtin_codecs.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

constexpr std::size_t kWindowBytes = 32 * 1024;
constexpr std::size_t kIndependentChunkBytes = 1024 * 1024;
constexpr std::uint8_t kMagic0 = 0x1f, kMagic1 = 0x8b;
constexpr std::uint8_t kFlagExtra = 0x04;
constexpr std::uint8_t kFlagName = 0x08;
constexpr std::uint8_t kOsUnix = 3;

// The one place zlib's return codes become our errors.
void check_zlib(int ret, const char* call, const z_stream& stream) {
  if (ret == Z_OK || ret == Z_STREAM_END) return;
  throw Error(ErrorKind::kInternal,
              fmt::format("zlib {} failed: {} ({})", call, stream.msg ? stream.msg : zError(ret), ret));
}

// The FEXTRA subfield that makes a member splittable: 'S','L', 8 bytes: the member's total size
// and its uncompressed size (both little-endian uint32). See docs/independent-gzip.md.
constexpr std::uint8_t kSizeFieldId[2] = {'S', 'L'};
constexpr std::size_t kIndependentHeaderBytes = 10 + 2 + 4 + 8;

class GzipChunkCompressor final : public ChunkCompressor {
 public:
  GzipChunkCompressor(int level, bool independent) : level_(level), independent_(independent) {
    // Raw deflate (negative window bits): the gzip header and trailer come from the framer.
    check_zlib(deflateInit2(&stream_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), "deflateInit2", stream_);
  }
  ~GzipChunkCompressor() override { deflateEnd(&stream_); }

  std::uint64_t compress(ByteView history, ByteView input, bool last, Buffer& out) override {
    if (independent_) return compress_member(input, out);
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
  // A complete member: header with the size subfield, raw deflate (no history), CRC-32, ISIZE.
  std::uint64_t compress_member(ByteView input, Buffer& out) {
    check_zlib(deflateReset(&stream_), "deflateReset", stream_);
    const std::size_t bound = deflateBound(&stream_, static_cast<uLong>(input.size()));
    out.resize(kIndependentHeaderBytes + bound + 8);
    stream_.next_in = const_cast<Bytef*>(input.data());
    stream_.avail_in = static_cast<uInt>(input.size());
    stream_.next_out = out.data() + kIndependentHeaderBytes;
    stream_.avail_out = static_cast<uInt>(bound);
    const int ret = deflate(&stream_, Z_FINISH);
    if (ret != Z_STREAM_END) check_zlib(ret == Z_OK ? Z_BUF_ERROR : ret, "deflate (member)", stream_);
    const std::size_t deflated = bound - stream_.avail_out;
    const std::size_t member = kIndependentHeaderBytes + deflated + 8;
    const std::uint32_t crc = static_cast<std::uint32_t>(crc32_z(0, input.data(), input.size()));
    std::uint8_t* p = out.data();
    const std::uint8_t xfl = level_ >= 9 ? 2 : (level_ == 1 ? 4 : 0);
    const std::uint8_t head[12] = {kMagic0, kMagic1, Z_DEFLATED, kFlagExtra, 0, 0, 0, 0, xfl, kOsUnix, 12, 0};
    std::memcpy(p, head, sizeof head);
    const std::uint8_t field[4] = {kSizeFieldId[0], kSizeFieldId[1], 8, 0};
    std::memcpy(p + 12, field, sizeof field);
    store_le32(p + 16, static_cast<std::uint32_t>(member));
    store_le32(p + 20, static_cast<std::uint32_t>(input.size()));
    store_le32(p + kIndependentHeaderBytes + deflated, crc);
    store_le32(p + kIndependentHeaderBytes + deflated + 4, static_cast<std::uint32_t>(input.size()));
    out.resize(member);
    return crc;
  }

  int level_;
  bool independent_;
  z_stream stream_{};
};

// Independent members carry their own headers and trailers: the stream adds nothing.
class NoFraming final : public StreamFramer {
 public:
  void header(Buffer&) override {}
  void add_chunk(ByteView, std::uint64_t) override {}
  void trailer(Buffer&) override {}
};

constexpr std::uint32_t kBgzfMaxBlockBytes = 65536;

// Finds members that say how long they are: our size subfield ('S','L') or BGZF's ('B','C').
// Any other member sends the rest of the stream to the serial decoder.
class GzipSplitter final : public StreamSplitter {
 public:
  Cut next(ByteView b, std::uint64_t offset) override {
    if (b.size() < 12) return need_more();
    if (b[0] != kMagic0 || b[1] != kMagic1) {
      throw Error(ErrorKind::kCorruptData,
                  members_ > 0 ? "trailing garbage after the last gzip member" : "not a gzip member", {}, offset);
    }
    if (b[2] != Z_DEFLATED) throw Error(ErrorKind::kCorruptData, "corrupt gzip header: unknown method", {}, offset);
    if (!(b[3] & kFlagExtra)) return serial();
    const std::size_t extra = std::size_t{b[10]} | std::size_t{b[11]} << 8;
    if (b.size() < 12 + extra) return need_more();
    for (std::size_t at = 12; at + 4 <= 12 + extra;) {
      const std::size_t length = std::size_t{b[at + 2]} | std::size_t{b[at + 3]} << 8;
      if (at + 4 + length > 12 + extra) break;
      const std::uint8_t* field = b.data() + at + 4;
      if (b[at] == kSizeFieldId[0] && b[at + 1] == kSizeFieldId[1] && length == 8) {
        const std::size_t member = load_le32(field), content = load_le32(field + 4);
        if (member < 12 + extra + 10) throw Error(ErrorKind::kCorruptData, "corrupt gzip size field", {}, offset);
        if (member > kMaxUnitInputBytes || content > kMaxUnitOutputBytes) return serial();
        if (b.size() < member) return need_more();
        ++members_;
        return unit(member, content);
      }
      if (b[at] == 'B' && b[at + 1] == 'C' && length == 2) {  // BGZF: BSIZE is the member size - 1
        const std::size_t member = (std::size_t{field[0]} | std::size_t{field[1]} << 8) + 1;
        if (member < 12 + extra + 10) throw Error(ErrorKind::kCorruptData, "corrupt BGZF block size", {}, offset);
        if (b.size() < member) return need_more();
        const std::uint32_t content = load_le32(b.data() + member - 4);
        if (content > kBgzfMaxBlockBytes) {
          throw Error(ErrorKind::kCorruptData, fmt::format("corrupt BGZF block: claims {} bytes", content), {}, offset);
        }
        ++members_;
        return unit(member, content);
      }
      at += 4 + length;
    }
    return serial();
  }
  void finish(std::uint64_t) override {}

 private:
  std::uint64_t members_ = 0;
};

// Inflates one whole member, which must produce exactly the size it declared.
class GzipUnitDecoder final : public UnitDecoder {
 public:
  GzipUnitDecoder() { check_zlib(inflateInit2(&stream_, 15 + 16), "inflateInit2", stream_); }
  ~GzipUnitDecoder() override { inflateEnd(&stream_); }

  void decode(ByteView member, const Cut& cut, Buffer& out) override {
    check_zlib(inflateReset(&stream_), "inflateReset", stream_);
    out.reserve(cut.max_output_bytes + 1);  // never a null output pointer, even for empty members
    out.resize(cut.max_output_bytes);
    stream_.next_in = const_cast<Bytef*>(member.data());
    stream_.avail_in = static_cast<uInt>(member.size());
    stream_.next_out = out.data();
    stream_.avail_out = static_cast<uInt>(out.size());
    const int ret = inflate(&stream_, Z_FINISH);  // checks CRC-32 and ISIZE
    if (ret != Z_STREAM_END) {
      const std::string reason = ret == Z_BUF_ERROR ? (stream_.avail_out == 0 ? "inflates to more than its size field says"
                                                                              : "truncated")
                                                    : (stream_.msg ? stream_.msg : zError(ret));
      throw Error(ErrorKind::kCorruptData, fmt::format("corrupt gzip member: {}", reason));
    }
    if (stream_.avail_in != 0 || stream_.total_out != cut.max_output_bytes) {
      throw Error(ErrorKind::kCorruptData, "corrupt gzip member: its size field does not match its contents");
    }
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

  void resume_at(std::uint64_t offset) override {
    consumed_ = member_start_ = offset;
    members_ = std::max<std::uint64_t>(members_, 1);
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
    return std::make_unique<GzipChunkCompressor>(options_.level, options_.independent);
  }
  std::unique_ptr<StreamFramer> make_framer(const StreamInfo& stream) const override {
    if (options_.independent) return std::make_unique<NoFraming>();
    return std::make_unique<GzipFramer>(options_.level, stream);
  }
  std::unique_ptr<StreamDecoder> make_decoder() const override { return std::make_unique<GzipDecoder>(); }
  std::unique_ptr<StreamSplitter> make_splitter() const override { return std::make_unique<GzipSplitter>(); }
  std::unique_ptr<UnitDecoder> make_unit_decoder() const override { return std::make_unique<GzipUnitDecoder>(); }
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

CodecEntry gzip_entry() {
  CodecEntry entry = entry_for<GzipCodec>(gzip_info());
  // Independent members get no history, so they want bigger chunks to keep the ratio.
  entry.factory = [make = entry.factory](const CodecOptions& options) {
    CodecOptions adjusted = options;
    if (adjusted.independent && adjusted.chunk_bytes == 0) adjusted.chunk_bytes = kIndependentChunkBytes;
    return make(adjusted);
  };
  return entry;
}

}  // namespace sluice::codecs
