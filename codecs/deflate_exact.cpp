// sluice/deflate.h over the libdeflate and ISA-L engines (deflate_engines.h), one inflater per thread.
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

}  // namespace sluice
