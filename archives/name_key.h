// A name as 128 bits of its SHA-256 (internal): for sets of names that an archive chooses, where
// std::hash's values can be made to meet (a second reader built such names) and whole names can
// be megabytes each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::detail {

struct NameKey {
  std::uint64_t high = 0, low = 0;
  bool operator==(const NameKey&) const = default;
};

struct NameKeyHash {
  std::size_t operator()(const NameKey& key) const { return key.high; }  // uniform already
};

NameKey name_key(std::string_view name);

}  // namespace sluice::detail
