// The body shared by the decoder fuzz targets: decompress arbitrary bytes as one codec, through
// the real decompression graph (splitter, unit decoders, verifier, or the streaming decoder).
// A sluice::Error is the expected outcome for bad input; anything else (another exception, a
// crash, a sanitizer report, an allocation beyond libFuzzer's malloc limit) is a finding. With
// `differential`, an input decoded on two threads is decoded on one too, and the two must agree:
// the same bytes, or both an error (parallel inflate's guesses must never change the output).
// Some inputs arrive as a writer that pauses halfway sends them: the decoder then goes on from
// there one read at a time (decompress(), wait_readable), and must agree as well.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice::fuzz {

// Bytes whose writer pauses at `pause`: reads stop there, and wait_readable() there says
// "nothing yet" once.
class PausingSource final : public ByteSource {
 public:
  PausingSource(ByteView bytes, std::size_t pause) : bytes_(bytes), pause_(pause) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    std::size_t n = std::min(max_bytes, bytes_.size() - position_);
    if (!paused_ && position_ < pause_) n = std::min(n, pause_ - position_);
    std::memcpy(dst, bytes_.data() + position_, n);
    position_ += n;
    return n;
  }
  bool wait_readable(std::chrono::milliseconds) override {
    if (paused_ || position_ != pause_) return true;
    paused_ = true;
    return false;
  }
  const std::string& name() const override { return name_; }

 private:
  ByteView bytes_;
  std::size_t pause_;
  std::size_t position_ = 0;
  bool paused_ = false;
  std::string name_ = "<fuzz>";
};

inline void decode(const char* codec, const std::uint8_t* data, std::size_t size, bool differential = false) {
  if (size == 0) return;
  // The first byte picks the thread count: one (everything in order on one worker) or two
  // (units on two workers; serial decoding through the overlapped writer thread); for gzip, the
  // engine: the defaults (libdeflate members, ISA-L streams), zlib, or ISA-L for both; and with
  // its top bit, a pause halfway.
  DecompressOptions options;
  options.codec = codec;
  options.threads = (data[0] & 1) ? 2 : 1;
  const int engine = ((data[0] >> 1) & 0x3F) % 3;
  const bool pauses = (data[0] & 0x80) != 0;
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
  auto run = [&](const DecompressOptions& with) -> std::optional<Buffer> {
    try {
      const ByteView input(data + 1, size - 1);
      if (!pauses) return decompress_buffer(input, with);
      PausingSource source(input, input.size() / 2);
      MemorySink sink;
      decompress(source, sink, with);
      return sink.take();
    } catch (const Error&) {
      return std::nullopt;
    }
  };
  const std::optional<Buffer> decoded = run(options);
  if (!differential || (options.threads == 1 && !pauses)) return;
  DecompressOptions in_order = options;
  in_order.threads = 1;
  in_order.unit_input_bytes = 0;
  const std::optional<Buffer> expected = [&]() -> std::optional<Buffer> {
    try {
      return decompress_buffer(ByteView(data + 1, size - 1), in_order);  // no pause
    } catch (const Error&) {
      return std::nullopt;
    }
  }();
  if (decoded.has_value() != expected.has_value() ||
      (decoded && (decoded->size() != expected->size() ||
                   (decoded->size() > 0 && std::memcmp(decoded->data(), expected->data(), decoded->size()) != 0)))) {
    std::abort();  // two threads and one disagree
  }
}

}  // namespace sluice::fuzz
