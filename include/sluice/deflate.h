// Raw deflate (RFC 1951), for callers that parse a container themselves and hold a complete
// deflate stream of known output size: sluice.dask inflates the independent chunks of a gzip
// member it has cut into partitions. The fastest inflate sluice has (libdeflate).
#pragma once

#include <cstdint>
#include <span>

#include "sluice/bytes.h"

namespace sluice {

// Inflates the complete raw deflate stream `deflated` (it ends with a final block) into exactly
// `out`. Throws Error(kCorruptData) if it is not valid deflate, inflates to more or fewer bytes
// than out.size(), or has bytes after its final block. Thread-safe (a decompressor per thread).
void inflate_exact(ByteView deflated, std::span<std::uint8_t> out);

}  // namespace sluice
