// Byte views and the growable, uninitialised byte buffer that chunks and codecs share.
//
// `Buffer` is deliberately not std::vector<uint8_t>: resizing a vector zero-fills, which on
// multi-megabyte chunk buffers is a measurable cost on the hot path. A Buffer keeps its capacity
// when cleared so that pooled chunks reuse their memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace sluice {

using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view text) {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t capacity_bytes) { reserve(capacity_bytes); }
  Buffer(Buffer&&) noexcept = default;
  Buffer& operator=(Buffer&&) noexcept = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  std::uint8_t* data() { return data_.get(); }
  const std::uint8_t* data() const { return data_.get(); }
  std::size_t size() const { return size_; }
  std::size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  ByteView view() const { return {data_.get(), size_}; }

  void clear() { size_ = 0; }

  // Grows capacity to at least `capacity_bytes`, keeping the contents.
  void reserve(std::size_t capacity_bytes) {
    if (capacity_bytes <= capacity_) return;
    auto grown = std::make_unique_for_overwrite<std::uint8_t[]>(capacity_bytes);
    if (size_ > 0) std::memcpy(grown.get(), data_.get(), size_);
    data_ = std::move(grown);
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
    std::memcpy(data_.get() + old_size, bytes.data(), bytes.size());
  }

 private:
  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace sluice
