// Streaming decompression: detect the format from the first bytes, then feed the stream through
// the codec's decoder in fixed-size reads. Serial for now; memory is bounded by the read size
// and the decoder's window, whatever the stream claims about its content size.
#include <chrono>

#include <fmt/format.h>

#include "sluice/decompress.h"
#include "sluice/error.h"

namespace sluice {
namespace {

constexpr std::size_t kReadBytes = 1024 * 1024;

std::string known_formats() { return fmt::format("{}", fmt::join(CodecRegistry::global().names(), ", ")); }

}  // namespace

DecompressStats decompress(ByteSource& source, ByteSink& sink, const DecompressOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  DecompressStats stats;
  Buffer input(kReadBytes);
  try {
    std::size_t got = source.read_full(input.data(), kReadBytes);
    input.resize(got);
    stats.codec = options.codec;
    if (stats.codec.empty()) {
      const auto info = CodecRegistry::global().detect(input.view());
      if (!info) {
        throw Error(ErrorKind::kCorruptData,
                    got == 0 ? std::string("empty input: not compressed data")
                             : fmt::format("not compressed data in a known format ({})", known_formats()),
                    {}, 0);
      }
      stats.codec = info->name;
    }
    const auto decoder = CodecRegistry::global().create(stats.codec)->make_decoder();
    const auto emit = [&](ByteView bytes) {
      sink.write(bytes);
      stats.output_bytes += bytes.size();
    };
    while (got > 0) {
      decoder->decode(input.view(), emit);
      stats.input_bytes += got;
      input.resize(kReadBytes);
      got = source.read(input.data(), kReadBytes);
      input.resize(got);
    }
    decoder->finish();
  } catch (const Error& e) {
    // Errors from the sink already name it; the rest are about the source.
    throw e.with_context(source.name(), std::nullopt);
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

Buffer decompress_buffer(ByteView input, const DecompressOptions& options) {
  MemorySource source(input);
  MemorySink sink;
  decompress(source, sink, options);
  return sink.take();
}

}  // namespace sluice
