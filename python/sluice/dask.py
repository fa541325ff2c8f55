"""Sluice on a Dask cluster: one big file compressed by many tasks, and compressed files that split.

Every chunk of a sluice stream is an independent unit, so:

- compress(src, dst): the source is cut into parts of whole chunks, each compressed by a Dask
  task (on any worker, reading its own byte range), and the parts are written in order between
  the stream's header and trailer. The bytes are those `sluice` writes on one machine for the same
  options. Where the workers share the client's files, each task writes its part beside the
  destination and the client joins them (parts_via="storage"); elsewhere parts come back through
  Dask.
- read_bytes / read_text / read_csv: a compressed file is cut into partitions at unit boundaries
  found without decoding it (sluice._units says how for each format), so a 50 GB .gz is read by
  every worker, not one. Streams that cannot be cut (one gzip member as gzip writes it, one zstd
  frame) are one partition per file.

Sources and destinations are fsspec URLs (local paths, file://, memory://, s3:// where s3fs is
installed). The functions use the current distributed Client (or the one passed as `client`);
read_* return lazy Dask collections, computed by whatever scheduler is active.

What happens when things fail: a task that raises fails the call, and compress() leaves nothing
at the destination (the output is written to a temporary beside it and moved into place only when
complete). A worker that dies mid-task is replaced by Dask and its task run again elsewhere; parts
are pure functions of their byte range, so the output is the same. If the client itself dies,
the temporary output stays behind (named `.<name>.sluice-<random>` beside the destination, with
its `.parts` directory) and the destination is untouched: run the call again.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import importlib
import io
import operator
import os
import posixpath
import re
import shutil
import struct
import threading
import time
import uuid
import zlib
from typing import Any, Iterable

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from . import _backend, _chunk_size, _format_for_path, _knobs, _level, _native, _output_exists, _system_error, _units
from . import CorruptDataError, Error, FileResult, TruncatedError, UsageError
from . import decompress as _decompress

DEFAULT_PART_SIZE = 64 * 1024 * 1024


def _client(client):
    """The client to run tasks on: `client`, else the current one; None (client=False, or no
    cluster): the tasks run in this process, one after another."""
    if client is False:
        return None
    if client is not None:
        return client
    from distributed import get_client
    try:
        return get_client()
    except ValueError:
        return None  # no cluster: tasks run in this process


def register(client) -> None:
    """Makes compression="sluice" known on every worker of `client`, those that join or restart
    later included (a worker plugin imports sluice), for Dask's own readers:
    dask.bag.read_text(url, compression="sluice") computed on the cluster. sluice.dask's own
    functions need no such step."""
    client.register_worker_plugin(_ImportSluice(), name="sluice-import")


try:
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency of this module's cluster calls
    _WorkerPlugin = object


class _ImportSluice(_WorkerPlugin):
    def setup(self, worker):
        importlib.import_module("sluice")  # registers compression="sluice" with fsspec


def _parse_size(size) -> int:
    """A size as Dask takes it: a number of bytes or a string ("64 MiB"); else UsageError."""
    try:
        if isinstance(size, str):
            from dask.utils import parse_bytes
            return parse_bytes(size)
        return int(size)
    except (TypeError, ValueError) as error:
        raise UsageError(f"not a size: {size!r} ({error})", "usage") from None


def _blocksize(blocksize) -> int | None:
    """read_bytes()' blocksize: None (a partition per file) or a size of at least 1 byte."""
    if blocksize is None:
        return None
    size = _parse_size(blocksize)
    if size < 1:
        raise UsageError(f"blocksize must be at least 1 byte (or None: a partition per file), not {blocksize!r}",
                         "usage")
    return size


@dataclasses.dataclass(frozen=True)
class CompressResult:
    """What compress() did: bytes in and out, how many parts (tasks) and seconds."""
    input_bytes: int
    output_bytes: int
    parts: int
    seconds: float
    parts_via: str = "client"  # how the parts reached the client: "storage" or "client"


@dataclasses.dataclass(frozen=True)
class _Options:
    format: str
    level: int
    chunk_size: int
    knobs: dict
    backend: str

    def native(self):
        return self.format, self.level, self.chunk_size, self.knobs, self.backend


_read_buffers: dict[int, bytearray] = {}  # per thread, until the compress() call ends


def _release_read_buffers() -> None:
    _read_buffers.clear()  # a buffer in use stays alive through its view


@contextlib.contextmanager
def _read_buffers_released(client):
    """Frees the read buffers kept per thread (here and on the workers) when compress() ends."""
    try:
        yield
    finally:
        _release_read_buffers()
        if client is not None:
            with contextlib.suppress(Exception):
                client.run(_release_read_buffers)


def _read_range(url: str, storage_options: dict, start: int, length: int) -> memoryview:
    """`length` bytes of the source from `start`, in a buffer kept per thread for the thread's next
    part of the same compress() call: a Dask worker's nanny sets MALLOC_TRIM_THRESHOLD_, so a new
    buffer per part would be mapped and faulted in afresh (measured: a tenth of a zstd part's
    time). Valid until the thread's next call."""
    thread = threading.get_ident()
    buffer = _read_buffers.get(thread)
    if buffer is None or len(buffer) < length:
        buffer = _read_buffers[thread] = bytearray(length)
    view = memoryview(buffer)[:length]
    fs, path = url_to_fs(url, **storage_options)
    got = 0
    with fs.open(path, "rb") as f:
        f.seek(start)
        while got < length:
            n = f.readinto(view[got:])
            if not n:
                break
            got += n
    if got != length:
        raise Error(f"{url}: the file changed while it was compressed (short read at byte {start + got})", "io", url)
    return view


def _compress_range(url: str, storage_options: dict, start: int, end: int, history: int, last: bool,
                    options: _Options, part_path: str | None = None):
    """One Dask task: chunks [start, end) of the source, compressed. Returns (bytes, chunk
    records); with `part_path` (a local path the client reads too), the part is written there
    instead and (its size, chunk records) returned."""
    view = _read_range(url, storage_options, start - history, end - start + history)
    if part_path is not None:
        return _native.compress_part_to_file(view[:history], view[history:], last, *options.native(), part_path)
    return _native.compress_part(view[:history], view[history:], last, *options.native())


