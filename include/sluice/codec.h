// Codecs as their users see them: the options a user picks (level, chunk size, backend, the
// codec's own knobs), the facts a codec states about itself (names, suffixes, levels, knobs), and
// the registry that maps names ("gzip", "zstd", "lz4", or a user's own) to codecs. What a codec is
// made of (its compressors, framers, decoders and splitters) is in sluice/codec_author.h, for the
// engine and for codec authors.
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

// What a whole compressed stream records about itself, read without decoding it (sluice -l).
struct StreamFacts {
  std::uint64_t units = 0;  // members, frames or chunks found
  // The bytes the stream decodes to, when the stream records them (sizes in headers, a seek
  // table) and they agree with one another; unset: only decoding tells.
  std::optional<std::uint64_t> uncompressed_bytes;
  std::string check;  // the integrity check it carries ("CRC-32", "XXH64", "none")
  // Where uncompressed_bytes is unset: what a record in the stream suggests it decodes to (gzip:
  // the sizes the members before the first that records none say, plus the stream's last ISIZE,
  // believed up to 1,032 times the bytes from that member on: exact for a single member under 4
  // GiB), for allocating memory before decoding; a guess, never shown as a fact.
  std::optional<std::uint64_t> likely_uncompressed_bytes = std::nullopt;
};

// Fixed facts about a codec, available before one is created.
struct CodecInfo {
  std::string name;                  // registry key, e.g. "zstd"
  std::string extension;             // output suffix, e.g. ".zst"
  // Other suffixes files in this format carry (".zstd"): read, never written.
  std::vector<std::string> other_extensions;
  // Suffixes that stand for ".tar" and this format (".tgz", ".taz"), as tar and gzip know them.
  std::vector<std::string> tar_suffixes;
  // The short option that names this format to tar programs ('z': gzip, as GNU tar and bsdtar
  // take it); 0: none. `sluice tar` accepts it beside --NAME.
  char tar_letter = 0;
  // What the format's independent pieces are called in messages ("member", "frame").
  std::string unit_noun = "frame";
  // Bytes that begin one of the format's units and end there (gzip: a member's header and no
  // data; at most 64 bytes), which every reader takes for a stream cut short. MarkedStreamSink
  // appends them to a stream on standard output that a failure or a signal cut short, where the
  // units written before would make a valid stream (a backup cut short would check good).
  // Empty: such a stream is left as it is.
  std::string unfinished_mark;
  // A default chunk size for tar archives, when larger than default_chunk_bytes pays there
  // (archives of many similar files gain from longer windows); 0: the same.
  std::size_t archive_chunk_bytes = 0;
  int min_level = 1;
  int max_level = 1;
  int default_level = 1;
  std::size_t default_chunk_bytes = 0;
  // How many bytes preceding each chunk the compressor wants as history (gzip: 32 KiB window);
  // at most 1 GiB (add() refuses more: each chunk in flight holds it).
  std::size_t history_bytes = 0;
  // True if the first bytes of a stream look like this format.
  std::function<bool(ByteView prefix)> matches_magic;
  // How many first bytes matches_magic needs to decide: on a shorter prefix its "no" may become
  // "yes" with more bytes, so a stream arriving a byte at a time is not told as a codec registered
  // later yet (gzip 2, zstd and lz4 4). 0: it decides on any prefix.
  std::size_t magic_bytes = 0;
  // The names CodecOptions::backend accepts (empty: the codec has one implementation).
  std::vector<std::string> backends;
  // The codec's own settings (CodecOptions::knobs).
  std::vector<CodecKnob> knobs;
  // Zip (APPNOTE 4.4.5): the compression method under which a zip member's data is this codec's
  // chunks (made with its default knobs) as they are, without the stream's header and trailer
  // (gzip: 8, deflate; zstd: 93); 0: none.
  std::uint16_t zip_method = 0;
  // What to put before and after such a member's data for this codec's decoder to read it as a
  // stream that checks the member's CRC-32 and size (gzip: a header and its trailer).
  // `chunk_bytes`: the member is this codec's chunks of that size, as sluice writes them (it
  // records the size in an extra field), so the header may say so; 0: unknown. Unset: the data
  // is read as it is and the zip reader checks the CRC-32 itself.
  std::function<std::pair<Buffer, Buffer>(std::uint32_t crc32, std::uint64_t size, std::uint32_t chunk_bytes)>
      zip_member_framing;
};

// What a codec is made of, for the engine and for codec authors: sluice/codec_author.h.
class ChunkCompressor;
class FlushCompressor;
class StreamFramer;
class StreamDecoder;
class StreamSplitter;
class UnitDecoder;
class UnitVerifier;

// A format with its options resolved. Users create one from the registry and hand it (or its
// name) to the engine; the engine calls the make_ functions, which check what a codec's hooks
// return and give the pieces the codec's name for their messages. A codec author implements
// the private new_ hooks (sluice/codec_author.h has a base that holds info and options).
class Codec {
 public:
  virtual ~Codec() = default;
  virtual const CodecInfo& info() const = 0;
  // The options in force, with defaults resolved (never zero).
  virtual const CodecOptions& options() const = 0;

