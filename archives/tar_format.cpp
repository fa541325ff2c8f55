// Tar header encoding and decoding (POSIX.1-2001 pax over ustar; GNU and v7 when reading).
#include "archives/tar_format.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "sluice/error.h"

namespace sluice::detail {
namespace {

// ustar field offsets and widths.
struct Field {
  std::size_t offset;
  std::size_t width;
};
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12}, kMtime{136, 12},
    kChecksum{148, 8}, kLinkName{157, 100}, kMagic{257, 6}, kVersion{263, 2}, kUname{265, 32}, kGname{297, 32},
    kDevMajor{329, 8}, kDevMinor{337, 8}, kPrefix{345, 155};
constexpr std::size_t kTypeflag = 156;

// Largest value an octal field of `width` holds (width-1 digits and a NUL).
constexpr std::uint64_t octal_max(std::size_t width) { return (std::uint64_t{1} << (3 * (width - 1))) - 1; }

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Well-formed UTF-8 sequences (lengths and continuation bytes; overlong forms are not checked).
bool is_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    if (c < 0x80) extra = 0;
    else if ((c & 0xe0) == 0xc0) extra = 1;
    else if ((c & 0xf0) == 0xe0) extra = 2;
    else if ((c & 0xf8) == 0xf0) extra = 3;
    else return false;
    if (text.size() - i <= extra) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return false;
    }
    i += extra + 1;
  }
  return true;
}

void put_string(std::uint8_t* block, Field field, std::string_view text) {
  std::memcpy(block + field.offset, text.data(), std::min(text.size(), field.width));
}

// Octal with a NUL terminator, or GNU base-256 when the value does not fit (the pax record
// carries it for readers that ignore base-256).
void put_number(std::uint8_t* block, Field field, std::uint64_t value) {
  std::uint8_t* p = block + field.offset;
  if (value <= octal_max(field.width)) {
    const std::string digits = fmt::format("{:0{}o}", value, field.width - 1);
    std::memcpy(p, digits.data(), field.width - 1);
    p[field.width - 1] = 0;
    return;
  }
  std::memset(p, 0, field.width);
  p[0] = 0x80;
  for (std::size_t i = field.width - 1; i >= 1 && value > 0; --i, value >>= 8) p[i] = static_cast<std::uint8_t>(value);
}

void finish_checksum(std::uint8_t* block) {
  std::memset(block + kChecksum.offset, ' ', kChecksum.width);
  unsigned sum = 0;
  for (std::size_t i = 0; i < kTarBlockBytes; ++i) sum += block[i];
  const std::string digits = fmt::format("{:06o}", sum);
  std::memcpy(block + kChecksum.offset, digits.data(), 6);
  block[kChecksum.offset + 6] = 0;
  block[kChecksum.offset + 7] = ' ';
}

// One pax record: "LEN key=value\n", where LEN counts the whole record including itself.
std::string pax_record(std::string_view key, std::string_view value) {
  const std::size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  std::size_t length = body + 1;
  while (std::to_string(length).size() + body != length) length = std::to_string(length).size() + body;
  return fmt::format("{} {}={}\n", length, key, value);
}

// Splits `name` into ustar prefix and name fields; false if it cannot be.
bool split_ustar_name(const std::string& name, std::string& prefix, std::string& base) {
  if (name.size() <= kName.width) {
    prefix.clear();
    base = name;
    return true;
  }
  for (std::size_t slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1)) {
    if (slash > kPrefix.width) break;
    if (slash > 0 && name.size() - slash - 1 <= kName.width && name.size() - slash - 1 > 0) {
      prefix = name.substr(0, slash);
      base = name.substr(slash + 1);
      return true;
    }
  }
  return false;
}

char typeflag_of(TarEntryType type) {
  switch (type) {
    case TarEntryType::kFile: return '0';
    case TarEntryType::kHardLink: return '1';
    case TarEntryType::kSymlink: return '2';
    case TarEntryType::kCharDevice: return '3';
    case TarEntryType::kBlockDevice: return '4';
    case TarEntryType::kDirectory: return '5';
    case TarEntryType::kFifo: return '6';
  }
  return '0';
}

void append_block(Buffer& out, const std::uint8_t* block) { out.append(ByteView(block, kTarBlockBytes)); }

