// The one exception type Sluice throws, carrying what a user needs to act on a failure:
// which file, where in it (when known), and what kind of problem it was.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice {

enum class ErrorKind {
  kUsage,        // bad options or arguments (the command exits 2)
  kIo,           // a system call on a file or stream failed
  kCorruptData,  // compressed input is malformed, truncated or fails a checksum
  kInternal,     // a library returned something it should never return
  kCancelled,    // not done because the run stopped at another failure
  kLimit,        // a limit the caller set was reached (e.g. the most output to write)
  // Bytes that are no frame or member follow the last complete one: everything before them was
  // decoded, checked and written (the command keeps the output and warns, as gzip does).
  kTrailingGarbage,
};

// what() is "PATH: detail (at byte N)", the path passed through printable_name(); path() and
// detail() are as given.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string detail, std::string path = {},
        std::optional<std::uint64_t> offset = std::nullopt);

  ErrorKind kind() const { return kind_; }
  // The message without the path and offset.
  const std::string& detail() const { return detail_; }
  // The file or stream the error is about; empty when not known.
  const std::string& path() const { return path_; }
  // Byte offset in that file where the problem was found, when known.
  std::optional<std::uint64_t> offset() const { return offset_; }

  // A copy with the path and offset filled in where this error lacks them.
  Error with_context(const std::string& path, std::optional<std::uint64_t> offset) const;

  // The system's error number (errno) when a system call failed (throw_system_error), else 0:
  // lets a binding raise its own kind of it (Python's FileNotFoundError for ENOENT).
  int error_number() const { return error_number_; }
  Error& set_error_number(int number) {
    error_number_ = number;
    return *this;
  }

 private:
  ErrorKind kind_;
  std::string detail_;
  std::string path_;
  std::optional<std::uint64_t> offset_;
  int error_number_ = 0;
};

// `name` as it may be shown on a terminal or in a log, escaped as GNU tar's default quoting does in
// a UTF-8 locale: printable UTF-8 unchanged; a backslash doubled; \a \b \t \n \v \f \r for those
// controls; every other control character (C0, DEL, C1, U+2028/U+2029) and every byte that is not
// part of valid UTF-8 (a NUL included) as a three-digit octal escape per byte, "\033" for ESC. So a
// name from an archive or a directory can never move the cursor, change colours or forge a line.
std::string printable_name(std::string_view name);

// Throws an Error of kind kIo for the current errno, e.g. "cannot open: No such file or directory".
[[noreturn]] void throw_system_error(const std::string& what, const std::string& path);

// An output that is there and may not be replaced: "PATH: already exists", kind kIo, errno EEXIST
// (Python's FileExistsError); is_output_exists() tells it (a command adds how to overwrite).
Error output_exists_error(const std::string& path);
bool is_output_exists(const Error& error);

}  // namespace sluice
