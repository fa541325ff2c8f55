// zstd: every chunk becomes an independent zstd frame carrying its content size and a checksum.
// Concatenated frames are a valid zstd stream, so no stream header is needed, and the frames can
// later be decoded in parallel. The stream ends with the seek table of zstd's seekable format
// (contrib/seekable_format in the zstd repository): a skippable frame that every zstd reader
// skips, listing each frame's compressed and decompressed size, so that a reader finds any frame
// from one read of the end of the file (sluice.open's seek, sluice.dask's partitions).
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_getCParams: a level's window size
#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "codecs/builtin_codecs.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

// What a zstd decoding error says: a valid frame that sluice does not decode is named as such
// (it is not damaged: "zstd frame: it needs ..."), anything else is "corrupt zstd frame"
// and zstd's own reason. `where`: " starting at byte N", or nothing.
std::string decode_failure(std::size_t code, const std::string& where = {}) {
  switch (ZSTD_getErrorCode(code)) {
    case ZSTD_error_dictionary_wrong:
      return fmt::format(
          "zstd frame{}: it needs a zstd dictionary, which sluice does not take (zstd -d -D DICT "
          "decodes it)",
          where);
    case ZSTD_error_frameParameter_windowTooLarge:
      return fmt::format(
          "zstd frame{}: its window is larger than the 128 MiB sluice decodes (written with "
          "--long=28 or more; zstd -d --long=31 decodes it)",
          where);
    default:
      return fmt::format("corrupt zstd frame{}: {}", where, ZSTD_getErrorName(code));
  }
}

// The one place zstd's return codes become our errors. Returns `ret` when it is not an error.
std::size_t check_zstd(std::size_t ret, const char* call) {
  if (ZSTD_isError(ret)) {
    throw Error(ErrorKind::kInternal, fmt::format("zstd {} failed: {}", call, ZSTD_getErrorName(ret)));
  }
  return ret;
}

class ZstdChunkCompressor final : public ChunkCompressor {
 public:
  explicit ZstdChunkCompressor(int level) : context_(ZSTD_createCCtx()) {
    if (!context_) throw Error(ErrorKind::kInternal, "zstd: cannot allocate a compression context");
    check_zstd(ZSTD_CCtx_setParameter(context_, ZSTD_c_compressionLevel, level), "set level");
    check_zstd(ZSTD_CCtx_setParameter(context_, ZSTD_c_checksumFlag, 1), "set checksum");
    check_zstd(ZSTD_CCtx_setParameter(context_, ZSTD_c_contentSizeFlag, 1), "set content size");
  }
  ~ZstdChunkCompressor() override { ZSTD_freeCCtx(context_); }

  std::uint64_t compress_chunk(ByteView /*history*/, ByteView input, bool /*last*/, Buffer& out) override {
    out.resize(ZSTD_compressBound(input.size()));
    out.resize(check_zstd(ZSTD_compress2(context_, out.data(), out.size(), input.data(), input.size()),
                          "compress"));
    return 0;
  }

 private:
  ZSTD_CCtx* context_;
};

// A stream's pieces, flushed by its writer: a frame per chunk, as the chunk compressor makes them
// (one seek-table entry each), written piece after piece with zstd's flush, the window kept
// within the frame; every multiple of the chunk size from the stream's start ends the frame. A
// frame so written records no content size (it is not known when its header is written): the
// splitter bounds its output by its blocks, and a frame of many small flushes (more than 128
// blocks) is decoded serially, with the rest of the stream.
class ZstdFlushCompressor final : public FlushCompressor {
 public:
  ZstdFlushCompressor(int level, std::size_t frame_bytes) : context_(ZSTD_createCCtx()), frame_bytes_(frame_bytes) {
    if (!context_) throw Error(ErrorKind::kInternal, "zstd: cannot allocate a compression context");
    check_zstd(ZSTD_CCtx_setParameter(context_, ZSTD_c_compressionLevel, level), "set level");
    check_zstd(ZSTD_CCtx_setParameter(context_, ZSTD_c_checksumFlag, 1), "set checksum");
    // The window a frame declares: the level's for a frame of the chunk size, no more (a frame
    // whose size is not known would declare the level's own: 128 MiB at level 22, which readers
    // with a memory limit refuse, such as HTTP's 8 MiB).
    const int window_log = static_cast<int>(ZSTD_getCParams(level, frame_bytes, 0).windowLog);
    check_zstd(ZSTD_CCtx_setParameter(context_, ZSTD_c_windowLog, window_log), "set window");
  }
  ~ZstdFlushCompressor() override { ZSTD_freeCCtx(context_); }
  ZstdFlushCompressor(const ZstdFlushCompressor&) = delete;
  ZstdFlushCompressor& operator=(const ZstdFlushCompressor&) = delete;

