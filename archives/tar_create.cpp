// Creating tar archives: the walk, the archive byte stream (TarWriterSource) and create_tar(),
// which runs that stream through the compression graph.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "archives/tar_format.h"
#include "archives/tree_walk.h"
#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/tar.h"

namespace sluice {

using detail::kTarBlockBytes;
using detail::kTarRecordBytes;

namespace {

// The most data regions a sparse file is archived with: past it, the smallest holes are read as
// zeros (the map costs about 20 bytes a region, held while the entry's header is written).
constexpr std::size_t kMaxSparseRegions = 65536;

// Where `fd` (a regular file of `size` bytes) has data, by SEEK_DATA/SEEK_HOLE; one region over
// the whole file where the file system cannot tell.
std::vector<TarSparseRegion> data_regions(int fd, std::uint64_t size) {
  const std::vector<TarSparseRegion> whole{{0, size}};
  std::vector<TarSparseRegion> regions;
  for (std::uint64_t at = 0; at < size;) {
    const off_t data = ::lseek(fd, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole from here to the end
      return whole;
    }
    const off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return whole;
    const auto end = std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), size);
    if (end <= static_cast<std::uint64_t>(data)) break;
    regions.push_back({static_cast<std::uint64_t>(data), end - static_cast<std::uint64_t>(data)});
    at = end;
  }
  // Too many regions: join those separated by the smallest holes, doubling the gap until few enough.
  for (std::uint64_t gap = 4096; regions.size() > kMaxSparseRegions; gap *= 2) {
    std::vector<TarSparseRegion> joined;
    for (const auto& region : regions) {
      if (!joined.empty() && region.offset - (joined.back().offset + joined.back().length) <= gap) {
        joined.back().length = region.offset + region.length - joined.back().offset;
      } else {
        joined.push_back(region);
      }
    }
    regions = std::move(joined);
  }
  // A file that ends in a hole ends its map with an empty region there, as GNU tar writes it (GNU
  // tar sizes the file by its last region).
  if (regions.empty() || regions.back().offset + regions.back().length < size) regions.push_back({size, 0});
  return regions;
}

}  // namespace

struct TarWriterSource::State {
  TarCreateOptions options;
  std::string name = "<tar>";
  std::optional<detail::TreeWalk> walk;

  Buffer pending;                // header or padding bytes not yet handed out
  std::size_t pending_position = 0;
  int file_fd = -1;              // the regular file whose content is being read
  std::string file_path;
  struct stat file_opened {};  // its status when opened, to tell whether it changed as it was read
  // What is read of it: the whole file as one region, or a sparse file's data regions.
  std::vector<TarSparseRegion> file_regions;
  std::size_t file_region = 0;
  std::uint64_t file_region_done = 0;
  std::uint64_t file_left = 0;    // bytes still to read, over all regions
  std::uint64_t file_stored = 0;  // bytes to read in all
  std::uint64_t file_padding = 0;
  bool trailer_done = false;
  std::uint64_t archive_bytes = 0;
  std::uint64_t entries = 0;

  std::map<std::pair<dev_t, ino_t>, std::string> hard_links;  // first archive name of each linked inode
  std::unordered_map<uid_t, std::string> user_names;
  std::unordered_map<gid_t, std::string> group_names;

  ~State() { close_file(); }

  // The file's content is all read: closes it, and says so if it changed meanwhile (grew, or was
  // written to: its size, modification or change time moved), as GNU tar's "file changed as we
  // read it". The entry holds what was read, under the header written when it was opened.
  void finish_file() {
    struct stat now {};
    const bool changed =
        file_fd >= 0 && ::fstat(file_fd, &now) == 0 &&
        (now.st_size != file_opened.st_size || now.st_mtim.tv_sec != file_opened.st_mtim.tv_sec ||
         now.st_mtim.tv_nsec != file_opened.st_mtim.tv_nsec || now.st_ctim.tv_sec != file_opened.st_ctim.tv_sec ||
         now.st_ctim.tv_nsec != file_opened.st_ctim.tv_nsec);
    close_file();
    if (changed && options.on_changed) options.on_changed(file_path);
  }

