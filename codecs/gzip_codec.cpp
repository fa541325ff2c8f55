// gzip (RFC 1952) in four forms (the codec's "form" knob; docs/independent-gzip.md):
//   * independent (the default): one member whose deflate stream is a sequence of independent
//     chunks, each compressed with no history and ended on a sync flush (the last one final), the
//     chunk size recorded in FEXTRA ('S','I'): every gzip reader reads it whole, and a reader that
//     knows the form cuts it at the sync flushes and inflates chunks in parallel;
//   * multi-member: every chunk is a member of its own whose FEXTRA records its size ('S','L'), so
//     readers split the stream without looking inside a member;
//   * single-member, built the way pigz builds it: one member whose deflate stream is the
//     concatenation of chunks, each raw-deflated with the previous 32 KiB as preset dictionary
//     (so the ratio matches serial gzip) and ending on a byte boundary with a sync flush;
//   * bgzf: BGZF as bgzip writes it (members of at most 64 KiB with a 'B','C' size subfield, an
//     empty member at the end), for htslib and tabix.
// Each worker computes its chunk's CRC-32; for a single member the writer combines them in order.
// The deflating and inflating is done by an engine (deflate_engines.h: zlib, libdeflate, ISA-L)
// picked per level and operation; this file owns the format.
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_group.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "codecs/builtin_codecs.h"
#include "codecs/deflate_engines.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

constexpr std::size_t kWindowBytes = 32 * 1024;
constexpr std::size_t kIndependentChunkBytes = 1024 * 1024;
constexpr std::size_t kSingleMemberChunkBytes = 128 * 1024;  // pigz's block size
// Output pieces up to this size are folded into the CRC-32 inline rather than on another worker.
constexpr std::size_t kInlineCrcBytes = 16 * 1024;
constexpr std::uint8_t kMagic0 = 0x1f, kMagic1 = 0x8b;
constexpr std::uint8_t kFlagExtra = 0x04;
constexpr std::uint8_t kFlagName = 0x08;
constexpr std::uint8_t kFlagComment = 0x10;
constexpr std::uint8_t kFlagHeaderCrc = 0x02;
constexpr std::uint8_t kOsUnix = 3;

constexpr std::uint8_t kMethodDeflate = 8;

enum class Form { kIndependent, kMultiMember, kSingleMember, kBgzf };

// The knob's values, in Form's order.
constexpr std::string_view kFormNames[] = {"independent", "multi-member", "single-member", "bgzf"};

Form form_of(const CodecOptions& options) {
  const auto value = options.knobs.find("form");
  for (std::size_t i = 0; value != options.knobs.end() && i < std::size(kFormNames); ++i) {
    if (value->second == kFormNames[i]) return static_cast<Form>(i);
  }
  return Form::kIndependent;
}

// Which engine does each job for one codec instance (see deflate_engines.h for who can do what).
struct Engines {
  DeflateEngine compress = DeflateEngine::kZlib;
  DeflateEngine whole_inflate = DeflateEngine::kLibdeflate;
  DeflateEngine stream_inflate = DeflateEngine::kIsal;
};

// The engines for resolved options. No backend named: the fastest engine per job and level at no
// worse a ratio than zlib's at that level (BENCHMARKS.md, "gzip engines"): ISA-L at levels 1 and
// 2 (its one deflate, its level 3, is smaller than zlib's 2 and larger than zlib's 3: 0.2795 of
// the Silesia tar in 128 KiB chunks against 0.2853 and 0.2751), libdeflate above. A backend named: that engine for
// every job it can do; libdeflate cannot stream, so streams are inflated by ISA-L.
Engines choose_engines(const CodecOptions& options) {
  const bool single = form_of(options) == Form::kSingleMember;
  Engines engines;
  if (options.backend.empty()) {
    engines.compress = single               ? DeflateEngine::kZlib
                       : options.level <= 2 ? DeflateEngine::kIsal
                                            : DeflateEngine::kLibdeflate;
    return engines;
  }
  const DeflateEngine chosen = *engine_by_name(options.backend);  // resolve_options checked the name
  if (single && chosen != DeflateEngine::kZlib) {
    throw Error(ErrorKind::kUsage, fmt::format("the single-member (pigz-style) gzip form is written by zlib only, not {} "
                                               "(it needs preset dictionaries and sync flushes)",
                                               options.backend));
  }
  engines.compress = chosen;
  engines.whole_inflate = chosen;
  engines.stream_inflate = chosen == DeflateEngine::kLibdeflate ? DeflateEngine::kIsal : chosen;
  return engines;
}

std::unique_ptr<ChunkDeflater> make_chunk_deflater(DeflateEngine engine, int level) {
  switch (engine) {
    case DeflateEngine::kZlib: return make_zlib_chunk_deflater(level);
    case DeflateEngine::kLibdeflate: return make_libdeflate_chunk_deflater(level);
    case DeflateEngine::kIsal: return make_isal_chunk_deflater(level);
  }
  return nullptr;
}

std::unique_ptr<WholeInflater> make_whole_inflater(DeflateEngine engine) {
  switch (engine) {
    case DeflateEngine::kZlib: return make_zlib_whole_inflater();
    case DeflateEngine::kLibdeflate: return make_libdeflate_whole_inflater();
    case DeflateEngine::kIsal: return make_isal_whole_inflater();
  }
  return nullptr;
}

std::unique_ptr<StreamInflater> make_stream_inflater(DeflateEngine engine) {
  return engine == DeflateEngine::kZlib ? make_zlib_stream_inflater() : make_isal_stream_inflater();
}

// A malformed gzip header: what is wrong and where, relative to the member's start.
struct HeaderProblem {
  const char* reason;
  std::size_t at;
};

// The length of the gzip header at the start of `h` (magic already checked), or nullopt if `h`
// ends inside it. Throws HeaderProblem. Every flag is handled: FEXTRA, FNAME, FCOMMENT, FHCRC.
std::optional<std::size_t> header_length(ByteView h) {
  if (h.size() < 10) return std::nullopt;
  if (h[2] != kMethodDeflate) throw HeaderProblem{"unknown compression method", 2};
  const std::uint8_t flags = h[3];
  if (flags & 0xE0) throw HeaderProblem{"reserved header flags set", 3};
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
    if ((update_crc32(0, h.first(at)) & 0xFFFF) != expected) throw HeaderProblem{"header crc mismatch", at};
    at += 2;
  }
  return at;
}

// header_length for what only describes a stream (its facts, its recorded name): a malformed
// header is as good as one that ends early, nothing to report (decoding reports it).
std::optional<std::size_t> header_length_if_sound(ByteView h) {
  try {
    return header_length(h);
  } catch (const HeaderProblem&) {
    return std::nullopt;
  }
}

// The FEXTRA subfield that makes a member splittable: 'S','L', 8 bytes: the member's total size
// and its uncompressed size (both little-endian uint32). See docs/independent-gzip.md.
constexpr std::uint8_t kSizeFieldId[2] = {'S', 'L'};
constexpr std::size_t kIndependentHeaderBytes = 10 + 2 + 4 + 8;
// The FEXTRA subfield of a member made of independent chunks: 'S','I', 8 bytes: the chunk size
// (uncompressed bytes of every chunk but the last) and flags, bit 0 set: every chunk is deflated
// with no history and ends on a sync flush (little-endian uint32 each).
constexpr std::uint8_t kChunksFieldId[2] = {'S', 'I'};
constexpr std::uint32_t kChunksIndependent = 1;
// BGZF (the SAM/BAM specification): members of at most 64 KiB whose 'B','C' subfield holds the
// member's size - 1, each holding at most 0xff00 bytes of input as bgzip writes them, then an
// empty member as end-of-file marker.
constexpr std::size_t kBgzfInputBytes = 0xff00;
constexpr std::size_t kBgzfHeaderBytes = 18;
constexpr std::uint32_t kBgzfMaxBlockBytes = 65536;
constexpr std::uint8_t kBgzfEof[28] = {0x1f, 0x8b, 8,    4, 0, 0, 0, 0, 0, 0xff, 6, 0, 'B', 'C',
                                       2,    0,    0x1b, 0, 3, 0, 0, 0, 0, 0,    0, 0, 0,   0};

std::uint8_t extra_flags(int level) { return level >= 9 ? 2 : (level == 1 ? 4 : 0); }

class GzipChunkCompressor final : public ChunkCompressor {
 public:
  GzipChunkCompressor(int level, Form form, DeflateEngine engine) : level_(level), form_(form) {
    if (form == Form::kSingleMember) {
      history_deflater_ = make_zlib_history_deflater(level);
    } else {
      chunk_deflater_ = make_chunk_deflater(engine, level);
    }
  }

  std::uint64_t compress_chunk(ByteView history, ByteView input, bool last, Buffer& out) override {
    const std::uint32_t crc = update_crc32(0, input);
    switch (form_) {
      case Form::kIndependent: {
        out.resize(chunk_deflater_->bound(input.size()));
        out.resize(chunk_deflater_->deflate(input, {out.data(), out.size()}, last));
        break;
      }
      case Form::kMultiMember:
        compress_member(input, crc, out);
        break;
      case Form::kBgzf:
        compress_bgzf_block(input, crc, out);
        break;
      case Form::kSingleMember:
        history_deflater_->deflate(history, input, last, out);
        break;
    }
    return crc;
  }

 private:
  // A complete member: header with the size subfield, raw deflate (no history), CRC-32, ISIZE.
  void compress_member(ByteView input, std::uint32_t crc, Buffer& out) {
    const std::size_t bound = chunk_deflater_->bound(input.size());
    out.resize(kIndependentHeaderBytes + bound + 8);
    const std::size_t deflated = chunk_deflater_->deflate(input, {out.data() + kIndependentHeaderBytes, bound}, true);
    const std::size_t member = kIndependentHeaderBytes + deflated + 8;
    std::uint8_t* p = out.data();
    const std::uint8_t head[12] = {kMagic0, kMagic1, kMethodDeflate,      kFlagExtra, 0,  0,
                                   0,       0,       extra_flags(level_), kOsUnix,    12, 0};
    std::memcpy(p, head, sizeof head);
    const std::uint8_t field[4] = {kSizeFieldId[0], kSizeFieldId[1], 8, 0};
    std::memcpy(p + 12, field, sizeof field);
    store_le32(p + 16, static_cast<std::uint32_t>(member));
    store_le32(p + 20, static_cast<std::uint32_t>(input.size()));
    end_member(input, crc, p + kIndependentHeaderBytes + deflated);
    out.resize(member);
  }

  // A BGZF block, with the header bgzip writes (no time, OS unknown).
  void compress_bgzf_block(ByteView input, std::uint32_t crc, Buffer& out) {
    const std::size_t bound = chunk_deflater_->bound(input.size());
    out.resize(kBgzfHeaderBytes + bound + 8);
    const std::size_t deflated = chunk_deflater_->deflate(input, {out.data() + kBgzfHeaderBytes, bound}, true);
    const std::size_t member = kBgzfHeaderBytes + deflated + 8;
    // A block of 0xff00 bytes deflates to less than 64 KiB with any engine (stored blocks add 5
    // bytes per 64 KiB); more is our bug.
    if (member > kBgzfMaxBlockBytes) throw Error(ErrorKind::kInternal, "a BGZF block deflated to more than 64 KiB");
    std::memcpy(out.data(), kBgzfEof, 16);
    out.data()[16] = static_cast<std::uint8_t>((member - 1) & 0xff);
    out.data()[17] = static_cast<std::uint8_t>((member - 1) >> 8);
    end_member(input, crc, out.data() + kBgzfHeaderBytes + deflated);
    out.resize(member);
  }

