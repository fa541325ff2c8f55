"""Tar archives made and read by sluice: the archive stream compressed and decoded on all cores.

    import sluice.tar
    sluice.tar.create("site.tar.zst", ["site/"])            # format from the name, as `sluice tar`
    result = sluice.tar.extract("site.tar.zst", "restore/")  # never writes outside restore/
    for member in sluice.tar.list("site.tar.zst"): print(member.name, member.size)
    for member in sluice.tar.entries(upload): ...             # one at a time, in bounded memory

    with sluice.tar.open("rows.tar.gz", "w") as archive:    # streaming, in constant memory
        archive.add("README.md")
        info = tarfile.TarInfo("data/rows.csv"); info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))

Extraction has the safety of `sluice tar -x`: entries with absolute paths or `..`, writes through
symlinks and links that point outside are refused (each named in ExtractResult.refused, or an
error with strict=True), setuid bits dropped unless preserve_permissions, files written to a
temporary and renamed. Archives from GNU tar, bsdtar, Python's tarfile and sluice are read,
plain or compressed with gzip, zstd or lz4 (told from the data).
"""
from __future__ import annotations

import atexit
import builtins
import contextlib
import dataclasses
import os
import tarfile
import threading
import weakref
from typing import Callable, Iterable, Iterator

from . import (Error, SluiceFile, TrailingGarbageError, UsageError, _backend, _chunk_size, _ending_on_an_error,
               _level, _max_output, _native, _path_list, _path_name, _system_error, _threads, _umask)

__all__ = ["create", "extract", "list", "entries", "open", "format_for", "TarMember", "TarStats", "ExtractResult", "TarWriter"]


@dataclasses.dataclass(frozen=True)
class TarMember:
    """One entry of an archive, as the reader found it (tarfile.TarInfo's names where they exist)."""
    # The path stored, a directory's with its "/" where its writer put one (tarfile's TarInfo.name
    # drops it); undecodable bytes as surrogate escapes, as os.fsdecode gives.
    name: str
    type: str  # "file", "directory", "symlink", "hardlink", "chardev", "blockdev" or "fifo"
    size: int
    mode: int  # permission bits, setuid/setgid/sticky included
    mtime: float
    uid: int
    gid: int
    uname: str
    gname: str
    linkname: str  # a symlink's target, or the path a hard link refers to
    offset: int  # archive byte where the entry's header starts
    devmajor: int
    devminor: int
    sparse: bool

    def isfile(self) -> bool:
        return self.type == "file"

    def isdir(self) -> bool:
        return self.type == "directory"

    def issym(self) -> bool:
        return self.type == "symlink"

    def islnk(self) -> bool:
        return self.type == "hardlink"


@dataclasses.dataclass(frozen=True)
class TarStats:
    """What a create, extract or list call did."""
    format: str  # "gzip", "zstd", "lz4", or "" for a plain tar
    entries: int
    archive_bytes: int  # the uncompressed tar stream
    stored_bytes: int  # bytes written (create) or read (extract, list)
    warnings: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class ExtractResult:
    """What extract() did: entries refused for safety and entries the file system would not take
    are listed here (extraction goes on past them unless strict=True)."""
    stats: TarStats
    extracted: int
    refused: list  # [(TarMember, why)]
    failed: list  # [(TarMember, sluice.Error)]
    warnings: list  # messages about what the reader read past
    not_found: list  # members asked for that are not in the archive

    @property
    def ok(self) -> bool:
        return not (self.refused or self.failed or self.warnings or self.not_found)


def _member(t) -> TarMember:
    name, kind, size, mode, mtime, uid, gid, uname, gname, link, offset, major, minor, sparse = t
    return TarMember(os.fsdecode(name), kind, size, mode, mtime, uid, gid, os.fsdecode(uname), os.fsdecode(gname),
                     os.fsdecode(link), offset, major, minor, sparse)