  void close_file() {
    if (file_fd >= 0) ::close(file_fd);
    file_fd = -1;
  }

  const std::string& user_name(uid_t uid) {
    auto it = user_names.find(uid);
    if (it != user_names.end()) return it->second;
    const passwd* entry = ::getpwuid(uid);
    return user_names[uid] = entry ? entry->pw_name : "";
  }
  const std::string& group_name(gid_t gid) {
    auto it = group_names.find(gid);
    if (it != group_names.end()) return it->second;
    const group* entry = ::getgrgid(gid);
    return group_names[gid] = entry ? entry->gr_name : "";
  }

  // Adds the next entry's headers to `pending` (and opens its file); false when there is none.
  bool next_entry() {
    std::optional<detail::WalkedPath> walked = walk->next();
    if (!walked) return false;
    const struct stat& status = walked->status;
    const detail::WalkedPath& planned = *walked;
    TarEntry entry;
    entry.path = planned.archive_name;
    entry.mode = status.st_mode & 07777;
    entry.uid = status.st_uid;
    entry.gid = status.st_gid;
    entry.mtime_seconds = status.st_mtim.tv_sec;
    entry.mtime_nanoseconds = static_cast<std::uint32_t>(status.st_mtim.tv_nsec);
    if (S_ISDIR(status.st_mode)) {
      entry.type = TarEntryType::kDirectory;
      entry.path += '/';
    } else if (S_ISLNK(status.st_mode)) {
      entry.type = TarEntryType::kSymlink;
      entry.link_target = walked->link_target;
    } else if (S_ISREG(status.st_mode) || S_ISCHR(status.st_mode) || S_ISBLK(status.st_mode) ||
               S_ISFIFO(status.st_mode)) {
      entry.type = S_ISREG(status.st_mode)   ? TarEntryType::kFile
                   : S_ISCHR(status.st_mode) ? TarEntryType::kCharDevice
                   : S_ISBLK(status.st_mode) ? TarEntryType::kBlockDevice
                                             : TarEntryType::kFifo;
      if (!S_ISREG(status.st_mode) && !S_ISFIFO(status.st_mode)) {
        entry.device_major = major(status.st_rdev);
        entry.device_minor = minor(status.st_rdev);
      }
    } else {
      if (options.on_skipped) options.on_skipped(planned.disk_path, "socket ignored");
      return true;
    }
    if (entry.path.empty()) entry.path = ".";
    for (const auto& [device, inode] : options.skip_files) {
      if (device == status.st_dev && inode == status.st_ino) {
        if (options.on_skipped) options.on_skipped(planned.disk_path, "is the archive being written; not added");
        return true;
      }
    }

    // Second and later names of a linked inode become hard-link entries.
    if (!S_ISDIR(status.st_mode) && status.st_nlink > 1) {
      const auto [it, first] = hard_links.try_emplace({status.st_dev, status.st_ino}, entry.path);
      if (!first) {
        entry.type = TarEntryType::kHardLink;
        entry.link_target = it->second;
      }
    }
    if (entry.type == TarEntryType::kFile) {
      // Open before writing the header so the size recorded is the size read.
      // O_NONBLOCK: a FIFO put in the file's place since the walk saw it must not block the open
      // (the check below refuses it); reads of a regular file do not heed the flag.
      file_fd = ::open(planned.disk_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
      if (file_fd < 0) throw_system_error("cannot archive", planned.disk_path);
      struct stat& opened = file_opened;
      if (::fstat(file_fd, &opened) != 0) throw_system_error("cannot stat", planned.disk_path);
      if (!S_ISREG(opened.st_mode)) throw Error(ErrorKind::kIo, "changed type while being archived", planned.disk_path);
      // A regular file after all: reads block as they should (some network file systems heed
      // O_NONBLOCK on them and would report EAGAIN).
      (void)::fcntl(file_fd, F_SETFL, ::fcntl(file_fd, F_GETFL) & ~O_NONBLOCK);
      entry.size = static_cast<std::uint64_t>(opened.st_size);
      entry.mtime_seconds = opened.st_mtim.tv_sec;
      entry.mtime_nanoseconds = static_cast<std::uint32_t>(opened.st_mtim.tv_nsec);
      file_path = planned.disk_path;
      file_regions = {{0, entry.size}};
      if (options.sparse && entry.size > 0) {
        auto regions = data_regions(file_fd, entry.size);
        if (regions != file_regions) {
          entry.sparse = true;
          entry.regions = std::move(regions);
          file_regions = entry.regions;
        }
      }
      file_region = 0;
      file_region_done = 0;
      file_left = file_stored = entry.stored_bytes();
      file_padding = detail::tar_padding(file_stored);
    }

    if (options.mtime_seconds) {
      entry.mtime_seconds = *options.mtime_seconds;
      entry.mtime_nanoseconds = 0;
    }
    entry.uname = options.numeric_owner ? "" : user_name(static_cast<uid_t>(entry.uid));
    entry.gname = options.numeric_owner ? "" : group_name(static_cast<gid_t>(entry.gid));
    if (options.owner.id) entry.uid = *options.owner.id;
    if (options.owner.name) entry.uname = *options.owner.name;
    if (options.group.id) entry.gid = *options.group.id;
    if (options.group.name) entry.gname = *options.group.name;
    entry.header_offset = archive_bytes;  // `pending` is empty: everything before was handed out

    pending.clear();
    pending_position = 0;
    detail::append_tar_headers(pending, entry);
    if (entry.sparse) pending.append(as_bytes(detail::sparse_map_data(entry.regions)));
    ++entries;
    if (options.on_entry) options.on_entry(entry);
    if (file_fd >= 0 && file_left == 0) finish_file();
    return true;
  }

  void add_trailer() {
    // Two zero blocks end the archive; the whole is padded to a 10 KiB record, as tar does.
    const std::uint64_t total = archive_bytes + 2 * kTarBlockBytes;
    const std::uint64_t bytes = 2 * kTarBlockBytes + (kTarRecordBytes - total % kTarRecordBytes) % kTarRecordBytes;
    pending.clear();
    pending_position = 0;
    pending.resize(static_cast<std::size_t>(bytes));
    std::memset(pending.data(), 0, pending.size());
    trailer_done = true;
  }

  std::size_t read_file(std::uint8_t* dst, std::size_t max_bytes) {
    while (file_region_done == file_regions[file_region].length) {
      ++file_region;
      file_region_done = 0;
    }
    const TarSparseRegion& region = file_regions[file_region];
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(max_bytes, region.length - file_region_done));
    const off_t at = static_cast<off_t>(region.offset + file_region_done);
    ssize_t got;
    do {
      got = ::pread(file_fd, dst, want, at);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
      const int saved = errno;
      throw Error(ErrorKind::kIo, fmt::format("read failed: {}", std::strerror(saved)), file_path,
                  static_cast<std::uint64_t>(at))
          .set_error_number(saved);
    }
    if (got == 0) {
      throw Error(ErrorKind::kIo,
                  fmt::format("file shrank while being archived: {} of {} bytes read", file_stored - file_left,
                              file_stored),
                  file_path);
    }
    file_region_done += static_cast<std::uint64_t>(got);
    file_left -= static_cast<std::uint64_t>(got);
    if (file_left == 0) {
      finish_file();
      pending.clear();
      pending_position = 0;
      pending.resize(static_cast<std::size_t>(file_padding));
      std::memset(pending.data(), 0, pending.size());
    }
    return static_cast<std::size_t>(got);
  }

  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) {
    std::size_t total = 0;
    while (total < max_bytes) {
      if (pending_position < pending.size()) {
        const std::size_t n = std::min(max_bytes - total, pending.size() - pending_position);
        std::memcpy(dst + total, pending.data() + pending_position, n);
        pending_position += n;
        total += n;
        archive_bytes += n;
        continue;
      }
      if (file_fd >= 0 && file_left > 0) {
        const std::size_t n = read_file(dst + total, max_bytes - total);
        total += n;
        archive_bytes += n;
        continue;
      }
      if (trailer_done) break;
      if (!next_entry()) add_trailer();
    }
    return total;
  }
};

