// A bounded pipe between two graphs running at once: one writes into it as its ByteSink, the
// other reads from it as its ByteSource (transcode: decompression graph -> compression graph).
// The writer waits while the pipe is full and the reader while it is empty, so memory stays at
// the pipe's capacity. Either side can break the pipe with its failure; the other side then gets
// an Error of kind kCancelled instead of waiting forever. The writer can mark a flush point
// (Compressor::flush): the reader's reads stop there and its source's take_flush_point() says
// so; whoever delivers the output up to it calls flush_done(), which ends wait_flushed().
// A writer that flushes after every few bytes (a log handler) waits for each flush and the reader
// for the next bytes: with spin_on_flushes(), the writer polls for kFlushSpin before it sleeps in
// wait_flushed(), and so does the reader while it is within kFlushedRecently of the last flush
// point, so that the round trip is not two wake-ups of sleeping threads (BENCHMARKS.md,
// "Flushing"). A stream that is never flushed never polls.
// A reader that wants whole chunks (compression's) sets read_batch(): it is woken when that much
// is in the pipe, or the rest of what its last read asked for (a chunk's end), or at a flush
// point, the end or a failure; not by every write: a writer of small records (120 bytes, say)
// otherwise paid a wake-up of the reader's thread for each (BENCHMARKS.md, "Flushing": 20,000
// such writes took 5-10 times what the compression did).
// Internal to the library.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "sluice/bytes.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice::detail {

class BytePipe {
 public:
  static constexpr std::chrono::microseconds kFlushSpin{50};
  static constexpr std::uint64_t kFlushedRecently = 64 * 1024;

  BytePipe(std::string name, std::size_t capacity_bytes = 4 * 1024 * 1024)
      : name_(std::move(name)), ring_(capacity_bytes), sink_(*this), source_(*this) {
    ring_.resize(capacity_bytes);
  }

  ByteSink& sink() { return sink_; }
  ByteSource& source() { return source_; }

  // The writer is done: the reader sees the end of input once the pipe is drained.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    changed_.notify_all();
  }
  // Marks a flush point after the bytes written so far; false, with none marked, if nothing was
  // written since the last. One is pending at a time: wait_flushed() after each.
  bool mark_flush() {
    std::lock_guard lock(mutex_);
    if (written_ == (flush_at_ ? *flush_at_ : last_flush_)) return false;
    flush_at_ = written_;
    flushed_ = false;
    changed_.notify_all();
    return true;
  }
  // The output up to the last flush point was delivered.
  void flush_done() {
    std::lock_guard lock(mutex_);
    flushed_ = true;
    changed_.notify_all();
  }
  // Waits for flush_done() after mark_flush(); throws kCancelled if the pipe breaks first.
  void wait_flushed() {
    std::unique_lock lock(mutex_);
    const auto done = [&] { return broken_ || flushed_; };
    if (spin_on_flushes_) spin(lock, done);
    changed_.wait(lock, done);
    if (!flushed_) throw Error(ErrorKind::kCancelled, "the stage reading this stream stopped", name_);
  }

  // Polls before sleeping in wait_flushed(), and in the reader's wait_readable() soon after a
  // flush point (for where the two sides run on CPUs of their own: on one, a poll holds up the
  // other side).
  void spin_on_flushes(bool on) {
    std::lock_guard lock(mutex_);
    spin_on_flushes_ = on;
  }

  // The reader is woken when `bytes` are waiting (at most half the capacity, so that the writer
  // never waits for a reader that waits for it) or the rest of what its last read() asked for, or
  // at a flush point, the end or a failure; 0 or 1: by whatever comes.
  void read_batch(std::size_t bytes) {
    std::lock_guard lock(mutex_);
    read_batch_ = std::clamp<std::size_t>(bytes, 1, ring_.size() / 2);
    wake_at_ = read_batch_;
  }

  // Waits until the reader has taken everything written and waits for more (what it took is
  // decoded, or in its pieces in flight); throws kCancelled if the pipe breaks first. Returns at
  // once once the pipe is closed. With a `timeout`, false if it passed first.
  bool wait_drained(std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    std::unique_lock lock(mutex_);
    const auto drained = [&] { return broken_ || closed_ || (used_ == 0 && reader_waiting_); };
    if (timeout && !changed_.wait_for(lock, *timeout, drained)) return false;
    if (!timeout) changed_.wait(lock, drained);
    if (broken_) throw Error(ErrorKind::kCancelled, "the stage reading this stream stopped", name_);
    return true;
  }

  // One side failed: the other side's next read or write throws kCancelled.
  void break_pipe() {
    std::lock_guard lock(mutex_);
    broken_ = true;
    changed_.notify_all();
  }

 private:
  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#else
    std::this_thread::yield();