  void compress_piece(ByteView input, bool last, Buffer& out, std::vector<ChunkRecord>& records) override {
    out.clear();
    std::size_t at = 0;
    do {
      const std::size_t room = frame_bytes_ - static_cast<std::size_t>(offset_ % frame_bytes_);
      const std::size_t take = std::min(room, input.size() - at);
      const bool ends_frame = take == room || (last && at + take == input.size());
      // (A stream that ends where a frame just ended needs no empty frame.)
      if (take > 0 || frame_input_ > 0) stream(input.subspan(at, take), ends_frame ? ZSTD_e_end : ZSTD_e_flush, out, records);
      at += take;
      offset_ += take;
    } while (at < input.size());
  }

  void end_pieces(Buffer& out, std::vector<ChunkRecord>& records) override {
    if (frame_input_ > 0) stream({}, ZSTD_e_end, out, records);
  }

  // Frames begin afresh at `offset` (the run's last chunk ended a frame).
  void resume_at(std::uint64_t offset, ByteView) override { offset_ = offset; }

 private:
  // Compresses `input` into the open frame (a new one if none is), appending to `out`: all of it
  // out (ZSTD_e_flush), or the frame closed and recorded (ZSTD_e_end).
  void stream(ByteView input, ZSTD_EndDirective mode, Buffer& out, std::vector<ChunkRecord>& records) {
    ZSTD_inBuffer in{input.data(), input.size(), 0};
    const std::size_t from = out.size();
    std::size_t used = from;
    for (;;) {
      if (out.size() - used < ZSTD_CStreamOutSize()) {
        out.resize(used + std::max(ZSTD_compressBound(in.size - in.pos), ZSTD_CStreamOutSize()));
      }
      ZSTD_outBuffer dst{out.data(), out.size(), used};
      const std::size_t remaining = check_zstd(ZSTD_compressStream2(context_, &dst, &in, mode), "compress (stream)");
      used = dst.pos;
      if (remaining == 0 && in.pos == in.size) break;
    }
    out.resize(used);
    frame_input_ += input.size();
    frame_output_ += used - from;
    if (mode == ZSTD_e_end) {
      records.push_back({frame_input_, frame_output_, 0});
      frame_input_ = frame_output_ = 0;
    }
  }

  ZSTD_CCtx* context_;
  std::size_t frame_bytes_;
  std::uint64_t offset_ = 0;        // input so far
  std::uint64_t frame_input_ = 0;   // in the open frame
  std::uint64_t frame_output_ = 0;  // of the open frame, written
};

// Streaming decoder: any number of frames, skippable frames, every frame checksum verified.
// Memory is bounded by the window size limit (ZSTD_d_windowLogMax default, 128 MiB), never by a
// size the input claims.
class ZstdDecoder final : public StreamDecoder {
 public:
  ZstdDecoder() : context_(ZSTD_createDCtx()), out_(kDecodeOutputBytes) {
    if (!context_) throw Error(ErrorKind::kInternal, "zstd: cannot allocate a decompression context");
  }
  ~ZstdDecoder() override { ZSTD_freeDCtx(context_); }

  void decode(ByteView input, const Emit& emit) override {
    // Through our own buffer, handed to `emit` as it fills.
    struct EmitOutput final : Output {
      Buffer& buffer;
      const Emit& emit;
      EmitOutput(Buffer& b, const Emit& e) : buffer(b), emit(e) {}
      std::span<std::uint8_t> space() override { return {buffer.data(), buffer.capacity()}; }
      void produced(std::size_t bytes) override { emit({buffer.data(), bytes}); }
    } output(out_, emit);
    decode_to(input, output);
  }

