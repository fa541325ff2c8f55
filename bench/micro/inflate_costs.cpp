// What parallel inflate of one gzip member costs per output byte, stage by stage, on one thread,
// through the gzip codec's own splitter, unit decoder and verifier (codecs/gzip_codec.cpp):
//   cut       the splitter finds where pieces end (sync flushes, or block headers in gzip's output);
//   in order  the writer inflates a piece knowing its window, takes its CRC-32, keeps its window;
//   guess     a worker inflates a piece twice behind made-up windows;
//   resolve   a guessed piece filled in from its window, with its CRC-32.
// From those, the model of BENCHMARKS.md ("Parallel inflate"): with N threads and a share r of
// the pieces guessed, the writer's part (1 - r) * in_order runs in order, everything else on any
// thread, so the time is max((1 - r) * in_order, (cut + (1 - r) * in_order + r * (guess + resolve)) / N),
// with r = in_order (N - 1) / (in_order (N - 1) + guess + resolve), the share the splitter guesses
// (the cut, on the reading thread, is left out of it).
//
// Usage: sluice_inflate_costs FILE.gz [REPS]   (one member of another tool's: pigz's, gzip's)
// Prints the costs in ns per output byte (median of REPS) and the model for 1 to 64 threads; with
// --data, the model as "threads MB/s" lines for gnuplot.
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/codec.h"
#include "sluice/codec_author.h"

using namespace sluice;

namespace {

struct Piece {
  ByteView bytes;
  Cut cut;
};

double seconds_of(const std::function<void()>& run, int reps) {
  std::vector<double> times;
  for (int rep = 0; rep < reps; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.gz [REPS] [--data]\n", argv[0]);
    return 2;
  }
  std::ifstream file(argv[1], std::ios::binary);
  const std::vector<std::uint8_t> stream((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  const int reps = argc > 2 && std::string(argv[2]) != "--data" ? std::stoi(argv[2]) : 7;
  const bool data = std::string(argv[argc - 1]) == "--data";

  const auto codec = CodecRegistry::global().create("gzip", {});
  std::vector<Piece> pieces;
  Cut header;
  std::uint64_t header_offset = 0;
  const ByteView all(stream.data(), stream.size());
  // Cut: the whole stream in hand, as from a mapped file.
  const double cutting = seconds_of(
      [&] {
        const auto splitter = codec->make_splitter();
        splitter->set_hints({64, 0});  // every piece but the first guessed: the cuts are the same
        pieces.clear();
        for (std::size_t at = 0; at < stream.size();) {
          const Cut cut = splitter->next(all.subspan(at), at);
          if (cut.kind == Cut::Kind::kMarker && pieces.empty()) {
            header = cut;
            header_offset = at;
          } else if (cut.kind == Cut::Kind::kUnit) {
            pieces.push_back({all.subspan(at, cut.bytes), cut});
          } else {
            break;  // the last piece, decoded serially
          }
          at += cut.bytes;
        }
      },
      reps);
  if (pieces.size() < 2) throw std::runtime_error("not a member cut into pieces");

  std::size_t output_bytes = 0;
  std::vector<Buffer> guessed(pieces.size());
  Buffer decoded;
  tbb::task_arena one(1);  // the verifier fills guesses in on every free thread: here one
  // In order: every piece inflated by the verifier with its window, CRC-32 and window kept.
  const double in_order = seconds_of(
      [&] {
        const auto verifier = codec->make_unit_verifier();
        verifier->on_marker(header, header_offset);
        output_bytes = 0;
        for (const Piece& piece : pieces) {
          decoded.clear();
          verifier->complete(piece.cut, piece.bytes, decoded);
          verifier->on_unit(piece.cut, decoded.view());
          output_bytes += decoded.size();
        }
      },
      reps);
  // Guessed: every piece but the first on one unit decoder.
  const auto unit_decoder = codec->make_unit_decoder();
  const double guess = seconds_of(
      [&] {
        for (std::size_t i = 1; i < pieces.size(); ++i)
          unit_decoder->decode(pieces[i].bytes, pieces[i].cut, guessed[i]);
      },
      reps);
  // Resolved: the first in order, the rest filled in (a copy of each guess, whose cost is taken
  // off: it is measured alone).
  std::vector<Buffer> copies(pieces.size());
  auto copy_guesses = [&] {
    for (std::size_t i = 1; i < pieces.size(); ++i) {
      copies[i].clear();
      copies[i].append(guessed[i].view());
    }
  };
  const double copying = seconds_of(copy_guesses, reps);
  std::size_t guessed_bytes = 0;
  const double resolve_and_copy = seconds_of(
      [&] {
        copy_guesses();
        one.execute([&] {
          const auto verifier = codec->make_unit_verifier();
          verifier->on_marker(header, header_offset);
          guessed_bytes = 0;
          for (std::size_t i = 0; i < pieces.size(); ++i) {
            Buffer& piece = i == 0 ? decoded : copies[i];
            if (i == 0) piece.clear();
            verifier->complete(pieces[i].cut, pieces[i].bytes, piece);
            verifier->on_unit(pieces[i].cut, piece.view());
            if (i > 0) guessed_bytes += piece.size();
          }
        });
      },
      reps);
  const double first_piece =
      in_order * static_cast<double>(output_bytes - guessed_bytes) / static_cast<double>(output_bytes);
  const double per_byte = 1e9 / static_cast<double>(output_bytes);
  const double c_in = in_order * per_byte;
  const double c_cut = cutting * per_byte;
  const double c_guess = guess * 1e9 / static_cast<double>(guessed_bytes);
  const double c_resolve = (resolve_and_copy - copying - first_piece) * 1e9 / static_cast<double>(guessed_bytes);

  if (!data) {
    std::printf("%zu pieces, %zu output bytes (median of %d)\n", pieces.size(), output_bytes, reps);
    std::printf(
        "in order %.3f ns/B (%.0f MB/s), guess %.3f ns/B (%.2fx), resolve %.3f ns/B (%.2fx), cut %.3f ns/B "
        "(%.2fx)\n",
        c_in, 1e3 / c_in, c_guess, c_guess / c_in, c_resolve, c_resolve / c_in, c_cut, c_cut / c_in);
    std::printf("threads  share  model MB/s  x one thread in order\n");
  }
  for (int n = 1; n <= 64; n *= 2) {
    const double share = n == 1 ? 0 : c_in * (n - 1) / (c_in * (n - 1) + c_guess + c_resolve);
    const double writer = (1 - share) * c_in;
    // One thread does not cut: the member is inflated serially.
    const double total = (n == 1 ? 0 : c_cut) + (1 - share) * c_in + share * (c_guess + c_resolve);
    const double ns = std::max(writer, total / n);
    if (data) {
      std::printf("%d %.0f\n", n, 1e3 / ns);
    } else {
      std::printf("%7d  %5.2f  %10.0f  %5.2fx\n", n, share, 1e3 / ns, c_in / ns);
    }
  }
  return 0;
}
