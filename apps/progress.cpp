#include "apps/progress.h"

#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "sluice/batch.h"

namespace sluice::app {
namespace {

using namespace std::chrono_literals;

constexpr auto kDefaultDelay = 1000ms;  // runs shorter than this show nothing
constexpr auto kTick = 100ms;           // how often the bar is redrawn
constexpr auto kLineEvery = 1s;         // how often a plain line is printed
constexpr auto kRateWindow = 5s;        // the rate is of the bytes read over this much time

// How long a run must last before the display appears; SLUICE_PROGRESS_DELAY_MS overrides it
// (tests set 0 to see it on a short run).
std::chrono::milliseconds delay() {
  if (const char* text = std::getenv("SLUICE_PROGRESS_DELAY_MS")) return std::chrono::milliseconds(std::atoi(text));
  return kDefaultDelay;
}

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < (1u << 20)) return fmt::format("{:.1f} KiB", static_cast<double>(bytes) / 1024);
  if (bytes < (1u << 30)) return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1 << 30));
}

// 0:07, 12:34, 1:02:03.
std::string clock_time(double seconds) {
  const auto s = static_cast<long>(seconds + 0.5);
  if (s < 3600) return fmt::format("{}:{:02}", s / 60, s % 60);
  return fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60);
}

// A name as it can be shown on one line of a terminal: control characters as \ooo.
std::string printable(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\{:03o}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

std::size_t terminal_columns() {
  struct winsize size {};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col >= 20) return size.ws_col;
  return 80;
}

}  // namespace

void add_progress_flags(CLI::App& app, CliOptions& options) {
  // Triggered as parsed, so that the last of the two wins (an alias with --progress, then
  // --no-progress on the command line).
  app.add_flag_callback(
         "--progress", [&options] { options.progress = ProgressWhen::kAlways; },
         "Show progress on stderr even when it is not a terminal (a plain line a second), or with -v")
      ->trigger_on_parse();
  app.add_flag_callback(
         "--no-progress", [&options] { options.progress = ProgressWhen::kNever; },
         "Do not show progress (by default shown on a terminal once a run lasts a second)")
      ->trigger_on_parse();
}

ProgressSetup progress_setup(const CliOptions& options) {
  if (options.quiet || options.progress == ProgressWhen::kNever) return {};
  const bool terminal = ::isatty(STDERR_FILENO) != 0;
  const bool counts_written = options.mode == Mode::kCompress;
  if (options.progress == ProgressWhen::kAlways) {
    return {terminal ? ProgressStyle::kBar : ProgressStyle::kLines, /*forced=*/true, counts_written};
  }
  if (!terminal || options.verbose) return {};
  // Data or --json records going to the same terminal would be mixed with the bar.
  const bool stdin_only = options.files.empty() || (options.files.size() == 1 && options.files.front() == "-");
  const bool writes_stdout =
      options.mode != Mode::kTest && (options.to_stdout || (stdin_only && options.output_path.empty()));
  if ((writes_stdout || options.json) && ::isatty(STDOUT_FILENO)) return {};
  return {ProgressStyle::kBar, false, counts_written};
}

std::optional<std::uint64_t> known_input_bytes(std::uint64_t file_bytes, bool reads_stdin) {
  if (!reads_stdin) return file_bytes;
  struct stat status {};
  if (::fstat(STDIN_FILENO, &status) != 0 || !S_ISREG(status.st_mode)) return std::nullopt;
  const off_t at = ::lseek(STDIN_FILENO, 0, SEEK_CUR);
  const std::uint64_t size = static_cast<std::uint64_t>(status.st_size);
  const std::uint64_t from = at > 0 ? std::min(static_cast<std::uint64_t>(at), size) : 0;
  return file_bytes + (size - from);
}

