// Zip methods no sluice codec provides, decoded with the Debian libraries that have them: bzip2
// (method 12, libbz2), LZMA (14) and xz (95) (liblzma). One member at a time, on the calling
// thread (members run in parallel with each other); and a second look at deflate members
// (decode_deflate_member). Internal to the library.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

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

// Decodes a deflate member's data, read through `read`, with zlib up to the end of its deflate
// stream, passing the output to `emit` and over anything after the stream, as unzip and Python's
// zipfile do; returns the output's size and CRC-32. nullopt when the data is not a whole deflate
// stream, or decodes to more than `size` bytes (it stops there). The zip reader's second look at
// a member whose declared compressed size runs past its deflate stream: the gzip codec, reading
// the member inside a header and trailer made for it, takes those bytes for the trailer.
struct DeflateSummary {
  std::uint64_t size = 0;
  std::uint32_t crc32 = 0;
};
std::optional<DeflateSummary> decode_deflate_member(
    std::uint64_t size, const std::function<std::size_t(std::uint8_t* dst, std::size_t n)>& read,
    const std::function<void(ByteView)>& emit);

}  // namespace sluice::detail
