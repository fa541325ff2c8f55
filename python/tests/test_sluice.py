"""The Python package against the stock tools and Python's own modules (gzip, zlib), the sluice
program, and the behaviours it promises: no copies of inputs, threads, Ctrl-C, errors."""
import _thread
import asyncio
import concurrent.futures
import copy
import errno
import gc
import gzip
import io
import os
import pathlib
import pickle
import random
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tarfile
import sys
import tempfile
import textwrap
import threading
import time
import zipfile
import zlib

import pytest

import sluice

PROGRAM = os.environ.get("SLUICE_PROGRAM", "sluice")
CHUNK = 64 * 1024


def text(size, seed=1):
    rng = random.Random(seed)
    words = [b"sluice", b"chunk", b"graph", b"member", b"frame", b"order", b"bound", b"error", b"\n"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def stock(tool_args, data):
    return subprocess.run(tool_args, input=data, capture_output=True, check=True).stdout


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 3]


@pytest.mark.parametrize("fmt,reader", [("gzip", ["gzip", "-dc"]), ("zstd", ["zstd", "-dc"]), ("lz4", ["lz4", "-dc"])])
@pytest.mark.parametrize("size", SIZES)
def test_compress_is_read_by_the_stock_tool_and_by_decompress(fmt, reader, size):
    data = text(size, size)
    packed = sluice.compress(data, fmt, chunk_size=CHUNK)
    assert stock(reader, packed) == data
    assert sluice.decompress(packed) == data


@pytest.mark.parametrize("size", SIZES)
def test_default_gzip_is_one_member_for_zlib_and_gzip(size):
    data = text(size, size)
    packed = sluice.compress(data, chunk_size=CHUNK)
    one = zlib.decompressobj(31)
    assert one.decompress(packed) == data and one.eof and not one.unused_data
    assert gzip.decompress(packed) == data


def test_any_bytes_like_input():
    data = text(300_000)
    for view in (data, bytearray(data), memoryview(data), memoryview(bytearray(data))[10:], io.BytesIO(data).getbuffer()):
        assert sluice.decompress(sluice.compress(view)) == bytes(view)
    strided = memoryview(data)[::2]  # not contiguous: copied, as Compressor and SluiceFile take it
    assert sluice.decompress(sluice.compress(strided)) == strided.tobytes()


def test_same_bytes_as_the_program_for_any_thread_count():
    data = text(3 * 1024 * 1024 + 5)
    for fmt in sluice.formats():
        program = subprocess.run([PROGRAM, "-F", fmt, "-c"], input=data, capture_output=True, check=True).stdout
        assert sluice.compress(data, fmt, threads=1) == program
        assert sluice.compress(data, fmt, threads=2) == program


def test_decompresses_what_the_stock_tools_write():
    data = text(2_000_000)
    for args in (["gzip", "-c"], ["pigz", "-c"], ["zstd", "-c", "-q"], ["lz4", "-c", "-q"], ["bgzip", "-c"]):
        assert sluice.decompress(stock(args, data)) == data, args
    assert sluice.decompress(gzip.compress(data) + gzip.compress(data)) == data + data


def test_decompress_returns_every_byte_whatever_size_the_stream_claims():
    # sluice.decompress writes into a bytes object of the size the stream records, or its last
    # gzip ISIZE suggests, and goes on past it where the claim is short or missing.
    data = text(3_000_000, 5)
    member = gzip.compress(data, mtime=0)
    cases = {
        "recorded": (sluice.compress(data), data),
        "ISIZE, exact": (member, data),
        "ISIZE of the last member only": (gzip.compress(data[:2_500_000]) + gzip.compress(data[2_500_000:]), data),
        "zero padding last, so no claim": (member + bytes(8), data),
        "lz4, no claim": (sluice.compress(data, "lz4"), data),
        "empty": (sluice.compress(b""), b""),
    }
    for name, (packed, expected) in cases.items():
        out = sluice.decompress(packed, threads=2)
        assert type(out) is bytes and out == expected, name
    with pytest.raises(sluice.OutputLimitError):
        sluice.decompress(member, max_output=1_000_000)
    lying = member[:-4] + (3 * len(data)).to_bytes(4, "little")  # claims three times the output
    with pytest.raises(sluice.CorruptDataError):
        sluice.decompress(lying)


def test_levels_formats_and_settings():
    data = text(500_000)
    assert len(sluice.compress(data, level=9)) < len(sluice.compress(data, level=1))
    bgzf = sluice.compress(data, form="bgzf")
    assert bgzf[12:14] == b"BC" and sluice.decompress(bgzf) == data
    assert sluice.decompress(sluice.compress(data, "zstd", 19)) == data
    info = sluice.format_info("gzip")
    assert info["extension"] == ".gz" and "bgzf" in info["knobs"]["form"][0]
    with pytest.raises(sluice.UsageError, match="level") as caught:
        sluice.compress(data, level=42)
    assert isinstance(caught.value, ValueError) and caught.value.kind == "usage"
    with pytest.raises(ValueError):
        sluice.compress(data, "brotli")
    with pytest.raises(ValueError, match="form"):
        sluice.compress(data, form="tiny")


def test_errors_are_oserrors_with_kind_and_offset():
    packed = sluice.compress(text(1_000_000), "zstd", chunk_size=CHUNK)
    with pytest.raises(sluice.CorruptDataError) as caught:
        sluice.decompress(packed[:-10])
    assert isinstance(caught.value, OSError) and caught.value.kind == "corrupt_data"
    assert caught.value.offset is not None and caught.value.path is None
    assert "truncated" in str(caught.value)
    again = pickle.loads(pickle.dumps(caught.value))
    assert type(again) is sluice.TruncatedError and str(again) == str(caught.value)
    with pytest.raises(sluice.TrailingGarbageError):
        sluice.decompress(sluice.compress(b"data") + b"junk")
    with pytest.raises(sluice.OutputLimitError):
        sluice.decompress(packed, max_output=100_000)
    with pytest.raises(sluice.CorruptDataError, match="not compressed data"):
        sluice.decompress(b"plain text")


def test_errors_keep_their_attributes_through_pickle_and_copy():
    """An error from a process pool or a Dask worker is pickled: .output and .index were dropped
    (and a strerror set since), so the partial output and the failing item were lost."""
    decoder = sluice.Decompressor()
    decoder.decompress(sluice.compress(text(5000))[:-6])
    with pytest.raises(sluice.TruncatedError) as caught:
        decoder.flush()
    error = caught.value
    error.index, error.output, error.strerror = 3, b"partial", "told otherwise"  # as compress_many, flush() set them
    for back in (pickle.loads(pickle.dumps(error)), copy.copy(error)):
        assert type(back) is sluice.TruncatedError and str(back) == str(error)
        assert (back.output, back.index, back.strerror, back.offset) == (b"partial", 3, "told otherwise", error.offset)
    missing = sluice.compress_files(["/nonexistent/x"])[0].error
    back = pickle.loads(pickle.dumps(missing))
    assert isinstance(back, FileNotFoundError) and isinstance(back, sluice.Error)
    assert (back.errno, back.filename, back.strerror) == (errno.ENOENT, "/nonexistent/x", missing.strerror)


def test_errors_have_the_args_of_oserror():
    """A system call's failure has OSError's args, (errno, strerror), as open()'s has; an error of
    the data has its message alone, as gzip.BadGzipFile's. str() is sluice's message either way."""
    missing = sluice.compress_files(["/nonexistent/x"])[0].error
    assert missing.args == (errno.ENOENT, os.strerror(errno.ENOENT))
    number, reason = missing.args  # the unpacking OSError's handlers do
    assert str(missing) == missing.message == "/nonexistent/x: cannot open: " + reason
    with pytest.raises(sluice.CorruptDataError) as caught:
        sluice.decompress(b"plain text")
    assert caught.value.args == (str(caught.value),) and caught.value.errno is None
    assert pickle.loads(pickle.dumps(missing)).args == missing.args


def test_argument_mistakes_are_usage_errors_where_they_are_made(tmp_path):
    """An unknown format was a bare ValueError in open() and format_info() (UsageError elsewhere),
    and Decompressor took one until its first decompress(); mtime, max_in_flight and a flush
    mode out of range were bare ValueErrors. UsageError is also a ValueError."""
    for call in (lambda: sluice.open(tmp_path / "x.gz", "wb", format="bogus"), lambda: sluice.format_info("bogus"),
                 lambda: sluice.Decompressor(format="bogus"), lambda: sluice.compress(b"x", mtime=-1),
                 lambda: list(sluice.compress_iter([b"x"], max_in_flight=0)),
                 lambda: sluice.Compressor().flush(7)):
        with pytest.raises(sluice.UsageError):
            call()
    with pytest.raises(sluice.UsageError, match="known: gzip"):
        sluice.format_info("bogus")
    with pytest.raises(TypeError, match="threads"):
        sluice.Decompressor(threads="x")
    assert not (tmp_path / "x.gz").exists()


def test_compress_many_keeps_order_and_matches_compress():
    rng = random.Random(3)
    payloads = [text(rng.choice([0, 10, 300_000, 2_000_000]), i) for i in range(40)]
    for fmt in sluice.formats():
        results = sluice.compress_many(payloads, fmt)
        assert len(results) == len(payloads)
        for payload, packed in zip(payloads, results):
            assert packed == sluice.compress(payload, fmt)
    assert sluice.compress_many([]) == []
    assert sluice.compress_many([b"x"], return_exceptions=True) == [sluice.compress(b"x")]


def test_compress_iter_is_ordered_and_bounded():
    taken = []

    def items():
        for i in range(50):
            taken.append(i)
            yield text(20_000, i)

    out = sluice.compress_iter(items(), "lz4", max_in_flight=4)
    first = next(out)
    assert len(taken) <= 4
    rest = list(out)
    assert [sluice.decompress(p) for p in [first] + rest] == [text(20_000, i) for i in range(50)]


