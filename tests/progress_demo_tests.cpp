// End-to-end tests of the progress display (on a terminal through `script`, on a pipe, forced,
// turned off) and of `sluice demo` (what it says it measures, every round trip checked, its help).
// They run the real program; no assertion depends on how fast anything runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "tests/test_support.h"

namespace sluice {
namespace {

using testing::describe;
using testing::quote;
using testing::text_bytes;

class Progress : public testing::CommandTest {
 protected:
  // Runs `sluice ARGS` with a terminal for its stdout and stderr (`script` gives it a
  // pseudo-terminal; their bytes, mixed, come back as stdout), the display's delay set to 0 so
  // that it appears on a short run.
  testing::CommandResult on_terminal(const std::string& args) {
    return sh(
        fmt::format("SLUICE_PROGRESS_DELAY_MS=0 script -qec {} /dev/null", quote(testing::sluice() + " " + args)));
  }
  // Runs `sluice ARGS` with stderr a pipe (captured), the delay set to 0.
  testing::CommandResult on_pipe(const std::string& args) {
    return sluice_with_env("SLUICE_PROGRESS_DELAY_MS=0", args);
  }
  testing::CommandResult sluice_with_env(const std::string& env, const std::string& args) {
    return sh(env + " " + testing::sluice() + " " + args);
  }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_F(Progress, ASingleFileOnATerminalShowsItsNameRateAndASummary) {
  put("big.txt", text_bytes(4 << 20, 1));
  const auto r = on_terminal("-F lz4 big.txt");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "\r\033[K")) << "redrawn in place: " << r.out;
  EXPECT_TRUE(contains(r.out, "big.txt: ")) << "the current file: " << r.out;
  EXPECT_TRUE(contains(r.out, " of 4.0 MiB (")) << "the total and a percentage: " << r.out;
  EXPECT_TRUE(contains(r.out, " MB/s, ")) << "a rate: " << r.out;
  EXPECT_TRUE(contains(r.out, " elapsed")) << r.out;
  // The summary is left on the terminal, after the bar was erased.
  EXPECT_TRUE(contains(r.out, "\r\033[Ksluice: 1 file, 4.0 MiB -> ")) << r.out;
  EXPECT_TRUE(contains(r.out, "%) in ")) << "the ratio and the time: " << r.out;
  EXPECT_EQ(sh("test -s big.txt.lz4 && lz4 -dc big.txt.lz4 | cmp - big.txt").status, 0);
}

TEST_F(Progress, TheBarFitsANarrowTerminal) {
  put("a-file-with-a-rather-long-name-indeed.txt", text_bytes(4 << 20, 15));
  const auto r =
      sh(fmt::format("script -qec {} /dev/null", quote("stty cols 40; SLUICE_PROGRESS_DELAY_MS=0 " + testing::sluice() +
                                                       " -F lz4 a-file-with-a-rather-long-name-indeed.txt")));
  ASSERT_EQ(r.status, 0) << describe(r);
  std::size_t bars = 0;
  for (std::size_t at = 0; (at = r.out.find("\r\033[K", at)) != std::string::npos;) {
    at += 4;
    const std::size_t end = r.out.find_first_of("\r\n", at);
    const std::string bar = r.out.substr(at, end - at);
    if (bar.empty() || bar.starts_with("sluice: ")) continue;  // erased; the summary
    ++bars;
    EXPECT_LE(bar.size(), 39u) << "wraps a 40-column terminal: " << bar;
  }
  EXPECT_GT(bars, 0u) << r.out;
  EXPECT_TRUE(contains(r.out, "sluice: 1 file, ")) << r.out;
}

TEST_F(Progress, DecompressingAndTestingShowItToo) {
  put("big.txt", text_bytes(4 << 20, 2));
  ASSERT_EQ(sluice("-F zstd big.txt").status, 0);
  auto r = on_terminal("-d -f big.txt.zst");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "big.txt.zst: ")) << r.out;
  EXPECT_TRUE(contains(r.out, "sluice: 1 file, ")) << r.out;
  EXPECT_TRUE(contains(r.out, " -> 4.0 MiB (")) << "decoded size in the summary: " << r.out;
  r = on_terminal("-t big.txt.zst");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "big.txt.zst: OK")) << r.out;
  EXPECT_TRUE(contains(r.out, "sluice: 1 file, ")) << r.out;
}

