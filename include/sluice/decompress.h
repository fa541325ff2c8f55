// Decompressing a stream, in parallel where the stream allows it (see engine/decompress_graph.cpp).
// The format is detected from the magic bytes, never from a file name.
// Every checksum the stream carries is verified; truncated input, corrupt data and trailing
// garbage are errors that name the stream and the offset of the bad frame or member.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>

#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice {

struct DecompressOptions {
  // Force a format instead of detecting it (empty: detect).
  std::string codec;
  int threads = 0;  // worker threads; 0 = all cores
  // Compressed pieces (frames, blocks, members) in flight at once; 0 = 3 per thread. Each holds
  // its compressed bytes and, once decoded, its output (at most 16 MiB).
  std::size_t max_pieces_in_flight = 0;
  // Where a codec chooses how long a unit of parallel decoding is, at least how many compressed
  // bytes it spans; 0: the codec's default. With two threads or more, gzip members of other tools
  // are cut at the first sync flush (pigz's) or block header (gzip's) past 256 KiB, then the next,
  // and so on (looked for in the next 1 MiB). Smaller units spread a small stream over the threads
  // (the tests and the fuzzer use them), at more cost per byte. DecompressNode uses it too, with
  // the threads of the caller's arena.
  std::size_t unit_input_bytes = 0;
  // The most bytes to write (0: no limit). Past it, decompression stops with Error(kLimit): a
  // decompression bomb can be refused before it fills a disk. Memory is bounded either way.
  std::uint64_t max_output_bytes = 0;
  // The backend to decode a codec with, by codec name (e.g. {"gzip", "zlib"}); a codec not named
  // here, or a map left empty, decodes with the codec's own choice.
  std::map<std::string, std::string> backends;
  // Called by the reader with the compressed bytes taken from the input so far: after every
  // read() of a pipe or file, and as pieces are cut from a mapped file (before they are decoded).
  // One call at a time, on the reader's thread.
  std::function<void(std::uint64_t input_bytes_read)> on_read;
  // Stops the run from outside: once requested, no new piece starts, the graph is cancelled and
  // the call throws Error(kCancelled).
  std::stop_token stop;
  // A stream whose whole input is at most 64 KiB is decoded on the calling thread, without
  // starting the graph's workers: the same pieces in the same order, so the same output and
  // errors, in tens of microseconds instead of hundreds. false: always through the graph.
  bool small_inputs_in_caller = true;
  // Input in no known format is copied to the sink as it is (zcat -f) instead of being an error;
  // DecompressStats::codec is then empty. Empty input is then empty output. So are bytes in no
  // known format after a stream's last frame or member (trailing garbage), from the first byte
  // that is not another's, as gzip -dcf and zstd -dcf copy them: read again by position from a
  // file, and from a pipe out of the last 16 MiB read, which the decoders never read that far
  // past a stream's end (else they are the error they are without pass_through). Zeros that end the input after a gzip
  // member are skipped either way, as gzip -d skips them (gzip -dcf copies them); zeros followed by other bytes are
  // copied with them. The copy is not counted against max_output_bytes, as a whole input copied is not: it is the
  // input's own size.
  bool pass_through = false;
  // An input of no bytes at all decodes to nothing, as Python's gzip module takes it, instead of
  // being an error (as `gzip -d` says: "unexpected end of file"). Any other input is decoded.
  bool empty_input_is_empty = false;
};

struct DecompressStats {
  std::string codec;
  std::uint64_t input_bytes = 0;
  std::uint64_t output_bytes = 0;
  std::uint64_t units = 0;            // pieces cut as units (frames, blocks, members, pieces of one member)
  std::size_t decoder_threads = 0;    // distinct threads that decoded units
  // Where serial (streaming) decoding took over, if it did: the stream could not be split there.
  std::optional<std::uint64_t> serial_from;
  double seconds = 0;
};

DecompressStats decompress(ByteSource& source, ByteSink& sink,
                           const DecompressOptions& options = {});

// Decompresses the file at `input_path` into `output_path` (temporary + rename, as compress_file).
DecompressStats decompress_file(const std::string& input_path, const std::string& output_path,
                                const DecompressOptions& options = {}, bool overwrite = false);

// Decompresses a whole stream in memory into a buffer allocated once where the stream records
// its size, or suggests it (expected_output_bytes), and grown as the output comes where it does
// not.
Buffer decompress_buffer(ByteView input, const DecompressOptions& options = {});

// What the whole stream `input` records it decodes to, or suggests (a gzip member of another
// tool's: its ISIZE; StreamFacts), for allocating the output before decoding: a claim, capped by
// options.max_output_bytes, by 1 GiB and, for a small input, by 64 MiB or 1,100 times its size (a
// margin over deflate's 1,032), whichever is more. 0 where it says nothing or is in no known format. Reads
// headers and size records, decodes nothing of consequence; never throws for bad data.
std::uint64_t expected_output_bytes(ByteView input, const DecompressOptions& options = {});

// What a compressed stream holds, as `sluice -l` shows it.
struct StreamListing {
  std::string codec;
  std::uint64_t compressed_bytes = 0;
  std::uint64_t uncompressed_bytes = 0;
  std::uint64_t units = 0;  // members, frames or chunks; 0 when only decoding could tell
  std::string check;        // the integrity check the stream carries; empty when not known
  // The size came from decoding the stream (every check verified), because the stream does not
  // record it (a gzip member as gzip writes it, an lz4 frame without a content size) or was not
  // a file that could be read twice (a pipe).
  bool decoded = false;
  // What followed the stream, where data in no known format did (kTrailingGarbage, its offset
  // where the garbage starts): the stream is listed up to it, as decompress() writes up to it.
  std::optional<Error> trailing_garbage;
};

// Lists the stream `source` holds. A regular file is read (mapped) once without decoding for the
// sizes its format records (Codec::describe_stream); only where they are missing is it decoded,
// in parallel as decompress() does, and its output counted. Throws as decompress() does for data
// in no known format, and for corrupt data it had to decode; garbage after the stream is not
// thrown but held in the listing.
StreamListing list_stream(ByteSource& source, const DecompressOptions& options = {});
StreamListing list_file(const std::string& path, const DecompressOptions& options = {});

}  // namespace sluice
