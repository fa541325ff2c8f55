// The safe extractor that tar and zip share: entries (in tar's model, TarEntry) written under a
// destination that no entry can leave or change. Internal to the library; the rules are at the
// top of extractor.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sluice/codec.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/tar.h"

namespace sluice::detail {

// What a directory made counts for towards TarExtractOptions::max_output_bytes: a block of the
// file system (a bomb of directories fills a disk as one of zeros does).
inline constexpr std::uint64_t kExtractedDirectoryBytes = 4096;

class SafeExtractor final : public TarEntryHandler {
 public:
  // Creates options.directory if missing. Throws Error(kIo) if it cannot be used.
  explicit SafeExtractor(const TarExtractOptions& options);
  ~SafeExtractor() override;
  SafeExtractor(const SafeExtractor&) = delete;
  SafeExtractor& operator=(const SafeExtractor&) = delete;

  // `entry` must stay alive until end() (the extractor refers to it meanwhile).
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

// A sink over SafeExtractor::data(): what a decoder or a compressor writes goes to the entry
// begun last. With `stop_when_failed`, a write after which the entry's file failed (and was
// reported by the extractor) throws, to stop its producer; otherwise the rest is dropped.
class ExtractorSink final : public ByteSink {
 public:
  ExtractorSink(SafeExtractor& extractor, std::string name, bool stop_when_failed = false)
      : extractor_(extractor), name_(std::move(name)), stop_when_failed_(stop_when_failed) {}
  void write(ByteView bytes) override {
    extractor_.data(bytes);
    if (stop_when_failed_ && !extractor_.writing()) throw Error(ErrorKind::kIo, "the file failed (reported)", name_);
  }
  const std::string& name() const override { return name_; }

 private:
  SafeExtractor& extractor_;
  std::string name_;
  bool stop_when_failed_;
};

// The name and time a compressed file's stream records (gzip's header): the entry's base name.
StreamInfo stream_info_for(const std::string& path, std::int64_t mtime_seconds);

}  // namespace sluice::detail