def _encoded(names: Iterable, what: str = "paths") -> list[bytes]:
    """Paths and patterns for the native calls: bytes, as the file system has them (a name that is
    not UTF-8 arrives here with surrogate escapes, as os.fsdecode and os.listdir give it). One
    alone (a str) is refused: it would be taken letter by letter; so is one with a NUL byte."""
    return [os.fsencode(n) for n in _path_list(names, what)]


def _encoded_path(path, what: str) -> bytes:
    """One path for the native calls (an archive, a destination, a directory), as _encoded gives
    each: a NUL byte in it is refused (UsageError, a ValueError), before anything is touched."""
    return os.fsencode(_path_name(path, what))


def _decoded(names: Iterable[bytes]) -> list[str]:
    return [os.fsdecode(n) for n in names]


def _archive(archive) -> tuple[str, object]:
    """(path, None) for a path, ("", file) or (its name, file) for a binary file object."""
    if isinstance(archive, (str, bytes, os.PathLike)):
        return _path_name(archive, "archive"), None
    if hasattr(archive, "read") or hasattr(archive, "write"):
        name = getattr(archive, "name", "")
        return (name if isinstance(name, str) else ""), archive
    raise TypeError("archive must be a path or a binary file object")


def format_for(archive) -> str:
    """The compression an archive's name implies, as `sluice tar -c` reads it: ".tar.gz"/".tgz"
    gzip, ".tar.zst" zstd, ".tar.lz4" lz4; "" for ".tar" and anything else."""
    return _native.tar_format_for(_encoded_path(archive, "archive"))


def _plain_tar_header(data: bytes) -> bool:
    """A tar header with a good checksum at the start: a plain archive, even where its first name
    begins with a codec's magic ("\\x1f\\x8b\\x08name"), as GNU tar and bsdtar read it (it was
    taken for a corrupt gzip member)."""
    if len(data) < tarfile.BLOCKSIZE:
        return False
    try:
        stored = int(bytes(data[148:156]).replace(b"\0", b" ").strip() or b"-", 8)
    except ValueError:
        return False
    return stored in tarfile.calc_chksums(bytes(data[:tarfile.BLOCKSIZE]))


def _resolve_format(path: str, format: str | None, file=None) -> str:
    """The compression an archive being written gets. A name whose suffix says no format sluice
    writes (.tar.xz, .tar.bz2, .zip) is refused without a format, as `sluice tar -c` refuses it:
    a plain tar went out under a name that promises something else. A caller's file object is
    the caller's to have named."""
    if format is not None:
        return "" if format in ("", "none", "tar") else format
    codec = format_for(path) if path else ""
    base = os.path.basename(path or "")
    if file is None and not codec and base.rfind(".") > 0 and not base.lower().endswith(".tar"):
        hint = " (zip archives: sluice.zip.create)" if base.lower().endswith(".zip") else ""
        raise UsageError(f"cannot tell the compression from the name {base!r}: sluice.tar writes .tar.gz, .tgz, "
                         f".tar.zst, .tar.lz4 and .tar; name the archive so, or pass format= ('none' for a plain "
                         f"tar){hint}", "usage", path)
    return codec


