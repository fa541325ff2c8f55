// gzip (RFC 1952) through zlib, built the way pigz builds it: one member whose deflate stream is
// the concatenation of independently compressed chunks. Each chunk is raw-deflated with the
// previous 32 KiB as preset dictionary (so the ratio matches serial gzip), and ends on a byte
// boundary with a sync flush (the last chunk with finish). Each worker computes its chunk's
// CRC-32; the writer combines them in order with crc32_combine.
#include <zlib.h>

#include <oneapi/tbb/task_group.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

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
constexpr std::uint8_t kFlagComment = 0x10;
constexpr std::uint8_t kFlagHeaderCrc = 0x02;
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

// Streaming gzip decoder: any number of members and every header flag (FEXTRA, FNAME, FCOMMENT,
// FHCRC). It parses headers and trailers itself and inflates raw deflate, so that the CRC-32 of
// each output block can be computed by another worker (a task) while the next block inflates;
// the checks are the same as gunzip's (CRC-32 and ISIZE per member, header CRC when present).
class GzipDecoder final : public StreamDecoder {
 public:
  GzipDecoder() {
    check_zlib(inflateInit2(&stream_, -15), "inflateInit2", stream_);
    for (auto& block : blocks_) block.reserve(kDecodeOutputBytes);
  }
  ~GzipDecoder() override {
    try {
      crc_tasks_->wait();  // a running CRC task reads our blocks
    } catch (...) {
    }
    inflateEnd(&stream_);
  }

  void decode(ByteView input, const Emit& emit) override {
    std::size_t at = 0;
    while (at < input.size()) {
      const ByteView rest = input.subspan(at);
      switch (state_) {
        case State::kHeader: at += take_header(rest); break;
        case State::kBody: at += inflate_some(rest, emit); break;
        case State::kTrailer: at += take_trailer(rest); break;
      }
    }
  }

  void resume_at(std::uint64_t offset) override {
    consumed_ = member_start_ = offset;
    members_ = std::max<std::uint64_t>(members_, 1);
  }

  void finish() override {
    if (state_ == State::kHeader && header_.empty()) {
      if (members_ == 0) throw Error(ErrorKind::kCorruptData, "empty input: not gzip data", {}, consumed_);
      return;
    }
    if (state_ == State::kHeader && members_ > 0 && !header_magic_ok()) throw trailing_garbage();
    throw Error(ErrorKind::kCorruptData,
                fmt::format("unexpected end of input: the gzip member starting at byte {} is truncated", member_start_),
                {}, consumed_);
  }

 private:
  enum class State { kHeader, kBody, kTrailer };
  static constexpr std::size_t kMaxHeaderBytes = 1 << 20;

  bool header_magic_ok() const {
    return (header_.size() < 1 || header_[0] == kMagic0) && (header_.size() < 2 || header_[1] == kMagic1);
  }

  Error trailing_garbage() const {
    return Error(ErrorKind::kCorruptData,
                 fmt::format("trailing garbage after the last gzip member (which ends at byte {})", member_start_), {},
                 member_start_);
  }

  Error corrupt(const std::string& reason, std::uint64_t at) const {
    return Error(ErrorKind::kCorruptData,
                 fmt::format("corrupt gzip member starting at byte {}: {}", member_start_, reason), {}, at);
  }

  // Gathers header bytes; once the header is complete, checks it and starts the member.
  std::size_t take_header(ByteView rest) {
    const std::size_t before = header_.size();
    if (before == 0) member_start_ = consumed_;
    // Take bytes one run at a time until the header parses: headers are short.
    const std::size_t take = std::min(rest.size(), std::max<std::size_t>(10, header_.size()));
    header_.insert(header_.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(take));
    if (!header_magic_ok()) {
      if (members_ > 0) throw trailing_garbage();
      throw corrupt("not a gzip header", member_start_);
    }
    const std::optional<std::size_t> length = parse_header();
    if (!length) {
      if (header_.size() > kMaxHeaderBytes) throw corrupt("header too long", consumed_);
      consumed_ += take;
      return take;
    }
    // The header ended inside what was taken: give back the rest.
    const std::size_t used = *length - before;
    consumed_ += used;
    header_.clear();
    check_zlib(inflateReset(&stream_), "inflateReset", stream_);
    crc_ = crc32(0, nullptr, 0);
    size_ = 0;
    state_ = State::kBody;
    return used;
  }

