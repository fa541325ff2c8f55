// The task arena every graph runs in, and the pinning of its threads to CPUs (thread_arena.h).
#include "graphs/thread_arena.h"

#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <unordered_map>

#include "sluice/compress.h"

#ifdef __linux__
#include <sched.h>
#include <unistd.h>
#endif

namespace sluice {
namespace {
std::atomic<bool> g_pin_threads{true};
}  // namespace

void set_thread_pinning(bool enabled) { g_pin_threads.store(enabled, std::memory_order_relaxed); }

bool thread_pinning() { return g_pin_threads.load(std::memory_order_relaxed); }

namespace detail {

// Watches the threads of one arena; pins each to cpus[its slot] while pinning is on.
class CpuPinning final : public tbb::task_scheduler_observer {
 public:
  CpuPinning(tbb::task_arena& arena, std::vector<int> cpus);
  ~CpuPinning() override;
  CpuPinning(const CpuPinning&) = delete;
  CpuPinning& operator=(const CpuPinning&) = delete;

  void on_scheduler_entry(bool is_worker) override;
  void on_scheduler_exit(bool is_worker) override;

  // The caller holds g_mutex.
  void pin_locked();    // pin every thread inside now, and those that come (once only)
  void unpin_locked();  // give every pinned thread its mask back; pin nothing more

 private:
#ifdef __linux__
  struct Inside {
    int slot;
    cpu_set_t saved_mask;
    bool pinned;
  };
  void pin(pid_t tid, Inside& thread);
  std::unordered_map<pid_t, Inside> inside_;  // threads in the arena now, by thread id
#endif
  enum class State { kWaiting, kPinning, kDone } state_ = State::kWaiting;
  std::vector<int> cpus_;
};

namespace {
// The process's pinning state, under one mutex (taken when a thread enters or leaves an arena
// that may pin and when an arena comes or goes: never on a hot path).
std::mutex g_mutex;
int g_live_arenas = 0;               // ThreadArenas alive now
CpuPinning* g_pinning = nullptr;     // the one that may pin: only while its arena is alone
}  // namespace

#ifdef __linux__
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &mask)) cpus.push_back(cpu);
  }
  return cpus;
}

void CpuPinning::pin(pid_t tid, Inside& thread) {
  if (thread.pinned || thread.slot < 0 || static_cast<std::size_t>(thread.slot) >= cpus_.size()) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpus_[static_cast<std::size_t>(thread.slot)], &one);
  // Best effort: a thread that cannot be pinned still works, only without the placement.
  thread.pinned = sched_setaffinity(tid, sizeof one, &one) == 0;
}

void CpuPinning::on_scheduler_entry(bool /*is_worker*/) {
  Inside thread{tbb::this_task_arena::current_thread_index(), {}, false};
  CPU_ZERO(&thread.saved_mask);
  if (sched_getaffinity(0, sizeof thread.saved_mask, &thread.saved_mask) != 0) return;
  const pid_t tid = gettid();
  std::lock_guard lock(g_mutex);
  if (state_ == State::kDone) return;
  Inside& recorded = inside_.insert_or_assign(tid, thread).first->second;
  if (state_ == State::kPinning) pin(tid, recorded);
}

void CpuPinning::on_scheduler_exit(bool /*is_worker*/) {
  std::lock_guard lock(g_mutex);
  const auto it = inside_.find(gettid());
  if (it == inside_.end()) return;
  if (it->second.pinned) (void)sched_setaffinity(0, sizeof it->second.saved_mask, &it->second.saved_mask);
  inside_.erase(it);
}

void CpuPinning::pin_locked() {
  if (state_ != State::kWaiting) return;
  state_ = State::kPinning;
  for (auto& [tid, thread] : inside_) pin(tid, thread);
}

void CpuPinning::unpin_locked() {
  state_ = State::kDone;
  for (const auto& [tid, thread] : inside_) {
    if (thread.pinned) (void)sched_setaffinity(tid, sizeof thread.saved_mask, &thread.saved_mask);
  }
  inside_.clear();
}
#else
std::vector<int> allowed_cpus() { return {}; }
void CpuPinning::on_scheduler_entry(bool) {}
void CpuPinning::on_scheduler_exit(bool) {}
void CpuPinning::pin_locked() {}
void CpuPinning::unpin_locked() { state_ = State::kDone; }
#endif

CpuPinning::CpuPinning(tbb::task_arena& arena, std::vector<int> cpus)
    : tbb::task_scheduler_observer(arena), cpus_(std::move(cpus)) {
  observe(true);
}

CpuPinning::~CpuPinning() {
  {
    // Threads still in the arena (a worker that has not left yet) get their masks back here:
    // after observe(false) they would never hear of their exit.
    std::lock_guard lock(g_mutex);
    unpin_locked();
    if (g_pinning == this) g_pinning = nullptr;
  }
  observe(false);
}

ThreadArena::ThreadArena(int threads, Pin pin) : arena_(threads) {
  if (threads > tbb::info::default_concurrency()) {
    raised_cap_.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  }
  {
    std::lock_guard lock(g_mutex);
    if (++g_live_arenas > 1) {
      // Two graphs at once (transcode's two halves, a caller's own threads): pinned, their
      // threads would crowd onto the same CPUs. Neither pins.
      if (g_pinning != nullptr) g_pinning->unpin_locked();
      return;
    }
  }
  if (threads < 2 || !thread_pinning()) return;
  std::vector<int> cpus = allowed_cpus();
  if (cpus.size() != static_cast<std::size_t>(threads)) return;
  arena_.initialize();
  pinning_ = std::make_unique<CpuPinning>(arena_, std::move(cpus));
  std::lock_guard lock(g_mutex);
  if (g_live_arenas > 1) {
    pinning_->unpin_locked();  // another arena came meanwhile
    return;
  }
  g_pinning = pinning_.get();
  if (pin == Pin::kAtOnce) g_pinning->pin_locked();
}

ThreadArena::~ThreadArena() {
  std::lock_guard lock(g_mutex);
  --g_live_arenas;
}

void pin_arena_threads() {
  std::lock_guard lock(g_mutex);
  if (g_pinning != nullptr && g_live_arenas == 1) g_pinning->pin_locked();
}

void unpin_arena_threads() {
  std::lock_guard lock(g_mutex);
  if (g_pinning != nullptr) g_pinning->unpin_locked();
}

}  // namespace detail
}  // namespace sluice
