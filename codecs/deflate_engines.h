// The deflate engines behind the gzip codec: zlib, libdeflate and ISA-L (igzip), each in its own
// file (deflate_zlib.cpp, deflate_libdeflate.cpp, deflate_isal.cpp), each turning its library's
// errors into ours in one place. gzip_codec.cpp owns the gzip format (headers, trailers,
// splitting, checksums) and asks an engine only for raw deflate.
//
// What each library can do decides what it is used for:
//   * whole chunks -> raw deflate (independent members): all three; libdeflate and ISA-L are
//     several times faster than zlib at the same ratio (measured in BENCHMARKS.md);
//   * a chunk with a preset dictionary, ending on a sync flush (the pigz-style single member):
//     zlib only (libdeflate has no dictionary or flush);
//   * a whole member of known size -> bytes: all three (libdeflate fastest);
//   * a raw deflate stream of unknown size, piece by piece: zlib and ISA-L (libdeflate needs the
//     whole input and output at once).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/bytes.h"

namespace sluice::codecs {

enum class DeflateEngine { kZlib, kLibdeflate, kIsal };

std::string_view engine_name(DeflateEngine engine);
std::optional<DeflateEngine> engine_by_name(std::string_view name);

// Compresses whole chunks to raw deflate with no dictionary. One per worker; reused.
class ChunkDeflater {
 public:
  virtual ~ChunkDeflater() = default;
  // Enough room for any input of `input_bytes`, either way deflate() ends it.
  virtual std::size_t bound(std::size_t input_bytes) const = 0;
  // Compresses `input` into `out` (at least bound(input.size()) bytes); returns the bytes written.
  // `final`: the stream ends with this chunk (its last block is final). Otherwise the chunk ends
  // on a sync flush (an empty stored block, byte-aligned, not final), so that another chunk's
  // deflate data can follow it in the same stream.
  virtual std::size_t deflate(ByteView input, std::span<std::uint8_t> out, bool final) = 0;
};

// Inflates one complete raw deflate stream whose output size is known. One per worker; reused.
class WholeInflater {
 public:
  virtual ~WholeInflater() = default;
  // Inflates `deflated` into exactly `out`. Throws Error(kCorruptData) (without an offset) if the
  // data is corrupt, inflates to more or fewer bytes than out.size(), or has bytes left over.
  virtual void inflate(ByteView deflated, std::span<std::uint8_t> out) = 0;
};

// Where a piece of a deflate stream cut at a block boundary inside a byte starts and ends. Deflate
// reads bits from the least significant end of each byte; a boundary at bit 8k + j (0 < j < 8)
// leaves byte k to the piece before it, and the piece after begins with that byte's top 8 - j
// bits (its lead) and goes on with byte k + 1.
struct LeadBits {
  std::uint8_t count = 0;  // 0-7
  std::uint8_t value = 0;  // in the low `count` bits, the first bit lowest
};
struct PieceEdges {
  LeadBits lead;
  std::uint8_t tail_bits = 0;  // bits of the last byte that belong to the piece; 0: all eight
};

// Inflates a raw deflate stream piece by piece (foreign gzip of any size). Serial; one per stream.
class StreamInflater {
 public:
  virtual ~StreamInflater() = default;
  // Starts a new deflate stream; `window`: the up to 32 KiB of output before it, for a stream
  // taken up at a block boundary in the middle; `lead`: the bits before the first byte of input,
  // for a boundary inside a byte.
  virtual void reset(ByteView window = {}, LeadBits lead = {}) = 0;
  struct Step {
    std::size_t consumed = 0;  // input bytes used (none past the end of the deflate stream)
    std::size_t produced = 0;  // output bytes written
    bool ended = false;        // the final block is complete
    // At the end: bytes past the deflate stream that the engine had read ahead from earlier
    // input (ISA-L's bit buffer). They come before the rest of `input`. At most 8.
    std::uint8_t pushback[8] = {};
    std::size_t pushback_bytes = 0;
    // Not null: the input is not valid deflate here (the library's reason). `consumed` and
    // `produced` count what came before the fault, and that output is the stream's own (a
    // reader gets it, as gzip -dc's does, and the error names where the fault is).
    const char* error = nullptr;
  };
  // Inflates from `input` into `out`. Invalid data is Step::error, not an exception.
  virtual Step inflate(ByteView input, std::span<std::uint8_t> out) = 0;
};

// Inflates a piece of a raw deflate stream that starts at a block boundary and must end exactly
// at a block boundary that does not end the stream (where a sync flush leaves it, or at any bit):
// one independent chunk of a gzip member (docs/independent-gzip.md), or a piece of a member
// whose pieces share history, given the 32 KiB before it. ISA-L only (it says where it stopped,
// and takes bits before the first byte). One per worker; reused.
class ChunkInflater {
 public:
  virtual ~ChunkInflater() = default;
  // Inflates `deflated` into `out`; returns the bytes written. `window`: the output before the
  // piece (at most 32 KiB), which references may reach into; `edges`: where in its first and
  // last bytes the piece starts and ends. Throws Error(kCorruptData) if the piece is not valid
  // deflate after `window` (a reference before it), does not end at a non-final block boundary
  // exactly where `edges` says, or inflates to more than out.size().
  virtual std::size_t inflate(ByteView deflated, std::span<std::uint8_t> out, ByteView window = {},
                              PieceEdges edges = {}) = 0;
};

// Parallel inflate of one deflate stream (rapidgzip's idea, without a decoder of our own): a piece
// that starts at a block boundary is inflated before the 32 KiB in front of it are known, twice,
// behind two made-up windows that differ in every byte and together name each byte's position.
// Where the two outputs agree the byte is the piece's own; where they differ it is a copy of a
// window byte, and the pair says which. The piece is then "guessed": the first output and the two
// XORed (0 for the piece's own bytes), to be filled in once the real window is known. The caller must know, by other
// means, that the piece starts at a block boundary (a guess says nothing about that); what a guess
// checks is that the piece ends at one (ChunkInflater).
//
// Guesses `deflated` into `out` (replacing it): false, and `out` empty, when the piece does not
// end at a non-final block boundary, is not valid deflate, or would not fit in `max_bytes` (its
// output takes twice its size); the piece is then for an inflate that knows its window to judge.
bool guess_piece(ChunkInflater& inflater, ByteView deflated, PieceEdges edges, std::size_t max_bytes, Buffer& out);
// The output size of a guessed piece.
std::size_t guessed_size(const Buffer& guessed);
// The output before a guessed piece (32 KiB, or all of it when there is less), made once per
// piece into a table that fills a byte with one lookup.
class GuessWindow {
 public:
  explicit GuessWindow(ByteView window);