  // The header's length if header_ holds all of it; throws if it is malformed.
  std::optional<std::size_t> parse_header() const {
    const auto& h = header_;
    if (h.size() < 10) return std::nullopt;
    if (h[2] != Z_DEFLATED) throw corrupt("unknown compression method", member_start_ + 2);
    const std::uint8_t flags = h[3];
    if (flags & 0xE0) throw corrupt("reserved header flags set", member_start_ + 3);
    std::size_t at = 10;
    if (flags & kFlagExtra) {
      if (h.size() < at + 2) return std::nullopt;
      at += 2 + (std::size_t{h[at]} | std::size_t{h[at + 1]} << 8);
      if (h.size() < at) return std::nullopt;
    }
    for (std::uint8_t text_flag : {kFlagName, kFlagComment}) {
      if (!(flags & text_flag)) continue;
      while (at < h.size() && h[at] != 0) ++at;
      if (at >= h.size()) return std::nullopt;
      ++at;  // the terminating NUL
    }
    if (flags & kFlagHeaderCrc) {
      if (h.size() < at + 2) return std::nullopt;
      const std::uint32_t expected = std::uint32_t{h[at]} | std::uint32_t{h[at + 1]} << 8;
      if ((crc32_z(0, h.data(), at) & 0xFFFF) != expected) throw corrupt("header crc mismatch", member_start_ + at);
      at += 2;
    }
    return at;
  }

  // Inflates into the current output block; hands full blocks on. Returns the bytes consumed.
  std::size_t inflate_some(ByteView rest, const Emit& emit) {
    Buffer& block = blocks_[current_];
    stream_.next_in = const_cast<Bytef*>(rest.data());
    stream_.avail_in = static_cast<uInt>(std::min<std::size_t>(rest.size(), 1u << 30));
    const std::size_t offered = stream_.avail_in;
    stream_.next_out = block.data() + block.size();
    stream_.avail_out = static_cast<uInt>(block.capacity() - block.size());
    const std::size_t room = stream_.avail_out;
    const int ret = inflate(&stream_, Z_NO_FLUSH);
    const std::size_t used = offered - stream_.avail_in;
    block.resize(block.size() + (room - stream_.avail_out));
    consumed_ += used;
    if (ret == Z_STREAM_END) {
      hand_on(emit);
      state_ = State::kTrailer;
    } else if (ret == Z_OK || ret == Z_BUF_ERROR) {
      if (block.size() == block.capacity()) hand_on(emit);
    } else if (ret == Z_MEM_ERROR) {
      throw Error(ErrorKind::kInternal, "out of memory in zlib inflate", {}, consumed_);
    } else {
      throw corrupt(stream_.msg ? stream_.msg : zError(ret), consumed_);
    }
    return used;
  }

  // Emits the current block and folds it into the member's CRC on another worker; the previous
  // block's CRC task is finished first, so the CRC runs in order and a block is reused only
  // after its task is done.
  void hand_on(const Emit& emit) {
    Buffer& block = blocks_[current_];
    crc_tasks_->wait();
    if (block.empty()) return;
    const ByteView bytes = block.view();
    size_ += bytes.size();
    crc_tasks_->run([this, bytes] { crc_ = crc32_z(crc_, bytes.data(), bytes.size()); });
    emit(bytes);
    current_ ^= 1;
    blocks_[current_].clear();
  }

  std::size_t take_trailer(ByteView rest) {
    const std::size_t take = std::min(rest.size(), 8 - trailer_.size());
    trailer_.insert(trailer_.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(take));
    consumed_ += take;
    if (trailer_.size() < 8) return take;
    crc_tasks_->wait();
    blocks_[current_].clear();
    const std::uint32_t crc = load_le32(trailer_.data()), isize = load_le32(trailer_.data() + 4);
    trailer_.clear();
    if (crc != static_cast<std::uint32_t>(crc_)) throw corrupt("incorrect data check (CRC-32 mismatch)", consumed_ - 8);
    if (isize != static_cast<std::uint32_t>(size_)) throw corrupt("incorrect length check (ISIZE mismatch)", consumed_ - 4);
    ++members_;
    state_ = State::kHeader;
    member_start_ = consumed_;
    return take;
  }

  z_stream stream_{};
  State state_ = State::kHeader;
  std::vector<std::uint8_t> header_;
  std::vector<std::uint8_t> trailer_;
  Buffer blocks_[2];
  int current_ = 0;
  // Held by pointer: tbb::task_group's destructor may throw, ours must not.
  std::unique_ptr<tbb::task_group> crc_tasks_ = std::make_unique<tbb::task_group>();
  uLong crc_ = 0;
  std::uint64_t size_ = 0;
  std::uint64_t consumed_ = 0;      // compressed bytes consumed so far
  std::uint64_t member_start_ = 0;  // where the current (or last) member began
  std::uint64_t members_ = 0;       // members completed
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
