"""sluice.dask on a real distributed.LocalCluster (2 worker processes): compression of one file by
many tasks (byte identity with the command, a worker killed mid-run, a failing task), batches, and
compressed files read in partitions (rows against pandas on the plain file, streams that cannot be
cut, records straddling every unit boundary); the fsspec integration."""
import errno
import gzip
import logging
import os
import random
import signal
import struct
import subprocess
import threading
import time
import zlib

import pytest

distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")
import dask  # noqa: E402
import fsspec  # noqa: E402

import sluice  # noqa: E402
import sluice.dask  # noqa: E402

PROGRAM = os.environ.get("SLUICE_PROGRAM", "sluice")
CHUNK = 64 * 1024

# Every form of each format that sluice writes: the command's flags and sluice.dask's options.
FORMS = {
    "gzip": (["-F", "gzip"], dict(format="gzip")),
    "gzip-multi-member": (["-F", "gzip", "--multi-member"], dict(format="gzip", form="multi-member")),
    "gzip-single-member": (["-F", "gzip", "--single-member"], dict(format="gzip", form="single-member")),
    "bgzf": (["-F", "gzip", "--bgzf"], dict(format="gzip", form="bgzf")),
    "zstd": (["-F", "zstd"], dict(format="zstd")),
    "lz4": (["-F", "lz4"], dict(format="lz4")),
}
SPLITTABLE = ["gzip", "gzip-multi-member", "bgzf", "zstd", "lz4"]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       silence_logs=logging.ERROR)
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def csv_bytes(size, seed=1, newline=b"\n"):
    """A CSV of rows of very different lengths, so that unit boundaries fall inside rows."""
    rng = random.Random(seed)
    rows = [b"id,name,value,note"]
    total, i = 0, 0
    while total < size:
        note = rng.randbytes(rng.choice([0, 5, 50, 700, 3000]) // 2).hex().encode()
        row = b"%d,name%d,%d.%d,%s" % (i, rng.randrange(1000), rng.randrange(10**6), rng.randrange(100), note)
        rows.append(row)
        total += len(row) + len(newline)
        i += 1
    return newline.join(rows) + newline


def sluice_made(path, form, chunk=CHUNK, extra=()):
    flags = FORMS[form][0]
    chunk_flags = [] if form == "bgzf" else ["--chunk-size", str(chunk)]
    out = path.parent / (path.name + (".zst" if "zstd" in form else ".lz4" if form == "lz4" else ".gz"))
    with open(out, "wb") as f:
        subprocess.run([PROGRAM, *flags, *chunk_flags, *extra, "-c", str(path)], stdout=f, check=True)
    return out


def dask_options(form, chunk=CHUNK):
    options = dict(FORMS[form][1])
    if form != "bgzf":
        options["chunk_size"] = chunk
    return options


# ---- compress ----

@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("size", [0, 1000, 4 * CHUNK, 4 * CHUNK + 1])
def test_compress_is_the_commands_bytes(client, tmp_path, form, size):
    src = tmp_path / "data.csv"
    src.write_bytes(csv_bytes(size)[:size])
    expected = sluice_made(src, form).read_bytes()
    dst = tmp_path / "out.bin"
    result = sluice.dask.compress(src, dst, client=client, part_size=2 * CHUNK, **dask_options(form))
    assert dst.read_bytes() == expected
    assert result.output_bytes == len(expected)
    assert result.parts == max(1, -(-size // (2 * CHUNK))) or form == "bgzf"
    assert [p.name for p in tmp_path.iterdir() if "sluice-" in p.name] == []  # no temporary left


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("parts_via,window", [("client", 2), ("storage", 2), ("auto", None)])
def test_parts_through_the_client_or_storage_are_the_commands_bytes(client, tmp_path, form, parts_via, window):
    src = tmp_path / "data.csv"
    src.write_bytes(csv_bytes(9 * CHUNK + 17, seed=7))
    expected = sluice_made(src, form).read_bytes()
    dst = tmp_path / "out" / "data.bin"
    dst.parent.mkdir()
    result = sluice.dask.compress(src, dst, client=client, part_size=2 * CHUNK, parts_via=parts_via,
                                  max_parts_in_flight=window, **dask_options(form))
    assert dst.read_bytes() == expected
    assert result.output_bytes == len(expected)
    # A LocalCluster's workers see this machine's files: "auto" writes the parts there.
    assert result.parts_via == ("client" if parts_via == "client" else "storage")
    assert [p.name for p in dst.parent.iterdir()] == ["data.bin"]  # no parts directory or temporary left


def test_parts_through_storage_need_a_local_destination(client, tmp_path):
    src = tmp_path / "a.csv"
    src.write_bytes(b"a,b\n1,2\n")
    with pytest.raises(sluice.UsageError, match="local destination"):
        sluice.dask.compress(src, "memory://out/a.csv.gz", client=client, parts_via="storage")
    with pytest.raises(sluice.UsageError, match="parts_via"):
        sluice.dask.compress(src, tmp_path / "a.csv.gz", client=client, parts_via="network")
    assert not (tmp_path / "a.csv.gz").exists()


def test_a_failing_task_through_storage_leaves_no_parts(client, tmp_path):
    # The client sees the source in its memory file system; the workers, other processes, do not.
    with fsspec.open("memory://only-here/big.csv", "wb") as f:
        f.write(csv_bytes(10 * CHUNK, seed=8))
    (tmp_path / "out").mkdir()
    with pytest.raises(FileNotFoundError):
        sluice.dask.compress("memory://only-here/big.csv", tmp_path / "out" / "x.gz", client=client, chunk_size=CHUNK,
                             part_size=2 * CHUNK, parts_via="storage")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_task_failing_after_others_wrote_parts_leaves_nothing(client, tmp_path):
    src = tmp_path / "big.csv"
    src.write_bytes(csv_bytes(40 * CHUNK, seed=10))
    (tmp_path / "out").mkdir()

    def break_parts_from(first_bad):  # on each worker: parts from `first_bad` on fail, slowly
        import sluice.dask as d
        real = d._native

        class Breaking:
            def __getattr__(self, name):
                return getattr(real, name)

            def compress_part_to_file(self, *args):
                if int(os.path.basename(args[-1])) >= first_bad:
                    time.sleep(0.3)
                    raise OSError(5, "injected failure", args[-1])
                return real.compress_part_to_file(*args)
        d._native, d._real_native = Breaking(), real

    def restore():
        import sluice.dask as d
        d._native = getattr(d, "_real_native", d._native)

    client.run(break_parts_from, 6)
    try:
        with pytest.raises(OSError, match="injected failure"):
            sluice.dask.compress(src, tmp_path / "out" / "x.gz", client=client, chunk_size=CHUNK, part_size=2 * CHUNK)
    finally:
        client.run(restore)
    assert list((tmp_path / "out").iterdir()) == []
    result = sluice.dask.compress(src, tmp_path / "out" / "x.gz", client=client, chunk_size=CHUNK, part_size=2 * CHUNK)
    assert result.parts_via == "storage"
    assert (tmp_path / "out" / "x.gz").read_bytes() == sluice_made(src, "gzip").read_bytes()


def test_compress_between_memory_urls_records_no_name_when_asked(client, tmp_path):
    data = csv_bytes(300_000, seed=3)
    with fsspec.open("memory://in/data.csv", "wb") as f:
        f.write(data)
    local = tmp_path / "data.csv"
    local.write_bytes(data)
    expected = sluice_made(local, "zstd", extra=["-n"]).read_bytes()
    # The workers are other processes, with memory filesystems of their own: client=False runs
    # the parts in this process.
    result = sluice.dask.compress("memory://in/data.csv", "memory://out/data.csv.zst", chunk_size=CHUNK,
                                  part_size=CHUNK, store_name=False, client=False)
    with fsspec.open("memory://out/data.csv.zst", "rb") as f:
        assert f.read() == expected
    assert result.parts == 5


def test_a_worker_killed_mid_run_changes_nothing(client, tmp_path):
    src = tmp_path / "big.csv"
    src.write_bytes(csv_bytes(24 * 1024 * 1024, seed=5))
    expected = sluice_made(src, "gzip", extra=["-9"]).read_bytes()
    dst = tmp_path / "by-dask.csv.gz"
    pids = client.run(os.getpid)
    done = {}

    def run():
        try:
            done["result"] = sluice.dask.compress(src, dst, level=9, client=client,
                                                  chunk_size=CHUNK, part_size=8 * CHUNK, max_parts_in_flight=4)
        except BaseException as error:  # noqa: B902  (reported below)
            done["error"] = error
    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 30
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.01)
    victim = next(iter(pids.values()))
    os.kill(victim, signal.SIGKILL)
    thread.join(120)
    assert not thread.is_alive()
    assert dst.read_bytes() == expected
    assert "result" in done, done
    # The nanny starts a new worker in place of the one killed.
    while time.monotonic() < deadline + 60:
        workers = client.scheduler_info()["workers"].values()
        if len(workers) == 2 and victim not in {w.get("pid") for w in workers}:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the killed worker was not replaced")


def test_a_failing_task_leaves_nothing_at_the_destination(client, tmp_path):
    src = tmp_path / "dir.csv"
    src.mkdir()  # the client sees a size; a worker cannot read it
    (tmp_path / "out").mkdir()
    with pytest.raises(OSError):
        sluice.dask.compress(src, tmp_path / "out" / "x.gz", client=client)
    assert list((tmp_path / "out").iterdir()) == []


def test_an_existing_destination_is_kept_unless_overwrite(client, tmp_path):
    src = tmp_path / "a.csv"
    src.write_bytes(b"a,b\n1,2\n")
    dst = tmp_path / "a.csv.gz"
    dst.write_bytes(b"keep")
    with pytest.raises(FileExistsError) as caught:  # sluice's, as sluice.compress_files says it
        sluice.dask.compress(src, dst, client=client)
    assert isinstance(caught.value, sluice.Error) and caught.value.errno == errno.EEXIST
    assert str(caught.value) == f"{dst}: already exists"
    assert dst.read_bytes() == b"keep"
    with pytest.raises(IsADirectoryError):  # was "File exists"
        sluice.dask.compress(src, tmp_path, client=client)
    sluice.dask.compress(src, dst, client=client, overwrite=True)
    assert gzip.decompress(dst.read_bytes()) == b"a,b\n1,2\n"


def test_a_destination_that_cannot_be_made_is_named_in_the_error(tmp_path):
    """The error named the hidden temporary beside the output, or the parent ("File exists" for a
    parent that is a file): it names the output asked for, as sluice.open's errors do."""
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello\n" * 1000)
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(NotADirectoryError) as caught:
        sluice.dask.compress(src, tmp_path / "afile" / "x.gz", client=False)
    assert isinstance(caught.value, sluice.Error) and caught.value.filename == str(tmp_path / "afile" / "x.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "src.txt"]


def test_compress_files_takes_a_list_not_one_path(tmp_path):
    """A str is an iterable of its letters: "cf/s1.log" compressed files named c, f, /, ... where
    they existed, as sluice.compress_files refuses it (no cluster is needed to say so)."""
    with pytest.raises(TypeError, match="pass \\[path\\]"):
        sluice.dask.compress_files(str(tmp_path / "s1.log"), tmp_path / "out")


def test_compress_files_small_and_big_are_the_commands_bytes(client, tmp_path):
    sources = []
    for i, size in enumerate([0, 10, 50_000, 5 * CHUNK + 3, 1000]):
        path = tmp_path / f"f{i}.csv"
        path.write_bytes(csv_bytes(size, seed=i)[:size])
        sources.append(path)
    missing = tmp_path / "missing.csv"
    out = tmp_path / "out" / "deeper"  # created, as sluice.compress_files creates it
    seen = []
    results = sluice.dask.compress_files([*sources, missing], out, "zstd", client=client, chunk_size=CHUNK,
                                         part_size=2 * CHUNK, progress=seen.append)
    assert [r.status for r in results] == ["done"] * 5 + ["failed"]
    assert len(seen) == 6
    for path, result in zip(sources, results):
        assert (out / (path.name + ".zst")).read_bytes() == sluice_made(path, "zstd").read_bytes()
        assert result.input_bytes == path.stat().st_size
    assert isinstance(results[-1].error, OSError)
    sluice.dask.compress(sources[2], tmp_path / "new" / "f2.csv.zst", "zstd", client=False, chunk_size=CHUNK)
    assert (tmp_path / "new" / "f2.csv.zst").read_bytes() == sluice_made(sources[2], "zstd").read_bytes()
    # A file over part_size at the default level of a format whose levels start at 1: its level
    # was resolved to 0 twice, and every such file failed ("gzip level must be between 1 and 9").
    for format in ("gzip", "lz4"):
        results = sluice.dask.compress_files([sources[3]], out, format, client=False, chunk_size=CHUNK,
                                             part_size=2 * CHUNK)
        assert results[0].status == "done", results[0].error
        extension = {"gzip": ".gz", "lz4": ".lz4"}[format]
        assert (out / (sources[3].name + extension)).read_bytes() == sluice_made(sources[3], format).read_bytes()


# ---- reading in partitions ----

@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    plain = root / "table.csv"
    plain.write_bytes(csv_bytes(3 * 1024 * 1024, seed=7))
    return plain


@pytest.mark.parametrize("form", SPLITTABLE + ["bgzip"])
def test_read_csv_splits_and_gives_pandas_rows(client, table, tmp_path, form):
    if form == "bgzip":
        packed = tmp_path / "table.csv.gz"
        with open(packed, "wb") as f:
            subprocess.run(["bgzip", "-c", str(table)], stdout=f, check=True)
    else:
        packed = sluice_made(table, form)
    frame = sluice.dask.read_csv(str(packed), blocksize=256 * 1024)
    assert frame.npartitions > 1
    got = frame.compute().reset_index(drop=True)
    pd.testing.assert_frame_equal(got, pd.read_csv(table))


@pytest.mark.parametrize("tool", [["gzip", "-9", "-c"], ["zstd", "-q", "-c"]])
def test_a_stream_that_cannot_be_cut_is_one_partition(client, table, tmp_path, tool):
    packed = tmp_path / "table.csv.packed"
    with open(packed, "wb") as f:
        subprocess.run([*tool, str(table)], stdout=f, check=True)
    frame = sluice.dask.read_csv(str(packed), blocksize=256 * 1024)
    assert frame.npartitions == 1
    pd.testing.assert_frame_equal(frame.compute().reset_index(drop=True), pd.read_csv(table))


@pytest.mark.parametrize("form", SPLITTABLE)
@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n"])
def test_every_record_is_in_exactly_one_partition(client, tmp_path, form, delimiter):
    # Records of every length around the unit size, a two-byte delimiter split by unit boundaries.
    rng = random.Random(11)
    data = bytearray()
    while len(data) < 20 * CHUNK:
        data += bytes(rng.choice(b"abc,") for _ in range(rng.choice([1, 100, CHUNK - 1, CHUNK + 7]))) + delimiter
    for k in range(1, 20):  # a delimiter across each chunk boundary
        data[k * CHUNK - 1:k * CHUNK + 1] = delimiter if delimiter == b"\r\n" else b"x\n"
    data = bytes(data)
    path = tmp_path / "records.txt"
    path.write_bytes(data)
    packed = sluice_made(path, form, chunk=CHUNK)
    for blocksize in [1, CHUNK // 2, CHUNK, 3 * CHUNK + 5, 10**9]:
        _, blocks = sluice.dask.read_bytes(str(packed), delimiter=delimiter, blocksize=blocksize, sample=False)
        parts = [bytes(p) for p in distributed.client.default_client().compute(blocks[0], sync=True)]
        assert b"".join(parts) == data, (form, blocksize)
        assert all(p.endswith(delimiter) for p in parts if p)
        if blocksize < len(data) and form != "bgzf":
            assert len(parts) > 1


def test_gzip_chunks_survive_sync_flush_patterns_in_the_data(client, tmp_path):
    # Incompressible data is stored: the pattern that ends a chunk appears all through the stream.
    rng = random.Random(13)
    data = b"".join(rng.randbytes(rng.randrange(1, 300)) + b"\x00\x00\xff\xff" + b"\n" for _ in range(20000))
    path = tmp_path / "noise.bin"
    path.write_bytes(data)
    packed = sluice_made(path, "gzip")
    _, blocks = sluice.dask.read_bytes(str(packed), delimiter=b"\n", blocksize=100_000, sample=False)
    assert len(blocks[0]) > 4
    parts = distributed.client.default_client().compute(blocks[0], sync=True)
    assert b"".join(parts) == data


def test_a_file_written_with_flushes_partitions_whole(client, tmp_path):
    # flush() ends a chunk early (sluice.open's writer): such chunks are shorter than the header's
    # chunk size, and partitions still give every record once (split across partitions, not read
    # whole: before chunks kept to multiples of the size, the first chunk's check sent it whole).
    rng = random.Random(19)
    lines = [b"%d,%s\n" % (i, rng.randbytes(rng.randrange(0, 100)).hex().encode()) for i in range(40000)]
    packed = tmp_path / "flushed.gz"
    with sluice.open(packed, "wb", chunk_size=CHUNK) as f:
        for i, line in enumerate(lines):
            f.write(line)
            if i % 997 == 0 or i % 3001 == 0:
                f.flush()
    data = b"".join(lines)
    for blocksize in [CHUNK // 2, 3 * CHUNK + 5]:
        _, blocks = sluice.dask.read_bytes(str(packed), delimiter=b"\n", blocksize=blocksize, sample=False)
        assert len(blocks[0]) > 2
        parts = distributed.client.default_client().compute(blocks[0], sync=True)
        assert b"".join(parts) == data, blocksize


def test_a_chunk_longer_than_a_read_is_read_whole(tmp_path):
    # Flushed pieces of a byte each take about 3.6 bytes a byte: a chunk of them is longer than a
    # partition's reads (here twice the chunk size's most deflated size); before, it failed with
    # "no chunk could be decoded" (with 1.5 MiB chunks, a valid file failed every partitioning).
    rng = random.Random(29)
    tiny = rng.randbytes(CHUNK + 100)
    packed = tmp_path / "expanding.gz"
    with sluice.open(packed, "wb", chunk_size=CHUNK) as f:
        f.write(csv_bytes(2 * CHUNK, seed=3))
        for i in range(len(tiny)):
            f.write(tiny[i:i + 1])
            f.flush()
        f.write(csv_bytes(2 * CHUNK, seed=4))
    data = csv_bytes(2 * CHUNK, seed=3) + tiny + csv_bytes(2 * CHUNK, seed=4)
    from sluice import _units
    size = packed.stat().st_size
    with open(packed, "rb") as f:
        index = _units.index_stream(f, size)
        pieces = sluice.dask._ChunkPieces(f, size, index, sluice.dask._Partition(str(packed)))
        chunks = list(pieces._chunks(index.independent[0], None, window=0))
    assert max(c.end - c.start for c in chunks) > 2 * _units.most_deflated(CHUNK)
    assert b"".join(c.data for c in chunks) == data


def test_chunks_a_flush_cut_short_partition_whatever_their_lengths(tmp_path):
    # Flushes after much (each ends the chunk being filled) one byte before a chunk's end and one
    # chunk later: the chunks there are 1 byte, a chunk from the first flush to the second (as
    # long as a whole one, but not on the grid), then 1 byte again. A partition that started at
    # the first flush took the chunk after the second for a whole one and failed ("a chunk decoded
    # to more than ...").
    chunk = 2 * CHUNK
    data = csv_bytes(12 * chunk, seed=33)
    first = 5 * chunk - 1
    packed = tmp_path / "flushed.gz"
    with sluice.open(packed, "wb", chunk_size=chunk) as f:
        for start, end in [(0, first), (first, first + chunk), (first + chunk, len(data))]:
            f.write(data[start:end])
            f.flush()
    # Partitions start in many places (13 of these 26 sizes failed; 806 KB of gzip).
    for blocksize in range(100_000, 300_000, 7919):
        _, blocks = sluice.dask.read_bytes(str(packed), blocksize=blocksize, sample=False)
        assert len(blocks[0]) > 1
        parts = dask.compute(*blocks[0], scheduler="sync")
        assert b"".join(parts) == data, blocksize


@pytest.mark.parametrize("case", ["flushed-records-ending-in-the-pattern", "a-false-start-inflates"])
def test_default_gzip_partitions_where_sync_flush_patterns_deceive(tmp_path, case):
    rng = random.Random(23)
    packed = tmp_path / "deceiving.gz"
    chunk = CHUNK
    if case == "flushed-records-ending-in-the-pattern":
        # Records that do not compress and end with 00 00 ff ff, each flushed, and copies of the
        # last few: a flushed piece is a stored block that ends with the pattern, a block end
        # inside a chunk, and a copy refers back across one or more of them (read as a chunk of
        # its own, it failed: "distance too far back").
        with sluice.open(packed, "wb", chunk_size=chunk) as f:
            records = []
            for _ in range(400):
                records.append(rng.randbytes(rng.randrange(100, 3000)) + b"\x00\x00\xff\xff")
                records.append(records[-rng.randrange(1, min(6, len(records) + 1))])
                for record in records[-2:]:
                    f.write(record)
                    f.flush()
        data = b"".join(records)
    else:
        # Chunks of stored data that end with the pattern and 02: after that false pattern, the
        # 02 and the chunk's own sync flush inflate as an empty fixed block and an empty stored
        # one. A start taken there was no chunk's start for the partition before. (A chunk size
        # that is no multiple of a stored block's 65,535 bytes keeps the pattern inside one.)
        chunk = 100_000
        data = b"".join(rng.randbytes(chunk - 5) + b"\x00\x00\xff\xff\x02" for _ in range(24))
        path = tmp_path / "data.bin"
        path.write_bytes(data)
        packed = sluice_made(path, "gzip", chunk=chunk)
    for blocksize in range(chunk // 4, 3 * chunk, 9973):
        _, blocks = sluice.dask.read_bytes(str(packed), blocksize=blocksize, sample=False)
        assert len(blocks[0]) > 1
        parts = dask.compute(*blocks[0], scheduler="sync")
        assert b"".join(parts) == data, blocksize


@pytest.mark.parametrize("case", ["empty", "zero-padding", "a-member-after-zeros"])
def test_default_gzip_partitions_at_the_ends(tmp_path, case):
    # An empty stream divided by zero; a second member after more than 4,096 zeros was dropped
    # (sluice.open and gzip's reader give it: a partitioned read must not end quietly before it).
    path = tmp_path / "data.csv"
    path.write_bytes(b"" if case == "empty" else csv_bytes(6 * CHUNK, seed=8))
    packed = sluice_made(path, "gzip")
    after = {"empty": b"", "zero-padding": b"\0" * 5000, "a-member-after-zeros": b"\0" * 5000 + gzip.compress(b"x")}
    packed.write_bytes(packed.read_bytes() + after[case])
    for blocksize in [CHUNK // 2, 2 * CHUNK, None]:
        _, parts = sluice.dask.read_bytes(str(packed), blocksize=blocksize, sample=False)
        if case == "a-member-after-zeros":
            with pytest.raises(sluice.CorruptDataError):
                dask.compute(*parts[0], scheduler="sync")
        else:
            assert b"".join(dask.compute(*parts[0], scheduler="sync")) == path.read_bytes(), blocksize


def test_default_gzip_members_one_after_another_partition_as_one_stream(client, tmp_path):
    # A `cat` of sluice's outputs (every gzip reader takes it whole): the partitions' chunks go on
    # from one member's trailer to the next member's first chunk, and each member is checked
    # against its own trailer. It failed ("the stream goes on after its first member").
    rows = [csv_bytes(size, seed=seed).split(b"\n", 1)[1] for size, seed in [(CHUNK // 3, 12), (7 * CHUNK + 5, 13)]]
    pieces, files = [csv_bytes(5 * CHUNK, seed=11), b"", *rows], []
    for k, data in enumerate(pieces):
        path = tmp_path / f"part{k}.csv"
        path.write_bytes(data)
        files.append(sluice_made(path, "gzip", extra=["-n"] if k % 2 else []).read_bytes())
    data, packed = b"".join(pieces), tmp_path / "joined.csv.gz"
    packed.write_bytes(b"".join(files))
    assert gzip.decompress(packed.read_bytes()) == data
    for blocksize in [CHUNK // 3, CHUNK, 3 * CHUNK + 7, None]:
        for delimiter in [None, b"\n"]:
            _, blocks = sluice.dask.read_bytes(str(packed), delimiter=delimiter, blocksize=blocksize, sample=False)
            assert len(blocks[0]) > 2 or blocksize is None
            assert b"".join(dask.compute(*blocks[0], scheduler="sync")) == data, (blocksize, delimiter)
    frame = sluice.dask.read_csv(str(packed), blocksize=CHUNK).compute(scheduler=client)
    assert len(frame) == data.count(b"\n") - 1
    # A changed byte in the third member's stored data fails at its trailer; a member of other
    # chunks after the first is refused (read it whole), as is one of another form.
    noise = random.Random(3).randbytes(3 * CHUNK)
    (tmp_path / "noise").write_bytes(noise)
    noisy = sluice_made(tmp_path / "noise", "gzip").read_bytes()
    damaged = bytearray(files[0] + noisy + files[3])
    damaged[len(files[0]) + len(noisy) // 2] ^= 0x10
    packed.write_bytes(damaged)
    _, blocks = sluice.dask.read_bytes(str(packed), blocksize=CHUNK, sample=False)
    with pytest.raises(sluice.CorruptDataError, match="CRC-32") as caught:
        dask.compute(*blocks[0], scheduler="sync")
    assert caught.value.offset == len(files[0]) + len(noisy) - 8
    other_chunks = sluice_made(tmp_path / "part3.csv", "gzip", chunk=CHUNK // 2).read_bytes()
    for second in [other_chunks, gzip.compress(pieces[3])]:
        packed.write_bytes(files[0] + second)
        _, blocks = sluice.dask.read_bytes(str(packed), blocksize=CHUNK, sample=False)
        with pytest.raises(sluice.CorruptDataError, match="blocksize=None") as caught:
            dask.compute(*blocks[0], scheduler="sync")
        assert caught.value.offset == len(files[0])
        _, whole = sluice.dask.read_bytes(str(packed), blocksize=None, sample=False)
        assert dask.compute(*whole[0], scheduler="sync")[0] == pieces[0] + pieces[3]


def test_a_start_a_crafted_file_fakes_gives_an_error_never_other_bytes(tmp_path):
    # A second reader's file (valid: gzip reads it): chunk 2's stored data ends with 00 00 ff ff
    # and bytes that read as stored blocks, stepping over the outer stored block's header and
    # the true chunk end, to chunk 3's own sync flush. The start that false pattern proves is the
    # end of chunk 3, while a target just after it finds chunk 3's start: the partition between
    # owned nothing, and chunk 3 came twice, with no error.
    chunk, count, header = 100_000, 6, 24
    rng = random.Random(7)
    data = bytearray(rng.randbytes(count * chunk))
    starts = [header + j * (chunk + 15) for j in range(count + 1)]  # 65,535 + 34,465 stored + an empty one

    def put_at(pos, raw):  # a file position inside chunk 2 or 3's stored data
        for i, byte in enumerate(raw):
            at = pos + i
            j = next(j for j in (2, 3) if starts[j] + 5 <= at < starts[j] + 100_010)
            data[j * chunk + at - starts[j] - (5 if at < starts[j] + 65_540 else 10)] = byte

    candidate, end = starts[3] - 45, starts[4] - 5
    put_at(candidate - 4, b"\x00\x00\xff\xff")
    blocks, pos = [], candidate
    for length in [1000] + [1] * 14:
        blocks.append((pos, length))
        pos += 5 + length
    while end - (pos + 5) > 65535 or starts[3] + 65535 < pos + 5 <= starts[3] + 65540:
        blocks.append((pos, min(30000, end - pos - 6)))
        pos += 5 + blocks[-1][1]
    blocks.append((pos, end - pos - 5))
    for pos, length in blocks:
        put_at(pos, b"\0" + struct.pack("<HH", length, length ^ 0xFFFF))
    path = tmp_path / "crafted.bin"
    path.write_bytes(data)
    packed = sluice_made(path, "gzip", chunk=chunk, extra=["-n"])
    assert gzip.decompress(packed.read_bytes()) == data
    # All of it (the member's CRC-32 checked), and all but the last partition, which has no such
    # check: an error or the file's bytes, never others.
    outcomes = set()
    for blocksize in range(49_990, 50_000):
        _, parts = sluice.dask.read_bytes(str(packed), blocksize=blocksize, sample=False)
        for some in (parts[0], parts[0][:-1]):
            try:
                outcomes.add(data.startswith(b"".join(dask.compute(*some, scheduler="sync"))))
            except sluice.CorruptDataError:
                outcomes.add("error")
    assert False not in outcomes


@pytest.mark.parametrize("delimiter", [None, b"\n"])
def test_default_gzip_partitions_are_checked_against_the_members_crc(tmp_path, delimiter):
    # A changed byte of stored data (random data does not compress) inflates all the same: only
    # the member's CRC-32 tells. Partitions of the default form gave it back changed, silently.
    data = random.Random(31).randbytes(20 * CHUNK)
    path = tmp_path / "noise.bin"
    path.write_bytes(data)
    packed = sluice_made(path, "gzip")
    damaged = bytearray(packed.read_bytes())
    damaged[len(damaged) // 2] ^= 0x10
    packed.write_bytes(damaged)
    for blocksize in [CHUNK // 2, 3 * CHUNK, None]:
        _, blocks = sluice.dask.read_bytes(str(packed), delimiter=delimiter, blocksize=blocksize, sample=False)
        assert len(blocks[0]) > 1 or blocksize is None
        with pytest.raises(sluice.CorruptDataError, match="CRC-32") as caught:
            dask.compute(*blocks[0], scheduler="sync")
        assert str(packed) in str(caught.value) and caught.value.offset == len(damaged) - 8, blocksize


@pytest.mark.parametrize("form", ["gzip-multi-member", "zstd", "lz4"])
def test_a_partitions_error_names_the_file_and_where_in_it(tmp_path, form):
    # A partition decodes its units apart from the file: its error was worded for them ("member
    # starting at byte 0"), without the file's name or offsets.
    data = csv_bytes(20 * CHUNK, seed=5)
    path = tmp_path / "table.csv"
    path.write_bytes(data)
    packed = sluice_made(path, form)
    damaged = bytearray(packed.read_bytes())
    damaged[len(damaged) // 2] ^= 0x55
    packed.write_bytes(damaged)
    with pytest.raises(sluice.CorruptDataError) as whole:
        sluice.decompress(bytes(damaged), threads=1)
    _, blocks = sluice.dask.read_bytes(str(packed), blocksize=CHUNK, sample=False)
    assert len(blocks[0]) > 2
    with pytest.raises(sluice.CorruptDataError) as caught:
        dask.compute(*blocks[0], scheduler="sync")
    assert caught.value.offset == whole.value.offset
    assert str(caught.value) == f"file://{packed}: {whole.value}" and caught.value.path == f"file://{packed}"


@pytest.mark.parametrize("kind", ["csv", "random", "patterns", "short"])
def test_native_chunk_inflate_gives_what_zlib_gives(tmp_path, kind):
    rng = random.Random(17)
    data = {
        "csv": csv_bytes(9 * CHUNK + 5, seed=9),
        "random": rng.randbytes(5 * CHUNK + 77),  # stored blocks
        # Sync flush patterns all through the stored data: more false ends than the native tries.
        "patterns": b"".join(rng.randbytes(rng.randrange(1, 40)) + b"\x00\x00\xff\xff" for _ in range(12000)),
        "short": b"x" * 100,  # the member's only chunk is its last
    }[kind]
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    packed = sluice_made(path, "gzip").read_bytes()
    import io
    from sluice import _units
    header, chunk = _units.index_stream(io.BytesIO(packed), len(packed)).independent
    assert chunk == CHUNK
    body = packed[header:]
    fast = [(c.start, c.data, c.end, c.last) for c in _units.inflate_chunks(body, chunk)]
    slow, at = [], 0
    for decoded, end, last in _units._inflate_chunks_with_zlib(body, chunk, 0):
        slow.append((at, decoded, end, last))
        at = end
    assert [(s, e, last) for s, _, e, last in fast] == [(s, e, last) for s, _, e, last in slow]
    assert b"".join(d for _, d, _, _ in fast) == data
    assert fast[-1][3] and len(packed) - header - fast[-1][2] == 8  # the trailer follows the last chunk
    # A window that ends inside a chunk, not at the end of the file: the whole chunks before it.
    cut = body[:fast[-1][0] + 10]
    assert [c.end for c in _units.inflate_chunks(cut, chunk, at_eof=False)] == [e for _, _, e, _ in fast[:-1]]
    # A window that holds the member's last chunk whole, then more zero padding than a chunk: the
    # last chunk is decoded, though the file goes on.
    padded = body + b"\0" * (_units.most_deflated(chunk) + 10)
    assert [(c.end, c.last) for c in _units.inflate_chunks(padded, chunk, at_eof=False)] == \
        [(e, last) for _, _, e, last in fast]
    # Damaged deflate: the native way fails where zlib does, and gives what zlib gives otherwise
    # (deflate has no check of its own; the stored data of "random" inflates either way).
    if len(fast) > 1:
        broken = bytearray(body)
        broken[fast[1][0] + 20] ^= 0xFF

        def outcome(pieces):
            try:
                return b"".join(pieces)
            except (zlib.error, sluice.CorruptDataError):
                return "error"
        assert outcome(c.data for c in _units.inflate_chunks(bytes(broken), chunk)) == \
            outcome(d for d, _, _ in _units._inflate_chunks_with_zlib(bytes(broken), chunk, 0))


@pytest.mark.parametrize("case", ["level-1-random", "gz-files-inside", "gz-files-of-the-same-chunk-size-inside"])
def test_gzip_chunks_of_stored_data_split_right(client, tmp_path, case):
    # ISA-L at level 1 stores what does not compress and must still end each chunk on a sync
    # flush; deflate streams stored inside the data (a tar of .gz files) look like chunk starts.
    rng = random.Random(17)
    if case == "level-1-random":
        data, extra = rng.randbytes(3_000_000), ["-1", "--gzip-backend", "isal"]
    elif case == "gz-files-inside":
        inner = tmp_path / "inner"
        inner.write_bytes(csv_bytes(40_000, seed=2))
        packed_inner = subprocess.run([PROGRAM, "--chunk-size", "4K", "-c", str(inner)], stdout=subprocess.PIPE,
                                      check=True).stdout
        data, extra = b"".join(rng.randbytes(30_000) + packed_inner for _ in range(20)), []
    else:
        # Whole chunks of the inner stream (a few KB of deflate each) lie in one stored block of
        # the outer: a start found there is proven only by chunks that go on past it.
        inner = tmp_path / "inner"
        inner.write_bytes(bytes(rng.choice(b"ab") for _ in range(20 * CHUNK)))
        packed_inner = subprocess.run([PROGRAM, "--chunk-size", str(CHUNK), "-c", str(inner)],
                                      stdout=subprocess.PIPE, check=True).stdout
        data, extra = b"".join(rng.randbytes(30_000) + packed_inner for _ in range(8)), []
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    packed = sluice_made(path, "gzip", extra=extra)
    _, blocks = sluice.dask.read_bytes(str(packed), blocksize=200_000, sample=False)
    parts = distributed.client.default_client().compute(blocks[0], sync=True)
    assert len(parts) > 1
    assert b"".join(parts) == data


def test_read_csv_refuses_options_that_move_the_header(table):
    with pytest.raises(sluice.UsageError):
        sluice.dask.read_csv(str(table), names=["a", "b", "c", "d"])


def test_read_text_and_read_bytes_sample(client, table):
    packed = sluice_made(table, "zstd")
    lines = sluice.dask.read_text(str(packed), blocksize=200_000)
    assert lines.npartitions > 1
    assert lines.compute() == table.read_text().splitlines(keepends=True)
    sample, blocks, paths = sluice.dask.read_bytes(str(packed), delimiter=b"\n", sample=1000, include_path=True)
    assert table.read_bytes().startswith(sample) and sample.endswith(b"\n")
    assert paths[0].endswith("table.csv.zst")
    assert sluice.dask.partitions(str(packed), blocksize=200_000)[paths[0]][0] == "zstd seek table"


def test_read_text_reads_line_ends_as_dask_does(client, tmp_path):
    """CRLF and CR lines: the default (linedelimiter=None) reads them as "\n", as Dask's
    read_text does (io's universal newlines); sluice's kept "\r\n" where Dask gives "\n". The
    lines are Dask's reading of the plain file whole (in blocks, Dask's own doubles the "\r" of
    a "\r\n" delimiter: it writes the text through io.StringIO's newline translation)."""
    import dask.bag
    plain = tmp_path / "crlf.csv"
    plain.write_bytes(b"".join(b"row,%d\r\n" % i for i in range(8_000)) + b"cr,1\rcr,2\rlast")
    packed = sluice_made(plain, "gzip")
    for delimiter in (None, "", "\r\n", "\n"):
        expected = dask.bag.read_text(str(plain), linedelimiter=delimiter).compute()
        assert len(expected) > 8_000
        for blocksize in (None, 20_000):
            bag = sluice.dask.read_text(str(packed), blocksize=blocksize, linedelimiter=delimiter)
            assert bag.npartitions == (1 if blocksize is None else 3)
            lines = bag.compute()
            assert lines == expected, (delimiter, blocksize)
    assert lines[0] == "row,0\r\n" and lines[-1] == "cr,1\rcr,2\rlast"


def test_a_file_of_one_partition_is_read_whole_whatever_follows_its_chunks(client, tmp_path):
    """sluice's gzip chunks then a gzip member appended (gzip -c more >> app.log.gz): in one
    partition (the default blocksize) it was an error, "the stream goes on after a member", that
    only blocksize=None avoided; gzip -dc and Dask's gzip read it."""
    import dask.bag
    first, more = tmp_path / "a", tmp_path / "b"
    first.write_bytes(b"".join(b"a %d\n" % i for i in range(30_000)))
    more.write_bytes(b"".join(b"b %d\n" % i for i in range(30_000)))
    appended = tmp_path / "app.log.gz"
    appended.write_bytes(sluice_made(first, "gzip").read_bytes() + gzip.compress(more.read_bytes()))
    expected = dask.bag.read_text(str(appended), compression="gzip").compute()
    assert len(expected) == 60_000
    assert sluice.dask.read_text(str(appended)).compute() == expected


def test_a_truncated_file_read_in_partitions_is_a_truncated_error(client, tmp_path):
    """Cut short inside its last chunk: the partition that reaches the end says the file is
    truncated (TruncatedError, an EOFError, as reading it whole says), not "no chunk could be
    decoded ...; read it with blocksize=None", which then said truncated."""
    plain = tmp_path / "a"
    plain.write_bytes(b"".join(b"line %d %s\n" % (i, b"x" * (i % 97)) for i in range(100_000)))
    whole = sluice_made(plain, "gzip").read_bytes()
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole[:len(whole) // 2])
    for blocksize in (None, 200_000):
        with pytest.raises(sluice.TruncatedError, match="truncated") as caught:
            sluice.dask.read_text(str(cut), blocksize=blocksize).compute()
        assert isinstance(caught.value, EOFError), blocksize


# ---- fsspec ----

@pytest.mark.parametrize("form", ["gzip", "zstd", "lz4"])
def test_fsspec_compression_sluice_reads_every_format(client, table, form):
    packed = sluice_made(table, form)
    with fsspec.open(str(packed), "rb", compression="sluice") as f:
        assert f.read() == table.read_bytes()
    with fsspec.open(str(packed), "rt", compression="sluice") as f:  # pandas through fsspec
        pd.testing.assert_frame_equal(pd.read_csv(f), pd.read_csv(table))


def test_dask_bag_reads_with_compression_sluice_on_the_cluster(client, table):
    import dask.bag
    sluice.dask.register(client)
    packed = sluice_made(table, "lz4")
    bag = dask.bag.read_text(str(packed), compression="sluice")
    assert bag.count().compute() == table.read_bytes().count(b"\n")


def test_fsspec_writes_the_format_of_the_name(tmp_path):
    target = tmp_path / "w.csv.zst"
    with fsspec.open(str(target), "wb", compression="sluice") as f:
        f.write(b"a,b\n")
    assert target.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    assert sluice.decompress(target.read_bytes()) == b"a,b\n"


def test_a_file_that_is_not_compressed_is_read_as_dask_reads_it(client, tmp_path):
    """A directory of logs holds app.log beside app.log.1.gz: Dask's read_text takes both, and
    sluice's refused the plain one ("not compressed data in a known format"). It is cut as Dask
    cuts it, partition for partition; a name with a codec's suffix still says what it must be."""
    import dask.bag
    import dask.bytes
    rng = random.Random(29)
    data = b"".join(bytes(rng.choice(b"ab\r\n") for _ in range(rng.choice([0, 5, 300, 2000]))) + b"\r\n"
                    for _ in range(60))
    plain = tmp_path / "app.log"
    plain.write_bytes(data)
    (tmp_path / "empty.log").write_bytes(b"")
    for name in ("app.log", "empty.log"):
        for delimiter in (None, b"\n", b"\r\n"):
            for blocksize in (None, 997, 5000, 10**9):
                _, ours = sluice.dask.read_bytes(str(tmp_path / name), delimiter=delimiter, blocksize=blocksize,
                                                 sample=False)
                _, theirs = dask.bytes.read_bytes(str(tmp_path / name), delimiter=delimiter, blocksize=blocksize,
                                                  sample=False)
                assert len(ours[0]) == len(theirs[0])
                assert dask.compute(*ours[0], scheduler="sync") == dask.compute(*theirs[0], scheduler="sync")
    older = tmp_path / "app.log.1.gz"
    older.write_bytes(gzip.compress(b"older 1\nolder 2\n"))
    expected = dask.bag.read_text(str(tmp_path / "app.log*"), compression="infer").compute()
    assert sluice.dask.read_text(str(tmp_path / "app.log*"), blocksize=5000).compute() == expected
    sample, _ = sluice.dask.read_bytes(str(plain), delimiter=b"\n", sample=100)
    assert data.startswith(sample) and sample.endswith(b"\n")
    assert sluice.dask.partitions(str(plain), blocksize=5000)[plain.as_uri()] == \
        ("not compressed: read as it is", len(dask.bytes.read_bytes(str(plain), blocksize=5000, sample=False)[1][0]))
    misnamed = tmp_path / "misnamed.gz"
    misnamed.write_bytes(data)
    with pytest.raises(sluice.CorruptDataError, match="misnamed.gz: not compressed"):
        sluice.dask.read_text(str(misnamed)).compute()
    # A format sluice does not decode is not plain text (its compressed bytes came back as lines).
    subprocess.run(["xz", "-k", str(plain)], check=True)
    (tmp_path / "renamed").write_bytes((tmp_path / "app.log.xz").read_bytes())
    for name in ("app.log.xz", "renamed"):
        with pytest.raises(sluice.CorruptDataError, match="xz"):
            sluice.dask.read_bytes(str(tmp_path / name), sample=False)[1][0][0].compute()
    for blocksize in (0, -1, "0 B"):
        with pytest.raises(sluice.UsageError, match="blocksize must be at least 1 byte"):
            sluice.dask.read_bytes(str(plain), blocksize=blocksize, sample=False)


def test_dask_errors_are_sluices_with_the_class_of_their_errno(client, tmp_path):
    """A missing input was fsspec's bare FileNotFoundError (read_text, compress), or in a
    compress_files result a plain sluice.Error with the errno in its message; a bad part_size a
    bare ValueError."""
    missing = tmp_path / "missing.csv.gz"
    for call in (lambda: sluice.dask.compress(missing, tmp_path / "out.gz", client=client),
                 lambda: sluice.dask.read_text(str(missing)), lambda: sluice.dask.read_bytes(str(tmp_path / "none*"))):
        with pytest.raises(FileNotFoundError) as caught:
            call()
        assert isinstance(caught.value, sluice.Error) and caught.value.errno == errno.ENOENT
        assert str(missing) in str(caught.value) or "none*" in str(caught.value)
    [result] = sluice.dask.compress_files([missing], tmp_path / "out", client=client)
    assert result.status == "failed" and isinstance(result.error, FileNotFoundError)
    assert isinstance(result.error, sluice.Error) and result.error.errno == errno.ENOENT
    assert str(result.error) == f"{missing}: cannot open: No such file or directory"
    (tmp_path / "here.csv").write_bytes(b"a,b\n")
    with pytest.raises(sluice.UsageError, match="not a size"):
        sluice.dask.compress(tmp_path / "here.csv", tmp_path / "out.gz", client=client, part_size="abc")
