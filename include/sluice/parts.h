// One stream compressed in parts, anywhere: on other threads, other processes or other machines
// (sluice.dask spreads one big file over a cluster this way). A part is a run of whole chunks of
// the stream: its input starts a multiple of the codec's chunk size from the stream's start, and
// only the stream's last part may end with a short chunk. For the same options, the stream's
// header, then every part's bytes in order, then the trailer made from all the parts' chunk
// records, is byte for byte what compress() writes for the whole stream on one machine:
//
//   Buffer out = stream_header(options, info);
//   for (part : parts) out.append(part.bytes);            // in order
//   out.append(stream_trailer(options, info, all_records));
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "sluice/bytes.h"
#include "sluice/codec_author.h"
#include "sluice/compress.h"

namespace sluice {

struct CompressedPart {
  Buffer bytes;                     // the part's chunks, compressed, in order
  std::vector<ChunkRecord> chunks;  // one per chunk, for the stream's trailer
};

// Compresses one part. `history`: the stream's bytes just before the part (the last
// CodecInfo::history_bytes of them are used; empty for the first part). `last`: the part ends the
// stream (an empty last part is the whole of an empty stream). Runs on the calling thread, chunk
// after chunk: a part is one task of a cluster, which supplies the parallelism, and its memory is
// its input and output. Honours options.stop between chunks. Throws Error(kUsage) for an input
// that is not whole chunks when not last.
CompressedPart compress_part(ByteView history, ByteView input, bool last, const CompressOptions& options);

// The same, handing each chunk's compressed bytes to `emit` as soon as it is made (in order; the
// view is valid during the call) instead of gathering the part in memory: a worker writing its
// part to storage holds one chunk's output at a time. Returns the chunk records. `emit` may throw
// (the part is abandoned); it must not compress another part on the same thread.
std::vector<ChunkRecord> compress_part(ByteView history, ByteView input, bool last, const CompressOptions& options,
                                       const std::function<void(ByteView)>& emit);

// The bytes before the stream's first chunk (gzip's header with the name and time of `info`).
Buffer stream_header(const CompressOptions& options, const StreamInfo& info);

// The bytes after the last chunk (gzip's CRC-32 and size, zstd's seek table, lz4's end mark),
// from every chunk's record in stream order.
Buffer stream_trailer(const CompressOptions& options, const StreamInfo& info, std::span<const ChunkRecord> chunks);

}  // namespace sluice
