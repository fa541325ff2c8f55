// The demo job: a deterministic, log-like sample through every codec and back, timed as the
// command runs it.
#include "apps/demo.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "apps/exit_status.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice::app {
namespace {

// A web-server access log with realistic redundancy, the same bytes on every run.
Buffer make_sample(std::uint64_t bytes) {
  static constexpr std::array<const char*, 6> kPaths = {"/", "/index.html", "/api/v1/items", "/static/app.js",
                                                        "/images/logo.png", "/api/v1/orders"};
  static constexpr std::array<const char*, 4> kAgents = {"curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64)",
                                                         "python-requests/2.28", "Go-http-client/1.1"};
  static constexpr std::array<int, 5> kStatus = {200, 200, 200, 304, 404};
  Buffer sample(bytes + 512);
  std::uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  std::uint64_t second = 1700000000;
  while (sample.size() < bytes) {
    const std::uint64_t r = next();
    second += r % 3;
    const std::string line = fmt::format(
        "10.{}.{}.{} - - [{}] \"GET {}?id={} HTTP/1.1\" {} {} \"{}\"\n", (r >> 8) % 4, (r >> 16) % 256,
        (r >> 24) % 256, second, kPaths[(r >> 32) % kPaths.size()], (r >> 40) % 100000,
        kStatus[(r >> 36) % kStatus.size()], (r >> 44) % 50000, kAgents[(r >> 52) % kAgents.size()]);
    sample.append(as_bytes(line));
  }
  sample.resize(bytes);
  return sample;
}

Buffer read_file(const std::string& path) {
  FdSource source(path);
  MemorySink sink;
  Buffer block(1 << 20);
  for (std::size_t got; (got = source.read(block.data(), block.capacity())) > 0;) sink.write({block.data(), got});
  return sink.take();
}

// Timed runs per codec and direction, after one warm-up run (which also faults in the outputs'
// pages and makes the codecs' contexts).
constexpr int kRuns = 5;

// Takes the writes of a run into memory allocated, and touched, once before any run is timed and
// reused by every run: what is timed is the graph, not a buffer growing and faulting in its
// pages as it grows (the demo used to decode into a fresh MemorySink, which made decompression
// look slower than compression in some runs).
class PresizedSink final : public ByteSink {
 public:
  explicit PresizedSink(std::size_t capacity) : buffer_(capacity) {
    buffer_.resize(capacity);
    std::memset(buffer_.data(), 0, capacity);
    buffer_.clear();
  }
  void write(ByteView bytes) override { buffer_.append(bytes); }  // grows only past the capacity
  const std::string& name() const override { return name_; }
  void clear() { buffer_.clear(); }
  ByteView view() const { return buffer_.view(); }

 private:
  Buffer buffer_;
  std::string name_ = "<memory>";
};

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

const char* demo_help_footer() {
  return "For each codec at its default level: the compressed size and ratio, the speed of compressing\n"
         "the sample and of decompressing it again (in memory, through the graphs sluice runs on files;\n"
         "the median of 5 runs after a warm-up), and whether the round trip gave the sample back.\n"
         "Examples:\n"
         "  sluice demo                    the built-in 32 MiB sample on all cores\n"
         "  sluice demo --size 256M -j 4   a larger sample on 4 threads\n"
         "  sluice demo big.log            your own data instead of the sample\n"
         "Exit status: 0 when every round trip matched, 1 otherwise.";
}

int run_demo(const CliOptions& options) {
  try {
    Buffer sample;
    std::string description;
    if (options.files.empty()) {
      sample = make_sample(options.demo_bytes);
      description = "built-in sample (synthetic web-server log)";
    } else {
      for (const auto& path : options.files) sample.append(read_file(path).view());
      description = fmt::format("{} file(s)", options.files.size());
    }
    const int threads = resolve_threads(options.threads);
    fmt::print("sluice demo: {:.1f} MiB {}, {} thread(s)\n", static_cast<double>(sample.size()) / (1 << 20),
               description, threads);
    fmt::print(
        "Measured: compress() and decompress(), the graphs sluice runs on files, from the sample in memory\n"
        "into output buffers allocated beforehand; a time is one call (its threads started, the graph run),\n"
        "not making the sample or checking the round trip; the median of {} runs after a warm-up.\n"
        "MB/s: millions of uncompressed bytes per second, both ways.\n\n",
        kRuns);
    fmt::print("{:<6} {:>5} {:>14} {:>8} {:>15} {:>17}  {}\n", "codec", "level", "compressed", "ratio",
               "compress MB/s", "decompress MB/s", "round trip");
    // The outputs: the largest compressed form (stored blocks, incompressible frames) and the sample.
    PresizedSink packed(sample.size() + sample.size() / 16 + (1 << 20));
    PresizedSink unpacked(sample.size());
    bool all_ok = true;
    for (const auto& name : CodecRegistry::global().names()) {
      CompressOptions compress_options;
      compress_options.codec = name;
      compress_options.threads = threads;
      DecompressOptions decompress_options;
      decompress_options.threads = threads;
      std::vector<double> compress_seconds;
      std::vector<double> decompress_seconds;
      std::uint64_t packed_bytes = 0;
      bool ok = true;
      for (int run = 0; run <= kRuns; ++run) {  // run 0 is the warm-up
        packed.clear();
        MemorySource source(sample.view());
        const CompressStats packed_stats = compress(source, packed, compress_options);
        packed_bytes = packed_stats.output_bytes;
        unpacked.clear();
        MemorySource packed_source(packed.view());
        const DecompressStats unpacked_stats = decompress(packed_source, unpacked, decompress_options);
        const ByteView back = unpacked.view();
        ok = ok && back.size() == sample.size() &&
             (sample.size() == 0 || std::memcmp(back.data(), sample.data(), sample.size()) == 0);
        if (run == 0) continue;
        compress_seconds.push_back(packed_stats.seconds);
        decompress_seconds.push_back(unpacked_stats.seconds);
      }
      all_ok = all_ok && ok;
      const auto rate = [&](double seconds) { return seconds > 0 ? static_cast<double>(sample.size()) / seconds / 1e6 : 0.0; };
      fmt::print("{:<6} {:>5} {:>10.2f} MiB {:>7.2f}% {:>15.1f} {:>17.1f}  {}\n", name,
                 CodecRegistry::global().create(name)->options().level, static_cast<double>(packed_bytes) / (1 << 20),
                 sample.size() ? 100.0 * static_cast<double>(packed_bytes) / static_cast<double>(sample.size()) : 0.0,
                 rate(median(compress_seconds)), rate(median(decompress_seconds)), ok ? "ok" : "MISMATCH");
    }
    fmt::print("\n{}\n", all_ok ? "All round trips match." : "A round trip did not match.");
    return all_ok ? kExitSuccess : kExitFailure;
  } catch (const Error& e) {
    return report_error("sluice", e);
  }
}

}  // namespace sluice::app
