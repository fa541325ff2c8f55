// Streaming a caller's bytes through the graphs, in either direction, as a file object needs it:
//
//   Compressor    push: write() uncompressed bytes as they come, flush() to have them out as
//                 decodable data, finish(); the compressed stream goes to the caller's sink as
//                 the graph produces it.
//   Decompressor  push: write() compressed bytes in pieces of any size, finish(); the
//                 decompressed bytes go to the caller's sink.
//   DecompressingSource
//                 pull: read() decompressed bytes from a compressed source, as much as asked.
//
// Each runs sluice::compress() or sluice::decompress() on a thread of its own, fed through (or
// read from) a bounded pipe, so the chunks are compressed and decoded on every worker while the
// caller goes on, and memory stays at the pipe's capacity plus the graph's chunks in flight,
// however much is pushed. A Compressor starts its run only once the stream outgrows a chunk (at
// most 256 KiB) or is flushed: a stream that ends within that is compressed by finish() on the
// calling thread, with no thread started (the same bytes). The bytes are exactly those of compress()/decompress() on
// the whole stream, whatever the pieces the caller writes or reads (a Compressor's flush() excepted: it ends a chunk).
// The first error of the run is thrown from the next call that has work to do; cancel() (from any thread, e.g. on
// Ctrl-C) stops the graph within a chunk and makes such calls throw Error(kCancelled). Destroying an object that was
// not finished cancels it: the caller's sink then holds an incomplete stream (or nothing), which is the caller's to
// discard.
//
// Not thread-safe: one thread writes or reads at a time (cancel() excepted).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/io.h"

namespace sluice {

class Compressor final : public ByteSink {
 public:
  // Compresses into `out` with `options` (codec, level, threads; options.stop is honoured too).
  explicit Compressor(ByteSink& out, const CompressOptions& options = {}, const StreamInfo& info = {});
  ~Compressor() override;
  Compressor(const Compressor&) = delete;
  Compressor& operator=(const Compressor&) = delete;

  // Takes bytes; waits while the pipe is full (the graph is behind). Throws the run's error.
  void write(ByteView bytes) override;
  const std::string& name() const override;
  // Makes everything written so far come out as data a reader of the stream decodes, and returns
  // once it is written to `out` (and out.flush() called): the stream goes on, in the default and
  // single-member gzip forms one member still and in lz4 one frame, so that a reader that takes
  // one member (a browser) or one frame sees what comes after it too. Nothing when nothing was
  // written since the last flush.
  // A flush after little written since the start or the last flush (64 KiB at most: a log's
  // records) has the calling thread compress the stream from there, with the codec's window kept
  // from flush to flush, as zlib's and zstd's flushes are (Codec::make_flush_compressor: gzip's
  // one-member forms, zstd): each flush costs what compressing its bytes costs, and the ratio
  // stays the library's; more than 256 KiB written between two flushes hands the stream to a run
  // from there on, and a flush after little hands it back. In a run, a flush ends the chunk being
  // filled, as at any chunk boundary (the next is compressed without what came before in the
  // default gzip form, zstd and lz4; with its last 32 KiB in the single-member form), so lz4's
  // frequent flushes of small writes cost ratio, and time (each waits for the graph).
  void flush() override;
  // Ends the stream and waits until all of it is written to `out`. Throws the run's error.
  CompressStats finish();
  // Stops the run; write() and finish() then throw Error(kCancelled). Safe from any thread.
  void cancel() noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class Decompressor final : public ByteSink {
 public:
  // Decodes into `out` (format detected unless options.codec names it).
  explicit Decompressor(ByteSink& out, const DecompressOptions& options = {}, std::string name = "<stream>");
  ~Decompressor() override;
  Decompressor(const Decompressor&) = delete;
  Decompressor& operator=(const Decompressor&) = delete;

  // Takes compressed bytes, in pieces of any size. Throws the run's error (e.g. corrupt data).
  // A small stream's output is written before write() returns (decodes_in_background). In a
  // run, when no more comes for a while (50 ms), what was written is decoded and written to
  // `out` without waiting for more (a protocol that waits for the answer to what it sent), and
  // from then on every piece as it comes, in order on one thread (decompress(), wait_readable).
  void write(ByteView compressed) override;
  // Waits until the run has taken in all that was written: decoded and written to `out`, or in
  // its pieces in flight (a few MB of output at most, whatever the input's ratio). write() alone
  // returns once the bytes are in the run's pipe (4 MiB), so that the writer's next piece is
  // made while the last is decoded; a caller that returns the output of each write (Python's
  // sluice.Decompressor, as zlib's decompress() returns it) waits here, or what the pipe held
  // (a 4 MB piece of a 1 GB stream) all came out at finish(). The run goes on writing to `out`
  // while this waits, so `out` must take it. At once for a stream decoded on the calling thread.
  // A run gathers its first MiB of input before it decodes (to tell the stream's format and
  // whether it is small): until then this returns with nothing decoded. With a timeout: false if
  // it passed first (call again to wait on; a caller checking for Ctrl-C between).
  // Throws the run's error.
  bool wait_taken(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  const std::string& name() const override;
  // The compressed stream is complete: waits until it is decoded. Throws the run's error
  // (a stream cut short is an error here).
  DecompressStats finish();
  void cancel() noexcept;
  // Whether a run decodes the stream on a thread of its own (and the graph's workers). Until the
  // stream outgrows 64 KiB of input or 8 MiB of output, write() decodes it on the calling thread
  // and writes its output before it returns (as gzip -d does, before the check at the end of its
  // member or frame), and finish() ends it there too. With one thread (options.threads 1), never:
  // the whole stream is decoded so, each write's output out before it returns, as zlib's inflate
  // gives it (for a protocol that waits for the answer to what it sent).
  bool decodes_in_background() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

class DecompressingSource final : public ByteSource {
 public:
  // Decodes `compressed` (which must outlive this object) as it is read.
  explicit DecompressingSource(ByteSource& compressed, const DecompressOptions& options = {});
  ~DecompressingSource() override;
  DecompressingSource(const DecompressingSource&) = delete;
  DecompressingSource& operator=(const DecompressingSource&) = delete;

  // Decompressed bytes; 0 at the end of the stream, once it decoded in full. Throws the run's
  // error, after the bytes decoded before it.
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override;
  const std::string& name() const override;
  void cancel() noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace sluice
