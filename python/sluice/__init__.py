"""Parallel gzip, zstd and lz4 for Python, on every core, from the sluice C++ library.

The calls release the GIL and run the chunks of one call on all cores; they are safe from many
threads at once, and Ctrl-C stops them within a fraction of a second (KeyboardInterrupt, no
partial output left). Errors are sluice.Error (an OSError) and its subclasses, with the file
name and the offset in the input; bad arguments are sluice.UsageError, also a ValueError.

    import sluice
    packed = sluice.compress(data)                     # gzip every reader reads, made on all cores
    data = sluice.decompress(packed)                   # any gzip, zstd or lz4: format detected
    parts = sluice.compress_many(payloads, format="zstd")
    with sluice.open("big.log.gz", "wt") as f:         # like gzip.open, for all three formats
        f.write(text)
"""
from __future__ import annotations

import atexit
import builtins
import codecs
import collections
import dataclasses
import errno
import functools
import gc
import importlib.abc
import importlib.machinery
import io
import itertools
import operator
import os
import stat
import struct
import sys
import tempfile
import threading
import time
import warnings
import weakref
from typing import Any, BinaryIO, Iterable, Iterator, NoReturn

from . import _native, _units


class Error(OSError):
    """An error of sluice, like gzip.BadGzipFile an OSError: bad, truncated or oversized input, a
    failing file, or (UsageError) bad arguments. The message is the sluice program's.

    kind: "corrupt_data", "trailing_garbage", "limit", "usage", "io", "internal" or "cancelled";
    message: what str() gives; args: (errno, strerror) where a system call failed, as OSError's,
    else (message,); path (also filename): the file it concerns, None for bytes in memory; offset:
    where in the input (compressed bytes) it was found, when known; detail: the reason without
    the context;
    output: what Decompressor.flush() decoded before the error and had not returned (else b"");
    index: the payload compress_many() failed on (else None).
    """

    def __init__(self, message: str, kind: str = "io", path: str | None = None, offset: int | None = None,
                 detail: str = "", errno: int | None = None):
        # args as OSError's: (errno, strerror) for a system call's failure, else (message,) as
        # gzip.BadGzipFile's; str() is the message either way.
        if errno is not None:
            super().__init__(errno, _os_strerror(errno))
        else:
            super().__init__(message)
        self.message = message
        self.kind = kind
        self.path = path
        self.filename = path
        self.offset = offset
        self.detail = detail or message
        self.output = b""
        self.index: int | None = None

    def __str__(self) -> str:
        return self.message

    def __reduce__(self):
        # With its attributes (output, index, a strerror set since), which pickling and copy.copy
        # dropped: an error from a process pool or a Dask worker came back without them.
        state = dict(self.__dict__, strerror=self.strerror)
        return (type(self), (self.message, self.kind, self.path, self.offset, self.detail, self.errno), state)


class CorruptDataError(Error):
    """The input is not valid data in its format (or is cut short: TruncatedError)."""


class TruncatedError(CorruptDataError, EOFError):
    """The input ends inside a member or frame. Also an EOFError, as gzip's "Compressed file ended
    before the end-of-stream marker was reached" is."""


class TrailingGarbageError(CorruptDataError):
    """Bytes that are not data follow the last member or frame; everything before them decoded."""


class OutputLimitError(Error):
    """The output would exceed the max_output asked for (a decompression bomb, say)."""


class UsageError(Error, ValueError):
    """Bad arguments: an unknown format or setting, a level out of range. Also a ValueError."""


_native._register_errors(Error, CorruptDataError, TruncatedError, TrailingGarbageError, OutputLimitError, UsageError)


def _os_strerror(number: int) -> str:
    return os.strerror(number)


# A system call's failure is also the OSError subclass Python gives its errno, so that
# `except FileNotFoundError` and `except PermissionError` catch sluice's as they catch open()'s.
class _FileNotFoundError(Error, FileNotFoundError):
    """sluice.Error for ENOENT; also a FileNotFoundError."""


class _PermissionError(Error, PermissionError):
    """sluice.Error for EACCES or EPERM; also a PermissionError."""


class _FileExistsError(Error, FileExistsError):
    """sluice.Error for EEXIST; also a FileExistsError."""


class _IsADirectoryError(Error, IsADirectoryError):
    """sluice.Error for EISDIR; also an IsADirectoryError."""


class _NotADirectoryError(Error, NotADirectoryError):
    """sluice.Error for ENOTDIR; also a NotADirectoryError."""


class _BrokenPipeError(Error, BrokenPipeError):
    """sluice.Error for EPIPE (the reader of a pipe or FIFO went away); also a BrokenPipeError."""


_SYSTEM_ERRORS = {
    errno.ENOENT: _FileNotFoundError, errno.EACCES: _PermissionError, errno.EPERM: _PermissionError,
    errno.EEXIST: _FileExistsError, errno.EISDIR: _IsADirectoryError, errno.ENOTDIR: _NotADirectoryError,
    errno.EPIPE: _BrokenPipeError,
}
_native._register_system_errors(_SYSTEM_ERRORS)


def _system_error(error: OSError, path: str, doing: str) -> Error:
    """A system call's failure that Python raised (os.open, a file object's write) as the native
    layer reports its own: sluice's Error, the subclass of its errno where there is one, named for
    `path` (the file asked for, not a temporary beside it) as "PATH: cannot open: No such file or
    directory". A sluice Error is returned as it is."""
    if isinstance(error, Error):
        return error
    number = error.errno
    if number is None:  # raised without one (fsspec's FileNotFoundError(path)): its class says it
        number = next((n for n, kind in _SYSTEM_ERRORS.items() if isinstance(error, kind.__bases__[1])), None)
    reason = os.strerror(number) if error.errno is None and number is not None else (error.strerror or error)
    detail = f"{doing}: {reason}"
    return _SYSTEM_ERRORS.get(number, Error)(f"{path}: {detail}", "io", path, None, detail, number)


def _output_exists(path: str) -> Error:
    """An output that is there and may not be replaced, as the native layer reports one: "PATH:
    already exists", also a FileExistsError."""
    return _FileExistsError(f"{path}: already exists", "io", path, None, "already exists", errno.EEXIST)


def _path_name(path, what: str = "path") -> str:
    """A path (str, bytes or os.PathLike) as a name, as os.fsdecode gives it. One with a NUL byte
    is refused, as os.open() refuses it: the native layer's system calls would end the name there
    (an archive "a.tar\\0x" would open a.tar, a destination "d\\0/../x" would be d)."""
    name = os.fsdecode(path)
    if "\0" in name:
        raise UsageError(f"{what} {name!r}: embedded null byte", "usage", name)
    return name

# Not the modules tar and zip: `from sluice import *` replaced the builtin zip() (open is gzip's
# own habit: gzip.__all__ has it). They are sluice.tar and sluice.zip.
__all__ = [
    "compress", "decompress", "compress_many", "compress_iter", "Compressor", "Decompressor", "FLUSH_NONE",
    "FLUSH_SYNC", "FLUSH_FINISH", "open", "SluiceFile", "formats",
    "compress_files", "decompress_files", "FileResult", "run_pipeline", "PipelineItem", "PipelineReport",
    "Error", "CorruptDataError", "TruncatedError", "TrailingGarbageError", "OutputLimitError", "UsageError",
    "format_info", "__version__",
]
__version__: str = _native.version

# What a read asks of the underlying file at a time.
_READ_BYTES = 1 << 20
# The buffer of the io.BufferedReader that serves a SluiceFile's reads and lines; a read that asks
# the run for fewer than _SMALL_RAW_READ bytes (read1() of a few bytes) takes this much instead and
# keeps the rest for the next.
_BUFFER_BYTES = 128 * 1024
_SMALL_RAW_READ = 16 * 1024
# A compressed input of at most _SMALL_INPUT bytes that can be read without moving it (a regular
# file, a BytesIO) is read whole and decoded in one call on the calling thread, when it decodes to
# at most _SMALL_OUTPUT: no run, thread or feeding for a small file (BENCHMARKS.md, "Small files
# through sluice.open"). Anything else, an error included, is decoded by a run, as any input is.
_SMALL_INPUT = 256 * 1024
_SMALL_OUTPUT = 8 * 1024 * 1024
# Writes of fewer than _SMALL_WRITE bytes (a log's records) are gathered up to _GATHER_BYTES before
# they go to the engine (_GatheredWriter).
_SMALL_WRITE = 16 * 1024
_HEAD_BYTES = 10  # a gzip header's fixed part (SluiceFile.mtime)
_APPEND_DETECTED_FROM = 64 * 1024  # what "ab" tells a file's format from, after skippable frames
_SKIPPABLE_FRAMES_PASSED = 1024  # in front of a stream "ab" appends to: past that, told by its name
_GATHER_BYTES = 64 * 1024
# A forward seek further than this, on a stream whose units record their sizes, restarts decoding
# at the unit that holds the target rather than decoding what lies between.
_SEEK_BY_INDEX_BYTES = 1 << 20


def formats() -> list[str]:
    """The formats sluice knows: "gzip", "zstd", "lz4" and any registered in C++."""
    return _native.formats()


def _format_name(format):
    """`format` as given, checked: a format's name or None. A number is the level given where
    gzip.open() and gzip.compress() take it (their third and second argument): said so, rather
    than the native layer's TypeError listing its signatures."""
    if format is not None and not isinstance(format, str):
        raise TypeError(f"format must be a format's name ('gzip', 'zstd', 'lz4') or None, not {format!r}"
                        + (f"; a level goes in level={format}" if isinstance(format, int) else ""))
    return format


def _level(level: int | None, format: str) -> int:
    """The level for the library, where 0 is the format's default: None, and -1 (zlib's
    Z_DEFAULT_COMPRESSION) for a format that has no level -1 (gzip, lz4; zstd's -1 is its first
    fast level, as in zstandard). Level 0 of a format whose levels start above it is an error, not
    the default (gzip.compress(data, 0) stores the data); zstd's level 0 is its default, as in
    zstd's own API."""
    _format_name(format)
    if level is None:
        return 0
    level = _integer(level, "level")
    if level in (-1, 0):
        low, high, _ = _native.format_info(format)["levels"]
        if level == -1 and low > -1:
            return 0
        if level == 0 and low > 0:
            raise UsageError(f"{format} level must be between {low} and {high}, not 0", kind="usage")
    return level


def _knobs(knobs: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in knobs.items()}


def _integer(value, name: str) -> int:
    """An integer setting as Python's own calls take one: anything with __index__ (numpy's
    integers among them), but not a bool."""
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")


def _compressing(format) -> str:
    """format= where compressing: a format's name (None: gzip, the default), checked before the
    native call (_threads says why); "" is no format (it was gzip, silently)."""
    return "gzip" if format is None else _format_name(format)


def _threads(value) -> int:
    """threads= as the library takes it: None (or 0) is every core. Checked here: a wrong type
    reaching the native call made pybind11 put the whole input in its message (a 20 MB buffer
    gave a 57 MB TypeError)."""
    return 0 if value is None else _integer(value, "threads")


def _backend(value) -> str:
    """backend= as the library takes it ("": the format's choice), checked as _threads is."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"backend must be a str or None, not {type(value).__name__}")
    return value


def _mtime(value) -> int:
    """A gzip header's MTIME: 0 to 2**32 - 1 (gzip.compress refuses others as well); a float
    (time.time()) to its whole seconds, as gzip.compress takes it."""
    if isinstance(value, float) and value == value:
        value = int(value)
    value = _integer(value, "mtime")
    if not 0 <= value < 1 << 32:
        raise UsageError(f"mtime must be between 0 and 2**32 - 1 (a gzip header's field), not {value}", "usage")
    return value


def _chunk_size(value) -> int:
    """chunk_size= as the library takes it: None (or 0) is the format's default."""
    if value is None:
        return 0
    value = _integer(value, "chunk_size")
    if value < 0:
        raise UsageError(f"chunk_size must be a number of bytes (or None for the format's default), not {value}",
                         kind="usage")
    return value


def _compresslevel(level: int | None, knobs: dict):
    """gzip's and zlib's name for the level (compresslevel=9), taken from the keywords."""
    if "compresslevel" in knobs:
        given = knobs.pop("compresslevel")
        if level is not None and level != given:
            raise TypeError("level and compresslevel are the same setting: give one")
        return given
    return level


