#!/usr/bin/env python3
"""The Python package against what Python users use today, side by side in one process, each
repetition running every contender once (interleaved), medians of REPS (issue 20's benchmarks):

  bundle   the upload service: each file of a bundle to gzip -6 in memory; sluice.compress_many
           against a ThreadPoolExecutor over gzip.compress and the serial loop
  open     sluice.open writing and reading against gzip.open, and reading against zstandard's
           stream_reader and lz4.frame.open reading their own output
  small    many small files through sluice.open against gzip.open: 1,000 files of 4 KB written
           and read, by path and as BytesIO, per file
  objects  the Silesia tar in 64 KiB pieces through sluice.Compressor and sluice.Decompressor
           against zlib.compressobj(6, wbits=31) and zlib.decompressobj(31)
  call     per-call cost of a 1 KB payload: sluice.compress against zlib.compress
  seek     sluice.open(...).seek() to the middle of a 1 GB file of ours, and indexed_gzip's
  whole    sluice.decompress of the Silesia files as one stream in memory, in each format as sluice
           and the stock tools write it, against gzip.decompress, zstandard and lz4.frame; and
           sluice.open(path).read() of some of them against gzip.open's
  lines    1.5 million short lines of a .gz read by a readline() loop, by iteration (binary and
           text) and in reads of 100 bytes, against
           gzip.open's

Run with the installed package: .venv/bin/python bench/python_bench.py [--only PART] [--reps N]
(scripts/install-python.sh makes .venv). Prints a Markdown table per part.
"""
import argparse
import concurrent.futures
import gzip
import io
import os
import random
import statistics
import subprocess
import sys
import time
import timeit
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

import sluice  # noqa: E402

MiB = 1 << 20


def interleaved(contenders, reps):
    """{name: callable returning an output size} -> ({name: median seconds}, {name: size})."""
    times = {name: [] for name in contenders}
    sizes = {}
    for _ in range(reps):
        for name, run in contenders.items():
            start = time.perf_counter()
            sizes[name] = run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, sizes


