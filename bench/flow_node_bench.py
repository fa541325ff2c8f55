#!/usr/bin/env python3
"""A DecompressNode in a caller's graph against sluice::decompress, each run in a process of its own.

    bench/flow_node_bench.py [--reps N] [--program build/release/bench/micro/sluice_flow_decode]
                             [--before OTHER_BUILD_OF_IT] FILE...

Runs sluice_flow_decode (bench/micro/flow_decode.cpp) once per configuration and repetition, in a
fresh process each time: the node on 1 and 2 threads, fed from memory in 1 MiB pieces, and
decompress() on 1 and 2 threads, output counted; and decompress_buffer() on 2 (the output kept in
memory, as Python's sluice.decompress returns it). In one process the runs disturb each other through
the allocator (memory freed by one is faulted in again by the next), so each gets its own. The
runs are interleaved; medians in ms. With --before, runs of another build (of the program from
an earlier commit) are interleaved with them: the node's, or the configurations --before-configs
lists by number (0-4, in the order above).
"""
import argparse
import os
import re
import statistics
import subprocess

CONFIGS = [("node -j1", 0), ("node -j2", 1), ("decompress() -j1", 2), ("decompress() -j2", 3),
           ("decompress_buffer() -j2", 4)]


def run_once(program, path, config):
    env = dict(os.environ, SLUICE_FLOW_DECODE_ONLY=str(config))
    out = subprocess.run([program, path, "1"], env=env, check=True, capture_output=True, text=True).stdout
    return float(re.search(r"([0-9.]+) ms", out.splitlines()[-1]).group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--program", default="build/release/bench/micro/sluice_flow_decode")
    parser.add_argument("--before", help="another build of sluice_flow_decode, for its node runs")
    parser.add_argument("--before-configs", default="0,1", help="which configurations --before runs (0-4)")
    args = parser.parse_args()
    runs = [(name, args.program, config) for name, config in CONFIGS]
    if args.before:
        chosen = [CONFIGS[int(n)] for n in args.before_configs.split(",")]
        runs = [(f"before: {name}", args.before, config) for name, config in chosen] + runs
    print(f"{args.reps} interleaved runs, a process each; medians in ms")
    print("| file | " + " | ".join(name for name, _, _ in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for path in args.files:
        times = {name: [] for name, _, _ in runs}
        for _ in range(args.reps):
            for name, program, config in runs:
                times[name].append(run_once(program, path, config))
        medians = [statistics.median(times[name]) for name, _, _ in runs]
        print(f"| {os.path.basename(path)} | " + " | ".join(f"{m:.1f}" for m in medians) + " |")


if __name__ == "__main__":
    main()
