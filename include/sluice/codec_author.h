// What a codec is made of: the pieces the engine drives (compressors, framers, decoders, and for
// parallel decoding splitters, unit decoders and verifiers), and what a codec author builds on (a
// base that holds the codec's facts and options, the framer of a codec whose chunks are whole
// frames, the cuts a splitter returns). The built-in codecs are written with this header only,
// and so can yours:
//
//   class MyCodec final : public sluice::CodecBase {
//    public:
//     MyCodec(sluice::CodecInfo info, const sluice::CodecOptions& options)
//         : CodecBase(std::move(info), options) {}
//    private:
//     std::unique_ptr<sluice::StreamFramer> new_framer(const sluice::StreamInfo&) const override {
//       return std::make_unique<sluice::SelfFramedChunks>();
//     }
//     ...
//   };
//   sluice::CodecRegistry::global().add(info, [info](const sluice::CodecOptions& options) {
//     return std::make_unique<MyCodec>(info, options);
//   });
//
// A codec implements private hooks (new_*, compress_chunk, find_cut, decode_unit, ...); the
// public entry points over them check what the hooks return, so a codec cannot make the engine
// read past a buffer, spin in place or take more than kMaxUnitOutputBytes of a unit's output (a
// hook's own allocations are its own: a unit decoded to more is refused once the hook returns).
// Whatever a codec throws becomes an Error, the first of which stops the run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/bytes.h"
#include "sluice/codec.h"

namespace sluice {

// Each piece below that the engine drives in parallel (compressors, splitters, unit decoders)
// has a public, non-virtual entry point that checks what the codec's private hook did, so that a
// codec, a user's included, cannot break the engine's invariants: a broken answer is an error of
// kind kInternal naming the codec (Codec::make_ gives each piece its codec's name).

// One per worker thread, reused for every chunk that thread compresses. It must not share
// mutable state with other compressors (they run concurrently).
class ChunkCompressor {
 public:
  virtual ~ChunkCompressor() = default;
  // Compresses `input` into `out` (replacing its contents). `history` holds up to history_bytes
  // of stream data immediately before `input` (empty for the first chunk). `last` is true for
  // the stream's final chunk. Returns a per-chunk check value for the framer (codec-defined).
  // Checked: input that compresses to nothing is an error, and so is output past
  // kMaxChunkExpansion times the input and 1 MiB (what a chunk in flight may hold).
  std::uint64_t compress(ByteView history, ByteView input, bool last, Buffer& out);
  static constexpr std::size_t kMaxChunkExpansion = 4;

 private:
  friend class Codec;
  virtual std::uint64_t compress_chunk(ByteView history, ByteView input, bool last, Buffer& out) = 0;
  std::string codec_name_;
};

// What a framer learns of one compressed chunk: all a trailer may depend on. A stream's chunks
// may be compressed on different machines (sluice/parts.h), so the trailer is made from these
// records, never from the chunks' bytes.
struct ChunkRecord {
  std::uint64_t input_bytes = 0;   // uncompressed
  std::uint64_t output_bytes = 0;  // compressed, as the chunk compressor wrote them
  std::uint64_t check = 0;         // what the chunk compressor returned
};

// A stream whose writer flushes often (a log's records, a protocol's messages), compressed piece
// after piece on the writer's thread with the codec's state kept from one piece to the next, as
// zlib's deflate does between flushes: what ChunkCompressors cannot do, since they compress chunks
// apart (in parallel) with at most a dictionary, so that a chunk per small flush would cost most
// of the ratio. The stream is the codec's framer's header, each piece's bytes in order, and the
// trailer from the records the pieces report; the codec keeps the promises its header and
// trailer make (gzip's default form: chunks of the recorded size, independent; zstd: a frame per
// chunk, one seek-table entry each), so a piece's units end where a chunk's would: at every
// multiple of the chunk size from the stream's start. After any piece that is not the last, the
// engine may end the pieces (end()) and go on with the codec's own chunks, a ChunkCompressor's,
// each given the history before it (the same framer sees their records); after such chunks,
// where the last ended on a flush, pieces may follow again (resume()).
class FlushCompressor {
 public:
  virtual ~FlushCompressor() = default;
  // Compresses `input`, the bytes that follow those of the pieces before, into `out` (replacing
  // its contents), ending where a reader has decoded all of it or, when `last`, with the end of
  // the stream's data; appends to `records` one record per unit of the stream this piece ends
  // (gzip: the piece itself; zstd: each frame it closes), for the framer, as a ChunkCompressor's
  // chunk gives one. Checked: a piece that compresses to nothing, or records of more input than
  // was given, are errors.
  void compress(ByteView input, bool last, Buffer& out, std::vector<ChunkRecord>& records);
  // The pieces end here and the codec's chunks follow: replaces `out` with what a chunk needs
  // before it (gzip: the rest of a byte a piece ended in and a sync flush; zstd: the end of the
  // open frame), possibly nothing, and appends the records of the units that ends.
  void end(Buffer& out, std::vector<ChunkRecord>& records);
  // The pieces go on from the stream's byte `offset`, the codec's chunks before it (the last
  // ended on a flush), `history` holding the bytes just before (up to history_bytes of them):
  // called before the first piece where the stream did not begin with pieces.
  void resume(std::uint64_t offset, ByteView history) { resume_at(offset, history); }

