#!/usr/bin/env python3
"""Times the commands that read a regular file through a wrapper (sluice tar -x, transcode, run)
with two builds of sluice side by side, and against the peers the issues name, on the Silesia
tar: runs are interleaved (each repetition runs every command once) and the figures are medians.

Usage: bench/compare_builds.py BEFORE_SLUICE AFTER_SLUICE [--reps N]
Outputs go to /dev/shm (tmpfs), so that the disk's writeback does not steal a core.
"""
import argparse
import shutil
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
OUT = Path("/dev/shm/sluice-compare") if Path("/dev/shm").is_dir() else DATA / "compare"


def sh(command):
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, cwd=OUT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    before, after = Path(args.before).resolve(), Path(args.after).resolve()

    corpus = DATA / "silesia"
    subprocess.run([str(ROOT.parent / "shared" / "corpus" / "unpack"), str(corpus)], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    shutil.copytree(corpus, OUT / "silesia")
    sh(f"tar -cf silesia.tar silesia && {after} tar -c -F zstd -f own.tar.zst silesia"
       f" && gzip -6 -c silesia.tar > x.gz && mkdir -p logs && cp x.gz logs/")
    (OUT / "run.toml").write_text(
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
    times = {name: [] for name in commands}
    for _ in range(args.reps):
        for name, command in commands.items():
            times[name].append(sh(command))
    print(f"{'command':24} {'median s':>9} {'min s':>7}")
    for name, runs in times.items():
        print(f"{name:24} {statistics.median(runs):9.3f} {min(runs):7.3f}")
    shutil.rmtree(OUT, ignore_errors=True)


if __name__ == "__main__":
    main()
