// Reading zip archives: the central directory and its checks (ZipReader), members decoded in
// parallel, and the three jobs on top: list, test, extract.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>
#include <oneapi/tbb/parallel_pipeline.h>

#include "archives/extractor.h"
#include "archives/name_key.h"
#include "archives/tar_format.h"
#include "archives/zip_format.h"
#include "archives/zip_methods.h"
#include "core/first_error.h"
#include "sluice/codec.h"
#include "sluice/codec_author.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/deflate.h"
#include "sluice/flow.h"
#include "sluice/parts.h"
#include "sluice/stream.h"
#include "sluice/zip.h"

namespace sluice {

using namespace detail;

std::string ZipEntry::method_name() const { return zip_method_name(method); }

namespace {

// A member at most this big (compressed and decoded) is decoded whole by one task, several at a
// time; a bigger one streams through the decompression graph, alone. What is in flight is then
// at most (tokens) x (2 x this).
constexpr std::uint64_t kWholeMemberBytes = 8 * 1024 * 1024;
// The most bytes of a symlink's target.
constexpr std::uint64_t kMaxLinkBytes = 4096;

Error corrupt(const std::string& archive, std::uint64_t offset, const std::string& what) {
  return Error(ErrorKind::kCorruptData, what, archive, offset);
}

// An error about one member: its name and local header's byte in front of the detail.
Error member_error(const ZipEntry& entry, const std::string& archive, const Error& error) {
  return Error(
      error.kind(),
      fmt::format("member '{}' (archive byte {}): {}", printable_name(entry.path), entry.header_offset, error.detail()),
      archive);
}

// A framed member is decoded as a stream of its codec's (zip's deflate data inside a gzip header
// and trailer made for it), whose messages name that stream ("the gzip member starting at byte
// 0"), which the archive does not hold: they name the member's data instead ("deflate data").
std::string framed_detail(std::string detail, const CodecInfo& info, const std::string& method) {
  // The frame's checks are the archive's declarations: said in the archive's words.
  using Words = std::pair<std::string_view, std::string_view>;
  static constexpr Words kChecks[] = {
      {"incorrect length check (ISIZE mismatch)", "not the size the archive declares"},
      {"incorrect data check (CRC-32 mismatch)", "not the CRC-32 the archive declares"}};
  for (const auto& [frame, archive] : kChecks) {
    if (const std::size_t at = detail.find(frame); at != std::string::npos) detail.replace(at, frame.size(), archive);
  }
  const std::string stream = fmt::format("{} {} starting at byte ", info.name, info.unit_noun);
  const std::size_t at = detail.find(stream);
  if (at == std::string::npos) return detail;
  std::size_t end = at + stream.size();
  while (end < detail.size() && std::isdigit(static_cast<unsigned char>(detail[end]))) ++end;
  return detail.replace(at, end - at, fmt::format("{} data", method));
}

// The header, a byte range of the archive, and the trailer, read one after the other.
class MemberSource final : public ByteSource {
 public:
  MemberSource(ByteSource& archive, std::uint64_t offset, std::uint64_t length, Buffer header, Buffer trailer)
      : archive_(archive), offset_(offset), length_(length), header_(std::move(header)), trailer_(std::move(trailer)) {}

  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    if (position_ < header_.size()) return take(header_, position_, dst, max_bytes);
    const std::uint64_t in_data = position_ - header_.size();
    if (in_data < length_) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, length_ - in_data));
      const std::size_t n = archive_.read_at(offset_ + in_data, dst, want);
      if (n == 0) throw Error(ErrorKind::kCorruptData, "the archive ends inside a member", archive_.name());
      position_ += n;
      return n;
    }
    return take(trailer_, position_ - header_.size() - length_, dst, max_bytes);
  }
  const std::string& name() const override { return archive_.name(); }

 private:
  std::size_t take(const Buffer& piece, std::uint64_t at, std::uint8_t* dst, std::size_t max_bytes) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, piece.size() - at));
    std::copy_n(piece.data() + at, n, dst);
    position_ += n;
    return n;
  }

  ByteSource& archive_;
  std::uint64_t offset_;
  std::uint64_t length_;
  Buffer header_;
  Buffer trailer_;
  std::uint64_t position_ = 0;
};

// Passes a member's decoded bytes on, refusing more than the archive declares and keeping the
// CRC-32 when the codec does not check it.
class MemberSink final : public ByteSink {
 public:
  MemberSink(ByteSink& inner, std::uint64_t declared, bool crc) : inner_(inner), declared_(declared), crc_(crc) {}
  void write(ByteView bytes) override {
    if (bytes.size() > declared_ - written_) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("decodes to more than the {} bytes the archive declares", declared_));
    }
    if (crc_) crc32_ = zip_crc32(crc32_, bytes);
    written_ += bytes.size();
    inner_.write(bytes);
  }
  const std::string& name() const override { return inner_.name(); }
  std::uint64_t written() const { return written_; }
  std::uint32_t crc32() const { return crc32_; }

 private:
  ByteSink& inner_;
  std::uint64_t declared_;
  bool crc_;
  std::uint64_t written_ = 0;
  std::uint32_t crc32_ = 0;
};

class DiscardSink final : public ByteSink {
 public:
  void write(ByteView) override {}
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "<test>";
};

// Reads of an archive that mostly go forward, through a window: the local headers of members of
// a few hundred bytes, a read for hundreds of them (a read each cost a tenth of `sluice zip
// --test` of 100,000 such members). A window is read only past all read before, so that an
// archive listing its members in a hostile order costs at most its size in windows, and what
// its headers take in reads of their own. A view stays valid until the next read.
class ForwardReader {
 public:
  explicit ForwardReader(ByteSource& source) : source_(source) {}
  // `n` bytes at `offset`, or throws as read_exact does.
  ByteView read(std::uint64_t offset, std::size_t n) {
    if (offset < window_at_ || offset - window_at_ > window_.size() || window_.size() - (offset - window_at_) < n) {
      window_.resize(offset >= read_to_ ? std::max(n, kWindowBytes) : n);
      std::size_t done = 0;
      while (done < window_.size()) {
        const std::size_t got = source_.read_at(offset + done, window_.data() + done, window_.size() - done);
        if (got == 0) break;
        done += got;
      }
      window_.resize(done);
      window_at_ = offset;
      read_to_ = std::max(read_to_, offset + done);
      if (done < n) throw Error(ErrorKind::kCorruptData, "truncated zip archive", source_.name(), offset + done);
    }
    return window_.view().subspan(static_cast<std::size_t>(offset - window_at_), n);
  }

 private:
  static constexpr std::size_t kWindowBytes = 64 * 1024;
  ByteSource& source_;
  Buffer window_;
  std::uint64_t window_at_ = 0;
  std::uint64_t read_to_ = 0;  // the end of the farthest read
};

// Reads `n` bytes at `offset`, or throws: the archive is truncated there.
Buffer read_exact(ByteSource& source, std::uint64_t offset, std::size_t n) {
  Buffer out;
  out.resize(n);
  std::size_t done = 0;
  while (done < n) {
    const std::size_t got = source.read_at(offset + done, out.data() + done, n - done);
    if (got == 0) throw corrupt(source.name(), offset + done, "truncated zip archive");
    done += got;
  }
  return out;
}

std::string as_string(const std::uint8_t* p, std::size_t n) { return std::string(reinterpret_cast<const char*>(p), n); }

