// Memory for Buffers: plain malloc for small blocks; for large ones, on Linux, mappings of their
// own offered to the kernel's huge pages, which grow by moving pages (mremap), never by copying.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "sluice/bytes.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif
// Memcheck takes fresh mappings for defined memory (zeros); it is told they hold nothing yet, as
// a block from malloc does, so that reads of bytes never written are still reported. Its client
// requests cost a few instructions outside valgrind.
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define SLUICE_UNDEFINED(memory, bytes) VALGRIND_MAKE_MEM_UNDEFINED(memory, bytes)
#else
#define SLUICE_UNDEFINED(memory, bytes) static_cast<void>(0)
#endif

// Under the sanitizers every block comes from the C library's allocator: AddressSanitizer guards
// its blocks (a mapping of our own would hide overflows past a large buffer), and
// ThreadSanitizer's shadow of moved pages is not ours to keep right.
#if defined(__linux__) && defined(MREMAP_MAYMOVE) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define SLUICE_MAPPED_BUFFERS 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#undef SLUICE_MAPPED_BUFFERS
#endif
#endif

namespace sluice::detail {

namespace {

constexpr std::size_t kHugePageBytes = 2 * 1024 * 1024;

std::size_t round_up(std::size_t bytes, std::size_t to) {
  if (bytes > SIZE_MAX - to) throw std::bad_alloc();  // no block that large; rounding would wrap
  return (bytes + to - 1) / to * to;
}

bool is_large(std::size_t capacity) { return capacity >= kHugePageBytes; }

#if defined(SLUICE_MAPPED_BUFFERS)

// A mapping of `bytes` (a multiple of 2 MiB) that starts on a 2 MiB boundary, all of it one
// mapping advised for huge pages (advice only: without THP, ordinary pages). One mapping matters:
// mremap moves only a range that is a single mapping, and advice on part of it would split it.
std::uint8_t* map_large(std::size_t bytes) {
  const std::size_t spare = kHugePageBytes;
  void* raw = ::mmap(nullptr, bytes + spare, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePageBytes);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t end = aligned + bytes;
  if (start + bytes + spare > end) ::munmap(reinterpret_cast<void*>(end), start + bytes + spare - end);
  auto* memory = reinterpret_cast<std::uint8_t*>(aligned);
  advise_huge_pages(memory, bytes);
  SLUICE_UNDEFINED(memory, bytes);
  return memory;
}

#else

std::uint8_t* map_large(std::size_t bytes) {
  void* memory = std::aligned_alloc(kHugePageBytes, bytes);
  if (memory == nullptr) throw std::bad_alloc();
  advise_huge_pages(memory, bytes);
  return static_cast<std::uint8_t*>(memory);
}

#endif

void free_large(std::uint8_t* data, [[maybe_unused]] std::size_t capacity) noexcept {
#if defined(SLUICE_MAPPED_BUFFERS)
  ::munmap(data, capacity);
#else
  std::free(data);
#endif
}

}  // namespace

// Only the whole, aligned 2 MiB pages inside: the kernel backs nothing else with a huge page, and
// advice on a block of another allocator's heap stays on memory it hands out again.
void advise_huge_pages([[maybe_unused]] void* memory, [[maybe_unused]] std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const auto start = reinterpret_cast<std::uintptr_t>(memory);
  const std::uintptr_t first = (start + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const std::uintptr_t end = (start + bytes) / kHugePageBytes * kHugePageBytes;
  if (end > first) ::madvise(reinterpret_cast<void*>(first), end - first, MADV_HUGEPAGE);
#endif
}

std::uint8_t* allocate_bytes(std::size_t& bytes) {
  if (is_large(bytes)) {
    // Large buffers are filled once per unit: with 4 KiB pages, their page faults are a visible
    // share of a decoding run (BENCHMARKS.md). Only whole, aligned 2 MiB pages can be huge, hence
    // the rounding; the kernel backs what is touched, no more.
    const std::size_t rounded = round_up(bytes, kHugePageBytes);
    std::uint8_t* memory = map_large(rounded);
    bytes = rounded;
    return memory;
  }
  void* memory = std::malloc(bytes);
  if (memory == nullptr) throw std::bad_alloc();
  return static_cast<std::uint8_t*>(memory);
}

std::uint8_t* reallocate_bytes(std::uint8_t* data, std::size_t used, std::size_t capacity, std::size_t& bytes) {
  if (bytes <= capacity) {  // room enough already (Buffer asks only to grow)
    bytes = capacity;
    return data;
  }
  if (!is_large(bytes)) {  // small to small: the C library's realloc
    void* memory = std::realloc(data, bytes);
    if (memory == nullptr) throw std::bad_alloc();
    return static_cast<std::uint8_t*>(memory);
  }
  const std::size_t rounded = round_up(bytes, kHugePageBytes);
#if defined(SLUICE_MAPPED_BUFFERS)
  if (is_large(capacity)) {
    // The pages move with their contents; a new place keeps no 2 MiB alignment (huge pages then
    // begin at its first 2 MiB boundary).
    void* moved = ::mremap(data, capacity, rounded, MREMAP_MAYMOVE);
    if (moved == MAP_FAILED) throw std::bad_alloc();
    SLUICE_UNDEFINED(static_cast<std::uint8_t*>(moved) + capacity, rounded - capacity);
    bytes = rounded;
    return static_cast<std::uint8_t*>(moved);
  }
#endif
  std::uint8_t* memory = map_large(rounded);
  std::memcpy(memory, data, std::min(used, capacity));
  if (is_large(capacity)) {
    free_large(data, capacity);
  } else {
    std::free(data);
  }
  bytes = rounded;
  return memory;
}

bool large_buffers_are_mappings() noexcept {
#if defined(SLUICE_MAPPED_BUFFERS)
  return true;
#else
  return false;
#endif
}

void free_bytes(std::uint8_t* data, std::size_t capacity) noexcept {
  if (is_large(capacity)) {
    free_large(data, capacity);
  } else {
    std::free(data);
  }
}

}  // namespace sluice::detail
