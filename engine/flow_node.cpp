// CompressNode: the compression graph's middle as a composite node for a caller's graph.
//
//   in -> ordering (sequencer) -> history (serial) -> compressor (parallel) -> ordering (sequencer)
//      -> framer (serial) -> ordering (sequencer) -> out
//
// The last sequencer is not redundant: a serial function_node hands its next input to another
// worker before it passes its current output on (oneTBB spawns the postponed task first), so two
// consecutive outputs of a serial node can reach its successor in either order.
#include "sluice/flow.h"

#include <fmt/format.h>
#include <oneapi/tbb/enumerable_thread_specific.h>

#include "sluice/codec_author.h"
#include "sluice/error.h"

namespace sluice {
namespace {

namespace flow = tbb::flow;

// A chunk on its way through: the caller's bytes, the history before them, the compressed output.
struct Work {
  ByteChunk chunk;
  std::shared_ptr<Buffer> history;  // the stream's last history_bytes before this chunk
  std::shared_ptr<Buffer> output;
  std::uint64_t check = 0;
};

ByteView bytes_of(const ByteChunk& chunk) { return chunk.bytes ? chunk.bytes->view() : ByteView{}; }

}  // namespace

struct CompressNode::Nodes {
  Nodes(flow::graph& graph, const CompressOptions& options, const StreamInfo& info)
      : codec(CodecRegistry::global().create(options.codec, options.codec_options)),
        stream(info),
        history_limit(codec->info().history_bytes),
        compressors([this] { return codec->make_chunk_compressor(); }),
        ordering_in(graph, [](const ByteChunk& chunk) { return chunk.sequence; }),
        // Serial: each chunk's history is the end of the chunks before it, in order.
        history(graph, flow::serial,
                [this](const ByteChunk& chunk) {
                  // In order here: a chunk after the one marked last (two marked last, or a
                  // numbering past the end) made a stream with bytes after its trailer, silently.
                  if (ended) {
                    throw Error(ErrorKind::kUsage,
                                fmt::format("CompressNode: chunk {} comes after chunk {}, marked last", chunk.sequence,
                                            chunk.sequence - 1));
                  }
                  ended = chunk.last;
                  Work work;
                  work.chunk = chunk;
                  work.history = std::make_shared<Buffer>();
                  work.history->append(tail.view());
                  const ByteView payload = bytes_of(chunk);
                  if (payload.size() >= history_limit) {
                    tail.clear();
                    tail.append(payload.last(history_limit));
                  } else {  // a short chunk: keep the end of the history before it too
                    Buffer next;
                    next.append(tail.view().last(std::min(tail.size(), history_limit - payload.size())));
                    next.append(payload);
                    tail = std::move(next);
                  }
                  return work;
                }),
        // Unlimited: chunks are independent given their history; the caller's limiter bounds them.
        compressor(graph, flow::unlimited,
                   [this](Work work) {
                     work.output = std::make_shared<Buffer>();
                     work.check = compressors.local()->compress(work.history->view(), bytes_of(work.chunk),
                                                                work.chunk.last, *work.output);
                     work.history.reset();
                     return work;
                   }),
        ordering_out(graph, [](const Work& work) { return work.chunk.sequence; }),
        // Serial: the framer sees chunks in order (header first, trailer last).
        framer(graph, flow::serial,
               [this](const Work& work) {
                 auto out = std::make_shared<Buffer>();
                 if (work.chunk.sequence == 0) {
                   stream_framer = codec->make_framer(stream);
                   stream_framer->header(*out);
                 }
                 if (!stream_framer) throw Error(ErrorKind::kUsage, "CompressNode: chunk 0 must come first");
                 out->append(work.output->view());
                 stream_framer->add_chunk({bytes_of(work.chunk).size(), work.output->size(), work.check});
                 if (work.chunk.last) {
                   Buffer trailer;
                   stream_framer->trailer(trailer);
                   out->append(trailer.view());
                 }
                 ByteChunk result;
                 result.sequence = work.chunk.sequence;
                 result.last = work.chunk.last;
                 result.bytes = std::move(out);
                 return result;
               }),
        ordering_final(graph, [](const ByteChunk& chunk) { return chunk.sequence; }) {
    flow::make_edge(ordering_in, history);
    flow::make_edge(history, compressor);
    flow::make_edge(compressor, ordering_out);
    flow::make_edge(ordering_out, framer);
    flow::make_edge(framer, ordering_final);
  }

  std::unique_ptr<Codec> codec;
  StreamInfo stream;
  std::size_t history_limit;
  Buffer tail;         // history for the next chunk (history node only)
  bool ended = false;  // the last chunk went through (history node only)
  tbb::enumerable_thread_specific<std::unique_ptr<ChunkCompressor>> compressors;
  std::unique_ptr<StreamFramer> stream_framer;  // framer node only
  flow::sequencer_node<ByteChunk> ordering_in;
  flow::function_node<ByteChunk, Work> history;
  flow::function_node<Work, Work> compressor;
  flow::sequencer_node<Work> ordering_out;
  flow::function_node<Work, ByteChunk> framer;
  flow::sequencer_node<ByteChunk> ordering_final;
};

CompressNode::CompressNode(flow::graph& graph, const CompressOptions& options, const StreamInfo& info)
    : composite_node(graph), nodes_(std::make_unique<Nodes>(graph, options, info)) {
  set_external_ports(input_ports_type(nodes_->ordering_in), output_ports_type(nodes_->ordering_final));
}

CompressNode::~CompressNode() = default;

}  // namespace sluice
