// Reading tar archives: the streaming parser (TarReader), compression detection (read_tar) and
// listing.
#include <fnmatch.h>

#include <climits>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "archives/tar_format.h"
#include "sluice/codec.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/tar.h"

namespace sluice {

using detail::kTarBlockBytes;

namespace {

// Extended headers and GNU long names are held in memory until their entry: the most they may hold
// together, whatever the sequence of headers (each header's records count while they are parsed).
constexpr std::uint64_t kMaxMetadataBytes = 8 * 1024 * 1024;

// The pax keywords applied to entries. Records with any other keyword are parsed and dropped, so
// what is kept is at most one value per keyword whatever an archive holds, and applying a global
// header to an entry costs the same for two records or a million.
enum PaxKeyword : std::size_t { kPaxPath, kPaxLinkpath, kPaxUname, kPaxGname, kPaxSize, kPaxUid, kPaxGid, kPaxMtime, kPaxKeywords };
constexpr std::array<std::string_view, kPaxKeywords> kPaxKeywordNames{"path", "linkpath", "uname", "gname",
                                                                      "size", "uid",      "gid",   "mtime"};

// A sparse file's map from pax records: 0.0 (GNU.sparse.offset/numbytes pairs), 0.1
// (GNU.sparse.map) or 1.0 (GNU.sparse.major=1: the map is at the start of the data).
struct PaxSparse {
  bool any = false;
  bool map_in_data = false;  // 1.0
  bool unreadable = false;   // a number that could not be read: the entry is not expanded
  std::optional<std::uint64_t> real_size;
  std::optional<std::string> name;
  std::vector<TarSparseRegion> regions;

  std::uint64_t bytes() const { return (name ? name->size() : 0) + regions.size() * sizeof(TarSparseRegion); }
};

// The values of those keywords from the local ('x') or global ('g') headers. In the local ones an
// empty value means the keyword was deleted (POSIX): the global value no longer applies, the ustar
// field does.
struct PaxValues {
  std::array<std::optional<std::string>, kPaxKeywords> values;
  PaxSparse sparse;  // local headers only

  std::uint64_t bytes() const {
    std::uint64_t total = sparse.bytes();
    for (const auto& value : values) total += value ? value->size() : 0;
    return total;
  }
  void clear() {
    for (auto& value : values) value.reset();
    sparse = PaxSparse{};
  }
};

bool valid_pax_value(PaxKeyword keyword, std::string_view value) {
  switch (keyword) {
    case kPaxSize:
    case kPaxUid:
    case kPaxGid: return detail::parse_pax_number(value).has_value();
    case kPaxMtime: return detail::parse_pax_time(value).has_value();
    default: return true;
  }
}

// The most regions a sparse map may have: what the metadata budget holds.
constexpr std::size_t kMaxSparseRegions = kMaxMetadataBytes / sizeof(TarSparseRegion);

// Adds the records of a GNU.sparse.* keyword to `sparse`.
void add_sparse_record(PaxSparse& sparse, std::string_view key, std::string_view value) {
  sparse.any = true;
  const auto number = [&](std::string_view text) {
    const auto parsed = detail::parse_pax_number(text);
    if (!parsed) sparse.unreadable = true;
    return parsed.value_or(0);
  };
  if (key == "GNU.sparse.name") {
    sparse.name = std::string(value);
  } else if (key == "GNU.sparse.size" || key == "GNU.sparse.realsize") {
    sparse.real_size = number(value);
  } else if (key == "GNU.sparse.major") {
    sparse.map_in_data = number(value) == 1;
  } else if (key == "GNU.sparse.offset") {  // 0.0: a pair, offset first
    sparse.regions.push_back({number(value), 0});
  } else if (key == "GNU.sparse.numbytes") {
    if (sparse.regions.empty()) sparse.unreadable = true;
    else sparse.regions.back().length = number(value);
  } else if (key == "GNU.sparse.map") {  // 0.1: "offset,length,offset,length,..."
    std::optional<std::uint64_t> offset;  // of a pair whose length is still to come
    for (std::size_t start = 0; start <= value.size() && !sparse.unreadable;) {
      std::size_t comma = value.find(',', start);
      if (comma == std::string_view::npos) comma = value.size();
      const std::uint64_t n = number(value.substr(start, comma - start));
      if (!offset) {
        offset = n;
      } else {
        sparse.regions.push_back({*offset, n});
        offset.reset();
      }
      start = comma + 1;
    }
    if (offset) sparse.unreadable = true;
  }
  // The regions count against the metadata budget as they come, not only once the header is read.
  if (sparse.regions.size() > kMaxSparseRegions) {
    sparse.unreadable = true;
    sparse.regions.clear();
    sparse.regions.shrink_to_fit();
  }
}

// Whether `regions` fit a file of `size` in order without overlapping, and store `stored` bytes.
bool valid_sparse_map(const std::vector<TarSparseRegion>& regions, std::uint64_t size, std::uint64_t stored) {
  std::uint64_t end = 0;
  std::uint64_t total = 0;
  for (const auto& region : regions) {
    if (region.offset < end || region.length > size || region.offset > size - region.length) return false;
    end = region.offset + region.length;
    total += region.length;
  }
  return total == stored;
}

}  // namespace

struct TarReader::State {
  // kHeader, kSparseExtension and kSparseMap read whole blocks into `block`.
  enum class Phase { kHeader, kSparseExtension, kSparseMap, kContent, kMetadata, kPadding, kEnded };

