// Fuzz target: the tar reader (ustar, pax, GNU, v7 headers, sparse maps) on a plain archive
// written to it in two pieces. Bad archives must end in a sluice::Error; entries must never claim
// more content than their headers said, nor a sparse map that does not fit the file.
#include <cstdlib>

#include "sluice/error.h"
#include "sluice/tar.h"

namespace {

class CheckingHandler final : public sluice::TarEntryHandler {
 public:
  void begin(const sluice::TarEntry& entry) override {
    if (open_) std::abort();
    open_ = true;
    expected_ = entry.stored_bytes();
    seen_ = 0;
    // A sparse map is in order, without overlaps, within the file's size.
    std::uint64_t end = 0;
    for (const auto& region : entry.regions) {
      if (!entry.sparse || region.offset < end || region.length > entry.size ||
          region.offset > entry.size - region.length) {
        std::abort();
      }
      end = region.offset + region.length;
    }
  }
  void data(sluice::ByteView bytes) override {
    if (!open_) std::abort();
    seen_ += bytes.size();
    if (seen_ > expected_) std::abort();  // more content than the header declared
  }
  void end() override {
    if (!open_ || seen_ != expected_) std::abort();
    open_ = false;
  }

 private:
  bool open_ = false;
  std::uint64_t expected_ = 0;
  std::uint64_t seen_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first two bytes pick where the archive is cut in two writes.
  const std::size_t cut = (static_cast<std::size_t>(data[0]) << 8 | data[1]) % (size - 1);
  const sluice::ByteView archive(data + 2, size - 2);
  CheckingHandler handler;
  sluice::TarReader reader(handler, "fuzz.tar");
  try {
    reader.write(archive.first(cut));
    reader.write(archive.subspan(cut));
    reader.finish();
  } catch (const sluice::Error&) {
  }
  return 0;
}
