// The task arena every graph runs in: `threads` slots, as the caller asked, and each thread pinned
// to a CPU of its own while it works in the arena when there is one thread per CPU. Internal.
//
// oneTBB caps its worker threads at the machine's cores minus one unless a global_control
// raises the cap, and then prints a warning for every arena that asks for more and runs it with
// fewer. A caller who asks for more threads than cores (pigz -p 8 on 2 cores runs 8) gets them:
// the cap is raised for as long as the arena lives.
//
// Pinning (see set_thread_pinning in sluice/compress.h for the measurements): left to itself,
// Linux put both threads of a -j2 run on one CPU for milliseconds at a time while the other
// idled. When the arena has as many slots as the process may use CPUs (two or more), the thread
// in slot i runs on the i-th of those CPUs while it is in the arena, and gets back the CPU mask it
// had when it leaves. With fewer threads than CPUs nothing is pinned: several such runs side by
// side would all crowd onto the first CPUs.
#pragma once

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include <atomic>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace sluice::detail {

// The CPUs this process may run on (the calling thread's affinity mask), in ascending order;
// empty where that cannot be read.
std::vector<int> allowed_cpus();

// Pins each thread entering `arena` to cpus[its slot] and restores its own mask when it leaves.
// The destructor waits for every thread it pinned to have left (a worker still in the arena when
// observing stopped would never hear of its exit and stay pinned, to the next arena it joins).
class CpuPinning final : public tbb::task_scheduler_observer {
 public:
  CpuPinning(tbb::task_arena& arena, std::vector<int> cpus);
  ~CpuPinning() override;
  CpuPinning(const CpuPinning&) = delete;
  CpuPinning& operator=(const CpuPinning&) = delete;

  void on_scheduler_entry(bool is_worker) override;
  void on_scheduler_exit(bool is_worker) override;

 private:
  std::vector<int> cpus_;
  std::atomic<bool> closing_{false};    // set by the destructor: pin no more threads
  std::atomic<int> threads_pinned_{0};  // pinned and not yet left
};

class ThreadArena {
 public:
  explicit ThreadArena(int threads);

  template <typename F>
  void execute(F&& work) {
    arena_.execute(std::forward<F>(work));
  }

  bool pinned() const { return pinning_ != nullptr; }

 private:
  std::optional<tbb::global_control> raised_cap_;  // constructed before the arena is first used
  tbb::task_arena arena_;
  std::unique_ptr<CpuPinning> pinning_;  // after the arena: stops observing before it goes
};

}  // namespace sluice::detail