ProgressSummary summary_of(const BatchReport& report, bool compressing, std::size_t failed_before,
                           std::size_t not_tried_after) {
  ProgressSummary summary;
  const auto skipped =
      static_cast<std::size_t>(std::count_if(report.items.begin(), report.items.end(), [](const ItemResult& item) {
        return item.status == ItemStatus::kSkipped;
      }));
  summary.files = report.items.size() - report.failed;
  summary.failed = report.failed - skipped + failed_before;
  summary.not_tried = skipped + not_tried_after;
  summary.input_bytes = report.input_bytes;
  summary.output_bytes = report.output_bytes;
  summary.compressing = compressing;
  summary.seconds = report.seconds;
  return summary;
}

ProgressBar::ProgressBar(ProgressSetup setup, std::size_t total_files, std::optional<std::uint64_t> total_bytes)
    : setup_(setup), total_files_(total_files), total_bytes_(total_bytes), delay_(delay()), start_(Clock::now()) {
  if (setup_.style == ProgressStyle::kNone) return;
  samples_.push_back({start_, 0, 0});
  if (delay_.count() <= 0) {
    std::lock_guard lock(mutex_);
    draw(start_);  // at once, so that even a run of milliseconds shows it (tests)
  }
  ticker_ = std::thread([this] { tick(); });
}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::bytes_read(std::uint64_t bytes) { bytes_.store(bytes, std::memory_order_relaxed); }

void ProgressBar::bytes_written(std::uint64_t bytes) { written_.store(bytes, std::memory_order_relaxed); }

void ProgressBar::item_begun(const std::string& input) {
  if (setup_.style == ProgressStyle::kNone) return;
  std::lock_guard lock(mutex_);
  const bool first = name_.empty();
  name_ = input == "-" ? "<stdin>" : input;
  // The first file is named at once on a terminal (a short run shows what it was doing); later
  // ones at the next tick.
  const auto now = Clock::now();
  if (first && setup_.style == ProgressStyle::kBar && !finished_ && now - start_ >= delay_) draw(now);
}

void ProgressBar::file_done() { files_.fetch_add(1, std::memory_order_relaxed); }

void ProgressBar::print(const std::string& line) {
  std::lock_guard lock(mutex_);
  const bool redraw = drawn_;
  erase();
  std::fputs(line.c_str(), stderr);
  if (redraw) draw(Clock::now());
  std::fflush(stderr);
}

void ProgressBar::finish(const ProgressSummary& summary) {
  stop();
  std::lock_guard lock(mutex_);
  erase();
  if (finished_) return;
  finished_ = true;
  if (setup_.style == ProgressStyle::kNone || !(ever_shown_ || setup_.forced)) return;
  const std::uint64_t raw = summary.compressing ? summary.input_bytes : summary.output_bytes;
  const std::uint64_t packed = summary.compressing ? summary.output_bytes : summary.input_bytes;
  std::string text = fmt::format("sluice: {} {}", summary.files, summary.files == 1 ? "file" : "files");
  if (summary.failed > 0 && summary.not_tried > 0)
    text += fmt::format(" ({} failed, {} not tried)", summary.failed, summary.not_tried);
  else if (summary.failed > 0)
    text += fmt::format(" ({} failed)", summary.failed);
  text += fmt::format(", {} -> {}", human_bytes(summary.input_bytes), human_bytes(summary.output_bytes));
  if (raw > 0) text += fmt::format(" ({:.2f}%)", 100.0 * static_cast<double>(packed) / static_cast<double>(raw));
  text += fmt::format(" in {:.2f} s", summary.seconds);
  if (summary.seconds > 0) text += fmt::format(", {:.1f} MB/s", static_cast<double>(raw) / summary.seconds / 1e6);
  std::fputs((text + "\n").c_str(), stderr);
  std::fflush(stderr);
}

void ProgressBar::clear() {
  stop();
  std::lock_guard lock(mutex_);
  erase();
  finished_ = true;
}

void ProgressBar::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
}

void ProgressBar::tick() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, kTick, [this] { return stopping_; })) {
    const auto now = Clock::now();
    samples_.push_back(sample(now));
    // Keep one sample older than the window: the rate spans the whole window.
    while (samples_.size() > 2 && now - samples_[1].at >= kRateWindow) samples_.erase(samples_.begin());
    if (now - start_ < delay_) continue;
    if (setup_.style == ProgressStyle::kBar || !ever_shown_ || now - last_line_ >= kLineEvery) draw(now);
  }
}

