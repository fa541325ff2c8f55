// Fuzz target: the zip reader (end records, zip64, central directory, local headers, member
// data of every method) on an archive in memory, member by member and all at once (test_zip). The first byte picks the
// thread count (even: one, odd: two). Bad archives and members must end in a sluice::Error; a member must never yield
// more bytes than the archive declares for it.
#include <cstdlib>

#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/zip.h"

namespace {

class CheckingSink final : public sluice::ByteSink {
 public:
  explicit CheckingSink(std::uint64_t declared) : declared_(declared) {}
  void write(sluice::ByteView bytes) override {
    seen_ += bytes.size();
    if (seen_ > declared_) std::abort();
  }
  const std::string& name() const override { return name_; }

 private:
  std::uint64_t declared_;
  std::uint64_t seen_ = 0;
  std::string name_ = "<fuzz>";
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const int threads = 1 + (data[0] & 1);
  sluice::MemorySource source(sluice::ByteView(data + 1, size - 1), "fuzz.zip");
  try {
    sluice::ZipReader reader(source);
    int read = 0;
    for (std::size_t index = 0; index < reader.size(); ++index) {
      const sluice::ZipEntry entry = reader.entry(index);
      if (entry.data_offset + entry.compressed_size > size - 1) std::abort();  // checked by the reader
      if (++read > 64) break;
      CheckingSink sink(entry.size);
      try {
        reader.read(entry, sink, threads);
      } catch (const sluice::Error&) {
      }
    }
  } catch (const sluice::Error&) {
  }
  // And every member at once, through the parallel stages of test_zip.
  try {
    sluice::test_zip(source, threads);
  } catch (const sluice::Error&) {
  }
  return 0;
}