def compress(data, format: str = "gzip", level: int | None = None, threads: int | None = None, *,
             chunk_size: int | None = None, backend: str | None = None, mtime: int | None = None,
             **knobs: str) -> bytes:
    """Compresses a bytes-like object on all cores (no copy of it is made, but of a strided view).

    format: "gzip" (the default: one member any gzip reader reads), "zstd" or "lz4". level: the
    format's (gzip 1-9, zstd 1-22 and its fast levels -1 and below, lz4 1-12); None is its
    default, and so is -1 for gzip and lz4 (zlib's Z_DEFAULT_COMPRESSION). threads: None for all
    cores. mtime: the gzip header's MTIME (None: 0, as zlib writes it, so that the same data gives
    the same bytes; gzip.compress writes the time of the call). Format settings as keywords, e.g.
    form="bgzf" for gzip (sluice.format_info("gzip")).

    zstd is written as one frame per chunk (4-16 MiB): zstandard.ZstdDecompressor().decompress()
    reads only the first frame. Read it all with sluice.decompress(), or with zstandard's
    stream_reader(f, read_across_frames=True). gzip and lz4 are one member / one frame.
    """
    level = _compresslevel(level, knobs)
    format = _compressing(format)
    data, _ = _contiguous(data)  # a str is a TypeError; a strided view is copied, as Compressor takes it
    # The streaming compressor writes the header's time; its bytes are compress()'s.
    if mtime is not None and _mtime(mtime):
        compressor = Compressor(format, level, threads, mtime=mtime, chunk_size=chunk_size, backend=backend, **knobs)
        return _joined(compressor.compress(data), compressor.flush())
    return _native.compress(data, format, _level(level, format), _threads(threads),
                            _chunk_size(chunk_size), _knobs(knobs), _backend(backend))


def _max_output(value) -> int:
    """max_output= as the library takes it: None is no limit (0 there)."""
    if value is None:
        return 0
    try:
        value = value if isinstance(value, bool) else operator.index(value)  # numpy's integers too
    except TypeError:
        pass
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"max_output must be a number of bytes (at least 1) or None for no limit, not {value!r}",
                         kind="usage")
    return value


def decompress(data, *, format: str | None = None, max_output: int | None = None,
               threads: int | None = None) -> bytes:
    """Decompresses gzip, zstd or lz4 (told from the data unless format names it), in parallel
    where the stream allows. max_output: raise OutputLimitError rather than produce more."""
    data, _ = _contiguous(data)
    return _native.decompress(data, _format_name(format) or "", _threads(threads), _max_output(max_output))


def compress_many(payloads: Iterable, format: str = "gzip", level: int | None = None,
                  threads: int | None = None, *, return_exceptions: bool = False, chunk_size: int | None = None,
                  backend: str | None = None, **knobs: str) -> list:
    """Compresses many buffers in one run on all cores (small ones whole, big ones split) and
    returns the results in input order. A failing item raises its error with .index set, or,
    with return_exceptions=True, the error takes its place in the list."""
    level = _compresslevel(level, knobs)
    format = _compressing(format)
    items = list(payloads)
    for index, item in enumerate(items):  # a mistake named here (pybind11 would print every payload)
        if not isinstance(item, bytes):
            try:
                items[index], _ = _contiguous(item)  # a strided view copied, as compress() takes it
            except TypeError:
                raise TypeError(f"payload {index} is a {type(item).__name__}, not a bytes-like object") from None
    results = _native.compress_many(items, format, _level(level, format), _threads(threads), _chunk_size(chunk_size),
                                    _knobs(knobs), _backend(backend))
    if not return_exceptions:
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                result.index = index
                raise result
    return results


def compress_iter(items: Iterable, format: str = "gzip", level: int | None = None, threads: int | None = None, *,
                  max_in_flight: int = 16, chunk_size: int | None = None, backend: str | None = None,
                  **knobs: str) -> Iterator[bytes]:
    """Yields the compressed items of any iterable, in order, with at most max_in_flight items
    taken from it at a time (tiles from a generator, records from a queue). Items are taken in
    batches of max_in_flight, each compressed in one run once it is whole (or the iterable
    ends): a slow producer's first result waits for its batch, so give a small max_in_flight
    where each item must come out soon. Settings are checked at the call, before any item is
    taken."""
    if _integer(max_in_flight, "max_in_flight") < 1:
        raise UsageError("max_in_flight must be at least 1", "usage")
    level = _compresslevel(level, knobs)
    format = _compressing(format)
    _native.chunk_size(format, _level(level, format), _chunk_size(chunk_size), _knobs(knobs),
                       _backend(backend))

    def batches() -> Iterator[bytes]:
        batch: list = []
        for item in items:
            batch.append(item)
            if len(batch) == max_in_flight:
                yield from compress_many(batch, format, level, threads, chunk_size=chunk_size, backend=backend, **knobs)
                batch = []
        if batch:
            yield from compress_many(batch, format, level, threads, chunk_size=chunk_size, backend=backend, **knobs)

    return batches()


class _GatheredWriter:
    """A native Writer whose small writes are gathered here first: a call into the engine for each
    of 20,000 records of 120 bytes cost more than compressing them did (BENCHMARKS.md,
    "Flushing"). The engine sees the same bytes and the same flushes, so the output is the same;
    only when compressed bytes come out moves. The caller holds its lock."""

    __slots__ = ("_native", "_gathered")

    def __init__(self, native) -> None:
        self._native = native
        self._gathered = bytearray()

    @property
    def gathered(self) -> bytearray:
        """The bytes gathered: a caller may add to them (SluiceFile.write), then pass_gathered()
        past _GATHER_BYTES."""
        return self._gathered

    def write(self, data, size: int) -> bytes:
        """`data`: bytes or a contiguous buffer of `size` bytes. Returns what came out (maybe b"");
        an empty write takes what the run has made meanwhile (Compressor's FLUSH_NONE)."""
        if 0 < size < _SMALL_WRITE:
            gathered = self._gathered
            gathered += data  # copied now: the caller may reuse its buffer
            return self.pass_gathered() if len(gathered) >= _GATHER_BYTES else b""
        return _joined(self.pass_gathered(), self._native.write(data))

    def flush(self) -> bytes:
        out = self._native.flush(self._gathered)  # written first, in the same call
        self._gathered.clear()
        return out

    def finish(self) -> bytes:
        out = self._native.finish(self._gathered)
        self._gathered.clear()
        return out

    def cancel(self) -> None:
        self._gathered = bytearray()
        self._native.cancel()

    def pass_gathered(self) -> bytes:
        """Compresses what was gathered (the bytearray `gathered`, which a SluiceFile fills itself);
        returns what came out."""
        if not self._gathered:
            return b""
        out = self._native.write(self._gathered)
        self._gathered.clear()
        return out


def _contiguous(data) -> tuple[Any, int]:
    """A bytes-like object as something contiguous, with its size in bytes (bytes as they are: a
    log's records, without a view each)."""
    if type(data) is bytes:
        return data, len(data)
    view = memoryview(data)
    return (view if view.c_contiguous else view.tobytes()), view.nbytes


def _joined(first: bytes, second: bytes) -> bytes:
    return first + second if first and second else first or second


# Compressor.flush() modes, zlib's values: zlib.Z_SYNC_FLUSH and zlib.Z_FINISH work as well.
FLUSH_NONE = 0
FLUSH_SYNC = 2
FLUSH_FINISH = 4


def _not_copied(self, *_memo):
    """copy.copy() of a Compressor or Decompressor gave a second object over the same native
    stream, each call on one moving the other; zlib's objects copy their state (copy()), which
    sluice's runs cannot: it is refused, as pickling them is. A SluiceFile's copy shared its
    descriptor, closed when the copy went away, under the original."""
    raise TypeError(f"cannot copy a sluice.{type(self).__name__}: its stream is not copied (make a new one)")


class Compressor:
    """Compresses a stream given in pieces, as zlib.compressobj() and bz2.BZ2Compressor do, on all
    cores: for a body sent as it is made (a generator that yields the compressed pieces, an
    upload in parts). compress() returns what has come out so far (often b"" at first: chunks
    are compressed in the background while more comes), flush() ends the stream and returns the
    rest; flush(FLUSH_SYNC) makes everything so far decodable (zlib's Z_SYNC_FLUSH: one gzip
    member still) and the stream goes on. The bytes are those of sluice.compress() on the whole
    stream, except where flushed: a gzip or zstd stream flushed after little (64 KiB at most) is
    compressed from there on the calling thread with the window kept, as zlib's and zstd's
    flushes are, until more than 256 KiB comes between two; lz4 ends a chunk at each flush (the
    next starts without history). Memory stays bounded whatever is passed: a
    compress() call waits while the chunks in flight are full. A stream that ends within 256 KiB
    is compressed by flush() on the calling thread. Settings as sluice.compress(); mtime: the gzip
    header's (0 or None: 0, as zlib and sluice.compress write it). One call at a time; threads take turns.
    """

    def __init__(self, format: str = "gzip", level: int | None = None, threads: int | None = None, *,
                 mtime: int | None = 0, chunk_size: int | None = None, backend: str | None = None,
                 **knobs: str):
        self._lock = threading.Lock()
        level = _compresslevel(level, knobs)
        format = _compressing(format)
        self._writer = _GatheredWriter(_native.Writer(format, _level(level, format), _threads(threads),
                                                      _chunk_size(chunk_size), _knobs(knobs), _backend(backend), "",
                                                      _mtime(0 if mtime is None else mtime)))
        _open_streams.add(self)
        self._finished = False
        self._error: BaseException | None = None

    __copy__ = __deepcopy__ = __reduce__ = _not_copied

    def compress(self, data) -> bytes:
        """Takes a bytes-like object; returns the compressed bytes ready so far (maybe b"")."""
        data = _contiguous(data)  # a mistake (a str) is a TypeError here, the stream unharmed
        with self._lock:
            self._check_open()
            return self._call(self._writer.write, *data)

    def flush(self, mode: int = FLUSH_FINISH) -> bytes:
        """FLUSH_FINISH (the default): ends the stream and returns the rest of it; the object is
        done. FLUSH_SYNC: returns everything up to here as decodable data, and the stream goes on.
        FLUSH_NONE: what is ready, as compress(b"")."""
        if mode not in (FLUSH_FINISH, FLUSH_SYNC, FLUSH_NONE):
            raise UsageError(f"mode must be FLUSH_SYNC, FLUSH_FINISH or FLUSH_NONE, not {mode!r}", "usage")
        with self._lock:
            self._check_open()
            if mode == FLUSH_FINISH:
                self._finished = True
                return self._call(self._writer.finish)
            if mode == FLUSH_SYNC:
                return self._call(self._writer.flush)
            return self._call(self._writer.write, b"", 0)

    def _call(self, method, *args) -> bytes:
        try:
            return method(*args)
        except Error as error:
            self._error = error
            raise
        except BaseException:  # Ctrl-C (or another exception of Python's) stopped the stream
            self._error = Error("the stream was stopped by an interrupted call", kind="cancelled")
            raise

    def _check_open(self) -> None:
        if self._error is not None:  # every call after an error raises it, as Decompressor's
            raise self._error
        if self._finished:
            raise UsageError("the stream was finished: flush() ended it", kind="usage")


