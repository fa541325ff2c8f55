#!/usr/bin/env python3
"""Parallel inflate (issue 25): one gzip member of the Silesia tar, made by pigz -6 (cut at its
sync flushes) and by gzip -6 (none: cut where block headers are found), decoded to /dev/null by
igzip -dc, pigz -dc and sluice -dc at -j1 and -j2, interleaved; medians in ms and ratios to
igzip. Then, for each stream, the costs per byte of parallel inflate's stages and the model for
more threads, from sluice_inflate_costs (bench/micro, built with -DSLUICE_BUILD_BENCHMARKS=ON),
and the plot bench/plots/inflate_threads.png (gnuplot): the models' MB/s against threads, with
the measured -j1 and -j2 points.

With --members: instead, files of many members, the tar cut into parts of 64 KiB, 1 MiB and
4 MiB each compressed by gzip -6 (split --filter), as logs appended to or a member per record
are, and the seven Silesia files each by gzip -6, one after another: a member whose end is found
near its start is a unit of its own, a longer one is cut into pieces that end at the next
member's header (GzipSplitter).

Usage: /usr/bin/python3 bench/inflate_bench.py [--reps N] [--build DIR] [--members]"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

# The most a graph writes into a pipe here (BENCHMARKS.md, "Micro-benchmarks and the scaling
# model"): whatever the threads, sluice -dc | consumer moves no more.
PIPE_CEILING_MBS = 1904


def silesia_tar(scratch):
    tar = scratch / "silesia.tar"
    subprocess.run(["tar", "-cf", str(tar), "-C", str(benchlib.silesia().parent), "silesia"], check=True)
    return tar


def interleaved_ms(commands, reps):
    """Median wall time of each command, in ms, over `reps` interleaved runs, output discarded."""
    times = {key: [] for key in commands}
    for _ in range(reps):
        for key, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) * 1000 for key, values in times.items()}


def many_members(sluice, tar, scratch, reps):
    size = tar.stat().st_size
    print(f"Silesia tar, {size / 1e6:.1f} MB, cut into parts each compressed by gzip -6 (split --filter); "
          f"{reps} interleaved runs of each, to /dev/null, {time.strftime('%Y-%m-%d')}\n")
    print("| members of | members | igzip -dc | libdeflate-gzip -dc | pigz -dc | sluice -j1 | sluice -j2 "
          "| -j2 vs igzip | -j2 vs -j1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    silesia = sorted(benchlib.silesia().iterdir())
    rows = [(label, part, ["split", "-b", str(part), "--filter", "gzip -6 -n", str(tar)])
            for label, part in (("64 KiB", 64 << 10), ("1 MiB", 1 << 20), ("4 MiB", 4 << 20))]
    # Long members one after another (cat a.gz b.gz ...): cut into pieces, each ending at the next.
    rows.append(("each Silesia file (5-34 MB)", None,
                 ["sh", "-c", 'for f in "$@"; do gzip -6 -n -c "$f"; done', "sh", *map(str, silesia)]))
    for label, part, command in rows:
        packed = scratch / f"members-{part or 'files'}.gz"
        with open(packed, "wb") as out:
            subprocess.run(command, stdout=out, check=True)
        count = (size + part - 1) // part if part else len(silesia)
        files = str(packed)
        ms = interleaved_ms({"igzip": ["igzip", "-dc", files], "libdeflate": ["libdeflate-gzip", "-dc", files],
                             "pigz": ["pigz", "-dc", files], "j1": [sluice, "-dc", "-j1", files],
                             "j2": [sluice, "-dc", "-j2", files]}, reps)
        print(f"| {label} | {count} | {ms['igzip']:.1f} | {ms['libdeflate']:.1f} | "
              f"{ms['pigz']:.1f} | {ms['j1']:.1f} | {ms['j2']:.1f} | {ms['igzip'] / ms['j2']:.2f}x | "
              f"{ms['j1'] / ms['j2']:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--build", default=str(benchlib.ROOT / "build" / "release"))
    parser.add_argument("--members", action="store_true", help="files of many members instead")
    args = parser.parse_args()
    sluice = str(Path(args.build) / "apps" / "sluice")
    costs = Path(args.build) / "bench" / "micro" / "sluice_inflate_costs"
    scratch = benchlib.scratch("inflate")
    tar = silesia_tar(scratch)
    size = tar.stat().st_size
    if args.members:
        many_members(sluice, tar, scratch, args.reps)
        return
    streams = {"pigz -6": ["pigz", "-6", "-p2", "-c"], "gzip -6": ["gzip", "-6", "-c"]}
    print(f"Silesia tar, {size / 1e6:.1f} MB; {args.reps} interleaved runs of each, to /dev/null, "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| stream | igzip -dc | pigz -dc | sluice -j1 | sluice -j2 | -j2 vs igzip | -j2 vs -j1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    measured = {}
    for name, compress in streams.items():
        packed = scratch / (name.split()[0] + ".gz")
        with open(tar, "rb") as source, open(packed, "wb") as out:
            subprocess.run(compress, stdin=source, stdout=out, check=True)
        commands = {"igzip": ["igzip", "-dc", str(packed)], "pigz": ["pigz", "-dc", str(packed)],
                    "j1": [sluice, "-dc", "-j1", str(packed)], "j2": [sluice, "-dc", "-j2", str(packed)]}
        ms = interleaved_ms(commands, args.reps)
        measured[name] = ms
        print(f"| {name} | {ms['igzip']:.1f} | {ms['pigz']:.1f} | {ms['j1']:.1f} | {ms['j2']:.1f} | "
              f"{ms['igzip'] / ms['j2']:.2f}x | {ms['j1'] / ms['j2']:.2f}x |")
    if not costs.exists():
        print(f"\n{costs} not built: configure with -DSLUICE_BUILD_BENCHMARKS=ON for the model")
        return
    plot_lines = []
    for name in streams:
        tool = name.split()[0]
        packed = str(scratch / (tool + ".gz"))
        print(f"\nCosts and model for {name} (sluice_inflate_costs, median of 9):\n")
        print("```")
        print(subprocess.run([str(costs), packed, "9"], capture_output=True, text=True, check=True).stdout.rstrip())
        print("```")
        model = subprocess.run([str(costs), packed, "9", "--data"], capture_output=True, text=True, check=True).stdout
        (scratch / f"model-{tool}.dat").write_text(model)
        ms = measured[name]
        (scratch / f"measured-{tool}.dat").write_text(f"1 {size / ms['j1'] / 1e3:.0f}\n2 {size / ms['j2'] / 1e3:.0f}\n")
        plot_lines.append(f'"{scratch / f"model-{tool}.dat"}" using 1:2 with linespoints title "{name}: model from '
                          f'measured costs (kernels only)"')
        plot_lines.append(f'"{scratch / f"measured-{tool}.dat"}" using 1:2 with points pointsize 1.5 title '
                          f'"{name}: measured (sluice -dc, whole run)"')
    plots = benchlib.ROOT / "bench" / "plots"
    script = f"""
set terminal pngcairo size 800,500
set output "{plots / 'inflate_threads.png'}"
set title "Parallel inflate of one gzip member (Silesia tar): MB/s against threads"
set xlabel "threads"
set ylabel "MB/s of output"
set logscale xy 2
set key left top
plot {", ".join(plot_lines)}, \\
     {PIPE_CEILING_MBS} with lines dashtype 2 title "writing into a pipe (BENCHMARKS.md, scaling model)"
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    print(f"\nPlot: {plots / 'inflate_threads.png'}")


if __name__ == "__main__":
    main()
