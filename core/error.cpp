// Error formatting: "PATH: detail (at byte N)".
#include "sluice/error.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace sluice {
namespace {

std::string format_message(const std::string& detail, const std::string& path,
                           std::optional<std::uint64_t> offset) {
  std::string message = path.empty() ? detail : fmt::format("{}: {}", path, detail);
  if (offset) message += fmt::format(" (at byte {})", *offset);
  return message;
}

}  // namespace

Error::Error(ErrorKind kind, std::string detail, std::string path,
             std::optional<std::uint64_t> offset)
    : std::runtime_error(format_message(detail, path, offset)),
      kind_(kind),
      detail_(std::move(detail)),
      path_(std::move(path)),
      offset_(offset) {}

Error Error::with_context(const std::string& path, std::optional<std::uint64_t> offset) const {
  return Error(kind_, detail_, path_.empty() ? path : path_, offset_ ? offset_ : offset);
}

void throw_system_error(const std::string& what, const std::string& path) {
  const int saved = errno;
  throw Error(ErrorKind::kIo, fmt::format("{}: {}", what, std::strerror(saved)), path);
}

}  // namespace sluice
