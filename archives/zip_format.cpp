// The zip format's shared pieces: times, names, method names, CRC-32.
#include "archives/zip_format.h"

#include <libdeflate.h>
#include <zlib.h>

#include <ctime>

namespace sluice::detail {

namespace {

std::tm dos_fields(std::uint16_t date, std::uint16_t time) {
  std::tm local{};
  local.tm_year = 80 + (date >> 9);
  local.tm_mon = ((date >> 5) & 15) - 1;
  local.tm_mday = date & 31;
  local.tm_hour = time >> 11;
  local.tm_min = (time >> 5) & 63;
  local.tm_sec = (time & 31) * 2;
  local.tm_isdst = -1;
  return local;
}

// The UTC offset of the local zone at `when`, in seconds.
long utc_offset_at(std::time_t when) {
  std::tm local{};
  ::localtime_r(&when, &local);
  return local.tm_gmtoff;
}

}  // namespace

std::int64_t zip_dos_to_unix(std::uint16_t date, std::uint16_t time) { return DosTimeConverter().to_unix(date, time); }

// localtime_r() reads TZ once; mktime() at every call: a program that changed TZ since gets the
// zone mktime would use.
DosTimeConverter::DosTimeConverter() { ::tzset(); }

// mktime() would do, but glibc's calls tzset(), which stats /etc/localtime (or the TZ file) at
// every call: for an archive of 100,000 members that was a fifth of `sluice zip --test`'s time.
// localtime_r() reads the zone once. Where the zone's offset is the same at the hour's start, at
// its end (minute 63, second 62) and 12 hours either side, no time in it is skipped or repeated
// and the answer is mktime's (which normalises minute 63 or day 0 as timegm does); near a change,
// mktime answers. (A zone that changed twice within 12 hours, which no zone of tzdata does, could
// still be answered an hour or a day apart from mktime.)
std::int64_t DosTimeConverter::to_unix(std::uint16_t date, std::uint16_t time) {
  if (date == 0) return 0;
  const std::uint32_t key = (std::uint32_t{date} << 5) | (time >> 11);
  if (key != hour_key_) {
    hour_key_ = key;
    std::tm hour = dos_fields(date, static_cast<std::uint16_t>(time & 0xF800));
    const std::time_t fields = ::timegm(&hour);  // the hour's fields read as UTC
    constexpr std::time_t kHalfDay = 12 * 3600;
    const long offset = utc_offset_at(fields);
    hour_start_ = static_cast<std::int64_t>(fields - offset);
    constexpr std::time_t kHourAndMore = 64 * 60;  // minute 63, second 62
    const std::time_t start = fields - offset;
    uniform_ = utc_offset_at(start) == offset && utc_offset_at(start + kHourAndMore) == offset &&
               utc_offset_at(start - kHalfDay) == offset && utc_offset_at(start + kHalfDay) == offset;
  }
  if (uniform_) return hour_start_ + ((time >> 5) & 63) * 60 + (time & 31) * 2;
  std::tm local = dos_fields(date, time);
  return static_cast<std::int64_t>(std::mktime(&local));
}

std::pair<std::uint16_t, std::uint16_t> zip_unix_to_dos(std::int64_t seconds) {
  const auto when = static_cast<std::time_t>(seconds);
  std::tm local{};
  ::localtime_r(&when, &local);
  if (local.tm_year < 80) return {static_cast<std::uint16_t>((1 << 5) | 1), 0};  // 1980-01-01 00:00
  if (local.tm_year > 207)
    return {static_cast<std::uint16_t>((127 << 9) | (12 << 5) | 31), 0xbf7d};  // 2107-12-31 23:59:58
  const auto date = static_cast<std::uint16_t>(((local.tm_year - 80) << 9) | ((local.tm_mon + 1) << 5) | local.tm_mday);
  const auto time = static_cast<std::uint16_t>((local.tm_hour << 11) | (local.tm_min << 5) | (local.tm_sec / 2));
  return {date, time};
}

namespace {
constexpr std::uint16_t kCp437High[128] = {
    0x00c7, 0x00fc, 0x00e9, 0x00e2, 0x00e4, 0x00e0, 0x00e5, 0x00e7, 0x00ea, 0x00eb, 0x00e8, 0x00ef, 0x00ee,
    0x00ec, 0x00c4, 0x00c5, 0x00c9, 0x00e6, 0x00c6, 0x00f4, 0x00f6, 0x00f2, 0x00fb, 0x00f9, 0x00ff, 0x00d6,
    0x00dc, 0x00a2, 0x00a3, 0x00a5, 0x20a7, 0x0192, 0x00e1, 0x00ed, 0x00f3, 0x00fa, 0x00f1, 0x00d1, 0x00aa,
    0x00ba, 0x00bf, 0x2310, 0x00ac, 0x00bd, 0x00bc, 0x00a1, 0x00ab, 0x00bb, 0x2591, 0x2592, 0x2593, 0x2502,
    0x2524, 0x2561, 0x2562, 0x2556, 0x2555, 0x2563, 0x2551, 0x2557, 0x255d, 0x255c, 0x255b, 0x2510, 0x2514,
    0x2534, 0x252c, 0x251c, 0x2500, 0x253c, 0x255e, 0x255f, 0x255a, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550,
    0x256c, 0x2567, 0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256b, 0x256a, 0x2518, 0x250c,
    0x2588, 0x2584, 0x258c, 0x2590, 0x2580, 0x03b1, 0x00df, 0x0393, 0x03c0, 0x03a3, 0x03c3, 0x00b5, 0x03c4,
    0x03a6, 0x0398, 0x03a9, 0x03b4, 0x221e, 0x03c6, 0x03b5, 0x2229, 0x2261, 0x00b1, 0x2265, 0x2264, 0x2320,
    0x2321, 0x00f7, 0x2248, 0x00b0, 0x2219, 0x00b7, 0x221a, 0x207f, 0x00b2, 0x25a0, 0x00a0,
};
}  // namespace

std::string zip_cp437_to_utf8(const std::string& raw) {
  std::string out;
  out.reserve(raw.size());
  for (const char c : raw) {
    const auto byte = static_cast<std::uint8_t>(c);
    if (byte < 0x80) {
      out.push_back(c);
      continue;
    }
    const std::uint16_t cp = kCp437High[byte - 0x80];
    if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | (cp >> 6)));
    } else {
      out.push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    }
    out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
  return out;
}