def table(title, medians, sizes, baseline, megabytes):
    print(f"\n### {title}\n")
    print("| contender | median s | MB/s | vs " + baseline + " | output bytes |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds in medians.items():
        size = sizes.get(name)
        print(f"| {name} | {seconds:.3f} | {megabytes / seconds:,.0f} | {medians[baseline] / seconds:.2f}x | "
              f"{size:,} |" if size is not None else f"| {name} | {seconds:.3f} | | {medians[baseline] / seconds:.2f}x | |")


def silesia_files():
    corpus = benchlib.silesia()
    return sorted(p for p in corpus.rglob("*") if p.is_file())


def bundle(files, reps):
    """A bundle like the upload service's: pieces of the Silesia files around 300 KB on average,
    and once in a while an 80 MB one; and 25 x 300 KB."""
    rng = random.Random(20)
    blobs = [p.read_bytes() for p in files]
    whole = b"".join(blobs)

    def piece(size):
        blob = rng.choice(blobs)
        start = rng.randrange(0, max(1, len(blob) - size))
        return blob[start:start + size]

    mixed = [piece(int(rng.lognormvariate(12.0, 0.9))) for _ in range(59)] + [whole[:80_000_000]]
    rng.shuffle(mixed)
    small = [piece(300_000) for _ in range(25)]
    for title, payloads in [(f"{len(mixed)} files, {sum(map(len, mixed)) / 1e6:.0f} MB (one of 80 MB)", mixed),
                            ("25 x 300 KB", small)]:
        megabytes = sum(map(len, payloads)) / 1e6
        pool = concurrent.futures.ThreadPoolExecutor()

        def serial():
            return sum(len(gzip.compress(p, 6, mtime=0)) for p in payloads)

        def threads():
            return sum(len(c) for c in pool.map(lambda p: gzip.compress(p, 6, mtime=0), payloads))

        def many():
            return sum(len(c) for c in sluice.compress_many(payloads, "gzip", 6))

        medians, sizes = interleaved({"gzip.compress loop": serial, "ThreadPoolExecutor(gzip.compress)": threads,
                                      "sluice.compress_many": many}, reps)
        pool.shutdown()
        table(f"Each file to gzip -6 in memory: {title}", medians, sizes, "ThreadPoolExecutor(gzip.compress)",
              megabytes)


def open_files(files, reps):
    import lz4.frame
    import zstandard

    data = b"".join(p.read_bytes() for p in files)
    megabytes = len(data) / 1e6
    out = benchlib.scratch("python-open")

    def write_with(opener, path):
        def run():
            with opener(out / path) as f:
                for at in range(0, len(data), MiB):
                    f.write(data[at:at + MiB])
            return (out / path).stat().st_size
        return run

    def read_with(opener, path):
        def run():
            total = 0
            with opener(out / path) as f:
                while True:
                    piece = f.read(MiB)
                    if not piece:
                        return total
                    total += len(piece)
        return run

    medians, sizes = interleaved({
        "gzip.open(wb, 6)": write_with(lambda p: gzip.open(p, "wb", 6), "g.gz"),
        "sluice.open(wb) gzip -6": write_with(lambda p: sluice.open(p, "wb"), "s.gz"),
    }, reps)
    table(f"Writing the Silesia tar ({megabytes:.0f} MB) in 1 MiB writes", medians, sizes, "gzip.open(wb, 6)",
          megabytes)

    (out / "z.zst").write_bytes(zstandard.ZstdCompressor(level=3).compress(data))
    (out / "l.lz4").write_bytes(lz4.frame.compress(data))
    with sluice.open(out / "s.zst", "wb") as f:
        f.write(data)
    with sluice.open(out / "s.lz4", "wb") as f:
        f.write(data)
    medians, sizes = interleaved({
        "gzip.open(rb) its own": read_with(lambda p: gzip.open(p, "rb"), "g.gz"),
        "sluice.open(rb) .gz": read_with(lambda p: sluice.open(p, "rb"), "s.gz"),
        "zstandard stream_reader its own": read_with(
            lambda p: zstandard.ZstdDecompressor().stream_reader(open(p, "rb"), read_across_frames=True), "z.zst"),
        "sluice.open(rb) .zst": read_with(lambda p: sluice.open(p, "rb"), "s.zst"),
        "lz4.frame.open its own": read_with(lambda p: lz4.frame.open(p, "rb"), "l.lz4"),
        "sluice.open(rb) .lz4": read_with(lambda p: sluice.open(p, "rb"), "s.lz4"),
    }, reps)
    table(f"Reading it back in 1 MiB reads ({megabytes:.0f} MB out)", medians, sizes, "gzip.open(rb) its own",
          megabytes)


def small_files(reps):
    files = [small_text(4096, seed) for seed in range(1000)]
    out = benchlib.scratch("python-small")
    packed = [gzip.compress(data, 6, mtime=0) for data in files]
    for i, blob in enumerate(packed):
        (out / f"{i}.gz").write_bytes(blob)

    def write_paths(opener):
        def run():
            for i, data in enumerate(files):
                with opener(out / f"w{i}.gz") as f:
                    f.write(data)
            return sum((out / f"w{i}.gz").stat().st_size for i in range(len(files)))
        return run

    def write_memory(opener):
        def run():
            total = 0
            for data in files:
                sink = io.BytesIO()
                with opener(sink) as f:
                    f.write(data)
                total += len(sink.getvalue())
            return total
        return run

    def read_paths(opener):
        def run():
            total = 0
            for i in range(len(files)):
                with opener(out / f"{i}.gz") as f:
                    total += len(f.read())
            return total
        return run

    def read_memory(opener):
        def run():
            total = 0
            for blob in packed:
                with opener(io.BytesIO(blob)) as f:
                    total += len(f.read())
            return total
        return run

    def gzip_write(file):
        if isinstance(file, io.BytesIO):
            return gzip.GzipFile(fileobj=file, mode="wb", compresslevel=6, mtime=0)
        return gzip.open(file, "wb", 6)

    medians, _ = interleaved({
        "gzip.open(path, wb)": write_paths(gzip_write),
        "sluice.open(path, wb)": write_paths(lambda f: sluice.open(f, "wb")),
        "gzip.GzipFile(BytesIO, wb)": write_memory(gzip_write),
        "sluice.open(BytesIO, wb)": write_memory(lambda f: sluice.open(f, "wb")),
        "gzip.open(path, rb)": read_paths(lambda f: gzip.open(f, "rb")),
        "sluice.open(path, rb)": read_paths(lambda f: sluice.open(f, "rb")),
        "gzip.GzipFile(BytesIO, rb)": read_memory(lambda f: gzip.GzipFile(fileobj=f, mode="rb")),
        "sluice.open(BytesIO, rb)": read_memory(lambda f: sluice.open(f, "rb")),
    }, reps)
    print(f"\n### {len(files):,} files of 4 KB, each opened, written or read whole, closed\n")
    print("| contender | microseconds per file | vs gzip's |")
    print("|---|---:|---:|")
    names = list(medians)
    for at in range(0, len(names), 2):
        for name in names[at:at + 2]:
            print(f"| {name} | {medians[name] / len(files) * 1e6:.1f} | {medians[names[at]] / medians[name]:.2f}x |")


def objects(files, reps):
    data = b"".join(p.read_bytes() for p in files)
    megabytes = len(data) / 1e6
    piece = 64 * 1024
    packed = sluice.compress(data)

    def compress_with(make):
        def run():
            compressor = make()
            return sum(len(compressor.compress(data[at:at + piece])) for at in range(0, len(data), piece)) + \
                len(compressor.flush())
        return run

    def decompress_with(make):
        def run():
            decompressor = make()
            return sum(len(decompressor.decompress(packed[at:at + piece]))
                       for at in range(0, len(packed), piece)) + len(decompressor.flush())
        return run

    medians, sizes = interleaved({
        "zlib.compressobj(6, wbits=31)": compress_with(lambda: zlib.compressobj(6, zlib.DEFLATED, 31)),
        "sluice.Compressor() gzip -6": compress_with(sluice.Compressor),
    }, reps)
    table(f"Compressing the Silesia tar ({megabytes:.0f} MB) in 64 KiB pieces", medians, sizes,
          "zlib.compressobj(6, wbits=31)", megabytes)
    medians, sizes = interleaved({
        "zlib.decompressobj(31)": decompress_with(lambda: zlib.decompressobj(31)),
        "sluice.Decompressor()": decompress_with(sluice.Decompressor),
    }, reps)
    table(f"Decompressing sluice's gzip of it in 64 KiB pieces ({megabytes:.0f} MB out)", medians, sizes,
          "zlib.decompressobj(31)", megabytes)

    def bounded_zlib(source, step, max_length):  # zlib's loop: the input not decoded comes back
        def run():
            decompressor, total = zlib.decompressobj(31), 0
            for at in range(0, len(source), step):
                total += len(decompressor.decompress(source[at:at + step], max_length))
                while decompressor.unconsumed_tail:
                    total += len(decompressor.decompress(decompressor.unconsumed_tail, max_length))
            return total + len(decompressor.flush())
        return run

    def bounded_sluice(source, step, max_length):  # bz2's loop: the decompressor keeps it
        def run():
            decompressor, total = sluice.Decompressor(), 0
            for at in range(0, len(source), step):
                total += len(decompressor.decompress(source[at:at + step], max_length))
                while not decompressor.needs_input:
                    total += len(decompressor.decompress(b"", max_length))
            return total + len(decompressor.flush())
        return run

    for step, source, what in ((piece, packed, f"{megabytes:.0f} MB out"),
                               (1024, sluice.compress(data[:4_000_000]), "its first 4 MB, in 1 KiB pieces")):
        medians, sizes = interleaved({
            "zlib.decompressobj(31)": bounded_zlib(source, step, 0),  # 0: no limit, in zlib's
            "zlib.decompressobj(31), max_length 1 MiB": bounded_zlib(source, step, MiB),
            "sluice.Decompressor()": bounded_sluice(source, step, -1),
            "sluice.Decompressor(), max_length 1 MiB": bounded_sluice(source, step, MiB),
        }, reps)
        table(f"Decompressing with max_length ({what})", medians, sizes, "zlib.decompressobj(31)",
              len(data[:4_000_000] if step != piece else data) / 1e6)


def small_text(size, seed):
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"\n", b"%d" % seed]
    return b" ".join(rng.choice(words) for _ in range(size))[:size]