def create(archive, paths: Iterable, format: str | None = None, level: int | None = None,
           threads: int | None = None, *, directory=None, exclude: Iterable[str] = (), mtime: int | None = None,
           owner: str | None = None, group: str | None = None, numeric_owner: bool = False, sparse: bool = False,
           on_entry: Callable[[TarMember], None] | None = None, chunk_size: int | None = None,
           backend: str | None = None, **knobs: str) -> TarStats:
    """Writes a tar archive of `paths` (files and directories, walked in name order) to `archive`
    (a path, written to a temporary and renamed when complete; or a binary file object), the
    stream compressed on all cores as it is produced.

    format: "gzip", "zstd", "lz4" or "none"; by default from the archive's name as `sluice tar`
    takes it (".tar.gz", ".tgz", ".tar.zst", ".tar.lz4"; ".tar" or no suffix: a plain tar; another
    suffix, such as ".tar.xz", is a UsageError without a format).
    directory: read paths relative to it (tar -C). exclude: GNU tar patterns. mtime, owner, group,
    numeric_owner: stored instead of each file's, for reproducible archives ("root:0").
    sparse: store files with holes as sparse entries. on_entry(member) as each entry is added.
    Same tree, same options: same bytes, for any number of threads.
    """
    path, file = _archive(archive)
    codec = _resolve_format(path, format, file)
    if not codec and (level is not None or knobs):
        raise UsageError("a level or format setting needs a compressed archive", "usage", path or None)
    names = _encoded(paths)
    if not names:
        raise UsageError("create() needs at least one path to archive", "usage", path or None)
    callback = None if on_entry is None else (lambda t: on_entry(_member(t)))
    stats = _native.tar_create(names, os.fsencode(path), file, codec, _level(level, codec) if codec else 0,
                               _threads(threads), _chunk_size(chunk_size), {k: str(v) for k, v in knobs.items()},
                               _backend(backend), _encoded_path(directory, "directory") if directory is not None else b"",
                               _encoded(exclude, "exclude patterns"), mtime, owner or "", group or "", numeric_owner,
                               sparse, callback)
    return TarStats(*stats)


def extract(archive, dest=".", members: Iterable[str] | None = None, *, exclude: Iterable[str] = (),
            strict: bool = False, preserve_permissions: bool = False, same_owner: bool = False, devices: bool = False,
            threads: int | None = None, on_entry: Callable[[TarMember], None] | None = None,
            max_output: int | None = None) -> ExtractResult:
    """Extracts `archive` (a path or a binary file object; any compression, told from the data)
    under `dest` (created if missing), safely: nothing is written outside it. members: only these
    paths and what is under them. Entries refused for safety or that the file system would not
    take are reported in the result; strict=True raises at the first one instead.
    max_output: the most bytes of file contents to write in all (the sizes the entries declare,
    and 4096 for each directory made); a file or directory that would pass it raises
    OutputLimitError before it is begun, the entries before it extracted: a small upload (a
    .tar.gz of zeros, or of names of thousands of directories) cannot fill the disk.
    """
    path, file = _archive(archive)
    raw = _native.tar_extract(os.fsencode(path), file, _encoded_path(dest, "dest"), _encoded(members or (), "members"),
                              _encoded(exclude, "exclude patterns"), preserve_permissions, same_owner, devices, strict,
                              _threads(threads),
                              _max_output(max_output), None if on_entry is None else (lambda t: on_entry(_member(t))))
    stats, extracted, refused, failed, warnings, not_found = raw
    return ExtractResult(TarStats(*stats), extracted, [(_member(e), why) for e, why in refused],
                         [(_member(e), error) for e, error in failed], _decoded(warnings), _decoded(not_found))


def list(archive, threads: int | None = None) -> "builtins.list[TarMember]":  # noqa: A001 (tarfile's name)
    """The entries of `archive` (a path or a binary file object), in order, without extracting.

    Every entry is held in memory until the call returns, as the list does after it: about 650
    bytes an entry, whatever the archive's size on disk (a .tar.zst of 17 KB holding 300,000
    empty files takes 188 MB). Where the archive is not trusted, entries() gives them one at a
    time in bounded memory.
    """
    path, file = _archive(archive)
    entries, _warnings = _native.tar_list(os.fsencode(path), file, _threads(threads))
    return [_member(e) for e in entries]


# What entries() reads at a time: the entries that begin in it are held at once (2,048 at most);
# and how much of the start it reads first, at least, to tell a compressed archive.
_ENTRIES_READ = 1 << 20
_DETECTED_FROM = 4096