def _temporary_beside(fs, path: str) -> str:
    return posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.sluice-{uuid.uuid4().hex[:12]}")


def compress(src, dst, format: str | None = None, level: int | None = None, *, client=None,
             chunk_size: int | None = None, part_size: int | str | None = None, store_name: bool = True,
             overwrite: bool = False, storage_options: dict | None = None, backend: str | None = None,
             max_parts_in_flight: int | None = None, parts_via: str = "auto", **knobs: str) -> CompressResult:
    """Compresses the file at `src` into `dst` with many Dask tasks, byte for byte what
    `sluice -c src > dst` writes for the same format, level and chunk size (the name and
    modification time of `src` are recorded as the command records them; store_name=False records
    neither). format: from dst's suffix (".zst", ".lz4"), else gzip. part_size: the input of one
    task (default 64 MiB, rounded to whole chunks); memory per task is about a part in and a part
    out. parts_via: how the compressed parts reach the client: "client" (returned by the tasks,
    through Dask's connections: any cluster, any destination; at most max_parts_in_flight parts
    are submitted or held, by default twice the cluster's threads), "storage" (each task writes
    its part to a directory beside a local destination, removed at the end, and the client joins
    them with copy_file_range: the workers must see the client's file system; every part is
    submitted at once unless max_parts_in_flight says otherwise) or "auto" (storage when dst is a
    local path and every worker sees a file the client puts in that directory, as a LocalCluster's
    do, or a cluster on a shared file system; else client). The result's parts_via says which.
    Raises FileExistsError if dst exists and not overwrite."""
    began = time.monotonic()
    storage_options = storage_options or {}
    src_url, dst_url = os.fspath(src), os.fspath(dst)
    src_fs, src_path = url_to_fs(src_url, **storage_options)
    dst_fs, dst_path = url_to_fs(dst_url, **storage_options)
    format = format or _format_for_path(dst_path)
    level = _level(level, format)
    chunk, history = _native.chunk_size(format, level, _chunk_size(chunk_size), _knobs(knobs), _backend(backend))
    options = _Options(format, level, chunk, _knobs(knobs), _backend(backend))
    if dst_fs.isdir(dst_path):
        raise _system_error(IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), dst_url, "cannot open output")
    if dst_fs.exists(dst_path) and not overwrite:
        raise _output_exists(dst_url)
    try:
        info = src_fs.info(src_path)
    except OSError as error:
        raise _system_error(error, src_url, "cannot open") from None
    size = int(info["size"])
    name, mtime = "", 0
    if store_name:
        name = posixpath.basename(src_path)
        mtime = _mtime_of(info)
    part = max(chunk, _parse_size(part_size or DEFAULT_PART_SIZE) // chunk * chunk)
    ranges = [(start, min(start + part, size)) for start in range(0, size, part)] or [(0, 0)]

    client = _client(client)
    if parts_via not in ("auto", "client", "storage"):
        raise UsageError(f"parts_via must be 'auto', 'client' or 'storage', not {parts_via!r}", "usage", dst_url)
    local_destination = isinstance(dst_fs, LocalFileSystem)
    if parts_via == "storage" and not local_destination:
        raise UsageError(f"{dst_url}: parts_via='storage' needs a local destination", "usage", dst_url)
    if parts_via == "auto" and (not local_destination or client is None):
        parts_via = "client"
    records: list = []
    written = 0
    with _published(dst_fs, dst_path, dst_url, overwrite) as out, \
            _parts_directory(dst_path, client, parts_via) as parts_dir, _read_buffers_released(client):
        if max_parts_in_flight is None:
            # Parts held by the workers for the client cost memory; parts written to storage
            # only disk, which the output needs anyway, and with every part submitted a worker
            # never waits for the client to take a part in order before it gets more work
            # (measured: 0.72x -> 0.77x of one machine's `sluice -j2` for zstd on 2 workers).
            threads = sum(client.nthreads().values()) if client is not None else (os.cpu_count() or 1)
            max_parts_in_flight = len(ranges) if parts_dir is not None else max(2, 2 * threads)
        header, _ = _native.stream_framing(*options.native(), name, mtime, [])
        out.write(header)
        written += len(header)
        for part_result, chunk_records in _parts_in_order(client, src_url, storage_options, ranges, history, options,
                                                          max_parts_in_flight, parts_dir):
            if parts_dir is None:
                out.write(part_result)
                written += len(part_result)
            else:
                path, part_bytes = part_result
                written += _append_part(out, path, part_bytes)
            records += chunk_records
        _, trailer = _native.stream_framing(*options.native(), name, mtime, records)
        out.write(trailer)
        written += len(trailer)
    return CompressResult(size, written, len(ranges), time.monotonic() - began,
                          "client" if parts_dir is None else "storage")


@contextlib.contextmanager
def _published(fs, path: str, url: str, overwrite: bool):
    """A file to write `path` through: a temporary beside it, moved into place when the block
    ends well and removed when it does not, so that `path` is whole or untouched. A `path` that
    appeared meanwhile is kept unless `overwrite`."""
    parent = posixpath.dirname(path)
    temporary = _temporary_beside(fs, path)
    try:  # failures named for the file asked for, not for the temporary or the parent
        if parent and fs.exists(parent) and not fs.isdir(parent):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if parent:  # created if missing, as sluice.compress_files does (on object stores: nothing to do)
            fs.makedirs(parent, exist_ok=True)
        opened = fs.open(temporary, "wb")
    except OSError as error:
        raise _system_error(error, url, "cannot open output") from None
    try:
        with _NamedWrites(opened, url) as out:
            yield out
        try:
            if fs.exists(path) and overwrite:
                fs.rm(path)
            elif fs.exists(path):
                raise _output_exists(url)
            fs.mv(temporary, path)
        except OSError as error:
            raise _system_error(error, url, "cannot write") from None
    except BaseException:
        try:
            fs.rm(temporary)
        except OSError:
            pass
        raise


class _NamedWrites:
    """An output file whose failures (a full disk, a quota) are sluice's Errors naming the output
    asked for: compress_files' results blamed them on the input ("in.csv: cannot open")."""

    def __init__(self, file, url: str):
        self._file, self._url = file, url

    def write(self, data) -> int:
        try:
            return self._file.write(data)
        except OSError as error:
            raise _system_error(error, self._url, "cannot write") from None

    def __getattr__(self, name):  # flush(), fileno() for copy_file_range, ...
        return getattr(self._file, name)

    def __enter__(self) -> "_NamedWrites":
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._file.close()
        except OSError as error:
            if exc[0] is None:
                raise _system_error(error, self._url, "cannot write") from None


def _workers_see(client, path: str) -> bool:
    """Whether every worker of `client` sees the file `path` of this process's file system (a
    LocalCluster, or a file system all machines share)."""
    try:
        seen = client.run(os.path.isfile, path)
    except Exception:  # noqa: BLE001  (a worker that cannot answer cannot be relied on)
        return False
    return bool(seen) and all(seen.values())


def _remove_tree(directory: str) -> None:
    # After a failure, tasks cancelled while running may still be writing a part: such a write
    # fails once the directory is gone, or lands just before it; a few passes remove that too.
    deadline = time.monotonic() + 10
    shutil.rmtree(directory, ignore_errors=True)
    while os.path.lexists(directory) and time.monotonic() < deadline:
        time.sleep(0.1)
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def _parts_directory(dst_path: str, client, parts_via: str):
    """The directory beside dst_path (`.NAME.sluice-XXXX.parts`) where the tasks write their parts,
    removed with whatever is left in it when the call ends, well or not; None when the parts come
    through the client: parts_via="client", or "auto" and a worker does not see the directory."""
    if parts_via == "client":
        yield None
        return
    directory = _temporary_beside(None, dst_path) + ".parts"
    os.mkdir(directory, 0o700)
    try:
        if parts_via == "auto":
            probe = os.path.join(directory, "probe")
            with open(probe, "wb"):
                pass
            shared = client is not None and _workers_see(client, probe)
            os.unlink(probe)
            if not shared:
                _remove_tree(directory)
                yield None
                return
        yield directory
    finally:
        _remove_tree(directory)


_NOT_SUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF}