  void decode_to(ByteView input, Output& output) override {
    if (input.empty()) return;
    ZSTD_inBuffer in{input.data(), input.size(), 0};
    for (;;) {
      const std::span<std::uint8_t> space = output.space();
      ZSTD_outBuffer out{space.data(), space.size(), 0};
      const std::size_t ret = ZSTD_decompressStream(context_, &out, &in);
      if (ZSTD_isError(ret)) fail(ret, frame_start_);  // in.pos: what zstd took in, not where the fault is
      if (out.pos > 0) output.produced(out.pos);
      in_frame_ = ret != 0;
      if (!in_frame_) {
        ++frames_;
        frame_start_ = consumed_ + in.pos;
        head_.clear();
      }
      if (in.pos == in.size && (out.pos < out.size || ret == 0)) break;
    }
    // The first bytes after the last frame's end, which zstd takes in before it can tell a frame.
    const std::uint64_t head_from = std::max(frame_start_, consumed_);
    const std::uint64_t end = consumed_ + input.size();
    if (head_from < end && head_.size() < kHeadBytes) {
      const auto at = static_cast<std::size_t>(head_from - consumed_);
      head_.append(input.subspan(at, std::min<std::size_t>(input.size() - at, kHeadBytes - head_.size())));
    }
    consumed_ = end;
  }

  void resume_at(std::uint64_t offset) override {
    consumed_ = frame_start_ = offset;
    frames_ = std::max<std::uint64_t>(frames_, 1);
    head_.clear();
  }

  void finish() override {
    if (frames_ == 0 && !in_frame_) throw Error(ErrorKind::kCorruptData, "empty input: not zstd data", {}, 0);
    // A few bytes after the last frame (a newline, say) that no frame begins with: zstd waits
    // for more before it says so (ZSTD_error_prefix_unknown), but they are garbage, not a frame
    // cut short, as the garbage that zstd can tell is.
    if (in_frame_ && frames_ > 0 && consumed_ - frame_start_ == head_.size() && head_.size() < kHeadBytes &&
        !could_begin_frame(head_.view().first(std::min<std::size_t>(head_.size(), 4)),
                           {{ZSTD_MAGICNUMBER, 0xFFFFFFFFu}, {kOnlySkippableFrames, 0xFFFFFFF0u}})) {
      throw Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last zstd frame", {}, frame_start_);
    }
    if (in_frame_) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("unexpected end of input: the zstd frame starting at byte {} is truncated",
                              frame_start_),
                  {}, consumed_);
    }
  }

 private:
  [[noreturn]] void fail(std::size_t ret, std::uint64_t position) {
    if (ZSTD_getErrorCode(ret) == ZSTD_error_prefix_unknown && frames_ > 0 && !in_frame_) {
      throw Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last zstd frame", {}, frame_start_);
    }
    if (ZSTD_getErrorCode(ret) == ZSTD_error_memory_allocation) {
      throw Error(ErrorKind::kInternal, "out of memory in zstd decompression", {}, position);
    }
    throw Error(ErrorKind::kCorruptData, decode_failure(ret, fmt::format(" starting at byte {}", frame_start_)), {},
                position);
  }

  // The most bytes zstd takes in after a frame before it tells garbage from a frame (its header's
  // first five, ZSTD_FRAMEHEADERSIZE_PREFIX, and a skippable frame's eight).
  static constexpr std::size_t kHeadBytes = 8;
  ZSTD_DCtx* context_;
  Buffer out_;
  Buffer head_;  // the bytes after the last frame's end, up to kHeadBytes
  std::uint64_t consumed_ = 0;
  std::uint64_t frame_start_ = 0;
  std::uint64_t frames_ = 0;
  bool in_frame_ = false;
};

// The largest window the streaming decoder takes (ZSTD_d_windowLogMax's default: 128 MiB).
constexpr unsigned kWindowLogMax = ZSTD_WINDOWLOG_LIMIT_DEFAULT;

