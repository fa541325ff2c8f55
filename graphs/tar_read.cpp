// Reading tar archives: the streaming parser (TarReader), compression detection (read_tar) and
// listing.
#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>

#include <fmt/format.h>

#include "graphs/tar_format.h"
#include "sluice/codec.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/tar.h"

namespace sluice {

using detail::kTarBlockBytes;

namespace {
// Extended headers and GNU long names are held in memory: cap them.
constexpr std::uint64_t kMaxMetadataBytes = 8 * 1024 * 1024;
}  // namespace

struct TarReader::State {
  enum class Phase { kHeader, kContent, kMetadata, kPadding, kEnded };

  TarEntryHandler& handler;
  std::string name;
  Phase phase = Phase::kHeader;
  std::uint8_t block[kTarBlockBytes];
  std::size_t block_fill = 0;
  std::uint64_t offset = 0;         // archive bytes consumed
  std::uint64_t left = 0;           // content, metadata or padding bytes still to come
  std::uint64_t padding_after = 0;  // padding once `left` content bytes are done
  std::uint64_t entries = 0;
  bool saw_header = false;

  // Metadata that applies to the next entry (pax 'x', GNU 'L'/'K') or to all ('g').
  char metadata_type = 0;
  std::string metadata;
  std::map<std::string, std::string> pax_local;
  std::map<std::string, std::string> pax_global;
  std::optional<std::string> long_name;
  std::optional<std::string> long_link;
  std::uint64_t pending_header_offset = 0;
  bool has_pending_offset = false;

  TarEntry current;
  std::string last_entry;  // for messages about what came after it

  State(TarEntryHandler& h, std::string n) : handler(h), name(std::move(n)) {}

  Error corrupt(const std::string& what, std::uint64_t at) const {
    const std::string where = last_entry.empty() ? std::string("at the start of the archive")
                                                 : fmt::format("after entry '{}'", last_entry);
    return Error(ErrorKind::kCorruptData, fmt::format("{} at archive byte {} ({})", what, at, where), name);
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
    if (!has_pending_offset) {
      pending_header_offset = at;
      has_pending_offset = true;
    }
    switch (header.typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K':
        if (header.size > kMaxMetadataBytes) throw corrupt(fmt::format("extended header of {} bytes is too large", header.size), at);
        metadata_type = header.typeflag;
        metadata.clear();
        left = header.size;
        padding_after = detail::tar_padding(header.size);
        phase = Phase::kMetadata;
        if (left == 0) on_metadata_done();
        return;
      default:
        break;
    }
    begin_entry(std::move(header), at);
  }

  void on_metadata_done() {
    try {
      switch (metadata_type) {
        case 'x': detail::parse_pax_records(metadata, pax_local); break;
        case 'g':
          detail::parse_pax_records(metadata, pax_global);
          has_pending_offset = false;  // a global header is not part of the next entry
          break;
        case 'L': long_name = std::string(metadata.c_str()); break;
        case 'K': long_link = std::string(metadata.c_str()); break;
      }
    } catch (const Error& e) {
      throw corrupt(e.detail(), offset);
    }
    start_padding();
  }

  void start_padding() {
    left = padding_after;
    padding_after = 0;
    phase = left > 0 ? Phase::kPadding : Phase::kHeader;
  }

  void apply_pax(const std::map<std::string, std::string>& records, std::uint64_t at) {
    for (const auto& record : records) {
      const std::string& key = record.first;
      const std::string& value = record.second;
      const auto bad = [&] { return corrupt(fmt::format("bad pax value for '{}': '{}'", key, value), at); };
      if (key == "path") current.path = value;
      else if (key == "linkpath") current.link_target = value;
      else if (key == "uname") current.uname = value;
      else if (key == "gname") current.gname = value;
      else if (key == "size" || key == "uid" || key == "gid") {
        const auto number = detail::parse_pax_number(value);
        if (!number) throw bad();
        (key == "size" ? current.size : key == "uid" ? current.uid : current.gid) = *number;
      } else if (key == "mtime") {
        const auto time = detail::parse_pax_time(value);
        if (!time) throw bad();
        current.mtime_seconds = time->first;
        current.mtime_nanoseconds = time->second;
      } else if (key.starts_with("GNU.sparse.")) {
        current.unsupported = "GNU sparse file";
        if (key == "GNU.sparse.name") current.path = value;
      }
    }
  }

