#!/usr/bin/env python3
"""sluice zip against the zip tools on a real tree (the Silesia files plus /usr/include), in the
same run, interleaved; medians of REPS runs; outputs on tmpfs.

- extract a zip made by Info-ZIP `zip -6` (the zips users receive): sluice zip -x, `unzip -q`,
  `bsdtar -xf`, and a ProcessPoolExecutor over Python zipfile members (the hand-rolled parallel
  unzip);
- create: sluice zip -c against `zip -qr -6` (and the sizes);
- extract what sluice zip made (members of independent chunks, decoded in parallel);
- zip to one .gz per member (the upload service's job): sluice transcode --output-dir against
  `unzip` then `pigz` on each file.

With --small, instead: a zip (Info-ZIP `zip -6`) of 100,000 files of 20-600 bytes in 100
directories, tested (`--test` against `unzip -tq`) and extracted, and the same files as a plain
tar extracted (against GNU tar and bsdtar); --before OLD adds the sluice program OLD (an earlier
build) to each table.

Usage: bench/zip_bench.py [--reps N] [--threads N] [--small [--before OLD]]
"""
import argparse
import os
import shutil
import sys
import textwrap
from pathlib import Path

from benchlib import ROOT, interleaved, make_tree, medians, scratch

SLUICE = ROOT / "build" / "release" / "apps" / "sluice"
PYTHON = "/usr/bin/python3"

POOL_UNZIP = textwrap.dedent("""
    import os, sys, zipfile
    from concurrent.futures import ProcessPoolExecutor
    archive, dest, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    def extract(names):
        with zipfile.ZipFile(archive) as z:
            for name in names:
                z.extract(name, dest)
    with zipfile.ZipFile(archive) as z:
        infos = sorted(z.infolist(), key=lambda i: -i.file_size)
        # Directories first, here: workers making the same directory at once collide in zipfile.
        for i in infos:
            os.makedirs(os.path.join(dest, os.path.dirname(i.filename.rstrip("/"))), exist_ok=True)
    # Members dealt to workers biggest first, round robin: the usual hand-rolled balance.
    shares = [[i.filename for i in infos[k::workers]] for k in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(extract, shares))
""")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--small", action="store_true", help="100,000 small members instead of the tree")
    parser.add_argument("--before", help="with --small: an earlier sluice program to compare")
    args = parser.parse_args()
    if args.small:
        return small_members(args)
    tree, files, total = make_tree()
    out = scratch("zip")
    pool = out / "pool_unzip.py"
    pool.write_text(POOL_UNZIP)
    j = args.threads
    s = str(SLUICE)
    print(f"tree: {files} files, {total / 1e6:.1f} MB; {j} threads; {args.reps} runs each, interleaved\n")

    create = {
        "sluice zip -c -6": f"{s} zip -c -j{j} -o {out}/s.zip -C {tree} .",
        "zip -qr -6": f"rm -f {out}/i.zip && cd {tree} && zip -qr -6 {out}/i.zip .",
    }
    times = medians(interleaved(create, args.reps, out))
    sizes = {"sluice zip -c -6": (out / "s.zip").stat().st_size, "zip -qr -6": (out / "i.zip").stat().st_size}
    base = times["zip -qr -6"]
    print("| create | seconds | vs zip -6 | bytes | size vs zip -6 |\n|---|---:|---:|---:|---:|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.2f} | {base / seconds:.2f}x | {sizes[name]:,} | "
              f"{sizes[name] / sizes['zip -qr -6']:.4f} |")

    for archive, label in (("i.zip", "made by zip -6"), ("s.zip", "made by sluice zip")):
        extract = {
            "sluice zip -x": f"rm -rf {out}/x && {s} zip -x -j{j} -f {out}/{archive} -C {out}/x",
            "unzip -q": f"rm -rf {out}/x && unzip -q {out}/{archive} -d {out}/x",
            "bsdtar -xf": f"rm -rf {out}/x && mkdir {out}/x && bsdtar -xf {out}/{archive} -C {out}/x",
            f"ProcessPoolExecutor({j}) + zipfile": f"rm -rf {out}/x && {PYTHON} {pool} {out}/{archive} {out}/x {j}",
        }
        times = medians(interleaved(extract, args.reps, out))
        base = times["unzip -q"]
        print(f"\n| extract ({label}) | seconds | vs unzip |\n|---|---:|---:|")
        for name, seconds in times.items():
            print(f"| {name} | {seconds:.2f} | {base / seconds:.2f}x |")
    transcode = {
        "sluice transcode --output-dir -F gzip": f"rm -rf {out}/t && {s} transcode -j{j} {out}/i.zip --output-dir {out}/t -F gzip",
        f"unzip, then pigz -6 -p{j} per file": f"rm -rf {out}/t && unzip -q {out}/i.zip -d {out}/t && "
                                               f"find {out}/t -type f -print0 | xargs -0 pigz -6 -p{j}",
    }
    times = medians(interleaved(transcode, args.reps, out))
    base = times[f"unzip, then pigz -6 -p{j} per file"]
    print("\n| zip to a .gz per member (made by zip -6) | seconds | vs unzip + pigz |\n|---|---:|---:|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds:.2f} | {base / seconds:.2f}x |")
    shutil.rmtree(out, ignore_errors=True)