def test_many_python_threads_at_once():
    payloads = [text(200_000 + i, i) for i in range(48)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        packed = list(pool.map(lambda p: sluice.compress(p, "gzip"), payloads))
        back = list(pool.map(sluice.decompress, packed))
    assert back == payloads


def test_the_gil_is_released_while_compressing():
    data = text(8 * 1024 * 1024)  # 0.3-0.6 s at level 9 here: hundreds of ticks when the GIL is let go
    ticks = 0
    stop = threading.Event()

    def count():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    time.sleep(0.02)
    before = ticks
    sluice.compress(data, level=9)
    during = ticks - before
    stop.set()
    counter.join()
    assert during >= 10, "another Python thread could not run during the call"


# ---- sluice.open ----

@pytest.mark.parametrize("suffix,reader", [(".gz", ["gzip", "-dc"]), (".zst", ["zstd", "-dc"]), (".lz4", ["lz4", "-dc"])])
def test_open_writes_the_format_its_name_says_and_reads_it_back(tmp_path, suffix, reader):
    data = text(3_000_000)
    path = tmp_path / ("data.bin" + suffix)
    with sluice.open(path, "wb") as f:
        for at in range(0, len(data), 77_777):
            f.write(data[at:at + 77_777])
        assert f.tell() == len(data)
    assert subprocess.run(reader + [str(path)], capture_output=True, check=True).stdout == data
    with sluice.open(path) as f:
        assert f.read(10) == data[:10]
        assert f.read1(5)
        rest = f.read()
        assert f.tell() == len(data)
    assert data[:10] + rest == data[:10] + data[len(data) - len(rest):]
    assert os.listdir(tmp_path) == [path.name], "no temporary left"


def test_open_text_mode_lines_and_gzip_header(tmp_path):
    path = tmp_path / "notes.txt.gz"
    lines = [f"line {i} é\n" for i in range(20_000)]
    with sluice.open(path, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        assert f.readlines() == lines
    with open(path, "rb") as raw:
        header = raw.read(64)
    assert b"notes.txt\0" in header, "the name is recorded as gzip.open records it"
    with sluice.open(path, "rt", encoding="utf-8") as f:
        assert list(f) == lines
    with sluice.open(path, "rb") as f:
        assert f.readline() == lines[0].encode()
        buffer = bytearray(100)
        assert f.readinto(buffer) == 100


def test_open_file_objects_append_and_exclusive(tmp_path):
    data = text(1_000_000)
    sink = io.BytesIO()
    with sluice.open(sink, "wb", format="zstd") as f:
        f.write(data)
    assert stock(["zstd", "-dc"], sink.getvalue()) == data
    with sluice.open(io.BytesIO(sink.getvalue())) as f:
        assert f.read() == data
    path = tmp_path / "log.gz"
    with sluice.open(path, "ab") as f:
        f.write(b"first\n")
    with sluice.open(path, "ab") as f:
        f.write(b"second\n")
    assert gzip.decompress(path.read_bytes()) == b"first\nsecond\n"
    with pytest.raises(FileExistsError):
        sluice.open(path, "xb")
    with pytest.raises(ValueError):
        sluice.open(path, "rwb")
    for mode in ("rbb", "wtt", "rr"):  # each letter once, as open() takes them
        with pytest.raises(ValueError):
            sluice.open(path, mode)
    # gzip.open's and gzip.compress's level where they take it: said so, and compresslevel= is
    # the level; -1 is zlib's default.
    with pytest.raises(TypeError, match="a level goes in level=9"):
        sluice.open(tmp_path / "l.gz", "wb", 9)
    with pytest.raises(TypeError, match="a level goes in level=9"):
        sluice.compress(b"x", 9)
    assert gzip.decompress(sluice.compress(b"x" * 1000, compresslevel=1)) == b"x" * 1000
    # Reading: a level is passed over, as gzip.open's; a format's setting (a misspelt keyword
    # among them) is a TypeError, as gzip.open's unknown keywords are (it was passed over).
    (tmp_path / "r.gz").write_bytes(gzip.compress(b"r"))
    with sluice.open(tmp_path / "r.gz", "rb", compresslevel=9) as f:
        assert f.read() == b"r"
    with pytest.raises(TypeError, match="for writing, not reading: form"):
        sluice.open(tmp_path / "r.gz", "rb", form="bgzf")
    assert sluice.compress(b"x" * 1000, level=-1) == sluice.compress(b"x" * 1000)
    with sluice.open(tmp_path / "l.gz", "wb", compresslevel=9, mtime=12345) as f:
        f.write(b"level nine")
    reader = sluice.open(tmp_path / "l.gz")
    reader.close()
    assert reader.mtime == 12345  # after close too, as gzip's
    assert sluice.Error("x").index is None


def test_append_continues_the_files_own_format_and_refuses_another(tmp_path):
    """"ab" wrote gzip (the default for a name of no known suffix, or the suffix's format) after
    whatever the file held: a zstd file appended to that way read as its first part and then
    trailing garbage. The file's own format is appended; another asked for, or a file of none,
    is refused, the file as it was."""
    events = tmp_path / "events.bin"
    with sluice.open(events, "wb", format="zstd") as f:
        f.write(b"day1\n")
    with sluice.open(events, "ab") as f:
        f.write(b"day2\n")
    assert stock(["zstd", "-dc"], events.read_bytes()) == sluice.decompress(events.read_bytes()) == b"day1\nday2\n"
    before = events.read_bytes()
    os.utime(events, (1_000_000_000, 1_000_000_000))
    with pytest.raises(sluice.UsageError, match="holds a zstd stream: appending gzip") as raised:
        sluice.open(events, "ab", format="gzip")
    assert raised.value.filename == str(events) and events.read_bytes() == before
    assert os.stat(events).st_mtime == 1_000_000_000  # not even cut to its own size
    misnamed = tmp_path / "misnamed.zst"  # gzip under a zstd suffix
    misnamed.write_bytes(gzip.compress(b"a"))
    with sluice.open(misnamed, "ab") as f:
        f.write(b"b")
    assert gzip.decompress(misnamed.read_bytes()) == b"ab"
    plain = tmp_path / "notes.txt.gz"
    plain.write_bytes(b"plain text\n")
    with pytest.raises(sluice.UsageError, match="holds no compressed stream"):
        sluice.open(plain, "ab")
    assert plain.read_bytes() == b"plain text\n"
    # Told past skippable frames, which zstd and lz4 share: 100 KB of one hid an lz4 frame.
    skipped = tmp_path / "skipped.lz4"
    skipped.write_bytes(struct.pack("<II", 0x184D2A50, 100_000) + bytes(100_000) + sluice.compress(b"one\n", "lz4"))
    with sluice.open(skipped, "ab") as f:
        f.write(b"two\n")
    assert stock(["lz4", "-dc"], skipped.read_bytes()) == b"one\ntwo\n"
    empty = tmp_path / "empty.lz4"
    empty.write_bytes(b"")
    with sluice.open(empty, "ab") as f:  # nothing held: the name's format
        f.write(b"first")
    assert stock(["lz4", "-dc"], empty.read_bytes()) == b"first"


def test_append_and_exclusive_abandoned_leave_the_file_as_it_was(tmp_path):
    path = tmp_path / "log.gz"
    with sluice.open(path, "ab") as f:
        f.write(b"kept\n")
    before = path.read_bytes()
    # "ab" abandoned (an exception in the block, after 20 MB): the file as it was, not a good
    # member and a cut-off one (which made a read of the whole file raise before its first byte).
    with pytest.raises(RuntimeError):
        with sluice.open(path, "ab") as f:
            f.write(text(20_000_000))
            raise RuntimeError("stop")
    assert path.read_bytes() == before
    with sluice.open(path) as f:
        assert f.read() == b"kept\n"
    # After a flush(), what readers may have seen stays, as with "wb": cut back to the flush.
    with pytest.raises(RuntimeError):
        with sluice.open(path, "ab") as f:
            f.write(b"flushed\n")
            f.flush()
            f.write(text(1_000_000))
            raise RuntimeError("stop")
    data = path.read_bytes()
    assert data.startswith(before) and zlib.decompressobj(31).decompress(data[len(before):]) == b"flushed\n"
    path.write_bytes(before)
    # "xb" takes the name at open, as open(path, "xb") does: a second "xb" fails there, not at
    # close() after all its work; abandoned, the empty file that held the name goes.
    new = tmp_path / "new.gz"
    first = sluice.open(new, "xb")
    with pytest.raises(FileExistsError) as caught:
        sluice.open(new, "xb")
    assert caught.value.filename == str(new)
    first.write(b"mine")
    first.close()
    assert gzip.decompress(new.read_bytes()) == b"mine"
    with pytest.raises(RuntimeError):
        with sluice.open(tmp_path / "gone.gz", "xb") as f:
            f.write(b"x")
            raise RuntimeError("stop")
    assert sorted(os.listdir(tmp_path)) == ["log.gz", "new.gz"]
    # A fork child leaving the block with an exception does not remove the parent's name.
    script = textwrap.dedent(f"""
        import gzip, os, sys, sluice
        path = {str(tmp_path / "forked.gz")!r}
        with sluice.open(path, "xb") as f:
            f.write(b"parent")
            if os.fork() == 0:
                sys.exit(0)  # the child abandons its copy of the file
            os.wait()
            assert os.path.exists(path), "the child removed the name"
        print(gzip.decompress(open(path, "rb").read()).decode())
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "parent\n", done.stderr


def test_open_errors_name_the_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(sluice.compress(text(1_000_000))[:-20])
    with pytest.raises(sluice.CorruptDataError) as caught:
        with sluice.open(path) as f:
            f.read()
    assert caught.value.path == str(path) == caught.value.filename
    with pytest.raises(FileNotFoundError):
        sluice.open(tmp_path / "missing.gz")


def test_ctrl_c_stops_a_call_and_leaves_no_output(tmp_path):
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.path.dirname(os.path.dirname(sluice.__file__))!r})
        import sluice
        data = os.urandom(1 << 20) * 400
        print("ready", flush=True)
        try:
            with sluice.open({str(tmp_path / "out.gz")!r}, "wb", level=9) as f:
                while True:
                    f.write(data)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=30)
    assert out.strip() == "interrupted"
    assert os.listdir(tmp_path) == [], "neither the output nor its temporary is left"


def test_a_compressor_stopped_by_ctrl_c_raises_at_every_call_after():
    """As a Decompressor: the stream is gone (it took compress(b"abc") and returned b"")."""
    data = os.urandom(1 << 20) * 64

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    stream = sluice.Compressor(level=9)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            stream.compress(data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    for call in (lambda: stream.compress(b"abc"), lambda: stream.flush(sluice.FLUSH_SYNC), stream.flush):
        with pytest.raises(sluice.Error, match="interrupted"):
            call()


def _rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_no_leak_over_ten_thousand_calls_and_buffers_are_let_go(fmt):
    data = bytearray(text(1000))
    references = sys.getrefcount(data)
    for _ in range(1000):
        sluice.decompress(sluice.compress(data, fmt))
    settled = _rss_bytes()
    for _ in range(10000):
        sluice.decompress(sluice.compress(data, fmt))
    assert sys.getrefcount(data) == references
    data.extend(b"x")  # no buffer export is left: a bytearray can be resized again
    assert _rss_bytes() - settled < 8 * 1024 * 1024, "RSS grew over 10,000 calls"


def test_open_writes_through_a_symlink_and_keeps_a_files_permissions(tmp_path):
    target = tmp_path / "target.gz"
    target.write_bytes(b"")
    os.chmod(target, 0o600)
    link = tmp_path / "link.gz"
    link.symlink_to(target)
    with sluice.open(link, "wb") as f:
        f.write(b"through the link")
    assert link.is_symlink() and gzip.decompress(target.read_bytes()) == b"through the link"
    with sluice.open(target, "wb") as f:
        f.write(b"replaced")
    assert oct(os.stat(target).st_mode & 0o777) == oct(0o600)
    assert sorted(os.listdir(tmp_path)) == ["link.gz", "target.gz"]
    # Written in place (through a symlink, or a file with other links), an output abandoned
    # before its first bytes leaves the old contents: they were cut at open, and lost.
    os.link(target, tmp_path / "other.gz")
    for name in ("link.gz", "other.gz"):
        with pytest.raises(KeyError):
            with sluice.open(tmp_path / name, "wb") as f:
                f.write(b"new")
                raise KeyError
        assert gzip.decompress(target.read_bytes()) == b"replaced", name
    with sluice.open(tmp_path / "other.gz", "wb", format="zstd") as f:  # shorter: nothing old after it
        f.write(b"n")
    assert stock(["zstd", "-dc"], target.read_bytes()) == b"n"
    with sluice.open(link, "wb", format="zstd") as f:  # a flush says the file holds what was written
        f.flush()
        assert target.read_bytes() == b""
    assert stock(["zstd", "-dc"], target.read_bytes()) == b""


def test_a_read_error_comes_after_the_data_before_it(tmp_path):
    data = text(300_000)
    path = tmp_path / "garbage.gz"
    path.write_bytes(gzip.compress(data) + b"garbage!")
    with sluice.open(path) as f:
        assert f.read(1000) == data[:1000]
        assert f.read(len(data) - 1000) == data[1000:]
        with pytest.raises(sluice.TrailingGarbageError):
            f.read()
        with pytest.raises(sluice.TrailingGarbageError):
            f.read(1)


def test_compress_files_and_back_with_progress(tmp_path):
    rng = random.Random(5)
    paths = []
    for i in range(12):
        path = tmp_path / f"f{i}.log"
        path.write_bytes(text(rng.choice([0, 100, 300_000, 3_000_000]), i))
        paths.append(str(path))
    seen = []
    results = sluice.compress_files(paths, progress=seen.append)
    assert [r.input for r in results] == paths and all(r.ok for r in results)
    assert sorted(r.input for r in seen) == sorted(paths)
    for path in paths:
        assert gzip.decompress(open(path + ".gz", "rb").read()) == open(path, "rb").read()
    out = tmp_path / "out"
    back = sluice.decompress_files([p + ".gz" for p in paths] + [paths[0]], output_dir=out)
    assert [r.ok for r in back] == [True] * len(paths) + [False]
    assert isinstance(back[-1].error, sluice.UsageError)
    for path in paths:
        assert (out / os.path.basename(path)).read_bytes() == open(path, "rb").read()
    again = sluice.compress_files(paths[:1])  # the output exists: a failed item, nothing raised
    assert not again[0].ok and again[0].error is not None


def test_a_progress_callback_that_raises_stops_the_batch_and_one_path_is_refused(tmp_path):
    paths = []
    for i in range(30):
        path = tmp_path / f"f{i}"
        path.write_bytes(text(300_000, i))
        paths.append(str(path))
    calls = []

    def broken(result):
        calls.append(result)
        raise RuntimeError("the progress bar broke")

    with pytest.raises(RuntimeError, match="progress bar broke"):
        sluice.compress_files(paths, remove_inputs=True, progress=broken, threads=2)
    assert len(calls) == 1
    # Stopped: the files in flight with the first may be written (and their inputs removed): up to
    # 8 with two threads, more on a loaded machine, where the callback may wait for the GIL while
    # the workers go on; but not all of them, and each file either done or untouched.
    inputs = [p for p in paths if os.path.exists(p)]
    assert inputs, "every file went on after the callback raised"
    assert all(os.path.exists(p) != os.path.exists(p + ".gz") for p in paths)
    # A str is one path, not an iterable of one-letter paths (they were compressed and removed).
    with pytest.raises(TypeError, match="list of paths"):
        sluice.compress_files(paths[0])
    with pytest.raises(TypeError, match="list of paths"):
        sluice.decompress_files(pathlib.Path(paths[0]))


def test_decompress_files_reports_each_failure(tmp_path):
    good = tmp_path / "good.zst"
    good.write_bytes(sluice.compress(b"fine", "zstd"))
    bad = tmp_path / "bad.zst"
    bad.write_bytes(b"not zstd at all")
    results = sluice.decompress_files([bad, good])
    assert [r.status for r in results] == ["failed", "done"]
    assert isinstance(results[0].error, sluice.CorruptDataError) and results[0].error.path == str(bad)
    assert (tmp_path / "good").read_bytes() == b"fine" and not (tmp_path / "bad").exists()
    # A name without a suffix: not there is what is wrong first (it said "unknown suffix"), as
    # `sluice -d missing` says; there, the suffix is.
    (tmp_path / "plain").write_bytes(b"x")
    missing, plain = sluice.decompress_files([tmp_path / "missing", tmp_path / "plain"])
    assert isinstance(missing.error, FileNotFoundError) and isinstance(missing.error, sluice.Error)
    assert str(missing.error) == f"{tmp_path / 'missing'}: cannot open: No such file or directory"
    assert isinstance(plain.error, sluice.UsageError) and "unknown suffix" in str(plain.error)


def test_a_batch_in_an_unknown_format_is_a_usage_error(tmp_path):
    """compress_files(format="zip") raised a bare ValueError, where compress() raises UsageError."""
    (tmp_path / "a").write_bytes(b"a")
    with pytest.raises(sluice.UsageError, match="unknown format 'zip'"):
        sluice.compress_files([tmp_path / "a"], format="zip")
    assert os.listdir(tmp_path) == ["a"]


def test_a_batch_never_writes_one_output_twice_nor_over_another_input(tmp_path):
    """output_dir takes base names: a/x.log and b/x.log both went to out/x.log.gz, both 'done',
    and with remove_inputs both inputs were removed, b's data lost. x.gz.gz decoded over x.gz
    while x.gz was an input of the same batch, the outcome up to the threads. The first keeps
    the output; the other fails, named, its input kept."""
    for name, data in (("a/x.log", b"AAAA"), ("b/x.log", b"BBBB")):
        (tmp_path / name).parent.mkdir()
        (tmp_path / name).write_bytes(data)
    seen = []
    results = sluice.compress_files([tmp_path / "a/x.log", tmp_path / "b/x.log"], output_dir=tmp_path / "out",
                                    overwrite=True, remove_inputs=True, progress=seen.append)
    assert [r.status for r in results] == ["done", "failed"] and len(seen) == 2
    assert isinstance(results[1].error, sluice.UsageError) and results[1].error.path == str(tmp_path / "b/x.log")
    assert f"its output {tmp_path / 'out/x.log.gz'} is also that of {tmp_path / 'a/x.log'}" in str(results[1].error)
    assert gzip.decompress((tmp_path / "out/x.log.gz").read_bytes()) == b"AAAA"
    assert (tmp_path / "b/x.log").read_bytes() == b"BBBB"
    (tmp_path / "x.gz").write_bytes(gzip.compress(b"inner"))
    (tmp_path / "x.gz.gz").write_bytes(gzip.compress(gzip.compress(b"outer")))
    results = sluice.decompress_files([tmp_path / "x.gz.gz", tmp_path / "x.gz", tmp_path / "plain"], overwrite=True)
    assert [r.status for r in results] == ["failed", "done", "failed"]
    assert "is an input of the same batch" in str(results[0].error)
    assert (tmp_path / "x").read_bytes() == b"inner"
    assert gzip.decompress(gzip.decompress((tmp_path / "x.gz.gz").read_bytes())) == b"outer"
    # The same file spelt through a link to its directory (a second reader lost NEW this way).
    (tmp_path / "here").symlink_to(".")
    (tmp_path / "x").unlink()
    results = sluice.decompress_files([tmp_path / "x.gz.gz", tmp_path / "here/x.gz"], overwrite=True,
                                      remove_inputs=True)
    assert [r.status for r in results] == ["failed", "done"]
    assert (tmp_path / "x").read_bytes() == b"inner" and (tmp_path / "x.gz.gz").exists()


def test_a_new_files_mode_is_read_without_setting_the_umask(tmp_path, monkeypatch):
    """os.umask(0) to read the mask left, until it was set back, a window in which other threads'
    new files and directories got no mask: a private directory came out 0o777."""
    import sluice.tar
    old = os.umask(0o027)
    try:
        def refused(mask):
            raise AssertionError("the umask was set")
        monkeypatch.setattr(os, "umask", refused)
        with sluice.open(tmp_path / "new.gz", "wb") as f:
            f.write(b"x")
        with sluice.tar.open(tmp_path / "new.tar") as w:
            w.add(tmp_path / "new.gz", "new.gz")
    finally:
        monkeypatch.undo()
        os.umask(old)
    for name in ("new.gz", "new.tar"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640, name


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_open_seek_and_tell_match_the_data_forward_and_backward(tmp_path, fmt):
    data = text(3 * 1024 * 1024 + 11, 77)
    path = tmp_path / f"s.{fmt}"
    path.write_bytes(sluice.compress(data, fmt, chunk_size=CHUNK))
    rng = random.Random(5)
    with sluice.open(path, "rb") as f, open(path, "rb") as raw:
        assert f.seekable()
        for _ in range(25):
            where = rng.randrange(0, len(data) + 10)
            assert f.seek(where) == min(where, len(data))
            assert f.tell() == min(where, len(data))
            assert f.read(1000) == data[where:where + 1000]
        assert f.seek(-500, io.SEEK_CUR) == f.tell()
        assert f.read(10) == data[f.tell() - 10:f.tell()]
        # From the end, as gzip.open: decoded to the end first for the size.
        assert f.seek(0, io.SEEK_END) == len(data) and f.read() == b""
        assert f.seek(-22, io.SEEK_END) == len(data) - 22 and f.read() == data[-22:]
        assert f.seek(10, io.SEEK_END) == len(data)
        f.seek(7)
        with pytest.raises(ValueError):  # refused where it was (it left the file at the end)
            f.seek(-len(data) - 1, io.SEEK_END)
        assert f.tell() == 7 and f.read(3) == data[7:10]
        assert f.seek(-len(data), io.SEEK_END) == 0 and f.read(7) == data[:7]
        with pytest.raises(ValueError):
            f.seek(-1)
        # A file object positioned past other bytes: seek(0) is the start of the stream in it.
        raw.seek(0)
        prefix = b"not part of the stream"
        wrapped = io.BytesIO(prefix + raw.read())
        wrapped.seek(len(prefix))
        with sluice.open(wrapped, "rb") as g:
            assert g.read(100) == data[:100]
            assert g.seek(5) == 5 and g.read(5) == data[5:10]


def test_zipfile_reads_a_zip_in_a_gz_through_open(tmp_path):
    """zipfile seeks from the end for its directory, then back to the members."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.txt", text(200_000, 3))
        archive.writestr("b.txt", b"bee")
    (tmp_path / "z.zip.gz").write_bytes(sluice.compress(inner.getvalue(), chunk_size=CHUNK))
    with sluice.open(tmp_path / "z.zip.gz") as f, zipfile.ZipFile(f) as archive:
        assert archive.namelist() == ["a.txt", "b.txt"]
        assert archive.read("b.txt") == b"bee" and archive.read("a.txt") == text(200_000, 3)


def test_open_seek_backward_on_a_pipe_is_refused_forward_works():
    data = text(500_000, 8)
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as w:
        threading.Thread(target=lambda: (w.write(sluice.compress(data)), w.close())).start()
        with os.fdopen(read_end, "rb") as r, sluice.open(r, "rb") as f:
            assert not f.seekable()
            assert f.seek(1000) == 1000 and f.read(10) == data[1000:1010]
            with pytest.raises(io.UnsupportedOperation):
                f.seek(0)


@pytest.mark.parametrize("fmt", ["gzip", "zstd"])
def test_reading_a_bomb_with_open_keeps_memory_bounded(tmp_path, fmt):
    """1 GiB of zeros in about a megabyte: read in 1 MiB pieces, peak RSS grows by tens of MiB
    (the graph's pieces and the bounded pipe), not by the gigabyte."""
    path = tmp_path / f"bomb.{fmt}"
    with sluice.open(path, "wb", format=fmt) as f:
        zeros = bytes(16 << 20)
        for _ in range(64):
            f.write(zeros)
    assert path.stat().st_size < 2 << 20
    script = textwrap.dedent(f"""
        import resource, sluice
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        total = 0
        with sluice.open({str(path)!r}, "rb") as f:
            while True:
                piece = f.read(1 << 20)
                if not piece:
                    break
                total += len(piece)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(total, grown)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert int(out[0]) == 1 << 30
    assert int(out[1]) < 160 * 1024, f"peak RSS grew by {int(out[1]) // 1024} MiB"


class _Failing(io.RawIOBase):
    """A readable file object whose reads fail after `good` bytes, with its own exception."""

    def __init__(self, data, good):
        self._data = io.BytesIO(data)
        self._good = good

    def readable(self):
        return True

    def readinto(self, target):
        if self._data.tell() >= self._good:
            raise ConnectionResetError("the peer went away")
        n = self._data.readinto(memoryview(target)[: self._good - self._data.tell()])
        return n


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_a_file_objects_own_exception_comes_through_reading(fmt):
    data = text(3_000_000, 4)
    packed = sluice.compress(data, fmt, chunk_size=CHUNK)
    for size in (100_000, 1 << 20):  # reads that gather many of the stream's pieces: none is lost
        with sluice.open(_Failing(packed, len(packed) // 2), "rb") as f:
            got = b""
            with pytest.raises(ConnectionResetError):
                while True:
                    piece = f.read(size)
                    if not piece:
                        break
                    got += piece
            assert data.startswith(got) and f.tell() == len(got)
    # read() of all: the file object's error, and what decoded before it kept for the next reads,
    # in place (a stream long enough for the reader to give pieces before the error comes).
    data = text(12_000_000, 4)
    packed = sluice.compress(data, fmt, chunk_size=CHUNK)
    with sluice.open(_Failing(packed, len(packed) * 4 // 5), "rb") as f:
        head = f.read(1000)
        with pytest.raises(ConnectionResetError):
            f.read()
        assert f.tell() == 1000
        rest = b""
        with pytest.raises(sluice.Error, match="ConnectionResetError"):
            while piece := f.read(1 << 20):
                rest += piece
        assert len(rest) > 0 and data.startswith(head + rest)
    with pytest.raises(ConnectionResetError):
        sluice.tar.list(_Failing(packed, 10))


def test_lines_and_read_all_raise_on_a_truncated_file_never_end_quietly(tmp_path):
    data = b"".join(b"line %d\n" % i for i in range(200_000))
    path = tmp_path / "cut.gz"
    packed = sluice.compress(data, chunk_size=CHUNK)
    path.write_bytes(packed[: len(packed) // 2])
    with sluice.open(path, "rt") as f, pytest.raises(sluice.CorruptDataError):
        for _ in f:
            pass
    # Binary lines: the whole lines that decoded before the error, then the error, as gzip.open
    # gives them (the line the error cut is not one; read() still has its bytes).
    for how in ("iteration", "readline", "readline(size)", "readlines(hint)"):
        seen = []
        with sluice.open(path) as f:
            with pytest.raises(sluice.CorruptDataError):
                if how == "iteration":
                    seen.extend(f)
                elif how == "readline":
                    seen.extend(iter(f.readline, b""))
                elif how == "readline(size)":
                    seen.extend(iter(lambda: f.readline(1 << 20), b""))
                else:
                    while lines := f.readlines(1 << 20):
                        seen.extend(lines)
            assert len(seen) > 1000 and all(line.endswith(b"\n") for line in seen), how
            assert data.startswith(b"".join(seen))
            cut = f.read(100)
            assert cut and b"\n" not in cut and data[len(b"".join(seen)):].startswith(cut), how
            with pytest.raises(sluice.CorruptDataError):
                f.readline()
    with sluice.open(path) as f, pytest.raises(sluice.CorruptDataError):
        f.readlines()
    with sluice.open(path) as f:
        with pytest.raises(sluice.CorruptDataError):
            f.read()
        assert f.read(10) == data[:10]  # what decoded before the error is still there, first
        with pytest.raises(sluice.CorruptDataError):
            f.read()
    with sluice.open(path) as f:  # a read past the error: what decoded before it, then the error
        assert f.read(7) == data[:7]
        head = f.read(len(data))
        assert 0 < len(head) < len(data) - 7 and data[7:].startswith(head)
        with pytest.raises(sluice.CorruptDataError):
            f.read(1)
        with pytest.raises(sluice.CorruptDataError):
            f.readline()


class _ReadOnly:
    """A file object with read() and nothing else (a StreamingBody, say)."""

    def __init__(self, data):
        self._data = io.BytesIO(data)

    def read(self, size=-1):
        return self._data.read(min(size, 7777) if size >= 0 else size)


def test_a_file_object_with_only_read_is_read():
    data = text(2_000_000, 12)
    with sluice.open(_ReadOnly(sluice.compress(data, "zstd", chunk_size=CHUNK))) as f:
        assert f.read() == data


@pytest.mark.parametrize("call", ["pipeline", "plain-tar"])
def test_ctrl_c_stops_a_pipeline_and_a_plain_tar_within_their_one_output(tmp_path, call):
    # One big input: the run must stop inside its only output, not after it, and publish nothing.
    big = tmp_path / "in" / "big.bin"
    big.parent.mkdir()
    with open(big, "wb") as f:
        block = os.urandom(1 << 20)
        for _ in range(400):
            f.write(block)
    out = tmp_path / "out"
    out.mkdir()
    pipeline = (f'[input]\npaths = [{str(big)!r}]\n[[stage]]\nkind = "compress"\ncodec = "gzip"\nlevel = 9\n'
                f'[output]\ndirectory = {str(out)!r}\n')
    work = {
        "pipeline": f"sluice.run_pipeline({pipeline!r})",
        "plain-tar": f"sluice.tar.create({str(out / 'a.tar')!r}, [{str(big)!r}] * 40)",
    }[call]
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {os.path.dirname(os.path.dirname(sluice.__file__))!r})
        import sluice, sluice.tar
        print("ready", flush=True)
        started = time.monotonic()
        try:
            {work}
            print("finished", flush=True)
        except KeyboardInterrupt:
            print("interrupted", round(time.monotonic() - started, 1), flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    out_text, _ = process.communicate(timeout=60)
    assert out_text.split()[0] == "interrupted", out_text
    assert time.monotonic() - sent < 3, "the run went on after Ctrl-C"
    assert os.listdir(out) == [], "neither the output nor its temporary is left"


# ---- What a second reader met (2026-12-04) ----

def test_bad_write_settings_are_errors_at_open_not_at_close(tmp_path):
    for settings in ({"level": 99}, {"threads": -3}, {"chunk_size": 5}, {"bogus": "1"}):
        with pytest.raises(sluice.UsageError):
            sluice.open(tmp_path / "x.gz", "wb", **settings)
        assert os.listdir(tmp_path) == [], settings  # no temporary left either


@pytest.mark.parametrize("mode", ["wb", "wt"])
def test_an_exception_in_a_with_block_publishes_nothing(tmp_path, mode):
    path = tmp_path / "p.gz"
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error):
            with sluice.open(path, mode) as f:
                f.write(b"partial" if mode == "wb" else "partial")
                raise error()
        assert os.listdir(tmp_path) == []
    # A file object gets no end of stream: no reader takes what it holds for complete.
    target = io.BytesIO()
    with pytest.raises(RuntimeError):
        with sluice.open(target, "wb") as f:
            f.write(text(300_000))
            raise RuntimeError()
    if target.getvalue():
        with pytest.raises(EOFError):
            gzip.decompress(target.getvalue())
    # Without an exception, as before.
    with sluice.open(path, mode) as f:
        f.write(b"whole" if mode == "wb" else "whole")
    assert gzip.decompress(path.read_bytes()) == b"whole"


def test_a_generator_closed_a_task_cancelled_or_sys_exit_in_a_with_block_publish_nothing(tmp_path):
    path = tmp_path / "rows.gz"

    def sink():
        with sluice.open(path, "wt") as f:
            while True:
                f.write((yield))

    rows = sink()
    next(rows)
    rows.send("row 1\n")
    rows.close()  # GeneratorExit inside the block: the writer did not finish
    with pytest.raises(SystemExit):
        with sluice.open(path, "wb") as f:
            f.write(b"before exit")
            sys.exit(0)

    async def cancelled_writer():
        with sluice.open(path, "wb") as f:
            f.write(b"partial")
            await asyncio.sleep(10)

    async def cancel_it():
        task = asyncio.create_task(cancelled_writer())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_it())
    assert os.listdir(tmp_path) == []


# Files left open: a normal exit closes them as the interpreter closes gzip.open's (the text layer
# first: the text it holds is written); a program that ends on an uncaught exception or Ctrl-C
# abandons them, as a `with` block's exception does (they were put in place, half-written).
_LEFT_OPEN = textwrap.dedent("""
    import gzip, io, logging, logging.handlers, os, signal, sys, tarfile, time
    import sluice  # after logging, as programs import them: logging's exit handler runs after sluice's
    directory, how = sys.argv[1], sys.argv[2]
    b = sluice.open(os.path.join(directory, "binary.gz"), "wb")
    b.write(b"binary\\n" * 100_000)
    t = sluice.open(os.path.join(directory, "text.gz"), "wt")
    t.write("text\\n" * 3)
    own = io.TextIOWrapper(sluice.open(os.path.join(directory, "own.gz"), "wb"))  # a layer of its own
    own.write("own\\n")
    log = logging.getLogger("left open")
    log.addHandler(logging.handlers.MemoryHandler(100, target=logging.StreamHandler(
        sluice.open(os.path.join(directory, "log.gz"), "wt"))))
    log.warning("held by the memory handler")
    archives = [sluice.tar.open(os.path.join(directory, name)) for name in ("plain.tar", "packed.tar.gz")]
    for archive in archives:
        entry = tarfile.TarInfo("entry")
        entry.size = 5
        archive.addfile(entry, io.BytesIO(b"entry"))
    if how == "console":  # a line typed into a console of the program's own fails; it goes on
        import code
        code.InteractiveInterpreter().runsource("1 / 0")
    if how == "after interact":  # code.interact() leaves sys.ps1 set; the program then fails
        sys.ps1 = ">>> "
        raise RuntimeError("the job failed")
    if how == "error":
        raise RuntimeError("the job failed")
    if how == "ctrl-c":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
    if how == "handled":  # as pytest keeps a failed test's error, and GUI toolkits a callback's
        sys.last_value = RuntimeError("handled")
    if how == "reported":  # a handled error reported through the hook (a thread's, say)
        try:
            1 / 0
        except ZeroDivisionError:
            sys.excepthook(*sys.exc_info())
    if how == "replaced hook":  # a traceback printer of its own that does not call the one before
        sys.excepthook = lambda kind, value, traceback: print("crashed:", value)
        raise RuntimeError("the job failed")
    if how == "layer fails":  # the text a layer holds cannot be written: the output is not whole
        class Failing(io.TextIOWrapper):
            def flush(self):
                raise OSError("cannot flush")
        failing = Failing(sluice.open(os.path.join(directory, "failing.gz"), "wb"))
        failing.write("held")
    if how == "retried":  # a failed attempt kept (its error, say) while the retry wrote the name
        failed = sluice.open(os.path.join(directory, "retried.gz"), "wb")
        failed.write(b"partial")
        with gzip.open(os.path.join(directory, "retried.gz"), "wb") as retry:
            retry.write(b"whole")
""")


@pytest.mark.parametrize("how", ["normal", "handled", "reported", "retried", "layer fails", "console", "error",
                                 "ctrl-c", "replaced hook", "after interact"])
def test_files_left_open_at_exit_are_kept_only_when_the_program_ends_well(tmp_path, how):
    done = subprocess.run([sys.executable, "-W", "always::ResourceWarning", "-c", _LEFT_OPEN, str(tmp_path), how],
                          capture_output=True, text=True, timeout=60)
    if how in ("normal", "handled", "reported", "retried", "layer fails", "console"):
        assert done.returncode == 0, done.stderr
        assert gzip.decompress((tmp_path / "binary.gz").read_bytes()) == b"binary\n" * 100_000
        assert gzip.decompress((tmp_path / "text.gz").read_bytes()) == b"text\n" * 3
        assert gzip.decompress((tmp_path / "own.gz").read_bytes()) == b"own\n"
        assert gzip.decompress((tmp_path / "log.gz").read_bytes()) == b"held by the memory handler\n"
        for name in ("plain.tar", "packed.tar.gz"):
            with tarfile.open(tmp_path / name) as archive:
                assert archive.extractfile("entry").read() == b"entry"
        assert not [name for name in os.listdir(tmp_path) if name.startswith(".sluice-")]
        if how == "retried":
            assert gzip.decompress((tmp_path / "retried.gz").read_bytes()) == b"whole"
            assert "took its name" in done.stderr
        assert not (tmp_path / "failing.gz").exists()
    else:
        assert done.returncode == (-signal.SIGINT if how == "ctrl-c" else 1), done.stderr
        assert os.listdir(tmp_path) == []


# A daemon thread in sluice calls while the interpreter finalizes: an object's finalizer that
# sleeps in the module's teardown lets it try to take the GIL back then (Python 3.11 ends such a
# thread with pthread_exit, which aborted the process when it unwound through sluice's frames).
_DAEMON_AT_EXIT = textwrap.dedent("""
    import io, os, sys, threading, time
    import sluice, sluice.tar
    directory, work = sys.argv[1], sys.argv[2]
    data = os.urandom(1 << 16) * 16
    packed = sluice.compress(data, "gzip", 1)
    paths = []
    for i in range(100):
        paths.append(os.path.join(directory, f"in{i}"))
        with open(paths[-1], "wb") as f:
            f.write(os.urandom(1000) * 20)
    sluice.tar.create(os.path.join(directory, "tree.tar"), paths[:50])

    def calls():
        sluice.compress(data, "gzip", 1, threads=2)

    def file_objects():  # the graph's threads call the file object
        with sluice.open(io.BytesIO(packed), "rb", threads=2) as f:
            while f.read(1 << 16):
                pass

    def callbacks():  # the batch's threads call progress
        sluice.compress_files(paths, output_dir=os.path.join(directory, "out"), overwrite=True,
                              progress=lambda result: None)

    def callbacks_in_python():  # a callback that is inside Python code (sleeping) at the end
        sluice.tar.extract(os.path.join(directory, "tree.tar"), os.path.join(directory, "x"),
                           on_entry=lambda entry: time.sleep(0.01))

    def file_object_list():  # a plain file object read by the library's threads
        with open(os.path.join(directory, "tree.tar"), "rb") as f:
            sluice.tar.list(f)

    def loop():
        while True:
            globals()[work]()

    class Late:
        def __init__(self):
            self.sleep = time.sleep
        def __del__(self):
            self.sleep(0.3)

    late = Late()
    threading.Thread(target=loop, daemon=True).start()
    time.sleep(0.2)
    print("done", flush=True)
""")


@pytest.mark.parametrize("work", ["calls", "file_objects", "callbacks", "callbacks_in_python", "file_object_list"])
def test_a_daemon_thread_inside_sluice_when_the_interpreter_ends_does_not_abort_it(tmp_path, work):
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", _DAEMON_AT_EXIT, str(tmp_path), work], capture_output=True,
                              text=True, timeout=60)
        assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr
        assert "terminate" not in done.stderr and "Fatal" not in done.stderr


def test_sluice_in_an_atexit_callback_after_its_own_still_works(tmp_path):
    script = textwrap.dedent("""
        import atexit, io, os, sys, threading
        def late():  # registered before sluice is imported: runs after sluice's own exit hooks
            import sluice
            data = os.urandom(1 << 20) * 4
            packed = io.BytesIO()
            with sluice.open(packed, "wb", threads=2) as f:  # the graph's threads write to it
                f.write(data)
            with sluice.open(io.BytesIO(packed.getvalue()), "rb", threads=2) as f:
                assert f.read() == data
            with sluice.open(io.BytesIO(sluice.compress(packed.getvalue()))) as outer:  # a read that is a call
                with sluice.open(outer) as inner:
                    assert inner.read() == data
            seen = []
            sluice.compress_files([sys.argv[1]], output_dir=sys.argv[2], progress=seen.append)
            nested = []  # a callback that calls sluice, on the batch's thread
            sluice.compress_files([sys.argv[1]], output_dir=sys.argv[2], overwrite=True,
                                  progress=lambda result: nested.append(len(sluice.compress(b"y" * 100_000))))
            got = []
            thread = threading.Thread(target=lambda: got.append(sluice.decompress(sluice.compress(data))))
            thread.start()  # a thread started now, and joined
            thread.join()
            print("late", len(seen), seen[0].ok, len(nested), got == [data], flush=True)
        atexit.register(late)
        import sluice
    """)
    (tmp_path / "in").write_bytes(os.urandom(1 << 20) * 2)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "in"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "late 1 True 1 True\n", "")


def test_a_fork_child_of_a_process_with_daemon_threads_in_sluice_exits():
    """The child's copy of the exit gate is fresh: a parent thread counted as waiting for the GIL
    at the fork made the child's exit wait for it for good."""
    script = textwrap.dedent("""
        import os, sys, threading, time
        import sluice
        data = os.urandom(1 << 20) * 8  # the interruptible path: the caller polls the GIL
        def spin():
            while True:
                sluice.compress(data, level=1)
        for _ in range(2):
            threading.Thread(target=spin, daemon=True).start()
        time.sleep(0.3)
        hung = 0
        for _ in range(8):
            big = b"a" * (100 << 20)
            big.count(b"b")  # holds the GIL a while: the pollers queue up for it
            pid = os.fork()
            if pid == 0:
                sys.exit(0)
            deadline = time.time() + 10
            while not os.waitpid(pid, os.WNOHANG)[0]:
                if time.time() > deadline:
                    hung += 1
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.02)
        print("hung", hung, flush=True)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout) == (0, "hung 0\n"), done.stderr


@pytest.mark.parametrize("mode", ["wb", "wt"])
def test_a_file_dropped_unclosed_is_kept_unless_another_took_its_name_since(tmp_path, mode):
    path = tmp_path / "out.gz"
    data = b"one line\n" if mode == "wb" else "one line\n"
    sluice.open(path, mode).write(data)  # gzip.open's habit: dropped, closed, kept
    assert gzip.decompress(path.read_bytes()) == b"one line\n"

    def export():
        f = sluice.open(path, mode)
        f.write(data)
        raise RuntimeError("the export failed half way")

    with pytest.raises(RuntimeError) as kept:  # a retry loop keeps the error; its traceback, the file
        export()
    path.write_bytes(gzip.compress(b"the retry's whole output\n"))
    with pytest.warns(ResourceWarning, match="took its name"):
        del kept
        gc.collect()
    assert gzip.decompress(path.read_bytes()) == b"the retry's whole output\n"
    assert os.listdir(tmp_path) == ["out.gz"]


def test_a_text_layer_that_failed_or_was_detached_leaves_nothing_and_reports_nothing(tmp_path):
    reported = []
    hook, sys.unraisablehook = sys.unraisablehook, reported.append
    try:
        with pytest.raises(LookupError):
            sluice.open(tmp_path / "bad.gz", "wt", encoding="no-such-codec")
        detached = sluice.open(tmp_path / "detached.gz", "wt")
        binary = detached.detach()
        del detached
        gc.collect()
        binary.write(b"bytes")
        binary.close()
    finally:
        sys.unraisablehook = hook
    assert reported == []
    assert os.listdir(tmp_path) == ["detached.gz"]  # gzip.open leaves an empty bad.gz
    assert gzip.decompress((tmp_path / "detached.gz").read_bytes()) == b"bytes"


def test_flush_makes_a_file_written_by_name_visible_to_its_readers(tmp_path):
    path = tmp_path / "log.gz"
    path.write_bytes(gzip.compress(b"the previous run\n"))
    with sluice.open(path, "wt") as f:
        f.write("event 1\n")
        assert gzip.decompress(path.read_bytes()) == b"the previous run\n"  # nothing flushed yet
        f.flush()
        assert zlib.decompressobj(31).decompress(path.read_bytes()) == b"event 1\n"
        f.write("event 2\n")
    assert gzip.decompress(path.read_bytes()) == b"event 1\nevent 2\n"
    assert [name for name in os.listdir(tmp_path) if name.startswith(".sluice-")] == []


def test_a_new_file_written_by_name_has_no_name_until_it_is_published(tmp_path):
    # Killed before close(): nothing is left behind (the file had no name, as the command line's
    # new outputs have none), where a named temporary would stay.
    script = textwrap.dedent(f"""
        import os, signal, sluice
        f = sluice.open({str(tmp_path / "new.gz")!r}, "wb")
        f.write(b"x" * 3_000_000)
        print(sorted(os.listdir({str(tmp_path)!r})), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL and done.stdout.strip() == "[]", done.stderr
    assert os.listdir(tmp_path) == []
    with sluice.open(tmp_path / "new.gz", "xb") as f:  # "xb" holds the name with an empty file
        f.write(b"new")
        assert os.listdir(tmp_path) == ["new.gz"] and (tmp_path / "new.gz").stat().st_size == 0
    assert gzip.decompress((tmp_path / "new.gz").read_bytes()) == b"new"
    assert stat.S_IMODE(os.stat(tmp_path / "new.gz").st_mode) == 0o666 & ~_umask()
    # A name taken while the file was written: "wb" replaces it, as a rename would; "xb" fails.
    for mode in ("wb", "xb"):
        f = sluice.open(tmp_path / f"raced-{mode}.gz", mode)
        f.write(b"ours")
        (tmp_path / f"raced-{mode}.gz").write_bytes(b"theirs")
        if mode == "wb":
            f.close()
            assert gzip.decompress((tmp_path / "raced-wb.gz").read_bytes()) == b"ours"
        else:
            with pytest.raises(FileExistsError):
                f.close()
            assert (tmp_path / "raced-xb.gz").read_bytes() == b"theirs"
    assert sorted(os.listdir(tmp_path)) == ["new.gz", "raced-wb.gz", "raced-xb.gz"]
    # A relative name is where it was when opened, whatever the working directory is at close().
    other = tmp_path / "elsewhere"
    other.mkdir()
    here = os.getcwd()
    try:
        os.chdir(tmp_path)
        f = sluice.open("relative.gz", "wb")
        f.write(b"here")
        os.chdir(other)
        f.close()
    finally:
        os.chdir(here)
    assert gzip.decompress((tmp_path / "relative.gz").read_bytes()) == b"here" and os.listdir(other) == []


def test_writing_by_name_keeps_what_writing_in_place_keeps(tmp_path, request):
    # Another link to the file sees the new content, as after gzip.open(path, "wb").
    path, link = tmp_path / "a.gz", tmp_path / "b.gz"
    path.write_bytes(b"old")
    os.link(path, link)
    with sluice.open(path, "wb") as f:
        f.write(b"new")
    assert gzip.decompress(link.read_bytes()) == b"new" and os.stat(path).st_nlink == 2
    # Another owner's file keeps its owner, another group's its group.
    for owner, group in ((65534, 65534), (os.geteuid(), 65534)):
        other = tmp_path / f"c-{owner}.gz"
        other.write_bytes(b"old")
        os.chown(other, owner, group)
        with sluice.open(other, "wb") as f:
            f.write(b"new")
        assert gzip.decompress(other.read_bytes()) == b"new"
        assert (os.stat(other).st_uid, os.stat(other).st_gid) == (owner, group)
    # A user who may not write the file may not replace it; in a directory they may not write,
    # a file they may write is written in place.
    locked = pathlib.Path(tempfile.mkdtemp(prefix="sluice-locked-"))  # not under pytest's 0700 directory
    request.addfinalizer(lambda: shutil.rmtree(locked, ignore_errors=True))
    (locked / "ro.gz").write_bytes(b"old")
    (locked / "rw.gz").write_bytes(b"old")
    os.chmod(locked / "ro.gz", 0o444)
    os.chmod(locked / "rw.gz", 0o666)
    os.chown(locked / "rw.gz", 65534, 65534)
    os.chmod(locked, 0o755)
    script = textwrap.dedent(f"""
        import sluice
        try:
            sluice.open({str(locked / "ro.gz")!r}, "wb")
        except PermissionError as e:
            print("refused", e.filename)
        with sluice.open({str(locked / "rw.gz")!r}, "wb") as f:
            f.write(b"new")
    """)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    done = subprocess.run(as_nobody + [sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"refused {locked / 'ro.gz'}"
    assert (locked / "ro.gz").read_bytes() == b"old"
    assert gzip.decompress((locked / "rw.gz").read_bytes()) == b"new"


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_input_cut_short_is_an_eof_error_as_gzip_raises_it(tmp_path, fmt):
    packed = sluice.compress(text(300_000), fmt)
    for cut in (packed[:20], packed[: len(packed) // 2], packed[:-3]):
        with pytest.raises(EOFError) as raised:
            sluice.decompress(cut)
        assert isinstance(raised.value, sluice.CorruptDataError) and raised.value.kind == "corrupt_data"
        (tmp_path / "cut").write_bytes(cut)
        with sluice.open(tmp_path / "cut") as f, pytest.raises(sluice.TruncatedError):
            f.read()
    with pytest.raises(sluice.CorruptDataError) as raised:  # damage that is not a cut is no EOFError
        sluice.decompress(packed[:40] + bytes(64) + packed[104:])
    assert not isinstance(raised.value, EOFError)


@pytest.mark.parametrize("tool", ["zstd", "lz4"])
def test_a_one_frame_file_cut_short_gives_what_it_decodes_to_before_the_error(tmp_path, tool):
    """The stock tool's one frame, its last byte lost (a download that stopped): every byte the
    complete blocks decode to comes first, at least what the tool's -dc gives, through open(),
    a Decompressor on one thread and on two, as the README promises. open() gave nothing."""
    data = b"".join(b"line %d\n" % i for i in range(100_000))
    (tmp_path / "data").write_bytes(data)
    command = {"zstd": ["zstd", "-q", "-f", "data", "-o", "data.x"],
               "lz4": ["lz4", "-q", "-f", "-B4", "data", "data.x"]}[tool]  # lz4: blocks of 64 KiB
    subprocess.run(command, cwd=tmp_path, check=True)
    cut = (tmp_path / "data.x").read_bytes()[:-1]
    (tmp_path / "cut").write_bytes(cut)
    theirs = subprocess.run([tool, "-dc", str(tmp_path / "cut")], capture_output=True).stdout
    got = b""
    with sluice.open(tmp_path / "cut") as f, pytest.raises(sluice.TruncatedError):
        while piece := f.read(65536):
            got += piece
    assert len(got) >= len(theirs) > 0 and data.startswith(got)
    for threads in (None, 2):
        decompressor = sluice.Decompressor(threads=threads)
        out = b"".join(decompressor.decompress(cut[at:at + 65536]) for at in range(0, len(cut), 65536))
        with pytest.raises(sluice.TruncatedError) as raised:
            decompressor.flush()
        out += raised.value.output
        assert len(out) >= len(theirs) and data.startswith(out), threads


def test_a_wrong_type_is_named_without_the_data():
    """pybind11 put every argument in its message: 20 MB of data gave a 57 MB TypeError."""
    data = bytes(2_000_000)
    calls = [lambda: sluice.compress(data, threads=1.5), lambda: sluice.decompress(sluice.compress(data), threads="2"),
             lambda: sluice.compress(data, backend=5), lambda: sluice.compress(data, format=5),
             lambda: sluice.compress_many([data, "s"]), lambda: list(sluice.compress_iter([data, 7])),
             lambda: sluice.compress_many([data], format=5)]
    for call in calls:
        with pytest.raises(TypeError) as raised:
            call()
        assert len(str(raised.value)) < 200, str(raised.value)[:300]
    with pytest.raises(TypeError, match="threads"):
        sluice.compress(b"x", threads=True)
    with pytest.raises(sluice.UsageError, match="unknown codec"):  # no format: not gzip, silently
        sluice.compress(b"x", format="")
    assert sluice.compress_many([b"x"], format=None) == [sluice.compress(b"x")]
    made = [sluice.compress(b"x", format=None, level=-1), sluice.compress(b"x", format=None, mtime=5),
            sluice.compress_many([b"x"], format=None, level=-1)[0]]
    assert [sluice.decompress(m) for m in made] == [b"x"] * 3
    assert sluice.decompress(sluice.Compressor(None).flush()) == b""


def test_mtime_none_and_floats_as_gzip_takes_them():
    assert sluice.Compressor(mtime=None).flush() == sluice.Compressor().flush()  # 0, as compress()
    assert sluice.compress(b"x", mtime=1.5) == sluice.compress(b"x", mtime=1)  # time.time(), as gzip.compress
    numpy = pytest.importorskip("numpy")
    with pytest.raises(sluice.OutputLimitError):
        sluice.decompress(sluice.compress(bytes(5000)), max_output=numpy.int64(1000))


def test_level_0_is_no_default_where_a_format_has_no_level_0():
    for fmt in ("gzip", "lz4"):
        with pytest.raises(sluice.UsageError, match="not 0"):
            sluice.compress(b"data", fmt, level=0)
        with pytest.raises(sluice.UsageError, match="not 0"):
            sluice.Compressor(fmt, level=0)
    assert sluice.decompress(sluice.compress(b"data", "zstd", level=0)) == b"data"  # zstd's default, as zstd has it


def test_level_minus_1_is_the_default_only_where_a_format_has_no_level_minus_1(tmp_path):
    """zlib's Z_DEFAULT_COMPRESSION for gzip (and lz4, whose levels start at 1); zstd's -1 is its
    first fast level, as zstandard and zstd --fast=1 have it, in every call that takes a level."""
    data = text(1_000_000)
    assert sluice.compress(data, "gzip", -1) == sluice.compress(data, "gzip")
    assert sluice.compress(data, "lz4", -1) == sluice.compress(data, "lz4")
    fast = sluice.compress(data, "zstd", -1, threads=1)
    assert len(fast) > len(sluice.compress(data, "zstd", threads=1))
    assert fast == sluice.compress(data, "zstd", -1, threads=2)
    with sluice.open(tmp_path / "a.zst", "wb", level=-1, threads=1) as f:
        f.write(data)
    assert sluice.decompress((tmp_path / "a.zst").read_bytes()) == data
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_bytes(data)
    sizes = {}
    for level in (-1, None):
        sluice.tar.create(tmp_path / f"{level}.tar.zst", ["src"], directory=tmp_path, level=level, mtime=0)
        sizes[level] = (tmp_path / f"{level}.tar.zst").stat().st_size
        sluice.zip.create(tmp_path / f"{level}.zip", ["src"], directory=tmp_path, format="zstd", level=level, mtime=0)
        sizes[level, "zip"] = [m.compress_size for m in sluice.zip.list(tmp_path / f"{level}.zip")]
    assert sizes[-1] > sizes[None] and sizes[-1, "zip"] > sizes[None, "zip"]


def test_level_0_stores_zip_members_and_is_refused_for_a_gzip_tar(tmp_path):
    """sluice.zip.create(level=0) stores, as `sluice zip -0` and zip -0; a .tar.gz has no level 0,
    as sluice.compress has none (it was taken as the default)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_bytes(text(100_000))
    sluice.zip.create(tmp_path / "stored.zip", ["src/a.txt"], directory=tmp_path, level=0)
    with zipfile.ZipFile(tmp_path / "stored.zip") as archive:
        assert [(i.compress_type, i.compress_size) for i in archive.infolist()] == [(zipfile.ZIP_STORED, 100_000)]
    sluice.zip.create(tmp_path / "packed.zip", ["src/a.txt"], directory=tmp_path)
    with zipfile.ZipFile(tmp_path / "packed.zip") as archive:
        assert archive.infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    with pytest.raises(sluice.UsageError, match="gzip level must be between 1 and 9, not 0"):
        sluice.tar.create(tmp_path / "l0.tar.gz", ["src"], directory=tmp_path, level=0)
    assert not (tmp_path / "l0.tar.gz").exists()


def test_one_path_given_alone_is_refused_not_taken_letter_by_letter(tmp_path, tree):
    """A str is an iterable of its letters: "src" archived files s, r and c, members "src/a.txt"
    extracted nothing, and exclude="*.txt" left out everything, as "*"."""
    sluice.tar.create(tmp_path / "t.tar.gz", ["src"], directory=tmp_path)
    sluice.zip.create(tmp_path / "t.zip", ["src"], directory=tmp_path)
    calls = [
        lambda: sluice.tar.create(tmp_path / "one.tar.gz", "src", directory=tmp_path),
        lambda: sluice.tar.create(tmp_path / "one.tar.gz", ["src"], directory=tmp_path, exclude="*.txt"),
        lambda: sluice.tar.extract(tmp_path / "t.tar.gz", tmp_path / "out", "src/a.txt"),
        lambda: sluice.tar.extract(tmp_path / "t.tar.gz", tmp_path / "out", exclude="*.txt"),
        lambda: sluice.zip.create(tmp_path / "one.zip", "src", directory=tmp_path),
        lambda: sluice.zip.extract(tmp_path / "t.zip", tmp_path / "out", "src/a.txt"),
        lambda: sluice.zip.transcode(tmp_path / "t.zip", tmp_path / "out", exclude=b"*.txt"),
    ]
    for call in calls:
        one = r"must be a list of \w+( \w+)?, not one \('(src|src/a.txt|\*\.txt)'\): pass \["
        with pytest.raises(TypeError, match=one):
            call()
    assert sorted(os.listdir(tmp_path)) == ["src", "t.tar.gz", "t.zip"], "nothing made"


def test_a_file_object_that_only_writes_is_written_as_gzip_writes_it(tmp_path):
    """No flush() is needed (gzip.GzipFile and zstandard's stream_writer do without)."""
    class OnlyWrite:
        def __init__(self):
            self.out = io.BytesIO()

        def write(self, data):
            return self.out.write(data)

    target = OnlyWrite()
    with sluice.open(target, "wb") as f:
        f.write(b"data" * 10)
        f.flush()
    assert gzip.decompress(target.out.getvalue()) == b"data" * 10


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_text_with_a_byte_order_mark_reads_back_in_its_encoding(tmp_path, encoding):
    """TextIOWrapper writes UTF-16's and UTF-32's mark only to a stream it can seek: sluice writes
    it, as gzip.open's seekable files get it, at the start of a stream only."""
    path = tmp_path / "t.gz"
    with sluice.open(path, "wt", encoding=encoding) as f:
        f.write("hi\n")
    with gzip.open(tmp_path / "peer.gz", "wt", encoding=encoding) as f:
        f.write("hi\n")
    assert gzip.decompress(path.read_bytes()) == gzip.decompress((tmp_path / "peer.gz").read_bytes())
    with sluice.open(path, "rt", encoding=encoding) as f:
        assert f.read() == "hi\n"
    if encoding != "utf-8-sig":  # its encoder marks whatever it starts, as gzip.open's appending does
        with sluice.open(path, "at", encoding=encoding) as f:
            f.write("more\n")
        with sluice.open(path, "rt", encoding=encoding) as f:
            assert f.read() == "hi\nmore\n"
    with sluice.open(tmp_path / "new.gz", "at", encoding=encoding) as f:  # appending to nothing starts it
        f.write("hi\n")
    with open(tmp_path / "object.gz", "ab") as raw:  # so does a file object of nothing, opened to append
        with sluice.open(raw, "at", encoding=encoding) as f:
            f.write("hi\n")
    peer = gzip.decompress((tmp_path / "peer.gz").read_bytes())
    assert gzip.decompress((tmp_path / "object.gz").read_bytes()) == peer
    with sluice.open(tmp_path / "nothing.gz", "wt", encoding=encoding):  # no text, no mark (as gzip.open)
        pass
    assert gzip.decompress((tmp_path / "nothing.gz").read_bytes()) == b""
    with sluice.open(tmp_path / "new.gz", "rt", encoding=encoding) as f:
        assert f.read() == "hi\n"


def test_mode_is_gzip_files(tmp_path):
    with sluice.open(tmp_path / "a.gz", "wb") as f:
        assert f.mode == "wb"
    with sluice.open(tmp_path / "a.gz", "ab") as f:
        assert f.mode == "wb"
    with sluice.open(tmp_path / "a.gz") as f:
        assert f.mode == "rb"


def test_copying_or_pickling_a_compressor_or_decompressor_is_refused():
    """copy.copy() gave a second object over the same native stream (a call on one moved the
    other); zlib's copy their state, which sluice's cannot."""
    for stream in (sluice.Compressor(), sluice.Decompressor()):
        for copier in (copy.copy, copy.deepcopy, pickle.dumps):
            with pytest.raises(TypeError, match=f"cannot copy a sluice.{type(stream).__name__}"):
                copier(stream)
    compressor = sluice.Compressor()
    assert sluice.decompress(compressor.compress(b"still whole") + compressor.flush()) == b"still whole"


def test_settings_of_the_wrong_kind_are_plain_errors_raised_at_the_call():
    """Not pybind11's list of native signatures, and not at the first item of a generator."""
    with pytest.raises(sluice.UsageError, match="chunk_size must be a number of bytes .* not -1"):
        sluice.compress(b"a", chunk_size=-1)
    with pytest.raises(TypeError, match="level must be an int or None, not str"):
        sluice.compress(b"a", level="5")
    # 0 is taken (every core): the message says so (it said "between 1 and 1024").
    with pytest.raises(sluice.UsageError, match=r"thread count must be 0 \(every core\) or between 1 and 1024, not -1"):
        sluice.compress(b"a" * 2_000_000, threads=-1)
    with pytest.raises(TypeError, match="a bytes-like object is required, not 'str'"):
        sluice.compress("abc")
    # A strided view is taken as Compressor and SluiceFile take it (copied), not refused.
    strided = memoryview(b"abcdef" * 1000)[::2]
    assert sluice.decompress(sluice.compress(strided)) == strided.tobytes()
    packed = bytearray(2 * len(sluice.compress(b"xyz")))
    packed[::2] = sluice.compress(b"xyz")
    assert sluice.decompress(memoryview(packed)[::2]) == b"xyz"
    with pytest.raises(ValueError, match="max_in_flight"):
        sluice.compress_iter([b"a"], max_in_flight=0)
    # Integers of other kinds (numpy's) are taken as Python's calls take them: by __index__.
    class Index:
        def __init__(self, value):
            self.value = value

        def __index__(self):
            return self.value

    data = text(100_000)
    assert sluice.compress(data, "gzip", Index(6), chunk_size=Index(64 * 1024)) == \
        sluice.compress(data, "gzip", 6, chunk_size=64 * 1024)
    assert list(sluice.compress_iter([data], max_in_flight=Index(2))) == [sluice.compress(data)]
    with pytest.raises(TypeError, match="level must be an int or None, not bool"):
        sluice.compress(data, level=True)
    for mtime in (-1, 1 << 32):
        with pytest.raises(ValueError, match="mtime must be between 0 and 2\\*\\*32 - 1"):
            sluice.compress(data, mtime=mtime)
        with pytest.raises(ValueError, match="mtime must be between"):
            sluice.Compressor(mtime=mtime)
    with pytest.raises(sluice.UsageError, match="gzip level must be between 1 and 9, not 77"):
        sluice.compress_iter(iter([b"a"]), level=77)


def test_compress_takes_gzip_compress_keywords():
    """mtime= (the header's MTIME; the rest of the bytes are the same) and compresslevel= in every
    one-shot call, as gzip.compress takes them."""
    data = text(3_000_000)
    stamped = sluice.compress(data, mtime=1_234_567)
    plain = sluice.compress(data)
    assert stamped[4:8] == (1_234_567).to_bytes(4, "little") and plain[4:8] == bytes(4)
    assert stamped[:4] + stamped[8:] == plain[:4] + plain[8:]
    assert gzip.decompress(stamped) == data
    assert sluice.compress_many([data[:1000]], compresslevel=9) == sluice.compress_many([data[:1000]], level=9)
    assert list(sluice.compress_iter([data[:1000]], compresslevel=1)) == sluice.compress_many([data[:1000]], level=1)


def test_a_zip_is_written_into_a_file_being_compressed(tmp_path):
    # The output is a stream: zipfile, which probes seek() and seeks back to patch its headers
    # where it can, writes data descriptors instead (with gzip.open's files it fails).
    with sluice.open(tmp_path / "a.zip.gz", "wb") as f:
        assert not f.seekable()
        with pytest.raises(io.UnsupportedOperation):
            f.seek(0, io.SEEK_CUR)
        with zipfile.ZipFile(f, "w") as archive:
            archive.writestr("a.txt", "hi")
    with zipfile.ZipFile(io.BytesIO(gzip.decompress((tmp_path / "a.zip.gz").read_bytes()))) as archive:
        assert archive.read("a.txt") == b"hi"


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_small_writes_are_gathered_into_the_same_bytes_and_a_reused_buffer_is_taken_as_it_was(fmt):
    """Writes under 16 KiB are gathered (64 KiB) before the engine sees them: the bytes are those
    of one write, whatever the sizes around the limits, items of more than one byte included; a
    buffer the caller refills after write() is taken as it was then; flush() and close() take
    what is gathered."""
    import array
    data = text(400_000, 31)
    sizes = [1] * 50 + [120] * 600 + [16_383, 16_384, 16_385, 5, 65_535, 65_536, 2, 100_000]
    doubles = array.array("d", [0.5] * 7)  # 56 bytes; len() is 7
    expected_data = data[: sum(sizes)] + doubles.tobytes()
    out, buffer, at = io.BytesIO(), bytearray(), 0
    with sluice.open(out, "wb", format=fmt, chunk_size=CHUNK, mtime=0) as f:
        for size in sizes:
            buffer[:] = data[at:at + size]  # one buffer, refilled: each write must copy it
            assert f.write(buffer) == size
            at += size
        assert f.write(doubles) == 56
        assert f.tell() == len(expected_data)
    assert out.getvalue() == sluice.compress(expected_data, fmt, chunk_size=CHUNK)

    # Flushed after gathered writes: each flush's output decodes to everything before it.
    out = io.BytesIO()
    with sluice.open(out, "wb", format=fmt, chunk_size=CHUNK) as f:
        for i in range(300):
            f.write(b"record %d\n" % i)
            if i % 100 == 99:
                f.flush()
                reader = sluice.Decompressor(threads=1)  # all that its input decodes to, as zlib's
                assert reader.decompress(out.getvalue()) == b"".join(b"record %d\n" % k for k in range(i + 1))
        f.write(b"last")
    assert sluice.decompress(out.getvalue()) == b"".join(b"record %d\n" % k for k in range(300)) + b"last"


@pytest.mark.parametrize("fmt", ["gzip", "zstd"])
def test_small_bytes_writes_make_the_bytes_of_one_write_and_a_file_closed_refuses_them(tmp_path, fmt):
    """Small bytes (a log's records) take a shorter way through write(): the same bytes come out,
    tell() counts them, a failure of the file stops the stream, and a file closed, abandoned or
    open for reading refuses them."""
    data = text(300_000, 32)
    sizes = [1, 120, 16_383, 16_384, 5, 65_535, 7] * 3
    out, at = io.BytesIO(), 0
    with sluice.open(out, "wb", format=fmt, chunk_size=CHUNK, mtime=0) as f:
        for size in sizes:
            assert f.write(data[at:at + size]) == size
            at += size
            assert f.tell() == at
    assert out.getvalue() == sluice.compress(data[:at], fmt, chunk_size=CHUNK)
    with pytest.raises(ValueError, match="closed"):
        f.write(b"late")

    with pytest.raises(RuntimeError):
        with sluice.open(tmp_path / f"abandoned.{fmt}", "wb", format=fmt) as g:
            g.write(b"x")
            raise RuntimeError
    with pytest.raises(ValueError, match="closed"):
        g.write(b"late")
    assert not (tmp_path / f"abandoned.{fmt}").exists()

    class Full(io.BytesIO):
        def write(self, b):
            raise OSError(errno.ENOSPC, "No space left on device")

    full = sluice.open(Full(), "wb", format=fmt, chunk_size=CHUNK)
    with pytest.raises(OSError, match="No space"):
        for _ in range(20_000):
            full.write(b"y" * 100)
        full.close()
    assert full.closed
    with pytest.raises(ValueError, match="closed"):
        full.write(b"late")

    with sluice.open(io.BytesIO(out.getvalue())) as r, pytest.raises(io.UnsupportedOperation):
        r.write(b"x")


def test_mtime_fileno_and_rewind_as_gzip_files_have_them(tmp_path):
    """mtime: the gzip header's (written: the one given; read: the first member's, whoever wrote
    it, by name, from a file object or a pipe; None for zstd); fileno(): the file's descriptor;
    rewind(): back to the start when reading."""
    path = tmp_path / "m.gz"
    with sluice.open(path, "wb", mtime=1_234_567) as f:
        assert f.mtime == 1_234_567
        assert stat.S_ISREG(os.fstat(f.fileno()).st_mode)
        f.write(b"hello world")
    with gzip.open(path) as g:
        g.read()
        assert g.mtime == 1_234_567
    with sluice.open(path) as f:
        assert f.mtime == 1_234_567
        assert os.fstat(f.fileno()).st_ino == os.stat(path).st_ino
        assert f.read(5) == b"hello"
        f.rewind()
        assert f.read() == b"hello world"
    with open(path, "rb") as raw, sluice.open(raw) as f:
        assert f.mtime == 1_234_567 and f.fileno() == raw.fileno() and f.read() == b"hello world"
    # Of the file opened, whatever takes its name later (they were read by name again).
    (tmp_path / "other.gz").write_bytes(gzip.compress(b"other", mtime=999))
    opened = os.stat(path).st_ino
    with sluice.open(path) as f:
        os.replace(tmp_path / "other.gz", path)
        assert f.mtime == 1_234_567 and os.fstat(f.fileno()).st_ino == opened
        assert f.read() == b"hello world"
    # Reading goes on from that file too, back to its start (it was opened by name again): a
    # stream larger than one read, started, then its name taken and the file read again.
    big = text(2_000_000, 33)
    with sluice.open(path, "wb", mtime=1_234_567) as f:
        f.write(big)
    with sluice.open(path) as f:
        assert f.read(300_000) == big[:300_000]
        (tmp_path / "new.gz").write_bytes(gzip.compress(b"new"))
        os.replace(tmp_path / "new.gz", path)
        f.seek(0)
        assert f.read() == big
    with sluice.open(path, "wb", mtime=1_234_567) as f:
        f.write(b"hello world")

    class Trickle(io.RawIOBase):  # a seekable file that reads 3 bytes at a time
        def __init__(self, data):
            self._data = io.BytesIO(data)

        def readable(self):
            return True

        def seekable(self):
            return True

        def readinto(self, b):
            return self._data.readinto(memoryview(b)[:3])

        def seek(self, offset, whence=io.SEEK_SET):
            return self._data.seek(offset, whence)

        def tell(self):
            return self._data.tell()

    with sluice.open(Trickle(path.read_bytes())) as f:
        assert f.mtime == 1_234_567 and f.read() == b"hello world"
    read_end, write_end = os.pipe()
    os.write(write_end, path.read_bytes())
    os.close(write_end)
    with os.fdopen(read_end, "rb") as r, sluice.open(r) as f:
        assert f.read() == b"hello world" and f.mtime == 1_234_567
    # gzip's own: the input file's time in the header.
    (tmp_path / "t.txt").write_bytes(b"text")
    os.utime(tmp_path / "t.txt", (1_000_000_000, 1_000_000_000))
    subprocess.run(["gzip", "-k", str(tmp_path / "t.txt")], check=True)
    with sluice.open(tmp_path / "t.txt.gz") as f:
        assert f.mtime == 1_000_000_000
    assert sluice.open(io.BytesIO(gzip.compress(b"x", mtime=42))).mtime == 42
    with sluice.open(tmp_path / "m.zst", "wb", format="zstd") as f:
        assert f.mtime is None
        f.write(b"z")
        with pytest.raises(OSError, match="rewind"):
            f.rewind()
    with sluice.open(tmp_path / "m.zst") as f:
        assert f.mtime is None and f.read() == b"z"


def test_a_reader_alive_after_close_leaves_the_next_file_with_its_number_alone(tmp_path):
    """A read error's traceback keeps the run's reader alive after close(), until the garbage
    collector finds the cycle; by then the descriptor number the file held may be another file's.
    The reader reads a duplicate of its own: it used to seek the number it was given back to where
    it stopped, moving a file that something else was writing (a tarfile, in CI)."""
    blob = bytearray(gzip.compress(text(3_000_000, 41)))
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / "bad.gz").write_bytes(blob)
    gc.disable()  # the cycle is collected below, after the number is taken again
    try:
        f = sluice.open(tmp_path / "bad.gz")
        number = f.fileno()
        with pytest.raises(sluice.CorruptDataError):
            f.read()
        f.close()
        victim = os.open(tmp_path / "victim", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC)
        if victim != number:  # the lowest free number is usually the one just closed
            os.dup2(victim, number)
            os.close(victim)
        os.write(number, b"x" * 5000)
        del f
        gc.collect()
        os.write(number, b"y")
        os.close(number)
    finally:
        gc.enable()
    assert (tmp_path / "victim").read_bytes() == b"x" * 5000 + b"y"


def _descriptors_on(path) -> list[int]:
    """This process's descriptors open on `path` (also once it is unlinked)."""
    found = []
    for number in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{number}")
        except OSError:
            continue
        if target in (str(path), f"{path} (deleted)"):
            found.append(int(number))
    return found


def test_mtime_does_not_wait_for_a_read_blocked_in_a_pipe():
    a, b = socket.socketpair()
    payload = gzip.compress(b"first\n" * 1000, mtime=1_234_567)
    b.sendall(payload[:20])  # the header, then nothing for now
    f = sluice.open(a.makefile("rb"))
    read = []
    reader = threading.Thread(target=lambda: read.append(f.read()), daemon=True)  # blocked, holding the lock
    reader.start()
    got = []

    def ask():
        deadline = time.monotonic() + 30
        while (mtime := f.mtime) is None and time.monotonic() < deadline:  # the header on its way
            time.sleep(0.01)
        got.append(mtime)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    asker.join(60)
    answered = list(got)  # before the reader can let go of the lock
    b.sendall(payload[20:])
    b.close()
    reader.join(60)
    f.close()
    assert answered == [1_234_567] and read == [b"first\n" * 1000]


def test_close_lets_go_of_the_file_while_an_error_keeps_its_reader(tmp_path):
    """The error a read met is kept (by the caller, or by the file for its next read); its
    traceback refers to the run's reader. close() ends the run and closes what it read then,
    not when the collector finds the error: the file's space is not held after an unlink."""
    blob = bytearray(gzip.compress(text(3_000_000, 43)))
    blob[len(blob) // 2] ^= 0xFF
    path = tmp_path / "bad.gz"
    path.write_bytes(blob)
    f = sluice.open(path)
    with pytest.raises(sluice.CorruptDataError) as kept:
        f.read()
    f.close()
    assert _descriptors_on(path) == [] and kept.value is not None


class _SeekableFileObject:
    """A seekable file object of one's own over `data` (the run reads it through its methods);
    subclasses give read() or readinto()."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._data.tell()

    def seek(self, offset, whence=0):
        return self._data.seek(offset, whence)


def test_a_file_object_that_reads_views_of_any_layout_is_read_right():
    """read() may return any bytes-like object: a memoryview read backwards is copied in its
    order (it was copied from where its pointer was, past the end of the buffer: a crash)."""
    data = os.urandom(1_000_000).hex().encode()

    class Backwards(_SeekableFileObject):
        def read(self, size=-1):
            return memoryview(self._data.read(size)[::-1])[::-1]

    with sluice.open(Backwards(sluice.compress(data, "zstd"))) as f:
        assert f.read() == data


def test_a_file_objects_readinto_cannot_keep_the_runs_buffer(tmp_path):
    """A file object's readinto() is given a view of a bytearray of Python's own, copied out
    after the call: a view it keeps (a slice, a memoryview of it, the frame of a readinto() that
    raised) never reaches the run's memory, freed when the run ends; and the bytearray cannot be
    resized until the copy is made."""
    data = os.urandom(1_000_000).hex().encode()  # more than a small input, read by the run
    kept = []

    class Keeping(_SeekableFileObject, io.RawIOBase):
        def readinto(self, view):
            kept.extend([view, view[:10], memoryview(view)])
            return self._data.readinto(view)

    with sluice.open(Keeping(sluice.compress(data, "zstd"))) as f:
        assert f.read() == data
    assert kept
    for view in kept:  # what they see is Python's own: one that writes into it harms nothing
        assert isinstance(view, bytearray) or isinstance(view.obj, bytearray)

    class Shrinking(Keeping):  # lets go of its view, then empties what was behind it
        def readinto(self, view):
            n = self._data.readinto(view)
            if isinstance(view, memoryview) and isinstance(view.obj, bytearray):
                owner = view.obj
                view.release()
                del owner[:]
            return n

    with pytest.raises(BufferError):  # it stays held until the bytes are copied out
        with sluice.open(Shrinking(sluice.compress(data, "zstd"))) as f:
            f.read()


def test_a_write_of_a_non_contiguous_buffer_is_taken_and_the_file_goes_on(tmp_path):
    with sluice.open(tmp_path / "s.gz", "wb") as f:
        f.write(b"keep")
        assert f.write(memoryview(b"0123456789")[::2]) == 5
        f.write(b"after")
    assert gzip.decompress((tmp_path / "s.gz").read_bytes()) == b"keep02468after"


def test_threads_sharing_one_file_take_turns_and_every_byte_comes_once():
    data = b"".join(b"%08d" % i for i in range(1_000_000))
    f = sluice.open(io.BytesIO(sluice.compress(data)))
    pieces = []

    def reader(kind):
        while True:
            got = f.read(4096) if kind == 0 else f.read1(70_000)
            if not got:
                return
            pieces.append(got)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(reader, [0, 1, 0, 1], timeout=120))
    f.close()
    # Each piece is a stretch of the data (records of 8 digits name their place), and together
    # they cover it exactly once.
    placed = []
    for piece in pieces:
        skip = next(k for k in range(8) if piece[k:k + 8].isdigit() and len(piece) >= k + 8)
        offset = int(piece[skip:skip + 8]) * 8 - skip
        assert data[offset:offset + len(piece)] == piece
        placed.append((offset, len(piece)))
    placed.sort()
    assert [offset for offset, _ in placed] == [0] + [o + n for o, n in placed[:-1]]
    assert placed[-1][0] + placed[-1][1] == len(data)


def test_reads_take_sizes_as_io_does(tmp_path):
    f = sluice.open(io.BytesIO(sluice.compress(b"abc\n" * 10)))
    with pytest.raises(ValueError):
        f.read(-5)
    with pytest.raises(TypeError):
        f.read(2.0)
    assert f.read(None) == b"abc\n" * 10


def test_system_errors_are_the_oserror_subclass_of_their_errno(tmp_path):
    for call in (lambda: sluice.tar.list(str(tmp_path / "missing.tar")),
                 lambda: sluice.zip.list(str(tmp_path / "missing.zip"))):
        with pytest.raises(FileNotFoundError) as caught:
            call()
        assert isinstance(caught.value, sluice.Error)
        assert caught.value.errno == 2 and "missing" in caught.value.filename
        assert pickle.loads(pickle.dumps(caught.value)).errno == 2
    # A temporary that cannot be made beside the file: the error names the file asked for.
    with pytest.raises(FileNotFoundError) as caught:
        sluice.open(tmp_path / "nodir" / "x.gz", "wb")
    assert caught.value.filename == str(tmp_path / "nodir" / "x.gz")


def test_a_nul_byte_in_a_path_is_refused_before_anything_is_touched(tmp_path, monkeypatch):
    """Every path the package hands to the native layer is refused with a ValueError (UsageError)
    for a NUL byte, as os.open() refuses it: the system calls would end the name there
    ("a.tar\\0anything" opened a.tar, a destination "dest\\0/../x" was dest)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "f.txt").write_bytes(b"data\n")
    sluice.tar.create("a.tar", ["in"])
    sluice.zip.create("a.zip", ["in"])
    sluice.compress_files(["in/f.txt"])
    pipeline = '[input]\npaths = ["in/f.txt"]\n[[stage]]\nkind = "compress"\n[output]\ndirectory = "out"\n'
    (tmp_path / "p.toml").write_text(pipeline)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    calls = {
        "tar.extract dest": lambda: sluice.tar.extract("a.tar", "dest\0/../x"),
        "tar.extract archive": lambda: sluice.tar.extract("a.tar\0anything", "d2"),
        "tar.extract archive bytes": lambda: sluice.tar.extract(b"a.tar\0anything", "d2"),
        "tar.extract member": lambda: sluice.tar.extract("a.tar", "d3", ["in\0/f.txt"]),
        "tar.extract exclude": lambda: sluice.tar.extract("a.tar", "d4", exclude=["x\0"]),
        "tar.list": lambda: sluice.tar.list("a.tar\0anything"),
        "tar.format_for": lambda: sluice.tar.format_for("a.tar\0.gz"),
        "tar.create archive": lambda: sluice.tar.create("b.tar\0x", ["in"]),
        "tar.create path": lambda: sluice.tar.create("c.tar", ["in\0/f.txt"]),
        "tar.create directory": lambda: sluice.tar.create("d.tar", ["f.txt"], directory="in\0/.."),
        "tar.create exclude": lambda: sluice.tar.create("e.tar", ["in"], exclude=["*\0x"]),
        "tar.open": lambda: sluice.tar.open(pathlib.Path("f.tar\0x")),
        "tar.open gzip": lambda: sluice.tar.open("g.tar.gz\0x"),
        "zip.extract archive": lambda: sluice.zip.extract("a.zip\0anything", "d5"),
        "zip.extract dest": lambda: sluice.zip.extract("a.zip", "d6\0/../x"),
        "zip.extract member": lambda: sluice.zip.extract("a.zip", "d7", ["in\0"]),
        "zip.transcode": lambda: sluice.zip.transcode("a.zip", "d8\0x"),
        "zip.list": lambda: sluice.zip.list("a.zip\0anything"),
        "zip.test": lambda: sluice.zip.test("a.zip\0anything"),
        "zip.create archive": lambda: sluice.zip.create("b.zip\0x", ["in"]),
        "zip.create path": lambda: sluice.zip.create("c.zip", ["in\0/f.txt"]),
        "zip.create directory": lambda: sluice.zip.create("d.zip", ["f.txt"], directory="in\0"),
        "open read": lambda: sluice.open("in/f.txt.gz\0anything"),
        "open write": lambda: sluice.open("new.gz\0x", "wb"),
        "SluiceFile": lambda: sluice.SluiceFile(b"new.gz\0x", "xb"),
        "compress_files": lambda: sluice.compress_files(["in/f.txt\0anything"], overwrite=True),
        "compress_files output_dir": lambda: sluice.compress_files(["in/f.txt"], "out\0/x", overwrite=True),
        "decompress_files": lambda: sluice.decompress_files(["in/f.txt.gz\0x.gz"], overwrite=True),
        "decompress_files output_dir": lambda: sluice.decompress_files(["in/f.txt.gz"], "out\0x"),
        "run_pipeline": lambda: sluice.run_pipeline("p.toml\0anything"),
        "run_pipeline override": lambda: sluice.run_pipeline("p.toml", {"output.directory": "out\0/../x"}),
    }
    for what, call in calls.items():
        with pytest.raises(ValueError, match="embedded null byte") as caught:
            call()
        assert isinstance(caught.value, sluice.UsageError), what
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_open_errors_are_sluice_errors_of_their_errno_naming_the_file(tmp_path, request):
    """sluice.open() of a missing, unreadable or other wrong file raises sluice.Error (the
    subclass that is also FileNotFoundError, PermissionError...), .filename the path, as the
    native layer's errors (decompress_files, tar.list) are."""
    missing = tmp_path / "nodir" / "x.gz"
    for call in (lambda: sluice.open(missing), lambda: sluice.open(missing, "rt"),
                 lambda: sluice.SluiceFile(str(missing).encode()), lambda: sluice.open(missing, "ab"),
                 lambda: sluice.open(missing, "xb"), lambda: sluice.open(missing, "wt")):
        with pytest.raises(FileNotFoundError) as caught:
            call()
        assert isinstance(caught.value, sluice.Error) and caught.value.kind == "io"
        assert caught.value.filename == caught.value.path == str(missing)
        assert caught.value.errno == errno.ENOENT and str(caught.value).startswith(f"{missing}: cannot open")
        assert type(caught.value) is type(sluice.decompress_files([missing])[0].error)
    with pytest.raises(IsADirectoryError) as caught:
        sluice.open(tmp_path)
    assert isinstance(caught.value, sluice.Error) and caught.value.filename == str(tmp_path)
    (tmp_path / "taken.gz").write_bytes(sluice.compress(b"x"))
    with pytest.raises(FileExistsError) as caught:
        sluice.open(tmp_path / "taken.gz", "xb")
    assert isinstance(caught.value, sluice.Error) and caught.value.filename == str(tmp_path / "taken.gz")
    with pytest.raises(NotADirectoryError) as caught:
        sluice.open(tmp_path / "taken.gz" / "x.gz")
    assert isinstance(caught.value, sluice.Error) and caught.value.errno == errno.ENOTDIR
    # A plain tar's temporary beside a missing directory: named for the archive asked for.
    with pytest.raises(FileNotFoundError) as caught:
        sluice.tar.open(tmp_path / "nodir" / "a.tar")
    assert isinstance(caught.value, sluice.Error) and caught.value.filename == str(tmp_path / "nodir" / "a.tar")
    # A file one may not read (as nobody: root reads anything).
    locked = pathlib.Path(tempfile.mkdtemp(prefix="sluice-locked-"))  # not under pytest's 0700 directory
    request.addfinalizer(lambda: shutil.rmtree(locked, ignore_errors=True))
    os.chmod(locked, 0o755)
    (locked / "secret.gz").write_bytes(sluice.compress(b"secret"))
    os.chmod(locked / "secret.gz", 0o600)
    script = textwrap.dedent(f"""
        import sluice
        try:
            sluice.open({str(locked / "secret.gz")!r})
        except PermissionError as e:
            print(isinstance(e, sluice.Error), e.filename, e.errno)
    """)
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    done = subprocess.run(as_nobody + [sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", str(locked / "secret.gz"), str(errno.EACCES)]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("mode", ["wb", "wt"])
@pytest.mark.parametrize("size", [10, 3_000_000])
def test_a_full_disk_is_a_sluice_error_naming_the_file(mode, size):
    """Writing a file opened by name to a full disk (/dev/full: written in place, as a device is)
    raises sluice.Error with the file's name and ENOSPC, whether a write(), flush() or close()
    meets it, and the file is closed; not Python's OSError that names no file."""
    data = os.urandom(size // 2).hex()
    for end in ("close", "flush"):
        f = sluice.open("/dev/full", mode, format="zstd")
        with pytest.raises(sluice.Error) as caught:
            f.write(data if mode == "wt" else data.encode())
            getattr(f, end)()
        assert caught.value.errno == errno.ENOSPC and caught.value.filename == "/dev/full"
        assert str(caught.value) == "/dev/full: cannot write: No space left on device"
        assert f.closed


def test_a_fifo_whose_reader_left_is_a_broken_pipe_error_naming_it(tmp_path):
    """EPIPE on a FIFO opened by name: sluice's error naming it, and still a BrokenPipeError (a
    plain sluice.Error was not, so `except BrokenPipeError` missed it)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    f = sluice.open(fifo, "wb")
    os.close(reader)
    with pytest.raises(BrokenPipeError) as caught:
        f.write(os.urandom(3_000_000))
        f.close()
    assert isinstance(caught.value, sluice.Error) and caught.value.filename == str(fifo)
    assert caught.value.errno == errno.EPIPE and f.closed


def test_sluice_file_takes_compresslevel_as_gzip_file_does(tmp_path):
    """SluiceFile(path, "wb", compresslevel=9), as gzip.GzipFile takes it and sluice.open() does:
    the level; with level= as well, a TypeError before the file is made."""
    data = text(2_000_000)
    (tmp_path / "file").mkdir()
    (tmp_path / "open").mkdir()
    for level in (1, 9):
        with sluice.SluiceFile(tmp_path / "file" / f"{level}.gz", "wb", compresslevel=level, mtime=0) as f:
            f.write(data)
        with sluice.open(tmp_path / "open" / f"{level}.gz", "wb", level=level, mtime=0) as f:
            f.write(data)
        written = (tmp_path / "file" / f"{level}.gz").read_bytes()
        assert written == (tmp_path / "open" / f"{level}.gz").read_bytes()
        assert gzip.decompress(written) == data and written[8] == {1: 4, 9: 2}[level]  # gzip's XFL
    with pytest.raises(TypeError, match="same setting"):
        sluice.SluiceFile(tmp_path / "both.gz", "wb", level=1, compresslevel=9)
    assert not (tmp_path / "both.gz").exists()
    with sluice.tar.open(tmp_path / "a.tar.gz", compresslevel=1) as archive:
        archive.add(tmp_path / "file" / "9.gz", "9.gz")
    assert sluice.tar.list(tmp_path / "a.tar.gz")[0].name == "9.gz"


# A reader over a file object that may block (a socket, a pipe whose writer is idle) reads it on a
# thread of its own: closing, the interpreter's exit and Ctrl-C do not wait for the writer.
_BLOCKED_READER = textwrap.dedent("""
    import gzip, os, signal, socket, sys, tempfile, threading, time
    import sluice
    a, b = socket.socketpair()
    payload = gzip.compress(b"header\\n" + os.urandom(3_000_000).hex().encode())
    if sys.argv[2] == "socket":
        threading.Thread(target=b.sendall, args=(payload[: len(payload) * 3 // 4],), daemon=True).start()
        f = sluice.open(a.makefile("rb"))
    else:  # a FIFO opened by name, its writer idle for good
        fifo = os.path.join(tempfile.mkdtemp(), "pipe.gz")
        os.mkfifo(fifo)
        def write_and_idle():
            with open(fifo, "wb") as w:
                w.write(payload[: len(payload) * 3 // 4])
                w.flush()
                threading.Event().wait()
        threading.Thread(target=write_and_idle, daemon=True).start()
        f = sluice.open(fifo)
    assert f.readline() == b"header\\n"
    if sys.argv[1] == "close":
        start = time.monotonic()
        f.close()
        print("closed", round(time.monotonic() - start, 1), flush=True)
        g = sluice.open(a.makefile("rb"))  # left open at exit, its thread waiting for bytes
    elif sys.argv[1] in ("close from another thread", "exit while another thread reads"):
        outcome = []
        def reader():
            try:
                f.read()
            except BaseException as error:
                outcome.append(error)
        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        time.sleep(0.5)  # blocked in the read by now, holding the file's lock
        if sys.argv[1] == "close from another thread":
            f.close()
            thread.join(30)
            assert not thread.is_alive() and isinstance(outcome[0], sluice.Error), outcome
            print("closed", flush=True)
        else:
            print("closed", flush=True)  # the reading thread still blocked: the exit closes it
    else:
        print("reading", flush=True)
        try:
            f.read()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            f.close()
    """)


@pytest.mark.parametrize("source", ["socket", "fifo"])
@pytest.mark.parametrize("how", ["close", "interrupt", "close from another thread", "exit while another thread reads"])
def test_a_reader_blocked_in_its_file_closes_exits_and_stops_on_ctrl_c(how, source):
    process = subprocess.Popen([sys.executable, "-c", _BLOCKED_READER, how, source], stdout=subprocess.PIPE,
                               text=True)
    try:
        if how == "interrupt":
            assert process.stdout.readline() == "reading\n"
            time.sleep(1)
            process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0
    assert ("interrupted" if how == "interrupt" else "closed") in out


def test_iteration_splits_lines_ahead_and_every_other_read_sees_where_it_stopped():
    data = b"".join(b"line %d\r\n" % i if i % 7 == 0 else b"line %d\n" % i for i in range(200_000)) + b"tail"
    packed = sluice.compress(data, chunk_size=CHUNK)
    expected = [part + b"\n" for part in data.split(b"\n")[:-1]] + [b"tail"]
    with sluice.open(io.BytesIO(packed)) as f:
        assert list(f) == expected  # \r stays inside a line, as gzip.open's lines keep it
    with sluice.open(io.BytesIO(packed)) as f:
        assert next(f) == expected[0] and next(f) == expected[1]
        assert f.tell() == len(expected[0]) + len(expected[1])
        assert f.read(5) == expected[2][:5]
        assert next(f) == expected[2][5:]
        assert f.readline() == expected[3]
        assert f.peek(4)[:4] == expected[4][:4]
        f.seek(len(expected[0]))
        assert next(f) == expected[1]
        rest = f.read()
        assert rest == b"".join(expected[2:])
        with pytest.raises(StopIteration):
            next(f)
    with sluice.open(io.BytesIO(packed)) as f:
        next(f)
    with pytest.raises(ValueError):
        next(f)  # closed


def test_compress_files_never_writes_into_a_fifo_or_device_at_an_outputs_name(tmp_path):
    (tmp_path / "a").write_bytes(text(1000))
    os.mkfifo(tmp_path / "a.gz")
    (tmp_path / "b").write_bytes(text(1000, 2))
    os.symlink("/dev/null", tmp_path / "b.gz")
    results = sluice.compress_files([tmp_path / "a", tmp_path / "b"])
    assert [r.status for r in results] == ["failed", "failed"]
    assert all("already exists" in str(r.error) for r in results)
    # As open(..., "x") says it: a FileExistsError (it was a plain sluice.Error without an errno).
    assert all(isinstance(r.error, FileExistsError) and r.error.errno == errno.EEXIST for r in results)
    assert all(isinstance(r.error, sluice.Error) and r.error.filename.endswith(".gz") for r in results)
    results = sluice.compress_files([tmp_path / "a", tmp_path / "b"], overwrite=True)
    assert [r.status for r in results] == ["done", "done"]
    for name, seed in (("a", 1), ("b", 2)):
        assert not os.path.islink(tmp_path / (name + ".gz"))
        assert gzip.decompress((tmp_path / (name + ".gz")).read_bytes()) == text(1000, seed)


# A stream read as it is written (a socket, a pipe whose writer flushes and pauses) is decoded as
# it arrives: what came is readable before the writer sends more. The writer waits up to a minute
# for the reader to see it, then sends the rest anyway, so a reader that waits fails the test
# instead of hanging it. (gzip.open waits for 128 KiB of input first, `gzip -dc` for 256 KiB.)
def _flushed_gzip(*parts):
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    pieces = [compressor.compress(part) + compressor.flush(zlib.Z_SYNC_FLUSH) for part in parts[:-1]]
    return pieces + [compressor.compress(parts[-1]) + compressor.flush()]


@pytest.mark.parametrize("before", [0, 3_000_000], ids=["from the start", "after 3 MB"])
def test_a_socket_stream_is_read_as_it_arrives(before):
    import socket
    import threading
    lead = os.urandom(before // 2).hex().encode()
    first, rest = _flushed_gzip(lead + b"first line\n", b"second line\n" * 1000)
    a, b = socket.socketpair()
    seen = threading.Event()
    sent_rest_first = []

    def writer():
        b.sendall(first)
        sent_rest_first.append(not seen.wait(60))
        b.sendall(rest)
        b.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with sluice.open(a.makefile("rb")) as f:
        if lead:
            assert f.read(len(lead)) == lead
        assert f.readline() == b"first line\n"
        seen.set()
        assert f.read() == b"second line\n" * 1000
    thread.join(60)
    a.close()
    assert sent_rest_first == [False], "the first line waited for more input"


# flush() as gzip.GzipFile's: what was written so far is decodable by a reader of the output so
# far, and the stream goes on as one gzip member (lz4: one frame), read whole by the readers that
# take one. Before, flush() only flushed the file object: the records waited in sluice.
def _one_stream(fmt):
    import lz4.frame
    return zlib.decompressobj(31) if fmt == "gzip" else lz4.frame.LZ4FrameDecompressor()


@pytest.mark.parametrize("fmt", ["gzip", "lz4"])
@pytest.mark.parametrize("form", [None, "single-member"], ids=["default", "single-member"])
def test_flush_makes_what_was_written_decodable_and_the_stream_goes_on(tmp_path, fmt, form):
    if fmt == "lz4" and form:
        pytest.skip("a gzip form")
    knobs = {"form": form} if form else {}
    records = [text(n, seed) for seed, n in enumerate([10, 1, 70_000, 3 * CHUNK, CHUNK - 10, 5], 1)]
    path = tmp_path / "out"
    with open(path, "wb") as raw, sluice.open(raw, "wb", format=fmt, chunk_size=CHUNK, threads=2, **knobs) as f:
        for i, record in enumerate(records):
            f.write(record)
            f.flush()
            f.flush()  # nothing new: nothing added
            reader = _one_stream(fmt)
            # lz4.frame holds back part of a block until the frame ends: the EndMark ends it here.
            so_far = path.read_bytes() + (b"\0" * 4 if fmt == "lz4" else b"")
            assert reader.decompress(so_far) == b"".join(records[:i + 1])
    whole = path.read_bytes()
    reader = _one_stream(fmt)
    assert reader.decompress(whole) == b"".join(records)
    assert reader.eof and not reader.unused_data, "not one stream"
    assert sluice.decompress(whole) == b"".join(records)


# A log handler that flushes every record: gzip.open's size and, in the single-member form,
# gzip.open's deflate bytes (zlib's sync flushes, the window kept); the default form is smaller
# still (partial flushes) and keeps its independent chunks, which sluice.dask partitions.
@pytest.mark.parametrize("form", [None, "single-member"], ids=["default", "single-member"])
def test_a_file_flushed_after_every_record_is_the_size_gzip_open_writes(form):
    records = [b"%d GET /api/items/%d HTTP/1.1 200 %d\n" % (i, i % 97, i * 7 % 5000) for i in range(20_000)]
    knobs = {"form": form} if form else {}
    ours, theirs = io.BytesIO(), io.BytesIO()
    with sluice.open(ours, "wb", level=6, chunk_size=CHUNK, **knobs) as f, \
            gzip.GzipFile(fileobj=theirs, mode="wb", compresslevel=6, mtime=0) as g:
        for record in records:
            f.write(record)
            f.flush()
            g.write(record)
            g.flush()
    packed, expected = ours.getvalue(), theirs.getvalue()
    data = b"".join(records)
    assert gzip.decompress(packed) == data
    assert sluice.decompress(packed, threads=2) == data
    if form:
        assert packed[10:] == expected[10:]  # the header's OS byte differs (3, gzip.py's 255)
    else:
        assert len(packed) < len(expected)
        assert packed[12:14] == b"SI"  # still independent chunks


# zstd the same: the size of a zstandard stream flushed per record (plus the seek table, whose
# entries are still one per frame: seek() finds the records).
def test_a_zstd_file_flushed_after_every_record_is_the_size_zstandard_writes(tmp_path):
    zstandard = pytest.importorskip("zstandard")
    records = [b"%d GET /api/items/%d HTTP/1.1 200 %d\n" % (i, i % 97, i * 7 % 5000) for i in range(20_000)]
    path = tmp_path / "log.zst"
    with sluice.open(path, "wb", level=3, chunk_size=CHUNK) as f:
        for record in records:
            f.write(record)
            f.flush()
    theirs = zstandard.ZstdCompressor(level=3).compressobj()
    expected = b"".join(theirs.compress(r) + theirs.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for r in records)
    packed = path.read_bytes()
    data = b"".join(records)
    assert len(packed) < len(expected) * 1.05
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(packed), read_across_frames=True).read() == data
    assert sluice.decompress(packed, threads=2) == data
    with sluice.open(path) as f:
        for target in [len(data) // 2, 3, len(data) - 10, CHUNK, 5 * CHUNK - 1]:
            f.seek(target)
            assert f.read(64) == data[target:target + 64], target
    # A frame's window is the level's for a frame of the chunk size, not the level's own (8 MiB at
    # 19): readers with a memory limit (HTTP's 8 MiB) take it.
    strict = zstandard.ZstdDecompressor(max_window_size=1 << 20)
    for level in (3, 19):
        out = io.BytesIO()
        with sluice.open(out, "wb", format="zstd", level=level, chunk_size=CHUNK) as f:
            f.write(records[0])
            f.flush()
        assert strict.stream_reader(io.BytesIO(out.getvalue()), read_across_frames=True).read() == records[0]


def test_a_flushed_stream_reaches_a_reader_over_a_socket_record_by_record():
    import socket
    a, b = socket.socketpair()
    records = [b"record %d\n" % i * (i + 1) for i in range(5)]
    got = []

    def reader():
        d = zlib.decompressobj(31)
        out = b""
        for record in records:
            while len(out) < len(record):
                data = b.recv(65536)
                if not data:
                    return
                out += d.decompress(data)
            got.append(out[:len(record)])
            out = out[len(record):]
            seen.set()

    seen = threading.Event()
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    with a.makefile("wb") as out, sluice.open(out, "wb") as f:
        for record in records:
            seen.clear()
            f.write(record)
            f.flush()
            assert seen.wait(60), "the record waited for more"
    a.close()
    thread.join(60)
    b.close()
    assert got == records


def test_text_mode_close_adds_no_flush(tmp_path):
    lines = "".join("line %d\n" % i for i in range(20_000))
    (tmp_path / "t").mkdir()
    (tmp_path / "b").mkdir()
    with sluice.open(tmp_path / "t" / "lines.gz", "wt", chunk_size=CHUNK) as f:
        f.write(lines)
    with sluice.open(tmp_path / "b" / "lines.gz", "wb", chunk_size=CHUNK) as f:
        f.write(lines.encode())
    assert (tmp_path / "t" / "lines.gz").read_bytes() == (tmp_path / "b" / "lines.gz").read_bytes()
    # print(..., flush=True) and line buffering do flush.
    with open(tmp_path / "p.gz", "wb") as raw, sluice.open(raw, "wt") as f:
        print("first", file=f, flush=True)
        assert zlib.decompressobj(31).decompress((tmp_path / "p.gz").read_bytes()) == b"first\n"
        print("second", file=f)
    assert gzip.decompress((tmp_path / "p.gz").read_bytes()) == b"first\nsecond\n"


def test_a_flushed_file_is_read_whole_by_a_browser(tmp_path):
    data = text(300_000, 7)
    (tmp_path / "data").write_bytes(data)
    with sluice.open(tmp_path / "data.gz", "wb", chunk_size=CHUNK) as f:
        for at in range(0, len(data), 50_000):
            f.write(data[at:at + 50_000])
            f.flush()
    readers = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "http_gzip_readers.py")
    r = subprocess.run(["/usr/bin/python3", readers, str(tmp_path), "data"], capture_output=True, text=True,
                       timeout=300)
    if r.returncode == 77:
        pytest.skip("no Chromium")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("fmt", ["gzip", "zstd"])
def test_the_program_decodes_a_pipe_as_it_arrives(fmt):
    import select
    lines = [b"line %d\n" % i for i in range(3)]
    if fmt == "gzip":
        pieces = _flushed_gzip(*lines, b"")
    else:  # one frame per line, as a writer that ends a frame at each flush sends them
        pieces = [sluice.compress(line, format="zstd") for line in lines] + [b""]
    process = subprocess.Popen([PROGRAM, "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for line, piece in zip(lines, pieces):
            process.stdin.write(piece)
            process.stdin.flush()
            got = b""
            while len(got) < len(line):
                ready, _, _ = select.select([process.stdout], [], [], 60)
                assert ready, f"{line!r} waited for more input"
                got += os.read(process.stdout.fileno(), 1024)
            assert got == line
        process.stdin.write(pieces[-1])
        process.stdin.close()
        assert process.stdout.read() == b""
        assert process.wait(60) == 0
    finally:
        process.kill()


def test_no_bytes_at_all_decode_to_nothing_as_in_gzip(tmp_path):
    assert gzip.decompress(b"") == b"" and sluice.decompress(b"") == b""
    assert sluice.decompress(b"", format="zstd") == b""
    (tmp_path / "empty.gz").write_bytes(b"")
    with sluice.open(tmp_path / "empty.gz") as f:
        assert f.read() == b""
    with sluice.open(io.BytesIO(b"")) as f, gzip.open(io.BytesIO(b"")) as g:
        assert f.read() == g.read() == b""
    # One byte is not nothing: an error, as in gzip.
    with pytest.raises(sluice.CorruptDataError):
        sluice.decompress(b"\x1f")
    # A file in a batch is as on the command line (gzip -d: "unexpected end of file").
    [result] = sluice.decompress_files([tmp_path / "empty.gz"])
    assert result.status == "failed" and "empty input" in str(result.error)


def test_a_failed_read_or_seek_leaves_every_read_after_it_in_step():
    data = b"".join(b"line %06d\n" % i for i in range(400_000))
    packed = sluice.compress(data, chunk_size=CHUNK)
    cut = io.BytesIO(packed[: len(packed) // 2])
    with sluice.open(cut) as f:
        with pytest.raises(sluice.CorruptDataError):
            f.read()
        assert f.readlines(5) == [data[:12]]  # lines before the error: those, in order
        assert f.tell() == 12 and f.read(12) == data[12:24]
        with pytest.raises(sluice.CorruptDataError):
            f.seek(len(data))  # fails on its way: the stream stands where it failed
        where = f.tell()
        assert 24 < where < len(data)
        with pytest.raises(sluice.CorruptDataError):
            f.read(1)
        assert f.seek(5) == 5 and f.read(7) == data[5:12]  # back: decoded again from the start


class _InterruptedAfter:
    """A reader whose call is interrupted (Ctrl-C) just after the run handed its bytes over."""

    def __init__(self, reader):
        self.reader, self.armed = reader, True

    def _interrupt(self):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def read(self, size, some=False):
        got = self.reader.read(size, some)
        self._interrupt()
        return got

    def readinto(self, target, some=False):
        count = self.reader.readinto(target, some)
        self._interrupt()
        return count

    def cancel(self):
        self.reader.cancel()

    def close(self):
        self.reader.close()


@pytest.mark.parametrize("call", ["read", "readline", "seek"])
def test_ctrl_c_after_bytes_left_the_run_stops_the_stream(call):
    data = b"".join(b"line %06d\n" % i for i in range(400_000))
    with sluice.open(io.BytesIO(sluice.compress(data, chunk_size=CHUNK))) as f:
        f._decoding._reader = _InterruptedAfter(f._decoding._reader)
        with pytest.raises(KeyboardInterrupt):
            if call == "read":
                f.read(3 << 20)
            elif call == "readline":
                f.readline()
            else:
                f.seek(3 << 20)
        # Nothing read after it skips what the interrupted call took: the stream stopped.
        with pytest.raises(sluice.Error, match="stop"):
            f.read(100)


def test_threads_iterating_one_file_get_every_line_once():
    lines = [b"line %d\n" % i for i in range(300_000)]
    with sluice.open(io.BytesIO(sluice.compress(b"".join(lines), chunk_size=CHUNK))) as f:
        got: list[list[bytes]] = [[], []]
        threads = [threading.Thread(target=lambda mine: mine.extend(f), args=(mine,)) for mine in got]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(got[0] + got[1]) == sorted(lines)
    for mine in got:  # each thread's lines in the file's order
        numbers = [int(line.split()[1]) for line in mine]
        assert numbers == sorted(numbers)


def test_a_read_beside_a_thread_iterating_is_one_stretch_of_the_stream():
    """One thread iterates while another reads: every read() is a stretch of the stream (the
    lines left of a batch go back whole, never with a line another thread took in the middle),
    and every byte comes once."""
    data = b"".join(b"%08d\n" % i for i in range(200_000))
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(2):
            with sluice.open(io.BytesIO(gzip.compress(data, 1))) as f:
                lines: list[bytes] = []
                reads: list[bytes] = []
                iterating = threading.Thread(target=lambda: lines.extend(f))
                iterating.start()
                while piece := f.read(200):
                    reads.append(piece)
                iterating.join()
            for piece in reads:  # the whole records in each (the last read may hold none)
                numbers = [int(n) for n in piece.split(b"\n") if len(n) == 8]
                assert numbers == list(range(numbers[0], numbers[0] + len(numbers)) if numbers else [])
            assert sum(map(len, lines)) + sum(map(len, reads)) == len(data)
    finally:
        sys.setswitchinterval(switch)


def test_readline_and_every_other_read_in_any_order_match_a_plain_binary_file():
    lines = [b"line %d\r\n" % i if i % 5 == 0 else b"x" * (i % 300) + b"\n" for i in range(20_000)]
    data = b"".join(lines) + b"no newline at the end"
    model = io.BytesIO(data)
    rng = random.Random(7)
    with sluice.open(io.BytesIO(sluice.compress(data, chunk_size=CHUNK))) as f:
        while True:
            op = rng.choice(["readline", "readline n", "next", "read", "read1", "peek", "tell", "lines", "readinto",
                             "readlines", "seek"])
            if op == "readline":
                got, want = f.readline(), model.readline()
            elif op == "lines":  # a run of them: most of a batch is left when another read comes
                n = rng.randrange(1, 400)
                got = b"".join(line for _, line in zip(range(n), f))
                want = b"".join(line for _, line in zip(range(n), model))
            elif op == "readinto":
                target = bytearray(rng.randrange(0, 500))
                got, want = bytes(target[: f.readinto(target)]), model.read(len(target))
            elif op == "readlines":
                hint = rng.randrange(1, 3000)
                got, want = b"".join(f.readlines(hint)), b"".join(model.readlines(hint))
            elif op == "seek":
                to = max(0, model.tell() + rng.randrange(-3000, 3000))
                assert f.seek(to - f.tell(), io.SEEK_CUR) == model.seek(to) == to
                continue
            elif op == "readline n":
                n = rng.randrange(0, 50)
                got, want = f.readline(n), model.readline(n)
            elif op == "next":
                got, want = next(f, b""), next(model, b"")
            elif op == "read":
                n = rng.randrange(0, 500)
                got, want = f.read(n), model.read(n)
            elif op == "read1":
                got = f.read1(rng.randrange(1, 500))
                want = model.read(len(got))
            elif op == "peek":
                ahead = f.peek(1)
                assert data[model.tell():].startswith(ahead[: len(data) - model.tell()])
                continue
            else:
                assert f.tell() == model.tell()
                continue
            assert got == want, (op, model.tell())
            if model.tell() == len(data) and op != "tell":
                assert f.read() == b"" and f.readline() == b""
                break


def test_a_suffix_in_any_case_picks_the_format_as_on_the_command_line(tmp_path):
    with sluice.open(tmp_path / "DATA.ZST", "wb") as f:
        f.write(b"upper-case names too\n")
    assert (tmp_path / "DATA.ZST").read_bytes()[:4] == b"\x28\xb5\x2f\xfd"
    with sluice.open(tmp_path / "DATA.ZST") as f:
        assert f.read() == b"upper-case names too\n"
        with pytest.raises(TypeError):
            f.readline(-1.0)  # as io's readline: a size is an integer
    # The other suffixes the command line reads: .zstd, and a tar's short ones.
    zstd, lz4, gz = b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18", b"\x1f\x8b"
    for name, magic in (("b.zstd", zstd), ("c.TZST", zstd), ("d.tlz4", lz4), ("e.tgz", gz), ("f.tar.lz4", lz4),
                        ("g.txt", gz)):
        with sluice.open(tmp_path / name, "wb") as f:
            f.write(b"x")
        assert (tmp_path / name).read_bytes().startswith(magic), name


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _threads():
    return len(os.listdir("/proc/self/task"))


def _every_read(make, **options):
    """What a reader sees of a stream: pieces, lines after a seek back, readinto, the error if one
    comes (type and message), and where a file object is left."""
    seen = []
    source = make()
    try:
        with sluice.open(source, **options) as f:
            while got := f.read(4096):
                seen.append(got)
            seen.append("end of reads")
            f.seek(0)
            seen.extend(f.readlines())
            f.seek(3)
            target = bytearray(700)
            seen.append(bytes(target[: f.readinto(target)]))
    except Exception as error:  # noqa: BLE001 - compared, not handled
        seen.append((type(error).__name__, str(error)))
    if isinstance(source, io.BytesIO):
        seen.append(source.tell())
    return seen


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_a_small_input_reads_as_a_large_one_does_with_no_thread(tmp_path, monkeypatch, fmt):
    """sluice.open decodes a small file or BytesIO in one call on the calling thread; every read,
    error and limit is as the run that decodes a large one gives it."""
    data = text(5000, 7)
    packed = sluice.compress(data, fmt)
    cases = {
        "good": packed, "empty": b"", "truncated": packed[:-9], "garbage after": packed + b"garbage!",
        "corrupt": packed[:20] + bytes([packed[20] ^ 0x55]) + packed[21:], "not compressed": b"plain text\n",
        "past the one-call limit": sluice.compress(bytes(9 << 20), fmt),  # decodes past _SMALL_OUTPUT
    }
    for name, blob in cases.items():
        path = tmp_path / name
        path.write_bytes(blob)
        for make in (lambda: io.BytesIO(blob), lambda: str(path)):
            for options in ({}, {"max_output": 2500}):
                small = _every_read(make, **options)
                monkeypatch.setattr(sluice, "_SMALL_INPUT", -1)  # every input through a run
                large = _every_read(make, **options)
                monkeypatch.undo()
                assert small == large, (name, make(), options)
    seen = _every_read(lambda: io.BytesIO(packed))
    assert b"".join(seen[: seen.index("end of reads")]) == data
    for make in (lambda: io.BytesIO(packed), lambda: str(tmp_path / "good")):
        before = _threads()
        with sluice.open(make()) as f:
            assert f.read(100) == data[:100]
            assert _threads() <= before, "a thread was started for a small input"


def test_writing_a_small_stream_starts_no_thread_until_it_grows():
    before = _threads()
    out = io.BytesIO()
    with sluice.open(out, "wb", mtime=0) as f:
        f.write(text(1000))
        assert _threads() <= before, "a thread was started for a small stream"
        f.write(text(2 << 20))  # outgrows the hold: the run takes it all
    assert gzip.decompress(out.getvalue()) == text(1000) + text(2 << 20)


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_compressor_pieces_give_the_bytes_of_compress(fmt):
    data = text(3 * CHUNK + 1234, 21)
    expected = sluice.compress(data, fmt, chunk_size=CHUNK)
    rng = random.Random(3)
    for pieces in ("whole", "bytes", "random"):
        compressor = sluice.Compressor(fmt, chunk_size=CHUNK)
        out, at = [], 0
        while at < len(data):
            n = len(data) if pieces == "whole" else 1 if pieces == "bytes" and at < 3000 else rng.randint(1, 40_000)
            out.append(compressor.compress(memoryview(data)[at:at + n]))
            at += n
        out.append(compressor.flush(sluice.FLUSH_NONE))
        out.append(compressor.flush())
        assert b"".join(out) == expected, pieces
        with pytest.raises(sluice.UsageError):
            compressor.compress(b"more")
        with pytest.raises(sluice.UsageError):
            compressor.flush()
    small = sluice.Compressor(fmt)
    assert small.compress(b"tiny") == b""  # held until the end
    assert sluice.decompress(small.flush()) == b"tiny"
    with pytest.raises(ValueError):
        sluice.Compressor(fmt).flush(zlib.Z_FULL_FLUSH)
    with pytest.raises(sluice.UsageError):
        sluice.Compressor(fmt, level=99)


def test_compressor_sync_flush_is_zlibs_one_member_readers_see_each_prefix():
    """A body sent as it is made: after each flush(zlib.Z_SYNC_FLUSH) a reader of one member
    (zlib.decompressobj(31), as browsers) decodes all of it so far."""
    records = [text(n, n) for n in (10, 70_000, 1, 300_000, 5)]
    compressor = sluice.Compressor(chunk_size=CHUNK)
    reader = zlib.decompressobj(31)
    got = b""
    for i, record in enumerate(records):
        piece = compressor.compress(record) + compressor.flush(zlib.Z_SYNC_FLUSH)
        got += reader.decompress(piece)
        assert got == b"".join(records[: i + 1])
    got += reader.decompress(compressor.flush(zlib.Z_FINISH))
    assert reader.eof and not reader.unused_data and got == b"".join(records)


def test_decompressor_reads_every_format_in_any_pieces_ours_and_the_stock_tools():
    data = text(2_500_000, 22)
    streams = {fmt: sluice.compress(data, fmt, chunk_size=CHUNK) for fmt in ("gzip", "zstd", "lz4")}
    streams["gzip -6"] = stock(["gzip", "-c"], data)
    streams["pigz"] = stock(["pigz", "-c"], data)
    streams["zstd -3"] = stock(["zstd", "-c", "-q"], data)
    streams["lz4 -1"] = stock(["lz4", "-c", "-q"], data)
    streams["two gzip members"] = gzip.compress(data[:1000]) + gzip.compress(data[1000:])
    rng = random.Random(4)
    for name, packed in streams.items():
        decompressor = sluice.Decompressor()
        out, at = [], 0
        while at < len(packed):
            n = rng.choice([1, 100, 70_000, 1 << 20])
            out.append(decompressor.decompress(memoryview(packed)[at:at + n]))
            at += n
        assert not decompressor.eof
        out.append(decompressor.flush())
        assert b"".join(out) == data, name
        assert decompressor.eof
        with pytest.raises(sluice.UsageError):
            decompressor.decompress(b"more")
    assert sluice.Decompressor().flush() == b""  # an empty input, as sluice.decompress(b"")


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_decompressor_of_a_small_stream_returns_its_output_at_once_with_no_thread(fmt):
    data = text(20_000, 31)
    packed = sluice.compress(data, fmt)
    before = _threads()
    for step in (1, 333, len(packed)):
        d = sluice.Decompressor()
        got = b"".join(d.decompress(packed[at:at + step]) for at in range(0, len(packed), step))
        assert got == data  # all of it before flush(), as zlib's decompress() gives it
        assert d.flush() == b"" and d.eof
    assert _threads() == before


@pytest.mark.parametrize("fmt", ["gzip", "zstd", "lz4"])
def test_decompressor_on_one_thread_answers_each_flushed_message_as_it_arrives(fmt):
    # A protocol over one long stream: each message, sync-flushed by its sender, comes out of the
    # decompress() call that takes its last byte, past the first 64 KiB too (zlib's behaviour).
    messages = [text(20_000, seed) + random.Random(seed).randbytes(10_000) for seed in range(12)]
    compressor = sluice.Compressor(fmt)
    sent = [compressor.compress(m) + compressor.flush(sluice.FLUSH_SYNC) for m in messages]
    sent[-1] += compressor.flush()
    assert sum(map(len, sent)) > 2 * 64 * 1024  # past the hold of a Decompressor of more threads
    d = sluice.Decompressor(threads=1)
    before = _threads()
    for message, wire in zip(messages, sent):
        assert d.decompress(wire) == message
    assert d.flush() == b"" and _threads() == before


def test_decompressor_on_one_thread_stops_at_ctrl_c_inside_a_call():
    # 1 GiB of zeros in 1 MB of gzip, decoded by the calling thread inside one decompress() call:
    # Ctrl-C there stops it (the stream is then stopped for good), where it would come only after
    # the whole GiB.
    bomb = sluice.compress(bytes(8 << 20)) * 128
    d = sluice.Decompressor(threads=1)
    threading.Timer(0.05, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        d.decompress(bomb)
        time.sleep(5)  # reached only if the call ran to its end
    with pytest.raises(sluice.Error, match="interrupted"):
        d.decompress(b"")


class _Stopped(Exception):
    pass


def test_ctrl_c_stops_a_small_input_that_claims_no_size_inside_the_call():
    """130 KB of zstd frames that record no size (the zstd program's from a pipe) decode to 4 GiB:
    a small call runs on the calling thread, where no signal is looked at, so Ctrl-C came after the
    whole output, 25 s and 12 GB for a 6 GiB one. Past 1 MiB the call goes on where it can stop:
    the signal's exception comes from inside it, before the output limit."""
    frame = subprocess.run("head -c 128M /dev/zero | zstd -q -1 -c", shell=True, capture_output=True,
                           check=True).stdout
    bomb = frame * 32
    assert len(bomb) < 1 << 20

    def stop(signum, where):
        raise _Stopped()
    previous = signal.signal(signal.SIGINT, stop)
    try:
        threading.Timer(0.05, _thread.interrupt_main).start()
        try:
            sluice.decompress(bomb, max_output=1 << 30)
            outcome = "decoded"
        except sluice.OutputLimitError:
            outcome = "ran to the limit"  # the signal is then handled after the call
        except _Stopped:
            outcome = "stopped"
        assert outcome == "stopped"
        assert sluice.decompress(sluice.compress(b"x", "zstd")) == b"x"  # later calls go on
    finally:
        signal.signal(signal.SIGINT, previous)


_FORK_SCRIPT = r"""
import concurrent.futures, gzip, multiprocessing, os, sys, time
import sluice, sluice.zip

def child(body):
    # body() in a forked child that exits normally (atexit handlers run) with its code, or 3
    # on an exception; the exit code, or -1 where the child hung for a minute (killed).
    pid = os.fork()
    if pid == 0:
        try:
            code = body()
        except BaseException:
            code = 3
        sys.exit(code)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1

def uses(call, says="os.fork()"):
    def body():
        try:
            call()
        except sluice.UsageError as error:
            return 0 if says in str(error) else 4
        return 5
    return body

def flushed_round_trip(name):
    # A file flushed after 600,000 bytes (handed to a run: two threads) and a one-shot call on
    # two threads: 0 when both come out exact.
    with sluice.open(name, "wb", chunk_size=65536, threads=2) as out:
        out.write(data[:600_000])
        out.flush()
        out.write(data[600_000:])
    ok = gzip.decompress(open(name, "rb").read()) == data
    return 0 if ok and sluice.decompress(sluice.compress(data, threads=2, chunk_size=65536)) == data else 6

def closes_its_descriptor():
    # The child's close() leaves the parent's run alone but closes the child's copy of the
    # descriptor the file was read through.
    number = reader.fileno()
    reader.close()
    writer.close()
    try:
        os.fstat(number)
    except OSError:
        return 0
    return 7

def pooled(n):
    return flushed_round_trip(os.path.join(folder, "pooled%d.gz" % n))

folder = sys.argv[1]
data = b"".join(b"line %d\n" % i for i in range(300_000))
with open(os.path.join(folder, "in.gz"), "wb") as f:
    f.write(sluice.compress(data, chunk_size=65536))
reader = sluice.open(os.path.join(folder, "in.gz"))
assert reader.read(1000) == data[:1000]
writer = sluice.open(os.path.join(folder, "out.gz"), "wb", chunk_size=65536)
writer.write(data[:2_000_000])
compressor, decompressor = sluice.Compressor(chunk_size=65536), sluice.Decompressor()
packed = compressor.compress(data[:1_000_000])
codes = [
    child(uses(lambda: reader.read())),
    child(uses(lambda: next(reader))),
    child(uses(lambda: writer.write(b"x" * 100_000))),
    child(uses(lambda: compressor.compress(b"x" * 100_000))),
    child(uses(lambda: decompressor.decompress(packed))),
    # New runs too: the parent's runs alive, oneTBB cannot be used here (it crashed now and then).
    child(uses(lambda: sluice.compress(data, threads=2, chunk_size=65536), "forked while sluice was running")),
    child(uses(lambda: sluice.zip.create(os.path.join(folder, "child.zip"), [os.path.join(folder, "in.gz")],
                                         threads=2), "forked while sluice was running")),
    child(closes_its_descriptor),
    child(lambda: 0),  # at exit the open files are closed: the parent's are left alone
]
assert codes == [0] * 9, codes
assert reader.read() == data[1000:]
reader.close()
writer.write(data[2_000_000:])
writer.close()
assert gzip.decompress(open(os.path.join(folder, "out.gz"), "rb").read()) == data
assert sluice.decompress(packed + compressor.compress(data[1_000_000:]) + compressor.flush()) == data
# Nothing of sluice's running: a child (a process pool's worker) runs as its parent does (before,
# its flush waited forever for oneTBB's workers, which stayed in the parent), and so does the parent.
codes = [child(lambda: flushed_round_trip(os.path.join(folder, "child.gz")))]
with multiprocessing.get_context("fork").Pool(2) as pool:
    codes += pool.map_async(pooled, range(4)).get(timeout=120)
codes.append(flushed_round_trip(os.path.join(folder, "parent.gz")))
# A thread that ran sluice on threads and lives on (a thread pool's) keeps oneTBB's state, which
# then cannot be stopped before a fork: the child refuses.
with concurrent.futures.ThreadPoolExecutor(1) as pool:
    pool.submit(sluice.compress, data[:250_000], threads=2, chunk_size=32768).result()
    codes.append(child(uses(lambda: sluice.compress(data, threads=2, chunk_size=65536), "forked while sluice")))
assert codes == [0] * 7, codes
print("ok")
"""


def test_files_and_streams_open_at_a_fork_are_the_parents_in_the_child(tmp_path):
    """A child of os.fork() cannot use the parent's runs (their threads stayed in the parent):
    using an inherited file or stream raises a usage error, and so does a new run while the
    parent's are alive; closing or exiting is quick and touches nothing of the parent's, whose
    files come out whole. A child forked with nothing running (a process pool's worker) runs as
    its parent. (Before: the child hung, or crashed at exit or now and then in a new run.)"""
    result = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, str(tmp_path)], capture_output=True, timeout=600)
    assert result.stdout.strip() == b"ok", result.stderr.decode()[-2000:]


def test_a_decompressor_given_a_str_raises_type_error_and_goes_on():
    """A mistake in an argument is not the stream's failure (as with zlib's decompressobj)."""
    d = sluice.Decompressor()
    with pytest.raises(TypeError):
        d.decompress("not bytes")
    assert d.decompress(gzip.compress(b"hello")) + d.flush() == b"hello"


def test_a_decompressor_flushed_again_gives_nothing_as_zlibs_does():
    """Cleanup code that flushes once more got a UsageError; decompress() after the end is
    refused, as zlib's is."""
    d, theirs = sluice.Decompressor(), zlib.decompressobj(31)
    assert d.decompress(gzip.compress(b"a")) + d.flush() == theirs.decompress(gzip.compress(b"a")) + theirs.flush()
    assert d.flush() == theirs.flush() == b"" and d.eof
    with pytest.raises(sluice.UsageError, match="flush\\(\\) ended it"):
        d.decompress(b"")
    broken = sluice.Decompressor()
    broken.decompress(gzip.compress(b"a")[:-3])
    for _ in range(2):  # a stream cut short raises at every flush
        with pytest.raises(sluice.TruncatedError):
            broken.flush()


def test_decompressor_errors_come_after_the_data_before_them():
    data = text(3_000_000, 23)
    packed = gzip.compress(data)
    cut = sluice.Decompressor()
    got = cut.decompress(packed[:-1000])
    assert data.startswith(got)
    for call in (cut.flush, cut.flush, lambda: cut.decompress(b"x")):  # the error, as often as asked
        with pytest.raises(sluice.CorruptDataError) as caught:
            call()
        assert "truncated" in str(caught.value)
        got += caught.value.output  # what decoded before it, once
    assert len(got) > len(data) - 10_000 and data.startswith(got)
    corrupt = packed[:200_000] + bytes(100) + packed[200_100:]
    broken = sluice.Decompressor(threads=2)  # a run checks a unit before it writes it (the
    got = b""                                # calling thread's decoder, as zlib's, does not)
    with pytest.raises(sluice.CorruptDataError):
        for at in range(0, len(corrupt), 10_000):
            got += broken.decompress(corrupt[at:at + 10_000])
            time.sleep(0.001)
        broken.flush()
    assert data.startswith(got)  # what came before the error is the data's start
    bad = sluice.Decompressor("zstd")
    with pytest.raises(sluice.CorruptDataError):
        bad.decompress(b"not zstd at all") + bad.flush()
    limited = sluice.Decompressor(max_output=100_000)
    with pytest.raises(sluice.OutputLimitError):
        assert len(limited.decompress(packed)) <= 100_000
        limited.flush()


def test_decompressor_gives_what_each_piece_decodes_to_in_its_call_not_at_flush():
    """A stream of 240 to 1 fed in 64 KiB pieces, as a download comes: each call returns what its
    piece decodes to (and what is in flight), as zlib's does; flush() returns little. (The run's
    pipe took 4 MiB of input ahead: 271 MB of these 300 came out of flush() at once, and 1,015 MB
    of a 1 GB stream.)"""
    packed = sluice.compress((b"x" * 99 + b"\n") * 3_000_000, "gzip", level=1)
    assert len(packed) > 1 << 20  # past the first MiB, which a run reads whole before it decodes
    d = sluice.Decompressor(threads=2)
    total = sum(len(d.decompress(packed[at:at + 65536])) for at in range(0, len(packed), 65536))
    rest = len(d.flush())
    assert total + rest == 300_000_000
    assert rest <= 16 << 20, f"{rest >> 20} MiB came out at flush()"


def test_decompressor_memory_stays_bounded_between_calls_and_a_dropped_one_ends():
    """1 GiB of zeros in about a megabyte: between calls the workers decode ahead into 8 MiB and
    wait (peak RSS grows by tens of MiB, not by the gigabyte); max_output stops the bomb within
    calls; a decompressor dropped while its workers wait goes at once."""
    script = textwrap.dedent("""
        import resource, time, sluice
        packed = sluice.compress(bytes(1 << 30), "gzip", threads=2)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        waiting = sluice.Decompressor(threads=2)
        first = len(waiting.decompress(packed[: len(packed) // 2]))
        time.sleep(1)  # the workers fill the 8 MiB and wait for a call
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        start = time.monotonic()
        del waiting
        dropped_in = time.monotonic() - start
        limited = sluice.Decompressor(max_output=64 << 20)
        total = 0
        try:
            for at in range(0, len(packed), 16384):
                total += len(limited.decompress(packed[at:at + 16384]))
            total += len(limited.flush())
        except sluice.OutputLimitError:
            print("limit", total <= 64 << 20)
        limited_grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(first, grown, round(dropped_in, 1), limited_grown)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         timeout=300).stdout.split()
    assert out[:2] == ["limit", "True"], out
    first, grown, dropped_in, limited_grown = int(out[2]), int(out[3]), float(out[4]), int(out[5])
    assert first <= 64 << 20
    assert grown < 100 * 1024, f"peak RSS grew by {grown // 1024} MiB between calls"
    assert dropped_in < 10
    assert limited_grown < 400 * 1024, f"peak RSS grew by {limited_grown // 1024} MiB with max_output"


def _bounded_loop(decompressor, packed, step, max_length):
    """bz2's documented loop: more input only when needs_input; each call's output checked."""
    out, at = [], 0
    while True:
        if decompressor.needs_input:
            if at >= len(packed):
                break
            piece, at = packed[at:at + step], at + step
        else:
            piece = b""
        got = decompressor.decompress(piece, max_length)
        assert len(got) <= max_length
        out.append(got)
    assert decompressor.flush() == b""  # all came out of the calls
    return b"".join(out)


def test_decompressor_max_length_returns_at_most_that_and_the_rest_from_later_calls():
    data = text(600_000, 41) + bytes(300_000)
    streams = {fmt: sluice.compress(data, fmt, chunk_size=CHUNK) for fmt in ("gzip", "zstd", "lz4")}
    streams["gzip -6"] = stock(["gzip", "-c"], data)
    streams["zstd -3"] = stock(["zstd", "-c", "-q"], data)
    streams["lz4 -1"] = stock(["lz4", "-c", "-q"], data)
    for name, packed in streams.items():
        for step, max_length in ((100_000, 1000), (97, 65536), (1 << 20, 1 << 20)):
            assert _bounded_loop(sluice.Decompressor(), packed, step, max_length) == data, (name, step)
    small = sluice.compress(data[:20_000])  # a byte a call
    assert _bounded_loop(sluice.Decompressor(), small, len(small), 1) == data[:20_000]
    d = sluice.Decompressor()
    assert d.needs_input and d.decompress(streams["gzip"], 0) == b"" and not d.needs_input
    assert d.decompress(b"", 10) == data[:10]
    assert d.decompress(b"") == data[10:]  # a call without a limit returns all the rest
    assert d.needs_input and d.flush() == b"" and d.eof and not d.needs_input
    with pytest.raises(TypeError):
        sluice.Decompressor().decompress(b"", 1.5)


def test_decompressor_max_length_holds_a_bombs_output_a_piece_at_a_time():
    """zstd and gzip holding 256 MiB of zeros, each given in one call: with a max_length of 1 MiB
    the process grows by a few MiB, not by the output, and every byte comes out (the calls' sizes
    add up). Without it the call returns all 256 MiB; with the decoder's thread let on while a
    call waits, a gigabyte's grew by 57-74 MiB."""
    script = textwrap.dedent("""
        import resource, struct, sys, sluice
        if sys.argv[1] == "skippable":
            packed = struct.pack("<II", 0x184D2A50, 70_000) + bytes(70_000) + sluice.compress(bytes(1 << 28), "zstd")
        else:
            packed = sluice.compress(bytes(1 << 28), sys.argv[1])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        d = sluice.Decompressor()
        total, calls, largest = len(d.decompress(packed, 1 << 20)), 1, 0
        while not d.needs_input:
            got = d.decompress(b"", 1 << 20)
            total, calls, largest = total + len(got), calls + 1, max(largest, len(got))
        total += len(d.flush())
        print(total, calls, largest, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    for fmt in ("zstd", "gzip", "skippable"):  # a skippable frame first (70 KB): the stream went to a run,
        out = subprocess.run([sys.executable, "-c", script, fmt], capture_output=True, text=True, check=True,
                             timeout=300).stdout.split()  # whose output lagged: flush() gave 256 MiB at once
        total, calls, largest, grown = map(int, out)
        assert (total, calls, largest) == (1 << 28, 256, 1 << 20), fmt
        assert grown < 32 * 1024, f"{fmt}: peak RSS grew by {grown // 1024} MiB"  # 7-8 MiB here


def test_decompressor_max_length_errors_come_after_the_data_before_them_and_ctrl_c_stops_it():
    data = text(3_000_000, 23)
    packed = gzip.compress(data)
    cut = sluice.Decompressor()
    got = b""
    with pytest.raises(sluice.CorruptDataError) as caught:
        for at in range(0, len(packed), 65536):  # a member's end with its CRC-32 spoilt
            got += cut.decompress(packed[at:at + 65536] if at + 65536 < len(packed) else
                                  packed[at:-8] + b"\0" * 8, 50_000)
            while not cut.needs_input:
                got += cut.decompress(b"", 50_000)
    assert got == data and "CRC" in str(caught.value)
    with pytest.raises(sluice.CorruptDataError):
        cut.decompress(b"", 10)  # and again, as often as asked
    small = sluice.Decompressor()  # a max_length of 0 after an error: the output before it first
    bad = gzip.compress(data[:100])[:-8] + b"\0" * 8
    assert small.decompress(bad, 10) == data[:10]
    assert small.decompress(b"", 0) == b"" and not small.needs_input
    assert small.decompress(b"", 1000) == data[10:100]
    with pytest.raises(sluice.CorruptDataError):
        small.decompress(b"", 0)
    with pytest.raises(sluice.UsageError, match="threads=1"):
        sluice.Decompressor(threads=2).decompress(packed, 1000)
    d = sluice.Decompressor(threads=2)  # the mistake above leaves a stream usable
    with pytest.raises(sluice.UsageError):
        d.decompress(packed, 10)
    assert d.decompress(packed) + d.flush() == data
    # Ctrl-C while a call waits for the decoder's thread (a limit past the gigabyte it decodes to)
    bomb = sluice.compress(bytes(8 << 20)) * 128
    stopped = sluice.Decompressor()
    threading.Timer(0.05, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        stopped.decompress(bomb, 1 << 40)
        time.sleep(5)  # reached only if the call ran to its end
    with pytest.raises(sluice.Error, match="interrupted"):
        stopped.decompress(b"", 10)
    waiting = sluice.Decompressor()
    assert len(waiting.decompress(bomb, 1000)) == 1000  # its thread waits, inside the decoder
    start = time.monotonic()
    del waiting
    assert time.monotonic() - start < 5


def test_a_wrapper_file_object_is_read_through_not_by_its_descriptor(tmp_path):
    """gzip.GzipFile lends its file's descriptor: the bytes it reads are not the descriptor's."""
    data = text(5000, 9)
    path = tmp_path / "twice.gz.gz"
    path.write_bytes(gzip.compress(gzip.compress(data)))
    for size in (5000, 3_000_000):  # a small input and a large one
        data = text(size, 9)
        path.write_bytes(gzip.compress(gzip.compress(data)))
        with gzip.open(path) as outer, sluice.open(outer) as f:
            assert f.read() == data
            f.seek(10)
            assert f.read(20) == data[10:30]


def test_read_takes_any_integer_as_its_size(tmp_path):
    """read(size) with an integer that is not an int (numpy's, an IntEnum, True) read the whole
    stream: only `type(size) is int` took the path that honours the size."""
    import enum

    class Size(enum.IntEnum):
        FOUR = 4

    class Index:
        def __index__(self):
            return 3

    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(text(1_000_000)))
    with sluice.open(path) as f:
        assert f.read(Size.FOUR) == text(1_000_000)[:4]
        assert f.read(True) == text(1_000_000)[4:5]
        assert f.read(Index()) == text(1_000_000)[5:8]
        assert f.tell() == 8
        with pytest.raises(TypeError):
            f.read(2.0)


def test_names_that_are_not_utf8_are_files_like_any_other(tmp_path, monkeypatch):
    """A bytes path or a name from os.listdir that is not UTF-8 (a surrogate escape) was a
    pybind11 TypeError listing the call's arguments, where gzip.open takes it."""
    monkeypatch.chdir(tmp_path)
    data = text(3_000_000, 4)
    with sluice.open(b"w\xff.gz", "wb") as f:  # the gzip header's name is the raw bytes
        f.write(data)
    assert b"w\xff.gz" in os.listdir(b".")
    assert gzip.decompress(pathlib.Path(os.fsdecode(b"w\xff.gz")).read_bytes()) == data
    with sluice.open(b"w\xff.gz") as f:  # read by a run: over 256 KiB
        assert f.read() == data
    pathlib.Path(os.fsdecode(b"bad\xfe.gz")).write_bytes(b"\x1f\x8b\x08\x00" + b"x" * 100)
    with pytest.raises(sluice.CorruptDataError) as caught:
        with sluice.open(b"bad\xfe.gz") as f:
            f.read()
    assert caught.value.filename == os.fsdecode(b"bad\xfe.gz")
    name = os.fsdecode(b"c\xfe.txt")
    pathlib.Path(name).write_bytes(data)
    [done] = sluice.compress_files([name])
    assert (done.status, done.output) == ("done", name + ".gz")
    os.remove(name)
    [done] = sluice.decompress_files([os.fsencode(name) + b".gz"])
    assert (done.status, done.input, done.output) == ("done", name + ".gz", name)
    assert pathlib.Path(name).read_bytes() == data


def test_a_file_is_not_copied():
    """copy.copy(SluiceFile) shared its descriptor: the copy's finalizer closed it under the
    original, whose reads then failed and whose close() closed a descriptor since reused."""
    with sluice.open(io.BytesIO(gzip.compress(b"data"))) as f:
        for copier in (copy.copy, copy.deepcopy, pickle.dumps):
            with pytest.raises(TypeError, match="cannot copy"):
                copier(f)
        assert f.read() == b"data"


def test_compress_many_takes_a_strided_buffer_as_compress_does():
    view = memoryview(b"abcdefgh")[::2]
    assert [sluice.decompress(out) for out in sluice.compress_many([view, b"x"])] == [b"aceg", b"x"]
    assert sluice.decompress(next(sluice.compress_iter([view]))) == b"aceg"


def test_a_small_damaged_member_reads_up_to_its_fault_as_gzip_open_does(tmp_path):
    """A member small enough to be decoded in one call gave nothing before its error, where
    gzip.open gives what inflated before the fault; the error named the deflate data's start."""
    data = text(20000, 7)
    packed = bytearray(gzip.compress(data, mtime=0))
    for flip in range(len(packed) // 2, len(packed) - 8):  # the first flip that makes invalid deflate data
        bad = bytearray(packed)
        bad[flip] ^= 0x55
        try:
            zlib.decompress(bytes(bad), 31)
        except zlib.error as e:
            if "invalid" in str(e):
                break
    else:
        pytest.fail("no flip makes invalid deflate data")
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(bad))
    stock = zlib.decompressobj(31)
    reached = b""
    for i in range(len(bad)):  # what zlib gives before the fault, a byte at a time
        try:
            reached += stock.decompress(bytes(bad[i:i + 1]))
        except zlib.error:
            break
    assert len(reached) > 1000
    got = b""
    with pytest.raises(sluice.CorruptDataError) as caught:
        with sluice.open(path) as f:
            while chunk := f.read(1000):
                got += chunk
    assert got[:len(reached)] == reached and len(got) <= len(reached) + 258
    assert flip <= caught.value.offset <= flip + 64