void append_zeros(Buffer& out, std::size_t bytes) {
  const std::size_t old = out.size();
  out.resize(old + bytes);
  std::memset(out.data() + old, 0, bytes);
}

}  // namespace

std::string sparse_map_data(const std::vector<TarSparseRegion>& regions) {
  std::string map = fmt::format("{}\n", regions.size());
  for (const auto& region : regions) map += fmt::format("{}\n{}\n", region.offset, region.length);
  map.resize(map.size() + tar_padding(map.size()), '\0');
  return map;
}

void append_tar_headers(Buffer& out, const TarEntry& entry) {
  // A sparse file (pax sparse format 1.0, as GNU tar and bsdtar write it): its real name and size
  // in GNU.sparse.* records; the ustar header names DIR/GNUSparseFile.0/BASE and stores the map
  // followed by the data regions.
  std::string path = entry.path;
  std::uint64_t size = entry.size;
  std::string records;
  if (!is_utf8(entry.path) || !is_utf8(entry.link_target)) records += pax_record("hdrcharset", "BINARY");
  if (entry.sparse) {
    const std::size_t slash = entry.path.rfind('/');
    path = slash == std::string::npos ? "GNUSparseFile.0/" + entry.path
                                      : entry.path.substr(0, slash) + "/GNUSparseFile.0" + entry.path.substr(slash);
    size = sparse_map_data(entry.regions).size() + entry.stored_bytes();
    records += pax_record("GNU.sparse.major", "1");
    records += pax_record("GNU.sparse.minor", "0");
    records += pax_record("GNU.sparse.name", entry.path);
    records += pax_record("GNU.sparse.realsize", std::to_string(entry.size));
  }
  std::string prefix, base;
  const bool name_fits = is_ascii(path) && split_ustar_name(path, prefix, base);
  if (!name_fits) records += pax_record("path", path);
  if (entry.link_target.size() > kLinkName.width || !is_ascii(entry.link_target)) {
    records += pax_record("linkpath", entry.link_target);
  }
  if (size > octal_max(kSize.width)) records += pax_record("size", std::to_string(size));
  if (entry.uid > octal_max(kUid.width)) records += pax_record("uid", std::to_string(entry.uid));
  if (entry.gid > octal_max(kGid.width)) records += pax_record("gid", std::to_string(entry.gid));
  const bool mtime_fits = entry.mtime_seconds >= 0 &&
                          static_cast<std::uint64_t>(entry.mtime_seconds) <= octal_max(kMtime.width);
  if (entry.mtime_nanoseconds != 0) {
    // Before 1970 the time is the seconds (rounded down) plus the fraction, written as a decimal:
    // -1 s and 0.5 s is "-0.5", as GNU tar writes it (the fraction was dropped there).
    const bool before = entry.mtime_seconds < 0;
    const std::uint64_t whole = before ? static_cast<std::uint64_t>(-(entry.mtime_seconds + 1))
                                       : static_cast<std::uint64_t>(entry.mtime_seconds);
    std::string fraction =
        fmt::format("{:09}", before ? 1'000'000'000 - entry.mtime_nanoseconds : entry.mtime_nanoseconds);
    while (fraction.back() == '0') fraction.pop_back();
    records += pax_record("mtime", fmt::format("{}{}.{}", before ? "-" : "", whole, fraction));
  } else if (!mtime_fits) {
    records += pax_record("mtime", std::to_string(entry.mtime_seconds));
  }
  if (entry.uname.size() >= kUname.width || !is_ascii(entry.uname)) records += pax_record("uname", entry.uname);
  if (entry.gname.size() >= kGname.width || !is_ascii(entry.gname)) records += pax_record("gname", entry.gname);

  const std::uint64_t stored_mtime = mtime_fits ? static_cast<std::uint64_t>(entry.mtime_seconds) : 0;
  std::uint8_t block[kTarBlockBytes];
  if (!records.empty()) {
    // The extended header's own name, as GNU tar --format=posix writes it: DIR/PaxHeaders/BASE.
    const std::size_t slash = path.find_last_of('/', path.size() >= 2 ? path.size() - 2 : 0);
    std::string pax_name = slash == std::string::npos ? "PaxHeaders/" + path
                                                      : path.substr(0, slash) + "/PaxHeaders/" + path.substr(slash + 1);
    if (!is_ascii(pax_name) || pax_name.size() > kName.width) pax_name = "PaxHeaders/entry";
    std::memset(block, 0, sizeof block);
    put_string(block, kName, pax_name);
    put_number(block, kMode, 0644);
    put_number(block, kUid, 0);
    put_number(block, kGid, 0);
    put_number(block, kSize, records.size());
    put_number(block, kMtime, stored_mtime);
    block[kTypeflag] = 'x';
    put_string(block, kMagic, std::string_view("ustar\0", 6));
    put_string(block, kVersion, "00");
    finish_checksum(block);
    append_block(out, block);
    out.append(as_bytes(records));
    append_zeros(out, tar_padding(records.size()));
  }

  std::memset(block, 0, sizeof block);
  if (name_fits) {
    put_string(block, kName, base);
    put_string(block, kPrefix, prefix);
  } else {
    put_string(block, kName, path.substr(0, kName.width));
  }
  put_number(block, kMode, entry.mode & 07777);
  put_number(block, kUid, entry.uid);
  put_number(block, kGid, entry.gid);
  put_number(block, kSize, entry.type == TarEntryType::kFile ? size : 0);
  put_number(block, kMtime, stored_mtime);
  block[kTypeflag] = static_cast<std::uint8_t>(typeflag_of(entry.type));
  put_string(block, kLinkName, entry.link_target);
  put_string(block, kMagic, std::string_view("ustar\0", 6));
  put_string(block, kVersion, "00");
  put_string(block, kUname, entry.uname.size() < kUname.width ? entry.uname : std::string());
  put_string(block, kGname, entry.gname.size() < kGname.width ? entry.gname : std::string());
  put_number(block, kDevMajor, entry.device_major);
  put_number(block, kDevMinor, entry.device_minor);
  finish_checksum(block);
  append_block(out, block);
}

HeaderCheck check_tar_header(const std::uint8_t* block) {
  if (std::all_of(block, block + kTarBlockBytes, [](std::uint8_t b) { return b == 0; })) return HeaderCheck::kZero;
  // The stored checksum: octal digits, possibly led by spaces, ended by NUL or space.
  std::uint64_t stored = 0;
  std::size_t i = kChecksum.offset;
  const std::size_t end = kChecksum.offset + kChecksum.width;
  while (i < end && block[i] == ' ') ++i;
  std::size_t digits = 0;
  for (; i < end && block[i] >= '0' && block[i] <= '7'; ++i, ++digits) stored = stored * 8 + (block[i] - '0');
  if (digits == 0) return HeaderCheck::kBadChecksum;
  for (; i < end; ++i) {
    if (block[i] != ' ' && block[i] != 0) return HeaderCheck::kBadChecksum;
  }
  // The sum of all bytes with the checksum field taken as spaces; old tars summed signed chars.
  std::uint64_t unsigned_sum = 0;
  std::int64_t signed_sum = 0;
  for (std::size_t k = 0; k < kTarBlockBytes; ++k) {
    const bool in_field = k >= kChecksum.offset && k < end;
    const std::uint8_t byte = in_field ? ' ' : block[k];
    unsigned_sum += byte;
    signed_sum += static_cast<std::int8_t>(byte);
  }
  if (stored == unsigned_sum || static_cast<std::int64_t>(stored) == signed_sum) return HeaderCheck::kValid;
  return HeaderCheck::kBadChecksum;
}

namespace {

std::string get_string(const std::uint8_t* block, Field field) {
  const auto* begin = reinterpret_cast<const char*>(block + field.offset);
  return std::string(begin, strnlen(begin, field.width));
}

// Octal (with leading spaces or zeros, ended by NUL or space) or GNU base-256.
std::int64_t get_number(const std::uint8_t* block, Field field, const char* what) {
  const std::uint8_t* p = block + field.offset;
  if (p[0] & 0x80) {
    const bool negative = p[0] == 0xff;
    std::uint64_t value = negative ? ~std::uint64_t{0} : 0;
    const std::size_t first = 1;
    // Bits of the first byte below the marker bit only matter for very wide values.
    for (std::size_t i = first; i < field.width; ++i) {
      if (!negative && (value >> 55) != 0) throw Error(ErrorKind::kCorruptData, fmt::format("{} field out of range", what));
      value = (value << 8) | p[i];
    }
    return static_cast<std::int64_t>(value);
  }
  std::size_t i = 0;
  while (i < field.width && (p[i] == ' ' || p[i] == 0)) {
    if (p[i] == 0 && i + 1 < field.width && p[i + 1] == 0) return 0;  // an empty field
    ++i;
  }
  std::uint64_t value = 0;
  for (; i < field.width && p[i] >= '0' && p[i] <= '7'; ++i) {
    if ((value >> 60) != 0) throw Error(ErrorKind::kCorruptData, fmt::format("{} field out of range", what));
    value = value * 8 + (p[i] - '0');
  }
  for (; i < field.width; ++i) {
    if (p[i] != ' ' && p[i] != 0) throw Error(ErrorKind::kCorruptData, fmt::format("malformed {} field", what));
  }
  return static_cast<std::int64_t>(value);
}

std::uint64_t get_unsigned(const std::uint8_t* block, Field field, const char* what) {
  const std::int64_t value = get_number(block, field, what);
  if (value < 0) throw Error(ErrorKind::kCorruptData, fmt::format("negative {} field", what));
  return static_cast<std::uint64_t>(value);
}

}  // namespace

TarEntry decode_tar_header(const std::uint8_t* block) {
  TarEntry entry;
  entry.path = get_string(block, kName);
  entry.link_target = get_string(block, kLinkName);
  entry.typeflag = static_cast<char>(block[kTypeflag]);
  entry.mode = static_cast<std::uint32_t>(get_unsigned(block, kMode, "mode") & 07777);
  entry.uid = get_unsigned(block, kUid, "uid");
  entry.gid = get_unsigned(block, kGid, "gid");
  entry.size = get_unsigned(block, kSize, "size");
  entry.mtime_seconds = get_number(block, kMtime, "mtime");
  const bool posix = std::memcmp(block + kMagic.offset, "ustar\0", 6) == 0;
  const bool gnu = std::memcmp(block + kMagic.offset, "ustar  \0", 8) == 0;
  if (posix || gnu) {
    entry.uname = get_string(block, kUname);
    entry.gname = get_string(block, kGname);
    entry.device_major = static_cast<std::uint32_t>(get_unsigned(block, kDevMajor, "devmajor"));
    entry.device_minor = static_cast<std::uint32_t>(get_unsigned(block, kDevMinor, "devminor"));
  }
  // GNU tar keeps access and change times where POSIX has the prefix.
  if (posix) {
    const std::string prefix = get_string(block, kPrefix);
    if (!prefix.empty()) entry.path = prefix + "/" + entry.path;
  }
  return entry;
}

void decode_old_gnu_sparse(const std::uint8_t* block, bool extension_block, OldGnuSparse& out) {
  const std::size_t first = extension_block ? 0 : 386;
  const std::size_t count = extension_block ? 21 : 4;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t at = first + 24 * i;
    if (block[at] == 0) break;  // an unused slot ends the map
    const std::uint64_t offset = get_unsigned(block, Field{at, 12}, "sparse offset");
    const std::uint64_t length = get_unsigned(block, Field{at + 12, 12}, "sparse length");
    out.regions.push_back({offset, length});
  }
  out.extended = block[extension_block ? 504 : 482] != 0;
  if (!extension_block) out.real_size = get_unsigned(block, Field{483, 12}, "sparse real size");
}