  TarEntryHandler& handler;
  std::string name;
  Phase phase = Phase::kHeader;
  std::uint8_t block[kTarBlockBytes];
  std::size_t block_fill = 0;
  std::uint64_t offset = 0;         // archive bytes consumed
  std::uint64_t left = 0;           // content, metadata or padding bytes still to come
  std::uint64_t padding_after = 0;  // padding once `left` content bytes are done
  std::uint64_t entries = 0;
  std::uint64_t warnings = 0;
  bool saw_header = false;

  // Metadata that applies to the next entry (pax 'x', GNU 'L'/'K') or to all ('g').
  char metadata_type = 0;
  std::uint64_t metadata_offset = 0;  // archive byte of the metadata header
  std::string metadata;
  PaxValues pax_local;
  PaxValues pax_global;
  std::optional<std::string> long_name;
  std::optional<std::string> long_link;
  std::uint64_t pending_header_offset = 0;
  bool has_pending_offset = false;

  TarEntry current;
  std::uint64_t stored = 0;  // the current entry's bytes in the archive (its header's size)
  // A sparse entry's map while it is read: from old GNU extension blocks, or (pax 1.0) decimal
  // numbers at the start of the data: the count, then an offset and a length per region.
  detail::OldGnuSparse sparse_map;
  bool map_count_read = false;
  std::uint64_t map_numbers_left = 0;  // 1.0: numbers still to read (the count included)
  std::uint64_t map_number = 0;
  std::size_t map_digits = 0;
  std::string last_entry;  // for messages about what came after it

  State(TarEntryHandler& h, std::string n) : handler(h), name(std::move(n)) {}

  Error corrupt(const std::string& what, std::uint64_t at) const {
    // "before the first entry": a first entry's data or metadata can be megabytes long ("at the
    // start of the archive" then followed "at archive byte 3545088").
    const std::string where = last_entry.empty() ? std::string("before the first entry")
                                                 : fmt::format("after entry '{}'", printable_name(last_entry));
    return Error(ErrorKind::kCorruptData, fmt::format("{} at archive byte {} ({})", what, at, where), name);
  }

  void warn(const std::string& what, std::uint64_t at) {
    ++warnings;
    handler.warning(fmt::format("{}: {} at archive byte {}", printable_name(name), what, at));
  }

  // Bytes of metadata held for the next entry.
  std::uint64_t held_metadata() const {
    return pax_local.bytes() + pax_global.bytes() + (long_name ? long_name->size() : 0) +
           (long_link ? long_link->size() : 0) + sparse_map.regions.size() * sizeof(TarSparseRegion);
  }

  void on_block() {
    switch (phase) {
      case Phase::kSparseExtension: return on_sparse_extension();
      case Phase::kSparseMap: return on_sparse_map_block();
      default: return on_header();
    }
  }

