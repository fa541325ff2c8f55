"""Zip archives made and read by sluice: members compressed and decoded on all cores.

    import sluice.zip
    sluice.zip.create("bundle.zip", ["data/"])               # deflate, level 6, as `sluice zip -c`
    result = sluice.zip.extract("bundle.zip", "out/")        # never writes outside out/
    for member in sluice.zip.list("bundle.zip"): print(member.name, member.size, member.method)
    sluice.zip.test("bundle.zip")                            # every CRC-32 checked, nothing written
    sluice.zip.transcode("upload.zip", "store/", "gzip")     # each member to store/NAME.gz

Instead of zipfile in a ProcessPoolExecutor: one call decodes members on every core (small ones
one per task, a big one in parallel where its writer cut it into independent chunks, as sluice
does), in bounded memory. Archives from Info-ZIP, 7-Zip, bsdtar, Python's zipfile and sluice are
read, zip64 included; methods stored, deflate, zstd (93), bzip2, LZMA and xz; others (deflate64,
PPMd) and encrypted members are reported by name. Extraction has the safety of `sluice zip -x` (and `sluice tar -x`): absolute
paths, `..` and writes through symlinks are refused (each named in ExtractResult.refused, or an
error with strict=True); members whose archive is hostile as a whole (overlapping members, a
central directory pointing outside the file) raise before anything is written.
"""
from __future__ import annotations

import builtins
import dataclasses
import os
from typing import Callable, Iterable

from . import UsageError, _chunk_size, _integer, _level, _max_output, _native, _path_name, _threads
from .tar import _decoded, _encoded, _encoded_path

__all__ = ["create", "extract", "list", "test", "transcode", "ZipMember", "ZipStats", "ExtractResult", "TestResult"]


@dataclasses.dataclass(frozen=True)
class ZipMember:
    """One entry of an archive, as its central directory describes it (zipfile.ZipInfo's names
    where they exist)."""
    # UTF-8 where flagged, a Unix writer's bytes as they are (os.fsdecode), else CP437, as unzip
    # reads them; a directory's without the trailing "/"
    name: str
    type: str  # "file", "directory" or "symlink"
    size: int  # file_size
    compress_size: int
    method: str  # "stored", "deflate", "zstd", ... or "method N"
    crc: int
    mode: int  # permission bits
    mtime: int  # seconds since 1970
    offset: int  # archive byte of the member's local header
    encrypted: bool

    def is_dir(self) -> bool:
        return self.type == "directory"

    def is_symlink(self) -> bool:
        return self.type == "symlink"


@dataclasses.dataclass(frozen=True)
class ZipStats:
    """What a call did."""
    entries: int
    archive_bytes: int  # the zip file's size (read) or bytes written (create)
    stored_bytes: int  # members' uncompressed bytes
    seconds: float


@dataclasses.dataclass(frozen=True)
class ExtractResult:
    """What extract() or transcode() did: members refused for safety and members that could not
    be decoded or written are listed here (the rest goes on unless strict=True)."""
    stats: ZipStats
    extracted: int
    refused: list  # [(ZipMember, why)]
    failed: list  # [(ZipMember, sluice.Error)]
    not_found: list  # members asked for that are not in the archive
    not_listed: int = 0  # members refused or failed past the first 16 MiB of names: counted only

    @property
    def ok(self) -> bool:
        return not (self.refused or self.failed or self.not_found or self.not_listed)


@dataclasses.dataclass(frozen=True)
class TestResult:
    """What test() found: the members whose data does not decode to their size and CRC-32."""
    stats: ZipStats
    failed: list  # [(ZipMember, sluice.Error)]
    not_listed: int = 0  # members failed past the first 16 MiB of names: counted only

    @property
    def ok(self) -> bool:
        return not (self.failed or self.not_listed)


def _member(t) -> ZipMember:
    name, kind, size, compressed, method, crc, mode, mtime, offset, encrypted = t
    return ZipMember(os.fsdecode(name), kind, size, compressed, method, crc, mode, mtime, offset, encrypted)


def _path(archive) -> bytes:
    if isinstance(archive, (str, bytes, os.PathLike)):
        return _encoded_path(archive, "archive")
    raise TypeError("archive must be a path (a zip is read at any offset: not a stream)")


def _zip_level(level: int | None, format: str | None) -> int | None:
    """zip_create's level: 0 stores every member (as zip -0 and `sluice zip -0`), None is the
    codec's default, others the codec's (_level's rules: zlib's -1 is deflate's default)."""
    if level is not None and _integer(level, "level") == 0:
        return 0
    chosen = _level(level, format or "gzip")
    return None if chosen == 0 else chosen