// The end records in an archive's last bytes (`tail`): the last one whose comment reaches the end
// of the file (`exact`), the last one whose comment fits in it, and the last one at all (`cut`:
// its comment runs past the end, a download cut short in the comment, which unzip, zipfile and
// bsdtar read; it was "not a zip archive").
struct EndRecords {
  std::optional<std::size_t> exact;
  std::optional<std::size_t> last;
  std::optional<std::size_t> cut;
};
EndRecords find_end_records(ByteView tail) {
  EndRecords found;
  if (tail.size() < kZipEndBytes) return found;
  for (std::size_t i = tail.size() - kZipEndBytes + 1; i-- > 0;) {
    if (zip_le32(tail.data() + i) != kZipEndSignature) continue;
    if (!found.cut) found.cut = i;
    const std::size_t comment_bytes = zip_le16(tail.data() + i + 20);
    if (i + kZipEndBytes + comment_bytes == tail.size()) {
      found.exact = i;
      if (!found.last) found.last = i;
      break;
    }
    if (!found.last && i + kZipEndBytes + comment_bytes <= tail.size()) found.last = i;
  }
  return found;
}

// The extended timestamp's 32 bits: signed in the field's definition (before 1970 too), written
// unsigned past 2038-01-19 by Info-ZIP zip and bsdtar on 64-bit systems. As unzip reads them: a
// negative time whose DOS date (1980-2107, local time: two days' leeway) says 2038 or later is
// the unsigned one.
template <typename DosSeconds>
std::int64_t timestamp_seconds(std::uint32_t field, const DosSeconds& dos_seconds) {
  const auto as_signed = static_cast<std::int64_t>(static_cast<std::int32_t>(field));
  constexpr std::int64_t kLast32 = std::numeric_limits<std::int32_t>::max();
  if (as_signed < 0 && dos_seconds() >= kLast32 - 2 * 86400) return static_cast<std::int64_t>(field);
  return as_signed;
}

// What is read of an archive's end to find its end record (the largest comment, the zip64 locator).
std::uint64_t end_tail_bytes(std::uint64_t size) {
  return std::min<std::uint64_t>(size, kZipEndBytes + 0xffff + kZip64LocatorBytes);
}

// One member as the central directory gives it, 80 bytes, its texts in State::texts: a vector
// of ZipEntry (168 bytes, three strings) took 366 MB for an archive of 2 million members.
struct PackedEntry {
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
  std::uint64_t header_offset = 0;
  std::uint64_t data_offset = 0;
  std::int64_t mtime_seconds = 0;
  std::uint64_t text_at = 0;  // in State::texts: the path, the raw name (unless the same), the comment
  std::uint32_t crc32 = 0;
  std::uint32_t path_bytes = 0;  // a CP437 name's UTF-8 takes up to 3 bytes a byte
  std::uint32_t mode = 0;
  std::uint32_t chunk_bytes = 0;
  std::uint16_t method = 0;
  std::uint16_t flags = 0;
  std::uint16_t raw_bytes = 0;
  std::uint16_t comment_bytes = 0;
  ZipEntryType type = ZipEntryType::kFile;
  bool unix_mode = false;
  bool raw_is_path = false;
};
static_assert(sizeof(PackedEntry) <= 80, "a member's record grew: ZipTest.AMemberCostsTheReaderAboutAHundredBytes");

}  // namespace

struct ZipReader::State {
  ByteSource& source;
  std::vector<PackedEntry> entries;
  std::string texts;
  std::string comment;
  std::uint64_t size = 0;
  std::uint64_t prefix = 0;
  std::uint64_t directory_start = 0;
  DosTimeConverter dos_times;
  // By local header offset: why a member's local header fails it (local_header_disagrees).
  std::unordered_map<std::uint64_t, std::string> local_problems;

  explicit State(ByteSource& s) : source(s) {}
  const std::string& name() const { return source.name(); }

  void add(const ZipEntry& entry) {
    PackedEntry& packed = entries.emplace_back();
    packed.compressed_size = entry.compressed_size;
    packed.size = entry.size;
    packed.header_offset = entry.header_offset;
    packed.data_offset = entry.data_offset;
    packed.mtime_seconds = entry.mtime_seconds;
    packed.text_at = texts.size();
    packed.crc32 = entry.crc32;
    packed.path_bytes = static_cast<std::uint32_t>(entry.path.size());
    packed.mode = entry.mode;
    packed.chunk_bytes = entry.chunk_bytes;
    packed.method = entry.method;
    packed.flags = entry.flags;
    packed.raw_bytes = static_cast<std::uint16_t>(entry.raw_name.size());
    packed.comment_bytes = static_cast<std::uint16_t>(entry.comment.size());
    packed.type = entry.type;
    packed.unix_mode = entry.unix_mode;
    packed.raw_is_path = entry.raw_name == entry.path;
    texts += entry.path;
    if (!packed.raw_is_path) texts += entry.raw_name;
    texts += entry.comment;
  }

  std::string_view path_of(const PackedEntry& packed) const {
    return std::string_view(texts).substr(static_cast<std::size_t>(packed.text_at), packed.path_bytes);
  }

  ZipEntry entry(std::size_t index) const {
    const PackedEntry& packed = entries.at(index);  // ZipReader::entry's caller may ask past the end
    ZipEntry entry;
    std::size_t at = static_cast<std::size_t>(packed.text_at);
    entry.path.assign(texts, at, packed.path_bytes);
    at += packed.path_bytes;
    if (packed.raw_is_path) {
      entry.raw_name = entry.path;
    } else {
      entry.raw_name.assign(texts, at, packed.raw_bytes);
      at += packed.raw_bytes;
    }
    entry.comment.assign(texts, at, packed.comment_bytes);
    entry.type = packed.type;
    entry.method = packed.method;
    entry.flags = packed.flags;
    entry.crc32 = packed.crc32;
    entry.compressed_size = packed.compressed_size;
    entry.size = packed.size;
    entry.header_offset = packed.header_offset;
    entry.data_offset = packed.data_offset;
    entry.mode = packed.mode;
    entry.unix_mode = packed.unix_mode;
    entry.mtime_seconds = packed.mtime_seconds;
    entry.chunk_bytes = packed.chunk_bytes;
    return entry;
  }