  void on_header() {
    const std::uint64_t at = offset - kTarBlockBytes;
    switch (detail::check_tar_header(block)) {
      case detail::HeaderCheck::kZero:
        // The end-of-archive marker (two zero blocks; one is accepted, as GNU tar does). Whatever
        // follows (record padding) is ignored.
        if (has_pending_offset) throw corrupt("archive ends after an extended header without its entry", at);
        phase = Phase::kEnded;
        return;
      case detail::HeaderCheck::kBadChecksum:
        throw corrupt(saw_header ? "corrupt tar header (bad checksum)" : "not a tar archive (bad header checksum)", at);
      case detail::HeaderCheck::kValid:
        break;
    }
    saw_header = true;
    TarEntry header;
    try {
      header = detail::decode_tar_header(block);
    } catch (const Error& e) {
      throw corrupt(e.detail(), at);
    }
    // Solaris tar's extended header, from before POSIX named it 'x': the same records for the
    // next entry, as GNU tar, bsdtar and Python's tarfile read them.
    if (header.typeflag == 'X') header.typeflag = 'x';
    // A volume label (GNU tar -V) names the archive, not a file: passed over with its data (GNU
    // tar creates nothing for it either; bsdtar does not list it).
    if (header.typeflag == 'V') {
      left = header.size + detail::tar_padding(header.size);
      phase = left > 0 ? Phase::kPadding : Phase::kHeader;
      return;
    }
    // Where the next entry's headers begin: its first local metadata header, or its own (a
    // global header belongs to no entry).
    if (!has_pending_offset && header.typeflag != 'g') {
      pending_header_offset = at;
      has_pending_offset = true;
    }
    switch (header.typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K':
        if (header.size > kMaxMetadataBytes - std::min(kMaxMetadataBytes, held_metadata())) {
          throw corrupt(fmt::format("extended header of {} bytes is too large (the headers before an entry may "
                                    "hold {} bytes in all)",
                                    header.size, kMaxMetadataBytes),
                        at);
        }
        metadata_type = header.typeflag;
        metadata_offset = at;
        metadata.clear();
        if (metadata.capacity() > 1024 * 1024) std::string().swap(metadata);
        metadata.reserve(static_cast<std::size_t>(header.size));
        left = header.size;
        padding_after = detail::tar_padding(header.size);
        phase = Phase::kMetadata;
        if (left == 0) on_metadata_done();
        return;
      default:
        break;
    }
    prepare_entry(std::move(header));
  }

  // One pax record: kept if its keyword is applied to entries and its value can be read.
  void on_pax_record(PaxValues& values, bool global, std::string_view key, std::string_view value) {
    if (key.starts_with("GNU.sparse.")) {
      if (!global) add_sparse_record(values.sparse, key, value);
      return;
    }
    const auto found = std::find(kPaxKeywordNames.begin(), kPaxKeywordNames.end(), key);
    if (found == kPaxKeywordNames.end()) return;
    const auto keyword = static_cast<PaxKeyword>(found - kPaxKeywordNames.begin());
    if (value.empty()) {
      // Deleted: from a global header, the keyword no longer applies; from a local one, the
      // global value does not apply to this entry.
      if (global) values.values[keyword].reset();
      else values.values[keyword].emplace();
      return;
    }
    if (!valid_pax_value(keyword, value)) {
      warn(fmt::format("ignoring the pax value {}='{}' (unreadable; the ustar field applies)", key,
                       printable_name(value.substr(0, 64))),
           metadata_offset);
      return;
    }
    values.values[keyword] = std::string(value);
  }

  void on_metadata_done() {
    try {
      switch (metadata_type) {
        case 'x':
        case 'g': {
          const bool global = metadata_type == 'g';
          PaxValues& values = global ? pax_global : pax_local;
          detail::parse_pax_records(metadata, [&](std::string_view key, std::string_view value) {
            on_pax_record(values, global, key, value);
          });
          break;
        }
        case 'L': long_name = std::string(metadata.c_str()); break;
        case 'K': long_link = std::string(metadata.c_str()); break;
      }
    } catch (const Error& e) {
      throw corrupt(e.detail(), metadata_offset);  // the header's byte, not where its data ends
    }
    metadata.clear();
    check_held_metadata(metadata_offset);
    start_padding();
  }

  void check_held_metadata(std::uint64_t at) const {
    if (held_metadata() > kMaxMetadataBytes) {
      throw corrupt(fmt::format("extended headers hold more than {} bytes for one entry", kMaxMetadataBytes), at);
    }
  }

  void start_padding() {
    left = padding_after;
    padding_after = 0;
    phase = left > 0 ? Phase::kPadding : Phase::kHeader;
  }

  // The value of `keyword` for the current entry: the local header's, else the global header's;
  // nullptr when neither sets it (or the local header deleted it).
  const std::string* pax_value(PaxKeyword keyword) const {
    const auto& local = pax_local.values[keyword];
    if (local) return local->empty() ? nullptr : &*local;
    const auto& global = pax_global.values[keyword];
    return global ? &*global : nullptr;
  }

