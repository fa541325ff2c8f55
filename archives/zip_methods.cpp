// bzip2, LZMA and xz zip members (zip_methods.h).
#include "archives/zip_methods.h"

#include <bzlib.h>
#include <lzma.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "sluice/error.h"

namespace sluice::detail {
namespace {

constexpr std::uint16_t kBzip2 = 12;
constexpr std::uint16_t kLzma = 14;
constexpr std::uint16_t kXz = 95;
constexpr std::size_t kPiece = 256 * 1024;
// The most memory an LZMA or xz member may make the decoder take (its dictionary, set by the
// archive): past it the member is refused, so that a hostile header cannot grow memory without
// bound. 7-Zip's largest dictionary at -mx9 is 64 MiB.
constexpr std::uint64_t kMaxLzmaMemory = 256 * 1024 * 1024;

Error bad(const std::string& what) { return Error(ErrorKind::kCorruptData, what); }

using Reader = std::function<std::size_t(std::uint8_t*, std::size_t)>;

// A streaming decoder's input (libbz2's, liblzma's, zlib's), refilled from `read` once it has
// used all it had; `done` once `read` gives nothing more.
template <typename Stream>
void refill(Stream& stream, Buffer& in, const Reader& read, bool& done) {
  if (stream.avail_in != 0 || done) return;
  const std::size_t n = read(in.data(), in.size());
  done = n == 0;
  stream.next_in = reinterpret_cast<decltype(stream.next_in)>(in.data());
  stream.avail_in = static_cast<decltype(stream.avail_in)>(n);
}

void decode_bzip2(std::uint64_t size, const std::function<std::size_t(std::uint8_t*, std::size_t)>& read,
                  const std::function<void(ByteView)>& emit) {
  bz_stream stream{};
  if (BZ2_bzDecompressInit(&stream, 0, 0) != BZ_OK) throw Error(ErrorKind::kInternal, "bzip2: cannot start a decoder");
  const std::unique_ptr<bz_stream, int (*)(bz_stream*)> end(&stream, BZ2_bzDecompressEnd);
  Buffer in, out;
  in.resize(kPiece);
  out.resize(kPiece);
  std::uint64_t produced = 0;
  bool input_done = false;
  for (;;) {
    refill(stream, in, read, input_done);
    stream.next_out = reinterpret_cast<char*>(out.data());
    stream.avail_out = static_cast<unsigned>(out.size());
    const int status = BZ2_bzDecompress(&stream);
    const std::size_t n = out.size() - stream.avail_out;
    if (n > 0) emit(ByteView(out.data(), n));
    produced += n;
    if (status == BZ_STREAM_END) return;
    if (status != BZ_OK) throw bad(fmt::format("bzip2 data is corrupt (libbz2 error {})", status));
    if (input_done && stream.avail_in == 0 && n == 0) throw bad("bzip2 data ends early");
    if (produced > size) return;  // the caller's sink reports the excess
  }
}

// LZMA in zip (APPNOTE 5.8.8): a 2-byte version, a 2-byte properties size, the properties (5
// bytes), then the raw LZMA stream, with an end marker when flag bit 1 says so; without one the
// stream ends at the member's size.
void decode_lzma(std::uint16_t flags, std::uint64_t size, bool xz,
                 const std::function<std::size_t(std::uint8_t*, std::size_t)>& read,
                 const std::function<void(ByteView)>& emit) {
  lzma_stream stream = LZMA_STREAM_INIT;
  const std::unique_ptr<lzma_stream, void (*)(lzma_stream*)> end(&stream, lzma_end);
  Buffer in, out;
  in.resize(kPiece);
  out.resize(kPiece);
  lzma_ret status;
  if (xz) {
    status = lzma_stream_decoder(&stream, kMaxLzmaMemory, LZMA_CONCATENATED);
  } else {
    std::uint8_t head[4];
    for (std::size_t got = 0; got < 4;) {
      const std::size_t n = read(head + got, 4 - got);
      if (n == 0) throw bad("LZMA header ends early");
      got += n;
    }
    const std::size_t props_size = static_cast<std::size_t>(head[2] | (head[3] << 8));
    if (props_size != 5) throw bad(fmt::format("LZMA properties of {} bytes (5 expected)", props_size));
    std::uint8_t props[5];
    for (std::size_t got = 0; got < 5;) {
      const std::size_t n = read(props + got, 5 - got);
      if (n == 0) throw bad("LZMA properties end early");
      got += n;
    }
    lzma_filter filters[2] = {{LZMA_FILTER_LZMA1, nullptr}, {LZMA_VLI_UNKNOWN, nullptr}};
    if (lzma_properties_decode(&filters[0], nullptr, props, 5) != LZMA_OK) throw bad("bad LZMA properties");
    const std::unique_ptr<void, void (*)(void*)> options(filters[0].options, free);
    // No back-reference reaches past the member's start: a dictionary larger than the member is
    // never used, whatever the header says.
    auto* lzma = static_cast<lzma_options_lzma*>(filters[0].options);
    lzma->dict_size = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(lzma->dict_size, std::max<std::uint64_t>(size, LZMA_DICT_SIZE_MIN)));
    if (lzma->dict_size > kMaxLzmaMemory) {
      throw bad(fmt::format("LZMA dictionary of {} MiB (at most {} MiB)", lzma->dict_size >> 20, kMaxLzmaMemory >> 20));
    }
    status = lzma_raw_decoder(&stream, filters);
  }
  if (status != LZMA_OK) throw Error(ErrorKind::kInternal, "liblzma: cannot start a decoder");
  const bool end_marker = xz || (flags & 2u) != 0;
  std::uint64_t produced = 0;
  bool input_done = false;
  for (;;) {
    refill(stream, in, read, input_done);
    stream.next_out = out.data();
    stream.avail_out = out.size();
    status = lzma_code(&stream, input_done ? LZMA_FINISH : LZMA_RUN);
    const std::size_t n = out.size() - stream.avail_out;
    if (n > 0) emit(ByteView(out.data(), n));
    produced += n;
    if (status == LZMA_STREAM_END) return;
    if (!end_marker && produced >= size) return;  // no end marker: the member's size ends it
    if (status == LZMA_MEMLIMIT_ERROR) {
      throw bad(fmt::format("xz data needs {} MiB to decode (at most {} MiB)", lzma_memusage(&stream) >> 20,
                            kMaxLzmaMemory >> 20));
    }
    if (status != LZMA_OK && status != LZMA_BUF_ERROR) {
      throw bad(fmt::format("{} data is corrupt (liblzma error {})", xz ? "xz" : "LZMA", static_cast<int>(status)));
    }
    if (input_done && stream.avail_in == 0 && n == 0) throw bad(fmt::format("{} data ends early", xz ? "xz" : "LZMA"));
    if (produced > size) return;
  }
}

}  // namespace

