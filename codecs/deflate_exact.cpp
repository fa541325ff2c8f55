// sluice/deflate.h over the libdeflate engine (deflate_engines.h), one inflater per thread.
#include <memory>

#include "codecs/deflate_engines.h"
#include "sluice/deflate.h"

namespace sluice {

void inflate_exact(ByteView deflated, std::span<std::uint8_t> out) {
  thread_local const std::unique_ptr<codecs::WholeInflater> inflater = codecs::make_libdeflate_whole_inflater();
  inflater->inflate(deflated, out);
}

}  // namespace sluice