TarWriterSource::TarWriterSource(std::vector<std::string> paths, TarCreateOptions options)
    : state_(std::make_unique<State>()) {
  options.owner = resolve_tar_user(std::move(options.owner));
  options.group = resolve_tar_group(std::move(options.group));
  state_->walk.emplace(std::move(paths), options.directory, options.exclude, options.recursive, options.one_file_system,
                       options.on_prefix_removed);
  state_->options = std::move(options);
}
TarWriterSource::~TarWriterSource() = default;
std::size_t TarWriterSource::read(std::uint8_t* dst, std::size_t max_bytes) { return state_->read(dst, max_bytes); }
const std::string& TarWriterSource::name() const { return state_->name; }
std::uint64_t TarWriterSource::entries() const { return state_->entries; }

namespace {

// "YYYY-MM-DD", or with " HH:MM[:SS[.fraction]]" ('T' for the space), then "Z", "UTC" or an offset
// (+HH, +HHMM, +HH:MM; git log --date=iso writes " +0200"): the seconds since the epoch (a fraction
// dropped), nothing for anything else. Every character is read: trailing text (a zone's name)
// was taken for UTC, and the time was off by the offset.
std::optional<std::int64_t> parse_iso_time(const std::string& text) {
  std::size_t at = 0;
  const auto digits = [&](std::size_t count) -> std::optional<int> {
    if (at + count > text.size()) return std::nullopt;
    int value = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const char c = text[at + i];
      if (c < '0' || c > '9') return std::nullopt;
      value = value * 10 + (c - '0');
    }
    at += count;
    return value;
  };
  const auto take = [&](char c) {
    if (at < text.size() && text[at] == c) return ++at, true;
    return false;
  };
  std::tm time{};
  const auto year = digits(4);
  if (!year || !take('-')) return std::nullopt;
  const auto month = digits(2);
  if (!month || !take('-')) return std::nullopt;
  const auto day = digits(2);
  if (!day || *month < 1 || *month > 12 || *day < 1 || *day > 31) return std::nullopt;
  time.tm_year = *year - 1900;
  time.tm_mon = *month - 1;
  time.tm_mday = *day;
  std::int64_t offset = 0;
  if (text.compare(at, std::string::npos, " UTC") == 0) at = text.size();  // a date alone, in UTC
  if (at < text.size()) {
    if (!take(' ') && !take('T')) return std::nullopt;
    const auto hour = digits(2);
    if (!hour || !take(':')) return std::nullopt;
    const auto minute = digits(2);
    if (!minute || *hour > 23 || *minute > 59) return std::nullopt;
    time.tm_hour = *hour;
    time.tm_min = *minute;
    if (take(':')) {
      const auto second = digits(2);
      if (!second || *second > 60) return std::nullopt;
      time.tm_sec = *second;
      if (take('.') || take(',')) {
        const std::size_t from = at;
        while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
        if (at == from) return std::nullopt;
      }
    }
    take(' ');
    if (text.compare(at, std::string::npos, "UTC") == 0) {
      at = text.size();
    } else if (!take('Z') && !take('z') && at < text.size() && (text[at] == '+' || text[at] == '-')) {
      const int sign = text[at++] == '-' ? -1 : 1;
      const auto hours = digits(2);
      if (!hours || *hours > 23) return std::nullopt;
      int minutes = 0;
      if (take(':') || at < text.size()) {  // "+02:" is no offset
        const auto given = digits(2);
        if (!given || *given > 59) return std::nullopt;
        minutes = *given;
      }
      offset = sign * (*hours * 3600 + minutes * 60);
    }
  }
  if (at != text.size()) return std::nullopt;
  std::tm date = time;  // the date as given, checked at its first second (23:59:60 is the next day's)
  date.tm_hour = date.tm_min = date.tm_sec = 0;
  ::timegm(&date);
  if (date.tm_mday != time.tm_mday || date.tm_mon != time.tm_mon) return std::nullopt;  // 2024-02-31
  return static_cast<std::int64_t>(::timegm(&time)) - offset;
}

}  // namespace