  void begin_entry(TarEntry header, std::uint64_t at) {
    current = std::move(header);
    current.header_offset = pending_header_offset;
    if (long_name) current.path = *long_name;
    if (long_link) current.link_target = *long_link;
    apply_pax(pax_global, at);
    apply_pax(pax_local, at);
    pax_local.clear();
    long_name.reset();
    long_link.reset();
    has_pending_offset = false;

    // Which types carry content: regular files (and unknown types, read as regular files, as
    // POSIX asks), GNU sparse and dump-directory entries (skipped). Links, directories, devices
    // and FIFOs have none, whatever their size field says.
    bool has_content = true;
    switch (current.typeflag) {
      case '0': case '\0': case '7': current.type = TarEntryType::kFile; break;
      case '1': current.type = TarEntryType::kHardLink; has_content = false; break;
      case '2': current.type = TarEntryType::kSymlink; has_content = false; break;
      case '3': current.type = TarEntryType::kCharDevice; has_content = false; break;
      case '4': current.type = TarEntryType::kBlockDevice; has_content = false; break;
      case '5': current.type = TarEntryType::kDirectory; has_content = false; break;
      case '6': current.type = TarEntryType::kFifo; has_content = false; break;
      case 'S': current.type = TarEntryType::kFile; current.unsupported = "GNU sparse file"; break;
      case 'D': current.type = TarEntryType::kDirectory; break;
      case 'M': current.type = TarEntryType::kFile; current.unsupported = "multi-volume continuation"; break;
      case 'V': current.type = TarEntryType::kFile; current.unsupported = "volume label"; break;
      default: current.type = TarEntryType::kFile; break;
    }
    // v7 archives mark directories by a trailing slash on a regular entry.
    if (current.type == TarEntryType::kFile && current.typeflag == '\0' && current.path.ends_with('/')) {
      current.type = TarEntryType::kDirectory;
      has_content = false;
    }
    if (current.path.empty()) throw corrupt("entry with an empty name", at);
    if (!has_content) current.size = 0;
    ++entries;
    last_entry = current.path;
    handler.begin(current);
    left = current.size;
    padding_after = detail::tar_padding(current.size);
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
        case Phase::kHeader: {
          const std::size_t take = std::min(bytes.size(), kTarBlockBytes - block_fill);
          std::memcpy(block + block_fill, bytes.data(), take);
          block_fill += take;
          offset += take;
          bytes = bytes.subspan(take);
          if (block_fill == kTarBlockBytes) {
            block_fill = 0;
            on_header();
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
      case Phase::kContent:
        throw Error(ErrorKind::kCorruptData,
                    fmt::format("archive truncated in entry '{}' (header at archive byte {}): {} of {} content bytes missing",
                                current.path, current.header_offset, left, current.size),
                    name);
      case Phase::kMetadata:
        throw corrupt("archive truncated inside an extended header", offset);
      case Phase::kPadding:
        return;  // the content is complete; only padding is missing
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

namespace {

// Replays bytes already read (to detect the format) before the rest of the source.
class PrefixedSource final : public ByteSource {
 public:
  PrefixedSource(Buffer prefix, ByteSource& rest) : prefix_(std::move(prefix)), rest_(rest) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    if (position_ < prefix_.size()) {
      const std::size_t n = std::min(max_bytes, prefix_.size() - position_);
      std::memcpy(dst, prefix_.data() + position_, n);
      position_ += n;
      return n;
    }
    return rest_.read(dst, max_bytes);
  }
  const std::string& name() const override { return rest_.name(); }

 private:
  Buffer prefix_;
  std::size_t position_ = 0;
  ByteSource& rest_;
};

class ListHandler final : public TarEntryHandler {
 public:
  explicit ListHandler(const std::function<void(const TarEntry&)>& on_entry) : on_entry_(on_entry) {}
  void begin(const TarEntry& entry) override { on_entry_(entry); }
  void data(ByteView) override {}
  void end() override {}

 private:
  const std::function<void(const TarEntry&)>& on_entry_;
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
  const auto codec = CodecRegistry::global().detect(probe.view());
  if (codec) {
    stats.codec = codec->name;
    PrefixedSource whole(std::move(probe), counted);
    DecompressOptions options;
    options.codec = codec->name;
    options.threads = threads;
    decompress(whole, reader, options);
  } else {
    // A plain archive: feed it through directly.
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
  stats.stored_bytes = counted.bytes();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

TarStats list_tar(ByteSource& source, const std::function<void(const TarEntry&)>& on_entry, int threads) {
  ListHandler handler(on_entry);
  return read_tar(source, handler, threads);
}

namespace {

// "./a//b/" -> "a/b".
std::string normalise_member(const std::string& path) { return detail::join_components(detail::path_components(path)); }

}  // namespace

TarMembers::TarMembers(std::vector<std::string> members) : given_(std::move(members)) {
  for (const auto& member : given_) normalised_.push_back(normalise_member(member));
  matched_.assign(given_.size(), false);
}

bool TarMembers::selects(const std::string& entry_path) {
  if (given_.empty()) return true;
  const std::string path = normalise_member(entry_path);
  bool any = false;
  for (std::size_t i = 0; i < normalised_.size(); ++i) {
    const std::string& member = normalised_[i];
    if (path == member || (path.size() > member.size() && path.starts_with(member) && path[member.size()] == '/')) {
      matched_[i] = true;
      any = true;
    }
  }
  return any;
}

TarExclude::TarExclude(std::vector<std::string> patterns) {
  for (auto& pattern : patterns) {
    while (pattern.size() > 1 && pattern.back() == '/') pattern.pop_back();
    if (!pattern.empty()) patterns_.push_back(std::move(pattern));
  }
}

bool TarExclude::excludes(const std::string& entry_path) const {
  if (patterns_.empty()) return false;
  const std::string path = normalise_member(entry_path);
  if (path.empty()) return false;
  // Each tail of the path from a component on; FNM_LEADING_DIR also matches what lies under it.
  for (std::size_t at = 0;;) {
    for (const auto& pattern : patterns_) {
      if (::fnmatch(pattern.c_str(), path.c_str() + at, FNM_LEADING_DIR) == 0) return true;
    }
    const std::size_t slash = path.find('/', at);
    if (slash == std::string::npos) return false;
    at = slash + 1;
  }
}

std::vector<std::string> TarMembers::not_found() const {
  std::vector<std::string> missing;
  for (std::size_t i = 0; i < given_.size(); ++i) {
    if (!matched_[i]) missing.push_back(given_[i]);
  }
  return missing;
}

std::string tar_codec_for_path(const std::string& path) {
  const auto ends = [&](std::string_view suffix) { return path.ends_with(suffix); };
  if (ends(".tar.gz") || ends(".tgz") || ends(".taz")) return "gzip";
  if (ends(".tar.zst") || ends(".tzst") || ends(".tar.zstd")) return "zstd";
  if (ends(".tar.lz4") || ends(".tlz4")) return "lz4";
  return "";
}

}  // namespace sluice
