// Fuzz target: gzip decoding (splitting into units, unit decoding and verification, streaming),
// two threads checked against one.
#include "tests/fuzz/fuzz_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sluice::fuzz::decode("gzip", data, size, /*differential=*/true);
  return 0;
}