def _read_some(file, size: int, name: str) -> bytes:
    """What `file` has, up to `size` bytes, without waiting for all of them where it can
    (read1: a pipe's entries are given as they come); b"" at its end."""
    data = (getattr(file, "read1", None) or file.read)(size)
    if data is None:  # not its end: a non-blocking file object, which list() refuses too
        raise Error(f"{name}: the file object is non-blocking and had no data", "io", name)
    return data


class _Prefixed:
    """A file object's bytes with the ones already read from it put back in front."""

    def __init__(self, prefix: bytes, file, name: str):
        self._prefix, self._file = prefix, file
        # For SluiceFile's messages: a name that is not UTF-8 with its bytes escaped (n\xff).
        self.name = os.fsencode(name).decode("utf-8", "backslashreplace")

    def read1(self, size: int = -1) -> bytes:
        if not self._prefix:
            return _read_some(self._file, size if size is not None and size >= 0 else _ENTRIES_READ, self.name)
        taken = self._prefix if size is None or size < 0 else self._prefix[:size]
        self._prefix = self._prefix[len(taken):]
        return taken

    read = read1  # short reads are a file object's right; SluiceFile reads on until b""


def entries(archive, threads: int | None = None) -> Iterator[TarMember]:
    """The entries of `archive` (a path or a binary file object), in order, one at a time as they
    are read, on the calling thread: memory stays bounded however many it holds (list() holds
    them all), as a loop over tarfile's "r|" stream does once its `members` are cleared.

        for member in sluice.tar.entries(upload):
            if member.size > limit: ...

    The archive is read as it comes, 1 MiB at most at a time (decoded by sluice.open where it is
    compressed, with `threads`); the entries that begin in what was read are given before more is
    read. An error of the archive's (CorruptDataError) is raised after the entries before it;
    trailing garbage after a compressed archive ends it, as list() takes it. The arguments are
    checked, and a path opened, at the call; a file opened so is closed when the loop ends or
    the iterator is closed.
    """
    path, file = _archive(archive)
    threads = _threads(threads)
    if not 0 <= threads <= 1024:
        raise UsageError(f"thread count must be 0 (every core) or between 1 and 1024, not {threads}", "usage")
    if file is None:
        try:
            file = builtins.open(path, "rb")
        except OSError as error:
            raise _system_error(error, path, "cannot open") from None
        return _entries(path, file, True, threads)
    return _entries(path or "<file>", file, False, threads)


def _entries(name: str, raw, owned: bool, threads: int) -> Iterator[TarMember]:
    with contextlib.ExitStack() as opened:
        if owned:
            opened.callback(raw.close)
        data = b""
        while len(data) < _DETECTED_FROM:  # enough to tell the format, however the file gives it
            more = _read_some(raw, _ENTRIES_READ, name)
            if not more:
                break
            data += more
        stream = raw
        if not _plain_tar_header(data) and _native.detect_format(bytes(data[:_DETECTED_FROM])):  # sluice.open decodes it
            stream = opened.enter_context(SluiceFile(_Prefixed(data, raw, name), "rb", threads=threads))
            data = b""
        parser = _native.TarEntries(os.fsencode(name))
        while True:
            if data:
                for entry in parser.feed(data):
                    yield _member(entry)
            try:
                data = _read_some(stream, _ENTRIES_READ, name)
            except TrailingGarbageError:
                break  # after the stream, all of it read: list() warns of it
            if not data:
                break
        for entry in parser.finish():
            yield _member(entry)


class _NoMembers(builtins.list):
    """TarFile.members for a writer: tarfile keeps every TarInfo it writes, for reading back, which
    grew a writer's memory by about 310 bytes an entry (31 MB for 100,000 entries)."""

    def append(self, member) -> None:
        pass