def per_call(reps):
    data = (b"GET /index.html HTTP/1.1 200 1234 Mozilla/5.0 (X11; Linux x86_64) " * 20)[:1024]
    packed = sluice.compress(data)
    contenders = {
        "zlib.compress(6)": lambda: zlib.compress(data, 6),
        "gzip.compress(6)": lambda: gzip.compress(data, 6, mtime=0),
        "sluice.compress gzip": lambda: sluice.compress(data),
        "sluice.compress zstd": lambda: sluice.compress(data, "zstd"),
        "sluice.compress lz4": lambda: sluice.compress(data, "lz4"),
        "zlib.decompress(wbits=31)": lambda: zlib.decompress(packed, 31),
        "sluice.decompress gzip": lambda: sluice.decompress(packed),
    }
    best = {name: [] for name in contenders}
    for _ in range(reps):
        for name, run in contenders.items():
            best[name].append(min(timeit.repeat(run, number=2000, repeat=3)) / 2000)
    print("\n### Per call, 1 KB payload (median of the best of 3 x 2000 calls)\n")
    print("| call | microseconds | vs zlib.compress |")
    print("|---|---:|---:|")
    base = statistics.median(best["zlib.compress(6)"])
    for name, runs in best.items():
        print(f"| {name} | {statistics.median(runs) * 1e6:.1f} | {statistics.median(runs) / base:.2f}x |")