  static void end_member(ByteView input, std::uint32_t crc, std::uint8_t* trailer) {
    store_le32(trailer, crc);
    store_le32(trailer + 4, static_cast<std::uint32_t>(input.size()));
  }

  int level_;
  Form form_;
  std::unique_ptr<ChunkDeflater> chunk_deflater_;      // every form but single-member
  std::unique_ptr<HistoryDeflater> history_deflater_;  // single member
};

// A one-member stream's pieces, flushed by its writer: one zlib deflate stream. In the
// single-member form the window is kept throughout and every piece ends on a sync flush, as
// gzip.open's flush() writes (the same bytes). In the default form the header promises chunks of
// its recorded size, each independent and ended on a sync flush: the window is kept only within a
// chunk, whose pieces end on partial flushes (all of a piece decodable, no 00 00 ff ff where a
// reader would cut), and every multiple of the chunk size from the start ends a chunk there.
class GzipFlushCompressor final : public FlushCompressor {
 public:
  // `chunk_bytes`: the default form's; 0: the single-member form.
  GzipFlushCompressor(int level, std::size_t chunk_bytes)
      : deflater_(make_zlib_piece_deflater(level)), chunk_bytes_(chunk_bytes) {}

  void compress_piece(ByteView input, bool last, Buffer& out, std::vector<ChunkRecord>& records) override {
    using End = PieceDeflater::End;
    out.clear();
    if (chunk_bytes_ == 0) {
      deflater_->deflate(input, last ? End::kFinish : End::kSyncFlush, out);
      records.push_back({input.size(), out.size(), update_crc32(0, input)});
      return;
    }
    std::size_t at = 0;
    do {
      const std::size_t room = chunk_bytes_ - static_cast<std::size_t>(offset_ % chunk_bytes_);
      const std::size_t take = std::min(room, input.size() - at);
      const bool final = last && at + take == input.size();
      const bool ends_chunk = take == room;
      deflater_->deflate(input.subspan(at, take), final ? End::kFinish : (ends_chunk ? End::kSyncFlush : End::kPartialFlush),
                         out);
      at += take;
      offset_ += take;
      aligned_ = final || ends_chunk;
      if (ends_chunk && !final) deflater_->reset();  // the next chunk has no history
    } while (at < input.size());
    // The framer combines CRC-32s and sizes: one record for the piece does, wherever chunks end.
    records.push_back({input.size(), out.size(), update_crc32(0, input)});
  }

  void end_pieces(Buffer& out, std::vector<ChunkRecord>& records) override {
    if (aligned_) return;
    deflater_->deflate({}, PieceDeflater::End::kSyncFlush, out);
    aligned_ = true;
    records.push_back({0, out.size(), 0});  // 0: the CRC-32 of nothing
  }

  // After chunks ended on a sync flush: a chunk of the default form begins there with no history
  // (one a flush ended), the single-member form goes on with its window.
  void resume_at(std::uint64_t offset, ByteView history) override {
    offset_ = offset;
    deflater_->reset(chunk_bytes_ == 0 ? history : ByteView{});
    aligned_ = true;
  }

 private:
  std::unique_ptr<PieceDeflater> deflater_;
  std::size_t chunk_bytes_;
  std::uint64_t offset_ = 0;  // input so far
  bool aligned_ = true;       // the last piece ended on a byte boundary, a chunk may follow
};

// The name and modification time of a file, as gzip records them: 4 bytes of MTIME (0 when
// unknown or out of range) and the name without NULs.
std::uint32_t header_mtime(const StreamInfo& info) {
  return info.mtime_seconds > 0 && info.mtime_seconds <= std::numeric_limits<std::uint32_t>::max()
             ? static_cast<std::uint32_t>(info.mtime_seconds)
             : 0;
}
std::string header_name(const StreamInfo& info) {
  std::string name = info.name;
  std::erase(name, '\0');
  return name;
}

// Multi-member streams: members carry their own headers and trailers. The stream adds one thing: when there
// is a name or time to record, an empty first member carrying them (FNAME, MTIME), where gunzip -N
// and gzip -l look; it has the size field like every other member.
class MultiMemberFramer final : public StreamFramer {
 public:
  explicit MultiMemberFramer(const StreamInfo& info) : name_(header_name(info)), mtime_(header_mtime(info)) {}

  void header(Buffer& out) override {
    if (name_.empty() && mtime_ == 0) return;
    const std::uint8_t flags = name_.empty() ? kFlagExtra : kFlagExtra | kFlagName;
    const std::size_t member = kIndependentHeaderBytes + (name_.empty() ? 0 : name_.size() + 1) + 2 + 8;
    const std::uint8_t start[4] = {kMagic0, kMagic1, kMethodDeflate, flags};
    out.append(start);
    put_le32(out, mtime_);
    const std::uint8_t extra[8] = {0, kOsUnix, 12, 0, kSizeFieldId[0], kSizeFieldId[1], 8, 0};
    out.append(extra);
    put_le32(out, static_cast<std::uint32_t>(member));
    put_le32(out, 0);  // no content
    if (!name_.empty()) {
      out.append(as_bytes(name_));
      const std::uint8_t nul = 0;
      out.append({&nul, 1});
    }
    const std::uint8_t empty_deflate[2] = {0x03, 0x00};  // one final fixed-Huffman block, end of block
    out.append(empty_deflate);
    put_le32(out, 0);  // CRC-32 of nothing
    put_le32(out, 0);  // ISIZE
  }
  void add_chunk(const ChunkRecord&) override {}
  void trailer(Buffer&) override {}

 private:
  std::string name_;
  std::uint32_t mtime_;
};

// Zero bytes after the last member are padding (a tape's or dd's block), which gzip -d and
// pigz -d skip without a word; so do we. Anything after the zeros is still trailing garbage.
// Returns how many of `bytes` are zeros from the start.
std::size_t zero_padding_bytes(ByteView bytes) {
  return static_cast<std::size_t>(std::find_if(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b != 0; }) -
                                  bytes.begin());
}

// What the splitter tells the unit decoder and the verifier about a cut (Cut::flags).
constexpr std::uint32_t kChunksHeader = 1;  // marker: a member of independent chunks starts
constexpr std::uint32_t kChunkUnit = 2;     // unit: one independent chunk of that member (a guess)
constexpr std::uint32_t kSharedHeader = 4;  // marker: a member whose pieces share history starts
constexpr std::uint32_t kInOrderPiece = 8;  // unit: a piece of it, inflated in order (a guess)
constexpr std::uint32_t kGuessedPiece = 16;  // unit: a piece of it, guessed ahead (a guess)
constexpr std::uint32_t kMemberEnd = 32;     // with kInOrderPiece: its last piece and trailer (a guess)
// A piece cut inside a byte: its PieceEdges, in bits 8-23 of the flags.
constexpr int kTailBitsShift = 8, kLeadCountShift = 11, kLeadValueShift = 16;

std::uint32_t edge_flags(PieceEdges edges) {
  return std::uint32_t{edges.tail_bits} << kTailBitsShift | std::uint32_t{edges.lead.count} << kLeadCountShift |
         std::uint32_t{edges.lead.value} << kLeadValueShift;
}

PieceEdges piece_edges(const Cut& cut) {
  PieceEdges edges;
  edges.tail_bits = static_cast<std::uint8_t>(cut.flags >> kTailBitsShift & 7);
  edges.lead.count = static_cast<std::uint8_t>(cut.flags >> kLeadCountShift & 7);
  edges.lead.value = static_cast<std::uint8_t>(cut.flags >> kLeadValueShift & 0xFF);
  return edges;
}

// What is left of the last byte of a piece that ends at bit `end_bit` (counted from its first
// whole byte) for the piece after it.
LeadBits lead_after(ByteView bytes, std::size_t end_bit) {
  const auto used = static_cast<unsigned>(end_bit % 8);
  if (used == 0) return {};
  return {static_cast<std::uint8_t>(8 - used), static_cast<std::uint8_t>(bytes[end_bit / 8] >> used)};
}

// A member of none of our forms (gzip's, pigz's) is cut into pieces of about this much deflate
// data, for parallel inflate. Each ends on a sync flush (pigz leaves one every 128 KiB of input)
// if the member's first piece found one within four times its size (1 KiB to kMaxSearchBytes);
// otherwise (gzip's output) where a dynamic Huffman block begins, found by its header (gzip's
// blocks hold 20-110 KB of deflate data). Either is looked for in the kMaxSearchBytes past a
// piece's least size; with none there, the rest is decoded serially.
constexpr std::size_t kPieceInputBytes = 256 * 1024;
constexpr std::size_t kMinSearchBytes = 1024, kMaxSearchBytes = 1024 * 1024, kSearchStepBytes = 16 * 1024;
// The most a dynamic block's header can take: 17 bits, 19 code-length code lengths of 3 bits,
// and 316 code lengths of at most 7 + 7 bits.
constexpr std::size_t kMaxBlockHeaderBytes = (17 + 19 * 3 + 316 * 14 + 7) / 8;

// Which share of those pieces to guess ahead (deflate_engines.h, guess_piece) with `threads`
// threads. Costs per output byte, relative to a piece inflated in order by the writer (inflate,
// CRC-32, window), measured by bench/micro/inflate_costs.cpp (BENCHMARKS.md, "Parallel
// inflate"): a guess 1.9 on any worker, filling it in 0.45 on any free thread. The writer's part
// (1 - share) runs in order and the rest on every thread; they balance at this share.
constexpr double kGuessCost = 1.9, kResolveCost = 0.45;
double guessed_share(int threads) {
  if (threads < 2) return 0;
  return (threads - 1) / (threads - 1 + kGuessCost + kResolveCost);
}

// The pattern a sync flush leaves at the end of a chunk: an empty stored block's LEN and NLEN.
constexpr std::uint8_t kSyncFlush[4] = {0x00, 0x00, 0xFF, 0xFF};
// The most deflate data inflates to, per byte: a 258-byte match in 2 bits (RFC 1951 codes a lone
// distance code in 1 bit, and the literal/length code holds end-of-block too).
constexpr std::size_t kMaxDeflateRatio = 1032;

