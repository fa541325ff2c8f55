// The library's version, one place for it: CMake reads the project's version from these lines,
// and code can test it at compile time (SLUICE_VERSION_NUMBER >= 300 for 0.3.0 and later: 0.3.0
// replaced ZipReader::entries() with size() and entry()).
#pragma once

#define SLUICE_VERSION_MAJOR 0
#define SLUICE_VERSION_MINOR 3
#define SLUICE_VERSION_PATCH 0

#define SLUICE_VERSION_NUMBER (SLUICE_VERSION_MAJOR * 10000 + SLUICE_VERSION_MINOR * 100 + SLUICE_VERSION_PATCH)
#define SLUICE_VERSION_TEXT_(major, minor, patch) #major "." #minor "." #patch
#define SLUICE_VERSION_TEXT(major, minor, patch) SLUICE_VERSION_TEXT_(major, minor, patch)
// "MAJOR.MINOR.PATCH", e.g. "0.3.0"
#define SLUICE_VERSION_STRING SLUICE_VERSION_TEXT(SLUICE_VERSION_MAJOR, SLUICE_VERSION_MINOR, SLUICE_VERSION_PATCH)