def create(archive, paths: Iterable, format: str | None = None, level: int | None = None,
           threads: int | None = None, *, directory=None, exclude: Iterable[str] = (), mtime: int | None = None,
           chunk_size: int | None = None, on_entry: Callable[[ZipMember], None] | None = None) -> ZipStats:
    """Writes a zip of `paths` (files, directories walked in name order, symlinks as symlinks) to
    `archive`: a path (a temporary renamed into place when complete) or a binary file object
    (written as a stream: a big file's sizes follow its data in a data descriptor).

    format: "gzip" (deflate, the zip standard; the default) or "zstd" (method 93, which fewer
    readers take). level: the codec's (deflate 1-9, default 6); 0 stores every member, as zip -0.
    directory: read paths relative to it. exclude: GNU tar patterns. mtime: stored for every
    entry. Same tree, same options: same bytes, for any number of threads.
    """
    names = _encoded(paths)
    if isinstance(archive, (str, bytes, os.PathLike)):
        path, file = _path_name(archive, "archive"), None
    elif hasattr(archive, "write"):
        path, file = getattr(archive, "name", "") if isinstance(getattr(archive, "name", ""), str) else "", archive
    else:
        raise TypeError("archive must be a path or a binary file object")
    if not names:
        raise UsageError("create() needs at least one path to archive", "usage", path or None)
    callback = None if on_entry is None else (lambda t: on_entry(_member(t)))
    stats = _native.zip_create(names, os.fsencode(path), file, format or "", _zip_level(level, format), _threads(threads),
                               _chunk_size(chunk_size),
                               _encoded_path(directory, "directory") if directory is not None else b"",
                               _encoded(exclude, "exclude patterns"), mtime, callback)
    return ZipStats(*stats)


def _unpack(archive, dest, members, exclude, strict, preserve_permissions, threads, format, level,
            on_entry, max_output, keep_what_was_there=False) -> ExtractResult:
    raw = _native.zip_extract(_path(archive), _encoded_path(dest, "dest"), _encoded(members or (), "members"),
                              _encoded(exclude, "exclude patterns"), preserve_permissions, strict, _threads(threads), format,
                              _level(level, format) if format else 0,
                              _max_output(max_output), None if on_entry is None else (lambda t: on_entry(_member(t))),
                              keep_what_was_there)
    stats, extracted, refused, failed, not_found, not_listed = raw
    return ExtractResult(ZipStats(*stats), extracted, [(_member(e), why) for e, why in refused],
                         [(_member(e), error) for e, error in failed], _decoded(not_found), not_listed)


def extract(archive, dest=".", members: Iterable[str] | None = None, *, exclude: Iterable[str] = (),
            strict: bool = False, preserve_permissions: bool = False, threads: int | None = None,
            on_entry: Callable[[ZipMember], None] | None = None, max_output: int | None = None) -> ExtractResult:
    """Extracts the zip at `archive` (a path) under `dest` (created if missing), safely: nothing
    is written outside it. members: only these paths and what is under them. Members refused for
    safety, or that cannot be decoded (unsupported method, encrypted, corrupt) or written, are
    reported in the result and leave nothing behind; strict=True raises at the first instead.
    max_output: the most bytes of file contents to write in all (and 4096 for each directory
    their names hold); when the members to extract declare more, OutputLimitError is raised
    before anything is written (a member that decodes to more than it declares fails): an
    uploaded zip bomb cannot fill the disk.
    """
    return _unpack(archive, dest, members, exclude, strict, preserve_permissions, threads, "", 0, on_entry,
                   max_output)


def transcode(archive, dest, format: str = "gzip", level: int | None = None, *, members: Iterable[str] | None = None,
              exclude: Iterable[str] = (), strict: bool = False, threads: int | None = None,
              on_entry: Callable[[ZipMember], None] | None = None, max_output: int | None = None,
              overwrite: bool = False) -> ExtractResult:
    """Compresses each file member of the zip at `archive` to its own file under `dest`, named
    as the member plus the format's suffix ("a/b.txt" -> dest/a/b.txt.gz), without writing the
    plain files: an upload service's "zip in, one .gz per file out" in one pass. Each file's bytes
    are those `sluice -c` makes of the member. Safety, reporting and max_output (the members'
    contents, before they are compressed) as extract(). A file that was in dest before the call
    is kept and its member refused (in the result's `refused`), as `sluice transcode` keeps it,
    unless overwrite=True; a zip that holds a name twice still gives its last.
    """
    return _unpack(archive, dest, members, exclude, strict, False, threads, format, level, on_entry, max_output,
                   keep_what_was_there=not overwrite)


def list(archive) -> "builtins.list[ZipMember]":  # noqa: A001 (tarfile's and zipfile's habit)
    """The members of the zip at `archive`, in central directory order, without decoding."""
    return [_member(t) for t in _native.zip_list(_path(archive))]


def test(archive, threads: int | None = None) -> TestResult:
    """Decodes every member of the zip at `archive` on all cores and checks its size and CRC-32,
    writing nothing (zipfile.ZipFile.testzip, in parallel). The archive's own faults raise."""
    stats, failed, not_listed = _native.zip_test(_path(archive), _threads(threads))
    return TestResult(ZipStats(*stats), [(_member(e), error) for e, error in failed], not_listed)
