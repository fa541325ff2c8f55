"""Hostile streams of tiny units, against the peer that reads the same format, interleaved.

Each stream is valid (every peer reads it) and holds almost nothing: a member of sluice's
independent chunks flooded with empty stored blocks, an lz4 frame of one-byte blocks, empty lz4
frames, a 16 MiB zstd frame read from a pipe, a member of independent chunks whose name is 60 MiB.
A unit per tiny piece, or a splitter walking a frame from its start at every read, once made these
take seconds (BENCHMARKS.md, "Floods of tiny units"). Prints medians in seconds.

    /usr/bin/python3 bench/floods_bench.py [--reps 5] [--sluice build/release/apps/sluice] [--before OLD]

--before OLD adds a column for another build of sluice (say, one before a change), interleaved too.
"""
import argparse
import struct
import subprocess
import zlib

from benchlib import ROOT, interleaved, medians, scratch


def xxh32_header_check(data):
    """The lz4 frame header's check byte: the second byte of XXH32 of the descriptor (xxhsum)."""
    out = subprocess.run(["xxhsum", "-H0", "-"], input=data, capture_output=True, check=True).stdout
    return bytes.fromhex(out.split()[0].decode())[2]


def make_inputs(where, program):
    text = b"".join(b"line %d of the log, with some words in it\n" % i for i in range(20000))
    (where / "text").write_bytes(text)
    subprocess.run([program, "-k", "-f", "--chunk-size", "64K", str(where / "text")], check=True)
    packed = (where / "text.gz").read_bytes()
    first = packed.index(b"\x00\x00\xff\xff") + 4
    (where / "si_flood.gz").write_bytes(packed[:first] + b"\x00\x00\x00\xff\xff" * 1_000_000 + packed[first:])
    # 5M one-byte stored blocks in a frame of independent 64 KiB blocks; 4M empty frames.
    descriptor = bytes([0x60, 0x40])
    header = b"\x04\x22\x4d\x18" + descriptor + bytes([xxh32_header_check(descriptor)])
    (where / "lz4_blocks.lz4").write_bytes(header + b"\x01\x00\x00\x80x" * 5_000_000 + b"\x00" * 4)
    (where / "lz4_frames.lz4").write_bytes((header + b"\x00" * 4) * 4_000_000)
    # One zstd frame of 16 MiB with no content size (as a stream writes it): empty raw blocks,
    # 3 bytes each, then a last one.
    (where / "big_frame.zst").write_bytes(b"\x28\xb5\x2f\xfd" + bytes([0x00, 0x58]) + bytes(3 * ((16 << 20) // 3)) +
                                          b"\x01\x00\x00")
    # A member of independent chunks named with 60 MiB.
    name = b"n" * (60 << 20)
    extra = b"SI" + struct.pack("<HII", 8, 64 * 1024, 1)
    body = zlib.compressobj(6, zlib.DEFLATED, -15)
    deflated = body.compress(b"x" * 1000) + body.flush()
    member = (b"\x1f\x8b\x08\x0c" + bytes(6) + struct.pack("<H", len(extra)) + extra + name + b"\x00" + deflated +
              struct.pack("<II", zlib.crc32(b"x" * 1000), 1000))
    (where / "long_name.gz").write_bytes(member)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sluice", default=str(ROOT / "build" / "release" / "apps" / "sluice"))
    parser.add_argument("--before", help="another build of sluice to time beside it")
    args = parser.parse_args()
    where = scratch("floods")
    make_inputs(where, args.sluice)
    # {label: (sluice's command with {s} for the program, the peer's)}
    cases = {
        "S,I member + 1M empty blocks (5 MB)": ("{s} -t si_flood.gz", "gzip -t si_flood.gz"),
        "lz4 frame of 5M one-byte blocks (25 MB)": ("{s} -t lz4_blocks.lz4", "lz4 -tq lz4_blocks.lz4"),
        "4M empty lz4 frames (44 MB)": ("{s} -t lz4_frames.lz4", "lz4 -tq lz4_frames.lz4"),
        "16 MiB zstd frame of empty blocks, from a pipe": ("cat big_frame.zst | {s} -t", "cat big_frame.zst | zstd -qt"),
        "S,I member named with 60 MiB, from a pipe": ("cat long_name.gz | {s} -t", "cat long_name.gz | gzip -t"),
    }
    programs = {"sluice": args.sluice, **({"before": args.before} if args.before else {})}
    print(f"{'stream':45} " + " ".join(f"{name:>10}" for name in programs) + f" {'peer':>10} {'sluice/peer':>12}")
    for label, (ours, peer) in cases.items():
        commands = {name: ours.format(s=program) + " 2>/dev/null" for name, program in programs.items()}
        commands["peer"] = peer + " 2>/dev/null"
        times = medians(interleaved(commands, args.reps, where))
        print(f"{label:45} " + " ".join(f"{times[name]:10.3f}" for name in programs) +
              f" {times['peer']:10.3f} {times['sluice'] / times['peer']:12.2f}")


if __name__ == "__main__":
    main()
