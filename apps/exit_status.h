// The exit statuses of every sluice command, in one place. gzip's and GNU tar's conventions: 0
// success; 1 a file or entry failed; 2 a warning (trailing garbage, entries refused or read past)
// or a usage error. A run killed by a signal dies of it (main.cpp), so the shell sees 128 + N.
#pragma once

#include <cstddef>
#include <string>

namespace sluice {
class Error;
}

namespace sluice::app {

inline constexpr int kExitSuccess = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitWarning = 2;
inline constexpr int kExitUsage = 2;

// The status an error ends a run with: kExitUsage for usage errors, else kExitFailure.
int exit_status(const Error& error);
// The status of a run that went on past failures and warnings: failure wins over warning.
int exit_status(std::size_t failures, std::size_t warnings);
// Prints "PROGRAM: what" (and, for an output that exists, the hint to use -f) on stderr; returns
// exit_status(error).
int report_error(const std::string& program, const Error& error);

}  // namespace sluice::app