class Decompressor:
    """Decodes a stream given in pieces, as zlib.decompressobj() and bz2.BZ2Decompressor do: for a
    body that arrives in parts (an asynchronous download, a queue of messages). gzip, zstd or lz4,
    told from the data unless format names it.
    By default (threads=None or 1) each piece is decoded on the calling thread as it comes, and
    decompress(piece) returns all that the input so far decodes to, as zlib's (before the check at
    the end of its member or frame: damaged data shows before its error); so what one call
    returns is bounded only by what its piece decodes to. Where the input may be a bomb, give
    decompress() a max_length, as to bz2's and lzma's decompressors: it returns at most that
    many bytes, holds the input it has not decoded yet (needs_input is False until a call with
    b"" or more input has returned all it decodes to), and holds about max_length bytes of
    output at a time, whatever one piece decodes to (with threads=1 only); or give max_output
    (OutputLimitError rather than more in all).
    threads=N of 2 or more (0: all cores), for large pieces: once the stream outgrows 64 KiB in
    or 8 MiB out, a run's workers decode its units in parallel, and each call waits until the run
    has taken its piece in: what it decodes to comes out in that call, but for the units in
    flight (a few MB of output, then returned by the next call) and, as the run starts, its first
    MiB of input, which it gathers before it decodes (of a stream of 240 to 1, 240 MB in one
    call); between calls the workers decode ahead into at most 8 MiB and wait.
    flush() ends the input and returns the rest; unlike zlib's, the end of a member or frame is
    not the end of the stream (more may follow, as gzip -d reads them): eof is True only after
    flush(), and a loop that waits for it must call flush() when its input ends.
    A decompress() call that meets an error (corrupt data, the
    limit) returns what decoded before it first, and the next call raises it; flush() raises
    at once (a stream cut short: CorruptDataError), with what decoded before the error and was
    not returned yet as the error's `output`; every call after an error raises it.
    One call at a time; threads take turns.
    """

    def __init__(self, format: str | None = None, *, max_output: int | None = None, threads: int | None = None):
        self._lock = threading.Lock()
        if _format_name(format):  # an unknown one refused here, not at the first decompress()
            _native.format_info(format)
        # Decoded by a run, a stream of small pieces paid two thread switches a piece (57 us a
        # 1 KiB piece, against zlib's 9): each call's output is its own piece's either way.
        self._threads = 1 if threads is None else _threads(threads)
        self._decoder = _native.Decoder(_format_name(format) or "", self._threads, _max_output(max_output), "<stream>")
        _open_streams.add(self)
        self._error: BaseException | None = None
        self._eof = False

    __copy__ = __deepcopy__ = __reduce__ = _not_copied

    @property
    def eof(self) -> bool:
        """True once flush() has decoded the whole stream."""
        return self._eof

    @property
    def needs_input(self) -> bool:
        """False while decompress() holds input it has not decoded, or output it has not returned
        (a call with max_length): call it again, with b"" or more input, for the rest."""
        with self._lock:
            return self._error is None and not self._eof and self._decoder.needs_input()

    def decompress(self, data, max_length: int = -1) -> bytes:
        """Takes a bytes-like piece of the compressed stream; returns what is decoded so far: all of
        it, or with a max_length of 0 or more at most that many bytes (the rest is returned by the
        next calls, which may give b"" for data: see needs_input). Once a call has given a
        max_length the stream is decoded on a thread of the decompressor's own: in pieces of 1 KiB
        at half the speed (zlib's with a max_length), of 64 KiB or more at the same."""
        data, _ = _contiguous(data)  # a mistake (a str) is a TypeError here, the stream unharmed
        max_length = operator.index(max_length)
        if max_length >= 0 and self._threads != 1:  # a mistake, the stream unharmed
            raise UsageError("decompress() takes a max_length with threads=1 only (the default): a run's output "
                             "lags its input", kind="usage")
        with self._lock:
            self._check_usable()
            if max_length < 0:
                return self._call(self._decoder.push, data)
            return self._call(self._decoder.push_bounded, data, max_length)

    def flush(self) -> bytes:
        """The input is complete: returns the rest of the output once the whole stream is decoded,
        all of it (after calls with a max_length, call decompress(b"", max_length) until
        needs_input is True first); raises its error if it has one (a stream cut short:
        CorruptDataError). Again after that, b"", as zlib's does (decompress() is refused)."""
        with self._lock:
            if self._eof and self._error is None:
                return b""
            self._check_usable()
            try:
                out = self._decoder.finish()
            except Error as error:
                self._error = error
                error.output = self._decoder.drain()
                raise
            except BaseException:
                self._interrupted()
                raise
            self._eof = True
            return out

    def _call(self, method, *args) -> bytes:
        try:
            return method(*args)
        except Error as error:
            self._error = error  # raised now, or at the next call after what decoded before it
            out = self._decoder.drain()
            if not out:
                raise
            return out
        except BaseException:
            self._interrupted()
            raise

    def _interrupted(self) -> None:
        """Ctrl-C (or another exception of Python's) stopped the stream during a call."""
        self._error = Error("the stream was stopped by an interrupted call", kind="cancelled")

    def _check_usable(self) -> None:
        if self._error is not None:
            self._error.output = b""  # given with the first raise
            raise self._error
        if self._eof:
            raise UsageError("the stream was finished: flush() ended it", kind="usage")


@dataclasses.dataclass(frozen=True)
class FileResult:
    """What became of one file of compress_files() or decompress_files()."""
    input: str
    output: str
    status: str  # "done", "failed" or "skipped" (fail_fast stopped the batch before it)
    input_bytes: int
    output_bytes: int
    seconds: float
    error: Error | None  # why it failed or was skipped
    warning: Error | None  # done, but with something passed over (trailing garbage)

    @property
    def ok(self) -> bool:
        return self.status == "done"


def _output_path(path: str, name: str, output_dir) -> str:
    if output_dir is None:
        return name
    return os.path.join(_path_name(output_dir, "output_dir"), os.path.basename(name))


def _claim_outputs(jobs: list) -> list:
    """Each (input, output) job, or for one that must not run the FileResult of its failure: an
    output that another job of the batch writes too (output_dir takes base names: a/x.log and
    b/x.log both went to out/x.log.gz, the second over the first, both inputs removed with
    remove_inputs) or that is another job's input (x.gz.gz to x.gz while x.gz is read: which
    won depended on the threads). The first job in the list keeps the output."""
    directories: dict = {}

    def key(path: str) -> str:
        """The directory entry `path` names, however it is spelt: its directory's real path (a link
        to the directory too: "here/x.gz" is "x.gz" where here -> .) and its name."""
        absolute = os.path.abspath(path)
        parent, name = os.path.split(absolute)
        if parent not in directories:
            directories[parent] = os.path.realpath(parent)
        return os.path.normcase(os.path.join(directories[parent], name))
    inputs = {key(name) for name, _ in jobs}
    taken: dict = {}
    planned = []
    for name, output in jobs:
        why = None
        if key(output) in taken:
            why = f"its output {output} is also that of {taken[key(output)]}"
        elif key(output) in inputs and key(output) != key(name):
            why = f"its output {output} is an input of the same batch"
        if why is None:
            taken[key(output)] = name
            planned.append((name, output))
        else:
            planned.append(FileResult(name, output, "failed", 0, 0, 0.0, UsageError(f"{name}: {why}", "usage", name),
                                      None))
    return planned


def _progress_adapter(progress, planned: list):
    """progress for the native batch, told first of the items that failed before it (a bar of
    len(paths) reaches its end)."""
    if progress is None:
        return None
    for job in planned:
        if isinstance(job, FileResult):
            progress(job)
    return lambda index, result: progress(FileResult(*result))


def _path_list(paths, what: str = "paths") -> list[str]:
    """Paths (or members, patterns) given as a list, as names. One path alone is a mistake (a str
    is an iterable of its letters: "logs" compressed and removed files l, o, g and s, and an
    exclude="*.log" would leave out everything, as "*"). One with a NUL byte is refused (_path_name)."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} must be a list of {what}, not one ({os.fsdecode(paths)!r}): pass [{what[:-1]}]")
    return [_path_name(p, what[:-1]) for p in paths]


def compress_files(paths: Iterable, output_dir=None, format: str = "gzip", level: int | None = None,
                   threads: int | None = None, *, overwrite: bool = False, remove_inputs: bool = False,
                   store_name: bool = True, fail_fast: bool = False, progress=None, chunk_size: int | None = None,
                   backend: str | None = None, **knobs: str) -> list[FileResult]:
    """Compresses files in one run on all cores (small ones whole, big ones split): each to its
    name plus the format's suffix, beside it or in output_dir. Outputs appear whole or not at all
    and carry the input's permissions and times; remove_inputs deletes each input once its
    output is safely written. progress(result) is called as each file completes (tqdm: pass
    lambda r: bar.update()). Returns one FileResult per path, in order; failures do not raise."""
    format = _compressing(format)
    if format not in formats():  # as compress() says it (format_info's ValueError was no sluice.Error)
        raise UsageError(f"unknown format {format!r} (known: {', '.join(formats())})", "usage")
    extension = _native.format_info(format)["extension"]
    names = _path_list(paths)
    planned = _claim_outputs([(name, _output_path(name, name + extension, output_dir)) for name in names])
    jobs = [job for job in planned if not isinstance(job, FileResult)]
    done = iter(_native.compress_files(_native_jobs(jobs), format, _level(level, format), _threads(threads), _chunk_size(chunk_size),
                                       _knobs(knobs), _backend(backend), overwrite, remove_inputs, store_name,
                                       fail_fast, _progress_adapter(progress, planned)))
    return [job if isinstance(job, FileResult) else FileResult(*next(done)) for job in planned]


def _native_jobs(jobs: list) -> list:
    """(input, output) names as the native layer takes them: bytes, as os.fsencode gives them (a
    name need not be UTF-8: os.listdir's surrogate escapes, a bytes path)."""
    return [(os.fsencode(source), os.fsencode(target)) for source, target in jobs]


def decompress_files(paths: Iterable, output_dir=None, threads: int | None = None, *, overwrite: bool = False,
                     remove_inputs: bool = False, max_output: int | None = None, fail_fast: bool = False,
                     progress=None) -> list[FileResult]:
    """Decompresses files, several at once: "a.log.gz" to "a.log", "a.tgz" to "a.tar", beside
    each or in output_dir (the format is told from the data). A name without a known suffix is
    a failed item. Returns one FileResult per path, in order; failures do not raise."""
    names = _path_list(paths)
    planned: list = []
    for name in names:
        target = _native.decompressed_name(os.fsencode(name))
        if target is None and not os.path.lexists(name):  # what is wrong first: it is not there
            error = _system_error(FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT)), name, "cannot open")
            planned.append(FileResult(name, "", "failed", 0, 0, 0.0, error, None))
        elif target is None:
            error = UsageError(f"{name}: unknown suffix (expected one of "
                               f"{', '.join(_native.format_info(f)['extension'] for f in formats())})", "usage", name)
            planned.append(FileResult(name, "", "failed", 0, 0, 0.0, error, None))
        else:
            planned.append((name, _output_path(name, target, output_dir)))
    named = [job for job in planned if not isinstance(job, FileResult)]
    claimed = iter(_claim_outputs(named))
    planned = [job if isinstance(job, FileResult) else next(claimed) for job in planned]
    jobs = [job for job in planned if not isinstance(job, FileResult)]
    done = iter(_native.decompress_files(_native_jobs(jobs), _threads(threads), _max_output(max_output), overwrite, remove_inputs,
                                         fail_fast, _progress_adapter(progress, planned)))
    return [job if isinstance(job, FileResult) else FileResult(*next(done)) for job in planned]


def format_info(format: str) -> dict:
    """A format's facts: its file extension, levels (min, max, default), settings and backends."""
    return _native.format_info(format)


