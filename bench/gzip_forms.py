#!/usr/bin/env python3
"""The gzip forms side by side on the Silesia tar (issue 26): compressing at -6 with sluice's
default (one member of independent chunks), --multi-member and --single-member against
pigz -6 -p2, and decoding each against libdeflate-gzip -d, igzip -d and pigz -d. Runs are
interleaved (each repetition runs every command once); figures are medians, sizes in bytes.

Usage: bench/gzip_forms.py SLUICE [--reps N] [--threads N]
"""
import argparse
import shutil
import subprocess
from pathlib import Path

from benchlib import interleaved, medians, scratch, silesia


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("sluice")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    s, j = Path(args.sluice).resolve(), args.threads

    corpus = silesia()
    out = scratch("gzip-forms")
    subprocess.run(f"tar -cf {out}/silesia.tar -C {corpus.parent} silesia", shell=True, check=True)
    size = (out / "silesia.tar").stat().st_size

    forms = {"sluice (default: independent chunks)": "", "sluice --multi-member": "--multi-member",
             "sluice --single-member": "--single-member"}
    compress = {name: f"{s} -6 -j{j} {flags} -c silesia.tar > {i}.gz" for i, (name, flags) in enumerate(forms.items())}
    compress[f"pigz -6 -p{j}"] = f"pigz -6 -p{j} -c silesia.tar > pigz.gz"
    files = {name: f"{i}.gz" for i, name in enumerate(forms)} | {f"pigz -6 -p{j}": "pigz.gz"}
    ctimes = medians(interleaved(compress, args.reps, out))
    pigz = f"pigz -6 -p{j}"
    print(f"Compressing the Silesia tar ({size:,} bytes) at -6 on {j} threads, median of {args.reps}:\n")
    print(f"| command | seconds | MB/s | vs {pigz} | size | size vs pigz |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, seconds in ctimes.items():
        packed = (out / files[name]).stat().st_size
        print(f"| {name} | {seconds:.3f} | {size / seconds / 1e6:.0f} | {ctimes[pigz] / seconds:.2f}x | {packed:,} | "
              f"{packed / (out / 'pigz.gz').stat().st_size:.4f}x |")

    readers = {"sluice -d": f"{s} -d -j{j} -c", "libdeflate-gzip -d": "libdeflate-gzip -d -c",
               "igzip -d": "igzip -d -c", "pigz -d": f"pigz -d -p{j} -c"}
    for sink, where in (("/dev/null", "> /dev/null"), ("a file on tmpfs", "> out")):
        decode = {}
        for form, file in files.items():
            for reader, command in readers.items():
                decode[(form, reader)] = f"{command} {file} {where}"
        dtimes = medians(interleaved({f"{form} / {reader}": c for (form, reader), c in decode.items()}, args.reps, out))
        print(f"\nDecoding each to {sink}, median of {args.reps} (MB/s of output; ratio: sluice -d against the reader):\n")
        print("| stream | " + " | ".join(readers) + " | sluice -d vs libdeflate-gzip -d |")
        print("|---|" + "---:|" * (len(readers) + 1))
        for form in files:
            row = [dtimes[f"{form} / {reader}"] for reader in readers]
            cells = " | ".join(f"{size / t / 1e6:,.0f}" for t in row)
            print(f"| {form} | {cells} | {row[1] / row[0]:.2f}x |")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
