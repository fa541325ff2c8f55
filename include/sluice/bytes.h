// Byte views and the growable, uninitialised byte buffer that chunks and codecs share.
//
// `Buffer` is deliberately not std::vector<uint8_t>: resizing a vector zero-fills, which on
// multi-megabyte chunk buffers is a measurable cost on the hot path. A Buffer keeps its capacity
// when cleared so that pooled chunks reuse their memory, and a large one asks the kernel for huge
// pages (see detail::allocate_bytes).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace sluice {

using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

namespace detail {
// Uninitialised memory for a Buffer of at least `bytes` (> 0), released by free_bytes with the
// capacity given. Sets `bytes` to that capacity: blocks of 2 MiB and more are rounded up to whole
// 2 MiB pages, aligned (until reallocate_bytes moves them), and offered to the kernel's
// transparent huge pages (where it has them), since a pool's first pass over fresh chunk buffers
// otherwise takes a page fault every 4 KiB. Throws std::bad_alloc.
std::uint8_t* allocate_bytes(std::size_t& bytes);
// Grows `data` (`capacity` bytes from allocate_bytes or here, its first `used` kept) to at least
// `bytes`, set as by allocate_bytes. A large block is grown where it lies or moved by the kernel
// (mremap) rather than copied into memory faulted in anew: a buffer filled as output comes
// (MemorySink) costs its pages once. Throws std::bad_alloc, leaving `data` as it was.
std::uint8_t* reallocate_bytes(std::uint8_t* data, std::size_t used, std::size_t capacity, std::size_t& bytes);
void free_bytes(std::uint8_t* data, std::size_t capacity) noexcept;
// Offers the whole 2 MiB pages of [memory, memory + bytes), memory from anywhere (another
// allocator's block), to the kernel's transparent huge pages; advice only, and nothing where
// there is none.
void advise_huge_pages(void* memory, std::size_t bytes) noexcept;
// Whether large blocks are mappings of their own, grown by moving pages (Linux, not under the
// sanitizers): what Buffer's tests may expect of growth.
bool large_buffers_are_mappings() noexcept;
}  // namespace detail

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t capacity_bytes) { reserve(capacity_bytes); }
  ~Buffer() { release(); }
  // A buffer moved from is empty, with no capacity, and may be used again.
  Buffer(Buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  std::uint8_t* data() { return data_; }
  const std::uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  ByteView view() const { return {data_, size_}; }

  void clear() { size_ = 0; }

  // Grows capacity to at least `capacity_bytes`, keeping the contents.
  void reserve(std::size_t capacity_bytes) {
    if (capacity_bytes <= capacity_) return;
    if (data_ == nullptr) {
      data_ = detail::allocate_bytes(capacity_bytes);
    } else {
      data_ = detail::reallocate_bytes(data_, size_, capacity_, capacity_bytes);
    }
    capacity_ = capacity_bytes;
  }

  // Sets the size, growing capacity if needed. Bytes past the old size are uninitialised.
  void resize(std::size_t size_bytes) {
    if (size_bytes > capacity_) reserve(std::max(size_bytes, capacity_ + capacity_ / 2));
    size_ = size_bytes;
  }

  void append(ByteView bytes) {
    if (bytes.empty()) return;
    const std::size_t old_size = size_;
    resize(old_size + bytes.size());
    std::memcpy(data_ + old_size, bytes.data(), bytes.size());
  }

 private:
  void release() noexcept {
    if (data_ != nullptr) detail::free_bytes(data_, capacity_);
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace sluice
