// Compressing and decompressing files the way gzip and zstd users expect: FILE -> FILE.gz and
// back, inputs kept unless --rm, outputs published atomically, one error line per failed file.
#pragma once

#include "apps/cli.h"

namespace sluice::app {

// Runs the compress or decompress job over every input. Returns the exit status:
// 0 when every file succeeded, 1 when any failed (each failure already reported), 2 for usage.
int run_file_jobs(const CliOptions& options);

}  // namespace sluice::app
