#include "apps/progress.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace sluice::app {
namespace {
constexpr auto kQuietStart = std::chrono::milliseconds(700);
constexpr auto kRedrawEvery = std::chrono::milliseconds(100);

std::string mib(std::uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20)); }
}  // namespace

// How long a run must last before the bar appears; SLUICE_PROGRESS_DELAY_MS overrides it (tests
// set 0 to see the bar on a short run).
std::chrono::milliseconds quiet_start() {
  if (const char* text = std::getenv("SLUICE_PROGRESS_DELAY_MS")) return std::chrono::milliseconds(std::atoi(text));
  return kQuietStart;
}

ProgressBar::ProgressBar(bool enabled, std::size_t total_files, std::uint64_t total_bytes)
    : enabled_(enabled), total_files_(total_files), total_bytes_(total_bytes), quiet_start_(quiet_start()),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::bytes_done(std::uint64_t bytes) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  bytes_ = bytes;
  draw(false);
}

void ProgressBar::file_done() {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  ++files_;
  draw(false);
}

void ProgressBar::print(const std::string& line) {
  std::lock_guard lock(mutex_);
  erase();
  std::fputs(line.c_str(), stderr);
  if (enabled_ && shown_) draw(true);
}

void ProgressBar::clear() {
  std::lock_guard lock(mutex_);
  erase();
}

void ProgressBar::erase() {
  if (!shown_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
  shown_ = false;
}

void ProgressBar::draw(bool force) {
  const auto now = std::chrono::steady_clock::now();
  if (!force && (now - start_ < quiet_start_ || (shown_ && now - last_draw_ < kRedrawEvery))) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(bytes_) / seconds : 0;
  std::string line = fmt::format("\r\033[K[{}/{} files] {}", files_, total_files_, mib(bytes_));
  if (total_bytes_ > 0) {
    line += fmt::format(" of {} ({:.0f}%)", mib(total_bytes_), 100.0 * static_cast<double>(bytes_) / static_cast<double>(total_bytes_));
  }
  line += fmt::format(", {:.1f} MB/s", rate / 1e6);
  if (total_bytes_ > bytes_ && rate > 0) {
    line += fmt::format(", ETA {:.0f} s", static_cast<double>(total_bytes_ - bytes_) / rate);
  }
  std::fputs(line.c_str(), stderr);
  std::fflush(stderr);
  shown_ = true;
}

}  // namespace sluice::app
