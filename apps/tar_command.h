// `sluice tar ...`: the archive subcommand, with tar's own option letters.
#pragma once

namespace sluice::app {

// Runs `sluice tar` with argv[0] = "tar"; returns the exit status.
int run_tar_command(int argc, char** argv);

}  // namespace sluice::app
