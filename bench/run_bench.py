#!/usr/bin/env python3
"""Compares sluice with pigz, gzip, zstd -T and lz4 on the Silesia corpus.

Every tool compresses (and decompresses) the same input, a tar of the Silesia files, in the
same run. Runs are interleaved (each repetition runs every tool once) so that machine noise
hits them alike; figures are medians. Throughput is uncompressed bytes / wall time.

Also measures sluice's peak RSS while compressing a 1 GiB stream from a pipe.

Also: a bundle of many small files and one big one (each to its own .gz), and tar archives of a
real tree (create and extract) against tar piped through pigz, zstd -T and lz4.

Also: sluice with each gzip engine (--gzip-backend), sluice's throughput against its thread count,
the micro-benchmarks of bench/micro (each codec's chunk path, the serial stages) with the scaling
model they give, and PNG plots (gnuplot) of throughput against ratio and against threads.

Usage: bench/run_bench.py [--reps N] [--threads N] [--write BENCHMARKS.md]
                          [--only stream|engines|micro|bundle|tar]
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import make_tree

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
# Outputs go to tmpfs where there is one: writing ~80 MB per run to a disk wakes the kernel's
# writeback threads at random moments, which steals a core on a 2-core machine and makes the
# figures depend on the disk instead of the tools.
OUT = Path("/dev/shm/sluice-bench") if Path("/dev/shm").is_dir() else DATA / "out"
SLUICE = ROOT / "build" / "release" / "apps" / "sluice"
MICRO = ROOT / "build" / "release" / "bench" / "micro" / "sluice_micro"
PLOTS = ROOT / "bench" / "plots"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def sh(command, stdin=None, stdout=None):
    """Runs a shell command; returns wall seconds. Fails loudly."""
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, stdin=stdin, stdout=stdout)
    return time.perf_counter() - start


def prepare_input():
    corpus = DATA / "silesia"
    subprocess.run([str(ROOT.parent / "shared" / "corpus" / "unpack"), str(corpus)], check=True,
                   stdout=subprocess.DEVNULL)
    tar = DATA / "silesia.tar"
    if not tar.exists():
        subprocess.run(["tar", "-cf", str(tar), "-C", str(corpus), "--sort=name", "."], check=True)
    return tar


def timed(command, src, dst, reps_times):
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        reps_times.append(sh(command, stdin=fin, stdout=fout))


def compression_table(tar, threads, reps):
    """Each row: (label, command). Commands read stdin and write stdout."""
    j = threads
    s = str(SLUICE)
    gzip_peers = lambda n: [(f"pigz -p{j}", f"pigz -{n} -p{j} -c"), ("libdeflate-gzip", f"libdeflate-gzip -{n} -c"),
                            (f"igzip -{min(n, 3)}" if n > 3 else "igzip", f"igzip -{min(n, 3)} -c"),  # 3: its best
                            ("gzip", f"gzip -{n} -c")]
    groups = [
        ("gzip -6", [("sluice", f"{s} -6 -j{j} -c")] + gzip_peers(6)),
        ("gzip -1", [("sluice", f"{s} -1 -j{j} -c")] + gzip_peers(1)),
        ("gzip -9", [("sluice", f"{s} -9 -j{j} -c")] + gzip_peers(9)),
        ("gzip -6 single member", [("sluice", f"{s} -6 --single-member -j{j} -c"), (f"pigz -p{j}", f"pigz -6 -p{j} -c")]),
        ("zstd -3", [("sluice", f"{s} -F zstd -3 -j{j} -c"), (f"zstd -T{j}", f"zstd -q -3 -T{j} -c")]),
        ("zstd -19", [("sluice", f"{s} -F zstd -19 -j{j} -c"), (f"zstd -T{j}", f"zstd -q -19 -T{j} -c")]),
        ("lz4 -1", [("sluice", f"{s} -F lz4 -1 -j{j} -c"), ("lz4", "lz4 -q -1 -c")]),
    ]
    times = {(g, label): [] for g, rows in groups for label, _ in rows}
    sizes = {}
    outputs = {}
    for rep in range(reps):
        for group, rows in groups:
            for label, command in rows:
                # serial gzip, level 9 and zstd -19 are slow: fewer runs keep the bench short
                if rep >= 3 and (label == "gzip" or group in ("zstd -19", "gzip -9")):
                    continue
                out = OUT / f"out-{group.replace(' ', '')}-{label.split()[0]}"
                timed(command, tar, out, times[(group, label)])
                sizes[(group, label)] = out.stat().st_size
                outputs[(group, label)] = out
        print(f"  compression repetition {rep + 1}/{reps} done", file=sys.stderr)
    return groups, times, sizes, outputs


def decompression_table(tar, outputs, threads, reps):
    s = str(SLUICE)
    j = threads
    bgzf = OUT / "out-bgzf"
    with open(tar, "rb") as fin, open(bgzf, "wb") as fout:
        subprocess.run(["bgzip", "-@", str(j), "-c"], stdin=fin, stdout=fout, check=True)
    gunzips = [("sluice -d", f"{s} -d -j{j} -c"), ("gzip -d", "gzip -dc"), ("pigz -d", "pigz -dc"),
               ("libdeflate-gzip -d", "libdeflate-gzip -dc"), ("igzip -d", "igzip -dc")]
    rows = [
        ("gzip, independent members (ours)", outputs[("gzip -6", "sluice")], gunzips),
        ("BGZF (bgzip)", bgzf, gunzips),
        ("gzip, single member (ours)", outputs[("gzip -6 single member", "sluice")], gunzips),
        ("gzip (pigz)", outputs[("gzip -6", f"pigz -p{j}")], gunzips),
        ("zstd (ours)", outputs[("zstd -3", "sluice")], [("sluice -d", f"{s} -d -j{j} -c"), ("zstd -d", "zstd -q -dc")]),
        ("zstd (zstd)", outputs[("zstd -3", f"zstd -T{j}")], [("sluice -d", f"{s} -d -j{j} -c"), ("zstd -d", "zstd -q -dc")]),
        ("lz4 (ours)", outputs[("lz4 -1", "sluice")], [("sluice -d", f"{s} -d -j{j} -c"), ("lz4 -d", "lz4 -q -dc")]),
        ("lz4 (lz4)", outputs[("lz4 -1", "lz4")], [("sluice -d", f"{s} -d -j{j} -c"), ("lz4 -d", "lz4 -q -dc")]),
    ]
    # Decoding speed (output to /dev/null) and end to end (output to a file, which adds the same
    # serial page-cache copy to every tool).
    times = {(name, label, sink): [] for name, _, tools in rows for label, _ in tools for sink in ("null", "file")}
    for rep in range(reps):
        for name, src, tools in rows:
            for label, command in tools:
                timed(command, src, Path("/dev/null"), times[(name, label, "null")])
                timed(command, src, OUT / "decoded", times[(name, label, "file")])
        print(f"  decompression repetition {rep + 1}/{reps} done", file=sys.stderr)
    # Every decoder must have produced the original.
    subprocess.run(["cmp", str(OUT / "decoded"), str(tar)], check=True)
    return rows, times


def peak_rss_1gib(tar, threads):
    """Peak RSS of sluice compressing ~1 GiB fed through a pipe."""
    size = tar.stat().st_size
    copies = max(1, (1 << 30) // size + 1)
    results = []
    for codec, level in (("gzip", 6), ("zstd", 3), ("lz4", 1)):
        feeder = subprocess.Popen(f"for i in $(seq {copies}); do cat {tar}; done", shell=True,
                                  stdout=subprocess.PIPE)
        proc = subprocess.Popen([str(SLUICE), "-F", codec, f"-{level}", f"-j{threads}", "-c"],
                                stdin=feeder.stdout, stdout=subprocess.DEVNULL)
        feeder.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        feeder.wait()
        if status != 0:
            raise SystemExit(f"sluice failed while streaming 1 GiB ({codec})")
        results.append((codec, level, copies * size, usage.ru_maxrss / 1024))
    return results


def make_bundle(tar):
    """The upload-service case: Silesia files, ~60 system files of 64 KiB - 2 MiB, and one
    dominating file (the Silesia tar, 82 MB). Files are copied flat, with numbered names."""
    bundle = DATA / "bundle"
    if bundle.exists():
        return bundle
    bundle.mkdir()
    picks = []
    for root in ("/usr/lib/x86_64-linux-gnu", "/usr/share/perl", "/usr/share/doc"):
        for path in sorted(Path(root).rglob("*")):
            if path.suffix in (".gz", ".xz", ".bz2", ".zst", ".lz4"):
                continue  # already compressed: gzip tools would refuse or skip them
            if path.is_file() and not path.is_symlink() and 64 * 1024 <= path.stat().st_size <= 2048 * 1024:
                picks.append(path)
    picks = picks[:: max(1, len(picks) // 60)][:60]
    sources = sorted((DATA / "silesia").iterdir()) + picks + [tar]
    for n, path in enumerate(sources):
        shutil.copyfile(path, bundle / f"{n:03d}-{path.name}")
    return bundle


def bundle_table(tar, threads, reps):
    bundle = make_bundle(tar)
    files = sorted(p.name for p in bundle.iterdir())
    sizes = sorted(bundle.joinpath(f).stat().st_size for f in files)
    total = sum(sizes)
    out = OUT / "bundle-out"
    s = str(SLUICE)
    j = threads
    tools = [
        ("sluice (one graph)", f"{s} -6 -j{j} -f --output-dir {out} *"),
        (f"pigz -p{j} per file", f"for f in *; do pigz -6 -p{j} -c \"$f\" > {out}/\"$f\".gz; done"),
        (f"xargs -P{j} gzip", f"ls | xargs -P{j} -I{{}} sh -c 'gzip -6 -c \"$1\" > \"$2/$1.gz\"' _ {{}} {out}"),
        ("gzip per file (serial)", f"for f in *; do gzip -6 -c \"$f\" > {out}/\"$f\".gz; done"),
    ]
    times = {label: [] for label, _ in tools}
    out_sizes = {}
    for rep in range(reps):
        for label, command in tools:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            start = time.perf_counter()
            subprocess.run(command, shell=True, check=True, cwd=bundle, executable="/bin/bash")
            times[label].append(time.perf_counter() - start)
            out_sizes[label] = sum(p.stat().st_size for p in out.iterdir())
            if label.startswith("sluice") and rep == 0:
                subprocess.run(f"gzip -t {out}/*.gz", shell=True, check=True)
        print(f"  bundle repetition {rep + 1}/{reps} done", file=sys.stderr)
    return {"files": len(files), "total": total, "median": statistics.median(sizes), "largest": sizes[-1],
            "times": times, "sizes": out_sizes, "tools": [label for label, _ in tools]}


def tar_table(threads, reps):
    """Archive creation and extraction against the usual tar pipelines; outputs on tmpfs."""
    tree, files, total = make_tree()
    s = str(SLUICE)
    j = threads
    out = OUT / "tar"
    out.mkdir(exist_ok=True)
    # (label, command, archive it writes)
    create = [
        ("gzip -6", [("sluice tar", f"{s} tar -c -j{j} -f {out}/s.tar.gz -C {tree} .", out / "s.tar.gz"),
                     (f"tar \\| pigz -6 -p{j}", f"tar -cf - -C {tree} . | pigz -6 -p{j} > {out}/p.tar.gz",
                      out / "p.tar.gz")]),
        ("gzip -6 single member", [("sluice tar", f"{s} tar -c -j{j} --single-member -f {out}/sm.tar.gz -C {tree} .",
                                    out / "sm.tar.gz"),
                                   (f"tar \\| pigz -6 -p{j}", f"tar -cf - -C {tree} . | pigz -6 -p{j} > {out}/p.tar.gz",
                                    out / "p.tar.gz")]),
        ("zstd -3", [("sluice tar", f"{s} tar -c -j{j} -f {out}/s.tar.zst -C {tree} .", out / "s.tar.zst"),
                     (f"tar -I 'zstd -T{j}'", f"tar -I 'zstd -3 -T{j}' -cf {out}/z.tar.zst -C {tree} .",
                      out / "z.tar.zst")]),
        ("lz4 -1", [("sluice tar", f"{s} tar -c -j{j} -f {out}/s.tar.lz4 -C {tree} .", out / "s.tar.lz4"),
                    ("tar -I lz4", f"tar -I 'lz4 -1' -cf {out}/l.tar.lz4 -C {tree} .", out / "l.tar.lz4")]),
    ]
    extract = [
        ("gzip (ours, independent members)", [("sluice tar", f"{s} tar -x -j{j} -f {out}/s.tar.gz -C {{dst}}"),
                                              ("tar -I pigz", f"tar -I pigz -xf {out}/s.tar.gz -C {{dst}}"),
                                              ("tar -z (gzip)", f"tar -xzf {out}/s.tar.gz -C {{dst}}")]),
        ("gzip (tar \\| pigz)", [("sluice tar", f"{s} tar -x -j{j} -f {out}/p.tar.gz -C {{dst}}"),
                                ("tar -I pigz", f"tar -I pigz -xf {out}/p.tar.gz -C {{dst}}")]),
        ("zstd (ours)", [("sluice tar", f"{s} tar -x -j{j} -f {out}/s.tar.zst -C {{dst}}"),
                         ("tar -I zstd", f"tar -I zstd -xf {out}/s.tar.zst -C {{dst}}")]),
        ("zstd (made by zstd -T2)", [("sluice tar", f"{s} tar -x -j{j} -f {out}/z.tar.zst -C {{dst}}"),
                                     ("tar -I zstd", f"tar -I zstd -xf {out}/z.tar.zst -C {{dst}}")]),
        ("lz4 (ours)", [("sluice tar", f"{s} tar -x -j{j} -f {out}/s.tar.lz4 -C {{dst}}"),
                        ("tar -I lz4", f"tar -I lz4 -xf {out}/s.tar.lz4 -C {{dst}}")]),
    ]
    ctimes, csizes, xtimes = {}, {}, {}
    for rep in range(reps):
        for group, rows in create:
            for label, command, archive in rows:
                start = time.perf_counter()
                subprocess.run(command, shell=True, check=True, executable="/bin/bash")
                ctimes.setdefault((group, label), []).append(time.perf_counter() - start)
                csizes[(group, label)] = archive.stat().st_size
        for group, rows in extract:
            for label, command in rows:
                dst = out / "x"
                shutil.rmtree(dst, ignore_errors=True)
                dst.mkdir()
                start = time.perf_counter()
                subprocess.run(command.format(dst=dst), shell=True, check=True, executable="/bin/bash")
                xtimes.setdefault((group, label), []).append(time.perf_counter() - start)
                if rep == 0 and label == "sluice tar":
                    subprocess.run(["diff", "-r", "-q", "--no-dereference", str(tree), str(dst)], check=True)
        print(f"  tar repetition {rep + 1}/{reps} done", file=sys.stderr)
    shutil.rmtree(out / "x", ignore_errors=True)
    return {"files": files, "total": total, "create": create, "extract": extract, "ctimes": ctimes,
            "csizes": csizes, "xtimes": xtimes, "big": big_file_rss(threads)}


def peak_rss_kib(command):
    """Runs a shell command under /usr/bin/time; returns its peak RSS in KiB."""
    result = subprocess.run(["/usr/bin/time", "-f", "%M", "bash", "-c", command], check=True,
                            stderr=subprocess.PIPE, text=True)
    return int(result.stderr.strip().splitlines()[-1])


def big_file_rss(threads):
    """Archives and extracts a 768 MiB sparse-ish file (zero runs between pieces of the corpus): memory
    must not grow with the file."""
    big = OUT / "big"
    shutil.rmtree(big, ignore_errors=True)
    (big / "tree").mkdir(parents=True)
    piece = (DATA / "silesia.tar").read_bytes()[: 8 << 20]
    with open(big / "tree" / "sparse-ish.bin", "wb") as f:
        for _ in range(48):
            f.write(piece)
            f.write(bytes(8 << 20))
    size = (big / "tree" / "sparse-ish.bin").stat().st_size
    s = str(SLUICE)
    rows = []
    for codec in ("gzip", "zstd", "lz4"):
        archive = big / f"big.tar.{'gz' if codec == 'gzip' else 'zst' if codec == 'zstd' else 'lz4'}"
        create = peak_rss_kib(f"{s} tar -c -j{threads} -f {archive} -C {big}/tree .")
        extract = peak_rss_kib(f"{s} tar -x -j{threads} -f {archive} -C {big}/x-{codec}")
        subprocess.run(["cmp", str(big / "tree" / "sparse-ish.bin"), str(big / f"x-{codec}" / "sparse-ish.bin")],
                       check=True)
        rows.append((codec, size, create / 1024, extract / 1024))
        shutil.rmtree(big / f"x-{codec}")
    shutil.rmtree(big)
    return rows


def render_tar(t, reps):
    lines = ["### Tar archives", ""]
    lines.append(f"A tree of {t['files']} files, {t['total'] / 1e6:.1f} MB (the Silesia files plus a copy of "
                 f"/usr/include); archive and extraction directory on tmpfs; median of {reps} interleaved runs. "
                 "MB/s counts the tree's file bytes.")
    lines.append("")
    lines.append("| create | tool | seconds | MB/s | sluice speed vs this tool | archive size | sluice size vs this tool |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for group, rows in t["create"]:
        ours_t = statistics.median(t["ctimes"][(group, "sluice tar")])
        ours_s = t["csizes"][(group, "sluice tar")]
        for label, _, _ in rows:
            sec = statistics.median(t["ctimes"][(group, label)])
            size = t["csizes"][(group, label)]
            speed = "" if label == "sluice tar" else f"{sec / ours_t:.2f}x"
            rel = "" if label == "sluice tar" else f"{ours_s / size:.4f}x"
            lines.append(f"| {group} | {label} | {sec:.2f} | {mbps(t['total'], sec):.0f} | {speed} | "
                         f"{size / 1e6:.1f} MB | {rel} |")
    lines.append("")
    lines.append("| extract (archive made by) | tool | seconds | MB/s | sluice speed vs this tool |")
    lines.append("|---|---|---:|---:|---:|")
    for group, rows in t["extract"]:
        ours_t = statistics.median(t["xtimes"][(group, "sluice tar")])
        for label, _ in rows:
            sec = statistics.median(t["xtimes"][(group, label)])
            speed = "" if label == "sluice tar" else f"{sec / ours_t:.2f}x"
            lines.append(f"| {group} | {label} | {sec:.2f} | {mbps(t['total'], sec):.0f} | {speed} |")
    lines.append("")
    lines.append("Peak RSS archiving and extracting one large file (zero runs between pieces of the corpus):")
    lines.append("")
    lines.append("| codec | file | peak RSS, create | peak RSS, extract |")
    lines.append("|---|---:|---:|---:|")
    for codec, size, create, extract in t["big"]:
        lines.append(f"| {codec} | {size / (1 << 20):.0f} MiB | {create:.1f} MiB | {extract:.1f} MiB |")
    return "\n".join(lines)


def mbps(nbytes, seconds):
    return nbytes / seconds / 1e6


def render_bundle(bundle, reps):
    lines = ["### A bundle of many files (the upload-service case), gzip -6", ""]
    lines.append(f"{bundle['files']} files, {bundle['total'] / 1e6:.1f} MB in all: median file "
                 f"{bundle['median'] / 1e3:.0f} KB, mean {bundle['total'] / bundle['files'] / 1e6:.1f} MB, largest "
                 f"{bundle['largest'] / 1e6:.1f} MB. Each file to its own .gz; median of {reps} interleaved runs.")
    lines.append("")
    lines.append("| tool | seconds | MB/s | sluice speed vs this tool | total output |")
    lines.append("|---|---:|---:|---:|---:|")
    ours = statistics.median(bundle["times"][bundle["tools"][0]])
    for label in bundle["tools"]:
        t = statistics.median(bundle["times"][label])
        rel = "" if label == bundle["tools"][0] else f"{t / ours:.2f}x"
        lines.append(f"| {label} | {t:.2f} | {mbps(bundle['total'], t):.0f} | {rel} | {bundle['sizes'][label] / 1e6:.1f} MB |")
    return "\n".join(lines)


def render(tar, threads, reps, comp, decomp, rss):
    size = tar.stat().st_size
    groups, times, sizes, _ = comp
    lines = []
    lines.append(f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} cores ({platform.machine()}), "
                 f"input: Silesia corpus files as one tar ({size / 1e6:.1f} MB), sluice at -j{threads}, "
                 f"median of {reps} interleaved runs (3 for serial gzip and level 19).")
    lines.append("")
    lines.append("### Compression")
    lines.append("")
    lines.append("| format | tool | MB/s | ratio | sluice speed vs this tool | sluice size vs this tool |")
    lines.append("|---|---|---:|---:|---:|---:|")
    for group, rows in groups:
        ours_t = statistics.median(times[(group, "sluice")])
        ours_s = sizes[(group, "sluice")]
        for label, _ in rows:
            t = statistics.median(times[(group, label)])
            s = sizes[(group, label)]
            speed = "" if label == "sluice" else f"{t / ours_t:.2f}x"
            rel = "" if label == "sluice" else f"{ours_s / s:.4f}x"
            lines.append(f"| {group} | {label} | {mbps(size, t):.0f} | {s / size:.4f} | {speed} | {rel} |")
    lines.append("")
    lines.append("### Decompression")
    lines.append("")
    lines.append("MB/s of decompressed output; \"to /dev/null\" measures decoding, \"to a file\" adds writing the "
                 f"{size / 1e6:.1f} MB into a file on tmpfs, a serial copy every tool pays.")
    lines.append("")
    lines.append("| stream (made by) | tool | MB/s to /dev/null | sluice vs this tool | MB/s to a file | sluice vs this tool |")
    lines.append("|---|---|---:|---:|---:|---:|")
    rows, dtimes = decomp
    for name, _, tools in rows:
        cells = {}
        for sink in ("null", "file"):
            ours = statistics.median(dtimes[(name, "sluice -d", sink)])
            for label, _ in tools:
                t = statistics.median(dtimes[(name, label, sink)])
                rel = "" if label == "sluice -d" else f"{t / ours:.2f}x"
                cells.setdefault(label, []).append(f"{mbps(size, t):.0f} | {rel}")
        for label, _ in tools:
            lines.append(f"| {name} | {label} | {' | '.join(cells[label])} |")
    lines.append("")
    lines.append("### Peak memory streaming 1 GiB through a pipe")
    lines.append("")
    lines.append("| format | level | bytes streamed | peak RSS |")
    lines.append("|---|---:|---:|---:|")
    for codec, level, nbytes, rss_mib in rss:
        lines.append(f"| {codec} | {level} | {nbytes / (1 << 30):.2f} GiB | {rss_mib:.1f} MiB |")
    return "\n".join(lines)


def engines_table(tar, reps):
    """sluice at -j2 with each gzip engine, at the levels each is used for."""
    s = str(SLUICE)
    cases = [(level, engine) for level in (1, 2, 6, 9) for engine in ("isal", "libdeflate", "zlib")
             if not (engine == "isal" and level > 2)] + [(6, "zlib single member")]
    times = {c: [] for c in cases}
    sizes = {}
    for rep in range(max(3, reps // 2)):
        for level, engine in cases:
            flags = "--single-member --gzip-backend zlib" if engine.endswith("member") else f"--gzip-backend {engine}"
            out = OUT / "out-engine"
            timed(f"{s} -{level} {flags} -c", tar, out, times[(level, engine)])
            sizes[(level, engine)] = out.stat().st_size
    return cases, times, sizes


def scaling_table(tar, reps):
    """sluice's compression and decompression throughput at 1-4 threads (2 cores: 3 and 4 show
    that oversubscription costs nothing)."""
    s = str(SLUICE)
    codecs = [("gzip -6", "-F gzip -6"), ("gzip -1", "-F gzip -1"), ("zstd -3", "-F zstd -3"), ("lz4 -1", "-F lz4 -1")]
    times = {}
    # Five copies of the tar (410 MB): the same work with the fixed cost of a run (start-up, the
    # first chunk, the last one finishing alone) spread five times thinner.
    big = OUT / "silesia-x5.tar"
    with open(big, "wb") as fout:
        for _ in range(5):
            fout.write(tar.read_bytes())
    for codec, flags in codecs:
        packed = OUT / "out-scaling"
        packed_big = OUT / "out-scaling-x5"
        for src, dst in ((tar, packed), (big, packed_big)):
            with open(src, "rb") as fin, open(dst, "wb") as fout:
                subprocess.run(f"{s} {flags} -c", shell=True, check=True, stdin=fin, stdout=fout)
        for rep in range(max(3, reps // 2)):
            for threads in (1, 2, 3, 4):
                timed(f"{s} {flags} -j{threads} -c", tar, Path("/dev/null"), times.setdefault((codec, "c", threads), []))
                timed(f"{s} -d -j{threads} -c", packed, Path("/dev/null"), times.setdefault((codec, "d", threads), []))
            for threads in (1, 2):
                timed(f"{s} {flags} -j{threads} -c", big, Path("/dev/null"), times.setdefault((codec, "cx5", threads), []))
                timed(f"{s} -d -j{threads} -c", packed_big, Path("/dev/null"), times.setdefault((codec, "dx5", threads), []))
    # What a run costs before and after its data: an input of a few bytes, against the peers.
    tiny = OUT / "tiny"
    tiny.write_bytes(b"hi\n")
    starts = {}
    for name, make, command in (("sluice", f"{s} -F zstd -c", f"{s} -d -c"), ("zstd", "zstd -q -c", "zstd -d -q -c"),
                                ("lz4", "lz4 -q -c", "lz4 -d -q -c"), ("gzip", "gzip -c", "gzip -d -c")):
        packed = OUT / f"tiny-{name}"
        with open(tiny, "rb") as fin, open(packed, "wb") as fout:
            subprocess.run(make, shell=True, check=True, stdin=fin, stdout=fout)
        for rep in range(20):
            timed(command, packed, Path("/dev/null"), starts.setdefault(name, []))
    big.unlink()
    return codecs, times, starts


def render_engines(tar, engines, scaling):
    size = tar.stat().st_size
    cases, times, sizes = engines
    lines = ["### gzip engines", ""]
    lines.append("sluice -j2 compressing the Silesia tar with each engine (`--gzip-backend`); independent members "
                 "unless noted. The default per level is the fastest engine whose output is no larger than "
                 "zlib's at that level: ISA-L at levels 1 and 2, libdeflate above. ISA-L deflates with its own "
                 "level 3 at every gzip level: its levels 1 and 2 give bytes that depend on where their state "
                 "sits in memory, so on which worker took a chunk (codecs/deflate_isal.cpp).")
    lines.append("")
    lines.append("| level | engine | MB/s | ratio | size vs zlib |")
    lines.append("|---:|---|---:|---:|---:|")
    for level, engine in cases:
        zlib = sizes[(level, "zlib")]
        t = statistics.median(times[(level, engine)])
        lines.append(f"| {level} | {engine} | {mbps(size, t):.0f} | {sizes[(level, engine)] / size:.4f} | "
                     f"{sizes[(level, engine)] / zlib:.4f}x |")
    codecs, stimes, starts = scaling
    lines += ["", "### Threads", ""]
    lines.append("sluice's throughput (MB/s of uncompressed data, output to /dev/null) against `-j`; efficiency "
                 "is the speed-up from -j1 to -j2 divided by 2, on the tar and on five copies of it (410 MB), "
                 "where a run's fixed cost weighs five times less. "
                 "Plot: [bench/plots/threads.png](bench/plots/threads.png).")
    lines.append("")
    lines.append("| codec | direction | -j1 | -j2 | -j3 | -j4 | efficiency -j1 to -j2 | efficiency, 5 copies |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for codec, _ in codecs:
        for direction, name in (("c", "compress"), ("d", "decompress")):
            speeds = [mbps(size, statistics.median(stimes[(codec, direction, n)])) for n in (1, 2, 3, 4)]
            cells = " | ".join(f"{v:.0f}" for v in speeds)
            big = [statistics.median(stimes[(codec, direction + "x5", n)]) for n in (1, 2)]
            lines.append(f"| {codec} | {name} | {cells} | {speeds[1] / speeds[0] / 2:.0%} | {big[0] / big[1] / 2:.0%} |")
    lines.append("")
    cost = {name: statistics.median(t) * 1000 for name, t in starts.items()}
    lines.append("A run's fixed cost, decompressing three bytes (median of 20): "
                 + ", ".join(f"{name} {ms:.1f} ms" for name, ms in cost.items())
                 + ". sluice's is loading the C++ runtime, oneTBB, ISA-L, fmt and toml++ (zlib, zstd, lz4, "
                 "libdeflate and Nettle are linked in) and starting oneTBB's workers; on the 82 MB tar it is a visible part of "
                 "what separates the efficiency from 100%.")
    plot_threads(size, codecs, stimes)
    return "\n".join(lines)


def micro_benchmarks(tar):
    """Runs bench/micro on the Silesia tar; returns {name: bytes per second}."""
    if not MICRO.exists():
        raise SystemExit(f"{MICRO} is missing: build the release preset")
    env = dict(os.environ, SLUICE_BENCH_INPUT=str(tar))
    result = subprocess.run([str(MICRO), "--benchmark_format=json", "--benchmark_repetitions=3",
                             "--benchmark_report_aggregates_only=true"], env=env, check=True,
                            capture_output=True, text=True)
    import json
    speeds = {}
    for b in json.loads(result.stdout)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            speeds[b["run_name"].replace("/real_time", "")] = (b["bytes_per_second"], b.get("ratio"))
    return speeds


def render_micro(speeds, threads):
    lines = ["### Micro-benchmarks and the scaling model", ""]
    lines.append("`build/release/bench/micro/sluice_micro` (Google Benchmark) on the Silesia tar, one thread, "
                 "median of 3. Chunk paths run on every worker, so their speed times the cores is what the codec "
                 "can reach; the serial stages run on one thread whatever the core count, so the slowest one in "
                 "a graph is its ceiling.")
    lines.append("")
    lines.append("| benchmark | what it is | MB/s (one thread) | ratio |")
    lines.append("|---|---|---:|---:|")
    describe = {"BM_Read": "serial: the reader's read(2) into chunk buffers",
                "BM_Crc32Zlib": "serial: CRC-32 of a single gzip member (zlib's; the decoder uses ISA-L's)",
                "BM_Crc32CombinePerChunk": "serial: combining per-chunk CRCs (single-member gzip writer)",
                "BM_Xxh32": "serial, for the lz4 tool's one-frame streams only: the content checksum (XXH32, "
                            "in order); sluice's lz4 has none, its block checksums are checked in Decode/lz4",
                "BM_WritePipe": "serial: the writer's write(2) into a pipe"}
    for name, (bps, ratio) in speeds.items():
        what = describe.get(name, "chunk path: compress one chunk" if name.startswith("Compress")
                            else "chunk path: decode one unit")
        lines.append(f"| {name} | {what} | {bps / 1e6:,.0f} | {'' if ratio is None else f'{ratio:.4f}'} |")
    ceiling = min(speeds[n][0] for n in ("BM_Read", "BM_WritePipe"))
    lines.append("")
    lines.append(f"Scaling model: a graph's throughput is about min(cores x chunk-path speed, serial ceiling). "
                 f"Reading and writing into a pipe bound every graph at about {ceiling / 1e6:,.0f} MB/s here (the "
                 "slower of the two; writing to /dev/null or a file in the page cache costs less, so the tables "
                 "above can pass it); decoding the lz4 tool's one-frame streams adds XXH32 and single-member gzip "
                 "decoding its inflate, both serial (sluice's own lz4 and gzip have no serial stage of their own). "
                 "Cores needed to reach the ceiling:")
    lines.append("")
    lines.append("| chunk path | per core MB/s | cores to reach the serial ceiling |")
    lines.append("|---|---:|---:|")
    for name, (bps, _) in speeds.items():
        if name.startswith(("Compress", "Decode")):
            limit = ceiling
            lines.append(f"| {name} | {bps / 1e6:,.0f} | {limit / bps:.1f} |")
    return "\n".join(lines)


def gnuplot(script):
    PLOTS.mkdir(parents=True, exist_ok=True)
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def plot_ratio(tar, comp):
    """Throughput against ratio, one point per tool and level."""
    size = tar.stat().st_size
    groups, times, sizes, _ = comp
    data = OUT / "ratio.dat"
    with open(data, "w") as f:
        for group, rows in groups:
            for label, _ in rows:
                level = "" if label.startswith("igzip -") else " " + group.split()[1]
                name = (group if label == "sluice" else f"{label}{level}").replace('"', "")
                t = statistics.median(times[(group, label)])
                f.write(f'"{name}" {sizes[(group, label)] / size:.4f} {mbps(size, t):.1f} '
                        f'{1 if label == "sluice" else 0}\n')
    gnuplot(f"""set terminal pngcairo size 1100,750 font ",10"
