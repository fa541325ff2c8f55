// What finding a dynamic-Huffman block header at any bit costs (codecs/deflate_blocks.cpp,
// find_dynamic_block), on a real stream: the whole raw deflate stream of a gzip member scanned
// from its start, each search from just past the last position found, as a cutter that wants
// every block would. Counts what is found against the stream's true blocks.
//
// Usage: sluice_find_blocks FILE.gz [REPS]   (the first member of FILE.gz; REPS 5)
// Prints ns per bit position scanned (median of REPS), the positions found, the true non-final
// dynamic blocks and the true blocks of each type, the false positives and any true block missed.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "codecs/deflate_engines.h"

using namespace sluice;

namespace {

// Where the raw deflate stream of the gzip member at the start of `file` starts (RFC 1952).
std::size_t deflate_start(const std::vector<std::uint8_t>& file) {
  if (file.size() < 10 || file[0] != 0x1f || file[1] != 0x8b || file[2] != 8) throw std::runtime_error("not gzip");
  const std::uint8_t flags = file[3];
  std::size_t at = 10;
  if (flags & 4) at += 2 + (file.at(at) | std::size_t{file.at(at + 1)} << 8);  // FEXTRA
  for (const int zero_ended : {8, 16}) {                                       // FNAME, FCOMMENT
    if (flags & zero_ended)
      at = static_cast<std::size_t>(std::find(file.begin() + static_cast<std::ptrdiff_t>(at), file.end(), 0) -
                                    file.begin()) +
           1;
  }
  if (flags & 2) at += 2;  // FHCRC
  return at;
}

std::vector<std::uint8_t> read_whole(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot open ") + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.gz [REPS]\n", argv[0]);
    return 2;
  }
  const std::vector<std::uint8_t> file = read_whole(argv[1]);
  const int reps = argc > 2 ? std::stoi(argv[2]) : 5;

  const std::size_t start = deflate_start(file);
  const ByteView tail(file.data() + start, file.size() - start);
  const std::vector<codecs::DeflateBlockStart> blocks = codecs::list_deflate_blocks(tail);
  const codecs::DeflateBlocks ends = codecs::walk_deflate_blocks(tail);
  const ByteView stream = tail.first((ends.end_bit + 7) / 8);
  const std::size_t positions = stream.size() * 8;

  std::vector<std::size_t> found;
  std::vector<double> times;
  for (int rep = 0; rep < reps; ++rep) {
    found.clear();
    const auto begin = std::chrono::steady_clock::now();
    for (std::size_t at = 0;;) {
      const auto hit = codecs::find_dynamic_block(stream, at, positions);
      if (!hit) break;
      found.push_back(*hit);
      at = *hit + 1;
    }
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count());
  }
  std::sort(times.begin(), times.end());

  std::vector<std::size_t> truth;  // the non-final dynamic blocks
  std::size_t of_type[4] = {};
  for (const codecs::DeflateBlockStart& block : blocks) {
    ++of_type[block.type];
    if (block.type == 2 && !block.final) truth.push_back(block.bit);
  }
  std::vector<std::size_t> false_positives, missed;
  std::set_difference(found.begin(), found.end(), truth.begin(), truth.end(), std::back_inserter(false_positives));
  std::set_difference(truth.begin(), truth.end(), found.begin(), found.end(), std::back_inserter(missed));

  std::printf("%s: %zu bytes of deflate, %zu bit positions\n", argv[1], stream.size(), positions);
  std::printf("%.3f ns per bit position (median of %d; %.3f to %.3f), %.0f MB/s of deflate\n",
              times[times.size() / 2] * 1e9 / static_cast<double>(positions), reps,
              times.front() * 1e9 / static_cast<double>(positions), times.back() * 1e9 / static_cast<double>(positions),
              static_cast<double>(stream.size()) / times[times.size() / 2] / 1e6);
  std::printf("found %zu; true blocks %zu (stored %zu, fixed %zu, dynamic %zu), non-final dynamic %zu\n", found.size(),
              blocks.size(), of_type[0], of_type[1], of_type[2], truth.size());
  std::printf("false positives %zu (%.3g per MB of deflate), true blocks missed %zu\n", false_positives.size(),
              static_cast<double>(false_positives.size()) * 1e6 / static_cast<double>(stream.size()), missed.size());
  return missed.empty() ? 0 : 1;
}