// Finds zstd frames whose content size is declared, or bounded by their blocks, and small enough
// to decode in one piece.
class ZstdSplitter final : public StreamSplitter {
 public:
  Cut find_cut(ByteView b, std::uint64_t offset) override {
    if (b.size() < 8) return need_more();
    const std::uint32_t magic = load_le32(b.data());
    if ((magic & 0xFFFFFFF0u) == 0x184D2A50u) return marker(8 + std::size_t{load_le32(b.data() + 4)});
    if (magic != ZSTD_MAGICNUMBER) {
      if (frames_ > 0) throw Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last zstd frame", {}, offset);
      throw Error(ErrorKind::kCorruptData, "not a zstd frame", {}, offset);
    }
    constexpr std::size_t kLongestHeader = 18;  // ZSTD_FRAMEHEADERSIZE_MAX
    const unsigned long long content = ZSTD_getFrameContentSize(b.data(), b.size());
    if (content == ZSTD_CONTENTSIZE_ERROR) {
      if (b.size() < kLongestHeader) return need_more();
      throw Error(ErrorKind::kCorruptData, "corrupt zstd frame header", {}, offset);
    }
    if (content != ZSTD_CONTENTSIZE_UNKNOWN && content > kMaxUnitOutputBytes) return serial();
    ZSTD_frameHeader header{};
    if (ZSTD_getFrameHeader(&header, b.data(), b.size()) != 0) {
      return b.size() < kLongestHeader ? need_more() : serial();
    }
    // A frame written as it was flushed (sluice's flushed pieces, zstd --stream) records no size.
    // Where its window is one the streaming decoder takes (else that decoder names the refusal),
    // its blocks bound what it decodes to (128 KiB a block at most).
    if (content == ZSTD_CONTENTSIZE_UNKNOWN && header.windowSize > (std::uint64_t{1} << kWindowLogMax)) {
      return serial();
    }
    if (!blocks_end_within(b, offset, header)) return b.size() >= kMaxUnitInputBytes ? serial() : need_more();
    const std::size_t frame = ZSTD_findFrameCompressedSize(b.data(), b.size());
    if (ZSTD_isError(frame)) {
      if (ZSTD_getErrorCode(frame) != ZSTD_error_srcSize_wrong) {
        throw Error(ErrorKind::kCorruptData, fmt::format("corrupt zstd frame: {}", ZSTD_getErrorName(frame)), {}, offset);
      }
      return b.size() >= kMaxUnitInputBytes ? serial() : need_more();
    }
    std::size_t most = static_cast<std::size_t>(content);
    if (content == ZSTD_CONTENTSIZE_UNKNOWN) {
      const unsigned long long bound = ZSTD_decompressBound(b.data(), frame);
      if (bound == ZSTD_CONTENTSIZE_ERROR || bound > kMaxUnitOutputBytes) return serial();
      most = static_cast<std::size_t>(bound);
    }
    ++frames_;
    return unit(frame, most);
  }
  void finish_at(std::uint64_t) override {}
  // What is left at the end, a frame cut short or a few bytes after the last frame: the streaming
  // decoder gives what the frame's complete blocks decode to, then tells a frame cut short from
  // trailing garbage (ZstdDecoder::finish). (Said truncated here, a one-frame file cut short gave
  // nothing, where zstd -d gives all but its last block.) Before any data frame, only a frame's
  // start: a few bytes after skippable frames alone are no zstd data (the streaming decoder,
  // resumed after them, would call them trailing garbage, a warning).
  Cut cut_at_end(ByteView b, std::uint64_t) override {
    const bool frame_start = b.size() >= 4 && (load_le32(b.data()) == ZSTD_MAGICNUMBER ||
                                               (load_le32(b.data()) & 0xFFFFFFF0u) == 0x184D2A50u);  // skippable
    return frames_ > 0 || frame_start ? serial() : Cut{};
  }
  // Units are whole frames: every cut ends where a frame may begin.
  bool serial_may_start_here() const override { return true; }

