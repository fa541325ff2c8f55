// The body shared by the decoder fuzz targets: decompress arbitrary bytes as one codec, through
// the real decompression graph (splitter, unit decoders, verifier, or the streaming decoder).
// A sluice::Error is the expected outcome for bad input; anything else (another exception, a
// crash, a sanitizer report, an allocation beyond libFuzzer's malloc limit) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "sluice/decompress.h"
#include "sluice/error.h"

namespace sluice::fuzz {

inline void decode(const char* codec, const std::uint8_t* data, std::size_t size) {
  if (size == 0) return;
  // The first byte picks the thread count: one (everything in order on one worker) or two
  // (units on two workers; serial decoding through the overlapped writer thread); and, for gzip,
  // the engine: the defaults (libdeflate members, ISA-L streams), zlib, or ISA-L for both.
  DecompressOptions options;
  options.codec = codec;
  options.threads = (data[0] & 1) ? 2 : 1;
  const int engine = (data[0] >> 1) % 3;
  if (engine > 0 && std::string(codec) == "gzip") options.backends[codec] = engine == 1 ? "zlib" : "isal";
  options.max_pieces_in_flight = 4;
  // On two threads through the graph even when small, in units of about 64 compressed bytes
  // where the codec chooses (gzip members cut at their sync flushes: guessed pieces).
  if (options.threads == 2) {
    options.small_inputs_in_caller = false;
    options.unit_input_bytes = 64;
  }
  // Small enough that a bomb among the inputs costs milliseconds, not seconds.
  options.max_output_bytes = 16 * 1024 * 1024;
  try {
    (void)decompress_buffer(ByteView(data + 1, size - 1), options);
  } catch (const Error&) {
  }
}

}  // namespace sluice::fuzz
