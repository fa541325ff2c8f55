// Compresses a buffer with each built-in codec through the installed library and checks the
// round trip. Prints one line per codec; exits non-zero on any mismatch.
#include <cstdio>
#include <cstring>
#include <string>

#include "sluice/batch.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"

int main() {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "an embedded sluice graph, line " + std::to_string(i) + "\n";
  const sluice::ByteView input = sluice::as_bytes(text);
  int failures = 0;
  for (const char* codec : {"gzip", "zstd", "lz4"}) {
    sluice::CompressOptions options;
    options.codec = codec;
    const sluice::Buffer packed = sluice::compress_buffer(input, options);
    const sluice::Buffer plain = sluice::decompress_buffer(packed.view());
    const bool same = plain.size() == input.size() && std::memcmp(plain.data(), input.data(), input.size()) == 0;
    std::printf("%s: %zu -> %zu bytes, round trip %s\n", codec, input.size(), packed.size(), same ? "ok" : "FAILED");
    failures += same ? 0 : 1;
  }
  return failures == 0 ? 0 : 1;
}
