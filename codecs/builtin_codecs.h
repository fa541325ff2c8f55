// The built-in codecs, each defined in its own file and known to the rest of the library only by
// the registry entry it exports here.
#pragma once

#include <initializer_list>
#include <optional>
#include <utility>

#include "sluice/codec.h"
#include "sluice/codec_author.h"

namespace sluice::codecs {

struct CodecEntry {
  CodecInfo info;
  CodecFactory factory;
};

CodecEntry gzip_entry();  // gzip_codec.cpp
CodecEntry zstd_entry();  // zstd_codec.cpp
CodecEntry lz4_entry();   // lz4_codec.cpp

using sluice::CodecBase;
using sluice::SelfFramedChunks;

// The registry entry for a codec class constructed as CodecT(CodecInfo, CodecOptions).
template <typename CodecT>
CodecEntry entry_for(CodecInfo info) {
  CodecFactory factory = [info](const CodecOptions& options) -> std::unique_ptr<Codec> {
    return std::make_unique<CodecT>(info, options);
  };
  return {std::move(info), std::move(factory)};
}

// Little-endian stores and loads for frame headers and trailers.
inline void put_le32(Buffer& out, std::uint32_t value) {
  const std::uint8_t bytes[4] = {static_cast<std::uint8_t>(value), static_cast<std::uint8_t>(value >> 8),
                                 static_cast<std::uint8_t>(value >> 16), static_cast<std::uint8_t>(value >> 24)};
  out.append(bytes);
}
inline void store_le32(std::uint8_t* p, std::uint32_t value) {
  p[0] = static_cast<std::uint8_t>(value);
  p[1] = static_cast<std::uint8_t>(value >> 8);
  p[2] = static_cast<std::uint8_t>(value >> 16);
  p[3] = static_cast<std::uint8_t>(value >> 24);
}
inline std::uint32_t load_le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}
inline std::uint64_t load_le64(const std::uint8_t* p) { return load_le32(p) | std::uint64_t{load_le32(p + 4)} << 32; }

// What first_frame_magic() returns for a prefix that holds only skippable frames: a skippable
// magic, which the first frame that is not skippable cannot have.
inline constexpr std::uint32_t kOnlySkippableFrames = 0x184D2A50u;

// The magic number of the first frame that is not a skippable frame (a range zstd and lz4 share),
// if it lies within `prefix`; kOnlySkippableFrames if `prefix` holds only skippable frames.
inline std::optional<std::uint32_t> first_frame_magic(ByteView prefix) {
  std::size_t at = 0;
  while (at + 8 <= prefix.size() && (load_le32(prefix.data() + at) & 0xFFFFFFF0u) == kOnlySkippableFrames) {
    at += 8 + std::size_t{load_le32(prefix.data() + at + 4)};
  }
  if (at + 4 <= prefix.size()) return load_le32(prefix.data() + at);
  if (at > 0) return kOnlySkippableFrames;
  return std::nullopt;
}

// Whether the fewer than four bytes of `head` could begin a frame with one of `magics` (each
// compared under the mask beside it: 0xFFFFFFF0 for the skippable range). At the end of a stream,
// bytes that could are a frame cut short; bytes that could not are trailing garbage.
inline bool could_begin_frame(ByteView head, std::initializer_list<std::pair<std::uint32_t, std::uint32_t>> magics) {
  for (const auto& [magic, mask] : magics) {
    bool matches = true;
    for (std::size_t i = 0; i < head.size() && i < 4 && matches; ++i) {
      const auto byte = static_cast<std::uint8_t>(magic >> (8 * i)), bits = static_cast<std::uint8_t>(mask >> (8 * i));
      matches = (head[i] & bits) == byte;
    }
    if (matches) return true;
  }
  return false;
}

// Decoders emit output in pieces of this size.
inline constexpr std::size_t kDecodeOutputBytes = 256 * 1024;

// Copies `bytes` into the space `output` lends, as much at a time as it lends.
void copy_to_output(ByteView bytes, StreamDecoder::Output& output);

// Bounds on one unit of parallel decompression (the output bound is the engine's, codec.h). A
// frame or member that claims (or needs) more is decoded serially and streaming instead, so no
// header can make us allocate beyond these.
inline constexpr std::size_t kMaxUnitInputBytes = kMaxUnitOutputBytes + 64 * 1024;

using cuts::marker;
using cuts::need_more;
using cuts::serial;
using cuts::unit;

}  // namespace sluice::codecs
