// A sink that writes on a thread of its own, so that a serial producer (a streaming decoder)
// and a slow consumer (a file, a tar extraction) overlap instead of taking turns. Internal to
// the library.
//
// Bytes are gathered into a few large buffers; a full buffer goes to the writing thread and the
// producer continues in the next one. When every buffer is in flight the producer waits, so
// memory stays at `slots` x `slot_bytes` whatever the stream's expansion. The writing thread is
// a plain std::thread, not a TBB worker: the producer may block on it without starving the
// arena. The first error of the downstream sink is rethrown to the producer.
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/first_error.h"
#include "sluice/bytes.h"
#include "sluice/codec_author.h"
#include "sluice/error.h"
#include "sluice/io.h"

#include <fmt/format.h>

namespace sluice::detail {

class OverlappedSink final : public StreamDecoder::Output {
 public:
  // With `limit_bytes`, giving it more than that throws Error(kLimit); nothing past the limit
  // reaches the sink. With `run_errors`, a buffer handed on once the run has failed (or was
  // stopped) throws that error instead: a small input decoding to gigabytes in one decoder call
  // stopped only at its end (9.6 s after Ctrl-C for 3 GiB from 109 KB of zstd).
  explicit OverlappedSink(ByteSink& sink, std::size_t slots = 4, std::size_t slot_bytes = 1024 * 1024,
                          std::uint64_t limit_bytes = 0, const FirstError* run_errors = nullptr)
      : sink_(sink), slot_bytes_(slot_bytes), limit_bytes_(limit_bytes), run_errors_(run_errors) {
    for (std::size_t i = 0; i + 1 < slots; ++i) free_.emplace_back(slot_bytes);
    current_.reserve(slot_bytes);
    thread_ = std::thread([this] { run(); });
  }

  ~OverlappedSink() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    thread_.join();
  }

  OverlappedSink(const OverlappedSink&) = delete;
  OverlappedSink& operator=(const OverlappedSink&) = delete;

  // Copies `bytes` for writing. Throws the downstream sink's error, if it failed.
  void write(ByteView bytes) {
    if (limit_bytes_ > 0 && bytes_ + bytes.size() > limit_bytes_) throw limit_error();
    while (!bytes.empty()) {
      const std::size_t take = std::min(bytes.size(), slot_bytes_ - current_.size());
      current_.append(bytes.first(take));
      bytes_ += take;
      bytes = bytes.subspan(take);
      if (current_.size() == slot_bytes_) hand_off();
    }
  }

  // Lends the rest of the current buffer to a decoder (StreamDecoder::decode_to): no copy.
  std::span<std::uint8_t> space() override {
    if (current_.size() == slot_bytes_) hand_off();
    return {current_.data() + current_.size(), slot_bytes_ - current_.size()};
  }
  // A full buffer goes to the writing thread and comes back for reuse only after the next one
  // has been filled.
  std::size_t keeps_produced_bytes() const override { return slot_bytes_; }
  void produced(std::size_t bytes) override {
    if (bytes > slot_bytes_ - current_.size()) {  // a decoder's bug: more than it was lent
      throw Error(ErrorKind::kInternal, fmt::format("a decoder reported {} bytes made in a space of {}", bytes,
                                                    slot_bytes_ - current_.size()));
    }
    current_.resize(current_.size() + bytes);
    bytes_ += bytes;
    check_limit();  // before the buffer goes out: nothing past the limit is ever written
    if (current_.size() == slot_bytes_) hand_off();
  }

  // Bytes given so far.
  std::uint64_t bytes() const { return bytes_; }

  // Writes out everything given so far and waits until the sink has it. Throws its error.
  void flush() {
    if (!current_.empty()) hand_off();
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return error_ || (full_.empty() && !writing_); });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  Error limit_error() const {
    return Error(ErrorKind::kLimit, fmt::format("output exceeds the limit of {} bytes set for this run", limit_bytes_));
  }
  void check_limit() const {
    if (limit_bytes_ > 0 && bytes_ > limit_bytes_) throw limit_error();
  }

  void hand_off() {
    if (run_errors_) run_errors_->rethrow_if_failed();
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return error_ || !free_.empty(); });
    if (error_) std::rethrow_exception(error_);
    full_.push_back(std::move(current_));
    current_ = std::move(free_.back());
    free_.pop_back();
    current_.clear();
    lock.unlock();
    changed_.notify_all();
  }

  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      changed_.wait(lock, [&] { return stopping_ || !full_.empty(); });
      if (full_.empty()) return;  // stopping, nothing left
      Buffer buffer = std::move(full_.front());
      full_.pop_front();
      writing_ = true;
      lock.unlock();
      std::exception_ptr failure;
      if (!error_) {
        try {
          sink_.write(buffer.view());
        } catch (...) {
          failure = std::current_exception();
        }
      }
      lock.lock();
      writing_ = false;
      if (failure && !error_) error_ = failure;
      free_.push_back(std::move(buffer));
      changed_.notify_all();
    }
  }

  ByteSink& sink_;
  const std::size_t slot_bytes_;
  const std::uint64_t limit_bytes_;
  const FirstError* run_errors_;
  Buffer current_;  // being filled by the producer
  std::uint64_t bytes_ = 0;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Buffer> full_;   // waiting for the writing thread, in order
  std::vector<Buffer> free_;
  bool writing_ = false;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace sluice::detail