#endif
  }
  // Until `ready()` or kFlushSpin has passed, with the lock released between looks (a yield to
  // the system instead of the CPU's pause made the round trip half again as long).
  template <typename Ready>
  void spin(std::unique_lock<std::mutex>& lock, const Ready& ready) {
    const auto until = std::chrono::steady_clock::now() + kFlushSpin;
    while (!ready() && std::chrono::steady_clock::now() < until) {
      lock.unlock();
      for (int i = 0; i < 64; ++i) cpu_relax();
      lock.lock();
    }
  }

  void write(ByteView bytes) {
    std::unique_lock lock(mutex_);
    while (!bytes.empty()) {
      changed_.wait(lock, [&] { return broken_ || used_ < ring_.size(); });
      if (broken_) throw Error(ErrorKind::kCancelled, "the stage reading this stream stopped", name_);
      const std::size_t tail = (head_ + used_) % ring_.size();
      const std::size_t n = std::min({bytes.size(), ring_.size() - used_, ring_.size() - tail});
      std::memcpy(ring_.data() + tail, bytes.data(), n);
      used_ += n;
      written_ += n;
      bytes = bytes.subspan(n);
      // Only a reader that can go on is woken (a notify with nobody waiting costs no system call).
      if (used_ >= wake_at_) changed_.notify_all();
    }
  }

  bool readable() const { return broken_ || used_ >= wake_at_ || closed_ || flush_at_.has_value(); }

  // The reader's wait for `ready` (at most `timeout`), seen by wait_drained(): false on timeout.
  template <typename Ready>
  bool wait_as_reader(std::unique_lock<std::mutex>& lock, const Ready& ready,
                      std::optional<std::chrono::milliseconds> timeout = std::nullopt) {
    if (ready()) return true;
    reader_waiting_ = true;
    changed_.notify_all();
    const bool got = timeout ? changed_.wait_for(lock, *timeout, ready) : (changed_.wait(lock, ready), true);
    reader_waiting_ = false;
    return got;
  }

  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) {
    std::unique_lock lock(mutex_);
    wait_as_reader(lock, [&] { return readable(); });
    if (broken_) throw Error(ErrorKind::kCancelled, "the stage writing this stream stopped", name_);
    std::size_t n = std::min({max_bytes, used_, ring_.size() - head_});
    if (flush_at_) n = std::min<std::uint64_t>(n, *flush_at_ - read_);  // not past a flush point
    std::memcpy(dst, ring_.data() + head_, n);
    head_ = (head_ + n) % ring_.size();
    used_ -= n;
    read_ += n;
    // A read given less than it asked for asks for the rest next (a chunk's end).
    wake_at_ = n < max_bytes ? std::clamp<std::size_t>(max_bytes - n, 1, read_batch_) : read_batch_;
    changed_.notify_all();
    return n;
  }

  bool at_flush_point() const { return flush_at_ && read_ == *flush_at_; }

  bool take_flush_point() {
    std::lock_guard lock(mutex_);
    if (!at_flush_point()) return false;
    last_flush_ = *flush_at_;
    flush_at_.reset();
    return true;
  }

  class Sink final : public ByteSink {
   public:
    explicit Sink(BytePipe& pipe) : pipe_(pipe) {}
    void write(ByteView bytes) override { pipe_.write(bytes); }
    const std::string& name() const override { return pipe_.name_; }

   private:
    BytePipe& pipe_;
  };
  class Source final : public ByteSource {
   public:
    explicit Source(BytePipe& pipe) : pipe_(pipe) {}
    std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override { return pipe_.read(dst, max_bytes); }
    const std::string& name() const override { return pipe_.name_; }
    // Written as it is read (a Decompressor's pieces): a reader may decode what it has meanwhile.
    bool wait_readable(std::chrono::milliseconds timeout) override {
      std::unique_lock lock(pipe_.mutex_);
      const auto readable = [&] { return pipe_.readable(); };
      if (pipe_.spin_on_flushes_ && pipe_.last_flush_ > 0 && pipe_.read_ - pipe_.last_flush_ < kFlushedRecently) {
        pipe_.spin(lock, readable);
      }
      return pipe_.wait_as_reader(lock, readable, timeout);
    }
    bool take_flush_point() override { return pipe_.take_flush_point(); }

   private:
    BytePipe& pipe_;
  };

  std::string name_;
  Buffer ring_;
  std::size_t head_ = 0;  // first unread byte
  std::size_t used_ = 0;  // unread bytes
  std::uint64_t written_ = 0;              // in all
  std::uint64_t read_ = 0;                 // in all
  std::optional<std::uint64_t> flush_at_;  // the flush point the reader has not reached yet
  std::uint64_t last_flush_ = 0;           // where the last one it reached was
  bool flushed_ = false;                   // flush_done() since the last mark_flush()
  bool closed_ = false;
  bool broken_ = false;
  bool spin_on_flushes_ = false;
  bool reader_waiting_ = false;  // in read() or wait_readable(), for more than there is
  std::size_t read_batch_ = 1;  // read_batch()
  std::size_t wake_at_ = 1;     // what wakes the reader (with a flush point, the end, a failure)
  std::mutex mutex_;
  std::condition_variable changed_;
  Sink sink_;
  Source source_;
};

}  // namespace sluice::detail