 private:
  // Whether the frame at the start of `b` (at `offset` in the stream) may end within `b`: its
  // block headers walked from where the last call for this frame stopped, so that a frame that
  // arrives in pieces (from a pipe, pushed by a caller) is walked once, not from its start at
  // every piece (a 16 MiB frame from a pipe took 3.3 s). True also at a block zstd will refuse
  // (a reserved type, a block over the maximum): ZSTD_findFrameCompressedSize then says what.
  bool blocks_end_within(ByteView b, std::uint64_t offset, const ZSTD_frameHeader& header) {
    if (walked_frame_ != offset) {
      walked_frame_ = offset;
      walked_to_ = header.headerSize;
    }
    for (std::size_t at = walked_to_;; walked_to_ = at) {
      if (at + kBlockHeaderBytes > b.size()) return false;
      const std::uint32_t block = std::uint32_t{b[at]} | std::uint32_t{b[at + 1]} << 8 | std::uint32_t{b[at + 2]} << 16;
      const std::uint32_t type = block >> 1 & 3, size = block >> 3;
      if (type == kReservedBlock || size > ZSTD_BLOCKSIZE_MAX) return true;
      at += kBlockHeaderBytes + (type == kRleBlock ? 1 : size);
      if (block & 1) return at + (header.checksumFlag ? 4 : 0) <= b.size();  // the last block, the checksum
      if (at > b.size()) return false;
    }
  }
  static constexpr std::size_t kBlockHeaderBytes = 3;
  static constexpr std::uint32_t kRleBlock = 1, kReservedBlock = 3;

  std::uint64_t frames_ = 0;
  std::uint64_t walked_frame_ = UINT64_MAX;  // the frame blocks_end_within walked last
  std::size_t walked_to_ = 0;                // and the block header it stopped at
};

class ZstdUnitDecoder final : public UnitDecoder {
 public:
  ZstdUnitDecoder() : context_(ZSTD_createDCtx()) {
    if (!context_) throw Error(ErrorKind::kInternal, "zstd: cannot allocate a decompression context");
  }
  ~ZstdUnitDecoder() override { ZSTD_freeDCtx(context_); }
  // One-shot decoding checks the declared content size and the frame checksum.
  void decode_unit(ByteView frame, const Cut& cut, Buffer& out) override {
    out.resize(cut.max_output_bytes);
    const std::size_t got = ZSTD_decompressDCtx(context_, out.data(), out.size(), frame.data(), frame.size());
    if (ZSTD_isError(got)) {
      throw Error(ErrorKind::kCorruptData, decode_failure(got));
    }
    out.resize(got);
  }

 private:
  ZSTD_DCtx* context_;
};

// The seek table (zstd's seekable format, version 0.1.0): a skippable frame of magic 0x184D2A5E
// holding one entry per frame (compressed size, decompressed size; no checksums: the frames carry
// their own), then the footer: the number of frames, a descriptor byte (0: no checksums) and the
// seekable magic.
constexpr std::uint32_t kSeekTableFrameMagic = 0x184D2A5Eu;
constexpr std::uint32_t kSeekableMagic = 0x8F92EAB1u;
constexpr std::size_t kSeekTableFooterBytes = 9;
// The format's limits: readers refuse tables beyond them, so such a stream gets none.
constexpr std::uint64_t kSeekableMaxFrames = 0x8000000u;
constexpr std::uint64_t kSeekableMaxFrameContent = 0x40000000u;

constexpr std::string_view kIndexValues[] = {"seek-table", "none"};

class SeekTableFramer final : public StreamFramer {
 public:
  void header(Buffer&) override {}
  void add_chunk(const ChunkRecord& chunk) override {
    if (chunk.input_bytes > kSeekableMaxFrameContent || chunk.output_bytes > 0xFFFFFFFFu) fits_ = false;
    if (!fits_ || entries_.size() >= kSeekableMaxFrames) {
      fits_ = false;
      entries_.clear();
      return;
    }
    entries_.push_back({static_cast<std::uint32_t>(chunk.output_bytes), static_cast<std::uint32_t>(chunk.input_bytes)});
  }
  void trailer(Buffer& out) override {
    if (!fits_) return;
    put_le32(out, kSeekTableFrameMagic);
    put_le32(out, static_cast<std::uint32_t>(entries_.size() * 8 + kSeekTableFooterBytes));
    for (const auto& [compressed, content] : entries_) {
      put_le32(out, compressed);
      put_le32(out, content);
    }
    put_le32(out, static_cast<std::uint32_t>(entries_.size()));
    const std::uint8_t descriptor = 0;
    out.append({&descriptor, 1});
    put_le32(out, kSeekableMagic);
  }