void parse_pax_records(std::string_view data,
                       const std::function<void(std::string_view key, std::string_view value)>& on_record) {
  std::size_t position = 0;
  while (position < data.size()) {
    if (data[position] == 0) break;  // some writers pad with NULs
    std::size_t length = 0;
    std::size_t i = position;
    while (i < data.size() && data[i] >= '0' && data[i] <= '9' && i - position < 12) length = length * 10 + (data[i++] - '0');
    if (i == position || i >= data.size() || data[i] != ' ' || length <= i - position + 1 ||
        length > data.size() - position || data[position + length - 1] != '\n') {
      throw Error(ErrorKind::kCorruptData, fmt::format("malformed pax record at byte {} of the extended header", position));
    }
    const std::string_view record = data.substr(i + 1, position + length - 1 - (i + 1));
    const std::size_t equals = record.find('=');
    if (equals == std::string_view::npos || equals == 0) {
      throw Error(ErrorKind::kCorruptData, fmt::format("malformed pax record at byte {} of the extended header", position));
    }
    on_record(record.substr(0, equals), record.substr(equals + 1));
    position += length;
  }
}

std::vector<std::string> path_components(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    std::string part = path.substr(start, slash - start);
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    start = slash + 1;
  }
  return parts;
}

std::string join_components(const std::vector<std::string>& components) {
  std::string out;
  for (const auto& part : components) out += (out.empty() ? "" : "/") + part;
  return out;
}

