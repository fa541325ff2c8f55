// `sluice run` (pipeline files) and `sluice transcode` (decompress -> compress in one pass).
#pragma once

namespace sluice::app {

// Each takes argv with argv[0] = the subcommand's name; returns the exit status.
int run_pipeline_command(int argc, char** argv);
int run_transcode_command(int argc, char** argv);

}  // namespace sluice::app