 private:
  std::vector<std::pair<std::uint32_t, std::uint32_t>> entries_;
  bool fits_ = true;
};

// The seek table that ends `s`, where one is there: its entries, as many as its footer counts.
struct SeekTable {
  const std::uint8_t* entries = nullptr;
  std::uint64_t count = 0;
  std::size_t entry_bytes = 0;

  std::uint32_t compressed(std::uint64_t i) const { return load_le32(entries + i * entry_bytes); }
  std::uint32_t content(std::uint64_t i) const { return load_le32(entries + i * entry_bytes + 4); }
};
std::optional<SeekTable> find_seek_table(ByteView s) {
  if (s.size() < 8 + kSeekTableFooterBytes) return std::nullopt;
  const std::uint8_t* footer = s.data() + s.size() - kSeekTableFooterBytes;
  if (load_le32(footer + 5) != kSeekableMagic) return std::nullopt;
  SeekTable table{nullptr, load_le32(footer), (footer[4] & 0x80) ? std::size_t{12} : std::size_t{8}};
  const std::uint64_t bytes = table.count * table.entry_bytes + kSeekTableFooterBytes;  // with checksums or without
  if (bytes + 8 > s.size()) return std::nullopt;
  table.entries = s.data() + s.size() - bytes;
  if (load_le32(table.entries - 8) != kSeekTableFrameMagic || load_le32(table.entries - 4) != bytes)
    return std::nullopt;
  return table;
}

// What a zstd stream records (sluice -l): frames one after another, each found by walking its
// block headers (ZSTD_findFrameCompressedSize), with the content size its header records; a frame
// without one leaves the size to decoding, unless a seek table at the end lists exactly the
// frames there are (their compressed lengths, in order): frames written as they were flushed
// record no size, and sluice's seek table does. Skippable frames (the table) hold no data.
// Memory stays the same for any number of frames.
StreamFacts zstd_stream_facts(ByteView s) {
  StreamFacts facts;
  std::uint64_t total = 0;
  bool sized = true;
  std::size_t checked = 0;
  std::optional<SeekTable> table = find_seek_table(s);
  std::uint64_t listed = 0;  // what the table says the frames so far hold, while it lists them
  // The check of the frames so far: where the facts give up (garbage after the last frame), the
  // stream is decoded to be listed, and its check is theirs (it was "-").
  const auto check = [&] { return checked == 0 ? "none" : checked == facts.units ? "XXH64" : "XXH64 (some frames)"; };
  for (std::size_t at = 0; at < s.size();) {
    const std::uint8_t* frame = s.data() + at;
    const std::size_t length = ZSTD_findFrameCompressedSize(frame, s.size() - at);
    if (ZSTD_isError(length) || length == 0) return {facts.units, std::nullopt, check()};
    if (!ZSTD_isSkippableFrame(frame, s.size() - at)) {
      ZSTD_frameHeader header{};
      if (ZSTD_getFrameHeader(&header, frame, s.size() - at) != 0) return {facts.units, std::nullopt, check()};
      if (table && (facts.units >= table->count || table->compressed(facts.units) != length)) table.reset();
      if (table && __builtin_add_overflow(listed, table->content(facts.units), &listed)) table.reset();
      ++facts.units;
      checked += header.checksumFlag ? 1 : 0;
      // Sizes that add up past 2^64 (two frames claiming 2^63 each listed as 0, "recorded") are
      // no record: the stream is decoded to count.
      if (header.frameContentSize == ZSTD_CONTENTSIZE_UNKNOWN ||
          __builtin_add_overflow(total, header.frameContentSize, &total))
        sized = false;
    }
    at += length;
  }
  facts.check = check();
  if (sized) {
    facts.uncompressed_bytes = total;
  } else if (table && table->count == facts.units) {
    facts.uncompressed_bytes = listed;
  }
  return facts;
}

