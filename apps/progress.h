// A one-line progress display on standard error for long batches: files done, bytes, rate, ETA.
// It draws only when stderr is a terminal, only once the work has run for a moment, and at most
// ten times a second. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace sluice::app {

class ProgressBar {
 public:
  // `enabled` false makes every call a no-op. total_bytes 0 means unknown (no ETA).
  ProgressBar(bool enabled, std::size_t total_files, std::uint64_t total_bytes);
  ~ProgressBar();

  void bytes_done(std::uint64_t bytes);
  void file_done();
  // Prints `line` (ending in a newline) on stderr without garbling the bar.
  void print(const std::string& line);
  void clear();

 private:
  void draw(bool force);
  void erase();

  bool enabled_;
  std::size_t total_files_;
  std::uint64_t total_bytes_;
  std::size_t files_ = 0;
  std::uint64_t bytes_ = 0;
  bool shown_ = false;
  std::chrono::milliseconds quiet_start_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  std::mutex mutex_;
};

}  // namespace sluice::app
