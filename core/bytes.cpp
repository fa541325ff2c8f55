// Memory for Buffers: plain malloc for small blocks, huge-page-backed blocks for large ones.
#include <cstdlib>
#include <new>

#include "sluice/bytes.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace sluice::detail {

namespace {
constexpr std::size_t kHugePageBytes = 2 * 1024 * 1024;
}

std::uint8_t* allocate_bytes(std::size_t& bytes) {
  void* memory = nullptr;
  if (bytes >= kHugePageBytes) {
    // Large buffers are filled once per unit: with 4 KiB pages, their page faults are a visible
    // share of a decoding run (BENCHMARKS.md). Only whole, aligned 2 MiB pages can be huge, hence
    // the rounding; the kernel backs what is touched, no more.
    const std::size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    memory = std::aligned_alloc(kHugePageBytes, rounded);
    if (memory != nullptr) {
      bytes = rounded;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
      ::madvise(memory, rounded, MADV_HUGEPAGE);  // advice only: without THP, ordinary pages
#endif
    }
  } else {
    memory = std::malloc(bytes);
  }
  if (memory == nullptr) throw std::bad_alloc();
  return static_cast<std::uint8_t*>(memory);
}

}  // namespace sluice::detail
