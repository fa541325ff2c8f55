// The demo job: a deterministic, log-like sample through every codec and back.
#include "apps/demo.h"

#include <array>
#include <cstring>

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

}  // namespace

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
    fmt::print("sluice demo: {:.1f} MiB {}, {} thread(s)\n\n", static_cast<double>(sample.size()) / (1 << 20),
               description, threads);
    fmt::print("{:<6} {:>5} {:>14} {:>8} {:>15} {:>17}  {}\n", "codec", "level", "compressed", "ratio",
               "compress MB/s", "decompress MB/s", "round trip");
    bool all_ok = true;
    for (const auto& name : CodecRegistry::global().names()) {
      CompressOptions compress_options;
      compress_options.codec = name;
      compress_options.threads = threads;
      MemorySource source(sample.view());
      MemorySink packed;
      const CompressStats packed_stats = compress(source, packed, compress_options);
      MemorySource packed_source(packed.buffer().view());
      MemorySink unpacked;
      const DecompressStats unpacked_stats = decompress(packed_source, unpacked);
      const bool ok = unpacked.buffer().size() == sample.size() &&
                      (sample.size() == 0 || std::memcmp(unpacked.buffer().data(), sample.data(), sample.size()) == 0);
      all_ok = all_ok && ok;
      const auto rate = [&](double seconds) { return seconds > 0 ? static_cast<double>(sample.size()) / seconds / 1e6 : 0.0; };
      fmt::print("{:<6} {:>5} {:>10.2f} MiB {:>7.2f}% {:>15.1f} {:>17.1f}  {}\n", name,
                 CodecRegistry::global().create(name)->options().level,
                 static_cast<double>(packed_stats.output_bytes) / (1 << 20),
                 sample.size() ? 100.0 * static_cast<double>(packed_stats.output_bytes) / static_cast<double>(sample.size()) : 0.0,
                 rate(packed_stats.seconds), rate(unpacked_stats.seconds), ok ? "ok" : "MISMATCH");
    }
    fmt::print("\n{}\n", all_ok ? "All round trips match." : "A round trip did not match.");
    return all_ok ? kExitSuccess : kExitFailure;
  } catch (const Error& e) {
    return report_error("sluice", e);
  }
}

}  // namespace sluice::app