  void read_directory() {
    if (!source.random_access() || !source.size()) {
      throw Error(ErrorKind::kUsage, "a zip archive is read at any offset: give a file, not a pipe or a device",
                  name());
    }
    size = *source.size();
    if (size < kZipEndBytes) throw corrupt(name(), 0, "not a zip archive (too short for its end record)");
    // The end record: the last one whose comment reaches the end of the file, else the last one.
    const std::uint64_t tail_bytes = end_tail_bytes(size);
    const std::uint64_t tail_start = size - tail_bytes;
    const Buffer tail = read_exact(source, tail_start, static_cast<std::size_t>(tail_bytes));
    const EndRecords records = find_end_records(tail.view());
    const std::optional<std::size_t> end_at = records.exact ? records.exact : records.last ? records.last : records.cut;
    if (!end_at) {
      // A file that begins with a member's local header is a zip cut short, more likely than none;
      // one that begins as a tar or a compressed stream is named as that, as sluice tar names a zip.
      const Buffer head = read_exact(source, 0, static_cast<std::size_t>(std::min<std::uint64_t>(size, 512)));
      const bool begins_as_zip = zip_le32(head.data()) == kZipLocalSignature;
      std::string is;
      if (head.size() == detail::kTarBlockBytes &&
          detail::check_tar_header(head.data()) == detail::HeaderCheck::kValid) {
        is = "; it is a tar archive (read it with sluice tar)";
      } else if (const auto codec = CodecRegistry::global().detect(head.view())) {
        is = fmt::format("; it is {} data (sluice -d decodes it; a compressed tar, sluice tar reads it)", codec->name);
      }
      throw corrupt(name(), size,
                    begins_as_zip ? "a zip archive cut short (it begins with a member, and has no end of central "
                                    "directory record)"
                                  : "not a zip archive (no end of central directory record)" + is);
    }
    const std::uint8_t* end = tail.data() + *end_at;
    const std::uint64_t end_offset = tail_start + *end_at;
    comment =
        as_string(end + kZipEndBytes, std::min<std::size_t>(zip_le16(end + 20), tail.size() - *end_at - kZipEndBytes));
    std::uint64_t disk = zip_le16(end + 4);
    std::uint64_t directory_disk = zip_le16(end + 6);
    std::uint64_t count = zip_le16(end + 10);
    std::uint64_t directory_bytes = zip_le32(end + 12);
    std::uint64_t directory_offset = zip_le32(end + 16);
    std::uint64_t directory_end = end_offset;
    bool zip64 = false;
    if (*end_at >= kZip64LocatorBytes && zip_le32(end - kZip64LocatorBytes) == kZip64LocatorSignature) {
      // zip64: the locator gives the zip64 end record's offset (without any bytes in front of the
      // archive); where nothing is there, the record is looked for just before the locator.
      const std::uint64_t locator_offset = end_offset - kZip64LocatorBytes;
      const std::uint64_t pointed = zip_le64(end - kZip64LocatorBytes + 8);
      std::optional<std::uint64_t> record_offset;
      for (const std::uint64_t candidate :
           {pointed, locator_offset - std::min(locator_offset, std::uint64_t{kZip64EndBytes})}) {
        if (candidate > locator_offset || locator_offset - candidate < kZip64EndBytes) continue;
        std::uint8_t signature[4];
        if (source.read_at(candidate, signature, 4) == 4 && zip_le32(signature) == kZip64EndSignature) {
          record_offset = candidate;
          break;
        }
      }
      if (!record_offset) throw corrupt(name(), locator_offset, "zip64 end of central directory record missing");
      const Buffer record = read_exact(source, *record_offset, kZip64EndBytes);
      disk = zip_le32(record.data() + 16);
      directory_disk = zip_le32(record.data() + 20);
      count = zip_le64(record.data() + 32);
      directory_bytes = zip_le64(record.data() + 40);
      directory_offset = zip_le64(record.data() + 48);
      directory_end = *record_offset;
      zip64 = true;
    }
    if (disk != 0 || directory_disk != 0)
      throw corrupt(name(), end_offset, "multi-part (split) archives are not supported");
    if (directory_bytes > directory_end || directory_offset > directory_end - directory_bytes) {
      throw corrupt(name(), end_offset, "the central directory lies outside the file");
    }
    // Bytes in front of the archive (a self-extractor's program) shift every offset.
    directory_start = directory_end - directory_bytes;
    prefix = directory_start - directory_offset;
    parse_entries(directory_bytes, count, zip64);
    check_local_headers();
  }

  // The central directory is read a window at a time, each holding at least a whole record: one
  // that says it is gigabytes long costs memory for the records it holds, not for what it claims.
  static constexpr std::size_t kDirectoryWindowBytes = 1024 * 1024;
  static constexpr std::size_t kMaxCentralRecordBytes = kZipCentralBytes + 3 * 0xffff;
  static_assert(kDirectoryWindowBytes >= kMaxCentralRecordBytes);

  void parse_entries(std::uint64_t directory_bytes, std::uint64_t count, bool zip64) {
    // As many as the end record counts, where the directory has room for them (a record takes
    // 46 bytes at least): its count alone could be anything. Past 4 million (320 MB) the table
    // grows as records are read: a zip64 end record over a sparse file of hundreds of GB claimed
    // more than memory holds, and the archive failed as out of memory instead of as what it is.
    constexpr std::uint64_t kReservedEntries = 4 << 20;
    if (const std::uint64_t room = std::min(count, directory_bytes / kZipCentralBytes); room <= kReservedEntries) {
      entries.reserve(static_cast<std::size_t>(room));
    }
    Buffer window;
    std::uint64_t window_at = 0;  // where window[0] is in the directory
    for (std::uint64_t at = 0; at < directory_bytes;) {
      const std::uint64_t record_offset = directory_start + at;
      const std::uint64_t left = directory_bytes - at;
      if (at + std::min<std::uint64_t>(left, kMaxCentralRecordBytes) > window_at + window.size()) {
        window = read_exact(source, record_offset,
                            static_cast<std::size_t>(std::min<std::uint64_t>(left, kDirectoryWindowBytes)));
        window_at = at;
      }
      const ByteView record = window.view().subspan(static_cast<std::size_t>(at - window_at));
      if (record.size() < kZipCentralBytes || zip_le32(record.data()) != kZipCentralSignature) {
        throw corrupt(name(), record_offset, "bad central directory record");
      }
      const std::uint8_t* h = record.data();
      const std::size_t name_bytes = zip_le16(h + 28);
      const std::size_t extra_bytes = zip_le16(h + 30);
      const std::size_t comment_bytes = zip_le16(h + 32);
      if (record.size() - kZipCentralBytes < name_bytes + extra_bytes + comment_bytes) {
        throw corrupt(name(), record_offset, "central directory record runs past the directory");
      }
      ZipEntry entry;
      const std::uint16_t made_by = zip_le16(h + 4);
      entry.flags = zip_le16(h + 8);
      entry.method = zip_le16(h + 10);
      const std::uint16_t dos_time = zip_le16(h + 12);
      const std::uint16_t dos_date = zip_le16(h + 14);
      entry.crc32 = zip_le32(h + 16);
      entry.compressed_size = zip_le32(h + 20);
      entry.size = zip_le32(h + 24);
      const std::uint32_t start_disk = zip_le16(h + 34);
      const std::uint32_t external = zip_le32(h + 38);
      entry.header_offset = zip_le32(h + 42);
      entry.raw_name = as_string(h + kZipCentralBytes, name_bytes);
      entry.comment = as_string(h + kZipCentralBytes + name_bytes + extra_bytes, comment_bytes);
      std::optional<std::uint32_t> unix_time;  // the extended timestamp's, when there is one
      std::optional<std::string> unicode_name;
      // Extra fields: zip64 sizes and offset, the Unix timestamp, the Unicode path.
      const std::uint8_t* extra = h + kZipCentralBytes + name_bytes;
      for (std::size_t e = 0; e + 4 <= extra_bytes;) {
        const std::uint16_t id = zip_le16(extra + e);
        const std::size_t length = zip_le16(extra + e + 2);
        if (e + 4 + length > extra_bytes) break;  // a malformed tail is ignored, as unzip does
        const std::uint8_t* field = extra + e + 4;
        if (id == kZipExtraZip64) {
          std::size_t f = 0;
          const auto take = [&](std::uint64_t& value) {
            if (value != kZip32Max) return;
            if (f + 8 > length) throw corrupt(name(), record_offset, "zip64 extra field too short");
            value = zip_le64(field + f);
            f += 8;
          };
          take(entry.size);
          take(entry.compressed_size);
          take(entry.header_offset);
        } else if (id == kZipExtraSluiceChunks && length == 4) {
          entry.chunk_bytes = zip_le32(field);
        } else if (id == kZipExtraTimestamp && length >= 5 && (field[0] & 1)) {
          unix_time = zip_le32(field + 1);
        } else if (id == kZipExtraUnicodePath && length >= 5 && field[0] == 1 &&
                   zip_le32(field + 1) == zip_crc32(0, as_bytes(entry.raw_name))) {
          unicode_name = as_string(field + 5, length - 5);
        }
        e += 4 + length;
      }
      if (start_disk != 0 && start_disk != kZip16Max) throw corrupt(name(), record_offset, "member on another disk");
      entry.mtime_seconds = unix_time
                                ? timestamp_seconds(*unix_time, [&] { return dos_times.to_unix(dos_date, dos_time); })
                                : dos_times.to_unix(dos_date, dos_time);
      // The name: the Unicode path field's when valid; the bytes as they are when flagged UTF-8 or
      // written on Unix (names there are bytes, as unzip keeps them); CP437 otherwise.
      const std::uint8_t host = static_cast<std::uint8_t>(made_by >> 8);
      if (unicode_name && zip_valid_utf8(*unicode_name))
        entry.path = *unicode_name;
      else if ((entry.flags & kZipFlagUtf8) || host == kZipHostUnix)
        entry.path = entry.raw_name;
      else
        entry.path = zip_cp437_to_utf8(entry.raw_name);
      // Written on DOS or Windows with its separators (sub\file.txt): unzip reads them as '/', and
      // so '..\' is refused as '../' is.
      if (host != kZipHostUnix) std::replace(entry.path.begin(), entry.path.end(), '\\', '/');
      const std::uint32_t unix_mode = external >> 16;
      const bool slash = entry.path.ends_with('/');
      if (host == kZipHostUnix && unix_mode != 0) {
        entry.unix_mode = true;
        entry.mode = unix_mode & 07777;
        if (S_ISDIR(unix_mode))
          entry.type = ZipEntryType::kDirectory;
        else if (S_ISLNK(unix_mode))
          entry.type = ZipEntryType::kSymlink;
      } else if (slash || (external & 0x10)) {
        entry.type = ZipEntryType::kDirectory;
      }
      if (slash) entry.type = ZipEntryType::kDirectory;
      // Without a Unix mode: the umask's, but for a file with the MS-DOS read-only attribute,
      // which unzip and bsdtar extract read-only (it was writable).
      if (!entry.unix_mode) {
        entry.mode = entry.type == ZipEntryType::kDirectory ? 0777 : (external & 0x01) ? 0444 : 0666;
      }
      while (entry.path.size() > 1 && entry.path.ends_with('/')) entry.path.pop_back();
      add(entry);
      at += kZipCentralBytes + name_bytes + extra_bytes + comment_bytes;
    }
    // The count in the end record (modulo 2^16 without zip64, as some writers overflow it).
    const std::uint64_t found = entries.size();
    if (zip64 ? found != count : (found & 0xffff) != count) {
      throw corrupt(name(), directory_start,
                    fmt::format("the end record counts {} members, the central directory has {}", count, found));
    }
  }

