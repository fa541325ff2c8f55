// Keeps the first error raised by any node of a running graph (pzstd's ErrorHolder, for flow
// graphs). Nodes catch everything they throw, record it here with the stream name and offset,
// and from then on pass chunks through without work; the caller rethrows after wait_for_all().
// Internal to the library.
#pragma once

#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <system_error>

#include "sluice/error.h"

namespace sluice::detail {

// Call from a catch block: the exception in flight as an Error with this context.
inline std::exception_ptr current_error_with_context(const std::string& path,
                                                     std::optional<std::uint64_t> offset) noexcept {
  try {
    throw;
  } catch (const Error& e) {
    return std::make_exception_ptr(e.with_context(path, offset));
  } catch (const std::bad_alloc&) {
    return std::make_exception_ptr(Error(ErrorKind::kInternal, "out of memory", path, offset));
  } catch (const std::system_error& e) {
    // A caller's sink or source that reports a system error (a full disk) as the standard library
    // does: an I/O error with its errno, as the library's own (it was kInternal, the errno lost).
    Error error(ErrorKind::kIo, e.what(), path, offset);
    if (e.code().category() == std::generic_category() || e.code().category() == std::system_category()) {
      error.set_error_number(e.code().value());
    }
    return std::make_exception_ptr(error);
  } catch (const std::exception& e) {
    return std::make_exception_ptr(Error(ErrorKind::kInternal, e.what(), path, offset));
  } catch (...) {
    return std::make_exception_ptr(Error(ErrorKind::kInternal, "unknown exception", path, offset));
  }
}

// The Error inside `error` (which holds an Error, as current_error_with_context makes them).
inline Error error_of(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return e;
  } catch (...) {
    return Error(ErrorKind::kInternal, "unknown exception");
  }
}

// The error a run stopped from outside (CompressOptions::stop, DecompressOptions::stop) ends in.
inline std::exception_ptr stopped_error() noexcept {
  return std::make_exception_ptr(Error(ErrorKind::kCancelled, "stopped: the run was asked to stop"));
}

class FirstError {
 public:
  // `on_first` runs once, when the first error is recorded (e.g. to cancel the graph).
  explicit FirstError(std::function<void()> on_first = {}) : on_first_(std::move(on_first)) {}

  bool failed() const { return failed_.load(std::memory_order_acquire); }

  // Call from a catch block: records the exception in flight as an Error with this context.
  void capture_current(const std::string& path, std::optional<std::uint64_t> offset) noexcept {
    record(current_error_with_context(path, offset));
  }

  void rethrow_if_failed() const {
    if (failed()) std::rethrow_exception(error_);
  }

  void record(std::exception_ptr error) noexcept {
    std::function<void()> notify;
    {
      std::lock_guard lock(mutex_);
      if (error_) return;  // the first error wins
      error_ = std::move(error);
      failed_.store(true, std::memory_order_release);
      notify = std::move(on_first_);
    }
    if (notify) notify();
  }

 private:

  std::mutex mutex_;
  std::exception_ptr error_;
  std::atomic<bool> failed_{false};
  std::function<void()> on_first_;
};

}  // namespace sluice::detail