set output "{PLOTS / 'ratio.png'}"
set title "Compression of the Silesia tar (81.9 MB) on 2 cores: throughput against ratio"
set xlabel "compressed size / original size (smaller is better)"
set ylabel "MB/s (log scale)"
set logscale y
set grid
set key off
plot "{data}" using 2:($4==1?$3:1/0) with points pt 7 ps 1.6 lc rgb "#c0392b", \
     "{data}" using 2:($4==0?$3:1/0) with points pt 5 ps 1.2 lc rgb "#2c3e50", \
     "{data}" using 2:3:1 with labels offset 0.8,0.5 left font ",8"
""")


def plot_threads(size, codecs, stimes):
    data = OUT / "threads.dat"
    with open(data, "w") as f:
        for n in (1, 2, 3, 4):
            row = [str(n)]
            for codec, _ in codecs:
                for direction in ("c", "d"):
                    row.append(f"{mbps(size, statistics.median(stimes[(codec, direction, n)])):.1f}")
            f.write(" ".join(row) + "\n")
    columns = []
    for i, (codec, _) in enumerate(codecs):
        columns.append(f'"{data}" using 1:{2 + 2 * i} with linespoints lw 2 title "{codec} compress"')
        columns.append(f'"{data}" using 1:{3 + 2 * i} with linespoints lw 2 dt 2 title "{codec} decompress"')
    gnuplot(f"""set terminal pngcairo size 1000,650 font ",10"
