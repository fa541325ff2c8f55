#!/usr/bin/env python3
"""Start-up (issue 25): the time to run `sluice -dc` on a 3-byte .gz against gzip and zstd, and
what a program pays before doing anything: hello-world programs (compiled here) linked with
nothing, with Debian's shared oneTBB, and with every shared library `sluice` loads; and
`sluice --version`, and the same two of the release-static build where scripts/static-build.sh
made it. Each process is started with fork/exec (no shell), interleaved, REPS times; medians in
milliseconds.

Usage: /usr/bin/python3 bench/startup_bench.py [--reps N] [--program PATH] [--static-program PATH]"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def shared_libraries(program):
    """The -l names of the shared libraries `program` needs besides libc's own."""
    names = []
    for line in subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout.splitlines():
        name = line.split()[0]
        if name.startswith("lib") and ".so" in name:
            stem = name[3:name.index(".so")]
            if stem not in ("c", "m", "gcc_s", "stdc++"):
                names.append(stem)
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--program", default=str(benchlib.ROOT / "build" / "release" / "apps" / "sluice"))
    parser.add_argument("--static-program", default=str(benchlib.ROOT / "build" / "release-static" / "apps" / "sluice"),
                        help="also measured where it exists (scripts/static-build.sh)")
    args = parser.parse_args()
    scratch = benchlib.scratch("startup")
    (scratch / "s3").write_bytes(b"ab\n")
    subprocess.run(["gzip", "-k", str(scratch / "s3")], check=True)
    (scratch / "hello.cpp").write_text('#include <cstdio>\nint main() { std::puts("x"); }\n')
    libraries = shared_libraries(args.program)
    # puts() needs libc only; with --no-as-needed, g++ also loads libstdc++ (and libm), as every
    # C++ library does.
    builds = {"hello (libc only)": [], "hello + libstdc++": ["-Wl,--no-as-needed"],
              "hello + libtbb": ["-Wl,--no-as-needed", "-ltbb"],
              f"hello + {', '.join(libraries)}": ["-Wl,--no-as-needed", *(f"-l{name}" for name in libraries)]}
    commands = {}
    for i, (name, flags) in enumerate(builds.items()):
        out = scratch / f"hello{i}"
        subprocess.run(["g++", "-O2", str(scratch / "hello.cpp"), "-o", str(out), *flags], check=True)
        commands[name] = [str(out)]
    gz = str(scratch / "s3.gz")
    commands.update({"gzip -dc": ["gzip", "-dc", gz], "zstd -dcq": ["zstd", "-dcq", gz],
                     "sluice --version": [args.program, "--version"], "sluice -dc": [args.program, "-dc", gz]})
    if Path(args.static_program).exists():  # scripts/static-build.sh's
        commands.update({"sluice --version (release-static)": [args.static_program, "--version"],
                         "sluice -dc (release-static)": [args.static_program, "-dc", gz]})
    times = {name: [] for name in commands}
    for _ in range(args.reps):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    gzip_ms = sorted(times["gzip -dc"])[len(times["gzip -dc"]) // 2] * 1000
    print(f"{args.reps} interleaved runs of each, {time.strftime('%Y-%m-%d')}\n")
    print("| process | median ms | vs gzip -dc |")
    print("|---|---:|---:|")
    for name, values in times.items():
        ms = sorted(values)[len(values) // 2] * 1000
        print(f"| {name} | {ms:.2f} | {ms / gzip_ms:.2f}x |")


if __name__ == "__main__":
    main()