  void apply_pax() {
    if (const auto* value = pax_value(kPaxPath)) current.path = *value;
    if (const auto* value = pax_value(kPaxLinkpath)) current.link_target = *value;
    if (const auto* value = pax_value(kPaxUname)) current.uname = *value;
    if (const auto* value = pax_value(kPaxGname)) current.gname = *value;
    if (const auto* value = pax_value(kPaxSize)) current.size = *detail::parse_pax_number(*value);
    if (const auto* value = pax_value(kPaxUid)) current.uid = *detail::parse_pax_number(*value);
    if (const auto* value = pax_value(kPaxGid)) current.gid = *detail::parse_pax_number(*value);
    if (const auto* value = pax_value(kPaxMtime)) {
      const auto time = *detail::parse_pax_time(*value);
      current.mtime_seconds = time.first;
      current.mtime_nanoseconds = time.second;
    }
    if (pax_local.sparse.name) current.path = *pax_local.sparse.name;
  }

  // The entry whose header was just read: its fields, then its sparse map if it has one, then
  // start_entry().
  void prepare_entry(TarEntry header) {
    current = std::move(header);
    current.header_offset = pending_header_offset;
    if (long_name) current.path = *long_name;
    if (long_link) current.link_target = *long_link;
    apply_pax();
    // A pax size record gives links, devices and FIFOs content, which GNU tar and bsdtar both
    // read as data (they differ on a size in the ustar field alone, and on directories).
    const bool pax_size = pax_value(kPaxSize) != nullptr;
    const PaxSparse pax_sparse = std::move(pax_local.sparse);
    pax_local.clear();
    long_name.reset();
    long_link.reset();
    has_pending_offset = false;

    // Which types carry content: regular files (and unknown types, read as regular files, as
    // POSIX asks), GNU sparse and dump-directory entries (skipped). Links, directories, devices
    // and FIFOs have none, whatever their ustar size field says.
    bool has_content = true;
    switch (current.typeflag) {
      case '0': case '\0': case '7': current.type = TarEntryType::kFile; break;
      case '1': current.type = TarEntryType::kHardLink; has_content = pax_size; break;
      case '2': current.type = TarEntryType::kSymlink; has_content = pax_size; break;
      case '3': current.type = TarEntryType::kCharDevice; has_content = pax_size; break;
      case '4': current.type = TarEntryType::kBlockDevice; has_content = pax_size; break;
      case '5': current.type = TarEntryType::kDirectory; has_content = false; break;
      case '6': current.type = TarEntryType::kFifo; has_content = pax_size; break;
      case 'S': current.type = TarEntryType::kFile; break;
      case 'D': current.type = TarEntryType::kDirectory; break;
      case 'M':
        current.type = TarEntryType::kFile;
        current.unsupported = "multi-volume continuation";
        break;
      default:
        current.type = TarEntryType::kFile;
        break;  // TarEntry::of_unknown_type()
    }
    // v7 archives mark directories by a trailing slash on a regular entry, of type '\0', or '0'
    // with no content (GNU tar and bsdtar read both so; an empty '0' was a file, and the entries
    // under it were refused). A '0' with content is a file, as tarfile reads it and writes it.
    // A '\0' whose size counts bytes: they are read as headers, as GNU tar's -x and bsdtar read
    // them (GNU tar's -t reads past them).
    if (current.type == TarEntryType::kFile &&
        (current.typeflag == '\0' || (current.typeflag == '0' && current.size == 0)) && current.path.ends_with('/')) {
      current.type = TarEntryType::kDirectory;
      has_content = false;
    }
    if (!has_content) current.size = 0;
    stored = current.size;
    const std::uint64_t at = current.header_offset;

    sparse_map = {};
    if (current.typeflag == 'S') {
      try {
        detail::decode_old_gnu_sparse(block, false, sparse_map);
      } catch (const Error& e) {
        throw corrupt(e.detail(), at);
      }
      if (sparse_map.extended) {
        phase = Phase::kSparseExtension;
        return;
      }
      return start_sparse_entry(sparse_map.real_size);
    }
    if (pax_sparse.any && current.type == TarEntryType::kFile) {
      if (pax_sparse.unreadable || !pax_sparse.real_size) {
        current.unsupported = "unreadable sparse map";
        return start_entry();
      }
      sparse_map.regions = pax_sparse.regions;
      if (pax_sparse.map_in_data) {
        // 1.0: the map is read from the data's first blocks, which the stored size counts.
        sparse_map.real_size = *pax_sparse.real_size;
        sparse_map.regions.clear();
        map_count_read = false;
        map_numbers_left = 1;
        map_number = 0;
        map_digits = 0;
        if (stored < kTarBlockBytes) {
          current.unsupported = "sparse map missing from the data";
          return start_entry();
        }
        phase = Phase::kSparseMap;
        return;
      }
      return start_sparse_entry(*pax_sparse.real_size);
    }
    start_entry();
  }

