#!/usr/bin/env python3
"""sluice.dask on a 2-worker LocalCluster against one machine's sluice and Dask's own reader,
interleaved, medians of REPS (issue 21's benchmarks):

  compress  one big file (the Silesia corpus, concatenated COPIES times) compressed by sluice.dask.compress on
            the cluster (its parts written by the workers beside the output, and returned through
            the client) against `sluice -j2` on the same file (same bytes out); and the same parts
            compressed one after another in this process (client=False), which is what the tasks
            cost without Dask: efficiency = one machine's time / the cluster's
  read_csv  a CSV of CSV_MB megabytes: sluice.dask.read_csv of its sluice-made .gz (partitions of
            64 MiB) against dask.dataframe.read_csv(compression="gzip", blocksize=None) of the
            same CSV made by gzip -6 (one partition: Dask cannot split it)
            on the same cluster: counting the rows of every column, and summing one column (which
            Dask's reader parses alone; sluice's is told with usecols)

Run with the installed package: .venv/bin/python bench/dask_bench.py [--only PART] [--reps N]
[--csv-mb N] [--copies N] [--part-mib N]. Prints a Markdown table per part.
"""
import argparse
import logging
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

import sluice  # noqa: E402
import sluice.dask  # noqa: E402

MiB = 1 << 20
PROGRAM = os.environ.get("SLUICE_PROGRAM", str(benchlib.ROOT / "build" / "release" / "apps" / "sluice"))


def interleaved(contenders, reps):
    times = {name: [] for name in contenders}
    for _ in range(reps):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


def table(title, medians, baseline, megabytes):
    print(f"\n### {title}\n")
    print(f"| contender | median s | MB/s | vs {baseline} |")
    print("|---|---:|---:|---:|")
    for name, seconds in medians.items():
        print(f"| {name} | {seconds:.3f} | {megabytes / seconds:,.0f} | {medians[baseline] / seconds:.2f}x |")


def compress_part(client, scratch, reps, copies, part):
    corpus = benchlib.silesia()
    big = scratch / "silesia.bin"
    with open(big, "wb") as out:
        for _ in range(copies):
            for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
                out.write(path.read_bytes())
    megabytes = big.stat().st_size / 1e6
    for fmt, ext in [("gzip", ".gz"), ("zstd", ".zst")]:
        cli_out, dask_out, local_out = scratch / f"cli{ext}", scratch / f"dask{ext}", scratch / f"local{ext}"
        via_client_out = scratch / f"via-client{ext}"

        def cli():
            with open(cli_out, "wb") as f:
                subprocess.run([PROGRAM, "-F", fmt, "-j2", "-c", str(big)], stdout=f, check=True)

        def on_cluster():  # parts_via="auto": the workers write their parts beside the output
            sluice.dask.compress(big, dask_out, fmt, client=client, overwrite=True, part_size=part)

        def on_cluster_via_client():  # parts returned through Dask's connections, as on any cluster
            sluice.dask.compress(big, via_client_out, fmt, client=client, overwrite=True, part_size=part,
                                 parts_via="client")

        def in_process():
            sluice.dask.compress(big, local_out, fmt, client=False, overwrite=True, part_size=part)

        medians = interleaved({"sluice -j2 (one machine)": cli,
                               "sluice.dask.compress (2 workers, parts via storage)": on_cluster,
                               "sluice.dask.compress (2 workers, parts via the client)": on_cluster_via_client,
                               "the same parts in one process": in_process}, reps)
        assert cli_out.read_bytes() == dask_out.read_bytes() == via_client_out.read_bytes() == local_out.read_bytes()
        table(f"compress {megabytes:.0f} MB in parts of {part // MiB} MiB, {fmt} (outputs identical)", medians, "sluice -j2 (one machine)",
              megabytes)