 private:
  friend class Codec;
  virtual void compress_piece(ByteView input, bool last, Buffer& out, std::vector<ChunkRecord>& records) = 0;
  virtual void end_pieces(Buffer& out, std::vector<ChunkRecord>& records) = 0;
  virtual void resume_at(std::uint64_t offset, ByteView history) = 0;
  std::string codec_name_;
  std::uint64_t given_ = 0;     // input bytes given to pieces
  std::uint64_t recorded_ = 0;  // input bytes in the records reported
};

// One per output stream, called serially and in chunk order by the writer: the stream header, an
// ordered look at every chunk (to combine checksums, to index the chunks), the trailer. A
// stream's bytes are header + each chunk's compressed bytes in order + trailer.
class StreamFramer {
 public:
  virtual ~StreamFramer() = default;
  virtual void header(Buffer& out) = 0;
  // Called for every chunk in order.
  virtual void add_chunk(const ChunkRecord& chunk) = 0;
  virtual void trailer(Buffer& out) = 0;
};

// A streaming decoder for one input stream (serial).
class StreamDecoder {
 public:
  using Emit = std::function<void(ByteView)>;
  virtual ~StreamDecoder() = default;
  // Decodes the next piece of compressed input, calling `emit` with output as it is produced.
  // Before it returns it emits all the output the input so far makes possible (a stream decoded
  // as it arrives shows each flushed block then), as decode_to() reports it by produced().
  // Throws Error(kCorruptData) with the offset (in the compressed stream) of the bad frame.
  virtual void decode(ByteView input, const Emit& emit) = 0;