class ZstdCodec final : public CodecBase {
 public:
  using CodecBase::CodecBase;
  std::unique_ptr<ChunkCompressor> new_chunk_compressor() const override {
    return std::make_unique<ZstdChunkCompressor>(options_.level);
  }
  std::unique_ptr<StreamFramer> new_framer(const StreamInfo&) const override {
    if (options_.knobs.at("index") == "none") return std::make_unique<SelfFramedChunks>();
    return std::make_unique<SeekTableFramer>();
  }
  std::unique_ptr<FlushCompressor> new_flush_compressor() const override {
    return std::make_unique<ZstdFlushCompressor>(options_.level, options_.chunk_bytes);
  }
  std::unique_ptr<StreamDecoder> new_decoder() const override { return std::make_unique<ZstdDecoder>(); }
  std::unique_ptr<StreamSplitter> new_splitter() const override { return std::make_unique<ZstdSplitter>(); }
  std::unique_ptr<UnitDecoder> new_unit_decoder() const override { return std::make_unique<ZstdUnitDecoder>(); }
  StreamFacts stream_facts(ByteView stream) const override { return zstd_stream_facts(stream); }
};

constexpr int kDefaultLevel = 3;
constexpr std::size_t kMinFrameBytes = 4 * 1024 * 1024;

// The frame size for `level` when the user names none: two of the level's windows (a frame can
// only use as much window as it holds, so small frames cost the higher levels their ratio against
// zstd -T, whose jobs share history), at least 4 MiB and at most the largest unit decoded in
// parallel (kMaxUnitOutputBytes). The sizes and speeds per level are in the commit that chose
// this (c96d184) and BENCHMARKS.md.
std::size_t default_frame_bytes(int level) {
  const unsigned window_log = ZSTD_getCParams(level, ZSTD_CONTENTSIZE_UNKNOWN, 0).windowLog;
  return std::clamp(std::size_t{2} << window_log, kMinFrameBytes, kMaxUnitOutputBytes);
}

CodecInfo zstd_info() {
  CodecInfo info;
  info.name = "zstd";
  info.extension = ".zst";
  info.other_extensions = {".zstd"};
  info.tar_suffixes = {".tzst"};
  info.min_level = ZSTD_minCLevel();  // the negative levels are zstd's --fast=N
  info.max_level = ZSTD_maxCLevel();
  info.default_level = kDefaultLevel;
  // At the default level, 4 MiB frames: about zstd -T's ratio at its speed, with the memory of a
  // few frames per thread. Higher levels get larger frames (default_frame_bytes); archives take
  // archive_chunk_bytes. BENCHMARKS.md has the figures.
  info.default_chunk_bytes = default_frame_bytes(kDefaultLevel);
  // An archive of many similar files (a source tree) gains from longer frames, for twice the
  // chunk memory (BENCHMARKS.md, tar archives). Levels whose own frames are larger keep theirs.
  info.archive_chunk_bytes = 8 * 1024 * 1024;
  info.history_bytes = 0;
  info.zip_method = 93;  // APPNOTE 4.4.5: Zstandard; the member's data is the stream's frames
  CodecKnob index;
  index.name = "index";
  index.help =
      "what ends the stream: the seek table of zstd's seekable format (a skippable frame every reader skips), or none";
  index.values.assign(std::begin(kIndexValues), std::end(kIndexValues));
  index.default_value = kIndexValues[0];
  index.shorthands = {{"no-seek-table", "none", "zstd: end the stream with no seek table"}};
  info.knobs = {index};
  // A stream that starts with skippable frames only (none real in view) is read as zstd.
  info.matches_magic = [](ByteView p) {
    const auto magic = first_frame_magic(p);
    return magic && (*magic == ZSTD_MAGICNUMBER || *magic == kOnlySkippableFrames);
  };
  info.magic_bytes = 4;
  info.unfinished_mark = std::string("\x28\xb5\x2f\xfd", 4);  // a frame's magic number, and no header
  return info;
}

}  // namespace

CodecEntry zstd_entry() {
  CodecEntry entry = entry_for<ZstdCodec>(zstd_info());
  entry.factory = [make = entry.factory](const CodecOptions& options) {
    CodecOptions adjusted = options;
    if (adjusted.chunk_bytes == 0) {
      adjusted.chunk_bytes = default_frame_bytes(adjusted.level != 0 ? adjusted.level : kDefaultLevel);
    }
    return make(adjusted);
  };
  return entry;
}

}  // namespace sluice::codecs