std::int64_t parse_tar_mtime(const std::string& text) {
  if (text.starts_with("@")) {
    try {
      std::size_t used = 0;
      const long long value = std::stoll(text.substr(1), &used);
      if (used == text.size() - 1) return value;
    } catch (const std::exception&) {
    }
  } else if (const auto seconds = parse_iso_time(text)) {
    return *seconds;
  }
  throw Error(ErrorKind::kUsage,
              fmt::format("invalid time '{}' (use @SECONDS, YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]', UTC unless it ends "
                          "with Z or an offset such as +02:00)",
                          text));
}

TarOwner parse_tar_owner(const std::string& text) {
  TarOwner owner;
  const auto parse_id = [&](std::string digits) {
    if (digits.starts_with("+")) digits.erase(0, 1);
    if (digits.empty() || digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string::npos ||
        std::stoull(digits) > 0xfffffffe) {  // uid_t and gid_t hold 0 to 2^32 - 2 (-1: "unchanged")
      throw Error(ErrorKind::kUsage,
                  fmt::format("invalid owner or group '{}' (use NAME, NAME:ID or ID; ids go up to 4294967294)", text));
    }
    return std::stoull(digits);
  };
  const std::size_t colon = text.find(':');
  if (colon != std::string::npos) {
    owner.name = text.substr(0, colon);
    owner.id = parse_id(text.substr(colon + 1));
  } else if (!text.empty() && (text[0] == '+' || std::isdigit(static_cast<unsigned char>(text[0])))) {
    owner.id = parse_id(text);
    owner.name = "";
  } else {
    owner.name = text;
  }
  return owner;
}

