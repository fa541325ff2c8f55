// The task arena every graph runs in, and the pinning of its threads to CPUs (thread_arena.h).
#include "engine/thread_arena.h"

#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "sluice/compress.h"
#include "sluice/error.h"
#include "sluice/flow.h"

#ifdef __linux__
#include <pthread.h>
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
namespace {

// The process's pinning state, under one mutex (taken when an arena comes or goes, when pinning
// stops, and once per thread and arena: never on a hot path).
std::mutex g_mutex;
int g_live_arenas = 0;                 // ThreadArenas alive now
const ThreadArena* g_owner = nullptr;  // the arena whose threads are pinned as they come
std::vector<int> g_cpus;               // the CPU for each slot

// Bumped whenever an arena starts pinning, so that each thread takes the lock once per arena.
std::atomic<std::uint64_t> g_epoch{1};
thread_local std::uint64_t t_epoch_seen = 0;

#ifdef __linux__
std::unordered_map<pid_t, cpu_set_t> g_saved_masks;  // threads pinned now, by thread id

// Gives every pinned thread its mask back (sched_setaffinity takes any thread's id).
void unpin_all_locked() {
  for (const auto& [tid, mask] : g_saved_masks) (void)sched_setaffinity(tid, sizeof mask, &mask);
  g_saved_masks.clear();
}
#else
void unpin_all_locked() {}
#endif

// The CPUs this process may run on (the calling thread's affinity mask), in ascending order;
// empty where that cannot be read.
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
#else
std::vector<int> allowed_cpus() { return {}; }
#endif

}  // namespace

int default_threads() {
  static const int threads = [] {
    const std::size_t cpus = allowed_cpus().size();
    return cpus > 0 ? static_cast<int>(cpus) : tbb::info::default_concurrency();
  }();
  return threads;
}

namespace {

void stop_pinning_locked() {
  unpin_all_locked();
  g_owner = nullptr;
}

}  // namespace

#ifdef __linux__
void pin_this_thread() {
  const std::uint64_t epoch = g_epoch.load(std::memory_order_acquire);
  if (t_epoch_seen == epoch) return;
  std::lock_guard lock(g_mutex);
  t_epoch_seen = epoch;
  if (g_owner == nullptr) return;
  const int slot = tbb::this_task_arena::current_thread_index();
  const pid_t tid = gettid();
  if (slot < 0 || static_cast<std::size_t>(slot) >= g_cpus.size() || g_saved_masks.count(tid) > 0) return;
  cpu_set_t saved;
  CPU_ZERO(&saved);
  if (sched_getaffinity(0, sizeof saved, &saved) != 0) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(g_cpus[static_cast<std::size_t>(slot)], &one);
  // Best effort: a thread that cannot be pinned still works, only without the placement.
  if (sched_setaffinity(0, sizeof one, &one) == 0) g_saved_masks.emplace(tid, saved);
}
#else
void pin_this_thread() {}
#endif