  // Where a member's local header (`header`, its `local_name` and `local_extra`) says other than
  // the central directory, what: a reader that trusts the local header (unzip, bsdtar reading a
  // pipe) would read other bytes, or other sizes, than the directory lists. The name, the method
  // and encryption must be the same; the CRC-32 and sizes too unless the member's data is
  // followed by a data descriptor (bit 3), where the local header's may be zeros (unzip's rule).
  static std::optional<std::string> local_header_disagrees(const ZipEntry& entry, ByteView header, ByteView local_name,
                                                           ByteView local_extra) {
    const std::string stored_name = as_string(local_name.data(), local_name.size());
    if (stored_name != entry.raw_name) {  // a name of up to 64 KiB, in a message kept for each member
      constexpr std::size_t kShown = 256;
      return fmt::format("the local header names '{}'{}", printable_name(stored_name.substr(0, kShown)),
                         stored_name.size() > kShown ? "..." : "");
    }
    const std::uint16_t flags = zip_le16(header.data() + 6), method = zip_le16(header.data() + 8);
    if (method != entry.method) {
      return fmt::format("the local header says {}, the central directory {}", zip_method_name(method),
                         entry.method_name());
    }
    if ((flags & kZipFlagEncrypted) != (entry.flags & kZipFlagEncrypted)) {
      return std::string("the local header and the central directory disagree on encryption");
    }
    if (flags & kZipFlagDescriptor) return std::nullopt;
    const std::uint32_t crc = zip_le32(header.data() + 14);
    std::uint64_t compressed = zip_le32(header.data() + 18), size = zip_le32(header.data() + 22);
    if (compressed == kZip32Max || size == kZip32Max) {  // both in the local zip64 field, size first
      for (std::size_t e = 0; e + 4 <= local_extra.size();) {
        const std::size_t length = zip_le16(local_extra.data() + e + 2);
        if (e + 4 + length > local_extra.size()) break;
        if (zip_le16(local_extra.data() + e) == kZipExtraZip64 && length >= 16) {
          size = zip_le64(local_extra.data() + e + 4);
          compressed = zip_le64(local_extra.data() + e + 12);
          break;
        }
        e += 4 + length;
      }
    }
    if (crc != entry.crc32 || compressed != entry.compressed_size || size != entry.size) {
      return fmt::format(
          "the local header says {} bytes ({} compressed, CRC-32 {:08x}), the central directory {} "
          "({}, {:08x})",
          size, compressed, crc, entry.size, entry.compressed_size, entry.crc32);
    }
    return std::nullopt;
  }

