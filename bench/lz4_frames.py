#!/usr/bin/env python3
"""Times two builds of sluice on lz4 side by side (issue 20: one frame per stream against a frame
per block), on the Silesia tar: each build compresses it (`sluice -F lz4 -c silesia.tar > x.lz4`)
and decodes its own output to /dev/null at -j2 and -j1; the AFTER build also decodes the BEFORE
build's output, which tells the format's share of a difference from the build's. Runs are
interleaved (each repetition runs every command once); the figures are medians.

Usage: bench/lz4_frames.py BEFORE_SLUICE AFTER_SLUICE [--reps N]
"""
import argparse
import shutil
import statistics
from pathlib import Path

from benchlib import interleaved, scratch, silesia, timed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    builds = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}

    corpus = silesia()
    out = scratch("lz4-frames")
    timed(f"tar -cf silesia.tar -C {corpus} .", out)
    for name, sluice in builds.items():
        timed(f"{sluice} -F lz4 -c silesia.tar > {name}.lz4 && {sluice} -d -c {name}.lz4 | cmp - silesia.tar", out)
    size = (out / "silesia.tar").stat().st_size
    print(f"input {size:,} bytes; output before {(out / 'before.lz4').stat().st_size:,}, "
          f"after {(out / 'after.lz4').stat().st_size:,}")

    commands = {}
    for threads in (2, 1):
        for name, sluice in builds.items():
            commands[f"decode -j{threads} ({name})"] = f"{sluice} -d -j{threads} -c {name}.lz4 > /dev/null"
        commands[f"decode -j{threads} (after, before's output)"] = (
            f"{builds['after']} -d -j{threads} -c before.lz4 > /dev/null")
    for threads in (2, 1):
        for name, sluice in builds.items():
            commands[f"compress -j{threads} ({name})"] = f"{sluice} -F lz4 -j{threads} -c silesia.tar > x.lz4"
    times = interleaved(commands, args.reps, out)
    print(f"{'command':36} {'median ms':>9} {'min ms':>7} {'MB/s':>6}")
    for name, runs in times.items():
        median = statistics.median(runs)
        print(f"{name:36} {median * 1000:9.1f} {min(runs) * 1000:7.1f} {size / median / 1e6:6.0f}")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
