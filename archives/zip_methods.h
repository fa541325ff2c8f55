// Zip methods no sluice codec provides, decoded with the Debian libraries that have them: bzip2
// (method 12, libbz2), LZMA (14) and xz (95) (liblzma). One member at a time, on the calling
// thread (members run in parallel with each other). Internal to the library.
#pragma once

#include <cstdint>
#include <functional>

#include "sluice/bytes.h"

namespace sluice::detail {

// Whether decode_zip_method() takes `method`.
bool zip_method_decodable(std::uint16_t method);

// Decodes a member's data, read through `read` (up to n bytes into dst; 0 at its end), passing the
// output to `emit` until the stream ends or `size` bytes came out. `flags`: the member's general
// purpose bits (LZMA: bit 1, an end marker follows the data). Throws Error(kCorruptData) with
// the library's reason on bad data or data that ends early.
void decode_zip_method(std::uint16_t method, std::uint16_t flags, std::uint64_t size,
                       const std::function<std::size_t(std::uint8_t* dst, std::size_t n)>& read,
                       const std::function<void(ByteView)>& emit);

}  // namespace sluice::detail
