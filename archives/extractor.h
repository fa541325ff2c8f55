// The safe extractor that tar and zip share: entries (in tar's model, TarEntry) written under a
// destination that no entry can leave or change. Internal to the library; the rules are at the
// top of extractor.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sluice/error.h"
#include "sluice/tar.h"

namespace sluice::detail {

class SafeExtractor final : public TarEntryHandler {
 public:
  // Creates options.directory if missing. Throws Error(kIo) if it cannot be used.
  explicit SafeExtractor(const TarExtractOptions& options);
  ~SafeExtractor() override;
  SafeExtractor(const SafeExtractor&) = delete;
  SafeExtractor& operator=(const SafeExtractor&) = delete;

  void begin(const TarEntry& entry) override;
  void data(ByteView bytes) override;
  void end() override;
  void warning(const std::string& message) override;
  // An entry whose data could not be read (a corrupt zip member) or written: its partial file is
  // removed and it is reported through options.on_failed; with options.strict it throws.
  // `begun`: after begin() for this entry (which counted it as extracted).
  void fail(const TarEntry& entry, const Error& error, bool begun);
  // Whether the entry begun last is a file being written (not refused, not failed).
  bool writing() const;
  // Directory modes and times, deepest first; call after success and after failure alike.
  void finish_directories() noexcept;

  std::uint64_t extracted() const;
  std::uint64_t refused() const;
  std::uint64_t failed() const;
  std::vector<std::string> members_not_found() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::detail
