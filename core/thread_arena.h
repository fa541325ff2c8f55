// The task arena every graph runs in: `threads` slots, as the caller asked. Internal.
//
// oneTBB caps its worker threads at the machine's cores minus one unless a global_control
// raises the cap, and then prints a warning for every arena that asks for more and runs it with
// fewer. A caller who asks for more threads than cores (pigz -p 8 on 2 cores runs 8) gets them:
// the cap is raised for as long as the arena lives.
#pragma once

#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/info.h>
#include <oneapi/tbb/task_arena.h>

#include <cstddef>
#include <optional>

namespace sluice::detail {

class ThreadArena {
 public:
  explicit ThreadArena(int threads) : arena_(threads) {
    if (threads > tbb::info::default_concurrency()) {
      raised_cap_.emplace(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
    }
  }

  template <typename F>
  void execute(F&& work) {
    arena_.execute(std::forward<F>(work));
  }

 private:
  std::optional<tbb::global_control> raised_cap_;  // constructed before the arena is first used
  tbb::task_arena arena_;
};

}  // namespace sluice::detail