std::string without_trailing_slashes(std::string path) {
  for (;;) {
    if (path.size() > 1 && path.back() == '/')
      path.pop_back();
    else if (path.size() > 2 && path.ends_with("/."))
      path.resize(path.size() - 2);
    else
      return path;
  }
}

bool takes_extension(const std::string& path) {
  if (path.size() >= PATH_MAX) return false;
  const std::string trimmed = without_trailing_slashes(path);
  const std::string_view last = std::string_view(trimmed).substr(trimmed.rfind('/') + 1);
  return !trimmed.empty() && last != "." && last != ".." && trimmed != "/";
}

std::string symlink_target_path(std::string_view link, std::string_view target) {
  const std::string at = normal_path(link);
  const std::size_t slash = at.rfind('/');
  return normal_path((slash == std::string::npos ? std::string() : at.substr(0, slash + 1)) + std::string(target));
}

std::string normal_path(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t start = 0; start <= path.size();) {
    const std::size_t slash = std::min(path.find('/', start), path.size());
    const std::string_view part = path.substr(start, slash - start);
    if (!part.empty() && part != ".") {
      if (!out.empty()) out += '/';
      out += part;
    }
    start = slash + 1;
  }
  return out;
}

namespace {

// Leading blanks and a sign, as strtol() takes them (GNU tar rejects both, bsdtar misreads a '+' as
// 0; the number is plain either way).
std::string_view skip_blanks_and_sign(std::string_view text, bool& negative) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  negative = !text.empty() && text.front() == '-';
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  return text;
}