namespace {
// Idle arenas by thread count, kept for the next run: a run takes one (or makes one when all are
// in use, so that runs at once, such as transcode's two graphs, never share one: a graph blocked
// on another's output must not hold the threads the other needs) and gives it back at its end.
// Never destroyed (oneTBB may be gone before static destructors run).
std::mutex g_idle_mutex;
auto* g_idle_arenas = new std::map<int, std::vector<std::unique_ptr<tbb::task_arena>>>;

// Fork. oneTBB has no support for it: a child inherits its state as the parent left it, workers
// that did not come along (a stream that flushed in the child waited forever for one) and wait
// lists whose nodes lie on the stacks of parent threads, memory glibc gives the child's new
// threads (a child that ran a graph while the parent had one waiting crashed in oneTBB's
// notify_waiters). So before a fork with no run alive, the idle arenas go and oneTBB is
// finalized, its workers joined: parent and child each start it afresh at their next run. Where
// that cannot be done, the child's runs are refused with a usage error, as its oneTBB cannot be
// used at all: a run is alive, or oneTBB will not finalize because another thread holds it (a
// host's own oneTBB work, or a thread that once ran in an arena and lives on: oneTBB keeps an
// arena for it until it ends). A child allowed to run there would have no worker, and could
// inherit oneTBB's locks held by the parent's workers as they left the arenas just dropped.
//
// oneTBB's lifetime is held from the first arena on (g_lifetime), so that only such a finalize
// ends it. Otherwise the last thread to leave oneTBB ends it (a caller's thread that ran a graph
// and then ended, after the idle arenas went at a fork that could not finalize): its workers are
// let go without being joined, a fork meanwhile finds oneTBB already gone (finalize succeeds at
// once), and the child inherits a worker half way out, with whatever lock it held (a child's run
// hung once in a full test run; in a fifth of such forks a worker was still leaving).
std::mutex g_fork_mutex;     // held from a fork's start to its end in parent and child
int g_runs = 0;              // RunCounts alive (under g_fork_mutex)
bool g_fork_busy = false;    // the fork under way could not finalize oneTBB
bool g_forked_busy = false;  // this process is a child forked where oneTBB could not be finalized

tbb::task_scheduler_handle* g_lifetime = nullptr;  // under g_fork_mutex; never destroyed at exit

// Called before oneTBB is started for a run: holds its lifetime until the next fork.
void hold_onetbb() {
  std::lock_guard lock(g_fork_mutex);
  if (g_lifetime == nullptr) g_lifetime = new tbb::task_scheduler_handle(tbb::attach{});
}

void before_fork() {
  g_fork_mutex.lock();
  g_fork_busy = g_runs > 0 || g_forked_busy;
  if (g_fork_busy) return;
  {
    std::lock_guard lock(g_idle_mutex);
    g_idle_arenas->clear();  // their references would keep oneTBB's market, and so its workers
  }
  // Without a lifetime of ours (no arena since the last fork), one taken now: oneTBB may still
  // have been started (a host's, a run in a caller's arena), and must not come along unfinalized.
  std::unique_ptr<tbb::task_scheduler_handle> lifetime(
      g_lifetime != nullptr ? g_lifetime : new tbb::task_scheduler_handle(tbb::attach{}));
  g_lifetime = nullptr;
  g_fork_busy = !tbb::finalize(*lifetime, std::nothrow);
  // Not finalized: oneTBB lives on in the parent, and its lifetime is held again at once (the
  // thread that kept it may end at any moment; one that ends in the few instructions between lets
  // the workers go unjoined, as before, until the next arena holds oneTBB again). A host's own
  // oneTBB, started with no arena of ours, is the host's to hold (a task_scheduler_handle).
  if (g_fork_busy) g_lifetime = new tbb::task_scheduler_handle(tbb::attach{});
}

void after_fork_in_parent() { g_fork_mutex.unlock(); }

void after_fork_in_child() {
  g_forked_busy = g_fork_busy;
  g_fork_mutex.unlock();
}

#ifdef __linux__
// Registered as the library loads: a fork before the first run must find the handlers too (a
// zip's stages, or a host's oneTBB, may have started oneTBB without a ThreadArena).
const int g_fork_handlers = pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
#endif

void refuse_if_forked_busy_locked() {
  if (g_forked_busy) {
    throw Error(ErrorKind::kUsage,
                "this process was forked while sluice was running in its parent (a file, stream or run "
                "open, or a thread that ran one still alive), whose threads did not come along: sluice "
                "runs only in a process started afresh (multiprocessing's spawn or forkserver) or forked "
                "while nothing of sluice's was open");
  }
}

}  // namespace

RunCount::RunCount() {
  std::lock_guard lock(g_fork_mutex);
  refuse_if_forked_busy_locked();
  ++g_runs;
}

RunCount::~RunCount() {
  std::lock_guard lock(g_fork_mutex);
  --g_runs;
}

namespace {

std::unique_ptr<tbb::task_arena> take_arena(int threads) {
  hold_onetbb();
  {
    std::lock_guard lock(g_idle_mutex);
    auto& idle = (*g_idle_arenas)[threads];
    if (!idle.empty()) {
      auto arena = std::move(idle.back());
      idle.pop_back();
      return arena;
    }
  }
  auto arena = std::make_unique<tbb::task_arena>(threads);
  arena->initialize();
  return arena;
}

void give_back_arena(int threads, std::unique_ptr<tbb::task_arena> arena) {
  std::lock_guard lock(g_idle_mutex);
  (*g_idle_arenas)[threads].push_back(std::move(arena));
}

std::optional<tbb::global_control> raise_cap(int threads) {
  std::optional<tbb::global_control> raised;
  if (threads > tbb::info::default_concurrency()) {
    raised.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  }
  return raised;
}
}  // namespace

int threads_allowed(int threads) {
  const RunCount counted;  // a fork meanwhile must not finalize oneTBB under the global_control
  const auto raised = raise_cap(threads);  // as the arena raises it: what is left below is the host's
  const std::size_t allowed = tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism);
  return static_cast<int>(std::min(allowed, static_cast<std::size_t>(threads)));
}

ThreadArena::ThreadArena(int threads)
    : threads_(threads), raised_cap_(raise_cap(threads)), arena_(take_arena(threads)) {
  std::vector<int> cpus = allowed_cpus();
  std::lock_guard lock(g_mutex);
  if (++g_live_arenas > 1) {
    // Two graphs at once (transcode's two halves, a caller's own threads): pinned, their threads
    // would crowd onto the same CPUs. Neither pins.
    stop_pinning_locked();
    return;
  }
  if (threads < 2 || !thread_pinning() || cpus.size() != static_cast<std::size_t>(threads)) return;
  g_owner = this;
  g_cpus = std::move(cpus);
  g_epoch.fetch_add(1, std::memory_order_release);  // every thread looks again
}

ThreadArena::~ThreadArena() {
  {
    std::lock_guard lock(g_mutex);
    --g_live_arenas;
    if (g_owner == this) stop_pinning_locked();
  }
  give_back_arena(threads_, std::move(arena_));
}

}  // namespace detail

void run_in_task_arena(int threads, const std::function<void()>& work) {
  detail::ThreadArena arena(resolve_threads(threads));
  arena.execute(work);
}

namespace detail {

void unpin_arena_threads() {
  std::lock_guard lock(g_mutex);
  if (g_owner != nullptr) stop_pinning_locked();
}

}  // namespace detail
}  // namespace sluice
