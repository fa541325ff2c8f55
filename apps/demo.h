// `sluice demo`: the Quick start's main job. Compresses a built-in sample (or the given files)
// with every built-in codec at its default level, decompresses it again, checks that the bytes
// match and prints a table of size and speed.
#pragma once

#include "apps/cli.h"

namespace sluice::app {

int run_demo(const CliOptions& options);

}  // namespace sluice::app