bool zip_valid_utf8(const std::string& text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<std::uint8_t>(text[i]);
    std::size_t length = 0;
    std::uint32_t min = 0;
    if (c < 0x80)
      length = 1;
    else if ((c & 0xe0) == 0xc0)
      length = 2, min = 0x80;
    else if ((c & 0xf0) == 0xe0)
      length = 3, min = 0x800;
    else if ((c & 0xf8) == 0xf0)
      length = 4, min = 0x10000;
    else
      return false;
    if (i + length > text.size()) return false;
    std::uint32_t cp = length == 1 ? c : c & (0x7f >> length);
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<std::uint8_t>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (next & 0x3f);
    }
    if (length > 1 && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) return false;
    i += length;
  }
  return true;
}

std::string zip_method_name(std::uint16_t method) {
  switch (method) {
    case 0:
      return "stored";
    case 1:
      return "shrunk";
    case 6:
      return "imploded";
    case 8:
      return "deflate";
    case 9:
      return "deflate64";
    case 12:
      return "bzip2";
    case 14:
      return "lzma";
    case 93:
      return "zstd";
    case 95:
      return "xz";
    case 98:
      return "ppmd";
    case 99:
      return "aes";
    default:
      return "method " + std::to_string(method);
  }
}

std::uint32_t zip_crc32(std::uint32_t crc, ByteView bytes) { return libdeflate_crc32(crc, bytes.data(), bytes.size()); }

std::uint32_t zip_crc32_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t length_b) {
  return static_cast<std::uint32_t>(::crc32_combine64(crc_a, crc_b, static_cast<z_off64_t>(length_b)));
}

}  // namespace sluice::detail
