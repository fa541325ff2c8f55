// extract_tar(): a tar archive read into the safe extractor (archives/extractor.h).
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_set>

#include "archives/extractor.h"
#include "archives/name_key.h"
#include "archives/tar_format.h"
#include "sluice/codec.h"
#include "sluice/stream.h"
#include "sluice/tar.h"

namespace sluice {

namespace {

// Gives the extractor each file entry under its compressed name, its data through a Compressor.
// Entries are picked by their names in the archive (members, exclude) before they are renamed; a
// hard link to a file that was compressed links to the compressed file, under its name too.
class CompressingHandler final : public TarEntryHandler {
 public:
  CompressingHandler(detail::SafeExtractor& extractor, const TarExtractOptions& options,
                     const CompressOptions& compress, std::string extension)
      : extractor_(extractor),
        compress_(compress),
        extension_(std::move(extension)),
        sink_(extractor, "<tar>"),
        members_(options.members),
        exclude_(options.exclude) {}

  void begin(const TarEntry& entry) override {
    skipping_ = !members_.selects(entry.path) || exclude_.excludes(entry.path);
    if (skipping_) return;
    renamed_ = entry;  // the extractor keeps a pointer to it until end()
    // Names the extractor refuses as they are (".", "..", too long) are not renamed, so that
    // it still does ("..": "...gz" was written).
    const bool compressed = entry.type == TarEntryType::kFile && detail::takes_extension(entry.path);
    // A hard link to a name that holds a compressed file (one, or a link to one) links to it; a
    // target named as a directory ("x/") is left for the extractor to refuse, as GNU tar does.
    // A symbolic link to one alike (it was left pointing at the plain name, which the tree no
    // longer holds), where the file came before it: the archive is read once, and a link before
    // its file is made as it stands (transcode_zip knows every member first, and renames all).
    const bool link = entry.type == TarEntryType::kHardLink || entry.type == TarEntryType::kSymlink;
    const bool to_compressed =
        link && detail::takes_extension(entry.path) && detail::takes_extension(entry.link_target) &&
        !entry.link_target.ends_with('/') &&
        compressed_.count(name_key(entry.type == TarEntryType::kHardLink
                                       ? entry.link_target
                                       : detail::symlink_target_path(entry.path, entry.link_target)));
    if (compressed || to_compressed) renamed_.path = transcoded_name(entry.path, extension_);
    if (to_compressed) renamed_.link_target += extension_;
    // A sparse file is compressed whole, its holes as the zeros they read as (it was written
    // plain, holes and all, without the suffix: a directory meant to hold only NAME.gz got a file
    // that was not). The extractor writes the compressed stream as any other file's.
    sparse_ = compressed && entry.sparse;
    regions_.clear();
    region_ = 0;
    within_region_ = 0;
    written_to_ = 0;
    if (sparse_) {
      renamed_.sparse = false;
      regions_ = std::move(renamed_.regions);
      renamed_.regions.clear();
    }
    const std::uint64_t made = extractor_.extracted();
    extractor_.begin(renamed_);
    if (extractor_.extracted() > made) {  // what is at the name now (a refused entry changed nothing)
      // Made at "x.gz" (a symlink, a directory): x's compressed file is no longer there.
      const std::string at = detail::normal_path(renamed_.path);
      if (at.ends_with(extension_)) compressed_.erase(detail::name_key(at.substr(0, at.size() - extension_.size())));
      if (compressed || to_compressed)
        compressed_.insert(name_key(entry.path));
      else
        compressed_.erase(name_key(entry.path));
    }
    if (compressed && extractor_.writing()) {
      compressor_.emplace(sink_, compress_, detail::stream_info_for(entry.path, entry.mtime_seconds));
    }
  }
  void data(ByteView bytes) override {
    if (skipping_) return;
    if (compressor_ && sparse_)
      compress_sparse(bytes);
    else if (compressor_)
      compressor_->write(bytes);
    else
      extractor_.data(bytes);
  }
  void end() override {
    if (skipping_) return;
    if (compressor_ && sparse_) compress_zeros(renamed_.size - written_to_);  // a hole at the end
    if (compressor_) compressor_->finish();
    compressor_.reset();
    extractor_.end();
  }
  void warning(const std::string& message) override { extractor_.warning(message); }
  std::vector<std::string> members_not_found() const { return members_.not_found(); }