std::optional<DeflateSummary> decode_deflate_member(std::uint64_t size,
                                                    const std::function<std::size_t(std::uint8_t*, std::size_t)>& read,
                                                    const std::function<void(ByteView)>& emit) {
  z_stream stream{};
  if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) throw Error(ErrorKind::kInternal, "zlib: cannot start a decoder");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> end(&stream, inflateEnd);
  Buffer in, out;
  in.resize(kPiece);
  out.resize(kPiece);
  DeflateSummary summary;
  summary.crc32 = static_cast<std::uint32_t>(crc32(0, nullptr, 0));
  bool input_done = false;
  for (;;) {
    refill(stream, in, read, input_done);
    stream.next_out = out.data();
    stream.avail_out = static_cast<uInt>(out.size());
    const int status = inflate(&stream, Z_NO_FLUSH);
    const std::size_t n = out.size() - stream.avail_out;
    if (n > 0) emit(ByteView(out.data(), n));
    summary.size += n;
    summary.crc32 = static_cast<std::uint32_t>(crc32(summary.crc32, out.data(), static_cast<uInt>(n)));
    if (status == Z_STREAM_END) return summary;
    if (summary.size > size) return std::nullopt;
    if (status != Z_OK && status != Z_BUF_ERROR) return std::nullopt;
    if (input_done && stream.avail_in == 0 && n == 0) return std::nullopt;
  }
}

bool zip_method_decodable(std::uint16_t method) { return method == kBzip2 || method == kLzma || method == kXz; }

void decode_zip_method(std::uint16_t method, std::uint16_t flags, std::uint64_t size,
                       const std::function<std::size_t(std::uint8_t*, std::size_t)>& read,
                       const std::function<void(ByteView)>& emit) {
  if (method == kBzip2) return decode_bzip2(size, read, emit);
  return decode_lzma(flags, size, method == kXz, read, emit);
}

}  // namespace sluice::detail
