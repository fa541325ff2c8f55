// A codec and its chunk compressor kept by a thread that compresses on its own, without the
// graph (compress_buffer's small inputs, a Compressor's small stream, a part of a stream on a
// cluster's worker): a context costs more to make than a small chunk costs to compress
// (libdeflate's, zstd's and lz4's state, hundreds of KB to a few MB, faulted in afresh where the
// allocator maps large blocks anew, as in a Dask worker).
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "sluice/codec.h"
#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"

namespace sluice::detail {

struct CallerContext {
  std::string codec_name;
  CodecOptions requested;
  std::unique_ptr<Codec> codec;
  std::unique_ptr<ChunkCompressor> compressor;

  bool made_for(const std::string& name, const CodecOptions& options) const {
    return codec_name == name && requested.level == options.level && requested.chunk_bytes == options.chunk_bytes &&
           requested.knobs == options.knobs && requested.backend == options.backend;
  }
};

// Takes the thread's context out of `cache` if it was made for these options (so that a codec
// of a user's that compresses from its own compressor finds the cache empty and makes its own),
// or makes a new one. Put it back with `cache = std::move(context)` to keep it.
inline CallerContext take_context(std::optional<CallerContext>& cache, const std::string& name,
                                  const CodecOptions& options) {
  std::optional<CallerContext> context = std::exchange(cache, std::nullopt);
  if (context && context->made_for(name, options)) return std::move(*context);
  context.reset();  // the old one goes before the new one is made
  auto codec = CodecRegistry::global().create(name, options);
  auto compressor = codec->make_chunk_compressor();
  return CallerContext{name, options, std::move(codec), std::move(compressor)};
}

// The context of the last small input compressed on a thread is kept for the next call with the
// same options: one per thread that compresses inputs of at most this on its own, as the graph
// keeps one per worker. A Compressor holds a stream of up to this much (or a chunk, if less)
// before it starts a run, and compresses it here if it ends there.
inline constexpr std::size_t kCachedContextInputBytes = 256 * 1024;

// Compresses `input` as one stream with `info` on the calling thread, with the thread's kept
// context, into `output`: the bytes compress() gives, unless the input is more than a chunk
// (false, nothing done). Errors name `name`. (compress_graph.cpp)
bool compress_in_caller(ByteView input, const CompressOptions& options, const StreamInfo& info, const std::string& name,
                        Buffer& output);

// One stream handed between a Compressor's calling thread (its flushed pieces) and runs of
// compress(): what a run starts from and, when its input ends paused, what it leaves for the
// pieces that go on from there.
struct StreamHandOff {
  // In: null, and the run begins the stream; or the stream's framer, which has written its header
  // and seen every record so far, `offset` bytes of input behind it (the chunks' ends keep to
  // multiples of the chunk size from the stream's start) and in `history` the last of them (the
  // codec's history_bytes at most are used).
  std::unique_ptr<StreamFramer> framer;
  std::uint64_t offset = 0;
  Buffer history;
  // Set before the input ends (and read once it has): the stream does not end there. The run
  // writes no end (no final block, no trailer) and leaves `framer` here, with `offset` the input
  // behind it.
  std::atomic<bool> pause{false};
};

// compress() of one stream, begun before the run or not, ended by it or handed back (`hand`).
// (compress_graph.cpp)
CompressStats compress_handed(ByteSource& source, ByteSink& sink, const CompressOptions& options, const StreamInfo& info,
                              StreamHandOff& hand);

// Whether `prefix`, a stream's start, tells its format (always, where `codec` names it): it
// holds enough bytes, and not only skippable frames. (decompress_graph.cpp)
bool format_told(ByteView prefix, const std::string& codec);
// The format of a stream that starts with `prefix`, unless `codec` names it; throws kCorruptData
// naming what it is where it is in no known format. (decompress_graph.cpp)
std::string detect_format(ByteView prefix, const std::string& codec);
// The codec a decompression of `name` uses, with the backend options.backends names for it.
// (decompress_graph.cpp)
std::unique_ptr<Codec> make_decoding_codec(const std::string& name, const DecompressOptions& options);

}  // namespace sluice::detail