  // An old GNU extension block: 21 more regions.
  void on_sparse_extension() {
    try {
      detail::decode_old_gnu_sparse(block, true, sparse_map);
    } catch (const Error& e) {
      throw corrupt(e.detail(), offset - kTarBlockBytes);
    }
    check_held_metadata(offset - kTarBlockBytes);
    if (!sparse_map.extended) start_sparse_entry(sparse_map.real_size);
  }

  // A block of a 1.0 map: decimal numbers, each ended by a newline; the map ends with the block
  // that holds its last number.
  void on_sparse_map_block() {
    stored -= kTarBlockBytes;
    for (std::size_t i = 0; i < kTarBlockBytes && map_numbers_left > 0; ++i) {
      const std::uint8_t c = block[i];
      if (c >= '0' && c <= '9' && map_digits < 19) {
        map_number = map_number * 10 + (c - '0');
        ++map_digits;
        continue;
      }
      if (c != '\n' || map_digits == 0) {
        current.unsupported = "unreadable sparse map";
        sparse_map.regions.clear();
        return start_entry();
      }
      if (!map_count_read) {
        // The count: an offset and a length follow for each region.
        map_count_read = true;
        if (map_number > kMaxMetadataBytes / sizeof(TarSparseRegion)) {
          throw corrupt(fmt::format("sparse map of {} regions is too large", map_number), current.header_offset);
        }
        map_numbers_left = 2 * map_number + 1;
      } else if (map_numbers_left % 2 == 0) {
        sparse_map.regions.push_back({map_number, 0});
      } else {
        sparse_map.regions.back().length = map_number;
      }
      --map_numbers_left;
      map_number = 0;
      map_digits = 0;
    }
    if (map_numbers_left == 0) return start_sparse_entry(sparse_map.real_size);
    if (stored < kTarBlockBytes) {
      current.unsupported = "sparse map runs past the data";
      sparse_map.regions.clear();
      return start_entry();
    }
  }

  // A sparse entry whose map is known: checked against the bytes stored, then started. A map that
  // does not fit is reported through `unsupported`, and the data passed on as stored.
  void start_sparse_entry(std::uint64_t real_size) {
    if (valid_sparse_map(sparse_map.regions, real_size, stored)) {
      current.sparse = true;
      current.regions = std::move(sparse_map.regions);
      current.size = real_size;
    } else {
      current.sparse = false;
      current.regions.clear();
      current.unsupported = "sparse map does not match the data stored";
    }
    sparse_map = {};
    start_entry();
  }

  void start_entry() {
    if (!current.sparse) current.size = stored;
    if (!current.unsupported.empty()) {
      current.sparse = false;
      current.regions.clear();
      current.size = stored;
    }
    ++entries;
    last_entry = current.path;
    handler.begin(current);
    left = stored;
    padding_after = detail::tar_padding(stored);
    if (left == 0) {
      handler.end();
      start_padding();
    } else {
      phase = Phase::kContent;
    }
  }

  void write(ByteView bytes) {
    while (!bytes.empty()) {
      switch (phase) {
        case Phase::kEnded:
          offset += bytes.size();
          return;
        case Phase::kHeader:
        case Phase::kSparseExtension:
        case Phase::kSparseMap: {
          const std::size_t take = std::min(bytes.size(), kTarBlockBytes - block_fill);
          std::memcpy(block + block_fill, bytes.data(), take);
          block_fill += take;
          offset += take;
          bytes = bytes.subspan(take);
          if (block_fill == kTarBlockBytes) {
            block_fill = 0;
            on_block();
          }
          break;
        }
        case Phase::kContent: {
          const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), left));
          handler.data(bytes.first(take));
          offset += take;
          left -= take;
          bytes = bytes.subspan(take);
          if (left == 0) {
            handler.end();
            start_padding();
          }
          break;
        }
        case Phase::kMetadata: {
          const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), left));
          metadata.append(reinterpret_cast<const char*>(bytes.data()), take);
          offset += take;
          left -= take;
          bytes = bytes.subspan(take);
          if (left == 0) on_metadata_done();
          break;
        }
        case Phase::kPadding: {
          const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), left));
          offset += take;
          left -= take;
          bytes = bytes.subspan(take);
          if (left == 0) phase = Phase::kHeader;
          break;
        }
      }
    }
  }

  void finish() {
    switch (phase) {
      case Phase::kEnded:
        return;
      case Phase::kHeader:
        if (block_fill != 0) throw corrupt("archive truncated inside a header", offset - block_fill);
        if (has_pending_offset) throw corrupt("archive ends after an extended header without its entry", offset);
        if (!saw_header) throw corrupt("not a tar archive (empty)", 0);
        return;  // no end-of-archive marker: accepted, as GNU tar and bsdtar do
      case Phase::kSparseExtension:
      case Phase::kSparseMap:
        throw corrupt(fmt::format("archive truncated in the sparse map of entry '{}'", printable_name(current.path)),
                      offset - block_fill);
      case Phase::kContent:
        throw Error(ErrorKind::kCorruptData,
                    fmt::format("archive truncated in entry '{}' (header at archive byte {}): {} of {} content bytes missing",
                                printable_name(current.path), current.header_offset, left, stored),
                    name);
      case Phase::kMetadata:
        throw corrupt("archive truncated inside an extended header", offset);
      case Phase::kPadding:
        // The content is complete and only padding is missing, unless what ended was an extended
        // header whose entry never came.
        if (has_pending_offset) throw corrupt("archive ends after an extended header without its entry", offset);
        return;
    }
  }
};

