#!/usr/bin/env python3
"""Compares sluice with pigz, gzip, zstd -T and lz4 on the Silesia corpus.

Every tool compresses (and decompresses) the same input, a tar of the Silesia files, in the
same run. Runs are interleaved (each repetition runs every tool once) so that machine noise
hits them alike; figures are medians. Throughput is uncompressed bytes / wall time.

Also measures sluice's peak RSS while compressing a 1 GiB stream from a pipe.

Also: a bundle of many small files and one big one (each to its own .gz), and tar archives of a
real tree (create and extract) against tar piped through pigz, zstd -T and lz4.

Usage: bench/run_bench.py [--reps N] [--threads N] [--write BENCHMARKS.md] [--only stream|bundle|tar]
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

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"
# Outputs go to tmpfs where there is one: writing ~80 MB per run to a disk wakes the kernel's
# writeback threads at random moments, which steals a core on a 2-core machine and makes the
# figures depend on the disk instead of the tools.
OUT = Path("/dev/shm/sluice-bench") if Path("/dev/shm").is_dir() else DATA / "out"
SLUICE = ROOT / "build" / "release" / "apps" / "sluice"
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
    groups = [
        ("gzip -6", [("sluice", f"{s} -6 -j{j} -c"), (f"pigz -p{j}", f"pigz -6 -p{j} -c"), ("gzip", "gzip -6 -c")]),
        ("gzip -1", [("sluice", f"{s} -1 -j{j} -c"), (f"pigz -p{j}", f"pigz -1 -p{j} -c")]),
        ("gzip -6 independent", [("sluice", f"{s} -6 --independent -j{j} -c"), (f"pigz -p{j}", f"pigz -6 -p{j} -c")]),
        ("zstd -3", [("sluice", f"{s} -F zstd -3 -j{j} -c"), (f"zstd -T{j}", f"zstd -q -3 -T{j} -c")]),
        ("zstd -19", [("sluice", f"{s} -F zstd -19 -j{j} -c"), (f"zstd -T{j}", f"zstd -q -19 -T{j} -c")]),
        ("lz4 -1", [("sluice", f"{s} -F lz4 -1 -j{j} -c"), ("lz4", "lz4 -q -1 -c")]),
    ]
    slow = {"gzip", "zstd -T2"}  # serial gzip and zstd -19 are slow: fewer runs keep the bench short
    times = {(g, label): [] for g, rows in groups for label, _ in rows}
    sizes = {}
    outputs = {}
    for rep in range(reps):
        for group, rows in groups:
            for label, command in rows:
                if rep >= 3 and (label == "gzip" or group == "zstd -19"):
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
    rows = [
        ("gzip --independent (ours)", outputs[("gzip -6 independent", "sluice")], [("sluice -d", f"{s} -d -j{j} -c"), ("gzip -d", "gzip -dc"), ("pigz -d", "pigz -dc")]),
        ("BGZF (bgzip)", bgzf, [("sluice -d", f"{s} -d -j{j} -c"), ("gzip -d", "gzip -dc"), ("pigz -d", "pigz -dc")]),
        ("gzip (ours)", outputs[("gzip -6", "sluice")], [("sluice -d", f"{s} -d -j{j} -c"), ("gzip -d", "gzip -dc"), ("pigz -d", "pigz -dc")]),
        ("gzip (pigz)", outputs[("gzip -6", f"pigz -p{j}")], [("sluice -d", f"{s} -d -j{j} -c"), ("gzip -d", "gzip -dc"), ("pigz -d", "pigz -dc")]),
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


def make_tree():
    """A real tree to archive: the Silesia files plus a copy of /usr/include (thousands of headers)."""
    tree = DATA / "tree"
    if not tree.exists():
        tree.mkdir()
        shutil.copytree(DATA / "silesia", tree / "silesia", symlinks=True)
        shutil.copytree("/usr/include", tree / "include", symlinks=True)
    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    return tree, len(files), sum(p.stat().st_size for p in files)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--write", type=Path, help="replace the tables between the bench markers in this file")
    parser.add_argument("--only", choices=["all", "stream", "bundle", "tar"], default="all",
                        help="run only the single-stream tables, the bundle table or the tar table")
    args = parser.parse_args()
    for tool in ("pigz", "gzip", "zstd", "lz4", "bgzip"):
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
    for name in ("stream", "bundle", "tar"):
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
