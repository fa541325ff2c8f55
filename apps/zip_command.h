// `sluice zip ...`: zip archives, with the same option letters as `sluice tar`.
#pragma once

namespace sluice::app {

// Runs `sluice zip` with argv[0] = "zip"; returns the exit status.
int run_zip_command(int argc, char** argv);

}  // namespace sluice::app
