"""What the benchmark scripts share: the Silesia corpus, a scratch directory on tmpfs (so that
the disk's writeback does not steal a core), timed shell commands and interleaved medians."""
import shutil
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data"


def scratch(name):
    """An empty directory for outputs: /dev/shm/sluice-NAME, or under bench/data without tmpfs."""
    out = Path(f"/dev/shm/sluice-{name}") if Path("/dev/shm").is_dir() else DATA / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


def silesia():
    """The Silesia corpus, unpacked by ../shared/corpus/unpack (once) under bench/data."""
    corpus = DATA / "silesia"
    subprocess.run([str(ROOT.parent / "shared" / "corpus" / "unpack"), str(corpus)], check=True,
                   stdout=subprocess.DEVNULL)
    return corpus


def timed(command, cwd):
    """Runs a shell command in `cwd`, its output thrown away; returns the seconds it took."""
    start = time.perf_counter()
    subprocess.run(command, shell=True, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def interleaved(commands, reps, cwd):
    """{name: command} -> {name: [seconds, ...]}: each repetition runs every command once."""
    times = {name: [] for name in commands}
    for _ in range(reps):
        for name, command in commands.items():
            times[name].append(timed(command, cwd))
    return times


def medians(times):
    return {name: statistics.median(runs) for name, runs in times.items()}


def make_tree():
    """A real tree to archive: the Silesia files plus a copy of /usr/include (thousands of headers).
    Returns (tree, number of files, their bytes)."""
    tree = DATA / "tree"
    if not tree.exists():
        silesia()
        tree.mkdir()
        shutil.copytree(DATA / "silesia", tree / "silesia", symlinks=True)
        shutil.copytree("/usr/include", tree / "include", symlinks=True)
    files = [p for p in tree.rglob("*") if p.is_file() and not p.is_symlink()]
    return tree, len(files), sum(p.stat().st_size for p in files)
