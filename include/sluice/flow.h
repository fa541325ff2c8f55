// Sluice's compression and decompression as nodes of a caller's own tbb::flow::graph.
//
// A data tool that reads records, transforms them and writes them compressed can put its own
// nodes between its source and the codec:
//
//   source -> limiter -> transform (parallel, yours) -> CompressNode -> writer (yours)
//      ^                                                                   |
//      +------------------------ limiter.decrementer() ---------------------+
//
// The caller numbers its chunks 0, 1, 2, ... (any arrival order is fine) and marks the last one;
// CompressNode restores their order, compresses them on every worker (one codec context per
// worker, reused) and emits the compressed stream in order: one output message per input chunk,
// with the same sequence number, the stream header in front of chunk 0 and the trailer after the
// last. The concatenated outputs are exactly what sluice::compress() writes for the same chunks.
// The output port is a sequencer: a serial successor (such as a writer) receives the chunks in
// order; successors running in parallel see them in any order, with their sequence numbers.
//
// Memory in flight is the caller's to bound, as in the picture: admit chunks through a
// limiter_node and decrement it as outputs are consumed. A codec error is thrown from the node's
// body: the graph is cancelled and graph.wait_for_all() rethrows it (oneTBB's usual behaviour).
// One CompressNode compresses one stream. A chunk after the one marked last is an error (kUsage,
// from wait_for_all()); a number sent twice is refused by the input sequencer (try_put() gives
// false). A gap, or no chunk marked last, cannot be told from chunks still to come: the node waits
// for them, and wait_for_all() returns with the stream unfinished, as it does for any node of the
// caller's whose input never came. The same holds for DecompressNode's pieces.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <tuple>

#include <oneapi/tbb/flow_graph.h>

#include "sluice/bytes.h"
#include "sluice/codec.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"

namespace sluice {

// Runs `work` in a oneTBB task arena of `threads` slots (0: all cores) that sluice counts as one
// of its runs, for oneTBB algorithms run beside sluice's own (zip's stages): a fork() while it
// runs leaves a child that refuses runs, oneTBB being unusable there, and a fork() with no run
// alive finalizes oneTBB first so that parent and child each start it afresh (README, os.fork()).
// Throws Error(kUsage) in such a child.
void run_in_task_arena(int threads, const std::function<void()>& work);

// A numbered piece of a stream travelling through a flow graph. Copies share the bytes.
struct ByteChunk {
  std::uint64_t sequence = 0;  // position in the stream: 0, 1, 2, ...
  bool last = false;           // the stream's final chunk (a stream of no bytes: one empty chunk)
  std::shared_ptr<const Buffer> bytes;
};

class CompressNode final : public tbb::flow::composite_node<std::tuple<ByteChunk>, std::tuple<ByteChunk>> {
 public:
  // Uses options.codec and options.codec_options (chunk size is the caller's: chunks of any size
  // are compressed as they come; threads and in-flight limits are the graph's, not these options').
  CompressNode(tbb::flow::graph& graph, const CompressOptions& options, const StreamInfo& info = {});
  ~CompressNode() override;

 private:
  struct Nodes;
  std::unique_ptr<Nodes> nodes_;
};

// Decompression as a node, CompressNode's mirror. The input is a compressed stream in numbered
// pieces of any size (0, 1, 2, ... in any arrival order; the last one marked); the output is the
// decoded stream in numbered pieces (0, 1, 2, ..., the last one marked; a stream that decodes to
// nothing gives one empty last piece) of at most 1 MiB each (the output of a unit, or a buffer's
// worth), in order through the output sequencer. The format is told from the first bytes unless
// options.codec names it; units (zstd frames, lz4 frames, gzip members and chunks) are decoded on
// every worker, and so are the pieces of a gzip member of another tool's (parallel inflate, as
// sluice::decompress does) where the arena the node runs in has two threads or more; the rest of a
// stream that cannot be cut goes through the serial decoder. options.max_output_bytes,
// options.backends, options.unit_input_bytes and options.max_pieces_in_flight apply; the threads
// are the graph's. The node decodes at most max_pieces_in_flight pieces (by default 3 per thread of
// the arena) ahead of what it has sent on; the caller's pieces wait, whole, until it gets to them,
// so a caller may send a whole stream at once. What it has sent on is the caller's to bound, as for
// CompressNode, and nothing after the node holds it back (a limiter_node there makes the output
// sequencer hold what it refuses). A stream that cannot be cut into units is decoded a caller's
// piece at a time, whole, into memory: where the input may be a bomb, options.max_output_bytes is
// the bound (or Decompressor, whose output waits for its reader; README, "DecompressNode"). A failure (corrupt data,
// truncation, trailing garbage, the output limit) is thrown from the node's body after the output before it was sent
// on: the graph is cancelled and graph.wait_for_all() rethrows it. Nodes after this one may not see the last pieces
// sent before the failure (the cancelled graph drops their pending work); the pieces they saw are the stream's start,
// in order. One DecompressNode decompresses one stream.
class DecompressNode final : public tbb::flow::composite_node<std::tuple<ByteChunk>, std::tuple<ByteChunk>> {
 public:
  explicit DecompressNode(tbb::flow::graph& graph, const DecompressOptions& options = {});
  ~DecompressNode() override;

 private:
  struct Nodes;
  std::unique_ptr<Nodes> nodes_;
};

}  // namespace sluice
