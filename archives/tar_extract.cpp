// extract_tar(): a tar archive read into the safe extractor (archives/extractor.h).
#include "archives/extractor.h"
#include "sluice/tar.h"

namespace sluice {

TarExtractStats extract_tar(ByteSource& source, const TarExtractOptions& options) {
  detail::SafeExtractor extractor(options);
  TarExtractStats stats;
  try {
    static_cast<TarStats&>(stats) = read_tar(source, extractor, options.threads);
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

}  // namespace sluice
