// The codec interface: what the compression graph needs from a format, and the registry that
// maps names ("gzip", "zstd", "lz4", or a user's own) to codec factories.
//
// A codec is split by who calls it:
//   * ChunkCompressor: one per worker thread, reused for every chunk that thread compresses.
//     It must not share mutable state with other compressors (they run concurrently).
//   * StreamFramer: one per output stream, called serially and in chunk order by the writer:
//     the stream header, an ordered look at every chunk (to combine checksums), the trailer.
//   * StreamDecoder: a streaming decoder for one input stream (serial).
// A stream's bytes are header + each chunk's compressed bytes in order + trailer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sluice/bytes.h"

namespace sluice {

// Options a user picks. Zero or empty means "the codec's default".
struct CodecOptions {
  int level = 0;
  std::size_t chunk_bytes = 0;
  // Settings particular to the codec (CodecInfo::knobs), by knob name: {"form", "single-member"}.
  std::map<std::string, std::string> knobs;
  // The library that does the work, for codecs with several (CodecInfo::backends). Empty: the
  // codec picks per level and operation (gzip: README, "gzip engines").
  std::string backend;
};

// A setting of one codec beyond level, chunk size and backend (gzip's form), described by the codec
// so that the command line, pipeline files and --dry-run offer it without knowing the codec: on
// the command line as --<codec>-<name> VALUE and each shorthand as a flag of its own, in a
// pipeline file as <codec>_<name> = "VALUE".
struct CodecKnob {
  std::string name;                 // "form"
  std::string help;                 // one line
  std::vector<std::string> values;  // what it accepts
  std::string default_value;        // one of values: what it is when not set
  // Flags that set one value: {"single-member", "single-member", "..."} is --single-member.
  struct Shorthand {
    std::string flag;
    std::string value;
    std::string help;
  };
  std::vector<Shorthand> shorthands;
};

// Per-stream metadata that some headers record (gzip's FNAME and MTIME).
struct StreamInfo {
  std::string name;              // original file name without directories; empty: none
  std::int64_t mtime_seconds = 0;  // modification time; 0: none recorded
};

// Fixed facts about a codec, available before one is created.
struct CodecInfo {
  std::string name;                  // registry key, e.g. "zstd"
  std::string extension;             // output suffix, e.g. ".zst"
  // Other suffixes files in this format carry (".zstd"): read, never written.
  std::vector<std::string> other_extensions;
  // Suffixes that stand for ".tar" and this format (".tgz", ".taz"), as tar and gzip know them.
  std::vector<std::string> tar_suffixes;
  // What the format's independent pieces are called in messages ("member", "frame").
  std::string unit_noun = "frame";
  // A default chunk size for tar archives, when larger than default_chunk_bytes pays there
  // (archives of many similar files gain from longer windows); 0: the same.
  std::size_t archive_chunk_bytes = 0;
  int min_level = 1;
  int max_level = 1;
  int default_level = 1;
  std::size_t default_chunk_bytes = 0;
  // How many bytes preceding each chunk the compressor wants as history (gzip: 32 KiB window).
  std::size_t history_bytes = 0;
  // True if the first bytes of a stream look like this format.
  std::function<bool(ByteView prefix)> matches_magic;
  // The names CodecOptions::backend accepts (empty: the codec has one implementation).
  std::vector<std::string> backends;
  // The codec's own settings (CodecOptions::knobs).
  std::vector<CodecKnob> knobs;
};

class ChunkCompressor {
 public:
  virtual ~ChunkCompressor() = default;
  // Compresses `input` into `out` (replacing its contents). `history` holds up to history_bytes
  // of stream data immediately before `input` (empty for the first chunk). `last` is true for
  // the stream's final chunk. Returns a per-chunk check value for the framer (codec-defined).
  virtual std::uint64_t compress(ByteView history, ByteView input, bool last, Buffer& out) = 0;
};

class StreamFramer {
 public:
  virtual ~StreamFramer() = default;
  virtual void header(Buffer& out) = 0;
  // Called for every chunk in order, with its uncompressed bytes and its check value.
  virtual void add_chunk(ByteView input, std::uint64_t check) = 0;
  virtual void trailer(Buffer& out) = 0;
};

class StreamDecoder {
 public:
  using Emit = std::function<void(ByteView)>;
  virtual ~StreamDecoder() = default;
  // Decodes the next piece of compressed input, calling `emit` with output as it is produced.
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

// What the splitter found at the current position of a stream. The engine checks every cut
// before it acts on it (a splitter may be a user's): a unit or marker of 0 bytes, a unit longer
// than the bytes the splitter was shown or promising more than kMaxUnitOutputBytes, and a unit
// that decodes to more than it promised, are errors of kind kInternal naming the codec.
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
  // byte, to the verifier's serial decoder (UnitVerifier::serial_decoder), which decodes it in
  // order: a wrong guess costs time, never output. After a speculative unit a splitter cuts only
  // units until the end (or goes serial): the bytes of markers would not reach that decoder.
  bool speculative = false;
};

class StreamSplitter {
 public:
  virtual ~StreamSplitter() = default;
  // Looks at the buffered bytes starting at stream offset `offset`. Throws Error(kCorruptData)
  // for a bad header or trailing garbage.
  virtual Cut next(ByteView buffered, std::uint64_t offset) = 0;
  // End of input at `offset` with nothing buffered past it; throws if a frame was left unfinished.
  virtual void finish(std::uint64_t offset) = 0;
  // End of input with `buffered` (not empty) left over after next() asked for more: kSerial if
  // the streaming decoder can take it from here; the default, kNeedMore, makes it a truncation.
  virtual Cut at_end(ByteView buffered, std::uint64_t offset);
};

class UnitDecoder {
 public:
  virtual ~UnitDecoder() = default;
  // Decodes one unit into `out` (replacing its contents). Throws Error(kCorruptData).
  virtual void decode(ByteView unit, const Cut& cut, Buffer& out) = 0;
};

class UnitVerifier {
 public:
  virtual ~UnitVerifier() = default;
  // Called in stream order for markers and for decoded units.
  virtual void on_marker(const Cut& cut, std::uint64_t offset) = 0;
  virtual void on_unit(const Cut& cut, ByteView decoded) = 0;
  // When the stream goes serial after units (a kSerial cut, or a speculative unit that failed):
  // the decoder that carries on from there, knowing what the units before it were (a checksum
  // that spans them, the window they leave). Null: a new decoder from make_decoder(), at a unit
  // boundary (StreamDecoder::resume_at).
  virtual std::unique_ptr<StreamDecoder> serial_decoder() { return nullptr; }
};

class Codec {
 public:
  virtual ~Codec() = default;
  virtual const CodecInfo& info() const = 0;
  // The options in force, with defaults resolved (never zero).
  virtual const CodecOptions& options() const = 0;
  virtual std::unique_ptr<ChunkCompressor> make_chunk_compressor() const = 0;
  virtual std::unique_ptr<StreamFramer> make_framer(const StreamInfo& stream) const = 0;
  virtual std::unique_ptr<StreamDecoder> make_decoder() const = 0;
  // Parallel decompression; a codec without a splitter is always decoded serially.
  virtual std::unique_ptr<StreamSplitter> make_splitter() const { return nullptr; }
  virtual std::unique_ptr<UnitDecoder> make_unit_decoder() const { return nullptr; }
  virtual std::unique_ptr<UnitVerifier> make_unit_verifier() const { return nullptr; }
};

// Makes a codec with the given options; throws Error(kUsage) for options out of range.
using CodecFactory = std::function<std::unique_ptr<Codec>(const CodecOptions&)>;

// Name -> factory. The built-in codecs are always present; users may add their own.
// Thread-safe.
class CodecRegistry {
 public:
  static CodecRegistry& global();