  std::unique_ptr<ChunkCompressor> make_chunk_compressor() const;
  std::unique_ptr<StreamFramer> make_framer(const StreamInfo& stream) const;
  // A stream flushed while small, compressed on the writer's thread with the codec's state kept
  // (sluice/codec_author.h): null for a codec without that path (each flush then ends a chunk).
  std::unique_ptr<FlushCompressor> make_flush_compressor() const;
  std::unique_ptr<StreamDecoder> make_decoder() const;
  // Parallel decompression; null for a codec that is always decoded serially.
  std::unique_ptr<StreamSplitter> make_splitter() const;
  std::unique_ptr<UnitDecoder> make_unit_decoder() const;
  std::unique_ptr<UnitVerifier> make_unit_verifier() const;

  // What `stream` (a whole stream in this format, from its first byte) records about itself,
  // without decoding it. Never throws for bad data: what cannot be read is left unset (decoding
  // then reports it). Checked: a size is reported only with at least one unit.
  StreamFacts describe_stream(ByteView stream) const;
  // The name and time the stream's header records (gzip's FNAME and MTIME); `prefix`: its first
  // bytes (64 KiB are plenty). Empty when none is recorded or the format has no such field.
  StreamInfo recorded_info(ByteView prefix) const;

 private:
  virtual std::unique_ptr<ChunkCompressor> new_chunk_compressor() const = 0;
  virtual std::unique_ptr<StreamFramer> new_framer(const StreamInfo& stream) const = 0;
  virtual std::unique_ptr<StreamDecoder> new_decoder() const = 0;
  // Flushed streams: none by default.
  virtual std::unique_ptr<FlushCompressor> new_flush_compressor() const;
  // Parallel decompression: none by default.
  virtual std::unique_ptr<StreamSplitter> new_splitter() const;
  virtual std::unique_ptr<UnitDecoder> new_unit_decoder() const;
  virtual std::unique_ptr<UnitVerifier> new_unit_verifier() const;
  // describe_stream and recorded_info: nothing known by default.
  virtual StreamFacts stream_facts(ByteView stream) const;
  virtual StreamInfo stream_info(ByteView prefix) const;
};

// Makes a codec with the given options; throws Error(kUsage) for options out of range.
using CodecFactory = std::function<std::unique_ptr<Codec>(const CodecOptions&)>;

// Name -> factory. The built-in codecs are always present; users may add their own.
// Thread-safe.
class CodecRegistry {
 public:
  static CodecRegistry& global();

  // Adds a codec. Throws kUsage, registering nothing, for a name taken (in any case) or not of
  // letters, digits and +-._ (64 at most), a suffix that is no ".name", levels, chunk size or
  // history out of range, or a knob whose default is not one of its values. Suffixes are looked
  // up in any case, the codec registered first winning.
  void add(CodecInfo info, CodecFactory factory);

  // Creates the named codec; throws kUsage for an unknown name or bad options, kInternal naming
  // the codec when what its factory made has a chunk size outside 1 KiB to 1 GiB.
  std::unique_ptr<Codec> create(const std::string& name, const CodecOptions& options = {}) const;
  std::optional<CodecInfo> find(const std::string& name) const;
  // What ends a stream of `codec` cut short (its CodecInfo::unfinished_mark), for a MarkedStreamSink;
  // empty for "" (plain output) or a name not registered.
  std::string unfinished_mark(const std::string& codec) const;
  // The codec whose magic bytes start `prefix`, if any (the first registered that matches).
  std::optional<CodecInfo> detect(ByteView prefix) const;
  // Whether detect(prefix) is settled: a codec matches, and every codec asked before it had the
  // magic_bytes it needs to say no (more bytes cannot make an earlier one match).
  bool detection_settled(ByteView prefix) const;
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
  struct MagicTest {
    std::string name;
    std::function<bool(ByteView prefix)> matches_magic;
    std::size_t magic_bytes = 0;
  };
  std::vector<MagicTest> magic_tests() const;
};

// Formats no registered codec reads, told by their magic bytes, for messages and for leaving such
// files alone: "an xz stream", "a zip archive", ...; empty when `prefix` starts none of them.
std::string foreign_format(ByteView prefix);
// The same by a file's name, for names sluice does not write: "an xz stream" for x.xz and
// x.txz, "a zip archive" for x.zip, ... (in any case but compress's .Z); empty otherwise.
std::string foreign_format_by_name(const std::string& path);
// Whether bytes after `prefix` could change what CodecRegistry::detect() finds in it: it holds
// only skippable frames (or the start of one), which zstd and lz4 streams may both begin with.
bool detection_may_change(ByteView prefix);
// Whether `path` ends with `suffix`, in any case, after a name (not right after a "/").
bool has_suffix(const std::string& path, const std::string& suffix);
// Whether `path` ends with a suffix of compressed data: a registered codec's (its extensions and
// tar suffixes) or another format's (foreign_format_by_name: .xz, .bz2, .zip, .7z, .Z, ...). Suffixes
// are compared in any case here and in the registry's lookups by name (LOGS.GZ is gzip's).
bool has_compressed_suffix(const std::string& path);

// Resolves `options` against `info`: fills defaults (every knob gets a value) and checks the level
// range, the chunk size, the backend and the knobs. Codecs call it from their factories so that
// every codec validates the same way.
CodecOptions resolve_options(const CodecInfo& info, const CodecOptions& options);

}  // namespace sluice
