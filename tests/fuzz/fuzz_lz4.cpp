// Fuzz target: lz4 decoding (splitting into units, unit decoding and verification, streaming).
#include "tests/fuzz/fuzz_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sluice::fuzz::decode("lz4", data, size);
  return 0;
}