TEST_F(Progress, NotByDefaultWhenDataOrRecordsGoToTheSameTerminal) {
  put("big.txt", text_bytes(4 << 20, 14));
  ASSERT_EQ(sluice("-F lz4 big.txt").status, 0);
  auto r = on_terminal("-dc big.txt.lz4 > copy.txt");  // stdout a file: shown
  EXPECT_TRUE(contains(r.out, "sluice: 1 file, ")) << r.out;
  r = on_terminal("-dc big.txt.lz4");
  ASSERT_EQ(r.status, 0);
  EXPECT_FALSE(contains(r.out, "\033[K")) << "no bar in the data";
  EXPECT_FALSE(contains(r.out, "sluice: 1 file, "));
  r = on_terminal("-t --json big.txt.lz4");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "{\"index\": 0, \"input\": \"big.txt.lz4\"")) << r.out;
  EXPECT_FALSE(contains(r.out, "\033[K")) << r.out;
  r = on_terminal("--progress -t --json big.txt.lz4");  // unless asked for
  EXPECT_TRUE(contains(r.out, "sluice: 1 file, ")) << r.out;
}

TEST_F(Progress, APipeShowsNothingByDefault) {
  put("big.txt", text_bytes(4 << 20, 3));
  auto r = on_pipe("-F lz4 big.txt");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  r = on_pipe("-d -c big.txt.lz4 > /dev/null");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  r = on_pipe("-F zstd -c < big.txt > x.zst");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
}

TEST_F(Progress, ForcedOnAPipeItPrintsPlainLinesAndTheSummary) {
  put("big.txt", text_bytes(4 << 20, 4));
  const auto r = on_pipe("--progress -F lz4 big.txt");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_FALSE(contains(r.err, "\r")) << r.err;
  EXPECT_FALSE(contains(r.err, "\033")) << r.err;
  const auto lines = lines_of(r.err);
  ASSERT_GE(lines.size(), 2u) << r.err;
  // With no delay a line is printed at once (the file not yet begun), then a line a second.
  EXPECT_EQ(lines.front().rfind("sluice: 0 B of 4.0 MiB (0%), ", 0), 0u) << r.err;
  EXPECT_EQ(lines.back().rfind("sluice: 1 file, 4.0 MiB -> ", 0), 0u) << r.err;
  for (const auto& line : lines) EXPECT_EQ(line.rfind("sluice: ", 0), 0u) << r.err;
}

TEST_F(Progress, ForcedOnAShortRunItPrintsAtLeastTheSummary) {
  put("small.txt", text_bytes(100000, 5));
  const auto r = sluice("--progress -F gzip small.txt");  // the default delay of a second
  ASSERT_EQ(r.status, 0) << describe(r);
  const auto lines = lines_of(r.err);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().rfind("sluice: 1 file, 97.7 KiB -> ", 0), 0u) << r.err;
}

TEST_F(Progress, StdinShowsAPercentageOnlyWhenItsSizeIsKnown) {
  put("big.txt", text_bytes(4 << 20, 6));
  auto r = on_pipe("--progress -F lz4 -c < big.txt > a.lz4");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.err, "sluice: 0 B of 4.0 MiB (0%)")) << "a regular file as stdin: " << r.err;
  r = on_pipe("--progress -F lz4 -c < <(cat big.txt) > b.lz4");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_FALSE(contains(r.err, " of ")) << "a pipe: no total" << r.err;
  EXPECT_FALSE(contains(r.err, "ETA")) << r.err;
  EXPECT_TRUE(contains(r.err, "sluice: 0 B, 0.0 MB/s, 0:00 elapsed")) << r.err;
  EXPECT_TRUE(contains(r.err, "sluice: 1 file, 4.0 MiB -> ")) << r.err;
}

TEST_F(Progress, NoProgressAndQuietShowNothingAndTheLastFlagWins) {
  put("big.txt", text_bytes(4 << 20, 7));
  for (const char* flags : {"--no-progress", "-q", "--progress --no-progress", "--progress -q"}) {
    const auto r = on_terminal(fmt::format("-f -F lz4 {} big.txt", flags));
    ASSERT_EQ(r.status, 0) << flags << ": " << describe(r);
    EXPECT_EQ(r.out, "") << flags;
  }
  const auto r = on_terminal("-f -F lz4 --no-progress --progress big.txt");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "sluice: 1 file, ")) << r.out;
  const auto piped = on_pipe("-f -F lz4 --progress --no-progress big.txt");
  EXPECT_EQ(piped.err, "");
}

TEST_F(Progress, ABatchCountsItsFilesAndNamesFailures) {
  put("a.txt", text_bytes(1 << 20, 8));
  put("b.txt", text_bytes(1 << 20, 9));
  const auto r = on_pipe("--progress -F lz4 a.txt missing.txt b.txt");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(contains(r.err, "sluice: [")) << r.err;
  EXPECT_TRUE(contains(r.err, "/3 files] ")) << r.err;
  EXPECT_TRUE(contains(r.err, "missing.txt: cannot open")) << r.err;
  EXPECT_TRUE(contains(r.err, "sluice: 2 files (1 failed), 2.0 MiB -> ")) << r.err;
}