// Finds members that say how long they are (our 'S','L' subfield, BGZF's 'B','C') and the chunks
// of a member that says they are independent ('S','I'). Any other member sends the rest of the
// stream to the serial decoder.
//
// Chunks are found by their end, a sync flush: each unit runs to the next "00 00 ff ff" and is a
// guess (Cut::speculative), since those bytes may also occur inside compressed data. The unit
// decoder accepts a guess only when the chunk, inflated alone from its start, ends exactly there
// at a block boundary; the first wrong guess sends the stream to the verifier's serial decoder
// (GzipVerifier), which goes on from the last chunk accepted. The last chunk ends with the final
// block and the trailer, not a sync flush: it is what is left at the end of the input, decoded
// serially too.
//
// With more than one thread, any other member is cut into pieces that share history
// (kPieceInputBytes): at sync flushes the same way, or, in a member without them (gzip's), where
// the header of a dynamic Huffman block is found (find_dynamic_block), at any bit: a piece then
// ends inside a byte and the next begins with the rest of it (PieceEdges, in Cut::flags). A share
// of the pieces is guessed ahead by the workers, the rest inflated in order by the verifier,
// which fills the guesses in (GzipVerifier::complete). A piece's end is a guess too, checked the
// same way, to the bit; since each piece is accepted only if it ends at a block boundary, and
// the first starts at one, every accepted piece starts at one, and a header found in the middle
// of a block (bits that look like one) fails that check: the stream goes serial from there.
//
// With more than one thread, too, a member of another tool is one unit where its end is found
// (the next member's header, after a plausible trailer: guess_member_end), and a member in pieces
// ends in a last piece at the next header (next_member_at, GzipVerifier::finish_member): a file of
// many members is decoded in parallel to its last. These ends are guesses, checked to the byte.
class GzipSplitter final : public StreamSplitter {
 public:
  Cut find_cut(ByteView b, std::uint64_t offset) override {
    if (chunk_bytes_ > 0) return next_chunk(b);
    if (shared_) return next_piece(b);
    if (guessing_members_) return next_guessed_member(b, offset);
    if (members_ > 0 && !b.empty() && b[0] == 0) {  // padding (zero_padding_bytes)
      if (speculated()) return serial();            // after a guess, the serial decoder reads it as in order
      if (!padding_start_) padding_start_ = offset;
      return marker(zero_padding_bytes(b));
    }
    if (padding_start_) {
      throw Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last gzip member", {}, *padding_start_);
    }
    if (b.size() < 12) return need_more();
    if (b[0] != kMagic0 || b[1] != kMagic1) {
      if (members_ > 0) throw Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last gzip member", {}, offset);
      throw Error(ErrorKind::kCorruptData, "not a gzip member", {}, offset);
    }
    if (b[2] != kMethodDeflate) throw Error(ErrorKind::kCorruptData, "corrupt gzip header: unknown method", {}, offset);
    if (!(b[3] & kFlagExtra)) return start_foreign(b, offset);
    const std::size_t extra = std::size_t{b[10]} | std::size_t{b[11]} << 8;
    if (b.size() < 12 + extra) return need_more();
    for (std::size_t at = 12; at + 4 <= 12 + extra;) {
      const std::size_t length = std::size_t{b[at + 2]} | std::size_t{b[at + 3]} << 8;
      if (at + 4 + length > 12 + extra) break;
      const std::uint8_t* field = b.data() + at + 4;
      if (b[at] == kSizeFieldId[0] && b[at + 1] == kSizeFieldId[1] && length == 8) {
        const std::size_t member = load_le32(field), content = load_le32(field + 4);
        // A size field that cannot be right (a flipped bit, another tool's field of that name):
        // the member is read as gzip reads any, in order, which says what is wrong if anything.
        if (member < 12 + extra + 10) return serial();
        if (member > kMaxUnitInputBytes || content > kMaxUnitOutputBytes) return serial();
        if (b.size() < member) return need_more();
        return sized_member(member, content);
      }
      if (b[at] == 'B' && b[at + 1] == 'C' && length == 2) {  // BGZF: BSIZE is the member size - 1
        const std::size_t member = (std::size_t{field[0]} | std::size_t{field[1]} << 8) + 1;
        if (member < 12 + extra + 10) return serial();  // as for the size field above
        if (b.size() < member) return need_more();
        const std::uint32_t content = load_le32(b.data() + member - 4);
        if (content > kBgzfMaxBlockBytes) return serial();  // BSIZE points elsewhere than a trailer
        return sized_member(member, content);
      }
      if (b[at] == kChunksFieldId[0] && b[at + 1] == kChunksFieldId[1] && length == 8) {
        const std::size_t chunk = load_le32(field);
        if (!(load_le32(field + 4) & kChunksIndependent) || chunk == 0 || chunk > kMaxUnitOutputBytes) return serial();
        std::optional<std::size_t> header;
        try {
          header = header_length(b);
        } catch (const HeaderProblem& problem) {
          throw Error(ErrorKind::kCorruptData, fmt::format("corrupt gzip header: {}", problem.reason), {},
                      offset + problem.at);
        }
        // A header longer than that (a name of megabytes) is read by the serial decoder: asked
        // again as each read arrives, it was parsed from its start each time (60 MiB: 13 s).
        if (!header) return b.size() > kMaxSharedHeaderBytes ? serial() : need_more();
        chunk_bytes_ = chunk;
        chunk_member_start_ = offset;
        return marker(*header, kChunksHeader, chunk);
      }
      at += 4 + length;
    }
    return start_foreign(b, offset);
  }

  // Input that ends right after a member's header or a chunk ends the member before its last
  // chunk and trailer.
  void finish_at(std::uint64_t offset) override {
    if (chunk_bytes_ == 0 && !shared_) return;
    throw Error(
        ErrorKind::kCorruptData,
        fmt::format("unexpected end of input: the gzip member starting at byte {} is truncated", chunk_member_start_),
        {}, offset);
  }

  // Within a member of chunks, what is left at the end is its last chunk and what follows it.
  // A member whose end was looked for, and not found before the input ended, is the last one: cut
  // into pieces, as far as they reach.
  Cut cut_at_end(ByteView b, std::uint64_t offset) override {
    if (shared_) {  // the last member: its pieces, as far as cuts are found
      const Cut cut = cut_piece(b, /*ends_here=*/true);
      return cut.kind == Cut::Kind::kUnit ? cut : serial();
    }
    if (chunk_bytes_ > 0) return serial();
    // A member that says it is longer than what is left (a size field that lies, or a file cut
    // short), or bytes too few for a header: the serial decoder reads them as gzip does, and says
    // whether they are a member cut short or trailing garbage.
    if (member_scanned_ == 0) return serial();
    member_scanned_ = 0;
    return start_shared(b, offset);
  }

  // Every cut ends where a serial decoder goes on: between members a new one, within a member of
  // chunks or pieces the verifier's (as after the kSerial this splitter answers in every state).
  bool serial_may_start_here() const override { return true; }

 private:
  // Where a member ends, if guess_member_end found it.
  struct MemberEnd {
    enum Kind { kNone, kNeedMore, kFound } kind = kNone;
    std::size_t bytes = 0;          // the member's length, trailer included
    std::size_t content_bytes = 0;  // its ISIZE
  };

  // A member of none of our forms (gzip's, pigz's, any tool's), with more than one thread: a
  // whole unit if its end is found (one of many members: logs appended to, web archives), else
  // cut into pieces. The first member of a stream, most often the only one, is looked for only
  // about as far as its first piece would be cut, so as not to hold its pieces up; after a
  // member, within kMaxGuessedMemberBytes.
  Cut start_foreign(ByteView b, std::uint64_t offset) {
    if (hints().threads < 2) return serial();
    const MemberEnd end = guess_member_end(b, members_ == 0 ? first_piece_reach() : kMaxGuessedMemberBytes);
    if (end.kind == MemberEnd::kNeedMore) return need_more();
    if (end.kind == MemberEnd::kNone) return start_shared(b, offset);
    guessing_members_ = true;
    return guessed_member(end);
  }

  // After a guessed member: the next member is one too if its end is found within
  // kMaxGuessedMemberBytes (and it holds no more than a unit), else cut into pieces. Anything else
  // (zero padding, garbage) goes to the serial decoder, which says what it is (the guess before
  // may have been wrong).
  Cut next_guessed_member(ByteView b, std::uint64_t offset) {
    if (b.size() < 2) return need_more();
    if (b[0] != kMagic0 || b[1] != kMagic1) return serial();
    const MemberEnd end = guess_member_end(b, kMaxGuessedMemberBytes);
    if (end.kind == MemberEnd::kNeedMore) return need_more();
    return end.kind == MemberEnd::kFound ? guessed_member(end) : start_shared(b, offset);
  }

  // A member whose size field says how long it is: a guess too, as the field may lie (a flipped
  // bit, another tool's field of the same name). The unit decoder checks it to the byte, and a
  // wrong one sends the stream to the serial decoder, which reads the member as gzip reads any.
  Cut sized_member(std::size_t bytes, std::size_t content_bytes) {
    ++members_;
    Cut cut = unit(bytes, content_bytes);
    cut.speculative = true;
    return cut;
  }

  Cut guessed_member(const MemberEnd& end) {
    ++members_;
    member_scanned_ = 0;
    Cut cut = unit(end.bytes, end.content_bytes);
    cut.speculative = true;
    return cut;
  }

  // Where the member at the start of `b` ends, guessed from the next member's header within its
  // first `reach` bytes (looks_like_header), after a trailer whose ISIZE is plausible for the
  // deflate data before it; the unit decoder checks the guess to the byte (the member must
  // inflate to exactly ISIZE bytes ending at the trailer, with its CRC-32), and a wrong one sends
  // the stream to the serial decoder from that member on.
  MemberEnd guess_member_end(ByteView b, std::size_t reach) {
    std::optional<std::size_t> header;
    try {
      header = header_length(b);
    } catch (const HeaderProblem&) {
      return {};  // left to the decoder that says what is wrong
    }
    if (!header) return {b.size() > kMaxSharedHeaderBytes ? MemberEnd::kNone : MemberEnd::kNeedMore};
    constexpr std::size_t kLeastDeflateBytes = 2, kTrailerBytes = 8;
    const std::size_t limit = std::min(b.size(), reach);
    std::size_t at = std::max(member_scanned_, *header + kLeastDeflateBytes + kTrailerBytes);
    for (;; ++at) {
      at = next_header(b, at, limit);
      if (at + kFixedHeaderBytes > limit) break;
      const std::uint32_t content = load_le32(b.data() + at - 4);
      if (plausible_member(at - kTrailerBytes - *header, content)) {
        member_scanned_ = 0;
        if (content <= kMaxUnitOutputBytes) return {MemberEnd::kFound, at, content};
        return {};  // the end of a member too large for a unit (or a false one): pieces find out
      }
    }
    member_scanned_ = std::max(member_scanned_, at);  // candidates before it are checked
    if (limit < reach) return {MemberEnd::kNeedMore};
    member_scanned_ = 0;
    return {};
  }

  // Whether the 10 bytes at `h` could start a member as the tools write one: magic, method, no
  // reserved flag, XFL as RFC 1952 defines it (0, 2, 4), an OS it lists (0-13, 255). Compressed
  // data holds that by chance about once in 2^40 bytes (the magic and method alone: once in 16 MB,
  // found in the Silesia tar's deflate data). A writer of other XFL or OS values costs only time.
  static bool looks_like_header(const std::uint8_t* h) {
    return h[0] == kMagic0 && h[1] == kMagic1 && h[2] == kMethodDeflate && !(h[3] & 0xE0) &&
           (h[8] == 0 || h[8] == 2 || h[8] == 4) && (h[9] <= 13 || h[9] == 255);
  }
  static constexpr std::size_t kFixedHeaderBytes = 10;