class _WatchedOutput:
    """The archive's output as tarfile writes it, noting a write that failed (it may have written
    part of a header: tarfile counts a header only once it is written whole)."""

    def __init__(self, out):
        self.out, self.failed = out, False
        # Where the archive starts, counted on from there: tarfile asks at the start, and a pipe
        # or a write-only object has no position to ask (tarfile's "w|" asks none).
        try:
            self.position = out.tell()
        except (AttributeError, OSError, ValueError):
            self.position = 0

    def write(self, data):
        try:
            written = self.out.write(data)
        except BaseException:
            self.failed = True
            raise
        self.position += memoryview(data).nbytes
        return written

    def tell(self) -> int:
        return self.position

    def __getattr__(self, name):  # name (tarfile leaves the archive itself out of add()), mode
        return getattr(self.out, name)


class _TarStream(tarfile.TarFile):
    """tarfile's writer, keeping no members, and telling an entry that failed after any of it went
    out (`halfway`): tarfile would go on and write the next entry where its data should be. An
    entry that fails before takes back the hard links it noted (tarfile notes a file's inode before
    it opens it: a link to an unreadable file became a link to an entry never written)."""

    def __init__(self, fileobj):
        self.watched = _WatchedOutput(fileobj)
        super().__init__(fileobj=self.watched, mode="w", format=tarfile.PAX_FORMAT)
        self.members = _NoMembers()
        self.halfway = False
        # The file being written, left out of a tree added around it (its temporary was archived,
        # half written, where tarfile would have left the archive out by its name).
        try:
            own = os.fstat(fileobj.fileno())
            self.own: tuple[int, int] | None = (own.st_dev, own.st_ino)
        except (AttributeError, OSError, ValueError):
            self.own = None

    def addfile(self, tarinfo, fileobj=None):
        if tarinfo.isreg() and tarinfo.size > 0 and fileobj is None:  # only the header went out (3.11)
            raise UsageError(f"entry {tarinfo.name!r}: a regular file of {tarinfo.size} bytes needs a file object "
                             "to read them from", "usage")
        began = self.offset
        try:
            super().addfile(tarinfo, fileobj)
        except BaseException:
            self.halfway = self.halfway or self.offset != began or self.watched.failed
            raise

    def add(self, name, arcname=None, recursive=True, *, filter=None):
        if self.own is not None:
            with contextlib.suppress(OSError):
                found = os.lstat(name)
                if (found.st_dev, found.st_ino) == self.own:
                    return
        noted = len(self.inodes)
        try:
            super().add(name, arcname, recursive, filter=filter)
        except BaseException:
            if not self.halfway:
                for inode in builtins.list(self.inodes)[noted:]:
                    del self.inodes[inode]
            raise