  // Space the caller lends a decoder to write into, for decoding without a copy.
  class Output {
   public:
    virtual ~Output() = default;
    virtual std::span<std::uint8_t> space() = 0;   // never empty
    virtual void produced(std::size_t bytes) = 0;  // the first `bytes` of space() now hold output
    // Bytes reported by produced() stay in place, unchanged, until at least this many more bytes
    // have been produced: a decoder may go on reading them meanwhile, within its decode_to() call
    // (gzip checksums them on another thread). 0: they may change as soon as produced() returns.
    virtual std::size_t keeps_produced_bytes() const { return 0; }
  };
  // decode(), writing straight into `output`. The default decodes through decode() and copies;
  // a codec whose library can decode into any buffer overrides it (zstd does).
  virtual void decode_to(ByteView input, Output& output);
  // Declares the end of input; throws if the stream is truncated.
  virtual void finish() = 0;
  // The input fed from now on starts at byte `offset` of the stream, at a frame boundary after
  // other frames (used when a stream switches from parallel to serial decoding), so offsets in
  // messages are the stream's.
  virtual void resume_at(std::uint64_t offset) = 0;
};

// ---- Parallel decompression ----
//
// A codec that can find independently decodable units in its streams (frames, blocks, members)
// provides a splitter, a unit decoder and optionally a verifier; the decompression graph then
// decodes units on every worker. Where a stream cannot be split (say, one huge frame), the
// splitter answers kSerial and the rest of the stream goes through the StreamDecoder.

// The most one unit of parallel decompression may decode to (Cut::max_output_bytes): what the
// engine holds per piece in flight.
inline constexpr std::size_t kMaxUnitOutputBytes = 16 * 1024 * 1024;

// What the splitter found at the current position of a stream. Every cut is checked before the
// engine acts on it (StreamSplitter::next; a splitter may be a user's): a unit or marker of 0
// bytes, a unit longer than the bytes the splitter was shown or promising more than
// kMaxUnitOutputBytes, a marker after a speculative unit longer than what it was shown, and a
// unit that decodes to more than it promised, are errors of kind kInternal naming the codec.
struct Cut {
  enum class Kind {
    kNeedMore,  // too few bytes buffered to tell; read more
    kUnit,      // the next `bytes` decode alone to at most `max_output_bytes`
    kMarker,    // the next `bytes` carry no data (a header, an end mark, a skippable frame)
    kSerial,    // from here to the end the stream must be decoded serially
  };
  Kind kind = Kind::kNeedMore;
  std::size_t bytes = 0;
  std::size_t max_output_bytes = 0;
  // Codec-defined facts passed along to the unit decoder and the verifier (e.g. "this frame has a
  // content checksum", the expected checksum).
  std::uint32_t flags = 0;
  std::uint64_t value = 0;
  // kMarker only: the input may end inside it, and the stream is then complete (lz4 -d accepts a
  // skippable frame cut short at the end of a file).
  bool may_end_early = false;
  // kUnit only: the splitter guessed where the unit ends (from a byte pattern that usually marks
  // a boundary) and cannot check the guess. The unit decoder throws kCorruptData when the guess
  // was wrong; the engine then does not raise that but hands the stream, from this unit's first
  // byte, to the verifier's serial decoder (UnitVerifier::serial_decoder; where there is none, a
  // new decoder resumed there, for units that begin frames), which decodes it in order: a wrong
  // guess costs time, never output. After a speculative unit, every unit is one too (where it
  // starts depends on the guess); markers go to the writer with their bytes (which must be
  // buffered whole), for that decoder if it has taken over; and an error the splitter throws
  // (kCorruptData, kTrailingGarbage), or kNeedMore at the end of input, becomes kSerial, since the
  // bytes may not be what it took them for: the serial decoder says what is wrong, if anything.
  bool speculative = false;
};

class StreamSplitter {
 public:
  virtual ~StreamSplitter() = default;
  // Looks at the buffered bytes starting at stream offset `offset`. Throws Error(kCorruptData)
  // for a bad header or trailing garbage. Checked: the rules of Cut.
  Cut next(ByteView buffered, std::uint64_t offset);
  // End of input at `offset` with nothing buffered past it; throws if a frame was left unfinished.
  void finish(std::uint64_t offset) { finish_at(offset); }
  // End of input with `buffered` (not empty) left over after next() asked for more: kSerial if
  // the streaming decoder can take it from here; kNeedMore (the hook's default) makes it a
  // truncation; any other cut is taken as from next(), and splitting goes on (next() asking for
  // more again comes back here). Checked as next() is.
  Cut at_end(ByteView buffered, std::uint64_t offset);
  // What the engine tells a splitter before the first next(); where it tells nothing, the
  // defaults: one thread. (A DecompressNode tells the threads of the caller's arena.)
  struct Hints {
    // How many threads decode the units (1: one after another, on the calling thread). A splitter
    // may cut differently with one, e.g. not guess where a guess costs more than decoding in order.
    int threads = 1;
    // Where the splitter chooses how long a unit is (not a frame's or member's own length): about
    // how many compressed bytes, 0 for the codec's default (DecompressOptions::unit_input_bytes).
    std::size_t unit_input_bytes = 0;
  };
  void set_hints(const Hints& hints) { hints_ = hints; }
  // Whether the streaming decoder can take the stream over where the cuts so far end, as after a
  // kSerial cut there (from UnitVerifier::serial_decoder, or a new decoder resumed there). Asked
  // for a stream that arrives slowly, which is then decoded as it comes (decompress()); where a
  // splitter says no (the default), units are cut until it says yes.
  bool serial_may_start() const { return serial_may_start_here(); }

 protected:
  const Hints& hints() const { return hints_; }
  // Whether a speculative unit was cut: what follows may not be what it looks like.
  bool speculated() const { return speculated_; }

