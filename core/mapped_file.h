// Regular input files mapped into memory, window by window, so that the graphs cut chunks and
// compressed pieces as views instead of copying every byte through read(2). Internal to the
// library.
//
// Why: read(2) copies every byte once more, on the reader's thread, which on two cores is a large
// share of the CPU the fast codecs have (BENCHMARKS.md has the figures).
//
// The danger of mapping is a file that someone truncates while we read it: touching a page past
// its new end raises SIGBUS, which kills the process. The guard here catches that: a SIGBUS whose
// address lies in one of our windows gets zero-filled memory mapped over the lost pages (the
// access then succeeds), and the window's file records the loss. Readers check lost_pages()
// before they trust what they made from a file (the writer, before it commits a stream; the
// decompression graph, before it returns) and report the file as having shrunk, as the read(2)
// path does. A SIGBUS anywhere else goes to the handler that was there before ours (or kills the
// process, as it would have).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "sluice/bytes.h"

namespace sluice::detail {

// What the windows of one file share: whether any of them lost pages, and where first.
struct MappedFileState {
  std::atomic<bool> lost_pages{false};
  std::atomic<std::uint64_t> first_lost_offset{UINT64_MAX};
  std::uint64_t bytes_when_opened = 0;
};

// A read-only mapping of bytes [offset, offset + bytes().size()) of a file. Pieces cut from it
// hold it (shared_ptr); the last one to retire unmaps it.
class FileWindow {
 public:
  ~FileWindow();
  FileWindow(const FileWindow&) = delete;
  FileWindow& operator=(const FileWindow&) = delete;

  std::uint64_t offset() const { return offset_; }
  ByteView bytes() const { return {data_ + lead_bytes_, size_}; }
  // The bytes of the file from `file_offset` on, as far as this window reaches.
  ByteView from(std::uint64_t file_offset) const { return bytes().subspan(file_offset - offset_); }
  bool contains(std::uint64_t file_offset, std::size_t length) const {
    return file_offset >= offset_ && file_offset + length <= offset_ + size_;
  }

 private:
  friend class FileMapper;
  FileWindow() = default;

  const std::uint8_t* data_ = nullptr;  // the mapping's start (page-aligned)
  std::size_t lead_bytes_ = 0;          // bytes before `offset_` that page alignment added
  std::size_t size_ = 0;
  std::uint64_t offset_ = 0;
  int guard_slot_ = -1;
  std::shared_ptr<MappedFileState> state_;  // alive while the guard slot points at it
};

// Maps windows of one open regular file of `file_bytes` (its size when opened). The descriptor
// must stay open while windows are being made (not while they live).
class FileMapper {
 public:
  FileMapper(int fd, std::uint64_t file_bytes);

  // A window holding at least [offset, offset + min_bytes) (clipped to the file), reaching on to
  // `window_bytes` where the file allows. nullptr when the system refuses (no address space, no
  // guard slot left): the caller reads instead.
  std::shared_ptr<FileWindow> map(std::uint64_t offset, std::size_t min_bytes, std::size_t window_bytes);

  std::uint64_t file_bytes() const { return state_->bytes_when_opened; }
  std::shared_ptr<const MappedFileState> file() const { return state_; }

  // Whether inputs are mapped at all: yes unless the environment says SLUICE_MAP_INPUT=0 (for
  // comparing with the read path, or for a host program with a SIGBUS handler of its own).
  static bool enabled();

 private:
  int fd_;
  std::shared_ptr<MappedFileState> state_;
};

// The Error a reader raises for a file whose mapped pages were lost (kIo, "file shrank while
// being read"), naming `path` and the first lost offset.
[[noreturn]] void throw_lost_pages(const MappedFileState& file, const std::string& path);

}  // namespace sluice::detail
