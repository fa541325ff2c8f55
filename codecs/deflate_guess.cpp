// Guessed pieces of a deflate stream: inflated behind two made-up windows, filled in later
// (deflate_engines.h, guess_piece).
#include <array>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "codecs/deflate_engines.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

constexpr std::size_t kWindowBytes = 32 * 1024;

// Window position i holds A[i] = i mod 256 in the first window and A[i] ^ (0x80 | i / 256) in the
// second: the two differ in every position, and a differing pair (a, b) names the position
// ((a ^ b) & 0x7f) * 256 + a. A byte the piece writes itself is the same in both outputs.
struct MadeUpWindows {
  std::array<std::uint8_t, kWindowBytes> first{}, second{};
  MadeUpWindows() {
    for (std::size_t i = 0; i < kWindowBytes; ++i) {
      first[i] = static_cast<std::uint8_t>(i);
      second[i] = static_cast<std::uint8_t>(first[i] ^ (0x80 | (i >> 8)));
    }
  }
};

const MadeUpWindows& windows() {
  static const MadeUpWindows made_up;
  return made_up;
}

std::uint64_t load_u64(const std::uint8_t* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void store_u64(std::uint8_t* p, std::uint64_t v) { std::memcpy(p, &v, sizeof v); }

}  // namespace

// `out`: the first output (n bytes), the two outputs XORed (n bytes: 0 where the byte is the
// piece's own), then n (8 bytes).
bool guess_piece(ChunkInflater& inflater, ByteView deflated, PieceEdges edges, std::size_t max_bytes, Buffer& out) {
  const MadeUpWindows& made_up = windows();
  if (max_bytes < 16) {
    out.clear();
    return false;
  }
  const std::size_t room = (max_bytes - 8) / 2;
  out.resize(max_bytes);
  std::size_t size = 0;
  try {
    size = inflater.inflate(deflated, {out.data(), room}, {made_up.first.data(), kWindowBytes}, edges);
    // The same piece: the same size (the room is one more byte, so that more would show).
    if (inflater.inflate(deflated, {out.data() + size, size + (size < room ? 1 : 0)},
                         {made_up.second.data(), kWindowBytes}, edges) != size) {
      throw Error(ErrorKind::kInternal, "a piece inflated to two sizes");
    }
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kCorruptData) throw;
    out.clear();
    return false;
  }
  std::uint8_t* a = out.data();
  std::uint8_t* b = out.data() + size;
  std::size_t i = 0;
  for (; i + 8 <= size; i += 8) store_u64(b + i, load_u64(a + i) ^ load_u64(b + i));
  for (; i < size; ++i) b[i] ^= a[i];
  store_u64(out.data() + 2 * size, size);
  out.resize(2 * size + 8);
  return true;
}

std::size_t guessed_size(const Buffer& guessed) {
  if (guessed.size() < 8) throw Error(ErrorKind::kInternal, "not a guessed piece");
  const std::uint64_t size = load_u64(guessed.data() + guessed.size() - 8);
  if (size > (guessed.size() - 8) / 2 || 2 * size + 8 != guessed.size()) {
    throw Error(ErrorKind::kInternal, "not a guessed piece");
  }
  return static_cast<std::size_t>(size);
}

GuessWindow::GuessWindow(ByteView window) : table_(kTableBytes) {
  missing_ = kWindowBytes - std::min(kWindowBytes, window.size());
  for (std::size_t own = 0; own < 256; ++own) table_[own] = static_cast<std::uint8_t>(own);  // d == 0
  // A window byte's pair (a, d) with d = 0x80 | position / 256 and a = position mod 256 looks up
  // (d << 8) | a = 0x8000 + position.
  std::uint8_t* positions = table_.data() + 0x8000;
  if (window.size() >= kWindowBytes) {
    std::memcpy(positions, window.data() + window.size() - kWindowBytes, kWindowBytes);
  } else {
    std::memset(positions, 0, missing_);
    if (!window.empty()) std::memcpy(positions + missing_, window.data(), window.size());
  }
}

void resolve_guess(Buffer& guessed, const GuessWindow& window, std::size_t begin, std::size_t end) {
  const std::size_t size = guessed_size(guessed);
  if (begin > end || end > size) throw Error(ErrorKind::kInternal, "a guessed piece's range is out of bounds");
  std::uint8_t* a = guessed.data();
  const std::uint8_t* differ = guessed.data() + size;
  const std::uint8_t* table = window.table_.data();
  if (window.missing_ > 0) {  // rare: less than 32 KiB of output came before the piece
    for (std::size_t i = begin; i < end; ++i) {
      if (differ[i] != 0 && ((std::size_t{differ[i] & 0x7fu} << 8) | a[i]) < window.missing_) {
        throw Error(ErrorKind::kCorruptData, "invalid distance too far back");
      }
    }
  }
  // One lookup per byte, no branch: the piece's own bytes (d == 0) look themselves up. The index
  // (d << 8) | a is the pair interleaved into 16 bits.
  std::size_t i = begin;
#if defined(__SSE2__)
  for (; i + 16 <= end; i += 16) {
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(differ + i));
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(d, _mm_setzero_si128())) == 0xffff) continue;  // all the piece's own
    const __m128i own = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i));
    alignas(16) std::uint16_t index[16];
    _mm_store_si128(reinterpret_cast<__m128i*>(index), _mm_unpacklo_epi8(own, d));
    _mm_store_si128(reinterpret_cast<__m128i*>(index + 8), _mm_unpackhi_epi8(own, d));
    for (std::size_t k = 0; k < 16; ++k) a[i + k] = table[index[k]];
  }
#endif
  for (; i < end; ++i) a[i] = table[(std::size_t{differ[i]} << 8) | a[i]];
}

void finish_guess(Buffer& guessed) { guessed.resize(guessed_size(guessed)); }

}  // namespace sluice::codecs
