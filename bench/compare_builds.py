#!/usr/bin/env python3
"""Times the commands that read a regular file through a wrapper (sluice tar -x, transcode, run)
with two builds of sluice side by side, and against the peers the issues name, on the Silesia
tar: runs are interleaved (each repetition runs every command once) and the figures are medians.

Usage: bench/compare_builds.py BEFORE_SLUICE AFTER_SLUICE [--reps N]
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
    before, after = Path(args.before).resolve(), Path(args.after).resolve()

    corpus = silesia()
    out = scratch("compare")
    shutil.copytree(corpus, out / "silesia")
    timed(f"tar -cf silesia.tar silesia && {after} tar -c -F zstd -f own.tar.zst silesia"
       f" && gzip -6 -c silesia.tar > x.gz && mkdir -p logs && cp x.gz logs/", out)
    (out / "run.toml").write_text(
        'threads = 0\n[input]\npaths = ["logs/"]\n[[stage]]\nkind = "decompress"\n'
        '[[stage]]\nkind = "compress"\ncodec = "zstd"\n[output]\ndirectory = "out"\noverwrite = true\n')

    def extract(tool):
        return f"rm -rf x && mkdir x && {tool} -C x"

    commands = {
        "tar -x (before)": extract(f"{before} tar -x -f own.tar.zst"),
        "tar -x (after)": extract(f"{after} tar -x -f own.tar.zst"),
        "tar -I zstd -x": extract("tar -I zstd -xf own.tar.zst"),
        "transcode (before)": f"rm -f y.zst && {before} transcode x.gz -F zstd -o y.zst",
        "transcode (after)": f"rm -f y.zst && {after} transcode x.gz -F zstd -o y.zst",
        "-dc | -F zstd (after)": f"{after} -dc x.gz | {after} -F zstd > y2.zst",
        "run (before)": f"{before} run run.toml",
        "run (after)": f"{after} run run.toml",
    }
    times = interleaved(commands, args.reps, out)
    print(f"{'command':24} {'median s':>9} {'min s':>7}")
    for name, runs in times.items():
        print(f"{name:24} {statistics.median(runs):9.3f} {min(runs):7.3f}")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