 private:
  friend class Codec;
  virtual Cut find_cut(ByteView buffered, std::uint64_t offset) = 0;
  virtual void finish_at(std::uint64_t offset) = 0;
  virtual Cut cut_at_end(ByteView buffered, std::uint64_t offset);
  virtual bool serial_may_start_here() const { return false; }
  Cut checked(Cut cut, std::size_t shown, std::uint64_t offset);
  template <typename Find>
  Cut unless_guessed_wrong(Find find);
  std::string codec_name_;
  bool speculated_ = false;  // a speculative unit was cut: markers within what is shown
  Hints hints_;
};

class UnitDecoder {
 public:
  virtual ~UnitDecoder() = default;
  // Decodes one unit into `out` (replacing its contents). Throws Error(kCorruptData), with the
  // offset from the unit's start of what is wrong where it knows it (a unit of several blocks);
  // the engine reports it in the stream. Checked: a unit that decodes to more than its cut
  // promised is an error.
  void decode(ByteView unit, const Cut& cut, Buffer& out);

 private:
  friend class Codec;
  virtual void decode_unit(ByteView unit, const Cut& cut, Buffer& out) = 0;
  std::string codec_name_;
};

class UnitVerifier {
 public:
  virtual ~UnitVerifier() = default;
  // Called in stream order for markers and for decoded units.
  virtual void on_marker(const Cut& cut, std::uint64_t offset) = 0;
  virtual void on_unit(const Cut& cut, ByteView decoded) = 0;
  // Called in stream order for each unit the writer is to emit, before on_unit (not once the
  // stream has gone serial, nor for a unit whose decoder found it was no unit): a codec whose
  // units need what came before them (a window of earlier output) finishes `decoded` here, from
  // the unit's compressed bytes `unit` or from what its UnitDecoder left in `decoded`, and may
  // use the arena's threads to do it. Throws Error(kCorruptData) when a speculative unit turns
  // out to be no unit: the stream then goes, from this unit's first byte, to serial_decoder(),
  // as if the unit decoder had thrown (`decoded` may have changed; the verifier's own state must
  // not have). The default does nothing.
  virtual void complete(const Cut& /*cut*/, ByteView /*unit*/, Buffer& /*decoded*/) {}
  // When the stream goes serial after units (a kSerial cut, or a speculative unit that failed):
  // the decoder that carries on from there, knowing what the units before it were (a checksum
  // that spans them, the window they leave). Null: a new decoder from make_decoder(), at a unit
  // boundary (StreamDecoder::resume_at).
  virtual std::unique_ptr<StreamDecoder> serial_decoder() { return nullptr; }
};

// Holds the CodecInfo and the options resolved against it (defaults filled in, ranges checked:
// resolve_options) that every codec reports.
class CodecBase : public Codec {
 public:
  CodecBase(CodecInfo info, const CodecOptions& options)
      : info_(std::move(info)), options_(resolve_options(info_, options)) {}
  const CodecInfo& info() const override { return info_; }
  const CodecOptions& options() const override { return options_; }

 protected:
  CodecInfo info_;
  CodecOptions options_;
};

// The framer of a codec whose every chunk compresses to whole frames (zstd, lz4): a stream is just
// its chunks, with nothing before, between or after them.
class SelfFramedChunks final : public StreamFramer {
 public:
  void header(Buffer&) override {}
  void add_chunk(const ChunkRecord&) override {}
  void trailer(Buffer&) override {}
};

// The cuts a StreamSplitter returns.
namespace cuts {
// Too few bytes buffered to tell: read more.
inline Cut need_more() { return {}; }
// From here to the end, the stream is decoded serially by the codec's StreamDecoder.
inline Cut serial() { return {Cut::Kind::kSerial, 0, 0, 0, 0}; }
// The next `bytes` carry no data (a header, an end mark, a skippable frame); with `flags`, the
// verifier sees it.
inline Cut marker(std::size_t bytes, std::uint32_t flags = 0, std::uint64_t value = 0) {
  return {Cut::Kind::kMarker, bytes, 0, flags, value};
}
// The next `bytes` decode alone to at most `max_output_bytes` (at most kMaxUnitOutputBytes).
inline Cut unit(std::size_t bytes, std::size_t max_output_bytes, std::uint32_t flags = 0) {
  return {Cut::Kind::kUnit, bytes, max_output_bytes, flags, 0};
}
}  // namespace cuts

}  // namespace sluice
