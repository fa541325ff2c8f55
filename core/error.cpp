// Error formatting: "PATH: detail (at byte N)".
#include "sluice/error.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace sluice {
namespace {

std::string format_message(const std::string& detail, const std::string& path,
                           std::optional<std::uint64_t> offset) {
  std::string message = path.empty() ? detail : fmt::format("{}: {}", printable_name(path), detail);
  if (offset) message += fmt::format(" (at byte {})", *offset);
  return message;
}

// The length of the valid UTF-8 sequence at the start of `text` that encodes a printable
// character, or 0.
std::size_t printable_utf8(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  char32_t code = 0;
  if (lead < 0x80) return (lead >= 0x20 && lead != 0x7f) ? 1 : 0;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2, code = lead & 0x1fu;
  else if (lead >= 0xe0 && lead <= 0xef) length = 3, code = lead & 0x0fu;
  else if (lead >= 0xf0 && lead <= 0xf4) length = 4, code = lead & 0x07u;
  else return 0;
  if (text.size() < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return 0;
    code = (code << 6) | (byte(i) & 0x3fu);
  }
  const bool overlong = (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
  const bool surrogate = code >= 0xd800 && code <= 0xdfff;
  const bool control = code < 0xa0 || code == 0x2028 || code == 0x2029;
  return (overlong || surrogate || control || code > 0x10ffff) ? 0 : length;
}

}  // namespace

std::string printable_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  while (!name.empty()) {
    const char c = name.front();
    const char* letter = nullptr;
    switch (c) {
      case '\\': letter = "\\\\"; break;
      case '\a': letter = "\\a"; break;
      case '\b': letter = "\\b"; break;
      case '\t': letter = "\\t"; break;
      case '\n': letter = "\\n"; break;
      case '\v': letter = "\\v"; break;
      case '\f': letter = "\\f"; break;
      case '\r': letter = "\\r"; break;
      default: break;
    }
    if (letter) {
      out += letter;
      name.remove_prefix(1);
      continue;
    }
    if (const std::size_t length = printable_utf8(name)) {
      out.append(name.substr(0, length));
      name.remove_prefix(length);
      continue;
    }
    out += fmt::format("\\{:03o}", static_cast<unsigned char>(c));
    name.remove_prefix(1);
  }
  return out;
}

Error::Error(ErrorKind kind, std::string detail, std::string path,
             std::optional<std::uint64_t> offset)
    : std::runtime_error(format_message(detail, path, offset)),
      kind_(kind),
      detail_(std::move(detail)),
      path_(std::move(path)),
      offset_(offset) {}

Error Error::with_context(const std::string& path, std::optional<std::uint64_t> offset) const {
  Error copy(kind_, detail_, path_.empty() ? path : path_, offset_ ? offset_ : offset);
  copy.set_error_number(error_number_);
  return copy;
}

Error output_exists_error(const std::string& path) {
  return Error(ErrorKind::kIo, "already exists", path).set_error_number(EEXIST);
}

bool is_output_exists(const Error& error) {
  return error.kind() == ErrorKind::kIo && error.error_number() == EEXIST && error.detail() == "already exists";
}

void throw_system_error(const std::string& what, const std::string& path) {
  const int saved = errno;
  throw Error(ErrorKind::kIo, fmt::format("{}: {}", what, std::strerror(saved)), path).set_error_number(saved);
}

}  // namespace sluice