TarReader::TarReader(TarEntryHandler& handler, std::string name)
    : state_(std::make_unique<State>(handler, std::move(name))) {}
TarReader::~TarReader() = default;
void TarReader::write(ByteView bytes) { state_->write(bytes); }
const std::string& TarReader::name() const { return state_->name; }
void TarReader::finish() { state_->finish(); }
std::uint64_t TarReader::entries() const { return state_->entries; }
std::uint64_t TarReader::bytes_parsed() const { return state_->offset; }
std::uint64_t TarReader::warnings() const { return state_->warnings; }
std::string TarReader::current_entry() const {
  const State& state = *state_;
  if (state.phase != State::Phase::kContent && state.phase != State::Phase::kSparseMap &&
      state.phase != State::Phase::kSparseExtension) {
    return {};
  }
  return fmt::format("entry '{}' (header at archive byte {})", printable_name(state.current.path),
                     state.current.header_offset);
}
void TarReader::warn(const std::string& message) {
  ++state_->warnings;
  state_->handler.warning(fmt::format("{}: {}", printable_name(state_->name), message));
}

bool TarEntry::of_unknown_type() const {
  const std::string_view regular(
      "0\0"
      "7SM",
      5);  // types read as regular files that tars know
  return type == TarEntryType::kFile && regular.find(typeflag) == std::string_view::npos;
}

std::uint64_t TarEntry::stored_bytes() const {
  if (!sparse) return size;
  std::uint64_t total = 0;
  for (const auto& region : regions) total += region.length;
  return total;
}

namespace {

// Replays bytes already read from `rest` (to detect the format) before the rest of it. The
// prefix being the bytes just before rest's position, a file behind `rest` is this source's too,
// from where the replay stands.
class PrefixedSource final : public ByteSource {
 public:
  PrefixedSource(Buffer prefix, ByteSource& rest) : prefix_(std::move(prefix)), rest_(rest) {}
  std::optional<SourceFile> file() const override {
    auto file = rest_.file();
    if (file) file->position -= prefix_.size() - position_;
    return file;
  }
  void seek(std::uint64_t offset) override {
    position_ = prefix_.size();
    rest_.seek(offset);
  }
  std::optional<std::uint64_t> size() const override { return rest_.size(); }
  bool random_access() const override { return rest_.random_access(); }
  std::size_t read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) override {
    return rest_.read_at(offset, dst, max_bytes);
  }
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    if (position_ < prefix_.size()) {
      const std::size_t n = std::min(max_bytes, prefix_.size() - position_);
      std::memcpy(dst, prefix_.data() + position_, n);
      position_ += n;
      return n;
    }
    return rest_.read(dst, max_bytes);
  }
  bool wait_readable(std::chrono::milliseconds timeout) override {
    return position_ < prefix_.size() || rest_.wait_readable(timeout);
  }
  const std::string& name() const override { return rest_.name(); }

 private:
  Buffer prefix_;
  std::size_t position_ = 0;
  ByteSource& rest_;
};

// Passes what is written on to the tar reader, noting whether the reader failed: a failure of
// the decompression beneath is then told apart from the reader's own.
class ReaderSink final : public ByteSink {
 public:
  explicit ReaderSink(TarReader& reader) : reader_(reader) {}
  void write(ByteView bytes) override {
    try {
      reader_.write(bytes);
    } catch (...) {
      failed = true;
      throw;
    }
  }
  const std::string& name() const override { return reader_.name(); }
  bool failed = false;

 private:
  TarReader& reader_;
};