def _append_part(out, part: str, expected: int) -> int:
    """Appends the part file `part` (`expected` bytes, as its task wrote) to `out` (a local file)
    and removes it; returns its size."""
    out.flush()
    with open(part, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size != expected:
            raise Error(f"{part}: the part has {size} bytes where its task wrote {expected}", "io", part)
        left = size
        try:
            while left:
                copied = os.copy_file_range(f.fileno(), out.fileno(), left)
                if copied == 0:
                    raise Error(f"{part}: the part ended at byte {size - left} of {size}", "io", part)
                left -= copied
        except OSError as error:
            if isinstance(error, Error) or error.errno not in _NOT_SUPPORTED or left != size:
                raise
            shutil.copyfileobj(f, out)  # a file system without copy_file_range: through this process
    os.unlink(part)
    return size


def _mtime_of(info: dict) -> int:
    for key in ("mtime", "LastModified", "last_modified", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return int(value.timestamp())
        try:
            return int(float(value))
        except (TypeError, ValueError):
            continue
    return 0


def _parts_in_order(client, url, storage_options, ranges, history_bytes, options, window, parts_dir=None):
    """Yields each range's (bytes, records) in order, with at most `window` parts submitted or held;
    with `parts_dir`, (the part's file, records): the tasks write their parts there."""
    count = len(ranges)

    def args(i):
        start, end = ranges[i]
        return (url, storage_options, start, end, min(history_bytes, start), i == count - 1, options,
                None if parts_dir is None else os.path.join(parts_dir, f"{i:08d}"))

    if parts_dir is not None:
        for i, (part_bytes, records) in enumerate(_results_in_order(client, args, count, window)):
            yield (os.path.join(parts_dir, f"{i:08d}"), part_bytes), records
        return
    yield from _results_in_order(client, args, count, window)


def _results_in_order(client, args, count, window):

    if client is None:
        for i in range(count):
            yield _compress_range(*args(i))
        return
    from distributed import wait
    futures = {}
    next_submit = 0
    try:
        for i in range(count):
            while next_submit < count and next_submit < i + window:
                futures[next_submit] = client.submit(_compress_range, *args(next_submit), pure=False,
                                                     key=f"sluice-compress-{uuid.uuid4().hex}-{next_submit}")
                next_submit += 1
            future = futures.pop(i)
            wait(future)
            try:
                yield future.result()
            finally:
                future.release()
    finally:  # an error, or the caller stopped: the parts still submitted are not needed
        for future in futures.values():
            future.cancel()


def _compress_whole(url: str, output_url: str, storage_options: dict, options: _Options, store_name: bool,
                    overwrite: bool):
    """One Dask task: a whole small file compressed to its output; a FileResult's fields."""
    began = time.monotonic()
    try:
        fs, path = url_to_fs(url, **storage_options)
        out_fs, out_path = url_to_fs(output_url, **storage_options)
        if out_fs.exists(out_path) and not overwrite:
            raise _output_exists(output_url)
        info = fs.info(path)
        with fs.open(path, "rb") as f:
            data = f.read()
        fmt, level, chunk, knobs, backend = options.native()
        name, mtime = (posixpath.basename(path), _mtime_of(info)) if store_name else ("", 0)
        body, records = _native.compress_part(b"", data, True, fmt, level, chunk, knobs, backend)
        header, trailer = _native.stream_framing(fmt, level, chunk, knobs, backend, name, mtime, records)
        with _published(out_fs, out_path, output_url, overwrite) as out:
            out.write(header)
            out.write(body)
            out.write(trailer)
        return (url, output_url, "done", len(data), len(header) + len(body) + len(trailer),
                time.monotonic() - began, None, None)
    except (Error, OSError) as error:
        return (url, output_url, "failed", 0, 0, time.monotonic() - began, error, None)


def _compress_group(files: list, storage_options: dict, options: _Options, store_name: bool, overwrite: bool):
    """One Dask task: several small files, each compressed whole to its output."""
    return [_compress_whole(url, output, storage_options, options, store_name, overwrite) for url, output in files]


def compress_files(paths: Iterable, output_dir, format: str = "gzip", level: int | None = None, *, client=None,
                   chunk_size: int | None = None, part_size: int | str | None = None, store_name: bool = True,
                   overwrite: bool = False, storage_options: dict | None = None, backend: str | None = None,
                   progress=None, **knobs: str) -> list[FileResult]:
    """Compresses a batch of files over the cluster, each to output_dir/NAME + the format's
    suffix: files up to part_size whole, in tasks of about part_size bytes of them, bigger ones
    split across tasks as compress() does. Returns one FileResult per path, in order; a file that
    fails is a failed result, not an exception. progress(result) is called as each completes."""
    storage_options = storage_options or {}
    extension = _native.format_info(format)["extension"]
    asked_level = level  # for compress(), which resolves it itself (gzip's 0 is no level)
    level = _level(level, format)
    chunk, _ = _native.chunk_size(format, level, _chunk_size(chunk_size), _knobs(knobs), _backend(backend))
    options = _Options(format, level, chunk, _knobs(knobs), _backend(backend))
    part = max(chunk, _parse_size(part_size or DEFAULT_PART_SIZE) // chunk * chunk)
    if isinstance(paths, (str, bytes, os.PathLike)):  # a str is an iterable of its letters
        raise TypeError(f"paths must be a list of paths, not one ({os.fsdecode(paths)!r}): pass [path]")
    client = _client(client)
    urls = [os.fspath(p) for p in paths]
    outputs = [posixpath.join(os.fspath(output_dir), posixpath.basename(url_to_fs(u, **storage_options)[1]) + extension)
               for u in urls]
    results: list = [None] * len(urls)
    small, big, failed, sizes = [], [], [], {}
    taken: dict = {}
    for i, url in enumerate(urls):
        if outputs[i] in taken:  # a/x.csv and b/x.csv: the second would overwrite the first
            failed.append((i, (url, outputs[i], "failed", 0, 0, 0.0,
                               UsageError(f"{url}: its output {outputs[i]} is also that of {urls[taken[outputs[i]]]}",
                                          "usage", url), None)))
            continue
        taken[outputs[i]] = i
        fs, path = url_to_fs(url, **storage_options)
        try:
            size = fs.size(path)
        except OSError as error:
            failed.append((i, (url, outputs[i], "failed", 0, 0, 0.0, error, None)))
            continue
        sizes[i] = size
        (big if size > part else small).append(i)

    def finish(i, fields):
        results[i] = FileResult(*fields[:6], _as_error(fields[6], urls[i]) if fields[6] else None, fields[7])
        if progress is not None:
            progress(results[i])

    for i, fields in failed:
        finish(i, fields)
    # Small files go in groups of about a part's bytes, a task each: a task per 4 KB file would
    # cost the scheduler more than the compression.
    groups, group, group_bytes = [], [], 0
    for i in small:
        group.append(i)
        group_bytes += sizes[i]
        if group_bytes >= part or len(group) >= 1000:
            groups.append(group)
            group, group_bytes = [], 0
    if group:
        groups.append(group)
    args = [([(urls[i], outputs[i]) for i in g], storage_options, options, store_name, overwrite) for g in groups]
    if client is None:
        for g, a in zip(groups, args):
            for i, fields in zip(g, _compress_group(*a)):
                finish(i, fields)
    else:
        from distributed import as_completed
        futures = {client.submit(_compress_group, *a, pure=False): g for g, a in zip(groups, args)}
        for future in as_completed(futures):
            for i, fields in zip(futures[future], future.result()):
                finish(i, fields)
    for i in big:
        began = time.monotonic()
        try:
            done = compress(urls[i], outputs[i], format, asked_level, client=client, chunk_size=chunk_size,
                            part_size=part, store_name=store_name, overwrite=overwrite,
                            storage_options=storage_options, backend=backend, **knobs)
            finish(i, (urls[i], outputs[i], "done", done.input_bytes, done.output_bytes,
                       time.monotonic() - began, None, None))
        except (Error, OSError) as error:
            finish(i, (urls[i], outputs[i], "failed", 0, 0, time.monotonic() - began, error, None))
    return results


def _as_error(error, path) -> Error:
    if isinstance(error, OSError):  # named for the input, its errno's class (FileNotFoundError)
        return _system_error(error, path, "cannot open")
    return Error(f"{path}: {error}", "io", path)


# ---- splittable reading ----

@dataclasses.dataclass(frozen=True)
class _Partition:
    """What one partition task reads: units [first, stop) of the file's index (unit-indexed
    streams), or for gzip's independent chunks the compressed targets [start, next_start)."""
    url: str
    first: int = 0
    stop: int = 0
    start: int = 0
    next_start: int | None = None
    number: int = 0


def _open(url, storage_options):
    fs, path = url_to_fs(url, **storage_options)
    try:
        return fs, path, fs.open(path, "rb")
    except OSError as error:  # sluice's error, named for the file (a FileNotFoundError too)
        raise _system_error(error, url, "cannot open") from None


def _index_of(url: str, storage_options: dict) -> tuple[_units.Index, int]:
    fs, path, f = _open(url, storage_options)
    with f:
        size = fs.size(path)
        return _units.index_stream(f, size), size


def _plan(url: str, storage_options: dict, blocksize: int | None):
    """The index of `url` and its partitions of about `blocksize` uncompressed bytes. A file that is
    not compressed (no codec's magic, and no codec's suffix that says it should be) is cut as Dask
    cuts a plain file: every `blocksize` bytes."""
    index, size = _index_of(url, storage_options)
    if not index.format and not _native.format_for_name(url) and not _foreign(url, storage_options):
        plain = dataclasses.replace(index, how="not compressed: read as it is")
        return plain, size, _plain_partitions(url, size, blocksize), "plain"
    if blocksize is None or (not index.splittable and index.independent is None):
        return index, size, [_Partition(url, 0, len(index.units), number=0)], "whole"
    if index.independent is not None:
        header, chunk = index.independent
        fs, path, f = _open(url, storage_options)
        with f:
            f.seek(header)
            first = f.read(2 * chunk + 4096)
        ratio = _first_chunk_ratio(first, chunk)
        if not ratio:  # its first chunk is not what the header promises (or empty): read it whole
            return index, size, [_Partition(url, 0, len(index.units), number=0)], "whole"
        step = max(int(blocksize / ratio), 4096)
        starts = list(range(header, size - 8, step)) or [header]
        if len(starts) == 1:  # one partition: read whole, whatever follows the chunks (a member appended)
            return index, size, [_Partition(url, 0, len(index.units), number=0)], "whole"
        parts = [_Partition(url, start=s, next_start=(starts[k + 1] if k + 1 < len(starts) else None), number=k)
                 for k, s in enumerate(starts)]
        return index, size, parts, "chunks"
    parts, first, content = [], 0, 0
    for i, unit in enumerate(index.units):
        content += unit.content or unit.size * 3
        if content >= blocksize or i == len(index.units) - 1:
            parts.append(_Partition(url, first, i + 1, number=len(parts)))
            first, content = i + 1, 0
    return index, size, parts, "units"


def _foreign(url: str, storage_options: dict) -> str:
    """A format sluice does not decode, by the file's first bytes or its name ("an xz stream"):
    such a file is not read as plain text (its compressed bytes were given back as its lines)."""
    fs, path, f = _open(url, storage_options)
    with f:
        return _native.foreign_format(f.read(4096), path)


def _plain_partitions(url: str, size: int, blocksize: int | None) -> list[_Partition]:
    """A file that is not compressed in Dask's partitions (dask.bytes.read_bytes): none for an
    empty file, else size // blocksize of them (at least one), the spare bytes spread among them."""
    if blocksize is None:
        return [_Partition(url, number=0)]
    if size == 0:
        return []
    step = size / (size // blocksize) if size % blocksize and size > blocksize else blocksize
    starts, place = [0], 0.0
    while size - place > step * 2 - 1:
        place += step
        starts.append(int(place))
    return [_Partition(url, start=s, next_start=(starts[k + 1] if k + 1 < len(starts) else None), number=k)
            for k, s in enumerate(starts)]


_LOOK_AHEAD_UNITS = 16


def _task_index(index: _units.Index, part: _Partition) -> tuple[_units.Index, _Partition]:
    """The part of `index` one partition task needs: its units and a few after them."""
    stop = min(len(index.units), part.stop + _LOOK_AHEAD_UNITS)
    units = index.units[part.first:stop]
    frames = {unit.frame: index.frames[unit.frame] for unit in units if unit.frame in index.frames}
    sub = dataclasses.replace(index, units=units, frames=frames, truncated=stop < len(index.units))
    return sub, dataclasses.replace(part, first=0, stop=part.stop - part.first)


def _first_chunk_ratio(data: bytes, chunk: int) -> float | None:
    try:
        for piece in _units.inflate_chunks(data, chunk):
            return len(piece.data) / max(1, piece.end - piece.start)
    except zlib.error:
        return None
    return None


def _read_units(f, index: _units.Index, first: int, stop: int, url: str) -> bytes:
    units = index.units[first:stop]
    f.seek(units[0].offset)
    data = f.read(units[-1].offset + units[-1].size - units[0].offset)
    try:
        return _decompress(_units.unit_stream(index, units, data), threads=1)
    except Error as error:
        raise _in_file(error, url, lambda at: _units.file_offset(index, units, at)) from None


def _in_file(error: Error, url: str, where) -> Error:
    """`error` of decoding part of the file at `url` as the file's: named for it, each "at byte
    N" (of the part) moved to where the byte is in the file (`where(N)`)."""
    def moved(text: str) -> str:
        return re.sub(r"at byte (\d+)", lambda m: f"at byte {where(int(m[1]))}", text)
    offset = None if error.offset is None else where(error.offset)
    named = type(error)(f"{url}: {moved(str(error))}", error.kind, url, offset, f"{url}: {moved(error.detail)}",
                        error.errno)
    named.output = error.output
    return named


class _PlainPieces:
    """The same for a file that is not compressed: a partition owns bytes [start, next_start)."""

    _STEP = 1 << 20

    def __init__(self, f, part: _Partition):
        self.f, self.part = f, part

    def own(self) -> bytes:
        self.f.seek(self.part.start)
        return self.f.read() if self.part.next_start is None else self.f.read(self.part.next_start - self.part.start)

    def following(self):
        if self.part.next_start is None:
            return
        self.f.seek(self.part.next_start)
        while piece := self.f.read(self._STEP):
            yield piece


class _UnitPieces:
    """The decoded bytes of a partition and, on demand, of what follows it (unit-indexed). A task
    is given its own units and a few after them (the whole index in every task would make the
    graph grow with partitions x units); a record longer than those re-reads the index."""

    def __init__(self, f, index, part: _Partition, size: int):
        self.f, self.index, self.part, self.size = f, index, part, size

    def own(self) -> bytes:
        if self.part.stop <= self.part.first:
            return b""
        return _read_units(self.f, self.index, self.part.first, self.part.stop, self.part.url)

    def following(self):
        index, j = self.index, self.part.stop
        while True:
            if j >= len(index.units):
                if not index.truncated:
                    return
                last = index.units[-1]
                index = _units.index_stream(self.f, self.size)  # the whole index, once
                j = next(k for k, unit in enumerate(index.units) if unit.offset > last.offset)
                continue
            yield _read_units(self.f, index, j, j + 1, self.part.url)
            j += 1


# Stored blocks hold at most 65,535 bytes after a 5-byte header (RFC 1951, 3.2.4).
_STORED_BLOCK_SPAN = 65535 + 5
# The longest read for one chunk, in most_deflated(chunk)s: a chunk of flushed pieces of a byte
# each takes about 3.6 bytes a byte (a fixed-Huffman block and a partial flush each).
_MOST_READ_CHUNKS = 8
# What a start's search reads at a time: candidates (_SCAN_BYTES), and the chunks after one,
# from _FIRST_READ_BYTES doubled while a chunk goes on (most candidates fail within bytes).
_SCAN_BYTES = 1 << 20
_FIRST_READ_BYTES = 16 << 10


class _ChunkPieces:
    """The same for gzip's one member of independent chunks: a partition owns the chunks that
    start in [start, next_start). Chunk starts are found after sync flushes and checked by
    inflating what follows (the pattern can occur inside compressed data), and a partition checks
    that the chunk it ends before is where the next partition, by the same rule, begins. Members
    of the same chunks that follow one another (a `cat` of sluice's outputs) are read as one: the
    chunks go on after a trailer at the next member's first chunk."""

    def __init__(self, f, size, index, part: _Partition):
        self.f, self.size, self.part = f, size, part
        self.header, self.chunk = index.independent
        self.limit = _units.most_deflated(self.chunk)
        self.end: int | None = None
        # After own(): what it gave, member by member (_check_members): the CRC-32 and length of
        # each run of its chunks, with the trailer's offset, CRC-32 and ISIZE where a run ends a
        # member, else None.
        self.checks: list[tuple[int, int, tuple[int, int, int] | None]] = []
        self._after: dict[int, int | None] = {}  # _after_member's answers

    def _read(self, at, length):
        self.f.seek(at)
        return self.f.read(length)

    def _fail(self, what: str, at: int):
        raise CorruptDataError(f"{self.part.url}: {what} at byte {at}; read it with blocksize=None", "corrupt_data",
                               self.part.url, at)

    def _ends_member(self, trailer: int) -> bool:
        """Whether the member's trailer at `trailer` ends the file (zero padding after it aside,
        all of it: a member after zeros is no padding)."""
        if trailer + 8 > self.size:
            return False
        for at in range(trailer + 8, self.size, 1 << 20):
            if self._read(at, 1 << 20).strip(b"\0"):
                return False
        return True

    def _after_member(self, trailer: int) -> int | None:
        """Where the chunks go on after the member whose trailer is at `trailer`: None where it
        ends the file (zero padding after it aside), the next member's first chunk where one of
        the same chunks follows at once; else CorruptDataError."""
        if trailer not in self._after:
            head = self._read(trailer + 8, 1 << 16)
            if head[:2] != b"\x1f\x8b" and self._ends_member(trailer):
                self._after[trailer] = None
            elif (next_member := _units.independent_header(head)) and next_member[1] == self.chunk:
                self._after[trailer] = trailer + 8 + next_member[0]
            else:
                self._fail("the stream goes on after a member, not as a member of the same chunks", trailer + 8)
        return self._after[trailer]

    def _chunk_start(self, target: int) -> int | None:
        """Where the partition that starts at `target` (compressed) begins: a chunk start found
        from `target` alone, so that the partition before, which ends there, finds the same one.
        None where target is in the member's last chunk (nothing to own)."""
        if target <= self.header:
            return self.header
        at, step = target, _SCAN_BYTES
        while at < self.size:
            data = self._read(at, step + len(_units.SYNC_FLUSH) - 1)  # each pattern in one window
            for candidate in _units.chunk_candidates(data, at):
                found = self._proven_start(candidate)
                if found is not None:
                    return None if found == self.size else found
            at += step
        return None

    def _proven_start(self, candidate: int) -> int | None:
        """If a chunk starts at `candidate` (just after a sync flush pattern), a chunk start the
        chunks after it prove: the candidate where its first chunk is a whole one of the chunk
        size, else where that chunk ends (self.size where it ends the member); None where they
        say it is not one.

        The chunks from a true start end on sync flushes, and some run of them holds exactly the
        chunk size within two multiples of it: chunks end at every multiple of the chunk size from
        the member's start and where a writer's flush ended one early, so the chunks between two
        multiples hold exactly that; or they reach the member's end. False patterns defeat that in
        three ways that data meets by chance, each answered here (a file built to deceive these
        rules still can: own()'s order check and the member's CRC-32 then make a computation of
        all partitions fail, and a partition computed alone trusts its start; docs/dask.md):
        - The bytes after one can inflate, by chance, to a few bytes that end where the chunk
          they are in ends (a true end), and the true chunks after that hold the run. So the
          start is taken where the candidate's first chunk ends, and proven from there.
        - A block can end at a pattern inside a chunk (inflate_chunks: a flushed piece that did
          not compress): what follows may refer back across it. So the start must inflate with
          no history before it for 32 KiB of output, after which nothing can refer back past it.
        - Another stream stored inside the data (a .gz of the same chunk size in a tar) holds
          such runs itself; but stored data comes in blocks of at most 65,535 bytes, and the
          stored block's header after them breaks that stream. So the chunks must go on for
          more than a stored block's length from the candidate."""
        try:
            first = next(self._chunks(candidate, None, window=_FIRST_READ_BYTES))
        except (CorruptDataError, zlib.error, StopIteration):
            return None
        if first.last:  # where the next member's chunks begin, if any
            following = self._after_member(first.end)
            return self.size if following is None else following
        if len(first.data) == self.chunk and first.end - candidate > _STORED_BLOCK_SPAN:
            # The common case, proven at once: a whole chunk of the chunk size starts on a
            # multiple of it (a chunk that starts elsewhere ends at the next one or earlier), so
            # nothing after it refers back past it, and bytes after a false pattern inflate to
            # exactly a chunk's size and end on a sync flush only by a chance far below the rest.
            return candidate
        start, sums, total, proven = first.end, {0}, 0, False
        try:
            for piece in self._chunks(start, None, window=_FIRST_READ_BYTES):
                if piece.last:
                    return start  # its trailer ends the file (_chunks checks)
                total += len(piece.data)
                proven = proven or total - self.chunk in sums
                if not proven and total > 2 * self.chunk:
                    return None  # two multiples of the chunk size passed with no run that fits
                sums.add(total)
                if proven and total >= _units.WINDOW and piece.end - candidate > _STORED_BLOCK_SPAN:
                    return start
        except (CorruptDataError, zlib.error):
            return None
        return None

    def _chunks(self, start: int, stop: int | None, window: int = 4 << 20):
        """Yields the Chunks (_units; offsets in the file) from `start` up to `stop` (None: to
        the member's end); raises CorruptDataError where they do not decode or do not end at
        `stop`."""
        window = max(window, _FIRST_READ_BYTES)
        at, history, length = start, b"", window
        while stop is None or at < stop:
            data = self._read(at, length)
            progressed = False
            until = stop - at if stop is not None and stop - at <= len(data) else None
            try:
                for piece in _units.inflate_chunks(data, self.chunk, until=until, history=history,
                                                   at_eof=at + len(data) >= self.size):
                    progressed = True
                    end = at + piece.end
                    following = self._after_member(end) if piece.last else None
                    yield piece._replace(start=at + piece.start, end=end)
                    if piece.last:
                        if following is None:
                            return
                        end = following  # the next member's first chunk, read without history
                    if stop is not None and end >= stop:
                        if end != stop:
                            self._fail("no chunk starts where the next partition begins", stop)
                        return
                    next_at = end
                    history = b"" if piece.last else _units.slide(history, piece.data)
                    if piece.last:
                        break
            except zlib.error as error:
                self._fail(f"corrupt deflate data ({error})", at)
            if not progressed:
                if at + len(data) < self.size and length < _MOST_READ_CHUNKS * self.limit:
                    length *= 2  # a chunk longer than `data`: flushed pieces of a few bytes expand
                    continue
                if at + len(data) >= self.size:  # the file ends inside the chunk: cut short, as whole
                    raise TruncatedError(f"{self.part.url}: unexpected end of input: the gzip member is truncated "
                                         f"(at byte {self.size})", "corrupt_data", self.part.url, self.size)
                self._fail("no chunk could be decoded", at)
            at, length = next_at, window

    def own(self) -> bytes:
        begin = self._chunk_start(self.part.start)
        self.end = self._chunk_start(self.part.next_start) if self.part.next_start is not None else None
        # Starts found apart must not go back: then every partition's chunks are the next one's
        # start (checked by _chunks), and all of them the member's, once each.
        if (begin is None and self.end is not None) or (begin is not None and self.end is not None
                                                        and begin > self.end):
            self._fail("the partitions' starts go back", self.part.start)
        pieces, crc, length = [], 0, 0
        if begin is not None and (self.end is None or begin < self.end):
            for piece in self._chunks(begin, self.end):
                pieces.append(piece.data)
                crc = _native.combine_crc32(crc, _native.crc32(piece.data), len(piece.data))
                length += len(piece.data)
                if piece.last:  # a member's trailer: its CRC-32 and ISIZE
                    self.checks.append((crc, length, (piece.end, *struct.unpack("<II", self._read(piece.end, 8)))))
                    crc, length = 0, 0
        if length or not self.checks:
            self.checks.append((crc, length, None))
        return b"".join(pieces)

    def following(self):
        if self.end is not None:
            yield from (piece.data for piece in self._chunks(self.end, None))


def _partition_bytes(part: _Partition, storage_options: dict, delimiter: bytes | None, kind: str,
                     index: _units.Index, size: int):
    """One partition's bytes: Dask's delimiter rule applied to the decoded stream, with the
    partition's start at its first unit's uncompressed offset: it begins after the first
    delimiter at or after that offset (the first partition at 0) and ends after the first
    delimiter at or after the next partition's start; so each record is in exactly one. For
    gzip's members of independent chunks, (bytes, its part of the members' checks:
    _ChunkPieces.checks)."""
    fs, path, f = _open(part.url, storage_options)
    with f:
        if kind == "whole":
            f.seek(0)
            try:
                return _decompress(f.read(), threads=1)
            except Error as error:
                raise _in_file(error, part.url, lambda at: at) from None
        if kind == "plain":
            return _delimited(part, _PlainPieces(f, part), delimiter)
        pieces = _UnitPieces(f, index, part, size) if kind == "units" else _ChunkPieces(f, size, index, part)
        data = _delimited(part, pieces, delimiter)
        return (data, pieces.checks) if kind == "chunks" else data


def _delimited(part: _Partition, pieces, delimiter: bytes | None) -> bytes:
    """The partition's records: its own bytes, cut by Dask's delimiter rule (_partition_bytes)."""
    own = pieces.own()
    if delimiter is None:
        return own
    # Offsets below are from the partition's start: `own` ends where the next one starts.
    data, following = bytearray(own), pieces.following()
    next_start = len(own)

    def more() -> bool:
        piece = next(following, None)
        if piece is None:
            return False
        data.extend(piece)
        return True

    start = 0
    if part.number > 0:  # after the first delimiter that starts in this partition
        while len(data) < next_start + len(delimiter) - 1 and more():
            pass
        found = data.find(delimiter, 0, next_start + len(delimiter) - 1)
        if found < 0:
            return b""  # the record that began before this partition runs through it
        start = found + len(delimiter)
    # ... to the end of the first delimiter that starts at or after the next partition's start.
    searched = next_start
    while True:
        found = data.find(delimiter, searched)
        if found >= 0:
            return bytes(data[start:found + len(delimiter)])
        searched = max(next_start, len(data) - len(delimiter) + 1)
        if not more():
            return bytes(data[start:])


def _check_members(last, checks: list, url: str) -> bytes:
    """The last partition's bytes once the CRC-32s and lengths of all partitions' chunks, joined
    in order, are each member's trailer's; else CorruptDataError (a change that still inflates:
    data stored as it is, a literal's code turned into another's)."""
    crc, length, members = 0, 0, 0
    for part in checks:
        for part_crc, part_length, trailer in part:
            crc = _native.combine_crc32(crc, part_crc, part_length)
            length += part_length
            if trailer is None:
                continue
            at, stored_crc, stored_size = trailer
            if (crc, length % (1 << 32)) != (stored_crc, stored_size):
                raise CorruptDataError(f"{url}: the data does not match the member's CRC-32 and size (trailer at byte "
                                       f"{at}: {stored_crc:08x}, {stored_size}; the partitions give {crc:08x}, "
                                       f"{length % (1 << 32)})", "corrupt_data", url, at)
            crc, length, members = 0, 0, members + 1
    if members == 0 or length:
        raise Error(f"{url}: no partition reached the last member's end", "internal", url)
    return last[0]


def read_bytes(urlpath, delimiter: bytes | None = None, blocksize: int | str | None = "64 MiB",
               sample: int | bool = 10_000, include_path: bool = False, storage_options: dict | None = None):
    """dask.bytes.read_bytes for compressed files: (sample, blocks[, paths]), blocks a list per
    file of dask.delayed partitions of about `blocksize` uncompressed bytes each, cut at unit
    boundaries without decoding; with a delimiter, each partition starts after the first
    delimiter at or after its start and ends after the first one at or after its end, as Dask
    does for plain files. A stream that cannot be cut is one partition; blocksize=None: one per
    file. Any of gzip, zstd and lz4 (the format is told from the data); a file that is none of them
    is read as it is, cut every `blocksize` bytes as Dask cuts it, unless its name has a codec's
    suffix (x.gz that is not gzip is CorruptDataError, as for `sluice -d`)."""
    from dask import delayed
    storage_options = storage_options or {}
    fs, _, paths = fsspec.get_fs_token_paths(urlpath, storage_options=storage_options)
    if not paths:
        raise _system_error(FileNotFoundError(errno.ENOENT, "resolved to no files"), str(urlpath), "cannot open")
    blocksize = _blocksize(blocksize)
    blocks, urls, plain = [], [], set()
    for path in paths:
        url = fs.unstrip_protocol(path)
        index, size, parts, kind = _plan(url, storage_options, blocksize)
        if kind == "plain":
            plain.add(url)
        tasks = []
        for p in parts:
            task_index, task_part = _task_index(index, p) if kind == "units" else (index, p)
            tasks.append(delayed(_partition_bytes, pure=True)(
                task_part, storage_options, delimiter, kind, task_index, size,
                dask_key_name=f"sluice-read-{uuid.uuid4().hex}-{p.number}"))
        if kind == "chunks":
            # A member's CRC-32 covers all of it: the last partition's bytes come once every
            # partition's part of the checks agrees with the trailers (a few numbers each move).
            checks = [delayed(operator.itemgetter(1), pure=True)(task) for task in tasks]
            tasks = [delayed(operator.itemgetter(0), pure=True)(task) for task in tasks[:-1]] + \
                [delayed(_check_members, pure=True)(tasks[-1], checks, url)]
        blocks.append(tasks)
        urls.append(url)
    sample_bytes = b""
    if sample:
        with fsspec.open(urls[0], "rb", compression=None if urls[0] in plain else "sluice", **storage_options) as f:
            sample_bytes = f.read(int(sample))
            if delimiter:
                while True:
                    more = f.read(int(sample))
                    if not more:
                        break
                    sample_bytes += more
                    if delimiter in more:
                        break
                cut = sample_bytes.rfind(delimiter)
                if cut >= 0:
                    sample_bytes = sample_bytes[:cut + len(delimiter)]
    if include_path:
        return sample_bytes, blocks, urls
    return sample_bytes, blocks


def _lines(data: bytes, encoding: str, errors: str, linedelimiter: str | None) -> list[str]:
    text = data.decode(encoding, errors)
    if linedelimiter in (None, ""):  # io's universal newlines, as Dask reads them ("" keeps the ends)
        return list(io.StringIO(text, newline=linedelimiter))
    pieces = text.split(linedelimiter)
    lines = [piece + linedelimiter for piece in pieces[:-1]]
    if pieces[-1]:  # a last line without its delimiter (the end of the file)
        lines.append(pieces[-1])
    return lines


def read_text(urlpath, blocksize: int | str | None = "64 MiB", encoding: str = "utf-8", errors: str = "strict",
              linedelimiter: str | None = None, storage_options: dict | None = None):
    """dask.bag.read_text for compressed files: a Bag of lines (each with its delimiter, as Dask
    gives them), partitions cut at unit boundaries as read_bytes() cuts them (and a file that is
    not compressed as Dask cuts it, as read_bytes() reads it). linedelimiter as
    Dask's: None (the default) reads "\r\n" and "\r" as "\n", as text files are read
    (io's universal newlines); "" ends lines at any of them, kept as they are; any other string
    ends lines there ("\r\n": "\n" alone is no end)."""
    import dask.bag as db
    from dask import delayed
    delimiter = linedelimiter.encode(encoding) if linedelimiter else b"\n"
    _, blocks = read_bytes(urlpath, delimiter=delimiter, blocksize=blocksize, sample=False,
                           storage_options=storage_options)
    parts = [delayed(_lines)(block, encoding, errors, linedelimiter) for file_blocks in blocks for block in file_blocks]
    return db.from_delayed(parts)


def _csv_frame(block: bytes, header: bytes, first: bool, kwargs: dict, meta):
    import io
    import pandas as pd
    if not block.strip() or (first and block.strip() == header.strip()):
        return meta  # a partition whose rows all went to its neighbours
    return pd.read_csv(io.BytesIO(block if first else header + block), **kwargs)


def read_csv(urlpath, blocksize: int | str | None = "64 MiB", storage_options: dict | None = None,
             **kwargs: Any):
    """dask.dataframe.read_csv for compressed files: partitions cut at unit boundaries (rows that
    straddle one belong to exactly one partition), each parsed by pandas.read_csv(**kwargs) with
    the file's header line. The first row must be the header (pandas' default)."""
    import io
    import dask.dataframe as dd
    import pandas as pd
    from dask import delayed
    if kwargs.get("header", "infer") not in ("infer", 0) or {"names", "skiprows", "skipfooter"} & set(kwargs):
        raise UsageError("sluice.dask.read_csv needs the header on the first line (no header=, names=, skiprows= "
                         "or skipfooter=): it is given to every partition", "usage", str(urlpath))
    sample, blocks = read_bytes(urlpath, delimiter=b"\n", blocksize=blocksize, sample=256 * 1024,
                                storage_options=storage_options)
    header = sample[:sample.find(b"\n") + 1] if b"\n" in sample else sample
    meta = pd.read_csv(io.BytesIO(sample), **kwargs).iloc[:0]
    parts = []
    for file_blocks in blocks:
        for k, block in enumerate(file_blocks):
            parts.append(delayed(_csv_frame)(block, header, k == 0, kwargs, meta))
    return dd.from_delayed(parts, meta=meta)


def partitions(urlpath, blocksize: int | str | None = "64 MiB", storage_options: dict | None = None) -> dict:
    """How read_bytes() would cut each file: {url: (how the file was indexed, partition count)}."""
    storage_options = storage_options or {}
    fs, _, paths = fsspec.get_fs_token_paths(urlpath, storage_options=storage_options)
    out = {}
    for path in paths:
        url = fs.unstrip_protocol(path)
        index, _, parts, _ = _plan(url, storage_options, _blocksize(blocksize))
        out[url] = (index.how, len(parts))
    return out
