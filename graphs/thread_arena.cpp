// The task arena every graph runs in, and the pinning of its threads to CPUs (thread_arena.h).
#include "graphs/thread_arena.h"

#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <thread>

#include "sluice/compress.h"

#ifdef __linux__
#include <sched.h>
#endif

namespace sluice {
namespace {
std::atomic<bool> g_pin_threads{true};
}  // namespace

void set_thread_pinning(bool enabled) { g_pin_threads.store(enabled, std::memory_order_relaxed); }

bool thread_pinning() { return g_pin_threads.load(std::memory_order_relaxed); }

namespace detail {

#ifdef __linux__
namespace {
// The masks threads had before entering pinned arenas, innermost last (a graph run from inside
// another graph's worker enters a second arena, and leaves it before the first).
// Each entry says whether this observer pinned the thread.
struct SavedMask {
  cpu_set_t mask;
  bool pinned;
};
thread_local std::vector<SavedMask> t_saved_masks;
}  // namespace

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

void CpuPinning::on_scheduler_entry(bool /*is_worker*/) {
  cpu_set_t current;
  CPU_ZERO(&current);
  if (sched_getaffinity(0, sizeof current, &current) != 0) {
    CPU_ZERO(&current);  // an empty mask is never restored (sched_setaffinity refuses it)
  }
  const int slot = tbb::this_task_arena::current_thread_index();
  bool pinned = false;
  if (!closing_.load() && slot >= 0 && static_cast<std::size_t>(slot) < cpus_.size()) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus_[static_cast<std::size_t>(slot)], &one);
    // Best effort: a thread that cannot be pinned still works, only without the placement.
    pinned = sched_setaffinity(0, sizeof one, &one) == 0;
    if (pinned) threads_pinned_.fetch_add(1);
  }
  t_saved_masks.push_back({current, pinned});
}

void CpuPinning::on_scheduler_exit(bool /*is_worker*/) {
  if (t_saved_masks.empty()) return;
  const SavedMask saved = t_saved_masks.back();
  t_saved_masks.pop_back();
  if (!saved.pinned) return;
  if (CPU_COUNT(&saved.mask) > 0) (void)sched_setaffinity(0, sizeof saved.mask, &saved.mask);
  threads_pinned_.fetch_sub(1);
}
#else
std::vector<int> allowed_cpus() { return {}; }
void CpuPinning::on_scheduler_entry(bool) {}
void CpuPinning::on_scheduler_exit(bool) {}
#endif

CpuPinning::CpuPinning(tbb::task_arena& arena, std::vector<int> cpus)
    : tbb::task_scheduler_observer(arena), cpus_(std::move(cpus)) {
  observe(true);
}

CpuPinning::~CpuPinning() {
  closing_.store(true);
  // The graph has finished, and workers leave an arena without work within microseconds. The
  // bound is only a guard: past it a worker would merely stay pinned.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (threads_pinned_.load() > 0 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
  observe(false);
}

ThreadArena::ThreadArena(int threads) : arena_(threads) {
  if (threads > tbb::info::default_concurrency()) {
    raised_cap_.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  }
  if (threads < 2 || !thread_pinning()) return;
  std::vector<int> cpus = allowed_cpus();
  if (cpus.size() != static_cast<std::size_t>(threads)) return;
  arena_.initialize();
  pinning_ = std::make_unique<CpuPinning>(arena_, std::move(cpus));
}

}  // namespace detail
}  // namespace sluice