class ListHandler final : public TarEntryHandler {
 public:
  ListHandler(const std::function<void(const TarEntry&)>& on_entry,
              const std::function<void(const std::string&)>& on_warning)
      : on_entry_(on_entry), on_warning_(on_warning) {}
  void begin(const TarEntry& entry) override { on_entry_(entry); }
  void data(ByteView) override {}
  void end() override {}
  void warning(const std::string& message) override {
    if (on_warning_) on_warning_(message);
  }

 private:
  const std::function<void(const TarEntry&)>& on_entry_;
  const std::function<void(const std::string&)>& on_warning_;
};

}  // namespace

TarStats read_tar(ByteSource& source, TarEntryHandler& handler, int threads) {
  const auto start = std::chrono::steady_clock::now();
  TarStats stats;
  CountingSource counted(source);
  TarReader reader(handler, source.name());
  constexpr std::size_t kProbeBytes = 64 * 1024;
  Buffer probe(kProbeBytes);
  probe.resize(counted.read_full(probe.data(), kProbeBytes));
  // A plain archive whose first name begins with a codec's magic ("\x1f\x8b\x08name") is a tar
  // still: a valid header checksum at byte 0 says so, as GNU tar and bsdtar read it (it was taken
  // for a corrupt gzip member).
  const bool plain_header =
      probe.size() >= detail::kTarBlockBytes && detail::check_tar_header(probe.data()) == detail::HeaderCheck::kValid;
  const auto codec = plain_header ? std::nullopt : CodecRegistry::global().detect(probe.view());
  if (codec) {
    stats.codec = codec->name;
    PrefixedSource whole(std::move(probe), counted);
    DecompressOptions options;
    options.codec = codec->name;
    options.threads = threads;
    ReaderSink to_reader(reader);
    try {
      decompress(whole, to_reader, options);
    } catch (const Error& e) {
      // Damage or truncation of the compressed stream found while an entry was read: that
      // entry is left incomplete (a cut-short archive: those before it are whole), so the
      // message names it. (A checksum that fails at the end covers more than that entry.)
      if (e.kind() == ErrorKind::kCorruptData && !to_reader.failed) {
        if (const std::string entry = reader.current_entry(); !entry.empty()) {
          throw Error(e.kind(), fmt::format("while reading {}: {}", entry, e.detail()), e.path(), e.offset());
        }
      }
      // The archive before the garbage was decoded and parsed in full: finish it, then warn (GNU
      // tar and bsdtar extract every entry).
      if (e.kind() != ErrorKind::kTrailingGarbage) throw;
      reader.finish();
      reader.warn(fmt::format("{} (at byte {} of the compressed file); ignored", e.detail(), e.offset().value_or(0)));
    }
  } else {
    // A plain archive: feed it through directly. A stream in a format sluice does not read is
    // named as what it is, not as a tar with a bad header.
    if (probe.size() < detail::kTarBlockBytes ||
        detail::check_tar_header(probe.data()) != detail::HeaderCheck::kValid) {
      if (const std::string format = foreign_format(probe.view()); !format.empty()) {
        throw Error(ErrorKind::kCorruptData,
                    fmt::format("not a tar archive: this is {} (tar archives are read plain or compressed with {}{})",
                                format, fmt::join(CodecRegistry::global().names(), ", "),
                                format.find("zip") != std::string::npos ? "; zip archives with sluice zip" : ""),
                    source.name(), 0);
      }
    }
    reader.write(probe.view());
    Buffer buffer(1024 * 1024);
    for (;;) {
      const std::size_t n = counted.read(buffer.data(), buffer.capacity());
      if (n == 0) break;
      reader.write(ByteView(buffer.data(), n));
    }
  }
  reader.finish();
  stats.entries = reader.entries();
  stats.archive_bytes = reader.bytes_parsed();
  stats.warnings = reader.warnings();
  stats.stored_bytes = counted.bytes();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

TarStats list_tar(ByteSource& source, const std::function<void(const TarEntry&)>& on_entry, int threads,
                  const std::function<void(const std::string& message)>& on_warning) {
  ListHandler handler(on_entry, on_warning);
  return read_tar(source, handler, threads);
}

namespace {

// "./a//b/" -> "a/b".
std::string normalise_member(const std::string& path) { return detail::normal_path(path); }

}  // namespace

TarMembers::TarMembers(std::vector<std::string> members, bool wildcards) : given_(std::move(members)) {
  for (const auto& member : given_) {
    const bool pattern = wildcards && member.find_first_of("*?[\\") != std::string::npos;
    normalised_.push_back(pattern ? member : normalise_member(member));  // a pattern as it is given
    patterns_.push_back(pattern);
  }
  matched_.assign(given_.size(), false);
}

bool TarMembers::selects(const std::string& entry_path, bool directory) {
  if (given_.empty()) return true;
  const std::string path = normalise_member(entry_path);
  bool any = false;
  for (std::size_t i = 0; i < normalised_.size(); ++i) {
    const std::string& member = normalised_[i];
    const bool hit = patterns_[i] ? ::fnmatch(member.c_str(), (directory ? path + '/' : path).c_str(), 0) == 0
                                  : path == member || (path.size() > member.size() && path.starts_with(member) &&
                                                       path[member.size()] == '/');
    if (hit) {
      matched_[i] = true;
      any = true;
    }
  }
  return any;
}

TarExclude::TarExclude(std::vector<std::string> patterns) {
  for (auto& pattern : patterns) {
    // "./" matches nothing in GNU tar (where "." matches the top of an archive of "." and all
    // under it); with its slash taken off below, it left out everything.
    if (pattern.size() > 1 && pattern.find_first_not_of('/', 1) == std::string::npos && pattern[0] == '.') continue;
    while (pattern.size() > 1 && pattern.back() == '/') pattern.pop_back();
    if (!pattern.empty()) patterns_.push_back(std::move(pattern));
  }
}

bool TarExclude::excludes(const std::string& entry_path) const {
  if (patterns_.empty()) return false;
  const std::string path = normalise_member(entry_path);
  if (path.empty()) return false;
  // Each tail of the path from a component on; FNM_LEADING_DIR also matches what lies under it.
  // The name as stored too, as GNU tar matches it: "./a" and "*/top" match "./a" and "./top" of
  // an archive of "." (normalised to "a" and "top" alone, neither matched, and what the user
  // left out was archived).
  if (path.size() < PATH_MAX) {
    const auto any_tail = [&](const std::string& name) {
      for (std::size_t at = 0;;) {
        if (matches_at(name, at, name.size())) return true;
        const std::size_t slash = name.find('/', at);
        if (slash == std::string::npos) return false;
        at = slash + 1;
      }
    };
    if (any_tail(path)) return true;
    // Whole only: its tails past a leading "./" are the normalised name's (each tail of "././...
    // ./f" tried took a minute for 3,000 such names).
    const std::string stored = detail::without_trailing_slashes(entry_path);  // "./a/" is the directory "./a"
    return stored != path && stored.size() < PATH_MAX && matches_at(stored, 0, stored.size());
  }
  // A longer name (it cannot be created, but it can be listed or written to stdout): each tail
  // costs its length, and 8 MiB of "a/" would take hours. Matched whole, then by the tails that
  // start in its first and last PATH_MAX bytes, each as far as its last '/' within PATH_MAX bytes
  // (what lies under a match still matches: "node_modules/<5,000 bytes>/f" is excluded by
  // "node_modules").
  if (matches_at(path, 0, path.size())) return true;
  const auto tails = [&](std::size_t from, std::size_t to) {
    for (std::size_t at = from; at < to;) {
      const std::size_t limit = std::min(path.size(), at + PATH_MAX);
      const std::size_t end = limit == path.size() ? limit : path.rfind('/', limit);
      if (end != std::string::npos && end > at && matches_at(path, at, end)) return true;
      const std::size_t slash = path.find('/', at);
      if (slash == std::string::npos) return false;
      at = slash + 1;
    }
    return false;
  };
  const std::size_t last = path.size() - PATH_MAX;
  return tails(0, PATH_MAX) || tails(path.find('/', last) == std::string::npos ? path.size() : path.find('/', last) + 1,
                                      path.size());
}

// Whether a pattern matches path[at, end) (as FNM_LEADING_DIR does: it or what lies under it).
bool TarExclude::matches_at(const std::string& path, std::size_t at, std::size_t end) const {
  const std::string tail = end == path.size() ? std::string() : path.substr(at, end - at);
  const char* text = end == path.size() ? path.c_str() + at : tail.c_str();
  for (const auto& pattern : patterns_) {
    if (::fnmatch(pattern.c_str(), text, FNM_LEADING_DIR) == 0) return true;
  }
  return false;
}

std::vector<std::string> TarMembers::not_found() const {
  std::vector<std::string> missing;
  for (std::size_t i = 0; i < given_.size(); ++i) {
    if (!matched_[i]) missing.push_back(given_[i]);
  }
  return missing;
}

std::string tar_codec_for_path(const std::string& path) {
  const auto info = CodecRegistry::global().by_tar_name(path);
  return info ? info->name : std::string();
}

}  // namespace sluice