def small_members(args):
    """The bundle of many small files: where the time per member, not per byte, counts."""
    import random
    out = scratch("zip-small")
    tree = out / "tree"
    rng = random.Random(1)
    for d in range(100):
        (tree / f"d{d}").mkdir(parents=True)
        for i in range(1000):
            (tree / f"d{d}" / f"f{i}.txt").write_text(f"line {d} {i}\n" * rng.randint(1, 50))
    archive = out / "small.zip"
    os.system(f"cd {tree} && zip -qr -6 {archive} .")
    plain_tar = out / "small.tar"
    os.system(f"tar --sort=name -cf {plain_tar} -C {tree} .")
    shutil.rmtree(tree)
    j = args.threads
    programs = {"sluice": str(SLUICE)}
    if args.before:
        programs["sluice (before)"] = args.before
    print(f"{archive.stat().st_size:,} bytes, 100,000 members; {j} threads; {args.reps} runs each, interleaved\n")
    test = {f"{name} zip --test": f"{program} zip --test -j{j} -f {archive}" for name, program in programs.items()}
    test["unzip -tq"] = f"unzip -tq {archive} > /dev/null"
    extract = {f"{name} zip -x": f"rm -rf {out}/x && {program} zip -x -j{j} -f {archive} -C {out}/x"
               for name, program in programs.items()}
    extract["unzip -q"] = f"rm -rf {out}/x && unzip -q {archive} -d {out}/x"
    extract["bsdtar -xf"] = f"rm -rf {out}/x && mkdir {out}/x && bsdtar -xf {archive} -C {out}/x"
    untar = {f"{name} tar -x": f"rm -rf {out}/x && {program} tar -x -j{j} -f {plain_tar} -C {out}/x"
             for name, program in programs.items()}
    untar["GNU tar -xf"] = f"rm -rf {out}/x && mkdir {out}/x && tar -xf {plain_tar} -C {out}/x"
    untar["bsdtar -xf (tar)"] = f"rm -rf {out}/x && mkdir {out}/x && bsdtar -xf {plain_tar} -C {out}/x"
    for title, commands, base in (("test", test, "unzip -tq"), ("extract", extract, "unzip -q"),
                                  ("extract the tar", untar, "GNU tar -xf")):
        times = medians(interleaved(commands, args.reps, out))
        print(f"| {title} | seconds | vs {base} |\n|---|---:|---:|")
        for name, seconds in times.items():
            print(f"| {name} | {seconds:.3f} | {times[base] / seconds:.2f}x |")
        print()
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