  // Every local header inside the archive, before the central directory; every member's data
  // inside the archive; no two members overlapping. A local header that says other than the
  // central directory fails its member (local_problems), as Python's zipfile does.
  void check_local_headers() {
    // Members in archive order. Two at one local header overlap whatever the headers hold: that is
    // said before any is read (65,535 records naming two headers of 128 KiB each took 47 s).
    std::vector<std::size_t> by_offset(entries.size());
    for (std::size_t i = 0; i < by_offset.size(); ++i) by_offset[i] = i;
    const auto earlier = [&](std::size_t a, std::size_t b) {
      return entries[a].header_offset < entries[b].header_offset;
    };
    // Writers list members in archive order: sorting that again was 16% of reading 500,000.
    if (!std::is_sorted(by_offset.begin(), by_offset.end(), earlier)) {
      std::stable_sort(by_offset.begin(), by_offset.end(), earlier);
    }
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
      if (entries[by_offset[i - 1]].header_offset == entries[by_offset[i]].header_offset) {
        throw overlap(by_offset[i - 1], by_offset[i], entries[by_offset[i]].header_offset + prefix);
      }
    }
    // In archive order, whatever the directory's: the window then moves forward only.
    ForwardReader headers(source);
    for (const std::size_t index : by_offset) {
      PackedEntry& packed = entries[index];
      if (packed.header_offset > directory_start - prefix ||
          directory_start - prefix - packed.header_offset < kZipLocalBytes) {
        throw corrupt(
            name(), directory_start,
            fmt::format("member '{}': its local header lies outside the archive", printable_name(path_of(packed))));
      }
      packed.header_offset += prefix;
      const ByteView header = headers.read(packed.header_offset, kZipLocalBytes);
      if (zip_le32(header.data()) != kZipLocalSignature) {
        throw corrupt(name(), packed.header_offset,
                      fmt::format("member '{}': no local header where the central directory says",
                                  printable_name(path_of(packed))));
      }
      const std::size_t name_bytes = zip_le16(header.data() + 26);
      const std::size_t extra_bytes = zip_le16(header.data() + 28);
      packed.data_offset = packed.header_offset + kZipLocalBytes + name_bytes + extra_bytes;
      if (packed.data_offset > directory_start || packed.compressed_size > directory_start - packed.data_offset) {
        throw corrupt(
            name(), packed.header_offset,
            fmt::format("member '{}': its data runs into the central directory", printable_name(path_of(packed))));
      }
      std::array<std::uint8_t, kZipLocalBytes> fields{};  // the next read may move the window
      std::copy_n(header.data(), kZipLocalBytes, fields.data());
      const ByteView local = headers.read(packed.header_offset + kZipLocalBytes, name_bytes + extra_bytes);
      if (auto problem = local_header_disagrees(entry(index), ByteView(fields.data(), fields.size()),
                                                local.first(name_bytes), local.subspan(name_bytes))) {
        local_problems.emplace(packed.header_offset, std::move(*problem));
      }
    }
    for (std::size_t i = 1; i < by_offset.size(); ++i) {  // the same order: every offset moved by `prefix`
      const PackedEntry& before = entries[by_offset[i - 1]];
      const PackedEntry& after = entries[by_offset[i]];
      if (before.data_offset + before.compressed_size > after.header_offset) {
        throw overlap(by_offset[i - 1], by_offset[i], after.header_offset);
      }
    }
  }

  Error overlap(std::size_t before, std::size_t after, std::uint64_t at) const {
    return corrupt(name(), at,
                   fmt::format("members '{}' and '{}' overlap (the shape of a zip bomb); nothing extracted",
                               printable_name(path_of(entries[before])), printable_name(path_of(entries[after]))));
  }

  // The codec that decodes `method`, by CodecInfo::zip_method; null if none.
  const Codec* codec_for(std::uint16_t method) {
    std::lock_guard lock(codecs_mutex);
    auto it = codecs.find(method);
    if (it != codecs.end()) return it->second.get();
    std::unique_ptr<Codec> found;
    for (const std::string& codec_name : CodecRegistry::global().names()) {
      const auto info = CodecRegistry::global().find(codec_name);
      if (info && info->zip_method == method) found = CodecRegistry::global().create(codec_name);
    }
    return codecs.emplace(method, std::move(found)).first->second.get();
  }

  // Whether a framed deflate member that failed is whole after all: its deflate stream ends before
  // the compressed size the archive declares, and the bytes after it (which the framing took for
  // its trailer) are passed over, as unzip and Python's zipfile do. Decoded again on its own, the
  // stream must end inside the member with the declared size and CRC-32; what the failed run had
  // not written yet (a parallel run stops at the first error) is written from this decoding.
  // Throws a failure that says more where the stream is whole but not of the declared size.
  bool whole_deflate_before_padding(const ZipEntry& entry, MemberSink& out, const Error& failure) const {
    if (entry.method != kZipMethodDeflated) return false;
    if (failure.kind() != ErrorKind::kCorruptData && failure.kind() != ErrorKind::kTrailingGarbage) return false;
    const auto summary = decode_as_unzip(entry, out);
    if (summary && summary->size != entry.size) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("decodes to {} bytes, the archive declares {}", summary->size, entry.size));
    }
    return summary && summary->crc32 == entry.crc32 && out.written() == entry.size;
  }

  // The member's deflate stream decoded with zlib, as unzip decodes it, to its end (what follows
  // is passed over): its output written to `out` from where `out` is (what a run wrote before is
  // the same bytes). nullopt where it is not a whole stream or decodes to more than declared.
  std::optional<DeflateSummary> decode_as_unzip(const ZipEntry& entry, MemberSink& out) const {
    std::uint64_t at = 0;
    const auto read = [&](std::uint8_t* dst, std::size_t n) -> std::size_t {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(n, entry.compressed_size - at));
      const std::size_t got = want == 0 ? 0 : source.read_at(entry.data_offset + at, dst, want);
      at += got;
      return got;
    };
    // The run's output was this stream's, in order: only what follows it is new.
    const std::uint64_t written = out.written();
    std::uint64_t decoded = 0;
    const auto emit = [&](ByteView bytes) {
      const std::uint64_t skip = std::min<std::uint64_t>(bytes.size(), written - std::min(written, decoded));
      decoded += bytes.size();
      const ByteView rest = bytes.subspan(static_cast<std::size_t>(skip));
      if (!rest.empty() && rest.size() <= entry.size - out.written()) out.write(rest);  // more: fails below
    };
    return decode_deflate_member(entry.size, read, emit);
  }

  // Whether a deflate member's data might hold the end of a gzip member and the start of another:
  // an ISIZE of at most the member's size, then a gzip header's first four bytes. The gzip codec,
  // reading the member inside a header and trailer made for it, would take such data for two
  // members (an empty deflate stream and a made-up trailer, then a gzip member that the frame's
  // trailer ends: a second reader's archive, where unzip and zipfile find a bad CRC-32); such a
  // member is decoded as unzip decodes it. By chance: a 1 MB member in some tens of thousands.
  bool may_hold_gzip_members(const ZipEntry& entry) const {
    constexpr std::size_t kPiece = 1 << 20;
    constexpr std::size_t kBefore = 10;  // the shortest deflate stream (2 bytes) and a trailer
    Buffer piece;
    piece.resize(static_cast<std::size_t>(std::min<std::uint64_t>(entry.compressed_size, kPiece + 16)));
    for (std::uint64_t from = 0; from + kBefore + 4 <= entry.compressed_size; from += kPiece) {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), entry.compressed_size - from));
      const ByteView data(piece.data(), source.read_at(entry.data_offset + from, piece.data(), want));
      for (std::size_t p = from == 0 ? kBefore : 4; p + 4 <= data.size() && p < kPiece + 4; ++p) {
        const void* hit = std::memchr(data.data() + p, 0x1f, std::min(data.size() - 3, kPiece + 4) - p);
        if (!hit) break;
        p = static_cast<std::size_t>(static_cast<const std::uint8_t*>(hit) - data.data());
        if (data[p + 1] == 0x8b && data[p + 2] == 8 && (data[p + 3] & 0xE0) == 0 &&
            zip_le32(data.data() + p - 4) <= entry.size) {
          return true;
        }
      }
    }
    return false;
  }

  // A small deflate member inflated in one call, when it is one whole deflate stream of the
  // declared size with the declared CRC-32: the bytes every other way gives it. Anything else
  // (bytes after the stream, another size or check, a short archive) goes the way that says what
  // is wrong. Building a streaming decoder for each member cost more than decoding it: ISA-L's
  // state, zeroed, and reading the data twice took 40% of `sluice zip --test` of 100,000 members
  // of a few hundred bytes.
  bool inflated_whole(const ZipEntry& entry, MemberSink& out) const {
    Buffer decoded;
    try {
      const Buffer data = read_exact(source, entry.data_offset, static_cast<std::size_t>(entry.compressed_size));
      decoded.resize(static_cast<std::size_t>(entry.size));
      inflate_exact(data.view(), std::span<std::uint8_t>(decoded.data(), decoded.size()));
    } catch (const Error&) {
      return false;
    }
    if (update_crc32(0, decoded.view()) != entry.crc32) return false;
    out.write(decoded.view());
    return true;
  }

  void read(const ZipEntry& entry, ByteSink& sink, int threads, const std::stop_token& stop) {
    if (const auto problem = local_problems.find(entry.header_offset); problem != local_problems.end()) {
      throw Error(ErrorKind::kCorruptData, problem->second);
    }
    if (entry.encrypted()) throw Error(ErrorKind::kCorruptData, "encrypted (not supported)");
    if (entry.type == ZipEntryType::kDirectory) return;
    const Codec* codec = entry.method == kZipMethodStored ? nullptr : codec_for(entry.method);
    const bool by_library = entry.method != kZipMethodStored && codec == nullptr && zip_method_decodable(entry.method);
    if (entry.method != kZipMethodStored && codec == nullptr && !by_library) {
      throw Error(ErrorKind::kCorruptData, fmt::format("compression method {} is not supported", entry.method_name()));
    }
    const bool framed = codec != nullptr && codec->info().zip_member_framing != nullptr;
    MemberSink out(sink, entry.size, !framed);
    if (by_library) {
      std::uint64_t at = 0;
      const auto read = [&](std::uint8_t* dst, std::size_t n) -> std::size_t {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(n, entry.compressed_size - at));
        if (want == 0) return 0;
        const std::size_t got = source.read_at(entry.data_offset + at, dst, want);
        if (got == 0) throw Error(ErrorKind::kCorruptData, "the archive ends inside the member");
        at += got;
        return got;
      };
      decode_zip_method(entry.method, entry.flags, entry.size, read, [&](ByteView bytes) { out.write(bytes); });
    } else if (codec == nullptr) {
      if (entry.compressed_size != entry.size) {
        throw Error(ErrorKind::kCorruptData,
                    fmt::format("stored member of {} bytes declares {} decoded", entry.compressed_size, entry.size));
      }
      Buffer piece;
      piece.resize(static_cast<std::size_t>(std::min<std::uint64_t>(entry.size, 1024 * 1024)));
      for (std::uint64_t at = 0; at < entry.size;) {
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), entry.size - at));
        const std::size_t n = source.read_at(entry.data_offset + at, piece.data(), want);
        if (n == 0) throw Error(ErrorKind::kCorruptData, "the archive ends inside the member");
        out.write(ByteView(piece.data(), n));
        at += n;
      }
    } else if (entry.method == kZipMethodDeflated && entry.compressed_size <= kWholeMemberBytes &&
               entry.size <= kWholeMemberBytes && inflated_whole(entry, out)) {
      return;  // checked there
    } else if (framed && entry.method == kZipMethodDeflated && may_hold_gzip_members(entry)) {
      const auto summary = decode_as_unzip(entry, out);
      if (!summary || summary->size != entry.size) {
        throw Error(ErrorKind::kCorruptData,
                    summary ? fmt::format("decodes to {} bytes, the archive declares {}", summary->size, entry.size)
                            : fmt::format("corrupt deflate data (not one whole stream of the {} bytes the archive "
                                          "declares)",
                                          entry.size));
      }
      if (summary->crc32 != entry.crc32) {
        throw Error(ErrorKind::kCorruptData,
                    fmt::format("CRC-32 {:08x} does not match the archive's {:08x}", summary->crc32, entry.crc32));
      }
    } else {
      auto [header, trailer] = framed ? codec->info().zip_member_framing(entry.crc32, entry.size, entry.chunk_bytes)
                                      : std::pair<Buffer, Buffer>{};
      try {
        if (entry.compressed_size <= kWholeMemberBytes && entry.size <= kWholeMemberBytes) {
          // Whole, on this thread.
          Buffer data = read_exact(source, entry.data_offset, static_cast<std::size_t>(entry.compressed_size));
          auto decoder = codec->make_decoder();
          const auto emit = [&](ByteView bytes) { out.write(bytes); };
          decoder->decode(header.view(), emit);
          decoder->decode(data.view(), emit);
          decoder->decode(trailer.view(), emit);
          decoder->finish();
        } else {
          MemberSource member(source, entry.data_offset, entry.compressed_size, std::move(header), std::move(trailer));
          DecompressOptions options;
          options.codec = codec->info().name;
          options.threads = threads;
          options.stop = stop;
          decompress(member, out, options);
        }
      } catch (const Error& e) {
        if (!framed) throw;
        if (!whole_deflate_before_padding(entry, out, e)) {
          throw Error(e.kind(), framed_detail(e.detail(), codec->info(), entry.method_name()));
        }
      }
    }
    if (out.written() != entry.size) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("decodes to {} bytes, the archive declares {}", out.written(), entry.size));
    }
    if (!framed && out.crc32() != entry.crc32) {
      throw Error(ErrorKind::kCorruptData,
                  fmt::format("CRC-32 {:08x} does not match the archive's {:08x}", out.crc32(), entry.crc32));
    }
  }

  std::mutex codecs_mutex;
  std::map<std::uint16_t, std::unique_ptr<Codec>> codecs;
};

