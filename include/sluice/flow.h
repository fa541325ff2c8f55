// Sluice's compression as a node of a caller's own tbb::flow::graph.
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
// One CompressNode compresses one stream.
#pragma once

#include <cstdint>
#include <memory>
#include <tuple>

#include <oneapi/tbb/flow_graph.h>

#include "sluice/bytes.h"
#include "sluice/codec.h"
#include "sluice/compress.h"

namespace sluice {

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

}  // namespace sluice