CodecOptions tar_codec_options(const std::string& codec, const CodecOptions& options) {
  CodecOptions resolved = CodecRegistry::global().create(codec, options)->options();
  // The codec's chunk size for archives, unless the level's own chunks are larger.
  const auto info = CodecRegistry::global().find(codec);
  if (info && info->archive_chunk_bytes > 0 && options.chunk_bytes == 0) {
    CodecOptions archive = options;
    archive.chunk_bytes = std::max(info->archive_chunk_bytes, resolved.chunk_bytes);
    resolved = CodecRegistry::global().create(codec, archive)->options();
  }
  return resolved;
}

TarOwner resolve_tar_user(TarOwner owner) {
  if (owner.name && !owner.name->empty() && !owner.id) {
    const passwd* entry = ::getpwnam(owner.name->c_str());
    if (entry == nullptr) {
      throw Error(ErrorKind::kUsage, fmt::format("no user '{}' on this system (give NAME:ID to store that name "
                                                 "with an id)",
                                                 printable_name(*owner.name)));
    }
    owner.id = entry->pw_uid;
  }
  return owner;
}

TarOwner resolve_tar_group(TarOwner group) {
  if (group.name && !group.name->empty() && !group.id) {
    const struct group* entry = ::getgrnam(group.name->c_str());
    if (entry == nullptr) {
      throw Error(ErrorKind::kUsage, fmt::format("no group '{}' on this system (give NAME:ID to store that name "
                                                 "with an id)",
                                                 printable_name(*group.name)));
    }
    group.id = entry->gr_gid;
  }
  return group;
}

TarStats create_tar(const std::vector<std::string>& paths, ByteSink& sink, const std::string& codec,
                    const CompressOptions& compress_options, const TarCreateOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  TarWriterSource source(paths, options);
  TarStats stats;
  stats.codec = codec;
  if (codec.empty()) {
    Buffer buffer(1024 * 1024);
    for (;;) {
      const std::size_t n = source.read_full(buffer.data(), buffer.capacity());
      if (n == 0) break;
      sink.write(ByteView(buffer.data(), n));
      stats.archive_bytes += n;
    }
    stats.stored_bytes = stats.archive_bytes;
  } else {
    CompressOptions run = compress_options;
    run.codec = codec;
    run.codec_options = tar_codec_options(codec, compress_options.codec_options);
    const CompressStats compressed = compress(source, sink, run);
    stats.archive_bytes = compressed.input_bytes;
    stats.stored_bytes = compressed.output_bytes;
  }
  stats.entries = source.entries();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace sluice
