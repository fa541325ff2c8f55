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
// had when it leaves. Nothing is pinned with fewer threads than CPUs (several such runs side by
// side would all crowd onto the first CPUs), nor while another ThreadArena is alive in the
// process (transcode runs two graphs at once: the first arena's threads are unpinned when the
// second comes).
//
// A graph whose work is parallel from the start (compression) pins at once. Decompression pins
// when the first unit is cut, and unpins if the stream goes serial: there one thread decodes,
// the workers compute its checksums and a writing thread of its own writes, and pinned (the
// first version), the writing thread, which starts with its maker's mask, shared the decoder's
// CPU (perf sched) and decoding pigz's gzip into a file took 165 ms against 134 unpinned.

#pragma once

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>
#include <oneapi/tbb/task_scheduler_observer.h>

#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace sluice::detail {

// The CPUs this process may run on (the calling thread's affinity mask), in ascending order;
// empty where that cannot be read.
std::vector<int> allowed_cpus();

class CpuPinning;

class ThreadArena {
 public:
  enum class Pin {
    kAtOnce,    // the graph is parallel from the start
    kWhenAsked  // the graph calls pin_arena_threads() once it knows
  };
  explicit ThreadArena(int threads, Pin pin = Pin::kAtOnce);
  ~ThreadArena();
  ThreadArena(const ThreadArena&) = delete;
  ThreadArena& operator=(const ThreadArena&) = delete;

  template <typename F>
  void execute(F&& work) {
    arena_.execute(std::forward<F>(work));
  }

 private:
  std::optional<tbb::global_control> raised_cap_;  // constructed before the arena is first used
  tbb::task_arena arena_;
  std::unique_ptr<CpuPinning> pinning_;  // after the arena: stops observing before it goes
};

// From a graph's task: pin the threads of the arena that may pin (nothing if none may), or
// unpin them for the rest of its life. Cheap to call again.
void pin_arena_threads();
void unpin_arena_threads();

}  // namespace sluice::detail