 private:
  // A sparse file's data, each region's bytes after the zeros of the hole before it (as the
  // extractor places them in a file: SafeExtractor's write).
  void compress_sparse(ByteView bytes) {
    const auto& regions = regions_;
    while (!bytes.empty()) {
      while (region_ < regions.size() && within_region_ == regions[region_].length) {
        ++region_;
        within_region_ = 0;
      }
      if (region_ == regions.size()) throw Error(ErrorKind::kInternal, "sparse data past the map", renamed_.path);
      const TarSparseRegion& region = regions[region_];
      if (within_region_ == 0) compress_zeros(region.offset - written_to_);
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), region.length - within_region_));
      compressor_->write(bytes.first(take));
      within_region_ += take;
      written_to_ = region.offset + within_region_;
      bytes = bytes.subspan(take);
    }
  }
  void compress_zeros(std::uint64_t bytes) {
    static const std::vector<std::uint8_t> zeros(1 << 20, 0);
    for (; bytes > 0;) {
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes, zeros.size()));
      compressor_->write(ByteView(zeros.data(), take));
      bytes -= take;
    }
  }

  detail::SafeExtractor& extractor_;
  const CompressOptions& compress_;
  std::string extension_;
  detail::ExtractorSink sink_;
  TarMembers members_;
  TarExclude exclude_;
  bool skipping_ = false;
  TarEntry renamed_;
  // The names that hold a compressed file (written, or linked to one, and not replaced since by
  // another entry), by 128 bits of the SHA-256 of the normalised name: 16 bytes each, however
  // long the names (all of them, refused ones too, were kept whole: 2,000 entries of 64 KB names,
  // refused, took 158 MB), and no archive can make two names meet (std::hash's 64 bits could be
  // made to: a second reader built a pair, and a link went to the wrong file).
  static detail::NameKey name_key(const std::string& path) { return detail::name_key(detail::normal_path(path)); }
  std::unordered_set<detail::NameKey, detail::NameKeyHash> compressed_;
  std::optional<Compressor> compressor_;
  // A sparse entry being compressed: its map, and where its data is.
  bool sparse_ = false;
  std::vector<TarSparseRegion> regions_;
  std::size_t region_ = 0;
  std::uint64_t within_region_ = 0, written_to_ = 0;
};

// Extraction through `handler` (the extractor itself, or a handler in front of it).
TarExtractStats run_extract(ByteSource& source, const TarExtractOptions& options, detail::SafeExtractor& extractor,
                            TarEntryHandler& handler) {
  TarExtractStats stats;
  try {
    static_cast<TarStats&>(stats) = read_tar(source, handler, options.threads);
  } catch (const Error& error) {
    extractor.finish_directories();
    // The extractor's limit (TarExtractOptions::max_output_bytes) and a refusal under `strict`
    // name the entry, not the archive: the archive is added (Python's strict extract raised with
    // no filename, as zip's does).
    if (error.path().empty()) throw error.with_context(source.name(), {});
    throw;
  } catch (...) {
    extractor.finish_directories();
    throw;
  }
  extractor.finish_directories();
  stats.extracted = extractor.extracted();
  stats.refused = extractor.refused();
  stats.failed = extractor.failed();
  stats.members_not_found = extractor.members_not_found();
  return stats;
}

}  // namespace

std::string strip_tar_components(const std::string& path, std::size_t count) {
  if (count == 0) return path;
  std::size_t at = 0;
  while (at < path.size() && path[at] == '/') ++at;
  while (at < path.size()) {
    const bool slash = path[at] == '/';
    ++at;
    if (slash) {
      while (at < path.size() && path[at] == '/') ++at;
      if (--count == 0) return path.substr(at);
    }
  }
  return {};
}

TarExtractStats extract_tar(ByteSource& source, const TarExtractOptions& options) {
  detail::SafeExtractor extractor(options);
  return run_extract(source, options, extractor, extractor);
}

TarExtractStats transcode_tar(ByteSource& source, const TarExtractOptions& options, const CompressOptions& compress) {
  const auto info = CodecRegistry::global().find(compress.codec);
  if (!info) throw Error(ErrorKind::kUsage, "unknown codec '" + compress.codec + "'");
  CompressOptions compress_options = compress;
  compress_options.threads = options.threads;
  TarExtractOptions unfiltered = options;  // the handler picks entries by their archive names
  unfiltered.members.clear();
  unfiltered.exclude.clear();
  unfiltered.files_and_links_within = true;
  detail::SafeExtractor extractor(unfiltered);
  CompressingHandler handler(extractor, options, compress_options, info->extension);
  TarExtractStats stats = run_extract(source, unfiltered, extractor, handler);
  stats.members_not_found = handler.members_not_found();
  return stats;
}

std::string transcoded_name(const std::string& path, const std::string& extension) {
  return detail::takes_extension(path) ? detail::without_trailing_slashes(path) + extension : path;
}

}  // namespace sluice