def make_csv(path, megabytes):
    rng = random.Random(21)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    with open(path, "w") as out:
        out.write("id,when,city,amount,score,note\n")
        row = 0
        while out.tell() < megabytes * MiB:
            lines = []
            for _ in range(10000):
                lines.append(f"{row},2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d},"
                             f"{rng.choice(words)},{rng.randrange(100000) / 100},{rng.random():.6f},"
                             f"{' '.join(rng.choices(words, k=rng.randrange(1, 6)))}\n")
                row += 1
            out.write("".join(lines))


def read_csv_part(client, reps, csv_mb, fresh, operations):
    import dask.dataframe as dd
    # The CSV and its two .gz are kept between runs (made again with --fresh).
    kept = Path(f"/dev/shm/sluice-dask-csv-{csv_mb}")
    ours, theirs = kept / "sluice.csv.gz", kept / "gzip.csv.gz"
    if fresh or not (ours.exists() and theirs.exists()):
        kept.mkdir(exist_ok=True)
        plain = kept / "table.csv"
        make_csv(plain, csv_mb)
        with open(ours, "wb") as f:
            subprocess.run([PROGRAM, "-c", str(plain)], stdout=f, check=True)
        with open(theirs, "wb") as f:
            subprocess.run(["gzip", "-6", "-c", str(plain)], stdout=f, check=True)
        plain.unlink()
    megabytes = len(sluice.decompress(ours.read_bytes())) / 1e6
    for name, what, ours_kwargs, compute in [
            ("count", "counting the rows of every column", {}, lambda frame: frame.count().compute()),
            # Dask's read_csv reads only the columns a computation uses; sluice.dask.read_csv
            # is told so with pandas' usecols.
            ("sum", "summing one column", {"usecols": ["amount"]}, lambda frame: frame.amount.sum().compute())]:
        if name not in operations:
            continue
        results = {}

        def sluice_read():
            frame = sluice.dask.read_csv(str(ours), blocksize="64 MiB", **ours_kwargs)
            results.setdefault("partitions", frame.npartitions)
            results.setdefault("sluice", compute(frame))

        def dask_read():
            results.setdefault("dask", compute(dd.read_csv(str(theirs), compression="gzip", blocksize=None)))

        medians = interleaved({"dask read_csv of gzip -6 (blocksize=None)": dask_read,
                               "sluice.dask.read_csv of sluice's .gz": sluice_read}, reps)
        if isinstance(results["dask"], float):  # a sum, taken in another order
            assert abs(results["sluice"] - results["dask"]) <= 1e-9 * abs(results["dask"]), results
        else:
            assert (results["sluice"] == results["dask"]).all(), results
        table(f"read_csv of a {megabytes:.0f} MB CSV, {what} ({results['partitions']} partitions against 1; "
              f"{ours.stat().st_size / 1e6:.0f} MB vs {theirs.stat().st_size / 1e6:.0f} MB compressed)", medians,
              "dask read_csv of gzip -6 (blocksize=None)", megabytes)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["compress", "read_csv"], action="append")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--csv-mb", type=int, default=1024)
    parser.add_argument("--fresh", action="store_true", help="make the CSV again")
    parser.add_argument("--csv-ops", choices=["count", "sum"], action="append")
    parser.add_argument("--copies", type=int, default=1, help="the corpus this many times over, for compress")
    parser.add_argument("--part-mib", type=int, default=8, help="the input of one compress task")
    args = parser.parse_args()
    parts = args.only or ["compress", "read_csv"]
    from distributed import Client, LocalCluster
    scratch = benchlib.scratch("dask")
    print(f"sluice {sluice.__version__}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, "
          f"{args.reps} interleaved repetitions, LocalCluster of 2 worker processes x 1 thread")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        if "compress" in parts:
            compress_part(client, scratch, args.reps, args.copies, args.part_mib * MiB)
        if "read_csv" in parts:
            read_csv_part(client, args.reps, args.csv_mb, args.fresh, args.csv_ops or ["count", "sum"])


if __name__ == "__main__":
    main()
