// The zip format's records and fields (PKWARE's APPNOTE.TXT), as the reader and the writer share
// them. Internal to the library.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "sluice/bytes.h"

namespace sluice::detail {

inline constexpr std::uint32_t kZipLocalSignature = 0x04034b50;
inline constexpr std::uint32_t kZipCentralSignature = 0x02014b50;
inline constexpr std::uint32_t kZipEndSignature = 0x06054b50;
inline constexpr std::uint32_t kZip64EndSignature = 0x06064b50;
inline constexpr std::uint32_t kZip64LocatorSignature = 0x07064b50;
inline constexpr std::uint32_t kZipDescriptorSignature = 0x08074b50;

inline constexpr std::size_t kZipLocalBytes = 30;    // local file header, before name and extra
inline constexpr std::size_t kZipCentralBytes = 46;  // central directory header, likewise
inline constexpr std::size_t kZipEndBytes = 22;      // end of central directory record
inline constexpr std::size_t kZip64EndBytes = 56;
inline constexpr std::size_t kZip64LocatorBytes = 20;

inline constexpr std::uint16_t kZipFlagEncrypted = 1u << 0;
inline constexpr std::uint16_t kZipFlagDescriptor = 1u << 3;  // sizes and CRC-32 follow the data
inline constexpr std::uint16_t kZipFlagUtf8 = 1u << 11;

inline constexpr std::uint16_t kZipMethodStored = 0;
inline constexpr std::uint16_t kZipMethodDeflated = 8;

inline constexpr std::uint16_t kZipExtraZip64 = 0x0001;
inline constexpr std::uint16_t kZipExtraTimestamp = 0x5455;    // "UT": Unix times, UTC
inline constexpr std::uint16_t kZipExtraUnicodePath = 0x7075;  // "up": Info-ZIP Unicode path
// sluice's own field ("SL", 4 bytes): the member's data is its codec's independent chunks of this
// many bytes each (the last one shorter), so a reader may decode them in parallel. Other readers
// skip it, as APPNOTE asks of unknown fields.
inline constexpr std::uint16_t kZipExtraSluiceChunks = 0x4c53;

inline constexpr std::uint8_t kZipHostUnix = 3;  // "version made by", high byte
inline constexpr std::uint32_t kZip32Max = 0xffffffffu;
inline constexpr std::uint16_t kZip16Max = 0xffffu;

inline std::uint16_t zip_le16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }
inline std::uint32_t zip_le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline std::uint64_t zip_le64(const std::uint8_t* p) {
  return static_cast<std::uint64_t>(zip_le32(p)) | (static_cast<std::uint64_t>(zip_le32(p + 4)) << 32);
}

inline void zip_put16(Buffer& out, std::uint16_t v) {
  const std::uint8_t b[2] = {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8)};
  out.append(b);
}
inline void zip_put32(Buffer& out, std::uint32_t v) {
  zip_put16(out, static_cast<std::uint16_t>(v));
  zip_put16(out, static_cast<std::uint16_t>(v >> 16));
}
inline void zip_put64(Buffer& out, std::uint64_t v) {
  zip_put32(out, static_cast<std::uint32_t>(v));
  zip_put32(out, static_cast<std::uint32_t>(v >> 32));
}

// MS-DOS date and time (local time, 2-second steps, 1980-2107) <-> seconds since 1970.
std::int64_t zip_dos_to_unix(std::uint16_t date, std::uint16_t time);
// zip_dos_to_unix, remembering the last hour it converted: an archive's members come mostly from
// a few hours, and an hour costs four questions to the zone. One for each archive read (the zone
// may change between them).
class DosTimeConverter {
 public:
  DosTimeConverter();  // reads the zone as mktime() would (TZ as it is now)
  std::int64_t to_unix(std::uint16_t date, std::uint16_t time);

 private:
  std::uint32_t hour_key_ = 0xFFFFFFFF;  // (date << 5) | hour of the hour remembered; none yet
  std::int64_t hour_start_ = 0;          // its first second
  bool uniform_ = false;                 // the zone's offset is the same over the hour, 12 hours either side
};
// {date, time}; clamped to 1980-01-01 and 2107-12-31.
std::pair<std::uint16_t, std::uint16_t> zip_unix_to_dos(std::int64_t seconds);

// A name as UTF-8 from code page 437, as unzip reads names of archives made on DOS or Windows.
std::string zip_cp437_to_utf8(const std::string& raw);
bool zip_valid_utf8(const std::string& text);

// "stored", "deflate", ... for a method number; "method N" for one without a name.
std::string zip_method_name(std::uint16_t method);

// CRC-32 (the zip and gzip one), continued from `crc`, and the CRC-32 of A then B from both.
std::uint32_t zip_crc32(std::uint32_t crc, ByteView bytes);
std::uint32_t zip_crc32_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t length_b);

}  // namespace sluice::detail