ProgressBar::Sample ProgressBar::sample(Clock::time_point now) const {
  const std::uint64_t read = bytes_.load(std::memory_order_relaxed);
  const std::uint64_t done = setup_.counts_written ? written_.load(std::memory_order_relaxed) : read;
  return {now, read, std::min(done, read)};
}

std::string ProgressBar::line(Clock::time_point now) {
  const Sample counts = sample(now);
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  // Over the last few seconds: of the bytes done, or of those read while nothing is done yet (a
  // slow level's first chunks, a slow pipe).
  const Sample& then = samples_.front();
  const double span = std::chrono::duration<double>(now - then.at).count();
  const double done_rate = span > 0 ? static_cast<double>(counts.done - std::min(counts.done, then.done)) / span : 0;
  const double read_rate = span > 0 ? static_cast<double>(counts.read - std::min(counts.read, then.read)) / span : 0;
  // A total the inputs outgrew (a file appended to while read) is no longer one.
  const bool known = total_bytes_ && *total_bytes_ > 0 && counts.read <= *total_bytes_;
  std::string amount = human_bytes(counts.done);
  if (known) {
    // "12.0 of 40.0 MiB": the unit once where both have it.
    const std::string total = human_bytes(*total_bytes_);
    const std::string unit = total.substr(total.rfind(' '));
    if (unit != " B" && amount.ends_with(unit)) amount.resize(amount.size() - unit.size());
    amount += fmt::format(" of {} ({:.0f}%)", total,
                          std::floor(100.0 * static_cast<double>(counts.done) / static_cast<double>(*total_bytes_)));
  }
  // The parts after the amount, each dropped (in this order) where a terminal is too narrow.
  std::string read;
  if (counts.read > counts.done) read = fmt::format(" done, {} read", human_bytes(counts.read));
  std::string elapsed_part = fmt::format(", {} elapsed", clock_time(elapsed));
  std::string eta;
  if (known && counts.done < *total_bytes_ && done_rate > 0) {
    eta = fmt::format(", ETA {}", clock_time(static_cast<double>(*total_bytes_ - counts.done) / done_rate));
  }
  std::string rate = fmt::format(", {:.1f} MB/s", (done_rate > 0 ? done_rate : read_rate) / 1e6);
  std::string prefix;
  if (total_files_ > 1) prefix = fmt::format("[{}/{} files] ", files_.load(std::memory_order_relaxed), total_files_);
  std::string name = printable(name_);
  const auto text = [&] { return amount + read + rate + elapsed_part + eta; };
  if (setup_.style == ProgressStyle::kBar) {
    // One line of the terminal (a longer one would wrap, and the bar could no longer be redrawn):
    // the name keeps at least its last 16 characters while other parts go; then it loses its start.
    const std::size_t columns = terminal_columns() - 1;
    const std::size_t name_room = std::min<std::size_t>(name.size(), 16) + (name.empty() ? 0 : 2);
    for (std::string* part : {&elapsed_part, &read, &eta, &rate}) {
      if (prefix.size() + name_room + text().size() <= columns) break;
      part->clear();
    }
    const std::size_t fixed = prefix.size() + 2 + text().size();
    const std::size_t room = columns > fixed ? columns - fixed : 0;
    if (name.size() > room) name = room > 8 ? "..." + name.substr(name.size() - (room - 3)) : "";
    std::string all = prefix + (name.empty() ? "" : name + ": ") + text();
    if (all.size() > columns) all.resize(columns);
    return all;
  }
  return prefix + (name.empty() ? "" : name + ": ") + text();
}

void ProgressBar::draw(Clock::time_point now) {
  if (finished_) return;
  if (setup_.style == ProgressStyle::kBar) {
    std::fputs(("\r\033[K" + line(now)).c_str(), stderr);
    drawn_ = true;
  } else {
    std::fputs(("sluice: " + line(now) + "\n").c_str(), stderr);
    last_line_ = now;
  }
  std::fflush(stderr);
  ever_shown_ = true;
}

void ProgressBar::erase() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace sluice::app