  // The first position from `at` where looks_like_header holds within b[0, limit); if there is
  // none, a position p with p + kFixedHeaderBytes > limit, from which to look on once more is
  // buffered.
  static std::size_t next_header(ByteView b, std::size_t at, std::size_t limit) {
    while (at + kFixedHeaderBytes <= limit) {
      const void* magic = std::memchr(b.data() + at, kMagic0, limit - kFixedHeaderBytes + 1 - at);
      if (!magic) return limit - kFixedHeaderBytes + 1;
      at = static_cast<std::size_t>(static_cast<const std::uint8_t*>(magic) - b.data());
      if (looks_like_header(b.data() + at)) return at;
      ++at;
    }
    return at;
  }
  // How far the end of a member after another is looked for: 4 MiB of deflate data (12-16 MiB of
  // output at gzip's usual ratios: about what a unit holds). Read from a pipe, bytes buffered while
  // looking are copied as the read block grows; a longer search would copy more than it saves.
  static constexpr std::size_t kMaxGuessedMemberBytes = 4 * 1024 * 1024;

  // Whether `deflate_bytes` of deflate data could hold `content` bytes (ISIZE), as encoders write
  // it: at most stored (5 bytes a block) or fixed Huffman (9 bits a byte), at least 1/1032 (the
  // most deflate compresses). What precedes a false member header seldom passes: a gzip file
  // stored inside a member (a tarball of .gz files) follows zero padding, which reads as a size of
  // 0. A true end this refuses (a member of tiny flushes, or of 4 GiB or more) costs only time.
  static bool plausible_member(std::uint64_t deflate_bytes, std::uint32_t content) {
    return deflate_bytes <= std::uint64_t{content} + content / 4 + 64 &&
           content <= kMaxDeflateRatio * deflate_bytes + 64;
  }

  // How far the end of a member is looked for before it is cut into pieces instead: about where
  // its first piece would be cut.
  std::size_t first_piece_reach() const { return std::clamp(4 * piece_bytes(), kMinSearchBytes, kMaxSearchBytes); }

  // How much deflate data a piece holds: at most a quarter of what a unit may inflate to, so that
  // a piece fits, and is found within what the engine buffers.
  std::size_t piece_bytes() const {
    return hints().unit_input_bytes > 0 ? std::min(hints().unit_input_bytes, kMaxUnitOutputBytes / 4)
                                        : kPieceInputBytes;
  }

  // A member of none of our forms that does not end near its start: pieces that share history.
  Cut start_shared(ByteView b, std::uint64_t offset) {
    guessed_share_ = guessed_share(hints().threads);
    piece_input_bytes_ = piece_bytes();
    if (guessed_share_ <= 0) return serial();
    std::optional<std::size_t> header;
    try {
      header = header_length(b);
    } catch (const HeaderProblem&) {
      return serial();  // the serial decoder says what is wrong
    }
    if (!header) return b.size() > kMaxSharedHeaderBytes ? serial() : need_more();
    shared_ = true;
    find_blocks_ = blocks_tried_ = false;
    lead_ = {};
    pieces_ = 0;
    guess_credit_ = 0;
    scanned_ = end_scanned_ = 0;
    member_deflate_bytes_ = 0;
    chunk_member_start_ = offset;
    return marker(*header, kSharedHeader);
  }

  // The next piece of such a member, or its last: a cut found before the next member's header
  // (within the reach of the search for a cut), else that header is where the member ends.
  Cut next_piece(ByteView b) {
    const std::size_t reach = std::min(b.size(), piece_input_bytes_ + kMaxSearchBytes);
    const std::optional<std::size_t> end = next_member_at(b, reach);
    if (!end) return cut_piece(b);
    const Cut cut = *end < piece_input_bytes_ ? serial() : cut_piece(b.first(*end), /*ends_here=*/true);
    return cut.kind == Cut::Kind::kUnit ? cut : last_piece(*end);
  }

  // Where the next member's header is in b[0, limit), if one is (looks_like_header), after a
  // trailer whose size is plausible for the member's deflate data.
  std::optional<std::size_t> next_member_at(ByteView b, std::size_t limit) {
    constexpr std::size_t kLeastEndBytes = 1 + 8;  // a byte of the final block, the trailer
    std::size_t at = std::max(end_scanned_, kLeastEndBytes);
    for (;; ++at) {
      at = next_header(b, at, limit);
      if (at + kFixedHeaderBytes > limit) break;
      if (plausible_member(member_deflate_bytes_ + at - 8, load_le32(b.data() + at - 4))) {
        end_scanned_ = at;
        return at;
      }
    }
    end_scanned_ = std::max(end_scanned_, at);
    return std::nullopt;
  }

  // The member's last piece, to the next member's header at `end`: inflated in order, with the
  // trailer checked (GzipVerifier::finish_member); the next member is then split as any other.
  Cut last_piece(std::size_t end) {
    Cut cut = unit(end, kMaxUnitOutputBytes, kInOrderPiece | kMemberEnd | edge_flags({lead_, 0}));
    cut.speculative = true;
    shared_ = false;
    ++members_;
    scanned_ = end_scanned_ = 0;
    return cut;
  }

  // The next piece of such a member: to the first sync flush or block header past
  // piece_input_bytes_. `b` starts after the bytes of the pieces before; lead_ holds what the
  // last of them left of its last byte. `ends_here`: the member ends with b (no more is needed to
  // decide; kSerial: no cut in it).
  Cut cut_piece(ByteView b, bool ends_here = false) {
    const std::size_t from = piece_input_bytes_;
    if (!find_blocks_) {
      const std::size_t limit = std::min(b.size(), from + kMaxSearchBytes);
      if (const auto end = sync_flush_end(b, std::max(scanned_, from), limit)) {
        scanned_ = 0;
        return piece(b, *end * 8);
      }
      scanned_ = std::max(from, limit >= sizeof kSyncFlush ? limit - sizeof kSyncFlush + 1 : 0);
      // None near the first piece's end: gzip's output, which has none. If a block begins there,
      // cut where blocks begin from now on.
      const std::size_t first_search = std::clamp(4 * from, kMinSearchBytes, kMaxSearchBytes);
      if (pieces_ == 0 && !blocks_tried_ && b.size() >= from + first_search + kMaxBlockHeaderBytes) {
        blocks_tried_ = true;
        const auto start = find_dynamic_block(b.first(from + first_search + kMaxBlockHeaderBytes), from * 8,
                                              (from + first_search) * 8);
        if (start) {
          find_blocks_ = true;
          scanned_ = 0;
          return piece(b, *start);
        }
      }
      if (b.size() < from + kMaxSearchBytes && !ends_here) return need_more();
      find_blocks_ = true;  // no sync flush within reach: look for a block
      scanned_ = 0;
    }
    // A header found before `usable` lies within what is buffered. In steps, so that a cut costs
    // about the distance to it: the end of a stored block (incompressible data), and a dynamic
    // block's header before that stored block.
    const std::size_t limit = from + kMaxSearchBytes;
    const std::size_t usable = std::min(b.size() - std::min(b.size(), kMaxBlockHeaderBytes), limit);
    const ByteView searched = b.first(usable + std::min(b.size() - usable, kMaxBlockHeaderBytes));
    while (std::max(scanned_, from) < usable) {
      const std::size_t low = std::max(scanned_, from), high = std::min(usable, low + kSearchStepBytes);
      const auto stored = find_stored_block_end(b, low, high);
      if (const auto start = find_dynamic_block(searched, low * 8, (stored ? stored->length_at : high) * 8)) {
        scanned_ = 0;
        return piece(b, *start);
      }
      if (stored) {
        scanned_ = 0;
        return piece(b, stored->end * 8);
      }
      scanned_ = high;
    }
    return usable >= limit || ends_here ? serial() : need_more();
  }

  // A piece that ends at bit `end_bit` of `b`. Piece by piece, a running total decides which are
  // guessed, so that guessed_share_ of them are; the first is inflated in order.
  Cut piece(ByteView b, std::size_t end_bit) {
    std::uint32_t kind = kInOrderPiece;
    if (pieces_++ > 0 && (guess_credit_ += guessed_share_) >= 1) {
      guess_credit_ -= 1;
      kind = kGuessedPiece;
    }
    const PieceEdges edges{lead_, static_cast<std::uint8_t>(end_bit % 8)};
    lead_ = lead_after(b, end_bit);
    const std::size_t bytes = (end_bit + 7) / 8;
    member_deflate_bytes_ += bytes;
    end_scanned_ -= std::min(end_scanned_, bytes);  // searched for the member's end up to there
    Cut cut = unit(bytes, kMaxUnitOutputBytes, kind | edge_flags(edges));
    cut.speculative = true;
    return cut;
  }

  // Where the first sync flush pattern in b[from, limit) ends; candidates start at `from` or later.
  static std::optional<std::size_t> sync_flush_end(ByteView b, std::size_t from, std::size_t limit) {
    for (std::size_t i = from; i + sizeof kSyncFlush <= limit;) {
      const void* ff = std::memchr(b.data() + i + 2, 0xFF, limit - i - 2);
      if (!ff) break;
      const auto j = static_cast<std::size_t>(static_cast<const std::uint8_t*>(ff) - b.data());  // i + 2 at best
      i = j - 2;
      if (j + 1 < limit && b[i] == 0 && b[i + 1] == 0 && b[j + 1] == 0xFF) return i + sizeof kSyncFlush;
      ++i;
    }
    return std::nullopt;
  }

  // The next unit: a chunk, up to and including the next sync flush pattern, if one is buffered
  // within the most a chunk can deflate to (beyond that, the rest is decoded serially); then the
  // chunks buffered after it, while the unit is shorter than kMinChunkUnitInputBytes and what it
  // can inflate to stays within kMaxChunkUnitOutputBytes (or one chunk). Independent chunks
  // inflate together as they do apart; a unit each would let a stream of empty ones (5 bytes:
  // 00 00 00 ff ff) cost a unit, and a window kept, per 5 bytes of input.
  Cut next_chunk(ByteView b) {
    const std::size_t limit = std::min(b.size(), max_chunk_input());
    // A candidate at i means b[i, i + 4) is the pattern; the shortest chunk is 5 bytes.
    const auto first = sync_flush_end(b, std::max<std::size_t>(scanned_, 1), limit);
    if (!first) {
      if (b.size() >= max_chunk_input()) return serial();
      scanned_ = limit >= sizeof kSyncFlush ? limit - sizeof kSyncFlush + 1 : 0;  // candidates checked
      return need_more();
    }
    scanned_ = 0;
    std::size_t bytes = *first, chunks = 1;
    while (bytes < kMinChunkUnitInputBytes) {
      const auto next = sync_flush_end(b, bytes + 1, std::min(b.size(), bytes + max_chunk_input()));
      if (!next || most_output(chunks + 1, *next) > std::max(chunk_bytes_, kMaxChunkUnitOutputBytes)) break;
      bytes = *next;
      ++chunks;
    }
    Cut cut = unit(bytes, most_output(chunks, bytes), kChunkUnit);
    cut.speculative = true;
    return cut;
  }

