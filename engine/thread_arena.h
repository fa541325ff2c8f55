// The task arena every graph runs in: `threads` slots, as the caller asked, and each thread pinned
// to a CPU of its own while the arena lives when there is one thread per CPU. Internal.
//
// oneTBB caps its worker threads at the machine's cores minus one unless a global_control
// raises the cap, and then prints a warning for every arena that asks for more and runs it with
// fewer. A caller who asks for more threads than cores (pigz -p 8 on 2 cores runs 8) gets them:
// the cap is raised for as long as the arena lives.
//
// Pinning (see set_thread_pinning in sluice/compress.h for the measurements): left to itself,
// Linux put both threads of a -j2 run on one CPU for milliseconds at a time while the other
// idled. When the arena has as many slots as the process may use CPUs (two or more), a thread
// that works in slot i is pinned to the i-th of those CPUs, and every thread pinned gets its own
// CPU mask back when the arena ends. Nothing is pinned with fewer threads than CPUs (several such runs side by
// side would all crowd onto the first CPUs), nor while another ThreadArena is alive in the
// process (transcode runs two graphs at once: the first arena's threads are unpinned when the
// second comes).
//
// Only threads that compress chunks or decode units are pinned, and a stream that goes serial
// unpins them: there one thread decodes, the workers compute its checksums and a writing thread
// of its own writes, and pinned (the first version), the writing thread, which starts with its
// maker's mask, shared the decoder's CPU (perf sched) and decoding into a file was slower than
// unpinned (BENCHMARKS.md, pinning).
#pragma once

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/task_arena.h>

#include <memory>
#include <optional>
#include <utility>

namespace sluice::detail {

// One run of the process, counted from before it touches oneTBB until it is done with it
// (thread_arena.cpp, fork): constructing one throws Error(kUsage) in a child forked where oneTBB
// could not be finalized (a run alive), whose oneTBB cannot be used.
class RunCount {
 public:
  RunCount();
  ~RunCount();
  RunCount(const RunCount&) = delete;
  RunCount& operator=(const RunCount&) = delete;
};

class ThreadArena {
 public:
  explicit ThreadArena(int threads);
  ~ThreadArena();  // gives every thread it pinned its mask back
  ThreadArena(const ThreadArena&) = delete;
  ThreadArena& operator=(const ThreadArena&) = delete;

  template <typename F>
  void execute(F&& work) {
    arena_->execute(std::forward<F>(work));
  }

 private:
  // First: counted before oneTBB is touched and until all of it is given back.
  RunCount counted_;
  int threads_;
  std::optional<tbb::global_control> raised_cap_;  // constructed before the arena is first used
  // Taken from the process's idle arenas and given back at the end (thread_arena.cpp): making
  // one per run cost every call its start, and oneTBB's allocator kept pages of each (RSS grew
  // 7 KB a call over thousands of small calls).
  std::unique_ptr<tbb::task_arena> arena_;
};

// Called by a graph's parallel nodes (compressing a chunk, decoding a unit) at the start of every
// task: pins the calling thread to the CPU of its slot if its arena pins and it is not pinned yet. A thread-local check (about a
// nanosecond) once it has been seen. Threads are pinned from inside their tasks rather than by a
// task_scheduler_observer: oneTBB keeps an observer's bookkeeping alive in any worker still in
// the arena when the observer goes, which LeakSanitizer reported at the exit of every run.
void pin_this_thread();

// The threads an arena of `threads` slots gets: fewer where the host process limits oneTBB (a
// tbb::global_control of its own, which wins over the cap ThreadArena raises for a run above the
// core count, as oneTBB takes the lowest of them). A run allowed one goes serial: no graph.
int threads_allowed(int threads);

// The threads a run gets when it asks for 0 ("all cores"): the CPUs this process may run on, as
// oneTBB counts them, but read without starting oneTBB (which a run that needs no worker, a
// small file's, would otherwise pay for at its start).
int default_threads();

// From a graph's task: give the arena's pinned threads their masks back and pin no more for the
// rest of its life (a stream that goes serial).
void unpin_arena_threads();

}  // namespace sluice::detail
