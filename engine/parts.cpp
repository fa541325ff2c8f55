// Streams compressed in parts (sluice/parts.h). The byte identity with the graph holds because a
// part cuts its input exactly as the graph's reader does (chunks of the codec's chunk size from
// the stream's start, each with the history before it) and the framer sees the same records.
#include "sluice/parts.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/first_error.h"
#include "engine/caller_context.h"
#include "sluice/error.h"

namespace sluice {

std::vector<ChunkRecord> compress_part(ByteView history, ByteView input, bool last, const CompressOptions& options,
                                       const std::function<void(ByteView)>& emit) {
  // One context per thread, kept for the next part: a cluster's worker compresses part after part.
  thread_local std::optional<detail::CallerContext> cached;
  detail::CallerContext context = detail::take_context(cached, options.codec, options.codec_options);
  const Codec* codec = context.codec.get();
  const std::size_t chunk_bytes = codec->options().chunk_bytes;
  if (!last && (input.empty() || input.size() % chunk_bytes != 0)) {
    throw Error(ErrorKind::kUsage, fmt::format("a part that does not end the stream must be whole chunks of {} bytes, "
                                               "not {} bytes",
                                               chunk_bytes, input.size()));
  }
  const std::size_t history_limit = codec->info().history_bytes;
  ChunkCompressor* compressor = context.compressor.get();
  std::vector<ChunkRecord> chunks;
  // Kept per thread with the context: where large blocks are mapped afresh each time (a Dask
  // worker sets MALLOC_TRIM_THRESHOLD_), a new buffer per part would be faulted in again.
  thread_local Buffer piece;
  std::size_t at = 0;
  do {
    if (options.stop.stop_requested()) std::rethrow_exception(detail::stopped_error());
    const std::size_t length = std::min(chunk_bytes, input.size() - at);
    const bool final_chunk = last && at + length == input.size();
    // The history the graph's reader gives this chunk: the codec's window of what precedes it.
    Buffer before;
    if (history_limit > 0) {
      const std::size_t from_input = std::min(at, history_limit);
      const std::size_t from_history = std::min(history.size(), history_limit - from_input);
      before.append(history.last(from_history));
      before.append(input.subspan(at - from_input, from_input));
    }
    const std::uint64_t check = compressor->compress(before.view(), input.subspan(at, length), final_chunk, piece);
    chunks.push_back({length, piece.size(), check});
    emit(piece.view());
    at += length;
    if (options.on_progress) options.on_progress(at);
  } while (at < input.size());
  cached = std::move(context);  // kept only after a part that succeeded
  return chunks;
}

CompressedPart compress_part(ByteView history, ByteView input, bool last, const CompressOptions& options) {
  CompressedPart part;
  // Room for the whole part up front: growing by doubling would copy it and fault it in again.
  // Pages never written are never touched.
  part.bytes.reserve(input.size() + input.size() / 8 + 64 * 1024);
  part.chunks = compress_part(history, input, last, options, [&](ByteView bytes) { part.bytes.append(bytes); });
  return part;
}

Buffer stream_header(const CompressOptions& options, const StreamInfo& info) {
  const auto codec = CodecRegistry::global().create(options.codec, options.codec_options);
  Buffer out;
  codec->make_framer(info)->header(out);
  return out;
}

Buffer stream_trailer(const CompressOptions& options, const StreamInfo& info, std::span<const ChunkRecord> chunks) {
  const auto codec = CodecRegistry::global().create(options.codec, options.codec_options);
  const auto framer = codec->make_framer(info);
  Buffer out;
  framer->header(out);  // a framer sees its stream from the start
  out.clear();
  for (const ChunkRecord& chunk : chunks) framer->add_chunk(chunk);
  framer->trailer(out);
  return out;
}

}  // namespace sluice
