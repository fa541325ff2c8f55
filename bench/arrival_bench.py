#!/usr/bin/env python3
"""How much of a stream a decoder must be given before it writes anything: a writer sends N
bytes of a stream (gzip: one member sync-flushed after them, as a writer that flushes does; zstd:
whole frames), then pauses. For each decoder and N, whether any output came within the wait.
Decoders that wait for a full input buffer show nothing until N reaches it.

  /usr/bin/python3 bench/arrival_bench.py [--program build/release/apps/sluice] [--wait 1.5]
"""
import argparse
import os
import select
import subprocess
import threading
import time
import zlib


def stream(fmt, size):
    data = os.urandom(size // 2).hex().encode()[:size]  # compresses about 2:1
    if fmt == "gzip":
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return subprocess.run(["zstd", "-q", "-c"], input=data, capture_output=True, check=True).stdout


def send(pipe, piece):
    try:
        pipe.write(piece)
        pipe.flush()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the decoder was stopped


def first_output(command, piece, wait):
    """Seconds until the decoder wrote something after `piece` came, or None."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        start = time.perf_counter()
        # From a thread: a decoder whose output nobody reads yet may stop reading its input.
        threading.Thread(target=send, args=(process.stdin, piece), daemon=True).start()
        ready, _, _ = select.select([process.stdout], [], [], wait)
        return time.perf_counter() - start if ready and os.read(process.stdout.fileno(), 1 << 16) else None
    finally:
        process.kill()
        process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--program", default="build/release/apps/sluice")
    parser.add_argument("--wait", type=float, default=1.5)
    args = parser.parse_args()
    sizes = [100, 10_000, 100_000, 200_000, 300_000, 600_000]
    decoders = {"gzip": [["gzip", "-dc"], ["pigz", "-dc"], [args.program, "-dc"]],
                "zstd": [["zstd", "-dcq"], [args.program, "-dc"]]}
    print(f"{time.strftime('%Y-%m-%d')}: ms from a pause after the first bytes of a stream to the decoder's "
          f"first output ('-': none within {args.wait} s)\n")
    for fmt, commands in decoders.items():
        pieces = [stream(fmt, size) for size in sizes]
        print(f"\n{fmt}, compressed bytes sent: " + ", ".join(f"{len(piece):,}" for piece in pieces) + "\n")
        print("| decoder | " + " | ".join(f"{len(piece):,} B" for piece in pieces) + " |")
        print("|---|" + "---:|" * len(pieces))
        for command in commands:
            cells = []
            for piece in pieces:
                seconds = first_output(command, piece, args.wait)
                cells.append("-" if seconds is None else f"{seconds * 1000:.0f}")
            name = os.path.basename(command[0]) + " " + " ".join(command[1:])
            print(f"| {name} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
