// `sluice demo`: the Quick start's main job. Compresses a built-in sample (or the given files)
// with every built-in codec at its default level, decompresses it again, checks that the bytes
// match and prints a table of size and speed, saying what it measured.
#pragma once

#include "apps/cli.h"

namespace sluice::app {

int run_demo(const CliOptions& options);

// The end of `sluice demo --help`: what the table says and how it is measured.
const char* demo_help_footer();

}  // namespace sluice::app
