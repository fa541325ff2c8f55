// The one graph shape every Sluice run has (oneTBB's fgbzip2 example, with memory bounded):
//
//   reader ──> limiter ──> worker (parallel) ──> ordering (sequencer) ──> writer
//     ^                                                                     │
//     └───────────────────────── one item retired (decrement) ─────────────┘
//
// The reader runs serially and makes numbered items (Item::sequence, 0, 1, 2, ... without gaps);
// the limiter admits at most `in_flight` of them; the worker runs on every thread of the arena;
// the sequencer restores the reader's order; the writer runs serially, in that order, and
// retires each item, which admits the next. A graph is a configuration of this shape: its reader,
// worker and writer. Internal to the library.
#pragma once

#include <cstddef>
#include <utility>

#include <oneapi/tbb/flow_graph.h>

namespace sluice::detail {

// Runs the shape on `graph` until the reader stops and every item is retired (or the graph is
// cancelled). `read(control)` returns the next item or stops `control`; `work(item)` returns the
// item for the writer; `write(item)` consumes it (and must release it: it is then retired).
//
// A reader whose input would keep it waiting (a caller that has written nothing more yet) pauses
// instead: it stops `control`, and once every item in flight is retired, `resume()` is called on
// the thread that runs the graph, outside any task: it waits for the input and returns true to
// read on, or false when the reader had stopped for good. A reader that waited inside its task
// held a thread of oneTBB's: two streams flushed at once on two cores each waited for the only
// worker, which the other's reader held, forever (the thread that runs the graph now does the
// flushed work itself before it waits).
template <typename Item, typename Read, typename Work, typename Write, typename Resume>
void run_ordered_graph(tbb::flow::graph& graph, std::size_t in_flight, Read&& read, Work&& work, Write&& write,
                       Resume&& resume) {
  namespace flow = tbb::flow;
  flow::input_node<Item*> reader(graph, [&](tbb::flow_control& control) { return read(control); });
  flow::limiter_node<Item*> limiter(graph, in_flight);
  // Unlimited: the limiter bounds the work and the arena the threads.
  flow::function_node<Item*, Item*> worker(graph, flow::unlimited, [&](Item* item) { return work(item); });
  flow::sequencer_node<Item*> ordering(graph, [](Item* const& item) { return item->sequence; });
  flow::function_node<Item*, flow::continue_msg> writer(graph, flow::serial, [&](Item* item) {
    write(item);
    return flow::continue_msg();
  });
  flow::make_edge(reader, limiter);
  flow::make_edge(limiter, worker);
  flow::make_edge(worker, ordering);
  flow::make_edge(ordering, writer);
  flow::make_edge(writer, limiter.decrementer());
  reader.activate();
  graph.wait_for_all();
  while (!graph.is_cancelled() && resume()) {
    reader.activate();  // a stopped input node reads again once activated
    graph.wait_for_all();
  }
}

template <typename Item, typename Read, typename Work, typename Write>
void run_ordered_graph(tbb::flow::graph& graph, std::size_t in_flight, Read&& read, Work&& work, Write&& write) {
  run_ordered_graph<Item>(graph, in_flight, std::forward<Read>(read), std::forward<Work>(work),
                          std::forward<Write>(write), [] { return false; });
}

}  // namespace sluice::detail