  // The most `chunks` chunks in `deflate_bytes` inflate to: what they hold, and what deflate can
  // make of that many bytes (1032 to 1 at most: a 258-byte match in 2 bits).
  std::size_t most_output(std::size_t chunks, std::size_t deflate_bytes) const {
    return std::min(chunks * chunk_bytes_, kMaxDeflateRatio * deflate_bytes + 1024);
  }
  static constexpr std::size_t kMinChunkUnitInputBytes = 4 * 1024;
  static constexpr std::size_t kMaxChunkUnitOutputBytes = 4 * 1024 * 1024;

  // The most a chunk of chunk_bytes_ deflates to: stored blocks, 5 bytes per 64 KiB, and the
  // sync flush; a little more for slack.
  std::size_t max_chunk_input() const { return chunk_bytes_ + chunk_bytes_ / 1024 + 1024; }

  std::uint64_t members_ = 0;
  std::optional<std::uint64_t> padding_start_;  // where zero padding after the last member began
  std::size_t chunk_bytes_ = 0;                 // in a member of independent chunks: their size
  std::uint64_t chunk_member_start_ = 0;        // and where that member began
  std::size_t scanned_ = 0;                     // of the buffered bytes, searched without a find
  // A member's end was guessed (start_foreign): the next ones are looked for the same way.
  bool guessing_members_ = false;
  std::size_t member_scanned_ = 0;  // of the member being guessed, where its end is yet to be looked for
  // A member whose pieces share history (start_shared).
  static constexpr std::size_t kMaxSharedHeaderBytes = 64 * 1024;  // a longer header goes serial (find_cut too)
  bool shared_ = false;
  double guessed_share_ = 0;
  std::size_t piece_input_bytes_ = kPieceInputBytes;
  double guess_credit_ = 0;
  std::uint64_t pieces_ = 0;
  std::uint64_t member_deflate_bytes_ = 0;  // in the pieces cut so far
  std::size_t end_scanned_ = 0;             // of the buffered bytes, searched for the member's end
  bool find_blocks_ = false;                // cut where blocks begin, not at sync flushes
  bool blocks_tried_ = false;  // a block was looked for near the first piece's end
  LeadBits lead_;              // what the last piece left of its last byte
};

// Inflates one whole member, which must produce exactly the size it declared and pass its CRC-32
// and ISIZE checks.
class GzipUnitDecoder final : public UnitDecoder {
 public:
  explicit GzipUnitDecoder(DeflateEngine engine) : inflater_(make_whole_inflater(engine)) {}

  void decode_unit(ByteView unit, const Cut& cut, Buffer& out) override {
    if (cut.flags & kChunkUnit) {
      decode_chunk(unit, cut, out);
    } else if (cut.flags & kInOrderPiece) {
      out.clear();  // the verifier inflates it, knowing its window
    } else if (cut.flags & kGuessedPiece) {
      if (!chunk_inflater_) chunk_inflater_ = make_isal_chunk_inflater();
      guess_piece(*chunk_inflater_, unit, piece_edges(cut), cut.max_output_bytes, out);  // else empty: in order
    } else {
      decode_member(unit, cut, out);
    }
  }

 private:
  // Chunks of a member of independent chunks (a guess: GzipSplitter). A byte more room than they
  // may hold tells chunks that are too long from ones that fit exactly.
  void decode_chunk(ByteView chunk, const Cut& cut, Buffer& out) {
    if (!chunk_inflater_) chunk_inflater_ = make_isal_chunk_inflater();
    out.resize(cut.max_output_bytes + 1);
    const std::size_t produced = chunk_inflater_->inflate(chunk, {out.data(), out.size()});
    if (produced > cut.max_output_bytes) throw Error(ErrorKind::kCorruptData, "inflates to more than a chunk holds");
    out.resize(produced);
  }

  void decode_member(ByteView member, const Cut& cut, Buffer& out) {
    std::optional<std::size_t> header;
    try {
      header = header_length(member);
    } catch (const HeaderProblem& problem) {
      throw Error(ErrorKind::kCorruptData, fmt::format("corrupt gzip member: {}", problem.reason));
    }
    if (!header || *header + 8 > member.size()) throw Error(ErrorKind::kCorruptData, "corrupt gzip member: truncated");
    out.reserve(cut.max_output_bytes + 1);  // never a null output pointer, even for empty members
    out.resize(cut.max_output_bytes);
    try {
      inflater_->inflate(member.subspan(*header, member.size() - *header - 8), {out.data(), out.size()});
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCorruptData) throw;
      throw Error(ErrorKind::kCorruptData, fmt::format("corrupt gzip member: {}", e.detail()));
    }
    const std::uint8_t* trailer = member.data() + member.size() - 8;
    if (load_le32(trailer) != update_crc32(0, out.view())) {
      throw Error(ErrorKind::kCorruptData, "corrupt gzip member: incorrect data check (CRC-32 mismatch)");
    }
    if (load_le32(trailer + 4) != static_cast<std::uint32_t>(out.size())) {
      throw Error(ErrorKind::kCorruptData, "corrupt gzip member: incorrect length check (ISIZE mismatch)");
    }
  }

  std::unique_ptr<WholeInflater> inflater_;
  std::unique_ptr<ChunkInflater> chunk_inflater_;  // made for the first chunk
};

// In stream order, the running CRC-32 and size of a member of independent chunks or of pieces
// that share history, the last 32 KiB of its output, and the bits the last piece left of its last
// byte: what a serial decoder needs to go on from the last chunk or piece accepted, for the
// member's last one or after a wrong guess (GzipSplitter).
class GzipVerifier final : public UnitVerifier {
 public:
  explicit GzipVerifier(DeflateEngine stream_engine) : stream_engine_(stream_engine) {}

  void on_marker(const Cut& cut, std::uint64_t offset) override {
    if (!(cut.flags & (kChunksHeader | kSharedHeader))) return;
    in_member_ = true;
    member_start_ = offset;
    next_offset_ = offset + cut.bytes;
    crc_ = 0;
    size_ = 0;
    window_.clear();
    lead_ = {};
  }

  // A piece of a member whose pieces share history: inflated here, knowing the window, or filled
  // in from it (GzipSplitter). A guess is filled in, and its CRC-32 taken, in ranges on every
  // worker that is free: the bytes of a piece depend on the window alone, not on each other.
  void complete(const Cut& cut, ByteView unit, Buffer& decoded) override {
    if (!(cut.flags & (kInOrderPiece | kGuessedPiece))) return;
    if (cut.flags & kMemberEnd) {
      finish_member(cut, unit, decoded);
      return;
    }
    const PieceEdges edges = piece_edges(cut);
    // What this piece leaves of its last byte to the next, or to a serial decoder after it.
    const LeadBits next_lead =
        edges.tail_bits && !unit.empty() ? lead_after(unit.last(1), edges.tail_bits) : LeadBits{};
    if (decoded.empty()) {
      if (!inflater_) inflater_ = make_isal_chunk_inflater();
      decoded.resize(cut.max_output_bytes);
      decoded.resize(inflater_->inflate(unit, {decoded.data(), decoded.size()}, window_.view(), edges));
      completed_lead_ = next_lead;
      return;
    }
    const std::size_t size = guessed_size(decoded);
    const std::size_t ranges = (size + kResolveRangeBytes - 1) / kResolveRangeBytes;
    range_crcs_.assign(ranges, 0);
    const GuessWindow window(window_.view());
    // Isolated: while it waits for the ranges, the writer takes no other work (a worker's guess),
    // which would hold the stream up. In a context of its own: cancelling the graph (a stop, an
    // error elsewhere) must not skip ranges and leave the piece half filled in.
    tbb::task_group_context own(tbb::task_group_context::isolated);
    tbb::this_task_arena::isolate([&] {
      tbb::parallel_for(
          std::size_t{0}, ranges,
          [&](std::size_t range) {
            const std::size_t begin = range * kResolveRangeBytes, end = std::min(size, begin + kResolveRangeBytes);
            resolve_guess(decoded, window, begin, end);
            range_crcs_[range] = update_crc32(0, {decoded.data() + begin, end - begin});
          },
          own);
    });
    finish_guess(decoded);
    std::uint32_t crc = 0;
    for (std::size_t range = 0; range < ranges; ++range) {
      const std::size_t bytes = std::min(size - range * kResolveRangeBytes, kResolveRangeBytes);
      crc = combine_crc32(crc, range_crcs_[range], bytes);
    }
    completed_crc_ = crc;
    completed_lead_ = next_lead;
  }

  void on_unit(const Cut& cut, ByteView decoded) override {
    if (cut.flags & kMemberEnd) {  // checked whole: the next unit starts a member
      in_member_ = false;
      return;
    }
    if (!(cut.flags & (kChunkUnit | kInOrderPiece | kGuessedPiece))) return;
    crc_ = completed_crc_ ? combine_crc32(crc_, *completed_crc_, decoded.size()) : update_crc32(crc_, decoded);
    completed_crc_.reset();
    lead_ = completed_lead_;
    completed_lead_ = {};
    size_ += decoded.size();
    next_offset_ += cut.bytes;
    const std::size_t keep = std::min(window_.size(), kWindowBytes - std::min(kWindowBytes, decoded.size()));
    Buffer window(kWindowBytes);
    window.append(window_.view().last(keep));
    window.append(decoded.last(std::min(decoded.size(), kWindowBytes)));
    window_ = std::move(window);
  }

  std::unique_ptr<StreamDecoder> serial_decoder() override;

 private:
  void finish_member(const Cut& cut, ByteView unit, Buffer& decoded);

  static constexpr std::size_t kResolveRangeBytes = 256 * 1024;
  DeflateEngine stream_engine_;
  std::unique_ptr<ChunkInflater> inflater_;  // made for the first piece inflated in order
  std::vector<std::uint32_t> range_crcs_;
  std::optional<std::uint32_t> completed_crc_;  // the CRC-32 of the piece complete() finished
  bool in_member_ = false;
  std::uint64_t member_start_ = 0;
  std::uint64_t next_offset_ = 0;  // where the next chunk starts in the stream
  std::uint32_t crc_ = 0;
  std::uint64_t size_ = 0;
  Buffer window_;
  LeadBits lead_;            // what the last piece left of its last byte
  LeadBits completed_lead_;  // and what the piece complete() finished leaves
};

// One member: the header (name and time, as gzip writes them; for independent chunks the 'S','I'
// subfield), the chunks' deflate data, and a trailer of their CRC-32s combined.
class GzipFramer final : public StreamFramer {
 public:
  // `chunk_bytes`: the chunks are independent, of this size; 0: they share history.
  GzipFramer(int level, StreamInfo info, std::size_t chunk_bytes)
      : level_(level), info_(std::move(info)), chunk_bytes_(chunk_bytes) {}

