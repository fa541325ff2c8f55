#!/usr/bin/env python3
"""Many tiny files, each to its own .gz (issue 25): COUNT files of 3-5 KB (slices of the Silesia
corpus, or --data words: text of random words) in one directory on tmpfs, compressed at -6 keeping the inputs, by

  sluice -k -jJ           the files as arguments (one run, one process)
  xargs -PJ -n 500 gzip   `ls | xargs -PJ -n 500 gzip -6 -k`: J gzip processes at a time
  pigz -pJ                one pigz process over every file (its threads split each file's chunks)

interleaved (each repetition runs every command once, the outputs removed between commands);
medians. Also decompresses the .gz files again (sluice -d -k -f against xargs gzip -d).

Usage: bench/tiny_files.py [--count N] [--data silesia|words] [--reps N] [--threads J] [--program PATH]"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def words_text():
    """Text of random words from a vocabulary of 3,000 (bench/many_files.sh's): log-like data."""
    rng = random.Random(3)
    words = ["".join(rng.choice("etaoinshrdlucmfw") for _ in range(rng.randint(2, 8))) for _ in range(3000)]
    return " ".join(rng.choice(words) for _ in range(2_000_000)).encode()


def make_files(directory, count, kind):
    if kind == "silesia":
        corpus = benchlib.silesia()
        data = b"".join(p.read_bytes() for p in sorted(corpus.iterdir()) if p.is_file())
    else:
        data = words_text()
    rng = random.Random(25)
    total = 0
    for i in range(count):
        size = rng.randint(3000, 5000)
        start = rng.randrange(0, len(data) - size)
        (directory / f"f{i:06}.txt").write_bytes(data[start:start + size])
        total += size
    return total


def remove_outputs(directory, suffix):
    for name in os.listdir(directory):
        if name.endswith(suffix):
            os.unlink(directory / name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--data", choices=["silesia", "words"], default="silesia",
                        help="slices of the Silesia corpus, or text of random words")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--program", default=str(benchlib.ROOT / "build" / "release" / "apps" / "sluice"))
    parser.add_argument("--before", help="an earlier sluice program to compare, interleaved with the rest")
    args = parser.parse_args()
    j, s = args.threads, args.program
    scratch = benchlib.scratch("tiny")
    files = scratch / "files"
    files.mkdir()
    total = make_files(files, args.count, args.data)
    # Arguments go through xargs as for the peers (a shell's command line holds 20,000 names, but
    # not every user's); -n 100000 keeps them in one sluice process.
    compressors = {
        f"sluice -k -j{j}": f"ls | grep -v '\\.gz$' | xargs -n 100000 {s} -6 -k -j{j}",
        **({f"sluice -k -j{j} (before)": f"ls | grep -v '\\.gz$' | xargs -n 100000 {args.before} -6 -k -j{j}"}
           if args.before else {}),
        f"xargs -P{j} -n 500 gzip": f"ls | grep -v '\\.gz$' | xargs -P{j} -n 500 gzip -6 -k",
        f"pigz -p{j}": f"ls | grep -v '\\.gz$' | xargs -n 100000 pigz -6 -k -p{j}",
    }
    decompressors = {
        f"sluice -d -j{j}": f"ls | grep '\\.gz$' | xargs -n 100000 {s} -d -f -k -j{j}",
        **({f"sluice -d -j{j} (before)": f"ls | grep '\\.gz$' | xargs -n 100000 {args.before} -d -f -k -j{j}"}
           if args.before else {}),
        f"xargs -P{j} -n 500 gzip -d": f"ls | grep '\\.gz$' | xargs -P{j} -n 500 gzip -d -f -k",
    }
    times = {name: [] for name in [*compressors, *decompressors]}
    for _ in range(args.reps):
        for name, command in compressors.items():
            remove_outputs(files, ".gz")
            start = time.perf_counter()
            subprocess.run(command, shell=True, check=True, cwd=files)
            times[name].append(time.perf_counter() - start)
        for name, command in decompressors.items():
            start = time.perf_counter()
            subprocess.run(command, shell=True, check=True, cwd=files)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"{args.count:,} files of 3-5 KB ({args.data}, {total / 1e6:.1f} MB), {args.reps} interleaved runs, "
          "medians\n")
    for title, group in (("compress, each to its own .gz", compressors),
                                   ("decompress each .gz", decompressors)):
        print(f"| {title} | seconds | files/s | sluice vs this |")
        print("|---|---:|---:|---:|")
        ours = medians[next(iter(group))]
        for name in group:
            print(f"| {name} | {medians[name]:.3f} | {args.count / medians[name]:,.0f} | {medians[name] / ours:.2f}x |")
        print()


if __name__ == "__main__":
    main()