ZipReader::ZipReader(ByteSource& source) : state_(std::make_unique<State>(source)) { state_->read_directory(); }
ZipReader::~ZipReader() = default;
std::size_t ZipReader::size() const { return state_->entries.size(); }
ZipEntry ZipReader::entry(std::size_t index) const { return state_->entry(index); }
const std::string& ZipReader::comment() const { return state_->comment; }
const std::string& ZipReader::name() const { return state_->name(); }
std::uint64_t ZipReader::prefix_bytes() const { return state_->prefix; }

void ZipReader::read(const ZipEntry& entry, ByteSink& sink, int threads, std::stop_token stop) const {
  try {
    state_->read(entry, sink, threads, stop);
  } catch (const Error& error) {
    throw member_error(entry, name(), error);
  }
}

namespace {

// One member on its way through the pipeline: decoded whole by a worker when small, else by the
// serial stage through the graph.
struct MemberJob {
  ZipEntry entry;
  bool whole = false;
  Buffer data;
  std::exception_ptr error;
};

bool decoded_whole(const ZipEntry& entry) {
  if (entry.type == ZipEntryType::kSymlink) return true;  // refused unread when too long
  return entry.compressed_size <= kWholeMemberBytes && entry.size <= kWholeMemberBytes;
}

// Members in a row that go through the pipeline together: one small member's decoding is a few
// microseconds, less than passing a token between threads (with a token each, two threads took
// four times the CPU of one for 100,000 members of a few hundred bytes, and longer).
struct MemberBatch {
  std::vector<MemberJob> jobs;
};

// What a batch gathers at most: members decoded whole, up to this many bytes of them.
constexpr std::size_t kBatchMembers = 256;
constexpr std::uint64_t kBatchBytes = 1 << 20;

// Runs `consume` on each of the members `indices` names, in order, small members decoded
// beforehand on every worker. `after_decode` (when set) runs there too, on each member decoded whole.
void for_each_member(const ZipReader& reader, const std::vector<std::size_t>& indices, int threads,
                     const std::stop_token& stop, const std::function<void(MemberJob&)>& consume,
                     const std::function<void(MemberJob&)>& after_decode = {}) {
  const int workers = resolve_threads(threads);
  std::size_t next = 0;
  // Members are made from the reader's table as the serial first stage takes them; the one after
  // a batch was made to look at, and is kept for the next.
  std::optional<ZipEntry> looked_at;
  const auto peek = [&]() -> const ZipEntry& {
    if (!looked_at) looked_at = reader.entry(indices[next]);
    return *looked_at;
  };
  const auto take = [&] {
    ZipEntry entry = looked_at ? std::move(*looked_at) : reader.entry(indices[next]);
    looked_at.reset();
    ++next;
    return entry;
  };
  // No filter throws: oneTBB's pipeline, cancelled by an exception, does not destroy the jobs in
  // flight (LeakSanitizer caught them). The first failure is kept instead; the reader then stops,
  // the jobs in flight drain without being consumed, and the failure is thrown after the pipeline.
  detail::FirstError failure;
  const auto decode = [&](MemberJob& job) {
    if (!job.whole || (job.entry.type == ZipEntryType::kSymlink && job.entry.size > kMaxLinkBytes)) return;
    try {
      MemorySink sink;
      reader.read(job.entry, sink, 1);
      job.data = sink.take();
      if (after_decode) after_decode(job);
    } catch (...) {
      job.error = std::current_exception();
    }
  };
  run_in_task_arena(workers, [&] {
    tbb::parallel_pipeline(
        static_cast<std::size_t>(workers) * 2,
        tbb::make_filter<void, std::shared_ptr<MemberBatch>>(
            tbb::filter_mode::serial_in_order,
            [&](tbb::flow_control& control) -> std::shared_ptr<MemberBatch> {
              if (!failure.failed() && stop.stop_requested()) {
                failure.record(std::make_exception_ptr(
                    Error(ErrorKind::kCancelled, "stopped: the run was asked to stop", reader.name())));
              }
              if (failure.failed() || next == indices.size()) {
                control.stop();
                return nullptr;
              }
              auto batch = std::make_shared<MemberBatch>();
              std::uint64_t bytes = 0;
              do {
                MemberJob& job = batch->jobs.emplace_back();
                job.entry = take();
                job.whole = decoded_whole(job.entry);
                bytes += job.whole ? job.entry.size : kBatchBytes;  // a member decoded later goes alone
              } while (next < indices.size() && batch->jobs.size() < kBatchMembers && bytes < kBatchBytes &&
                       decoded_whole(peek()));
              return batch;
            }) &
            tbb::make_filter<std::shared_ptr<MemberBatch>, std::shared_ptr<MemberBatch>>(
                tbb::filter_mode::parallel,
                [&](std::shared_ptr<MemberBatch> batch) {
                  for (MemberJob& job : batch->jobs) {
                    if (failure.failed()) break;
                    decode(job);
                  }
                  return batch;
                }) &
            tbb::make_filter<std::shared_ptr<MemberBatch>, void>(tbb::filter_mode::serial_in_order,
                                                                 [&](std::shared_ptr<MemberBatch> batch) {
                                                                   for (MemberJob& job : batch->jobs) {
                                                                     if (failure.failed()) return;
                                                                     try {
                                                                       consume(job);
                                                                     } catch (...) {
                                                                       failure.record(std::current_exception());
                                                                     }
                                                                   }
                                                                 }));
  });
  failure.rethrow_if_failed();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

bool looks_like_zip(ByteSource& source) {
  if (!source.random_access()) return false;
  std::uint8_t magic[4] = {};
  if (source.read_at(0, magic, 4) < 4) return false;
  const std::uint32_t signature = zip_le32(magic);
  if (signature == kZipLocalSignature || signature == kZipEndSignature) return true;
  // Bytes in front (a self-extractor's program, zeros): an end record whose comment ends the
  // file, in a file that does not start as a tar does (a tar holding a zip whose comment length
  // reaches over the tar's end blocks is a tar).
  const auto size = source.size();
  if (!size || *size < kZipEndBytes) return false;
  std::uint8_t block[kTarBlockBytes] = {};
  if (source.read_at(0, block, sizeof block) == sizeof block &&
      detail::check_tar_header(block) == detail::HeaderCheck::kValid) {
    return false;
  }
  const std::uint64_t tail_bytes = end_tail_bytes(*size);
  const Buffer tail = read_exact(source, *size - tail_bytes, static_cast<std::size_t>(tail_bytes));
  return find_end_records(tail.view()).exact.has_value();
}

ZipStats list_zip(ByteSource& source, const std::function<void(const ZipEntry&)>& on_entry) {
  const auto start = std::chrono::steady_clock::now();
  ZipReader reader(source);
  ZipStats stats;
  for (std::size_t index = 0; index < reader.size(); ++index) {
    const ZipEntry entry = reader.entry(index);
    on_entry(entry);
    ++stats.entries;
    stats.stored_bytes += entry.size;
  }
  stats.archive_bytes = source.size().value_or(0);
  stats.seconds = seconds_since(start);
  return stats;
}

ZipTestStats test_zip(ByteSource& source, int threads,
                      const std::function<void(const ZipEntry&, const Error&)>& on_failed, std::stop_token stop) {
  return test_zip(source, ZipTestSelection{}, threads, on_failed, stop);
}

ZipTestStats test_zip(ByteSource& source, const ZipTestSelection& selection, int threads,
                      const std::function<void(const ZipEntry&, const Error&)>& on_failed, std::stop_token stop) {
  const auto start = std::chrono::steady_clock::now();
  ZipReader reader(source);
  TarMembers members(selection.members, selection.member_wildcards);
  const TarExclude exclude(selection.exclude);
  std::vector<std::size_t> selected;
  selected.reserve(selection.members.empty() && selection.exclude.empty() ? reader.size() : 0);
  for (std::size_t index = 0; index < reader.size(); ++index) {
    if (selection.members.empty() && selection.exclude.empty()) {
      selected.push_back(index);
      continue;
    }
    const ZipEntry entry = reader.entry(index);
    if (members.selects(entry.path, entry.type == ZipEntryType::kDirectory) && !exclude.excludes(entry.path))
      selected.push_back(index);
  }
  ZipTestStats stats;
  stats.members_not_found = members.not_found();
  for_each_member(reader, selected, threads, stop, [&](MemberJob& job) {
    ++stats.entries;
    try {
      if (job.error) std::rethrow_exception(job.error);
      if (!job.whole) {
        DiscardSink discard;
        reader.read(job.entry, discard, threads, stop);
      }
      stats.stored_bytes += job.entry.size;
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::kCancelled) throw;
      ++stats.failed;
      if (on_failed) on_failed(job.entry, error);
    }
  });
  stats.archive_bytes = source.size().value_or(0);
  stats.seconds = seconds_since(start);
  return stats;
}

namespace {

// A zip entry as the extractor sees entries (tar's model).
TarEntry as_tar_entry(const ZipEntry& entry) {
  TarEntry out;
  out.path = entry.path;
  out.type = entry.type == ZipEntryType::kDirectory ? TarEntryType::kDirectory
             : entry.type == ZipEntryType::kSymlink ? TarEntryType::kSymlink
                                                    : TarEntryType::kFile;
  out.mode = entry.mode;
  out.mode_recorded = entry.unix_mode;
  out.size = entry.type == ZipEntryType::kFile ? entry.size : 0;
  out.mtime_seconds = entry.mtime_seconds;
  out.header_offset = entry.header_offset;
  return out;
}

StreamInfo stream_info(const ZipEntry& entry) { return detail::stream_info_for(entry.path, entry.mtime_seconds); }

// ZipExtractOptions::max_output_bytes, checked before anything is written on the sizes the
// members to extract declare (`files`; a member that decodes to more than it declares fails) and
// the directories their names hold (`directories`, each counted as the extractor counts one).
void check_output_limit(std::uint64_t files, std::uint64_t directories, std::uint64_t limit,
                        const std::string& archive) {
  const std::uint64_t directory_bytes = directories > UINT64_MAX / detail::kExtractedDirectoryBytes
                                            ? UINT64_MAX
                                            : directories * detail::kExtractedDirectoryBytes;
  const std::uint64_t total = files > UINT64_MAX - directory_bytes ? UINT64_MAX : files + directory_bytes;
  if (limit == 0 || total <= limit) return;
  const std::string what = directories == 0 ? fmt::format("{} bytes in all", files)
                                            : fmt::format("{} bytes of files and {} directories ({} bytes each)", files,
                                                          directories, detail::kExtractedDirectoryBytes);
  throw Error(ErrorKind::kLimit,
              fmt::format("the members to extract declare {}, more than the limit of {} bytes set for this run; "
                          "nothing was extracted",
                          what, limit),
              archive);
}

// The directories that member `name` names and holds, added to `seen` (each once), taken as the
// extractor takes them: "./a//b/c" holds a and a/b, as "a/b/c" does.
void note_directories(const std::string& name, bool is_directory,
                      std::unordered_set<detail::NameKey, detail::NameKeyHash>& seen) {
  const std::string path = detail::normal_path(name);
  std::size_t end = is_directory ? path.size() : path.rfind('/');
  while (end != std::string::npos && end > 0) {
    if (!seen.insert(detail::name_key(std::string_view(path.data(), end))).second) return;  // its parents too
    end = path.rfind('/', end - 1);
  }
}

}  // namespace

namespace {

// Extraction, or with `compress` each file member compressed on its way to its file.
ZipExtractStats unpack_zip(ByteSource& source, const ZipExtractOptions& options, const CompressOptions* compress) {
  const auto start = std::chrono::steady_clock::now();
  ZipReader reader(source);  // every structural check before anything is written
  TarMembers members(options.members, options.member_wildcards);
  const TarExclude exclude(options.exclude);
  std::vector<std::size_t> selected;
  std::uint64_t declared = 0;  // the selected files' sizes, for the output limit
  std::unordered_set<detail::NameKey, detail::NameKeyHash> directories;  // and their directories
  // Transcoding: the files compressed to NAME + extension, by name, for the symbolic links to
  // them, which are renamed with them wherever they stand (they pointed at a name no longer there).
  std::unordered_set<detail::NameKey, detail::NameKeyHash> compressed;
  for (std::size_t index = 0; index < reader.size(); ++index) {
    const ZipEntry entry = reader.entry(index);
    const bool is_directory = entry.type == ZipEntryType::kDirectory;
    if (members.selects(entry.path, is_directory) && !exclude.excludes(entry.path)) {
      selected.push_back(index);
      if (compress != nullptr && entry.type == ZipEntryType::kFile && detail::takes_extension(entry.path))
        compressed.insert(detail::name_key(detail::normal_path(entry.path)));
      if (entry.type == ZipEntryType::kFile)
        declared = entry.size > UINT64_MAX - declared ? UINT64_MAX : declared + entry.size;
      if (options.max_output_bytes != 0) note_directories(entry.path, is_directory, directories);
    }
  }
  check_output_limit(declared, directories.size(), options.max_output_bytes, reader.name());
  const ZipEntry* current = nullptr;
  TarExtractOptions extract;
  extract.directory = options.directory;
  extract.max_output_bytes = options.max_output_bytes;
  extract.reserved = options.reserved;
  extract.preserve_permissions = options.preserve_permissions;
  extract.keep_existing = options.keep_existing;
  extract.keep_what_was_there = options.keep_what_was_there;
  extract.written_names = options.written_names;
  extract.replace_files_with_directories = false;  // as unzip: a member "x/" does not remove a file x
  extract.files_and_links_within = compress != nullptr;
  // Refusals and failures are named as members' errors are (ZipReader::read: the archive, the
  // member, its byte), whether reported or, with `strict`, thrown once the member is done with
  // (the first of them; thrown from here, they would pass through the extractor and the reader).
  std::optional<Error> strict_error;
  extract.on_refused = [&](const TarEntry&, const std::string& why) {
    if (options.strict) {
      if (!strict_error) {
        strict_error.emplace(ErrorKind::kCorruptData,
                             fmt::format("refusing member '{}' (archive byte {}): {}", printable_name(current->path),
                                         current->header_offset, why),
                             reader.name());
      }
    } else if (options.on_refused) {
      options.on_refused(*current, why);
    }
  };
  extract.on_failed = [&](const TarEntry&, const Error& error) {
    // One the file system gave names only the file.
    // Its errno kept (Python's PermissionError for a destination it may not write).
    const Error named = error.path() == reader.name()
                            ? error
                            : member_error(*current, reader.name(), Error(error.kind(), error.what()))
                                  .set_error_number(error.error_number());
    if (options.strict) {
      if (!strict_error) strict_error = named;
    } else if (options.on_failed) {
      options.on_failed(*current, named);
    }
  };
  if (options.on_entry) extract.on_entry = [&](const TarEntry&) { options.on_entry(*current); };
  detail::SafeExtractor extractor(extract);
  CompressOptions compress_options = compress != nullptr ? *compress : CompressOptions{};
  compress_options.threads = options.threads;
  if (!compress_options.stop.stop_possible()) compress_options.stop = options.stop;
  std::string extension;
  if (compress != nullptr) {
    const auto info = CodecRegistry::global().find(compress->codec);
    if (!info) throw Error(ErrorKind::kUsage, fmt::format("unknown codec '{}'", compress->codec));
    extension = info->extension;
  }
  // A member decoded whole is compressed whole, on the worker that decoded it, into exactly
  // the bytes compress() makes of it.
  const auto compress_whole = [&](MemberJob& job) {
    if (job.entry.type != ZipEntryType::kFile) return;
    const StreamInfo info = stream_info(job.entry);
    Buffer out = stream_header(compress_options, info);
    const CompressedPart part = compress_part({}, job.data.view(), true, compress_options);
    out.append(part.bytes.view());
    out.append(stream_trailer(compress_options, info, part.chunks).view());
    job.data = std::move(out);
  };
  ZipExtractStats stats;
  try {
    const auto unpack = [&](MemberJob& job) {
      current = &job.entry;
      TarEntry entry = as_tar_entry(job.entry);
      if (compress != nullptr && entry.type == TarEntryType::kFile) entry.path = transcoded_name(entry.path, extension);
      ++stats.entries;
      try {
        if (job.error) std::rethrow_exception(job.error);
        if (job.entry.type == ZipEntryType::kSymlink) {
          if (job.entry.size > kMaxLinkBytes) {
            throw member_error(
                job.entry, reader.name(),
                Error(ErrorKind::kCorruptData,
                      fmt::format("symbolic link target of {} bytes (at most {})", job.entry.size, kMaxLinkBytes)));
          }
          entry.link_target = as_string(job.data.data(), job.data.size());
          if (compress != nullptr && detail::takes_extension(entry.path) &&
              detail::takes_extension(entry.link_target) && !entry.link_target.ends_with('/') &&
              compressed.count(detail::name_key(detail::symlink_target_path(entry.path, entry.link_target)))) {
            entry.path = transcoded_name(entry.path, extension);
            entry.link_target += extension;
          }
        }
      } catch (const Error& error) {
        if (error.kind() == ErrorKind::kCancelled) throw;
        extractor.fail(entry, error, false);
        return;
      }
      extractor.begin(entry);
      if (entry.type == TarEntryType::kFile && extractor.writing()) {
        try {
          // Stops the member's decoding once its file failed (the extractor reported it).
          ExtractorSink sink(extractor, reader.name(), /*stop_when_failed=*/true);
          if (job.whole) {
            extractor.data(job.data.view());
          } else if (compress != nullptr) {
            Compressor compressor(sink, compress_options, stream_info(job.entry));
            reader.read(job.entry, compressor, options.threads, options.stop);
            compressor.finish();
          } else {
            reader.read(job.entry, sink, options.threads, options.stop);
          }
        } catch (const Error& error) {
          if (error.kind() == ErrorKind::kCancelled) throw;
          if (extractor.writing()) extractor.fail(entry, error, true);  // else reported already
          return;
        }
        stats.stored_bytes += job.entry.size;
      }
      extractor.end();
    };
    for_each_member(
        reader, selected, options.threads, options.stop,
        [&](MemberJob& job) {
          unpack(job);
          if (strict_error) throw *strict_error;
        },
        compress != nullptr ? std::function<void(MemberJob&)>(compress_whole) : nullptr);
  } catch (...) {
    extractor.finish_directories();
    throw;
  }
  extractor.finish_directories();
  stats.extracted = extractor.extracted();
  stats.refused = extractor.refused();
  stats.failed = extractor.failed();
  stats.members_not_found = members.not_found();
  stats.archive_bytes = source.size().value_or(0);
  stats.seconds = seconds_since(start);
  return stats;
}

}  // namespace

ZipExtractStats extract_zip(ByteSource& source, const ZipExtractOptions& options) {
  return unpack_zip(source, options, nullptr);
}

ZipExtractStats transcode_zip(ByteSource& source, const ZipExtractOptions& options, const CompressOptions& compress) {
  return unpack_zip(source, options, &compress);
}

}  // namespace sluice