  void header(Buffer& out) override {
    const std::string name = header_name(info_);
    std::uint8_t flags = name.empty() ? std::uint8_t{0} : kFlagName;
    if (chunk_bytes_ > 0) flags |= kFlagExtra;
    const std::uint8_t start[4] = {kMagic0, kMagic1, kMethodDeflate, flags};
    out.append(start);
    put_le32(out, header_mtime(info_));
    const std::uint8_t tail[2] = {extra_flags(level_), kOsUnix};
    out.append(tail);
    if (chunk_bytes_ > 0) {
      const std::uint8_t extra[6] = {12, 0, kChunksFieldId[0], kChunksFieldId[1], 8, 0};
      out.append(extra);
      put_le32(out, static_cast<std::uint32_t>(chunk_bytes_));
      put_le32(out, kChunksIndependent);
    }
    if (!name.empty()) {
      out.append(as_bytes(name));
      const std::uint8_t nul = 0;
      out.append({&nul, 1});
    }
  }

  void add_chunk(const ChunkRecord& chunk) override {
    crc_ = combine_crc32(crc_, static_cast<std::uint32_t>(chunk.check), chunk.input_bytes);
    size_ += chunk.input_bytes;
  }

  void trailer(Buffer& out) override {
    put_le32(out, static_cast<std::uint32_t>(crc_));
    put_le32(out, static_cast<std::uint32_t>(size_));  // ISIZE is the size modulo 2^32
  }

 private:
  int level_;
  StreamInfo info_;
  std::size_t chunk_bytes_;
  std::uint32_t crc_ = 0;
  std::uint64_t size_ = 0;
};

// BGZF blocks are whole members; the stream ends with the empty one that marks a complete file.
class BgzfFramer final : public StreamFramer {
 public:
  void header(Buffer&) override {}
  void add_chunk(const ChunkRecord&) override {}
  void trailer(Buffer& out) override { out.append(kBgzfEof); }
};

// Streaming gzip decoder: any number of members and every header flag (FEXTRA, FNAME, FCOMMENT,
// FHCRC). It parses headers and trailers itself and has an engine inflate raw deflate, so that
// the CRC-32 of each output block can be computed by another worker (a task) while the next
// block inflates; the checks are the same as gunzip's (CRC-32 and ISIZE per member, header CRC
// when present).
class GzipDecoder final : public StreamDecoder {
 public:
  explicit GzipDecoder(DeflateEngine engine) : inflater_(make_stream_inflater(engine)) {
    for (auto& block : blocks_) block.reserve(kDecodeOutputBytes);
  }
  ~GzipDecoder() override {
    try {
      wait_for_crc();  // a running CRC task reads our blocks
    } catch (...) {
    }
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
    // What this input decoded to is not held back for the next (a stream decoded as it arrives).
    if (!output_ && state_ == State::kBody) hand_on(emit);
  }

  // Inflates straight into `output` (no copy) when it keeps what it was given long enough for the
  // CRC-32 task to read it; otherwise through decode() and a copy.
  void decode_to(ByteView input, Output& output) override {
    if (output.keeps_produced_bytes() < kDecodeOutputBytes) {
      StreamDecoder::decode_to(input, output);
      return;
    }
    // output_ is set only for this call, and no CRC task reads the output after it, even when it
    // ends in an error (the caller may then free the output at once).
    struct Lend {
      GzipDecoder& decoder;
      Lend(GzipDecoder& d, Output& o) : decoder(d) { decoder.output_ = &o; }
      ~Lend() {
        try {
          decoder.wait_for_crc();
        } catch (...) {  // a CRC task does not throw
        }
        decoder.output_ = nullptr;
      }
    } lend(*this, output);
    // Output held back by an earlier decode() goes first.
    hand_on([&output](ByteView bytes) { copy_to_output(bytes, output); });
    decode(input, {});
  }

  void resume_at(std::uint64_t offset) override {
    consumed_ = member_start_ = offset;
    members_ = std::max<std::uint64_t>(members_, 1);
  }

  // Goes on inside the deflate data of the member that started at `member_start`, at a block
  // boundary at `offset`, after output whose CRC-32 and size so far are `crc` and `size` and
  // whose last 32 KiB are `window` (GzipVerifier); `lead`: the bits of the byte before `offset`
  // that come first, for a boundary inside it.
  void continue_member(std::uint64_t member_start, std::uint64_t offset, std::uint32_t crc, std::uint64_t size,
                       ByteView window, LeadBits lead) {
    member_start_ = member_start;
    consumed_ = offset;
    header_.clear();
    header_bytes_ = 0;
    inflater_->reset(window, lead);
    crc_ = crc;
    size_ = size;
    state_ = State::kBody;
  }

  // Whether the input so far ended a member (and no padding followed).
  bool between_members() const { return state_ == State::kHeader && header_bytes_ == 0 && !padded_; }