def seek(files, reps):
    import indexed_gzip

    out = benchlib.scratch("python-seek")
    data = b"".join(p.read_bytes() for p in files)
    copies = -(-1_000_000_000 // len(data))
    plain = out / "big"
    with open(plain, "wb") as f:
        for _ in range(copies):
            f.write(data)
    size = plain.stat().st_size
    program = os.environ.get("SLUICE_PROGRAM", str(benchlib.ROOT / "build" / "release" / "apps" / "sluice"))
    subprocess.run([program, "-k", "-f", str(plain)], check=True)
    subprocess.run([program, "-k", "-f", "-F", "zstd", str(plain)], check=True)
    for form in ("multi-member", "bgzf"):
        with open(f"{plain}.{form}.gz", "wb") as f:
            subprocess.run([program, f"--{form}", "-c", str(plain)], check=True, stdout=f)
    middle = size // 2

    def sluice_seek(path):
        def run():
            with sluice.open(path, "rb") as f:
                f.seek(middle)
                return len(f.read(4096))
        return run

    def indexed(path):
        def run():
            with indexed_gzip.IndexedGzipFile(str(path)) as f:
                f.seek(middle)
                return len(f.read(4096))
        return run

    medians, _ = interleaved({
        "sluice.open .gz (ours, default form) seek": sluice_seek(str(plain) + ".gz"),
        "sluice.open .zst (ours, seek table) seek": sluice_seek(str(plain) + ".zst"),
        "sluice.open .gz --multi-member seek": sluice_seek(f"{plain}.multi-member.gz"),
        "sluice.open .gz --bgzf seek": sluice_seek(f"{plain}.bgzf.gz"),
        "indexed_gzip on ours (builds its index)": indexed(str(plain) + ".gz"),
    }, reps)
    print(f"\n### Seek to the middle ({middle / 1e9:.2f} GB) of a {size / 1e9:.2f} GB file, first seek after open\n")
    print("| contender | median s |")
    print("|---|---:|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} |")


def whole(files, reps):
    import lz4.frame
    import zstandard

    data = b"".join(p.read_bytes() for p in files)
    megabytes = len(data) / 1e6

    def tool(*command):
        return subprocess.run(command, input=data, stdout=subprocess.PIPE, check=True).stdout

    streams = {
        "sluice gzip": sluice.compress(data),
        "pigz -6": tool("pigz", "-6", "-c", "-p2"),
        "gzip -6": tool("gzip", "-6", "-c"),
        "sluice zstd": sluice.compress(data, "zstd"),
        "zstd -3 (from a pipe)": tool("zstd", "-3", "-q", "-c"),
        "sluice lz4": sluice.compress(data, "lz4"),
        "lz4 -1 (from a pipe)": tool("lz4", "-1", "-q", "-c"),
    }
    contenders = {}
    for name, packed in streams.items():
        contenders[f"sluice.decompress: {name}"] = (lambda p: lambda: len(sluice.decompress(p)))(packed)

    def read_all(opener, path):
        with opener(path, "rb") as f:
            return len(f.read())

    out = benchlib.scratch("python-whole")
    for name, suffix in (("sluice gzip", ".gz"), ("pigz -6", ".gz"), ("sluice zstd", ".zst")):
        path = out / (name.replace(" ", "-") + suffix)
        path.write_bytes(streams[name])
        contenders[f"sluice.open(...).read(): {name}"] = (lambda p: lambda: read_all(sluice.open, p))(str(path))
    contenders["gzip.decompress: pigz -6"] = lambda: len(gzip.decompress(streams["pigz -6"]))
    contenders["gzip.open(...).read(): pigz -6"] = lambda: read_all(gzip.open, out / "pigz--6.gz")
    contenders["zstandard: zstd -3"] = lambda: len(
        zstandard.ZstdDecompressor().decompressobj().decompress(streams["zstd -3 (from a pipe)"]))
    contenders["lz4.frame.decompress: lz4 -1"] = lambda: len(lz4.frame.decompress(streams["lz4 -1 (from a pipe)"]))
    medians, sizes = interleaved(contenders, reps)
    table(f"Decompressing {megabytes:.0f} MB in memory (one stream, the Silesia files)", medians, sizes,
          "gzip.decompress: pigz -6", megabytes)


def lines(reps):
    data = b"".join(b"line %d of some log text here\n" % i for i in range(1_500_000))
    path = "/tmp/sluice-bench-lines.gz"
    with open(path, "wb") as out:
        out.write(sluice.compress(data))

    def by_readline(opener):
        def run():
            count = 0
            with opener(path) as f:
                while f.readline():
                    count += 1
            return count
        return run

    def by_iteration(opener, mode="rb"):
        def run():
            with opener(path, mode) as f:
                return sum(1 for _ in f)
        return run

    def by_small_reads(opener):
        def run():
            count = 0
            with opener(path) as f:
                while f.read(100):
                    count += 1
            return count
        return run

    contenders = {"gzip.open readline()": by_readline(gzip.open), "sluice.open readline()": by_readline(sluice.open),
                  "gzip.open iteration": by_iteration(gzip.open), "sluice.open iteration": by_iteration(sluice.open),
                  "gzip.open text iteration": by_iteration(gzip.open, "rt"),
                  "sluice.open text iteration": by_iteration(sluice.open, "rt"),
                  "gzip.open read(100)": by_small_reads(gzip.open), "sluice.open read(100)": by_small_reads(sluice.open)}
    medians, counts = interleaved(contenders, reps)
    table("1.5 million lines (lines or reads counted in the last column)", medians, counts, "gzip.open readline()",
          len(data) / MiB)
    os.remove(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["bundle", "open", "small", "objects", "call", "seek", "whole", "lines"],
                        action="append")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    parts = args.only or ["bundle", "open", "small", "objects", "call", "seek", "whole", "lines"]
    files = silesia_files() if set(parts) - {"small", "call", "lines"} else []
    print(f"sluice {sluice.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d')}, {args.reps} interleaved repetitions")
    if "bundle" in parts:
        bundle(files, args.reps)
    if "open" in parts:
        open_files(files, args.reps)
    if "small" in parts:
        small_files(args.reps)
    if "objects" in parts:
        objects(files, args.reps)
    if "call" in parts:
        per_call(args.reps)
    if "seek" in parts:
        seek(files, max(3, args.reps // 2))
    if "whole" in parts:
        whole(files, args.reps)
    if "lines" in parts:
        lines(args.reps)


if __name__ == "__main__":
    main()
