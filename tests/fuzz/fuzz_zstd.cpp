// Fuzz target: zstd decoding (splitting into units, unit decoding and verification, streaming).
#include "tests/fuzz/fuzz_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  sluice::fuzz::decode("zstd", data, size);
  return 0;
}