 private:
  friend void resolve_guess(Buffer&, const GuessWindow&, std::size_t, std::size_t);
  static constexpr std::size_t kTableBytes = 64 * 1024;
  std::vector<std::uint8_t> table_;
  std::size_t missing_ = 0;  // window positions before the start of the output
};
// Fills in output bytes [begin, end) of a guessed piece from `window`. Ranges may be filled in on
// several threads at once. Throws Error(kCorruptData) when the range refers to bytes before the
// start of the output.
void resolve_guess(Buffer& guessed, const GuessWindow& window, std::size_t begin, std::size_t end);
// Once every range is filled in: leaves the piece's output in `guessed`.
void finish_guess(Buffer& guessed);

// Compresses a chunk with the stream's preceding bytes as preset dictionary, ending on a sync
// flush (byte-aligned, the stream continues) or, for the last chunk, on the final block: the
// pieces of one pigz-style member. zlib only. One per worker; reused.
class HistoryDeflater {
 public:
  virtual ~HistoryDeflater() = default;
  // Replaces `out` with the chunk's deflate bytes. `history`: up to 32 KiB before `input`.
  virtual void deflate(ByteView history, ByteView input, bool last, Buffer& out) = 0;
};

// One deflate stream made piece after piece with the window kept (a writer's flushes).
class PieceDeflater {
 public:
  enum class End {
    kPartialFlush,  // all of the input decodable, the stream left inside a byte (no 00 00 ff ff)
    kSyncFlush,     // the same, then an empty stored block: on a byte boundary
    kFinish,        // the final block
  };
  virtual ~PieceDeflater() = default;
  // Appends the piece's deflate bytes to `out`.
  virtual void deflate(ByteView input, End end, Buffer& out) = 0;
  // Forgets the window: what follows is deflated with no history (after a sync flush), or with
  // `window` (up to 32 KiB) as the bytes before it.
  virtual void reset(ByteView window = {}) = 0;
};

// `level` is gzip's 1-9. Engines that cannot do what is asked throw Error(kUsage).
std::unique_ptr<HistoryDeflater> make_zlib_history_deflater(int level);
std::unique_ptr<PieceDeflater> make_zlib_piece_deflater(int level);
std::unique_ptr<ChunkDeflater> make_zlib_chunk_deflater(int level);
std::unique_ptr<ChunkDeflater> make_libdeflate_chunk_deflater(int level);
std::unique_ptr<ChunkDeflater> make_isal_chunk_deflater(int level);
std::unique_ptr<WholeInflater> make_zlib_whole_inflater();
std::unique_ptr<WholeInflater> make_libdeflate_whole_inflater();
std::unique_ptr<WholeInflater> make_isal_whole_inflater();
std::unique_ptr<StreamInflater> make_zlib_stream_inflater();
std::unique_ptr<StreamInflater> make_isal_stream_inflater();
std::unique_ptr<ChunkInflater> make_isal_chunk_inflater();

// Where the final block of a complete raw deflate stream starts (the bit that says "final") and
// where it ends (the first bit after it), in bits from the stream's start. Throws kInternal for a
// malformed stream: it is only walked on output an engine just wrote.
struct DeflateBlocks {
  std::size_t final_block_bit = 0;
  std::size_t end_bit = 0;
};
DeflateBlocks walk_deflate_blocks(ByteView stream);
// Turns the complete raw deflate stream in out[0, size) into one that ends on a sync flush: the
// final block made not final, an empty stored block after it. Returns the new size; `out` must
// have at least 6 bytes beyond the stream's end. For engines that cannot end a stream otherwise.
std::size_t end_with_sync_flush(std::span<std::uint8_t> out, std::size_t size);

// Where to cut a raw deflate stream that has no byte-aligned flushes (gzip's) for parallel inflate:
// the first bit position p in [from_bit, to_bit) of `bytes` (bits LSB-first, as deflate reads
// them) where a non-final dynamic-Huffman block header begins that zlib would take and that lies
// entirely within `bytes`: BFINAL 0, BTYPE 2, HLIT <= 29, HDIST <= 29, a complete code-length code,
// the literal/length and distance code lengths decoded with it with no repeat before the first
// length or past the count, a complete literal/length code with a code for 256 (end of block),
// and a complete distance code or exactly one distance code, of length 1. (zlib also takes a
// literal/length code of end of block alone, length 1, and no distance code at all; the encoders
// of zlib, gzip and libdeflate never write them, and they are not found.) nullopt if there is
// none. A position found may be a block start or bits that happen to look like one: what follows
// the header is not looked at. Never reads outside `bytes`; to_bit may be past its end. About 1 ns
// a position on compressed data (bench/micro/find_blocks.cpp).
std::optional<std::size_t> find_dynamic_block(ByteView bytes, std::size_t from_bit, std::size_t to_bit);
// Where to cut such a stream in a run of stored blocks (incompressible data, which gzip stores):
// the first byte position i in [from_byte, to_byte) where a stored block's LEN and NLEN (its
// complement) stand, such that another non-final stored block (a zero byte, LEN, NLEN) or a
// dynamic block header (find_dynamic_block) follows the LEN bytes of data, all within `bytes`.
// The cut is at `end`, byte-aligned; the block's own header bits, in the byte before i, are not
// looked at. A position found may be data that looks like this.
struct StoredBlockEnd {
  std::size_t length_at = 0;
  std::size_t end = 0;
};
std::optional<StoredBlockEnd> find_stored_block_end(ByteView bytes, std::size_t from_byte, std::size_t to_byte);
// Each block of a complete raw deflate stream, in order: where it starts (its BFINAL bit), its
// BTYPE (0 stored, 1 fixed Huffman, 2 dynamic Huffman) and BFINAL. For tests and measurements;
// throws kInternal for a malformed stream, as walk_deflate_blocks() does.
struct DeflateBlockStart {
  std::size_t bit = 0;
  std::uint8_t type = 0;
  bool final = false;
};
std::vector<DeflateBlockStart> list_deflate_blocks(ByteView stream);

// CRC-32 (gzip's), chainable: update_crc32(update_crc32(0, a), b) == update_crc32(0, a + b).
// ISA-L's folding (carry-less multiply) CRC, several times faster than zlib's.
std::uint32_t update_crc32(std::uint32_t crc, ByteView bytes);
// The CRC-32 of a + b from the CRC-32s of a and b and b's length (zlib's crc32_combine).
std::uint32_t combine_crc32(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t length_b);

}  // namespace sluice::codecs