set output "{PLOTS / 'threads.png'}"
set title "sluice on the Silesia tar: throughput against -j (this machine has 2 cores)"
set xlabel "threads (-j)"
set ylabel "MB/s (log scale)"
set logscale y
set xtics 1
set grid
set key outside right
plot {", ".join(columns)}
""")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--write", type=Path, help="replace the tables between the bench markers in this file")
    parser.add_argument("--only", choices=["all", "stream", "engines", "micro", "bundle", "tar"], default="all",
                        help="run only one part (single stream, gzip engines and threads, micro-benchmarks, "
                             "bundle, tar)")
    args = parser.parse_args()
    for tool in ("pigz", "gzip", "zstd", "lz4", "bgzip", "igzip", "libdeflate-gzip", "gnuplot"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: run scripts/setup.sh")
    if not SLUICE.exists():
        raise SystemExit(f"{SLUICE} is missing: run scripts/quickstart.sh")
    DATA.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    tar = prepare_input()
    parts = {}
    if args.only in ("all", "stream"):
        comp = compression_table(tar, args.threads, args.reps)
        decomp = decompression_table(tar, comp[3], args.threads, args.reps)
        rss = peak_rss_1gib(tar, args.threads)
        parts["stream"] = render(tar, args.threads, args.reps, comp, decomp, rss)
        plot_ratio(tar, comp)
    if args.only in ("all", "engines"):
        parts["engines"] = render_engines(tar, engines_table(tar, args.reps), scaling_table(tar, args.reps))
    if args.only in ("all", "micro"):
        parts["micro"] = render_micro(micro_benchmarks(tar), args.threads)
    if args.only in ("all", "bundle"):
        bundle_reps = max(3, args.reps // 2)
        parts["bundle"] = render_bundle(bundle_table(tar, args.threads, bundle_reps), bundle_reps)
    if args.only in ("all", "tar"):
        tar_reps = max(3, args.reps // 2)
        parts["tar"] = render_tar(tar_table(args.threads, tar_reps), tar_reps)
    print("\n\n".join(parts.values()))
    if args.write:
        write_parts(args.write, parts)


def write_parts(path, parts):
    """Replaces each part run between its own markers (<!-- bench:NAME:begin/end -->) inside the
    bench block, so that `--only tar` refreshes the tar tables and keeps the others."""
    text = path.read_text() if path.exists() else f"{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    block, tail = rest.split(END, 1)
    for name in ("stream", "engines", "micro", "bundle", "tar"):
        if name not in parts:
            continue
        begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
        fresh = f"{begin}\n{parts[name]}\n{end}"
        if begin in block:
            before, after = block.split(begin, 1)
            block = before + fresh + after.split(end, 1)[1]
        else:
            block = block.rstrip("\n") + "\n\n" + fresh + "\n"
    path.write_text(f"{head}{BEGIN}{block}{END}{tail}")

if __name__ == "__main__":
    main()
