// The registry of outputs a fatal signal's handler removes (remove_pending_outputs() in
// sluice/io.h), as far as creating a file in place needs it. Internal to the library; here so
// that a test can drive a creation one step at a time (the steps are microseconds apart in use).
#pragma once

#include <string>

namespace sluice::detail {

// Registers `path` as a file about to be created in place: until end_creation(), a handler
// removes nothing (remove_pending_outputs() returns false). -1 where it must not be created in
// place: no handler removes outputs (set_pending_outputs_removed_on_signals), no slot is free, or
// a signal is already being handled.
int begin_creation(const std::string& path);
// The creation in `slot` is over: the file `made` is removed by a handler until committed; else
// the slot is free. A signal whose handler waited for it is raised again.
void end_creation(int slot, bool made);

}  // namespace sluice::detail
