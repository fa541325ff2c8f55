// Raw deflate (RFC 1951) and gzip's CRC-32, for callers that parse a container themselves:
// sluice.dask inflates the independent chunks of a gzip member it has cut into partitions, and
// checks the member's CRC-32 from theirs.
#pragma once

#include <cstdint>
#include <span>

#include "sluice/bytes.h"

namespace sluice {

// Inflates the complete raw deflate stream `deflated` (it ends with a final block) into exactly
// `out`. Throws Error(kCorruptData) if it is not valid deflate, inflates to more or fewer bytes
// than out.size(), or has bytes after its final block. Thread-safe (a decompressor per thread).
// The fastest inflate sluice has (libdeflate).
void inflate_exact(ByteView deflated, std::span<std::uint8_t> out);

// Inflates `deflated`, raw deflate that starts at a block boundary and must end exactly at its
// last byte at the end of a block that is not final (as a sync flush leaves it), into `out`;
// returns the bytes written. `window`: the output before it (at most 32 KiB are used), which
// references may reach into; none by default. Throws Error(kCorruptData) if it is not valid
// deflate, a reference reaches before the window, it ends inside a block or with the final
// block, or it inflates to more than out.size(). The end is proven by the inflater's state, not
// guessed from the bytes. Thread-safe (a decompressor per thread; ISA-L).
std::size_t inflate_blocks(ByteView deflated, std::span<std::uint8_t> out, ByteView window = {});

// gzip's CRC-32 (ISA-L's), chainable: update_crc32(update_crc32(0, a), b) == update_crc32(0, a + b).
std::uint32_t update_crc32(std::uint32_t crc, ByteView bytes);
// The CRC-32 of a + b from the CRC-32s of a and b and b's length (zlib's crc32_combine): the
// check of a member whose parts were inflated apart.
std::uint32_t combine_crc32(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t length_b);

}  // namespace sluice
