#!/usr/bin/python3
"""What flush() costs a writer that flushes after every record (a log handler, a streaming HTTP
response): sluice.open against gzip.open, the same records, interleaved runs; time and size.

Usage: /usr/bin/python3 bench/flush_bench.py [--records N] [--size BYTES] [--reps R]
"""
import argparse
import gzip
import io
import statistics
import sys
import time

import sluice


def records(count, size):
    words = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    out = []
    for i in range(count):
        line = b"%d " % i + b" ".join(words[(i * 7 + k) % len(words)] for k in range(size // 6))
        out.append(line[:size - 1] + b"\n")
    return out


def run(open_writer, items, flush_every):
    sink = io.BytesIO()
    start = time.perf_counter()
    with open_writer(sink) as f:
        for i, item in enumerate(items, 1):
            f.write(item)
            if flush_every and i % flush_every == 0:
                f.flush()
    return time.perf_counter() - start, len(sink.getvalue())


class _ZstdWriter:
    """zstandard's writer at level 3 as a context manager that leaves the sink open."""

    def __init__(self, zstandard, sink):
        self._writer = zstandard.ZstdCompressor(level=3).stream_writer(sink, closefd=False)

    def __enter__(self):
        return self._writer

    def __exit__(self, *exc):
        self._writer.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=120)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    items = records(args.records, args.size)
    writers = {
        "gzip.open": lambda sink: gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0),
        "sluice.open": lambda sink: sluice.open(sink, "wb"),
        "sluice.open form=single-member": lambda sink: sluice.open(sink, "wb", form="single-member"),
    }
    try:  # zstd's peer: python3-zstandard's stream writer, whose flush() ends a block
        import zstandard
        writers["zstandard stream_writer"] = lambda sink: _ZstdWriter(zstandard, sink)
        writers["sluice.open format=zstd"] = lambda sink: sluice.open(sink, "wb", format="zstd")
    except ImportError:
        pass
    print(f"{args.records} records of {args.size} bytes, {args.reps} interleaved runs, medians")
    print("| writer | flush every | seconds | us per flush | bytes |")
    print("|---|---:|---:|---:|---:|")
    for flush_every in (1, 100, 0):
        times = {name: [] for name in writers}
        sizes = {}
        for _ in range(args.reps):
            for name, make in writers.items():
                seconds, size = run(make, items, flush_every)
                times[name].append(seconds)
                sizes[name] = size
        for name in writers:
            t = statistics.median(times[name])
            flushes = args.records // flush_every if flush_every else 0
            per = f"{t / flushes * 1e6:.1f}" if flushes else ""
            print(f"| {name} | {flush_every or 'never'} | {t:.3f} | {per} | {sizes[name]:,} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
