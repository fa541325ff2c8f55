// extract_tar(): a tar archive read into the safe extractor (archives/extractor.h).
#include <optional>

#include "archives/extractor.h"
#include "sluice/codec.h"
#include "sluice/stream.h"
#include "sluice/tar.h"

namespace sluice {

namespace {

// Gives the extractor each file entry under its compressed name, its data through a Compressor.
class CompressingHandler final : public TarEntryHandler {
 public:
  CompressingHandler(detail::SafeExtractor& extractor, const CompressOptions& options, std::string extension)
      : extractor_(extractor), options_(options), extension_(std::move(extension)), sink_(extractor, "<tar>") {}

  void begin(const TarEntry& entry) override {
    if (entry.type != TarEntryType::kFile || entry.sparse) return extractor_.begin(entry);
    renamed_ = entry;  // the extractor keeps a pointer to it until end()
    renamed_.path += extension_;
    extractor_.begin(renamed_);
    if (extractor_.writing()) {
      compressor_.emplace(sink_, options_, detail::stream_info_for(entry.path, entry.mtime_seconds));
    }
  }
  void data(ByteView bytes) override {
    if (compressor_)
      compressor_->write(bytes);
    else
      extractor_.data(bytes);
  }
  void end() override {
    if (compressor_) compressor_->finish();
    compressor_.reset();
    extractor_.end();
  }
  void warning(const std::string& message) override { extractor_.warning(message); }

 private:
  detail::SafeExtractor& extractor_;
  const CompressOptions& options_;
  std::string extension_;
  detail::ExtractorSink sink_;
  TarEntry renamed_;
  std::optional<Compressor> compressor_;
};

// Extraction through `handler` (the extractor itself, or a handler in front of it).
TarExtractStats run_extract(ByteSource& source, const TarExtractOptions& options, detail::SafeExtractor& extractor,
                            TarEntryHandler& handler) {
  TarExtractStats stats;
  try {
    static_cast<TarStats&>(stats) = read_tar(source, handler, options.threads);
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

TarExtractStats extract_tar(ByteSource& source, const TarExtractOptions& options) {
  detail::SafeExtractor extractor(options);
  return run_extract(source, options, extractor, extractor);
}

TarExtractStats transcode_tar(ByteSource& source, const TarExtractOptions& options, const CompressOptions& compress) {
  const auto info = CodecRegistry::global().find(compress.codec);
  if (!info) throw Error(ErrorKind::kUsage, "unknown codec '" + compress.codec + "'");
  CompressOptions compress_options = compress;
  compress_options.threads = options.threads;
  detail::SafeExtractor extractor(options);
  CompressingHandler handler(extractor, compress_options, info->extension);
  return run_extract(source, options, extractor, handler);
}

}  // namespace sluice