def _held_format(descriptor: int) -> str | None:
    """The format of the stream the file open for appending as `descriptor` holds, read through
    a second descriptor of the same file (another file may have its name by now), past any
    skippable frames (zstd's and lz4's alike: a large one hid an lz4 frame behind it); "" for
    none sluice reads; None where it cannot tell (a file that may not be read, or holds only
    skippable frames)."""
    try:
        reader = os.open(f"/proc/self/fd/{descriptor}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        at = 0
        for _ in range(_SKIPPABLE_FRAMES_PASSED):
            head = os.pread(reader, _APPEND_DETECTED_FROM, at)
            if len(head) >= 8 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18":
                at += 8 + int.from_bytes(head[4:8], "little")
                continue
            return (_native.detect_format(head) or "") if head else None
        return None
    except OSError:
        return None
    finally:
        os.close(reader)


def _appended_format(path: str, format: str | None, held: str) -> str:
    """The format "ab" writes to the file `path`, which holds a stream of the format `held`:
    that one, whatever the name says (a .zst file of gzip, appended to as zstd, was unreadable
    from there on); a format asked for that is not it, and a file of none ("") refused."""
    if not held:
        raise UsageError(f"{path}: holds no compressed stream sluice reads, to append to", kind="usage", path=path)
    if format and _format_name(format) != held:
        raise UsageError(f"{path}: holds a {held} stream: appending {format} would make it unreadable from there on",
                         kind="usage", path=path)
    return held


def _format_for_path(path: str) -> str:
    """The format a name's suffix says, in any case (as the command line reads it: .zstd and .tzst
    too); gzip else."""
    return _native.format_for_name(os.fsencode(path)) or "gzip"


# Open SluiceFiles, closed at exit before the interpreter goes: a run still reading or writing a
# Python file object from its own threads must not outlive the interpreter (as io closes files).
_open_files: "weakref.WeakSet[SluiceFile]" = weakref.WeakSet()
_reported: list[BaseException] = []  # the last exception sys.excepthook reported (_note_uncaught)


def _note_uncaught(kind, value, traceback, _report=sys.excepthook) -> None:
    """sys.excepthook while sluice is imported: notes the exception it reports for the
    interpreter itself (no Python code under the hooks: not an embedded console's report of a
    line typed into it), then reports it as before. The one that ends the program (Ctrl-C too)
    is also sys.last_value, which the interpreter sets before calling the hook
    (_ending_on_an_error)."""
    try:
        frame = sys._getframe(1)
    except ValueError:  # called by the interpreter
        _reported[:] = [value]
    else:
        while frame.f_back is not None:
            frame = frame.f_back
        if frame.f_code is getattr(sys.excepthook, "__code__", None):  # through a hook of its own
            _reported[:] = [value]
    _report(kind, value, traceback)


sys.excepthook = _note_uncaught


def _ending_on_an_error() -> bool:
    """True at exit when the program ends on an exception it did not catch: the last one the
    interpreter reported (sys.last_value, which alone will not do: pytest and GUI toolkits set it
    for errors they handled), unless a session went on interactively after it (python -i). A hook
    installed later that does not call ours leaves sys.last_value alone to go by."""
    last = getattr(sys, "last_value", None)
    interactive = (sys.flags.interactive or sys.flags.inspect or os.environ.get("PYTHONINSPECT")
                   or (hasattr(sys, "ps1") and sys.argv[:1] == [""]))  # code.interact() leaves ps1 set
    if last is None or interactive:
        return False
    return sys.excepthook is not _note_uncaught or (bool(_reported) and _reported[0] is last)


@atexit.register
def _close_open_files() -> None:
    """Files left open at exit: closed as the interpreter would close them, what the layers above
    an output hold (a TextIOWrapper's text) written first. An output is abandoned instead, as a
    `with` block's exception abandons it, where the program ends on an uncaught exception or
    Ctrl-C, where another thread is inside a write to it (cut in the middle), or where another
    file has taken its name since it was opened (_abandoned_as_stale)."""
    failed = _ending_on_an_error()
    if not failed and "logging" in sys.modules:  # its exit handler comes after this one: what
        for handler in list(getattr(sys.modules["logging"], "_handlerList", ())):  # handlers hold
            try:  # goes into the files now (a MemoryHandler's records, a stream's text)
                handler().flush()
            except BaseException:  # noqa: B902
                pass
    files = list(_open_files)
    writers = [file for file in files if not file.closed and not file._inherited and file.writable()]
    try:
        layers = _layers_over(writers) if writers and not failed else {}
    except BaseException:  # noqa: B902
        layers = {}
    for file in files:
        try:
            if file.closed or file._inherited:  # a fork's child: the parent's file is left alone
                file.close()
            elif file.writable() and (failed or not file._idle()):
                file._abandon()
            elif not file._abandoned_as_stale():
                try:
                    for layer in layers.get(id(file), ()):  # what they hold, or the file is not whole
                        layer.flush()
                except BaseException:  # noqa: B902
                    file._abandon()
                    continue
                file.close()
        except BaseException:  # noqa: B902  (at exit, nothing is left to report to)
            pass


def _layers_over(files: list) -> dict[int, list]:
    """The buffered layers the program put over each file (io.TextIOWrapper, as sluice.open's text
    mode makes, io.BufferedWriter), outermost first, by id(file): their finalizers would flush
    them, but only after this hook has closed the files. One search of the heap per depth."""
    bottom = {id(file): file for file in files}  # a file or a layer -> the file under it all
    found: dict[int, list] = {id(file): [] for file in files}
    level = list(files)
    for _ in range(8):  # layers over layers, a few deep
        if not level:
            break
        ids = {id(item) for item in level}
        holders = gc.get_referrers(*level)
        level = []
        for holder in holders:
            try:
                if isinstance(holder, io.TextIOWrapper):
                    below = holder.buffer
                elif isinstance(holder, io.BufferedWriter):
                    below = holder.raw
                else:
                    continue
                if id(below) not in ids or id(holder) in bottom or holder.closed:
                    continue
            except ValueError:  # detached
                continue
            bottom[id(holder)] = file = bottom[id(below)]
            found[id(file)].insert(0, holder)
            level.append(holder)
    return found


# Compressors and Decompressors alive, for the child of a fork (_after_fork_in_child).
_open_streams: "weakref.WeakSet[Compressor | Decompressor]" = weakref.WeakSet()


class _Inherited:
    """What stands for a file's or stream's engine in the child of an os.fork(): the engine's
    threads stayed in the parent, so every use is an error (it would wait for them forever);
    closing is nothing (the parent still writes or reads)."""

    def close(self) -> None:
        pass

    cancel = close

    def __getattr__(self, name: str):
        raise UsageError("this file or stream was opened before os.fork() and its threads stayed in the parent: "
                         "open it again in this process", kind="usage")


_INHERITED = _Inherited()
_inherited_engines: list = []  # never freed in the child: freeing would wait for the parent's threads


def _after_fork_in_child() -> None:
    """In the child of an os.fork(): the open files and streams are the parent's. Their engines
    (runs, threads, locks a parent thread may have held) are put aside for good, never used or
    freed, and each becomes _Inherited: using it raises, closing it does nothing, and nothing
    of the parent's (a temporary output, a file object) is touched at exit."""
    engines = _inherited_engines
    for file in list(_open_files):
        file._lines = collections.deque()
        file._gathered = None
        for name in ("_buffered", "_decoding", "_writer"):
            engine = file.__dict__.get(name)
            if engine is not None and engine is not _NOT_READABLE:
                engines.append(engine)
                setattr(file, name, _INHERITED)
        if file._owned and file._file is not None:  # its buffer would be flushed into the parent's output
            engines.append(file._file)
        file._file = None
        file._inherited = True
        file._temp_path = None
        file._unpublished = False
        file._reserved = None  # the name "xb" holds is the parent's
        file._append_from = None  # and so is the file "ab" appends to
    for stream in list(_open_streams):
        for name in ("_writer", "_decoder"):
            if (engine := stream.__dict__.get(name)) is not None:
                engines.append(engine)
                setattr(stream, name, _INHERITED)
    if engines:
        _native.keep_forever(engines)  # not freed even at exit


os.register_at_fork(after_in_child=_after_fork_in_child)


def _locked(method):
    """`method` of a SluiceFile, run holding the file's lock: threads that share a file take
    turns, as with io.BufferedReader (two reads at once would wait on the same run)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


def _read_call(method):
    """A read of a SluiceFile's: `method` under the file's lock; Ctrl-C in it stops the stream
    (SluiceFile._stopped), after the lines left of a batch go back to the stream (_line). read(),
    readline() and __next__ do the same inline (a call less)."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with self._lock:
            try:
                if self._lines:
                    self._give_back_lines()
                return method(self, *args, **kwargs)
            except BaseException as stop:
                self._stopped(stop)
                raise
    return call


def _read_size(size) -> int:
    """A read's size as io takes it: an integer (None: -1), at least -1."""
    size = -1 if size is None else operator.index(size)
    if size < -1:
        raise ValueError("read length must be non-negative or -1")
    return size


class SluiceFile(io.BufferedIOBase):
    """A compressed file opened by sluice.open() in binary mode: read or write, not both.

    Reading decodes on all cores as the file is read; reads, peek() and lines are served by an
    io.BufferedReader (in C, as gzip.open's are) under the file's lock, so readinto(), read1(),
    readline() and iteration by lines work as on any binary file. A read that meets an error
    returns what decoded before it first and raises the error at the next read, as often as it
    is asked; lines are whole ones only, as gzip.open's are (the line the error cut is not given
    as one: read() still has its bytes); read() and readlines() of everything, readline() and
    iteration raise it rather than end early.

    Writing compresses on all cores as bytes come; close() ends the stream. flush() makes what
    was written so far decodable to a reader of the output, as gzip's does, without ending the
    stream. Opened by name, the output is a new file without a name (or a temporary) put in place
    (with the old file's permissions) by close() or by the first flush(): an error, Ctrl-C or a
    crash before that leaves nothing behind (a program that ends on an uncaught exception
    abandons the files it left open). A file dropped without close() is closed as gzip.open's
    are, but not put in place where its name has changed since it was opened (another file
    stands there now: a late finalizer must not replace it; a ResourceWarning says so). Where a
    rename would change what the file keeps (a symlink, a FIFO, a device, a file with other
    links, another owner or group, or an ACL) or the directory takes no new file, it is written
    in place, as gzip.open writes.
    """

    __copy__ = __deepcopy__ = __reduce__ = _not_copied

    def __init__(self, file, mode: str = "rb", *, format: str | None = None, level: int | None = None,
                 threads: int | None = None, max_output: int | None = None, mtime: int | None = None,
                 chunk_size: int | None = None, backend: str | None = None, **knobs: str):
        super().__init__()
        # One call at a time: threads sharing the file take turns, as with io.BufferedReader.
        self._lock = threading.RLock()
        self._buffered: io.BufferedReader | _NotReadable = _NOT_READABLE  # reading: the decoded stream
        self._lines: collections.deque[bytes] = collections.deque()  # reading: the rest of a batch (_line)
        self._left: list[int] | None = None  # bytes in the batch's last k lines, by k (_batch_left)
        if mode not in ("rb", "wb", "ab", "xb"):
            raise ValueError(f"invalid mode {mode!r}")
        level = _compresslevel(level, knobs)  # compresslevel=9, as gzip.GzipFile takes it
        if mode == "rb" and knobs:  # a format's settings shape what is written (a misspelt one passed)
            raise TypeError(f"format settings are for writing, not reading: {', '.join(sorted(knobs))}")
        self._mode = mode
        self._inherited = False  # the child of a fork's (_after_fork_in_child)
        self._closing = False  # set by the text layer as it closes (_TextFile.close)
        self._file: BinaryIO | None = None
        self._owned = False
        self._final_path: str | None = None
        self._temp_path: str | None = None  # a named temporary (else the output has no name yet)
        self._unpublished = False  # written beside the final name, not yet put there
        self._gathered: bytearray | None = None  # writing: the writer's gathered bytes, while open
        self._head: bytes | None = None  # reading: the stream's first bytes, once known (mtime)
        self._written_mtime: int | None = None  # writing gzip: the header's MTIME
        self._fileno: int | None = None  # reading by name: a descriptor of the file for fileno()
        self._emitted = 0  # writing: the bytes given to the file (_emit)
        self._append_from: int | None = None  # "ab" by name: the file's size when opened
        self._cut_at_first_write = False  # "wb" in place by name: the old contents not cut yet (_emit)
        self._held_format: str | None = None  # "ab" by name: the format of what the file holds ("": none)
        self._reserved: tuple | None = None  # "xb" by name: the empty file that holds the name
        self.name = ""
        if isinstance(file, (str, bytes, os.PathLike)):
            path = _path_name(file, "file")
            self.name = path
            try:
                regular = self._open_by_name(path, mode)
            except OSError as error:  # FileNotFoundError and the like, as sluice's (_system_error)
                if isinstance(error, Error):
                    raise
                raise _system_error(error, path, "cannot open" if mode == "rb" else "cannot open output") from None
            self._owned = True
        elif hasattr(file, "read" if mode == "rb" else "write"):
            self._file = file
            self.name = getattr(file, "name", "") if isinstance(getattr(file, "name", ""), str) else ""
        else:
            raise TypeError("file must be a path or a binary file object")
        try:
            if mode == "rb":
                if self._file is None:  # a file by name: a regular file from its start, or a FIFO
                    self._start = 0 if regular else None
                else:
                    self._start = _position_of(self._file)  # for seek()
                    if self._start is not None:  # its first bytes, for mtime
                        self._head = _peek_head(self._file, self._start)
                self._decoding = _Decoding(self._file, self._fileno, self._start,
                                           (format or "", _threads(threads), _max_output(max_output), self.name or "<file>"))
                self._buffered = io.BufferedReader(self._decoding, _BUFFER_BYTES)
            else:
                if self._held_format is not None:
                    format = _appended_format(path, format, self._held_format)
                format = format or (_format_for_path(self.name) if self.name else "gzip")
                base = os.path.basename(self.name)
                extension = _native.format_info(format)["extension"]
                if base.lower().endswith(extension):
                    base = base[: -len(extension)]
                mtime = int(time.time()) if mtime is None else _mtime(mtime)
                self._writer = _GatheredWriter(_native.Writer(format, _level(level, format), _threads(threads),
                                                              _chunk_size(chunk_size), _knobs(knobs), _backend(backend),
                                                              os.fsencode(base), mtime))
                if format == "gzip":
                    self._written_mtime = mtime
                self._written = 0
                self._gathered = self._writer.gathered
        except BaseException:
            self._abandon()
            raise
        _open_files.add(self)

    def _open_by_name(self, path: str, mode: str) -> bool:
        """Opens the file named `path` for SluiceFile(): reading, a descriptor held on it; writing,
        the output (_write_beside, or the file itself). Returns whether a file read is regular.
        Its failures are Python's OSErrors (FileNotFoundError and the like, as gzip.open raises
        them): SluiceFile() raises them as sluice's, named for `path` (_system_error)."""
        regular = False
        existing = None
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            pass
        if mode == "rb":
            # Held while the file is open: mtime and fileno() are of this file, whatever later
            # takes its name.
            descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            status = os.fstat(descriptor)
            if stat.S_ISDIR(status.st_mode):
                os.close(descriptor)
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            regular = stat.S_ISREG(status.st_mode)
            if not stat.S_ISBLK(status.st_mode):
                # Read by the library itself (a regular file, mapped where it pays) or, a FIFO,
                # a socket, a character device, as it comes, by a feeding thread from a
                # duplicate (close() need not wait for a read that blocks).
                self._fileno = descriptor
            else:  # a block device: a file object of its own, which can seek
                self._file = os.fdopen(descriptor, "rb")
        elif mode == "xb":
            # The name is taken now, as open(path, "xb") takes it: a second "xb" of it fails
            # here, not at close() after all its work. The empty file holds the name until
            # close() puts the output in its place; abandoned, it goes.
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
            try:
                self._reserved = _identity(os.fstat(descriptor))
            finally:
                os.close(descriptor)
            try:
                if not self._write_beside(path, None):
                    self._file = builtins.open(path, "r+b")  # the directory takes no new file
                    self._reserved = None
            except BaseException:
                self._release_reserved()
                raise
            self._final_was = self._reserved
        elif mode == "ab":
            self._file = builtins.open(path, mode)
            self._append_from = os.fstat(self._file.fileno()).st_size  # abandoned, cut back to this (_abandon)
            if self._append_from:
                self._held_format = _held_format(self._file.fileno())
        elif not self._write_beside(path, existing):
            # In place: the old contents are cut at the first bytes written (_emit), not here, so
            # that an error or Ctrl-C before then leaves them, as a rename would (a symlink's
            # target or a file with other links was left empty, the new bytes not written either).
            self._file = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666), "wb")
            self._cut_at_first_write = True
        return regular

    def _write_beside(self, path: str, existing: os.stat_result | None) -> bool:
        """Opens the output beside `path`, put in place by close() or by the first flush(), which
        makes it visible (_publish): a new file without a name where the system has them, else a
        temporary; an error leaves nothing behind. False where that would change what writing in
        place keeps, as gzip.open does it: a file that is not regular (a FIFO, a symlink, a
        device), has other links, another owner or group, or an access control list; or where
        nothing can be made there (a directory one may not write to). A file one may not write is
        refused, as open() refuses it."""
        if existing is not None:
            if (not stat.S_ISREG(existing.st_mode) or existing.st_nlink > 1 or existing.st_uid != os.geteuid()
                    or existing.st_gid != os.getegid() or _has_acl(path)):
                return False
            if not os.access(path, os.W_OK, effective_ids=os.access in os.supports_effective_ids):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        directory = os.path.dirname(os.path.abspath(path))
        try:
            descriptor = _unnamed_file(directory) if existing is None else None
            if descriptor is None:
                descriptor, self._temp_path = tempfile.mkstemp(prefix=".sluice-", dir=directory)
        except PermissionError:
            return False
        self._file = os.fdopen(descriptor, "wb")
        self._unpublished = True
        self._final_path = os.path.abspath(path)  # where it was asked for, even if the directory changes
        self._final_was = _identity(existing)  # what stood there (__del__ replaces nothing newer)
        self._final_mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o666 & ~_umask()
        return True

    def _publish(self) -> None:
        """Puts the output in place under the final name (once, with the file still open): links
        the file without a name there, or renames the temporary; "xb" fails if the name was
        taken meanwhile, "wb" replaces what took it."""
        descriptor = self._file.fileno()
        os.fchmod(descriptor, self._final_mode)
        if self._reserved is not None:  # "xb": in place of the empty file that holds the name
            if self._temp_path is None:
                self._temp_path = _link_beside(descriptor, self._final_path)
            try:
                now = _identity(os.lstat(self._final_path))
            except FileNotFoundError:
                now = None
            if now != self._reserved:  # another file took the name meanwhile: it stays
                raise FileExistsError(errno.EEXIST, "File exists", self._final_path)
            os.replace(self._temp_path, self._final_path)
            self._temp_path = None
            self._reserved = None
            self._unpublished = False
            return
        if self._temp_path is None:
            try:
                _link_open_file(descriptor, self._final_path)
            except FileExistsError:
                if self._mode == "xb":
                    raise
                self._temp_path = _link_beside(descriptor, self._final_path)
        if self._temp_path is not None:
            if self._mode == "xb":
                os.link(self._temp_path, self._final_path)
                os.unlink(self._temp_path)
            else:
                os.replace(self._temp_path, self._final_path)
        self._temp_path = None
        self._unpublished = False

    # ---- io.BufferedIOBase ----
    def readable(self) -> bool:
        """True in read mode."""
        return self._mode == "rb"

    def writable(self) -> bool:
        """True in write mode (wb, ab, xb)."""
        return self._mode != "rb"

    def seekable(self) -> bool:
        """True when reading a regular file or a seekable file object."""
        return self._mode == "rb" and self._start is not None

    @property
    def mode(self) -> str:
        """ "rb" reading, else "wb" (for "ab" and "xb" too), as gzip.GzipFile's (Python 3.13)."""
        return "rb" if self._mode == "rb" else "wb"

    # ---- reading: the decoded stream (_Decoding) behind an io.BufferedReader ----
    # Every read goes through the buffered reader under the file's lock (io.BufferedReader's own
    # lock does not keep lines whole when threads share it: it looks at its buffer before it takes
    # the lock, and a read of its raw stream lets another thread in). The stream ends at an error
    # as at its end, the buffered reader keeping what it gathered before it; a read that gets
    # nothing then raises the error (_raise). Ctrl-C in a read stops the stream for good (_stopped),
    # as it stops a run it interrupts: bytes taken from the stream may not have reached the caller.
    def _reading(self) -> io.BufferedReader:
        """The buffered reader of the decoded stream; an error when the file is closed or writing."""
        self._check_readable()
        return self._buffered

    def _nothing(self, empty=b""):
        """What a read that got nothing returns: `empty` at the end, or the error that ended the
        stream, raised by every read from then on."""
        if self._decoding.error is None:
            return empty
        self._raise()

    def _raise(self) -> NoReturn:
        """Raises the error that ended the stream. The file object's own exception is raised once;
        the reads after it ask the run again, which reports it as an Error (as a run does)."""
        decoding = self._decoding
        error = decoding.error
        if not isinstance(error, Error):
            decoding.resume()
        raise error

    def _stopped(self, stop: BaseException) -> None:
        """A read was interrupted (Ctrl-C, SystemExit): the stream stops."""
        if not isinstance(stop, Exception):
            self._decoding.cancel()

    @_locked
    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Moves to a position of the decompressed stream, as gzip.open's files do: forward by
        decoding (in parallel) and dropping what lies between, backward by decoding again from
        the start of the file (or from the unit that holds the target, where units record their
        sizes). SEEK_END decodes to the end first to learn the size, as gzip.open does (zipfile
        over a .zip.gz seeks so). Writing, no seek (gzip's writes zeros forward; a writer that probes seek() to the
        current position, as zipfile does, would then take the file for seekable)."""
        if self._mode != "rb":
            self._check_open()
            raise io.UnsupportedOperation("seek while writing: the output is a stream")
        buffered = self._reading()
        self._give_back_lines()
        if whence == io.SEEK_CUR:
            offset = buffered.tell() + offset
        elif whence not in (io.SEEK_SET, io.SEEK_END):
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if offset < 0 and whence != io.SEEK_END:
            raise ValueError(f"negative seek position {offset}")
        decoding = self._decoding
        decoding.moved = False
        try:
            if whence == io.SEEK_END:  # to the end first (a seek past it stops there): the size
                before = buffered.tell()
                offset += buffered.seek(sys.maxsize)
                if offset < 0:  # refused where it was, as a file's seek refuses (it was left at the end)
                    buffered.seek(before)
                    raise ValueError(f"negative seek position {offset}")
            return buffered.seek(offset)
        except BaseException as stop:
            self._stopped(stop)
            if decoding.moved:  # the stream moved, and failed on its way: the buffered reader's
                buffered.tell()  # bytes are from before; it learns where the stream is, and
                buffered.seek(decoding.tell())  # passes them (its buffer ends there)
            raise

    def rewind(self) -> None:
        """Reading: back to the start of the decompressed stream (seek(0)), as gzip.GzipFile's."""
        if self._mode != "rb":
            raise OSError("Can't rewind in write mode")
        self.seek(0)

    @property
    def mtime(self) -> int | None:
        """The MTIME field of the gzip header, as gzip.GzipFile's: writing, the time recorded (the
        mtime given, else the time at open); reading, the first member's (gzip.GzipFile gives the
        latest member's: the same in a file of one member, or of pigz's, bgzip's or sluice's
        members), None until a stream read as it comes (a pipe) has begun. None for zstd and lz4."""
        if self._mode != "rb":
            return self._written_mtime
        head = self._head
        if head is None and self._start is not None and self._file is None:  # a regular file by name
            with self._lock:  # close() in another thread takes the descriptor
                if self._fileno is not None:
                    head = self._head = os.pread(self._fileno, _HEAD_BYTES, 0)
        if head is None:  # a pipe's, as it came (_Feeder)
            head = bytes(getattr(self.__dict__.get("_decoding"), "head", b""))
        if len(head) < 8 or head[:3] != b"\x1f\x8b\x08":
            return None
        return int.from_bytes(head[4:8], "little")

    def fileno(self) -> int:
        """The descriptor of the file read or written, as gzip.GzipFile's: the file object's, or
        for a file opened by name, its output's while writing, and while reading the descriptor
        held open on it (the library reads the file by itself)."""
        file, number = self._file, self._fileno  # without the lock: a read may block holding it
        self._check_open()
        if file is not None:
            return file.fileno()
        if number is None:
            raise io.UnsupportedOperation("fileno")
        return number

    @_locked
    def tell(self) -> int:
        """The position in the decompressed stream (reading) or the bytes written so far."""
        self._check_open()
        if self._mode == "rb":
            return self._buffered.tell() - self._batch_left()
        return self._written

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` decompressed bytes (all the rest for -1 or None); b"" at the end."""
        with self._lock:
            try:
                if self._lines:
                    self._give_back_lines()
                if type(size) is not int:  # numpy's integers, an IntEnum, True: any __index__
                    size = _read_size(size)
                if size > 0:  # the common case first
                    return self._buffered.read(size) or self._nothing()
                buffered = self._reading()
                if _read_size(size) == 0:
                    return b""
                # All of the rest, or an error and nothing: what decoded goes back to be read
                # again. The buffered reader's bytes go back to the stream first, so that its
                # readall() joins everything once.
                decoding = self._decoding
                if buffered.tell() != decoding.tell():  # the buffered reader holds bytes
                    decoding.unread(buffered.read1(_BUFFER_BYTES))
                    buffered.tell()  # the buffered reader keeps the stream's position: it asks again
                data = buffered.read()
                if decoding.error is not None:
                    decoding.unread(data)
                    buffered.tell()
                    self._raise()
                return data
            except BaseException as stop:
                self._stopped(stop)
                raise

    @_read_call
    def read1(self, size: int = -1) -> bytes:
        """Up to `size` bytes from what is decoded, decoding more only when nothing is."""
        size = _read_size(size)
        return self._reading().read1(size) or (b"" if size == 0 else self._nothing())

    @_read_call
    def readinto(self, target) -> int:
        """Reads into a writable bytes-like object; returns the count (0 at the end)."""
        if count := self._reading().readinto(target):
            return count
        with memoryview(target) as view:
            return self._nothing(0) if view.nbytes else 0

    @_read_call
    def peek(self, size: int = 1) -> bytes:
        """Bytes ahead, without moving (at least one unless at the end; maybe more than `size`)."""
        return self._reading().peek(max(size, 1)) or self._nothing()

    def readline(self, size: int | None = -1) -> bytes:
        """The next line, with its b"\\n" (at most `size` bytes when given). The line an error
        cut is not one: the error is raised in its place, and read() has its bytes."""
        whole = size is None or (type(size) is int and size < 0)
        if whole:
            try:
                return self._lines.popleft()  # a line of the batch (_line): each to one caller, no lock
            except IndexError:
                pass
        with self._lock:
            try:
                if whole:
                    return self._line() or self._nothing()
                if self._lines:
                    self._give_back_lines()
                line = self._buffered.readline(size)  # _NotReadable writing
                return self._whole(line, size) or (b"" if size == 0 else self._nothing())
            except BaseException as stop:
                self._stopped(stop)
                raise

    @_read_call
    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The lines left (about `hint` bytes of them when given). All of them ended by an error:
        the error, and the lines back to be read again; some before one: those, and the error
        at the next read (the line it cut is not one: read() has its bytes)."""
        buffered = self._reading()
        lines = buffered.readlines(hint)
        if self._decoding.error is None:
            return lines
        # It read to the error: the line that it cut goes back, and the others too where all
        # were asked for or none is left.
        back = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        if not lines or hint is None or hint <= 0:
            back, lines = b"".join(lines) + back, []
        self._decoding.unread(back)  # the buffered reader holds nothing: it read to the end
        buffered.tell()
        if not lines:
            self._raise()
        return lines

    def __next__(self) -> bytes:
        """The next line."""
        try:
            return self._lines.popleft()  # a line of the batch (_line): each to one caller, no lock
        except IndexError:
            pass
        with self._lock:
            try:
                if line := self._line():
                    return line
                self._nothing()
            except BaseException as stop:
                self._stopped(stop)
                raise
        raise StopIteration

    # Lines are taken from the buffered reader a batch at a time: all the whole lines it holds
    # (decoded already: no waiting for more), under the lock, then handed out from a deque, whose
    # popleft() gives each to one caller without the lock (which cost 100 ns of a line's 250:
    # BENCHMARKS.md, "Lines"). What is left of a batch is the bytes just before the buffered
    # reader's position: tell() counts them off, and any other read or seek puts them back in
    # front of the stream first (_give_back_lines). The lock is held.
    def _line(self) -> bytes:
        """The next line (b"" at the end or an error), refilling the batch."""
        lines = self._lines
        try:
            return lines.popleft()  # refilled by another thread meanwhile
        except IndexError:
            pass
        buffered = self._buffered
        ahead = buffered.peek(1)  # what it holds (one read of the stream when it holds nothing)
        end = ahead.rfind(b"\n")
        if end < 0:
            return self._whole(buffered.readline())  # a line longer than what is decoded: it waits for the rest
        self._left = None
        batch = iter(io.BytesIO(buffered.read(end + 1)).readlines())
        first = next(batch)  # this call's, before the rest is where other threads take lines
        lines.extend(batch)
        return first

    def _whole(self, line: bytes, size: int | None = -1) -> bytes:
        """`line`, unless an error cut it (it has no b"\\n", is shorter than `size`, and the stream
        ended with an error): then b"", and its bytes back in front of the stream for read()."""
        if line.endswith(b"\n") or self._decoding.error is None or (size is not None and 0 <= size <= len(line)):
            return line
        self._decoding.unread(line)
        self._buffered.tell()  # the buffered reader keeps the stream's position: it asks again
        return b""

    def _batch_left(self) -> int:
        """The bytes of the lines left in the batch: sums of the last k lines, made once a batch
        (the lines left are always the batch's last ones; other threads may take some meanwhile,
        hence list(): one step, where iterating the deque could meet a popleft())."""
        lines = self._lines
        if not lines:
            return 0
        left = self._left
        if left is None:
            left = self._left = [0, *itertools.accumulate(map(len, reversed(list(lines))))]
        return left[min(len(lines), len(left) - 1)]

    def _give_back_lines(self) -> None:
        """Puts the lines left in the batch back in front of the stream, for a read of another kind."""
        taken = []
        try:
            # From the right: a thread in __next__ takes from the left, without the lock, so each
            # line goes to one of them and what goes back is the batch's end, whole (taken from
            # the left, a line taken meanwhile left a hole in what a read() then returned).
            while True:
                taken.append(self._lines.pop())
        except IndexError:
            pass
        if not taken:
            return
        taken.reverse()
        buffered, decoding = self._buffered, self._decoding
        held = buffered.read1(_BUFFER_BYTES) if buffered.tell() != decoding.tell() else b""
        decoding.unread(b"".join(taken) + held)
        buffered.tell()  # the buffered reader keeps the stream's position: it asks again

    def write(self, data) -> int:
        """Compresses a bytes-like object; returns its length in bytes. A failure of the run or of
        the file stops the stream (and removes a temporary output); a bad argument does not.
        Small writes are gathered (64 KiB) before they are compressed; flush() and close() take
        them."""
        with self._lock:  # inline, not @_locked: a call less for each of a log's records
            gathered = self._gathered
            if gathered is not None and type(data) is bytes and 0 < (length := len(data)) < _SMALL_WRITE:
                # A log's record, gathered here for _GatheredWriter in a few steps (through its
                # write() and the checks below, 500,000 records took 1.4 times as long).
                gathered += data
                self._written += length
                if len(gathered) >= _GATHER_BYTES:
                    try:
                        out = self._writer.pass_gathered()
                        if out:
                            self._emit(out)
                    except BaseException as error:
                        self._abandon()
                        self._raise_named(error)
                        raise
                return length
            if self.closed:
                raise ValueError("I/O operation on closed file")
            if self._mode == "rb":
                raise io.UnsupportedOperation("not writable")
            data, length = _contiguous(data)
            try:
                out = self._writer.write(data, length)
                if out:
                    self._emit(out)
            except BaseException as error:
                self._abandon()
                self._raise_named(error)
                raise
            self._written += length
            return length

    def flush(self) -> None:
        """Writing: makes everything written so far decodable, as gzip.GzipFile.flush() does (a
        sync flush): it is compressed, written to the file object and that is flushed; the stream
        goes on (the default and single-member gzip forms: one member still; lz4: one frame), so
        a reader of the file or socket so far sees all of it. gzip and zstd after little (a log's
        records) are compressed on the calling thread with the window kept from flush to flush,
        as gzip.open and zstandard do; lz4 ends a chunk at each flush, so flushing it after every
        small write costs ratio and time. Reading: nothing (without the lock, which a
        read blocked in another thread holds: the text layer's close() flushes first)."""
        self._check_open()
        if self._mode == "rb":
            return
        with self._lock:
            self._flush()

    def _flush_file(self) -> None:
        """The file's own flush(), where it has one: a caller's object that only writes (as
        gzip.GzipFile and zstandard's stream_writer take) has nothing to flush."""
        flush = getattr(self._file, "flush", None)
        if flush is not None:
            flush()

    def _flush(self) -> None:
        if self._file is not None:
            if self._closing:  # the text layer's flush on its way to close(), which ends the stream
                return
            try:
                out = self._writer.flush()
                if out:
                    self._emit(out)
                self._cut_old_contents()  # where the flush wrote nothing too
                self._flush_file()
                if self._unpublished:  # what is flushed is for readers of the file: it goes in place now
                    self._publish()
                if self._append_from is not None:  # "ab": what readers may have seen stays
                    self._append_from += self._emitted
                    self._emitted = 0
            except BaseException as error:
                self._abandon()
                self._raise_named(error)
                raise

    def close(self) -> None:
        """Writing: ends the stream and publishes the file. Reading: stops the run (a read blocked
        in another thread then raises)."""
        # The run is stopped before the lock is taken: a read in another thread holds the lock
        # while it waits, maybe for a writer that sends nothing (a socket, a pipe).
        decoding = getattr(self, "_decoding", None)
        if decoding is not None and not self.closed:
            decoding.cancel()
        with self._lock:
            self._close()

    def __del__(self) -> None:
        """Dropped without close(): closed, as io closes files; but an output not put in place
        yet is abandoned where its name has changed since it was opened."""
        if not self._abandoned_as_stale():
            super().__del__()

    def _abandoned_as_stale(self) -> bool:
        """For a file dropped unclosed (a finalizer, perhaps long after an exception's traceback
        kept it): True, the output abandoned with a ResourceWarning, where it was to replace
        what stood at its name when opened and something else stands there now."""
        if self.closed or not getattr(self, "_unpublished", False):
            return False
        try:
            now = _identity(os.lstat(self._final_path))
        except OSError:
            now = None
        if now == self._final_was:
            return False
        self._abandon()
        warnings.warn(f"{self.name}: dropped unclosed after another file took its name: not put in place",
                      ResourceWarning, source=self)
        return True

    def _idle(self) -> bool:
        """True unless another thread is inside a call on the file."""
        if not self._lock.acquire(blocking=False):
            return False
        self._lock.release()
        return True

    def _close(self) -> None:
        if self.closed:
            return
        self._gathered = None  # writes take the checked way
        if self._inherited:  # the parent's: nothing of it is touched but the child's own descriptor
            self._close_fileno()
            self._file = None
            super().close()
            return
        try:
            if self._mode == "rb":
                self._lines.clear()
                self._buffered.close()  # a stream not read to its end: its run stops now, waited for
            elif self._file is not None:
                self._emit(self._writer.finish())
                self._flush_file()
            if self._owned and self._file is not None:
                if self._unpublished:
                    self._publish()
                self._file.close()
        except BaseException as error:
            self._abandon()  # the temporary goes, whatever failed
            self._raise_named(error)
            raise
        self._close_fileno()  # the run that read it has ended
        self._file = None
        super().close()

    def __exit__(self, exc_type, exc, traceback) -> None:
        """Closes the file; writing, an exception in the block abandons the output instead: a file
        opened by name is not published (the temporary goes), a file object is left without the
        end of the stream, so that no reader takes it for complete. Any exception: Ctrl-C, an
        asyncio task's cancellation, sys.exit() (a SIGTERM handler's), and GeneratorExit (a
        generator closed or dropped before it finished writing) too, where gzip.open would
        publish what came before it as a whole file; close() the file first to keep it."""
        if exc_type is not None and self._mode != "rb":
            with self._lock:
                self._abandon()
            return None
        self.close()
        return None

    def _abandon(self) -> None:
        """Stops the run and removes a temporary output: nothing half-written is left."""
        self._gathered = None
        for native in ("_writer", "_decoding"):
            if getattr(self, native, None) is not None:
                getattr(self, native).cancel()
        if isinstance(getattr(self, "_decoding", None), _Decoding):
            self._decoding.stop()  # its run ended, before the descriptor it reads goes
        self._close_fileno()
        if self._owned and self._file is not None:
            if self._append_from is not None:
                self._cut_back_appended()
            try:
                self._file.close()  # closed even where what it buffers fails to go (a full disk, again)
            except OSError:
                pass  # that is abandoned with the rest; the error that stopped the stream is raised
        self._file = None
        if self._temp_path and os.path.exists(self._temp_path):
            os.unlink(self._temp_path)
        self._temp_path = None
        self._unpublished = False
        self._release_reserved()
        if not self.closed:
            super().close()

    def _raise_named(self, error: BaseException) -> None:
        """Writing failed with `error` (the output abandoned): a system call's failure on a file
        opened by name (a full disk: the file's write, flush or close; putting it in place) is
        raised as sluice's Error of its errno naming the file (_system_error), where Python's
        names none (a write's) or a temporary; the caller raises any other as it is, a caller's
        file object's own exception among them."""
        if self._owned and isinstance(error, OSError) and not isinstance(error, Error):
            raise _system_error(error, self.name, "cannot write") from None

    def _emit(self, out: bytes) -> None:
        """Writes compressed bytes to the file, counted."""
        self._cut_old_contents()
        self._file.write(out)
        self._emitted += len(out)

    def _cut_old_contents(self) -> None:
        """"wb" in place: the old contents go when the first bytes are written or at the first
        flush() (which says the file holds what was written), not at open."""
        if self._cut_at_first_write:
            self._cut_at_first_write = False
            descriptor = self._file.fileno()
            if stat.S_ISREG(os.fstat(descriptor).st_mode):  # not a FIFO's or a device's
                os.ftruncate(descriptor, 0)

    def _cut_back_appended(self) -> None:
        """"ab", abandoned: the file as it was when opened, or at the last flush() (what readers
        may have seen stays, as with "wb"). A cut-off stream after a good one made the whole file
        unreadable (gzip -t, and a read of it raised before its first byte). Left as it is where
        another writer appended to it too (its size is not ours)."""
        try:
            self._flush_file()
        except BaseException:  # noqa: B902  what could not be written is not there to cut
            pass
        try:
            descriptor = self._file.fileno()
            # Not where nothing was appended: a truncation to the same size still sets the
            # file's times (a refused "ab" changed its mtime).
            if self._emitted and os.fstat(descriptor).st_size == self._append_from + self._emitted:
                os.ftruncate(descriptor, self._append_from)
        except OSError:
            pass
        self._append_from = None

    def _release_reserved(self) -> None:
        """"xb", abandoned: the empty file that held the name goes, if it is still the one."""
        if self._reserved is None:
            return
        try:
            if _identity(os.lstat(self._final_path or self.name)) == self._reserved:
                os.unlink(self._final_path or self.name)
        except OSError:
            pass
        self._reserved = None

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _close_fileno(self) -> None:
        if self._fileno is not None:
            if self._head is None and getattr(self, "_start", None) is not None:  # mtime after close, as gzip's
                try:
                    self._head = os.pread(self._fileno, _HEAD_BYTES, 0)
                except OSError:
                    pass
            os.close(self._fileno)
            self._fileno = None

    def _check_readable(self) -> None:
        self._check_open()
        if self._mode != "rb":
            raise io.UnsupportedOperation("not readable")

    def __repr__(self) -> str:
        return f"<sluice.SluiceFile {self.name!r} mode={self._mode!r}>"


class _NotReadable:
    """A SluiceFile's buffered reader while it writes: every read is an error."""

    def __getattr__(self, name: str):
        raise io.UnsupportedOperation("not readable")


_NOT_READABLE = _NotReadable()


class _Stopped:
    """The reader of a stream whose run was stopped (and not started again)."""

    def read(self, size: int, some: bool = False) -> bytes:
        raise Error("the stream was stopped", kind="cancelled")

    readinto = read

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        pass


_STOPPED = _Stopped()


class _Decoding(io.RawIOBase):
    """What a SluiceFile opened for reading reads: the decoded stream as raw reads, under the
    io.BufferedReader that serves the file's reads and lines in C (as gzip.open's are served). It
    owns the run that decodes (a PullReader; a small input decoded whole), the position, the error
    that ended the stream, and seek().

    An error ends the stream as its end does (kept in `error`): the buffered reader, which drops
    what it gathered for a read or a line when its raw read raises, returns what decoded before
    it, and SluiceFile raises the error at a read that gets nothing (SluiceFile._nothing). So does
    the file object's own exception. Ctrl-C (any exception that is not an Exception) stops the
    run and is raised at once."""

    def __init__(self, file, read_fd: int | None, start: int | None, args: tuple):
        super().__init__()
        # file: the file object read, or None for read_fd, a descriptor of a file opened by name
        # (a regular file, or a FIFO read as it comes), held by the SluiceFile (every read goes
        # through it, never the name again: a file renamed over that name, or a chdir, must not
        # change what is read); start: where the stream starts in it, None where it cannot seek
        # back; args: (format, threads, max_output, name) of the run.
        self._file, self._read_fd, self._start, self._args = file, read_fd, start, args
        self._reader = _STOPPED
        self.moved = False  # by seek(): the stream moved (SluiceFile.seek re-syncs after a failure)
        self.start()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # forward always; backward where SluiceFile.seekable() says

    def tell(self) -> int:
        return self._position

    def start(self, unit=None) -> None:
        """Decodes from the start of the stream, or from `unit` (a _units.Unit, with the decoded
        bytes before it) of a stream whose units record their sizes."""
        format, threads, max_output, name = self._args
        native_name = os.fsencode(name)  # not always UTF-8 (os.listdir's surrogate escapes)
        small = self._decoded_small() if unit is None and self._start is not None else None
        if small is not None:
            self._reader = small
        elif unit is None and self._start is None:  # a pipe, a socket, a FIFO: may block
            feeder = _Feeder(name)
            self.head = feeder.head
            reader = _native.PullReader("", None, format, threads, max_output, native_name, fed=feeder.source)
            if self._file is not None:  # only once the run that stops it exists
                feeder.start(self._file, close=False)
            else:  # a duplicate the feeder closes: close() need not wait for its blocked read
                feeder.start(builtins.open(os.dup(self._read_fd), "rb", buffering=0), close=True)
            self._reader = _FedReader(reader, feeder)
        elif unit is None:
            self._reader = _native.PullReader("", self._file, format, threads, max_output, native_name, fd=self._fd())
        else:
            unit, before = unit
            if self._file is None:  # read by the library, from the unit on
                self._reader = _native.PullReader("", None, format, threads, max_output, native_name, unit.offset,
                                                  fd=self._read_fd)
            else:
                self._file.seek((self._start or 0) + unit.offset)
                self._reader = _native.PullReader("", self._file, format, threads, max_output, native_name)
        self._pending = bytearray()  # decoded, not yet read: small reads' rest, what a failed read() gave back
        self._position = 0 if unit is None else before  # of the decoded stream, after what was read
        self._eof = False
        self.error: BaseException | None = None

    def _fd(self) -> int:
        """The descriptor the library reads, or -1 (a file object)."""
        return -1 if self._read_fd is None else self._read_fd

    def cancel(self) -> None:
        """Stops the run (a read blocked in another thread then raises)."""
        getattr(self, "_reader", _STOPPED).cancel()

    def stop(self) -> None:
        """Stops the run and waits for it: it ends before the file moves, and what it held (its
        descriptor, its buffers) goes now, whatever still refers to the reader (an error's
        traceback)."""
        self.cancel()
        reader, self._reader = self._reader, _STOPPED
        reader.close()

    def resume(self) -> None:
        """Forgets the error that ended the stream: the next read asks the reader again."""
        self.error = None
        self._eof = False

    def close(self) -> None:
        self.stop()
        super().close()

    def _decoded_small(self) -> "_Decoded | None":
        """A small input decoded whole, in one call (_SMALL_INPUT); None, with the file where it
        was, when it is not small or does not decode whole within _SMALL_OUTPUT."""
        format, threads, max_output, _ = self._args
        try:
            if self._file is None:
                if os.fstat(self._read_fd).st_size > _SMALL_INPUT:
                    return None
                data = os.pread(self._read_fd, _SMALL_INPUT + 1, 0)
            elif _Positional.possible(self._file):
                source = _Positional(self._file, self._start)
                if source.size > _SMALL_INPUT:
                    return None
                data = source.read(_SMALL_INPUT + 1)
            else:
                return None
        except OSError:
            return None  # the run meets it too, and reports it as it does
        if len(data) > _SMALL_INPUT:
            return None
        try:
            decoded = _native.decompress(data, format, threads,
                                         min(max_output, _SMALL_OUTPUT) if max_output else _SMALL_OUTPUT)
        except Error:
            return None  # more than _SMALL_OUTPUT, or an error the run reports after what decodes before it
        if self._file is not None:
            self._file.seek(self._start + len(data))  # as a run leaves it: read to the end
        return _Decoded(decoded)

    def _decode(self, method, *args):
        """method(*args) of the reader; an error ends the stream (kept in self.error), as does
        nothing decoded."""
        try:
            got = method(*args)
        except Exception as error:  # noqa: BLE001 - the stream's or the file object's: raised by SluiceFile
            self.error = error
            got = 0
        finally:
            del method, args  # not kept by the traceback of an error that is kept
        if not got:
            self._eof = True
        return got

    def _interrupted(self, stop: BaseException) -> None:
        """Ctrl-C (or another exception that is not an Exception) while bytes were on their way:
        the stream stops, as a run stops when it is interrupted."""
        if not isinstance(stop, Exception):
            self.cancel()

    def _from_pending(self, view) -> int:
        count = min(len(view), len(self._pending))
        with memoryview(self._pending) as pending:
            view[:count] = pending[:count]
        del self._pending[:count]
        self._position += count
        return count

    def readinto(self, target) -> int:
        try:
            with memoryview(target) as given, given.cast("B") as view:
                if not self._pending and len(view) < _SMALL_RAW_READ and not self._eof:
                    # One call to the run for many small reads.
                    self._pending += self._decode(self._reader.read, _BUFFER_BYTES, True) or b""
                if self._pending:
                    return self._from_pending(view)
                if self._eof or not len(view):
                    return 0
                count = self._decode(self._reader.readinto, view, True)
                self._position += count
                return count
        except BaseException as stop:
            self._interrupted(stop)
            raise

    def readall(self) -> bytes:
        """The rest of the stream, its pieces decoded straight into bytes objects and joined once
        (up to an error of the stream); the file object's exception or Ctrl-C leaves what decoded
        to be read again."""
        parts = [bytes(self._pending)] if self._pending else []
        self._pending.clear()
        try:
            while not self._eof:
                if got := self._decode(self._reader.read, _READ_BYTES):
                    parts.append(got)
        except BaseException as stop:
            self._pending[0:0] = b"".join(parts)  # nothing was read
            self._interrupted(stop)
            raise
        data = b"".join(parts)
        self._position += len(data)
        return data

    def unread(self, data: bytes) -> None:
        """Puts bytes read back in front of the stream, to be read again."""
        self._pending[0:0] = data
        self._position -= len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Moves to `offset` (SluiceFile.seek hands the buffered reader an absolute position):
        forward by decoding and dropping what lies between, backward by decoding again from the
        start, or from the unit that holds `offset` in a stream whose units record their sizes;
        at the end of the stream, stays there, as gzip does."""
        if whence != io.SEEK_SET:
            raise io.UnsupportedOperation("the decoded stream seeks to absolute positions only")
        backward = offset < self._position
        if backward and self._start is None:
            raise io.UnsupportedOperation("cannot seek backward: the underlying file is not seekable")
        self.moved = True
        unit = None
        ahead = offset - self._position - len(self._pending)
        if self._start is not None and (backward or ahead > _SEEK_BY_INDEX_BYTES):
            # A file object's index is read without moving it (pread, a BytesIO's buffer), or
            # while no run reads it: on the way back, or once its run has ended.
            if (self._file is None or backward or self._eof or self.error is not None
                    or _Positional.possible(self._file)):
                if backward:
                    self.stop()
                unit = self._unit_for(offset)
        if unit is not None and (backward or unit[1] > self._position):
            self.stop()
            self.start(unit)  # the unit that holds offset: decode only from there
        elif backward:
            self.stop()
            if self._file is not None:
                self._file.seek(self._start)
            self.start()
        if self._position < offset:
            with memoryview(bytearray(min(offset - self._position, _READ_BYTES))) as scratch:
                while self._position < offset:
                    if not self.readinto(scratch[: offset - self._position]):
                        if self.error is not None:
                            error = self.error
                            if not isinstance(error, Error):  # the file object's, raised once (SluiceFile._raise)
                                self.resume()
                            raise error
                        break  # the end of the stream
        return self._position

    def _unit_for(self, offset: int):
        """(unit, decoded bytes before it) for the unit of the stream that holds `offset`, when the
        stream's units record their sizes (zstd's seek table or frames, gzip members with a size
        field, BGZF; sluice._units reads them without decoding); None otherwise. The units are
        read as far as the target (zstd's seek table: all of them, from the end of the file), and
        kept for the next seek. The recorded sizes are trusted, as zstd's own seekable reader
        trusts its table."""
        known = getattr(self, "_unit_index", None) or []
        if sum(u.content for u in known) <= offset and not getattr(self, "_unit_index_complete", False):
            known = []
            try:
                source = self._file if self._file is not None else os.fdopen(os.dup(self._read_fd), "rb")
                try:
                    reader = _Positional(source, self._start or 0)
                    index = _units.index_stream(reader, reader.size, until=offset)
                finally:
                    if source is not self._file:
                        source.close()
                if len(index.units) > 1 and all(u.exact and u.frame < 0 for u in index.units):
                    known = index.units
                self._unit_index_complete = index.how == "zstd seek table" or not known
            except (OSError, ValueError, struct.error):
                self._unit_index_complete = True
            self._unit_index = known
        before = 0
        for unit in known:
            if before + unit.content > offset:
                return unit, before
            before += unit.content
        return None


# What the feeding thread asks of a file that may block at a time (read1: what is there, up to this).
_FEED_BYTES = 1 << 20


class _Feeder:
    """Reads a file object that may block (a pipe, a socket, a FIFO) on a daemon thread of its own
    and hands what it reads to the decoding run (_native.FedSource). Closing the file, the
    interpreter's exit and Ctrl-C then stop the run at once, where a read blocked in the file could
    not be interrupted; the thread ends once its read returns (what it read then is dropped, as
    any reader's read-ahead is: such a file is not for reading on after close()). read1() where
    the file has it, so that what arrives is handed on as it arrives."""

    def __init__(self, name: str):
        self.source = _native.FedSource(os.fsencode(name))
        self.error: BaseException | None = None
        self.head = bytearray()  # the stream's first bytes, as they come (SluiceFile.mtime)

    def start(self, file, close: bool) -> None:
        thread = threading.Thread(target=self._run, args=(file, close), name="sluice-feeder", daemon=True)
        thread.start()

    def _run(self, file, close: bool) -> None:
        source = self.source
        read = getattr(file, "read1", None) or file.read
        try:
            while True:
                data = read(_FEED_BYTES)
                if data is None:
                    raise BlockingIOError(errno.EAGAIN, "the file object is non-blocking and had no data")
                if not data:
                    source.end()
                    return
                if len(self.head) < _HEAD_BYTES:
                    self.head += data[:_HEAD_BYTES - len(self.head)]
                if not source.push(data):
                    return  # the run was stopped
        except BaseException as error:  # noqa: B036 - the reader raises it in the caller's thread
            self.error = error
            source.end(f"{type(error).__name__}: {error}" if str(error) else type(error).__name__)
        finally:
            if close:
                file.close()


class _FedReader:
    """A PullReader over a _Feeder: the file's own exception is raised in place of the run's
    report of it, as a file object read directly raises it."""

    def __init__(self, reader, feeder: _Feeder):
        self._native, self._feeder = reader, feeder

    def _raise_the_files(self) -> None:
        """The file's exception, once; later reads raise the run's report of it."""
        error, self._feeder.error = self._feeder.error, None
        if error is not None:
            raise error

    def read(self, size: int, some: bool = False) -> bytes:
        try:
            return self._native.read(size, some)
        except Error as error:
            if error.kind == "io":  # not corrupt data found before the file failed
                self._raise_the_files()
            raise

    def readinto(self, target, some: bool = False) -> int:
        try:
            return self._native.readinto(target, some)
        except Error as error:
            if error.kind == "io":
                self._raise_the_files()
            raise

    def cancel(self) -> None:
        self._native.cancel()

    def close(self) -> None:
        self._native.close()


class _Decoded:
    """A reader over a stream decoded whole (SluiceFile._decoded_small), as a PullReader reads."""

    def __init__(self, data: bytes):
        self._data, self._at = data, 0

    def read(self, size: int, some: bool = False) -> bytes:
        if self._at == 0 and size >= len(self._data):  # all of it, as it is
            self._at = len(self._data)
            return self._data
        piece = self._data[self._at:self._at + size]
        self._at += len(piece)
        return piece

    def readinto(self, target, some: bool = False) -> int:
        count = min(len(target), len(self._data) - self._at)
        with memoryview(self._data) as data:
            target[:count] = data[self._at:self._at + count]
        self._at += count
        return count

    def cancel(self) -> None:
        pass

    def close(self) -> None:
        self._data = b""


class _Positional:
    """Reads a file object from `start` on at any offset, without moving it where it can (os.pread
    on a real file, a BytesIO's buffer); otherwise by seeking it."""

    def __init__(self, file, start: int):
        self.file, self.start, self.at = file, start, 0
        self.fd = _fileno(file)
        if self.fd is not None:
            self.size = os.fstat(self.fd).st_size - start
        elif isinstance(file, io.BytesIO):
            self.size = len(file.getbuffer()) - start
        else:
            here = file.tell()
            self.size = file.seek(0, io.SEEK_END) - start
            file.seek(here)

    @staticmethod
    def possible(file) -> bool:
        return _fileno(file) is not None or isinstance(file, io.BytesIO)

    def seek(self, offset: int) -> int:
        self.at = offset
        return offset

    def read(self, size: int) -> bytes:
        if self.fd is not None:
            data = os.pread(self.fd, size, self.start + self.at)
        elif isinstance(self.file, io.BytesIO):
            data = bytes(self.file.getbuffer()[self.start + self.at:self.start + self.at + size])
        else:
            self.file.seek(self.start + self.at)
            data = self.file.read(size)
        self.at += len(data)
        return data


def _fileno(file) -> int | None:
    """The descriptor of a regular file that `file` reads as it is: a file from open(), not a
    wrapper that lends its file's descriptor (gzip.GzipFile, a tarfile member), whose bytes are
    not the descriptor's."""
    if not isinstance(file, (io.FileIO, io.BufferedReader, io.BufferedRandom)):
        return None
    try:
        fd = file.fileno()
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError):
        return None


def _peek_head(file, start: int) -> bytes | None:
    """The first bytes of a seekable file object's stream (SluiceFile.mtime), the file put back
    at `start`; None where they cannot be read now (the error comes with the first read, as
    gzip.open's)."""
    head = b""
    try:
        while len(head) < _HEAD_BYTES:
            piece = file.read(_HEAD_BYTES - len(head))
            if not piece:
                break
            head += piece
    except Exception:  # noqa: BLE001 - raised again by the read that needs it
        head = None
    file.seek(start)
    return head


def _position_of(file) -> int | None:
    """Where a file object stands, if it can seek back there (for SluiceFile.seek)."""
    try:
        return file.tell() if file.seekable() else None
    except (AttributeError, OSError):
        return None


def _has_acl(path: str) -> bool:
    """Whether the file has a POSIX access control list (a new file would not)."""
    try:
        return "system.posix_acl_access" in os.listxattr(path)
    except OSError:
        return False


def _unnamed_file(directory: str) -> int | None:
    """A new file without a name in `directory` (O_TMPFILE), linked into place by
    SluiceFile._publish, as the command line makes its new outputs: a crash before that leaves
    nothing, where a named temporary would stay behind. None where the system, the file system or
    a missing /proc has none: a temporary is named instead."""
    if not hasattr(os, "O_TMPFILE") or not os.access("/proc/self/fd", os.X_OK):
        return None
    try:
        return os.open(directory, os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    except PermissionError:
        raise
    except OSError:  # EOPNOTSUPP, EISDIR (no O_TMPFILE), ...
        return None


def _link_open_file(descriptor: int, path: str) -> None:
    """Gives the open file `descriptor` (one without a name: _unnamed_file) the name `path`:
    linkat() of /proc/self/fd/N, following that link (os.link calls link(), which does not
    follow it, unless given a directory's descriptor)."""
    directory, base = os.path.split(os.path.abspath(path))
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link(f"/proc/self/fd/{descriptor}", base, src_dir_fd=directory_fd, dst_dir_fd=directory_fd,
                follow_symlinks=True)
    finally:
        os.close(directory_fd)


def _link_beside(descriptor: int, path: str) -> str:
    """Gives the open file `descriptor` a new name beside `path`; returns the name."""
    directory, base = os.path.split(os.path.abspath(path))
    while True:
        candidate = os.path.join(directory, f".{base[:200]}.sluice-{os.urandom(6).hex()}")
        try:
            _link_open_file(descriptor, candidate)
            return candidate
        except FileExistsError:
            continue


def _identity(status: os.stat_result | None) -> tuple | None:
    """What tells one file at a name from another that replaced it or was written since."""
    if status is None:
        return None
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def _umask() -> int:
    """The process's umask, read where Linux shows it: setting it to read it (os.umask) opened a
    window in which another thread's new files and directories got no mask at all (a private
    0o700 directory came out 0o777). Without /proc, that is the only way."""
    try:
        with builtins.open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def open(file, mode: str = "rb", format: str | None = None, level: int | None = None, threads: int | None = None,
         encoding: str | None = None, errors: str | None = None, newline: str | None = None, **kwargs):
    """Opens a gzip, zstd or lz4 file, like gzip.open(), decoding or compressing on all cores.

    file: a path or a binary file object. mode: "rb", "wb", "ab", "xb" (binary) or "rt", "wt",
    "at", "xt" (text, with encoding, errors and newline as io.TextIOWrapper takes them; "r" and
    "w" are binary, as in gzip.open). format: for writing, the default comes from the file
    name's suffix (".zst", ".lz4"), else gzip, but "ab" continues the format the file holds (another
    asked for, or a file of none, is refused); reading tells it from the data. Other keywords:
    compresslevel (gzip.open's name for level), max_output, mtime, chunk_size, backend, and
    format settings (form="bgzf"); SluiceFile() takes the same.
    """
    text = "t" in mode
    binary_mode = mode.replace("t", "").replace("b", "")
    if binary_mode not in ("r", "w", "a", "x") or ("t" in mode and "b" in mode) or len(set(mode)) != len(mode):
        raise ValueError(f"invalid mode {mode!r}")
    _format_name(format)
    if not text and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("encoding, errors and newline are for text modes only")
    binary = SluiceFile(file, binary_mode + "b", format=format, level=level, threads=threads, **kwargs)
    if text:
        try:
            wrapper = _TextFile(binary, encoding=io.text_encoding(encoding), errors=errors, newline=newline)
            # TextIOWrapper writes UTF-16's and UTF-32's byte order mark only to a stream it can
            # seek (CPython), and a compressed stream being written cannot: the mark goes in
            # before the first text of a stream (_TextFile.write), and the wrapper writes the
            # native order it stands for. A stream appended to starts where the file was empty.
            if binary_mode == "a":
                at_start = binary._append_from == 0 if binary._append_from is not None else _at_start(file)
            else:
                at_start = binary_mode in ("w", "x")
            if at_start:
                wrapper._mark = {"utf-16": codecs.BOM_UTF16, "utf-32": codecs.BOM_UTF32}.get(
                    codecs.lookup(wrapper.encoding).name)
            return wrapper
        except BaseException:  # an unknown encoding: no output is left for it
            binary._abandon()
            raise
    return binary


def _at_start(file) -> bool:
    """Whether a caller's file object, opened to append, is empty so far (where it can tell)."""
    try:
        return file.tell() == 0
    except (AttributeError, OSError, ValueError):
        return False


class _TextFile(io.TextIOWrapper):
    """sluice.open's text mode: an exception in a `with` block abandons the output as the binary
    file's __exit__ does, rather than publishing what was written before it; and closing does not
    flush the stream before it ends it (TextIOWrapper.close flushes its buffer first: a sync flush
    there would only add bytes). _mark: a byte order mark still to write before the first text."""

    _mark: bytes | None = None

    def write(self, text: str) -> int:
        if self._mark is not None and text and not self.closed:
            mark, self._mark = self._mark, None
            self.buffer.write(mark)  # before the first text, so nothing is pending in the wrapper
        return super().write(text)

    def close(self) -> None:
        if not self.closed and self.buffer.writable():
            self.buffer._closing = True
        super().close()

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is not None and self.buffer.writable():
            self.buffer.__exit__(exc_type, exc, traceback)  # closed: nothing pending is written
            return None
        return super().__exit__(exc_type, exc, traceback)

    def __del__(self) -> None:
        """Dropped without close(): as the binary file's (SluiceFile.__del__)."""
        try:
            binary = self.buffer  # none after detach(), or where __init__ failed
        except (AttributeError, ValueError):
            binary = None
        if not (isinstance(binary, SluiceFile) and binary._abandoned_as_stale()):
            super().__del__()


@dataclasses.dataclass(frozen=True)
class PipelineItem:
    """One output a pipeline published."""
    input: str
    output: str
    input_bytes: int
    output_bytes: int
    checksum: str  # hex, when the pipeline has a checksum stage


@dataclasses.dataclass(frozen=True)
class PipelineReport:
    items: list
    manifest: str  # the checksum manifest written, if any
    seconds: float
    # An untar stage's entries refused for safety, not written, or read past: one message each
    # ("ARCHIVE: refusing entry 'NAME' (archive byte N): why"), the others extracted, as with
    # sluice.tar.extract (a stage with strict = true raises at the first instead); and what a
    # directory's walk left alone ("warning: PATH: is a symbolic link, ...").
    problems: list = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no entry was refused, failed or warned about."""
        return not self.problems


def run_pipeline(pipeline, overrides: Iterable[str] | dict | None = None, *, dry_run: bool = False,
                 on_item=None):
    """Runs a pipeline as `sluice run` does: `pipeline` is a TOML file's path, or its text (a str
    that names no file and holds a newline, a "=" or starts with "["). overrides: "key=value" strings or a dict,
    as `sluice run --set` (`{"threads": 4, "stage.2.level": 19, "output.directory": "out"}`).
    dry_run: return the resolved plan (str) without running. on_item(PipelineItem) as each
    output is published. A mistake in the file raises UsageError naming FILE:LINE:COLUMN. An
    untar stage's refused or failed entries are in the report's problems (check .ok)."""
    if isinstance(overrides, dict):
        overrides = [f"{key}={_toml_value(value)}" for key, value in overrides.items()]
    # An override's NUL byte would end the path it sets ("output.directory=out\0/../x" is out).
    overrides = [_path_name(override, "override") for override in overrides or ()]
    text = isinstance(pipeline, str) and not os.path.exists(pipeline) and (
        "\n" in pipeline or "=" in pipeline or pipeline.lstrip().startswith("["))
    source = pipeline if text else _path_name(pipeline, "pipeline")
    callback = None if on_item is None else (lambda t: on_item(PipelineItem(*t)))
    result = _native.run_pipeline(source, text, overrides, dry_run, callback)
    if dry_run:
        return result
    items, manifest, seconds, problems = result
    return PipelineReport([PipelineItem(*item) for item in items], manifest, seconds, problems)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = os.fsdecode(value) if isinstance(value, (bytes, os.PathLike)) else str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


from . import tar  # noqa: E402  (sluice.tar builds on SluiceFile above)
from . import zip  # noqa: E402,A004  (sluice.zip; it hides the builtin zip here: use builtins.zip)

_SUBMODULES = (tar, zip)  # loaded with the package, as sluice.tar and sluice.zip; not in __all__


def _open_for_fsspec(file, mode: str = "rb", **kwargs):
    """fsspec's compression="sluice": any of the three formats, read (told from the data) or
    written (format from the file's name, else gzip) through sluice.open."""
    if "r" not in mode and "format" not in kwargs:
        kwargs["format"] = _format_for_path(str(getattr(file, "path", "") or getattr(file, "name", "") or ""))
    return SluiceFile(file, mode.replace("t", "") if "b" in mode else mode + "b" if len(mode) == 1 else mode, **kwargs)


def _register_with(compression_module) -> None:
    if "sluice" not in compression_module.compr:
        compression_module.register_compression("sluice", _open_for_fsspec, [])


class _WhenFsspecLoads(importlib.abc.MetaPathFinder):
    """Registers compression="sluice" when fsspec.compression is first imported, so that
    `import sluice` does not import fsspec (a quarter of a second) for those who never use it."""

    def find_spec(self, name, path, target=None):
        if name != "fsspec.compression":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        inner = spec.loader

        class Loader(importlib.abc.Loader):
            def create_module(self, spec):
                return inner.create_module(spec)

            def exec_module(self, module):
                inner.exec_module(module)
                _register_with(module)

        spec.loader = Loader()
        return spec


def _register_with_fsspec() -> None:
    """After `import sluice`, fsspec.open(url, compression="sluice") (and so Dask's read_text and
    pandas through fsspec) decodes with sluice, whether fsspec is imported before or after."""
    if "fsspec.compression" in sys.modules:
        _register_with(sys.modules["fsspec.compression"])
    elif not any(isinstance(finder, _WhenFsspecLoads) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WhenFsspecLoads())


_register_with_fsspec()