// The display is driven by the bytes read: from a FIFO fed part of the input and then held open,
// it shows them read while the one 64 MiB chunk they start cannot be compressed yet, so no output
// exists. Deterministic: nothing is written before the input ends or a chunk fills.
TEST_F(Progress, ItMovesWithTheBytesReadBeforeAnyOutputExists) {
  put("first", text_bytes(3000000, 10));
  put("rest", text_bytes(1000000, 11));
  const std::string script = fmt::format(
      "mkfifo in.fifo\n"
      "{} --progress -F zstd -19 --chunk-size 64M -c < in.fifo > out.zst 2> err.txt &\n"
      "pid=$!\n"
      "exec 3> in.fifo\n"
      "cat first >&3\n"
      // A plain line a second: wait (at most a minute) for one that shows all of it read.
      "for i in $(seq 600); do grep -q '2.9 MiB read' err.txt && break; sleep 0.1; done\n"
      "grep '2.9 MiB read' err.txt | head -n 1 > seen.txt\n"
      "stat -c %s out.zst > size_then.txt\n"
      "cat rest >&3\n"
      "exec 3>&-\n"
      "wait $pid",
      testing::sluice());
  const auto r = sh(script);
  ASSERT_EQ(r.status, 0) << describe(r) << sh("cat err.txt").out;
  const std::string seen = sh("cat seen.txt").out;
  EXPECT_EQ(seen.rfind("sluice: <stdin>: 0 B done, 2.9 MiB read, ", 0), 0u) << seen << sh("cat err.txt").out;
  EXPECT_EQ(sh("cat size_then.txt").out, "0\n") << "no output yet when the display showed the bytes read";
  EXPECT_EQ(sh("cat first rest | cmp - <(zstd -dc out.zst)").status, 0);
  EXPECT_TRUE(contains(sh("cat err.txt").out, "sluice: 1 file, 3.8 MiB -> ")) << sh("cat err.txt").out;
}

// ---- sluice demo ----

using Demo = testing::CommandTest;

TEST_F(Demo, SaysWhatItMeasuresAndChecksEveryCodecsRoundTrip) {
  const auto r = sluice("demo --size 2M -j 2");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "sluice demo: 2.0 MiB built-in sample (synthetic web-server log), 2 thread(s)\n"))
      << r.out;
  EXPECT_TRUE(contains(r.out, "Measured: compress() and decompress(), the graphs sluice runs on files")) << r.out;
  EXPECT_TRUE(contains(r.out, "into output buffers allocated beforehand")) << r.out;
  EXPECT_TRUE(contains(r.out, "the median of 5 runs after a warm-up")) << r.out;
  EXPECT_TRUE(contains(r.out, "MB/s: millions of uncompressed bytes per second")) << r.out;
  const auto lines = lines_of(r.out);
  for (const char* codec : {"gzip", "zstd", "lz4"}) {
    const auto row = std::find_if(lines.begin(), lines.end(), [&](const std::string& line) {
      return line.rfind(std::string(codec) + " ", 0) == 0;
    });
    ASSERT_NE(row, lines.end()) << codec << ": " << r.out;
    EXPECT_TRUE(row->ends_with("  ok")) << *row;
  }
  EXPECT_TRUE(contains(r.out, "All round trips match.")) << r.out;
}

TEST_F(Demo, TakesFilesInsteadOfTheSample) {
  put("a.log", text_bytes(300000, 12));
  put("b.log", text_bytes(200000, 13));
  const auto r = sluice("demo -j 1 a.log b.log");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "sluice demo: 0.5 MiB 2 file(s), 1 thread(s)\n")) << r.out;
  EXPECT_TRUE(contains(r.out, "All round trips match.")) << r.out;
  const auto missing = sluice("demo missing.log");
  EXPECT_EQ(missing.status, 1) << describe(missing);
  EXPECT_TRUE(contains(missing.err, "missing.log")) << missing.err;
}

TEST_F(Demo, HelpIsTheDemosOwn) {
  const auto r = sluice("demo --help");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(contains(r.out, "Usage: sluice demo")) << r.out;
  EXPECT_TRUE(contains(r.out, "--size SIZE")) << r.out;
  EXPECT_TRUE(contains(r.out, "the median of 5 runs after a warm-up")) << r.out;
  EXPECT_TRUE(contains(r.out, "sluice demo big.log")) << r.out;
  EXPECT_FALSE(contains(r.out, "Commands with options of their own")) << "the main command's footer: " << r.out;
  EXPECT_FALSE(contains(r.out, "writes big.log.gz")) << r.out;
  const auto main_help = sluice("--help");
  EXPECT_TRUE(contains(main_help.out, "--progress")) << main_help.out;
  EXPECT_TRUE(contains(main_help.out, "--no-progress")) << main_help.out;
}

}  // namespace
}  // namespace sluice