class TarWriter:
    """Writes a tar archive as a stream: entries go out as they are added, compressed on all cores,
    in constant memory (a member's data is copied through in blocks, never held whole; no record of
    the entries is kept, but tarfile's of files with several hard links). The archive is pax
    (tarfile.PAX_FORMAT), which GNU tar, bsdtar and every tarfile read.

    addfile(tarinfo, fileobj) takes a tarfile.TarInfo and a binary file object with exactly
    tarinfo.size bytes; add(path, arcname=None, recursive=True) takes files and directories from
    disk. Opened by name, the archive is a temporary until close() renames it into place: an error
    (or leaving a `with` block by an exception) leaves nothing behind. An entry that fails before
    it is begun (a file that is not there: FileNotFoundError, also sluice.Error) leaves the archive
    as it was; one that fails halfway (a file object with fewer than tarinfo.size bytes, a read
    error) leaves it unfinishable: every later call raises, and close() abandons it. Its methods may be called
    from several threads: each entry goes in whole, one at a time (the entries of threads that
    shared one writer were interleaved into a corrupt archive).
    """

    def __init__(self, archive, format: str | None = None, level: int | None = None, threads: int | None = None,
                 **kwargs):
        path, file = _archive(archive)
        codec = _resolve_format(path, format, file)
        self.name = path
        if codec:
            self._out = SluiceFile(archive, "wb", format=codec, level=level, threads=threads, **kwargs)
        else:
            if level is not None or kwargs:
                raise UsageError("a level or format setting needs a compressed archive", "usage", path or None)
            self._out = _PlainOutput(archive) if file is None else file
        self._own_out = bool(codec) or file is None  # made here: a caller's file object is theirs
        self._tar = _TarStream(self._out)
        self._broken: Error | None = None  # the failure that left an entry half written
        self._ended = False
        self._pid = os.getpid()  # a fork's child leaves the parent's archive alone
        self._lock = threading.RLock()
        _open_writers.add(self)

    def addfile(self, tarinfo: tarfile.TarInfo, fileobj=None) -> None:
        """Adds an entry from a TarInfo and, for a regular file, a binary file object to read its
        tarinfo.size bytes from."""
        self._entry(tarinfo.name, tarinfo.size, lambda: self._tar.addfile(tarinfo, fileobj))

    def add(self, name, arcname=None, recursive: bool = True, *, filter=None) -> None:
        """Adds a file, directory (and, with recursive, everything under it, in name order),
        symlink or other file from disk, as tarfile.TarFile.add does."""
        self._entry(os.fsdecode(name), None, lambda: self._tar.add(os.fsdecode(name), arcname, recursive, filter=filter))

    def _entry(self, name: str, size: int | None, write: Callable[[], None]) -> None:
        """Runs tarfile's `write` of an entry: its failures are sluice's, named for the entry, and
        one after the entry's header went out leaves the archive unfinishable (tarfile would go on
        and write the next entry where this one's data should have been)."""
        self._check_not_forked()
        with self._lock:
            self._check_unbroken()
            try:
                write()
            except BaseException as error:
                failure = error
                if isinstance(error, OSError) and not isinstance(error, Error):
                    if error.errno is None and str(error) == "unexpected end of data":  # tarfile's copyfileobj
                        failure = Error(f"{self.name or '<archive>'}: entry {name!r}: its data ended before the "
                                        + (f"{size} bytes declared" if size is not None else "size declared"), "io",
                                        self.name or None)
                    else:  # the file that failed (inside a directory added), else the one added
                        failure = _system_error(error, os.fsdecode(error.filename or name), "cannot archive")
                if self._tar.halfway or self._tar.watched.failed or (
                        isinstance(error, Error) and error.path is not None and error.path == self.name):
                    self._broken = failure if isinstance(failure, Error) else Error(
                        f"{self.name}: an entry was stopped halfway ({type(error).__name__})", "cancelled", self.name)
                if failure is error:
                    raise
                raise failure from None

    def _check_unbroken(self) -> None:
        if self._broken is not None:
            raise Error(f"{self.name or '<archive>'}: an entry failed halfway ({self._broken}); the archive cannot be "
                        "finished", "usage", self.name or None)

    def close(self) -> None:
        """Ends the archive (two zero blocks, padding to a 10 KiB record) and the compressed
        stream, and publishes the file. A file object of the caller's is flushed, not closed."""
        if self._pid != os.getpid():
            _open_writers.discard(self)
        self._check_not_forked()
        with self._lock:
            if self._broken is not None and not self._ended:
                self._abandon()
                raise Error(f"{self.name or '<archive>'}: an entry failed halfway ({self._broken}); the archive was "
                            "abandoned", "usage", self.name or None)
            self._close()

    def _check_not_forked(self) -> None:
        """Before the lock, which a thread of the parent's may hold for good in a forked child."""
        if self._pid != os.getpid():
            raise UsageError("this archive was opened before os.fork(): it is the parent's to end", "usage",
                             self.name or None)

    def _close(self) -> None:
        _open_writers.discard(self)
        self._ended = True
        self._tar.close()
        if self._own_out:
            self._out.close()  # SluiceFile leaves a caller's file object open
        elif hasattr(self._out, "flush"):  # an object that only writes has nothing to flush
            self._out.flush()

    def abandon(self) -> None:
        """Stops and removes what was written (a named archive leaves no file behind)."""
        if getattr(self, "_pid", None) != os.getpid():  # the parent's (its lock may be held for good)
            _open_writers.discard(self)
            self._ended = True
            return
        with getattr(self, "_lock", contextlib.nullcontext()):
            self._abandon()

    def _abandon(self) -> None:
        _open_writers.discard(self)
        self._ended = True
        if self._pid != os.getpid() or not self._own_out:  # the parent's, or the caller's
            return
        if isinstance(self._out, SluiceFile):
            self._out._abandon()
        else:
            self._out.abandon()

    def __enter__(self) -> "TarWriter":
        return self

    def __del__(self) -> None:
        """Dropped without close(): abandoned (the archive was not ended), not put in place."""
        if getattr(self, "_ended", True) is False:
            self.abandon()

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abandon()