  // Adds a codec. Throws kUsage if the name is taken.
  void add(CodecInfo info, CodecFactory factory);

  // Creates the named codec; throws kUsage for an unknown name or bad options.
  std::unique_ptr<Codec> create(const std::string& name, const CodecOptions& options = {}) const;
  std::optional<CodecInfo> find(const std::string& name) const;
  // The codec whose magic bytes start `prefix`, if any.
  std::optional<CodecInfo> detect(ByteView prefix) const;
  // The codec whose extension (or another of its suffixes) ends `path`, if any.
  std::optional<CodecInfo> by_extension(const std::string& path) const;
  // The codec a tar archive's name implies (".tar" and a codec's suffix, or one of its tar
  // suffixes such as ".tgz"), if any.
  std::optional<CodecInfo> by_tar_name(const std::string& path) const;
  // The name a compressed file decompresses to: "a.log.gz" -> "a.log", "a.tgz" -> "a.tar";
  // nothing when no codec's suffix ends `path`.
  std::optional<std::string> decompressed_name(const std::string& path) const;
  std::vector<std::string> names() const;

  CodecRegistry();
  ~CodecRegistry();
  CodecRegistry(const CodecRegistry&) = delete;
  CodecRegistry& operator=(const CodecRegistry&) = delete;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Resolves `options` against `info`: fills defaults (every knob gets a value) and checks the level
// range, the chunk size, the backend and the knobs. Codecs call it from their factories so that
// every codec validates the same way.
CodecOptions resolve_options(const CodecInfo& info, const CodecOptions& options);

}  // namespace sluice
