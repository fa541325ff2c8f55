// A name as 128 bits of its SHA-256 (archives/name_key.h).
#include "archives/name_key.h"

#include <nettle/sha2.h>

#include <cstring>

namespace sluice::detail {

NameKey name_key(std::string_view name) {
  sha256_ctx context;
  sha256_init(&context);
  sha256_update(&context, name.size(), reinterpret_cast<const std::uint8_t*>(name.data()));
  std::uint8_t digest[16];
  sha256_digest(&context, sizeof digest, digest);
  NameKey key;
  std::memcpy(&key.high, digest, sizeof key.high);
  std::memcpy(&key.low, digest + sizeof key.high, sizeof key.low);
  return key;
}

}  // namespace sluice::detail
