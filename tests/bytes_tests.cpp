// Buffer, the byte buffer chunks, codecs and sinks share: its bytes survive every kind of growth
// (small, small to large, large to larger, after clear and move), and a large one grows without a
// second copy of its pages in memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/bytes.h"

namespace sluice {
namespace {

constexpr std::size_t kMiB = 1024 * 1024;

std::uint8_t pattern(std::size_t at) { return static_cast<std::uint8_t>((at * 131) ^ (at >> 12)); }

bool holds_pattern(const Buffer& buffer) {
  for (std::size_t at = 0; at < buffer.size(); ++at) {
    if (buffer.data()[at] != pattern(at)) return false;
  }
  return true;
}

TEST(Buffer, KeepsItsBytesThroughEveryGrowth) {
  Buffer buffer;
  std::vector<std::uint8_t> piece;
  std::size_t written = 0;
  // Pieces of odd sizes from a few bytes to 3 MiB: growth inside malloc's sizes, across 2 MiB,
  // and between large blocks, by append and by reserve.
  for (std::size_t step = 0; written < 40 * kMiB; ++step) {
    const std::size_t size = step < 40 ? 7 + step * 1000 : std::min<std::size_t>(3 * kMiB, step * 50'000 + 11);
    piece.resize(size);
    for (std::size_t i = 0; i < size; ++i) piece[i] = pattern(written + i);
    if (step % 5 == 0) buffer.reserve(buffer.size() + size + step * 4096);
    buffer.append({piece.data(), piece.size()});
    written += size;
    ASSERT_EQ(buffer.size(), written);
    ASSERT_GE(buffer.capacity(), written);
    if (buffer.capacity() >= 2 * kMiB) {
      EXPECT_EQ(buffer.capacity() % (2 * kMiB), 0u) << "large blocks are whole 2 MiB";
    }
  }
  EXPECT_TRUE(holds_pattern(buffer));

  Buffer moved = std::move(buffer);
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.capacity(), 0u);
  EXPECT_EQ(moved.size(), written);
  EXPECT_TRUE(holds_pattern(moved));
  buffer.append({piece.data(), 5});  // a buffer moved from is used again
  EXPECT_EQ(buffer.size(), 5u);

  moved.clear();  // cleared, then grown: capacity kept, then more
  const std::size_t kept = moved.capacity();
  moved.resize(kept + 1);
  for (std::size_t at = 0; at < moved.size(); ++at) moved.data()[at] = pattern(at);
  EXPECT_TRUE(holds_pattern(moved));
  moved = std::move(buffer);  // a large buffer given up for a small one
  EXPECT_EQ(moved.size(), 5u);
}

// The process's peak resident memory, in KiB (VmHWM), or nothing where it cannot be read.
std::optional<std::uint64_t> peak_resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  return std::nullopt;
}

// Growing a 64 MiB buffer to 96 MiB moves its pages: the peak of resident memory does not rise
// by another 64 MiB, as it did when the bytes were copied into a new block (a buffer filled as
// decoded output comes, decompress_buffer's, paid for its pages again at every growth).
TEST(Buffer, GrowsALargeBufferWithoutASecondCopyOfItsPages) {
  if (!detail::large_buffers_are_mappings()) {
    GTEST_SKIP() << "large buffers are mappings of their own on Linux, not under the sanitizers";
  }
  Buffer buffer;
  buffer.resize(64 * kMiB);
  for (std::size_t at = 0; at < buffer.size(); ++at) buffer.data()[at] = pattern(at);
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5" << std::flush;  // the peak is reset to what is resident now
  const auto before = peak_resident_kib();
  if (!clear_refs || !before) GTEST_SKIP() << "this kernel does not let the peak be reset";
  buffer.reserve(96 * kMiB);
  const auto after = peak_resident_kib();
  ASSERT_TRUE(after.has_value());
  EXPECT_LT(*after - *before, 16 * 1024u) << "KiB more at the peak while growing";
  EXPECT_TRUE(holds_pattern(buffer));
}

}  // namespace
}  // namespace sluice