# TarWriters not closed yet. At exit they are ended and published before the files under them
# close (this handler, registered after sluice's, runs before it), or abandoned where the
# program ends on an uncaught exception, as sluice.open's files are.
_open_writers: "weakref.WeakSet[TarWriter]" = weakref.WeakSet()


@atexit.register
def _end_open_writers() -> None:
    failed = _ending_on_an_error()
    for writer in builtins.list(_open_writers):
        if writer._pid != os.getpid():  # a fork's child: the parent's
            continue
        try:
            if failed:
                writer.abandon()
            else:
                writer.close()
        except BaseException:  # noqa: B902  (at exit, nothing is left to report to)
            writer.abandon()


class _PlainOutput:
    """A plain tar's file: a temporary beside the name, renamed into place by close(); dropped
    without it, the temporary goes. Its failures (a missing directory, a full disk) are sluice's
    Errors naming the archive, not the temporary, as a compressed archive's (SluiceFile)."""

    def __init__(self, path):
        import tempfile
        self._path = _path_name(path, "archive")
        try:
            descriptor, self._temp = tempfile.mkstemp(prefix=".sluice-",
                                                      dir=os.path.dirname(os.path.abspath(self._path)))
        except OSError as error:
            raise _system_error(error, self._path, "cannot open output") from None
        # Unbuffered: a fork's child would write a buffer's copy into the parent's file at its exit.
        # (tarfile writes whole blocks and 16 KiB pieces: a buffer saves few calls.)
        self._file = builtins.open(descriptor, "wb", buffering=0)
        self._written = 0
        self._pid = os.getpid()

    def write(self, data) -> int:
        with memoryview(data) as view, view.cast("B") as rest:
            done = 0
            try:
                while done < len(rest):  # a raw write may take part of it
                    done += self._file.write(rest[done:])
            except OSError as error:
                raise _system_error(error, self._path, "cannot write") from None
        self._written += done
        return done

    def fileno(self) -> int:
        return self._file.fileno()

    def tell(self) -> int:
        return self._written

    def close(self) -> None:
        if self._temp is None:
            return
        try:
            self._file.close()
            os.chmod(self._temp, 0o666 & ~_umask())
            os.replace(self._temp, self._path)
        except OSError as error:
            raise _system_error(error, self._path, "cannot write") from None
        self._temp = None

    def abandon(self) -> None:
        if self._temp is not None:
            self._file.close()
            os.unlink(self._temp)
            self._temp = None

    def __del__(self) -> None:
        if getattr(self, "_temp", None) is not None and self._pid == os.getpid():
            self.abandon()


def open(archive, mode: str = "w", format: str | None = None, level: int | None = None,  # noqa: A001
         threads: int | None = None, **kwargs) -> TarWriter:
    """A TarWriter for `archive` (mode "w"): the streaming writer. To read, use extract() and
    list(), or tarfile.open(fileobj=sluice.open(path, "rb"), mode="r|") to walk members."""
    if mode != "w":
        raise ValueError(f"sluice.tar.open() writes (mode 'w'); not {mode!r}: use extract() or list() to read")
    return TarWriter(archive, format, level, threads, **kwargs)

