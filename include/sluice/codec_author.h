// What a codec author needs besides the interfaces of sluice/codec.h: a base that holds the
// codec's facts and resolved options, the framer of a codec whose chunks are whole frames, and
// the cuts a splitter returns. The built-in codecs are written with these, and so can yours:
//
//   class MyCodec final : public sluice::CodecBase {
//    public:
//     MyCodec(sluice::CodecInfo info, const sluice::CodecOptions& options)
//         : CodecBase(std::move(info), options) {}
//     std::unique_ptr<sluice::StreamFramer> make_framer(const sluice::StreamInfo&) const override {
//       return std::make_unique<sluice::SelfFramedChunks>();
//     }
//     ...
//   };
//   sluice::CodecRegistry::global().add(info, [info](const sluice::CodecOptions& options) {
//     return std::make_unique<MyCodec>(info, options);
//   });
//
// The engine checks what a codec's splitter and unit decoder say (sluice/codec.h, Cut), so a
// codec cannot make it read past a buffer or hold more than kMaxUnitOutputBytes per unit.
#pragma once

#include <cstdint>
#include <utility>

#include "sluice/codec.h"

namespace sluice {

// Holds the CodecInfo and the options resolved against it (defaults filled in, ranges checked:
// resolve_options) that every codec reports.
class CodecBase : public Codec {
 public:
  CodecBase(CodecInfo info, const CodecOptions& options)
      : info_(std::move(info)), options_(resolve_options(info_, options)) {}
  const CodecInfo& info() const override { return info_; }
  const CodecOptions& options() const override { return options_; }

 protected:
  CodecInfo info_;
  CodecOptions options_;
};

// The framer of a codec whose every chunk compresses to whole frames (zstd, lz4): a stream is just
// its chunks, with nothing before, between or after them.
class SelfFramedChunks final : public StreamFramer {
 public:
  void header(Buffer&) override {}
  void add_chunk(ByteView, std::uint64_t) override {}
  void trailer(Buffer&) override {}
};

// The cuts a StreamSplitter returns.
namespace cuts {
// Too few bytes buffered to tell: read more.
inline Cut need_more() { return {}; }
// From here to the end, the stream is decoded serially by the codec's StreamDecoder.
inline Cut serial() { return {Cut::Kind::kSerial, 0, 0, 0, 0}; }
// The next `bytes` carry no data (a header, an end mark, a skippable frame); with `flags`, the
// verifier sees it.
inline Cut marker(std::size_t bytes, std::uint32_t flags = 0, std::uint64_t value = 0) {
  return {Cut::Kind::kMarker, bytes, 0, flags, value};
}
// The next `bytes` decode alone to at most `max_output_bytes` (at most kMaxUnitOutputBytes).
inline Cut unit(std::size_t bytes, std::size_t max_output_bytes, std::uint32_t flags = 0) {
  return {Cut::Kind::kUnit, bytes, max_output_bytes, flags, 0};
}
}  // namespace cuts

}  // namespace sluice
