// The progress display on standard error: the file being read, the bytes read (of the total when
// it is known, with a percentage and an ETA), the rate and the elapsed time; redrawn in place on a
// terminal, one plain line a second elsewhere (when asked for with --progress); and a summary line
// at the end, left on the terminal. Driven by the bytes the library has READ from the inputs
// (FileBatchOptions::on_progress), so it moves while a slow level compresses its first chunk and
// while a slow pipe trickles in. It appears only once a run has lasted about a second
// (SLUICE_PROGRESS_DELAY_MS overrides the delay; tests set 0). Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/cli.h"

namespace sluice {
struct BatchReport;
}

namespace sluice::app {

// --progress and --no-progress, into options.progress.
void add_progress_flags(CLI::App& app, CliOptions& options);

// How a run shows its progress.
enum class ProgressStyle {
  kNone,
  kBar,    // redrawn in place (stderr is a terminal)
  kLines,  // a plain line a second (--progress where stderr is not a terminal)
};
struct ProgressSetup {
  ProgressStyle style = ProgressStyle::kNone;
  bool forced = false;  // --progress: the summary line is printed even after a short run
  // The bytes done are told apart from those read (bytes_written(): compressing); otherwise
  // everything read counts as done.
  bool counts_written = false;
};
// From --progress/--no-progress, -q, -v and whether stderr is a terminal: by default the bar, on
// a terminal only, and not with -q or -v (which prints its own lines), nor when data or --json
// records go to that terminal too; --progress shows it anywhere (lines where stderr is not a
// terminal), even with -v; -q and --no-progress turn it off.
ProgressSetup progress_setup(const CliOptions& options);

// The bytes of a run's inputs when all of them are known: `file_bytes` (of the regular files
// named) plus, when standard input is read, what is left of it if it is a regular file; nullopt
// when it is a pipe or terminal (no percentage or ETA then).
std::optional<std::uint64_t> known_input_bytes(std::uint64_t file_bytes, bool reads_stdin);

// What the summary line says.
struct ProgressSummary {
  std::size_t files = 0;      // done
  std::size_t failed = 0;     // failed
  std::size_t not_tried = 0;  // skipped: --fail-fast stopped at an earlier failure
  std::uint64_t input_bytes = 0;
  std::uint64_t output_bytes = 0;
  bool compressing = true;  // the ratio is output/input compressing, input/output otherwise
  double seconds = 0;
};
// The summary of a batch; `failed_before` counts inputs that failed before the batch (planning),
// `not_tried_after` those left out of it after a failure (--fail-fast).
ProgressSummary summary_of(const BatchReport& report, bool compressing, std::size_t failed_before = 0,
                           std::size_t not_tried_after = 0);

class ProgressBar {
 public:
  // total_files 0: not counted; total_bytes nullopt: unknown (no percentage or ETA).
  ProgressBar(ProgressSetup setup, std::size_t total_files, std::optional<std::uint64_t> total_bytes);
  // Erases the bar (no summary).
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  // The bytes read from the inputs so far (a total, not an increment). Cheap: an atomic store.
  void bytes_read(std::uint64_t bytes);
  // Of those, the bytes whose output is written (FileBatchOptions::on_written). With
  // ProgressSetup::counts_written, the percentage and ETA are of these bytes, and the bytes read
  // are shown beside them.
  void bytes_written(std::uint64_t bytes);
  // The input being read now ("-": standard input).
  void item_begun(const std::string& input);
  void file_done();
  // Prints `line` (ending in a newline) on stderr without garbling the bar.
  void print(const std::string& line);
  // Ends the display: erases the bar and, if it was shown (or --progress asked for it), prints
  // the summary line.
  void finish(const ProgressSummary& summary);
  // Erases the bar and stops the display (no summary).
  void clear();

 private:
  using Clock = std::chrono::steady_clock;
  void tick();
  void stop();
  void draw(Clock::time_point now);  // mutex_ held
  void erase();                      // mutex_ held
  std::string line(Clock::time_point now);

  ProgressSetup setup_;
  std::size_t total_files_;
  std::optional<std::uint64_t> total_bytes_;
  std::atomic<std::uint64_t> bytes_{0};
  std::atomic<std::uint64_t> written_{0};
  std::atomic<std::size_t> files_{0};
  std::chrono::milliseconds delay_;
  Clock::time_point start_;
  Clock::time_point last_line_;  // kLines: when the last line was printed
  std::mutex mutex_;
  std::condition_variable wake_;
  std::string name_;         // of the input being read
  bool drawn_ = false;       // the bar is on the terminal now
  bool ever_shown_ = false;  // something was drawn or printed as progress
  bool stopping_ = false;
  bool finished_ = false;
  // Samples of the counts for the rate over the last few seconds.
  struct Sample {
    Clock::time_point at;
    std::uint64_t read;
    std::uint64_t done;
  };
  Sample sample(Clock::time_point now) const;
  std::vector<Sample> samples_;
  std::thread ticker_;
};

}  // namespace sluice::app