  void finish() override {
    if (state_ == State::kHeader && header_bytes_ == 0) {
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
  enum class HeaderPart { kFixed, kExtraLength, kExtra, kName, kComment, kCrc, kDone };
  // The longest header read: names and comments of megabytes are read (as gzip does); a "header"
  // that goes on past this is not one.
  static constexpr std::uint64_t kMaxHeaderBytes = std::uint64_t{64} << 20;

  bool header_magic_ok() const {
    return (header_.size() < 1 || header_[0] == kMagic0) && (header_.size() < 2 || header_[1] == kMagic1);
  }

  Error trailing_garbage() const {
    return Error(ErrorKind::kTrailingGarbage, "trailing garbage after the last gzip member", {}, member_start_);
  }

  Error corrupt(const std::string& reason, std::uint64_t at) const {
    return Error(ErrorKind::kCorruptData,
                 fmt::format("corrupt gzip member starting at byte {}: {}", member_start_, reason), {}, at);
  }

  // Reads the header as it streams by: the fixed ten bytes (and FEXTRA's length) are gathered;
  // FEXTRA, FNAME and FCOMMENT are passed over, only summed into the header CRC, so that a name of
  // any length costs no memory (gzip reads them; kMaxHeaderBytes bounds the scan). Once the header
  // is complete, starts the member. Returns the bytes consumed.
  std::size_t take_header(ByteView rest) {
    if (header_bytes_ == 0) {
      if (members_ > 0 && rest[0] == 0) {  // padding (zero_padding_bytes)
        const std::size_t zeros = zero_padding_bytes(rest);
        padded_ = true;
        consumed_ += zeros;
        return zeros;
      }
      if (padded_) throw trailing_garbage();
      member_start_ = consumed_;
      header_part_ = HeaderPart::kFixed;
      header_.clear();
      header_crc_ = 0;
    }
    std::size_t used = 0;
    while (used < rest.size() && state_ == State::kHeader) {
      const ByteView here = rest.subspan(used);
      std::size_t n = 0;
      bool summed = true;  // the header CRC covers every byte before itself
      switch (header_part_) {
        case HeaderPart::kFixed:
          n = gather_header(here, 10);
          if (!header_magic_ok()) {
            if (members_ > 0) throw trailing_garbage();
            throw corrupt("not a gzip header", member_start_);
          }
          if (header_.size() == 10) {
            if (header_[2] != kMethodDeflate) throw corrupt("unknown compression method", member_start_ + 2);
            if (header_[3] & 0xE0) throw corrupt("reserved header flags set", member_start_ + 3);
            header_part_ = HeaderPart::kExtraLength;
          }
          break;
        case HeaderPart::kExtraLength:
          n = gather_header(here, 12);
          break;
        case HeaderPart::kExtra:
          n = std::min(here.size(), header_left_);
          header_left_ -= n;
          break;
        case HeaderPart::kName:
        case HeaderPart::kComment: {
          const auto nul = std::find(here.begin(), here.end(), std::uint8_t{0});
          n = static_cast<std::size_t>(nul - here.begin()) + (nul != here.end() ? 1 : 0);
          if (nul != here.end()) header_left_ = 0;
          break;
        }
        case HeaderPart::kCrc:
          summed = false;
          n = std::min(here.size(), header_left_);
          for (std::size_t i = 0; i < n; ++i) header_stored_crc_ |= std::uint32_t{here[i]} << (8 * (2 - header_left_ + i));
          header_left_ -= n;
          break;
        case HeaderPart::kDone:
          break;
      }
      if (summed) header_crc_ = update_crc32(header_crc_, here.first(n));
      header_bytes_ += n;
      consumed_ += n;
      used += n;
      if (header_bytes_ > kMaxHeaderBytes) throw corrupt("header too long", consumed_);
      next_header_part();
    }
    return used;
  }

  // Moves bytes into header_ until it holds `bytes`.
  std::size_t gather_header(ByteView here, std::size_t bytes) {
    const std::size_t take = std::min(here.size(), bytes - header_.size());
    header_.insert(header_.end(), here.begin(), here.begin() + static_cast<std::ptrdiff_t>(take));
    return take;
  }

  // Past each header part that is complete (or absent) to the next one; after the last, the body.
  void next_header_part() {
    const std::uint8_t flags = header_.size() >= 4 ? header_[3] : 0;
    for (;;) {
      switch (header_part_) {
        case HeaderPart::kFixed:
          return;
        case HeaderPart::kExtraLength:
          if (header_.size() == 12) break;  // gathered: on to the extra field
          if (flags & kFlagExtra) return;
          header_part_ = HeaderPart::kName;
          header_left_ = 1;
          continue;
        case HeaderPart::kExtra:
          if (header_left_ > 0) return;
          header_part_ = HeaderPart::kName;
          header_left_ = 1;
          continue;
        case HeaderPart::kName:
          if ((flags & kFlagName) && header_left_ > 0) return;
          header_part_ = HeaderPart::kComment;
          header_left_ = 1;
          continue;
        case HeaderPart::kComment:
          if ((flags & kFlagComment) && header_left_ > 0) return;
          header_part_ = HeaderPart::kCrc;
          header_left_ = (flags & kFlagHeaderCrc) ? 2 : 0;
          header_stored_crc_ = 0;
          header_crc_at_end_ = header_crc_;
          continue;
        case HeaderPart::kCrc:
          if (header_left_ > 0) return;
          if ((flags & kFlagHeaderCrc) && (header_crc_at_end_ & 0xFFFF) != header_stored_crc_) {
            throw corrupt("header crc mismatch", consumed_ - 2);
          }
          header_part_ = HeaderPart::kDone;
          start_member();
          return;
        case HeaderPart::kDone:
          return;
      }
      // kExtraLength gathered.
      header_left_ = std::size_t{header_[10]} | std::size_t{header_[11]} << 8;
      header_part_ = HeaderPart::kExtra;
    }
  }

  void start_member() {
    header_.clear();
    header_bytes_ = 0;
    inflater_->reset();
    crc_ = 0;
    size_ = 0;
    state_ = State::kBody;
  }

  // The engine's inflate, its errors given the offset (invalid data is the step's error).
  StreamInflater::Step inflate_step(ByteView rest, std::span<std::uint8_t> out) {
    try {
      return inflater_->inflate(rest, out);
    } catch (const Error& e) {
      throw e.with_context({}, consumed_);
    }
  }

  // Inflates into the current output block (or the lent output); hands full blocks on. Returns
  // the bytes consumed.
  std::size_t inflate_some(ByteView rest, const Emit& emit) {
    if (output_) return inflate_to_output(rest);
    Buffer& block = blocks_[current_];
    const std::size_t filled = block.size();
    block.resize(block.capacity());
    StreamInflater::Step step;
    try {
      step = inflate_step(rest, {block.data() + filled, block.size() - filled});
    } catch (...) {
      block.resize(filled);
      throw;
    }
    block.resize(filled + step.produced);
    consumed_ += step.consumed;
    if (step.error) {
      hand_on(emit);  // what inflated before the fault is the stream's, as gzip -dc gives it
      throw corrupt(step.error, consumed_);
    }
    if (step.ended) {
      hand_on(emit);
      state_ = State::kTrailer;
      // Bytes of the trailer the engine had read ahead from earlier input.
      consumed_ -= step.pushback_bytes;
      take_trailer({step.pushback, step.pushback_bytes});
    } else if (block.size() == block.capacity()) {
      hand_on(emit);
    } else if (step.consumed == 0 && step.produced == 0 && !rest.empty()) {
      throw Error(ErrorKind::kInternal, "the inflate engine made no progress", {}, consumed_);
    }
    return step.consumed;
  }

  // inflate_some() into the lent output: each piece of output is folded into the CRC on another
  // worker while the next one inflates (the output keeps it that long: decode_to()).
  std::size_t inflate_to_output(ByteView rest) {
    std::span<std::uint8_t> space = output_->space();
    if (space.size() > kDecodeOutputBytes) space = space.first(kDecodeOutputBytes);
    const StreamInflater::Step step = inflate_step(rest, space);
    consumed_ += step.consumed;
    if (step.produced > 0) {
      wait_for_crc();
      const ByteView bytes{space.data(), step.produced};
      size_ += bytes.size();
      fold_crc(bytes);
      output_->produced(bytes.size());
    }
    if (step.error) throw corrupt(step.error, consumed_);
    if (step.ended) {
      state_ = State::kTrailer;
      consumed_ -= step.pushback_bytes;  // bytes of the trailer the engine had read ahead
      take_trailer({step.pushback, step.pushback_bytes});
    } else if (step.consumed == 0 && step.produced == 0 && !rest.empty()) {
      throw Error(ErrorKind::kInternal, "the inflate engine made no progress", {}, consumed_);
    }
    return step.consumed;
  }

  // Emits the current block and folds it into the member's CRC on another worker; the previous
  // block's CRC task is finished first, so the CRC runs in order and a block is reused only
  // after its task is done.
  void hand_on(const Emit& emit) {
    Buffer& block = blocks_[current_];
    wait_for_crc();
    if (block.empty()) return;
    const ByteView bytes = block.view();
    size_ += bytes.size();
    fold_crc(bytes);
    emit(bytes);
    current_ ^= 1;
    blocks_[current_].clear();
  }

  // Folds output into the CRC: on another worker, or here when it is small enough that handing
  // it over (and waking a worker: a small stream's run would start them all) costs more than
  // the CRC (a 1 KB stream took 80 us with the task, most of it waking and parking threads).
  void fold_crc(ByteView bytes) {
    // Outside any arena (a small stream decoded on the caller's thread: decompress()) a task
    // would start oneTBB's default arena, with a worker on every core, whatever the caller's
    // thread count: there the CRC is folded here.
    if (bytes.size() <= kInlineCrcBytes ||
        tbb::this_task_arena::current_thread_index() == tbb::task_arena::not_initialized) {
      crc_ = update_crc32(crc_, bytes);
    } else {
      crc_tasks_->run([this, bytes] { crc_ = update_crc32(crc_, bytes); });
      crc_running_ = true;
    }
  }

  // Waits for the CRC task, if one was started: waiting on a task group that never ran one would
  // still start oneTBB (its workers and allocator), which a small stream never needs.
  void wait_for_crc() {
    if (!crc_running_) return;
    crc_tasks_->wait();
    crc_running_ = false;
  }

  std::size_t take_trailer(ByteView rest) {
    const std::size_t take = std::min(rest.size(), 8 - trailer_.size());
    trailer_.insert(trailer_.end(), rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(take));
    consumed_ += take;
    if (trailer_.size() < 8) return take;
    wait_for_crc();
    blocks_[current_].clear();
    const std::uint32_t crc = load_le32(trailer_.data()), isize = load_le32(trailer_.data() + 4);
    trailer_.clear();
    if (crc != crc_) throw corrupt("incorrect data check (CRC-32 mismatch)", consumed_ - 8);
    if (isize != static_cast<std::uint32_t>(size_)) throw corrupt("incorrect length check (ISIZE mismatch)", consumed_ - 4);
    ++members_;
    state_ = State::kHeader;
    member_start_ = consumed_;
    return take;
  }

  std::unique_ptr<StreamInflater> inflater_;
  State state_ = State::kHeader;
  // The header being read (take_header): its fixed bytes and FEXTRA's length, the part it is in,
  // the bytes left of that part (FEXTRA, the stored CRC; 1 while in a name), bytes read, CRC.
  std::vector<std::uint8_t> header_;
  HeaderPart header_part_ = HeaderPart::kFixed;
  std::size_t header_left_ = 0;
  std::uint64_t header_bytes_ = 0;
  std::uint32_t header_crc_ = 0;
  std::uint32_t header_crc_at_end_ = 0;
  std::uint32_t header_stored_crc_ = 0;
  std::vector<std::uint8_t> trailer_;
  Buffer blocks_[2];
  int current_ = 0;
  Output* output_ = nullptr;  // lent by decode_to() for the length of the call
  // Held by pointer: tbb::task_group's destructor may throw, ours must not.
  std::unique_ptr<tbb::task_group> crc_tasks_ = std::make_unique<tbb::task_group>();
  bool crc_running_ = false;  // a task of crc_tasks_ may be running
  std::uint32_t crc_ = 0;
  std::uint64_t size_ = 0;
  std::uint64_t consumed_ = 0;      // compressed bytes consumed so far
  std::uint64_t member_start_ = 0;  // where the current (or last) member began
  std::uint64_t members_ = 0;       // members completed
  bool padded_ = false;             // zero padding followed the last member
};

// A member's last piece (GzipSplitter::last_piece): its last blocks and the trailer, which must
// end exactly where the piece does, inflated and checked by a decoder that goes on from the
// pieces before, as the serial decoder would. Anything else is a wrong guess, and the serial
// decoder, from this piece on, says what is wrong, if anything.
void GzipVerifier::finish_member(const Cut& cut, ByteView unit, Buffer& decoded) {
  const auto wrong = [](const std::string& why) {
    return Error(ErrorKind::kCorruptData, fmt::format("the member does not end where its last piece does: {}", why));
  };
  GzipDecoder decoder(stream_engine_);
  decoder.continue_member(member_start_, next_offset_, crc_, size_, window_.view(), lead_);
  decoded.clear();
  try {
    // Isolated, as complete() is: while it waits for its CRC task, the writer takes no worker's guess.
    tbb::this_task_arena::isolate([&] {
      decoder.decode(unit, [&](ByteView bytes) {
        if (decoded.size() + bytes.size() > cut.max_output_bytes) {
          throw Error(ErrorKind::kCorruptData, "it inflates to more than a unit holds");
        }
        decoded.append(bytes);
      });
    });
  } catch (const Error& e) {
    throw wrong(e.detail());
  }
  if (!decoder.between_members()) throw wrong("it goes on");
}

std::unique_ptr<StreamDecoder> GzipVerifier::serial_decoder() {
  if (!in_member_) return nullptr;
  auto decoder = std::make_unique<GzipDecoder>(stream_engine_);
  decoder->continue_member(member_start_, next_offset_, crc_, size_, window_.view(), lead_);
  return decoder;
}

// ---- What a gzip stream records about itself (sluice -l) ----
//
// Members are walked one after another without inflating them. A member with our 'S','L' field
// or BGZF's 'B','C' says how long it is and what it holds. A member of independent chunks
// ('S','I') runs to the next such member's header or to the end of the stream; it holds one whole
// chunk per sync flush found in it and a last chunk, which is inflated (at most one chunk) to
// learn its size, and the sum must agree with the member's ISIZE: a sync flush pattern that was
// compressed data, or another member appended, makes them disagree. Any other member (gzip's,
// pigz's) records only ISIZE, its size modulo 4 GiB, and ends where decoding says: the size is
// then left to decoding.

// The data of FEXTRA subfield `id` of `length` bytes in the header at the start of `member`.
std::optional<ByteView> header_subfield(ByteView member, const std::uint8_t (&id)[2], std::size_t length) {
  if (member.size() < 12 || !(member[3] & kFlagExtra)) return std::nullopt;
  const std::size_t extra = std::size_t{member[10]} | std::size_t{member[11]} << 8;
  if (member.size() < 12 + extra) return std::nullopt;
  for (std::size_t at = 12; at + 4 <= 12 + extra;) {
    const std::size_t size = std::size_t{member[at + 2]} | std::size_t{member[at + 3]} << 8;
    if (at + 4 + size > 12 + extra) break;
    if (member[at] == id[0] && member[at + 1] == id[1] && size == length) return member.subspan(at + 4, size);
    at += 4 + size;
  }
  return std::nullopt;
}

constexpr std::uint8_t kBgzfFieldId[2] = {'B', 'C'};

// The chunk size of a member of independent chunks starting at `member`, if it is one.
std::optional<std::size_t> independent_chunk_bytes(ByteView member) {
  if (member.size() < 12 || member[0] != kMagic0 || member[1] != kMagic1 || member[2] != kMethodDeflate) {
    return std::nullopt;
  }
  const auto field = header_subfield(member, kChunksFieldId, 8);
  if (!field || !(load_le32(field->data() + 4) & kChunksIndependent)) return std::nullopt;
  const std::size_t chunk = load_le32(field->data());
  if (chunk == 0 || chunk > kMaxUnitOutputBytes) return std::nullopt;  // as the splitter takes it
  return chunk;
}

// Where the next member of independent chunks starts in `s`, searching from `from`; s.size() if
// none does.
std::size_t next_independent_member(ByteView s, std::size_t from) {
  for (std::size_t at = from; at + 3 <= s.size();) {
    const void* hit = std::memchr(s.data() + at, kMagic0, s.size() - at);
    if (!hit) break;
    at = static_cast<std::size_t>(static_cast<const std::uint8_t*>(hit) - s.data());
    if (independent_chunk_bytes(s.subspan(at))) return at;
    ++at;
  }
  return s.size();
}

// The uncompressed size and the chunks of the member of independent chunks s[0, end), whose
// data starts at `header` and whose chunks hold `chunk` bytes; nothing if they do not add up.
struct MemberContent {
  std::uint64_t bytes = 0;
  std::uint64_t chunks = 0;
};
std::optional<MemberContent> independent_member_content(ByteView s, std::size_t header, std::size_t end,
                                                        std::size_t chunk) {
  if (end < header + 8 + 2) return std::nullopt;
  const ByteView data = s.subspan(header, end - 8 - header);
  // Chunk ends, as GzipSplitter finds them: a chunk runs to the next sync flush pattern.
  std::uint64_t chunks = 0;
  std::size_t last_start = 0;
  for (std::size_t i = last_start + 1; i + sizeof kSyncFlush <= data.size();) {
    const void* ff = std::memchr(data.data() + i + 2, 0xFF, data.size() - i - 2);
    if (!ff) break;
    const auto j = static_cast<std::size_t>(static_cast<const std::uint8_t*>(ff) - data.data());
    i = j - 2;
    if (j + 1 < data.size() && data[i] == 0 && data[i + 1] == 0 && data[j + 1] == 0xFF) {
      ++chunks;
      last_start = i + sizeof kSyncFlush;
      i = last_start + 1;
      continue;
    }
    ++i;
  }
  // The last chunk, inflated alone: it must end with the final block exactly where the trailer
  // starts and hold at most one chunk.
  const ByteView last = data.subspan(last_start);
  auto inflater = make_zlib_stream_inflater();
  inflater->reset();
  Buffer out(chunk + 1);
  out.resize(chunk + 1);
  std::size_t consumed = 0, produced = 0;
  bool ended = false;
  while (!ended && consumed < last.size() && produced < out.size()) {
    const auto step = inflater->inflate(last.subspan(consumed), {out.data() + produced, out.size() - produced});
    if (step.error || (step.consumed == 0 && step.produced == 0 && !step.ended)) return std::nullopt;
    consumed += step.consumed;
    produced += step.produced;
    ended = step.ended;
  }
  if (!ended || consumed != last.size() || produced > chunk) return std::nullopt;
  const std::uint64_t total = chunks * chunk + produced;
  // The pattern also occurs inside stored data: counted as a cut, it adds a chunk. ISIZE catches
  // that below 4 GiB; past it, 4,096 false patterns of 1 MiB chunks add exactly 4 GiB and pass
  // (a second reader built such a file: 16 MiB listed as 4.3 GB "recorded"). Decoded instead.
  if (total > std::numeric_limits<std::uint32_t>::max()) return std::nullopt;
  if (static_cast<std::uint32_t>(total) != load_le32(s.data() + end - 4)) return std::nullopt;
  return MemberContent{total, chunks + 1};
}

StreamFacts gzip_stream_facts(ByteView s) {
  StreamFacts facts;
  facts.check = "CRC-32";
  std::uint64_t total = 0;
  std::size_t at = 0;
  const auto unknown = [&facts] {
    facts.uncompressed_bytes.reset();
    return facts;
  };
  while (at < s.size()) {
    const ByteView member = s.subspan(at);
    if (facts.units > 0 && member[0] == 0) {  // zero padding to the end, as gunzip skips it
      if (zero_padding_bytes(member) != member.size()) return unknown();
      break;
    }
    if (member.size() < 18 || member[0] != kMagic0 || member[1] != kMagic1) return unknown();
    const auto header = header_length_if_sound(member);
    if (!header) return unknown();
    if (const auto field = header_subfield(member, kSizeFieldId, 8)) {
      const std::size_t length = load_le32(field->data());
      if (length < *header + 8 || length > member.size()) return unknown();
      // The size it records, if its trailer's ISIZE agrees.
      if (load_le32(field->data() + 4) != load_le32(member.data() + length - 4)) return unknown();
      total += load_le32(field->data() + 4);
      ++facts.units;
      at += length;
    } else if (const auto bgzf = header_subfield(member, kBgzfFieldId, 2)) {
      const std::size_t length = (std::size_t{(*bgzf)[0]} | std::size_t{(*bgzf)[1]} << 8) + 1;
      if (length < *header + 8 || length > member.size()) return unknown();
      total += load_le32(member.data() + length - 4);
      ++facts.units;
      at += length;
    } else if (const auto chunk = independent_chunk_bytes(member)) {
      const std::size_t end = next_independent_member(member, *header);
      const auto content = independent_member_content(member, *header, end, *chunk);
      if (!content) return unknown();
      total += content->bytes;
      facts.units += content->chunks;
      at += end;
    } else {
      // A member that does not say where it ends: the stream's last ISIZE is a guess, believed up
      // to what deflate can make of the bytes left (1,032 to 1 at most).
      ++facts.units;
      const std::uint64_t isize = load_le32(s.data() + s.size() - 4);
      facts.likely_uncompressed_bytes =
          total + std::min<std::uint64_t>(isize, std::uint64_t{kMaxDeflateRatio} * member.size());
      return unknown();
    }
  }
  facts.uncompressed_bytes = total;
  return facts;
}

// FNAME and MTIME of the first member's header.
StreamInfo gzip_stream_info(ByteView prefix) {
  StreamInfo info;
  if (prefix.size() < 10 || prefix[0] != kMagic0 || prefix[1] != kMagic1) return info;
  const auto header = header_length_if_sound(prefix);
  if (!header) return info;
  info.mtime_seconds = load_le32(prefix.data() + 4);
  if (prefix[3] & kFlagName) {
    std::size_t at = 10;
    if (prefix[3] & kFlagExtra) at += 2 + (std::size_t{prefix[10]} | std::size_t{prefix[11]} << 8);
    const auto* name = prefix.data() + at;
    info.name.assign(reinterpret_cast<const char*>(name),
                     static_cast<std::size_t>(std::find(name, prefix.data() + *header, 0) - name));
  }
  return info;
}

class GzipCodec final : public CodecBase {
 public:
  GzipCodec(CodecInfo info, const CodecOptions& options)
      : CodecBase(std::move(info), options), engines_(choose_engines(options_)) {}

  std::unique_ptr<ChunkCompressor> new_chunk_compressor() const override {
    return std::make_unique<GzipChunkCompressor>(options_.level, form_, engines_.compress);
  }
  std::unique_ptr<StreamFramer> new_framer(const StreamInfo& stream) const override {
    switch (form_) {
      case Form::kIndependent:
        return std::make_unique<GzipFramer>(options_.level, stream, options_.chunk_bytes);
      case Form::kMultiMember:
        return std::make_unique<MultiMemberFramer>(stream);
      case Form::kSingleMember:
        return std::make_unique<GzipFramer>(options_.level, stream, 0);
      case Form::kBgzf:
        return std::make_unique<BgzfFramer>();
    }
    return nullptr;
  }
  // The one-member forms: a writer's small flushes go on in one deflate stream (the other forms'
  // flushes end members, which carry no history).
  std::unique_ptr<FlushCompressor> new_flush_compressor() const override {
    if (form_ == Form::kIndependent) return std::make_unique<GzipFlushCompressor>(options_.level, options_.chunk_bytes);
    if (form_ == Form::kSingleMember) return std::make_unique<GzipFlushCompressor>(options_.level, 0);
    return nullptr;
  }
  std::unique_ptr<StreamDecoder> new_decoder() const override {
    return std::make_unique<GzipDecoder>(engines_.stream_inflate);
  }
  std::unique_ptr<StreamSplitter> new_splitter() const override { return std::make_unique<GzipSplitter>(); }
  std::unique_ptr<UnitDecoder> new_unit_decoder() const override {
    return std::make_unique<GzipUnitDecoder>(engines_.whole_inflate);
  }
  std::unique_ptr<UnitVerifier> new_unit_verifier() const override {
    return std::make_unique<GzipVerifier>(engines_.stream_inflate);
  }
  StreamFacts stream_facts(ByteView stream) const override { return gzip_stream_facts(stream); }
  StreamInfo stream_info(ByteView prefix) const override { return gzip_stream_info(prefix); }

 private:
  Engines engines_;
  Form form_ = form_of(options_);
};

CodecInfo gzip_info() {
  CodecInfo info;
  info.name = "gzip";
  info.extension = ".gz";
  info.other_extensions = {".z"};  // gzip's older suffix, which gzip -d still takes
  info.tar_suffixes = {".tgz", ".taz"};
  info.tar_letter = 'z';
  info.unit_noun = "member";
  // The whole header: pigz -t passes a stream that ends with fewer of its bytes.
  info.unfinished_mark = std::string("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", 10);
  info.min_level = 1;
  info.max_level = 9;
  info.default_level = 6;
  info.default_chunk_bytes = kIndependentChunkBytes;
  info.history_bytes = kWindowBytes;
  info.matches_magic = [](ByteView p) { return p.size() >= 2 && p[0] == kMagic0 && p[1] == kMagic1; };
  info.magic_bytes = 2;
  info.backends = {"zlib", "libdeflate", "isal"};
  CodecKnob form;
  form.name = "form";
  form.help = "the shape of the gzip stream (docs/independent-gzip.md)";
  form.values.assign(std::begin(kFormNames), std::end(kFormNames));
  form.default_value = kFormNames[0];
  form.shorthands = {
      {"independent", "independent",
       "gzip: one member of independent chunks, which every reader reads and sluice decodes in parallel (the "
       "default)"},
      {"multi-member", "multi-member", "gzip: one member per chunk, each recording its size"},
      {"single-member", "single-member",
       "gzip: one pigz-style member whose chunks share history (slightly smaller, decoded by parallel inflate, "
       "less gained per core; written by zlib)"},
      {"bgzf", "bgzf", "gzip: BGZF as bgzip writes it (64 KiB blocks, for htslib and tabix)"},
  };
  info.knobs = {form};
  // The default form's chunks are raw deflate (sync-flushed, the last one final): a zip member.
  info.zip_method = 8;
  // A member of sluice's chunks gets the default form's header, so that they decode in parallel.
  info.zip_member_framing = [](std::uint32_t crc32, std::uint64_t size, std::uint32_t chunk_bytes) {
    Buffer header;
    GzipFramer(6, StreamInfo{}, chunk_bytes).header(header);
    Buffer trailer;
    put_le32(trailer, crc32);
    put_le32(trailer, static_cast<std::uint32_t>(size));
    return std::pair{std::move(header), std::move(trailer)};
  };
  return info;
}

}  // namespace

CodecEntry gzip_entry() {
  CodecEntry entry = entry_for<GzipCodec>(gzip_info());
  // Chunks with no history want to be bigger to keep the ratio; chunks that share it are pigz's
  // size (the same ratio and granularity); BGZF's are fixed.
  entry.factory = [make = entry.factory](const CodecOptions& options) {
    CodecOptions adjusted = options;
    const Form form = form_of(options);
    if (form == Form::kSingleMember && adjusted.chunk_bytes == 0) adjusted.chunk_bytes = kSingleMemberChunkBytes;
    if (form == Form::kBgzf) {
      if (adjusted.chunk_bytes != 0 && adjusted.chunk_bytes != kBgzfInputBytes) {
        throw Error(ErrorKind::kUsage,
                    fmt::format("BGZF blocks hold {} bytes: the chunk size cannot be set", kBgzfInputBytes));
      }
      adjusted.chunk_bytes = kBgzfInputBytes;
    }
    return make(adjusted);
  };
  return entry;
}

std::string_view engine_name(DeflateEngine engine) {
  switch (engine) {
    case DeflateEngine::kZlib: return "zlib";
    case DeflateEngine::kLibdeflate: return "libdeflate";
    case DeflateEngine::kIsal: return "isal";
  }
  return "?";
}

std::optional<DeflateEngine> engine_by_name(std::string_view name) {
  for (DeflateEngine engine : {DeflateEngine::kZlib, DeflateEngine::kLibdeflate, DeflateEngine::kIsal}) {
    if (engine_name(engine) == name) return engine;
  }
  return std::nullopt;
}

}  // namespace sluice::codecs
