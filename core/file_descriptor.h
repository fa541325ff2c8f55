// File descriptors owned by one object and closed with it, and the names given to the system
// calls that open them (internal).
#pragma once

#include <unistd.h>

#include <string>
#include <utility>

#include "sluice/error.h"

namespace sluice::detail {

// A name with a NUL byte would name another file to the system, which ends it there: "a.tar\0x"
// opened a.tar, a destination "d\0/../x" was d, and a walk of "in\0/f" found "in" again under
// itself without end (its memory grew until killed). Throws Error(kUsage) naming it.
inline void check_system_name(const std::string& path) {
  if (path.find('\0') != std::string::npos) throw Error(ErrorKind::kUsage, "the name holds a NUL byte", path);
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  ~FileDescriptor() { reset(); }
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileDescriptor& operator=(FileDescriptor&& other) noexcept {
    if (this != &other) reset(std::exchange(other.fd_, -1));
    return *this;
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }
  // Closes the descriptor held, if any, and holds `fd` instead.
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

}  // namespace sluice::detail
