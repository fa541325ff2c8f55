// sluice/deflate.h over the engines of deflate_engines.h: libdeflate and ISA-L, one inflater per
// thread, and their CRC-32.
#include <memory>

#include "codecs/deflate_engines.h"
#include "sluice/deflate.h"

namespace sluice {

void inflate_exact(ByteView deflated, std::span<std::uint8_t> out) {
  thread_local const std::unique_ptr<codecs::WholeInflater> inflater = codecs::make_libdeflate_whole_inflater();
  inflater->inflate(deflated, out);
}

std::size_t inflate_blocks(ByteView deflated, std::span<std::uint8_t> out, ByteView window) {
  constexpr std::size_t kWindowBytes = 32 * 1024;
  if (window.size() > kWindowBytes) window = window.last(kWindowBytes);
  thread_local const std::unique_ptr<codecs::ChunkInflater> inflater = codecs::make_isal_chunk_inflater();
  return inflater->inflate(deflated, out, window);
}

std::uint32_t update_crc32(std::uint32_t crc, ByteView bytes) { return codecs::update_crc32(crc, bytes); }

std::uint32_t combine_crc32(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t length_b) {
  return codecs::combine_crc32(crc_a, crc_b, length_b);
}

}  // namespace sluice