// Decimal digits at the start of `text` (any number of leading zeros), as long as the value fits
// `limit`; the digits are removed from `text`. nullopt if there are none or the value is larger.
std::optional<std::uint64_t> take_decimal(std::string_view& text, std::uint64_t limit) {
  std::size_t i = 0;
  std::uint64_t value = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    const auto digit = static_cast<std::uint64_t>(text[i] - '0');
    if (value > (limit - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  if (i == 0) return std::nullopt;
  text.remove_prefix(i);
  return value;
}

}  // namespace

std::optional<std::uint64_t> parse_pax_number(std::string_view text) {
  bool negative = false;
  text = skip_blanks_and_sign(text, negative);
  const auto value = take_decimal(text, std::numeric_limits<std::int64_t>::max());
  if (!value || negative || !text.empty()) return std::nullopt;
  return value;
}

std::optional<std::pair<std::int64_t, std::uint32_t>> parse_pax_time(std::string_view text) {
  bool negative = false;
  text = skip_blanks_and_sign(text, negative);
  const auto seconds = take_decimal(text, std::uint64_t{1} << 62);
  if (!seconds) return std::nullopt;
  // Up to nine digits of a fraction count; whatever follows the number is ignored (GNU tar and
  // bsdtar read "1234567890.5x" as 1234567890.5).
  std::uint32_t nanoseconds = 0;
  if (!text.empty() && text.front() == '.') {
    text.remove_prefix(1);
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
    for (std::size_t i = 0; i < 9; ++i) {
      nanoseconds = nanoseconds * 10 + (i < digits ? static_cast<std::uint32_t>(text[i] - '0') : 0);
    }
  }
  auto value = static_cast<std::int64_t>(*seconds);
  if (negative) {
    // -1.25 is 1.25 seconds before the epoch: seconds -2, nanoseconds 750000000.
    value = -value;
    if (nanoseconds != 0) {
      value -= 1;
      nanoseconds = 1000000000u - nanoseconds;
    }
  }
  return std::make_pair(value, nanoseconds);
}

}  // namespace sluice::detail
