"""Where a compressed stream can be cut without decoding it (sluice.dask's partitions).

A stream is indexed from what its formats record, read through a random-access file object
(local, or any fsspec file), never by decoding it:

- zstd: the seek table of zstd's seekable format at the end of the file (what sluice writes: one
  read of the end), else the frames one after another (each frame's blocks are walked to find its
  end: a read per 128 KiB block, which on remote storage amounts to reading the file).
- gzip: members that record their size, sluice's multi-member form ('S','L' subfield, with the
  uncompressed size) and BGZF ('B','C', with ISIZE from the member's trailer): one read per member
  (a member is 1 MiB of input in sluice's form, 64 KiB in BGZF: on remote storage that is a
  request per member, about 1,000 per GB of sluice's form). sluice's default form, one member of
  independent chunks ('S','I'), records no sizes: each partition task finds its first chunk
  after a sync flush, proven by inflating the chunks that follow it (inflate_chunks below;
  sluice.dask's _ChunkPieces; docs/dask.md).
- lz4: the frame's blocks, by their size words (a read per block); blocks of a frame with
  independent blocks are units, wrapped in the frame's header and an end mark to be decoded.

Anything else (one gzip member as gzip writes it, one zstd frame) is one unit: the whole file.
The layouts are docs/independent-gzip.md's and the formats' specifications; the writers of our
own forms are codecs/gzip_codec.cpp, zstd_codec.cpp and lz4_codec.cpp.
"""
from __future__ import annotations

import dataclasses
import struct
import zlib
from typing import NamedTuple


@dataclasses.dataclass(frozen=True)
class Unit:
    """offset and size in the compressed file; content: uncompressed bytes (an estimate where
    `exact` is False); frame: units of one lz4 frame share its header and end mark."""
    offset: int
    size: int
    content: int
    exact: bool = True
    frame: int = -1


@dataclasses.dataclass
class Index:
    format: str
    units: list[Unit]
    # lz4: frame number -> (header bytes, end bytes) that make any run of its blocks a frame.
    frames: dict[int, tuple[bytes, bytes]] = dataclasses.field(default_factory=dict)
    # gzip's one member of independent chunks: header length, chunk size, candidates to check.
    independent: tuple[int, int] | None = None
    how: str = ""
    # Only some of the file's units (a partition task's share): more are found by indexing again.
    truncated: bool = False

    @property
    def splittable(self) -> bool:
        return len(self.units) > 1


class _Reader:
    """Reads at offsets, with a buffer that serves the small reads of a walk."""

    def __init__(self, file, size: int, buffer_bytes: int = 1 << 20):
        self.file, self.size, self.buffer_bytes = file, size, buffer_bytes
        self.start, self.data = 0, b""

    def read(self, offset: int, length: int) -> bytes:
        if offset < self.start or offset + length > self.start + len(self.data):
            self.file.seek(offset)
            self.start = offset
            self.data = self.file.read(max(length, self.buffer_bytes))
        at = offset - self.start
        return self.data[at:at + length]


ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE_MASK, SKIPPABLE = 0xFFFFFFF0, 0x184D2A50
SEEK_TABLE_FRAME = 0x184D2A5E
SEEKABLE_MAGIC = 0x8F92EAB1
LZ4_MAGIC = 0x184D2204


def index_stream(file, size: int, until: int | None = None) -> Index:
    """The units of the stream in `file` (a seekable binary file object of `size` bytes). With
    `until`, a walk stops at the unit that holds that uncompressed offset (a seek needs no more)."""
    reader = _Reader(file, size)
    head = reader.read(0, 18)
    whole = Index("", [Unit(0, size, 0, exact=False)], how="one unit: the whole file")
    if len(head) >= 4:
        magic = struct.unpack_from("<I", head)[0]
        if head[:2] == b"\x1f\x8b":
            return _gzip(reader, size, until) or dataclasses.replace(whole, format="gzip")
        if magic == ZSTD_MAGIC or (magic & SKIPPABLE_MASK) == SKIPPABLE:
            return (_zstd_seek_table(reader, size) or _zstd_frames(reader, size, until)
                    or dataclasses.replace(whole, format="zstd"))
        if magic == LZ4_MAGIC:
            return _lz4(reader, size, until) or dataclasses.replace(whole, format="lz4")
    return whole


def _zstd_seek_table(reader: _Reader, size: int) -> Index | None:
    if size < 17:
        return None
    frames, descriptor, magic = struct.unpack("<IBI", reader.read(size - 9, 9))
    if magic != SEEKABLE_MAGIC or descriptor & 0x7C:
        return None
    entry = 12 if descriptor & 0x80 else 8
    table = 8 + frames * entry + 9
    if table > size:
        return None
    raw = reader.read(size - table, table)
    skip_magic, skip_size = struct.unpack_from("<II", raw)
    if skip_magic != SEEK_TABLE_FRAME or skip_size != table - 8:
        return None
    units, at = [], 0
    for i in range(frames):
        compressed, content = struct.unpack_from("<II", raw, 8 + i * entry)
        units.append(Unit(at, compressed, content))
        at += compressed
    if at != size - table:  # frames before the table that it does not list: walk instead
        return None
    return Index("zstd", units, how="zstd seek table")


def _zstd_frame_end(reader: _Reader, at: int, size: int) -> tuple[int, int | None] | None:
    """(end of the frame at `at`, its declared content size or None), or None if malformed."""
    h = reader.read(at, 18)
    if len(h) < 6:
        return None
    descriptor = h[4]
    fcs_code, single, checksum, dict_code = descriptor >> 6, descriptor >> 5 & 1, descriptor >> 2 & 1, descriptor & 3
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_code]
    fcs_bytes = (1 if single else 0, 2, 4, 8)[fcs_code]
    content = None
    if fcs_bytes:
        raw = h[pos:pos + fcs_bytes]
        if len(raw) < fcs_bytes:
            return None
        content = int.from_bytes(raw, "little") + (256 if fcs_bytes == 2 else 0)
    at += pos + fcs_bytes
    while True:
        b = reader.read(at, 3)
        if len(b) < 3:
            return None
        header = b[0] | b[1] << 8 | b[2] << 16
        last, kind, block = header & 1, header >> 1 & 3, header >> 3
        at += 3 + (1 if kind == 1 else block)  # an RLE block stores one byte
        if kind == 3 or at > size:
            return None
        if last:
            return at + (4 if checksum else 0), content


class _Units(list):
    """A list of units that keeps the sum of their content sizes (for a walk with `until`)."""
    content = 0

    def append(self, unit: Unit) -> None:
        super().append(unit)
        self.content += unit.content

    def __iadd__(self, units):
        for unit in units:
            self.append(unit)
        return self


def _past(units: _Units, until: int | None) -> bool:
    return until is not None and units.content > until


def _zstd_frames(reader: _Reader, size: int, until: int | None = None) -> Index | None:
    units, at = _Units(), 0
    while at < size and not _past(units, until):
        h = reader.read(at, 8)
        if len(h) < 8:
            return None
        magic, length = struct.unpack("<II", h)
        if (magic & SKIPPABLE_MASK) == SKIPPABLE:
            at += 8 + length
            continue
        if magic != ZSTD_MAGIC:
            return None
        found = _zstd_frame_end(reader, at, size)
        if found is None:
            return None
        end, content = found
        units.append(Unit(at, end - at, content or 0, exact=content is not None))
        at = end
    return Index("zstd", list(units), how="zstd frames") if len(units) > 1 else None


def _gzip_subfields(h: bytes):
    """The FEXTRA subfields of the gzip header at the start of `h`: {id: data}."""
    if len(h) < 12 or not h[3] & 4:
        return {}
    extra = h[10] | h[11] << 8
    fields, at = {}, 12
    while at + 4 <= 12 + extra and at + 4 <= len(h):
        length = h[at + 2] | h[at + 3] << 8
        fields.setdefault(bytes(h[at:at + 2]), bytes(h[at + 4:at + 4 + length]))
        at += 4 + length
    return fields


def _gzip_header_length(h: bytes) -> int | None:
    flags, at = h[3], 10
    if flags & 4:
        at += 2 + (h[10] | h[11] << 8)
    for flag in (8, 16):
        if flags & flag:
            end = h.find(b"\0", at)
            if end < 0:
                return None
            at = end + 1
    return at + (2 if flags & 2 else 0)


def independent_header(h: bytes) -> tuple[int, int] | None:
    """(its length, the chunk size) where the gzip header at the start of `h` is one of a member of
    independent chunks ('S','I' with the flag) and ends within `h`; else None."""
    fields = _gzip_subfields(h) if h[:3] == b"\x1f\x8b\x08" else {}
    if b"SI" not in fields or len(fields[b"SI"]) != 8:
        return None
    chunk, flags = struct.unpack("<II", fields[b"SI"])
    header = _gzip_header_length(h)
    return (header, chunk) if flags & 1 and chunk and header else None


def _gzip(reader: _Reader, size: int, until: int | None = None) -> Index | None:
    if independent := independent_header(reader.read(0, 4096)):
        return Index("gzip", [], independent=independent, how="gzip independent chunks (found by scanning)")
    units, at = _Units(), 0
    while at < size and not _past(units, until):
        h = reader.read(at, 64)
        if h[:1] == b"\0":  # padding after the last member
            break
        if len(h) < 18 or h[:2] != b"\x1f\x8b":
            return None
        fields = _gzip_subfields(h)
        if b"SL" in fields and len(fields[b"SL"]) == 8:
            member, content = struct.unpack("<II", fields[b"SL"])
        elif b"BC" in fields and len(fields[b"BC"]) == 2:
            member = struct.unpack("<H", fields[b"BC"])[0] + 1
            content = struct.unpack("<I", reader.read(at + member - 4, 4))[0] if at + member <= size else -1
        else:
            return None
        if member < 18 or at + member > size or content < 0:
            return None
        if content:  # empty members (a name's, BGZF's end) carry nothing to cut
            units.append(Unit(at, member, content))
        elif units:
            last = units[-1]
            units[-1] = dataclasses.replace(last, size=last.size + member)
        else:
            units.append(Unit(at, member, 0))
        at += member
    if units and at >= size:  # padding belongs to the last unit
        last = units[-1]
        units[-1] = dataclasses.replace(last, size=size - last.offset)
    return Index("gzip", list(units), how="gzip members that record their sizes") if len(units) > 1 else None


def _lz4(reader: _Reader, size: int, until: int | None = None) -> Index | None:
    units, frames, at, frame = _Units(), {}, 0, 0
    while at < size and not _past(units, until):
        h = reader.read(at, 19)
        if len(h) < 7:
            return None
        magic = struct.unpack_from("<I", h)[0]
        if (magic & SKIPPABLE_MASK) == SKIPPABLE:
            at += 8 + struct.unpack_from("<I", h, 4)[0]
            continue
        if magic != LZ4_MAGIC:
            return None
        flags, bd = h[4], h[5]
        independent, block_sum, has_size, content_sum = flags >> 5 & 1, flags >> 4 & 1, flags >> 3 & 1, flags >> 2 & 1
        header = 7 + (8 if has_size else 0) + (4 if flags & 1 else 0)
        block_max = 1 << (8 + 2 * (bd >> 4 & 7))
        declared = struct.unpack_from("<Q", h, 6)[0] if has_size else None
        pos, blocks = at + header, []
        while True:
            word = reader.read(pos, 4)
            if len(word) < 4:
                return None
            stored = struct.unpack("<I", word)[0]
            if stored == 0:
                break
            length = stored & 0x7FFFFFFF
            blocks.append((pos, 4 + length + (4 if block_sum else 0)))
            pos += blocks[-1][1]
        end = pos + 4 + (4 if content_sum else 0)
        if end > size:
            return None
        if independent and not content_sum and not has_size and blocks:
            # Blocks decode alone: each is a unit, framed by this frame's header and an end mark.
            frames[frame] = (reader.read(at, header), b"\0\0\0\0")
            units += [Unit(offset, length, block_max, exact=False, frame=frame) for offset, length in blocks]
        else:
            units.append(Unit(at, end - at, declared or 0, exact=declared is not None))
        frame += 1
        at = end
    return Index("lz4", list(units), frames, how="lz4 frames and blocks") if len(units) > 1 else None


def unit_stream(index: Index, units: list[Unit], data: bytes) -> bytes:
    """The bytes that decode to exactly `units` (consecutive units of `index`; `data` holds the
    file's bytes from units[0].offset to the end of the last): lz4 blocks get their frame's header
    and an end mark."""
    base = units[0].offset
    return b"".join(header + data[start - base:start - base + length] + end
                    for start, length, header, end in _unit_pieces(index, units))


def file_offset(index: Index, units: list[Unit], at: int) -> int:
    """Where byte `at` of unit_stream(index, units, ...) is in the file (a frame header or end
    mark put around lz4 blocks: where its blocks begin or end), for an error's offset."""
    pos = 0
    for start, length, header, end in _unit_pieces(index, units):
        if at < pos + len(header) + length:
            return start + max(0, at - pos - len(header))
        pos += len(header) + length + len(end)
        if at < pos:
            return start + length
    return units[-1].offset + units[-1].size


def _unit_pieces(index: Index, units: list[Unit]):
    """unit_stream's pieces: (file offset, length, header, end) for each run of units of one
    frame (one run without header or end where units are whole frames or members)."""
    i = 0
    while i < len(units):
        j = i + 1
        while j < len(units) and units[j].frame == units[i].frame:
            j += 1
        start = units[i].offset
        header, end = index.frames.get(units[i].frame, (b"", b""))
        yield start, units[j - 1].offset + units[j - 1].size - start, header, end
        i = j


# ---- gzip's one member of independent chunks ----

SYNC_FLUSH = b"\x00\x00\xff\xff"


def chunk_candidates(data: bytes, base: int) -> list[int]:
    """Offsets (base + position) just after each sync flush pattern in `data`: where a chunk may
    start. Some are false: the pattern can occur inside compressed data."""
    out, at = [], data.find(SYNC_FLUSH)
    while at >= 0:
        out.append(base + at + 4)
        at = data.find(SYNC_FLUSH, at + 1)
    return out


def most_deflated(chunk: int) -> int:
    """The most bytes one independent chunk of `chunk` bytes deflates to (stored blocks' headers
    and the sync flush included)."""
    return chunk + chunk // 1024 + 1024 + 4


WINDOW = 32 * 1024  # how far back deflate refers


class Chunk(NamedTuple):
    """One chunk that inflate_chunks found: `start` and `end` in its data, its bytes, and whether
    it is the member's last (`end` is then where the trailer begins)."""
    start: int
    data: bytes
    end: int
    last: bool


def inflate_chunks(data: bytes, chunk: int, at_eof: bool = True, until: int | None = None, history: bytes = b""):
    """Inflates the independent chunks at the start of `data` (raw deflate, from a chunk start,
    with `history` the output before it where it is known): yields a Chunk for each whole chunk
    in `data`. A chunk but the member's last ends at the first sync flush where its blocks end,
    and decodes to at most `chunk` bytes (exactly `chunk`, or fewer where a writer's flush ended
    it or the one before it); the last ends with the final block. Stops quietly where `data` ends
    inside a chunk; raises zlib.error where the bytes are not such chunks.

    The sync flush pattern also occurs inside compressed data (stored data that holds it, or by
    chance), so a chunk ends at a pattern only where inflating it from its start stops there at
    the end of a block that is not the last, in the inflater's state (_native.inflate_chunk,
    ISA-L): from a block boundary, that is a block boundary of the real stream. One such boundary
    is no chunk's end: a writer's flush in the middle of a chunk where the data flushed does not
    compress and ends with the pattern (a stored block ends there); what follows may refer back
    into it, and is inflated again with the 32 KiB before it (`history` and what came since: a
    reference further back is an error). The member's last chunk, and a chunk cut by the end of
    `data`, go through zlib, which tells where the final block ends; at_eof=False says `data` is
    not the end of the file, so a chunk it cuts is not decoded.

    `until`: a position just after a sync flush where a chunk ends (a partition's end): no chunk
    is yielded across it."""
    if until is not None:
        data = data[:until]
    view = memoryview(data)
    at, window = 0, bytes(history[-WINDOW:])
    while at < len(data):
        try:
            found = _inflate_chunk(data, view, chunk, at, at_eof, until is not None, b"")
        except zlib.error:
            if not window:
                raise
            found = _inflate_chunk(data, view, chunk, at, at_eof, until is not None, window)
        if found is None:
            return
        decoded, end, last = found
        yield Chunk(at, decoded, end, last)
        if last:
            return
        window = slide(window, decoded)
        at = end


def slide(window: bytes, data: bytes) -> bytes:
    """The last 32 KiB of `window` followed by `data`."""
    return data[-WINDOW:] if len(data) >= WINDOW else (window + data)[-WINDOW:]


_FAST_TRIES = 8


def _inflate_chunk(data: bytes, view: memoryview, chunk: int, at: int, at_eof: bool, cut: bool, window: bytes):
    """The chunk at `at` in `data` (inflate_chunks): (bytes, end, last), or None where `data` ends
    inside it; `cut`: the end of `data` is a chunk's end (inflate_chunks' until)."""
    from . import _native, CorruptDataError
    pos, tries = at, 0
    # Each try inflates the chunk up to the pattern: after a few false patterns (stored data full
    # of them), zlib, which goes through the chunk once, is cheaper.
    while tries < _FAST_TRIES:
        found = data.find(SYNC_FLUSH, pos)
        if found < 0:
            break
        tries += 1
        end = found + len(SYNC_FLUSH)
        try:
            return _native.inflate_chunk(view[at:end], chunk, window), end, False
        except CorruptDataError:
            pos = found + 1  # not this pattern: the chunk ends later, or is the member's last
    if tries < _FAST_TRIES and not at_eof and not cut and len(data) - at < most_deflated(chunk):
        return None  # no pattern ends the chunk in `data`: it goes on past it
    return next(_inflate_chunks_with_zlib(data, chunk, at, window), None)


# An empty final block of fixed codes: behind a non-final block's end it ends the stream with no
# output; behind anything else (inside a stored block, or inside a block's codes) it does not.
_FIXED_FINAL = b"\x03\x00"


def _inflate_chunks_with_zlib(data: bytes, chunk: int, at: int, window: bytes = b""):
    """The chunks from `at` as (bytes, end, last), through zlib's streaming inflate: one pass
    through a chunk, whatever the number of false patterns in it."""
    from . import _native, CorruptDataError
    while at < len(data):
        d = zlib.decompressobj(-15, zdict=window) if window else zlib.decompressobj(-15)
        parts, total, pos = [], 0, at
        while True:
            found = data.find(SYNC_FLUSH, pos)  # the chunk may end after it
            stop = len(data) if found < 0 else found + len(SYNC_FLUSH)
            out = d.decompress(data[pos:stop])
            parts.append(out)
            total += len(out)
            if total > chunk:
                raise zlib.error(f"a chunk decoded to more than {chunk} bytes")
            if d.eof:
                yield b"".join(parts), stop - len(d.unused_data), True
                return
            if found < 0:
                return
            pos = stop
            if _may_end_block(d):
                try:
                    _native.inflate_chunk(memoryview(data)[at:stop], chunk, window)  # the proof
                    break
                except CorruptDataError:
                    pass
        decoded = b"".join(parts)
        yield decoded, pos, False
        window = slide(window, decoded)
        at = pos


def _may_end_block(d) -> bool:
    """A quick test that zlib's decompressobj `d` stands at the end of a non-final block: then an
    empty final block after it ends the stream with no output (inside a stored block it would be
    output; inside a block's codes, almost never a clean end)."""
    probe = d.copy()
    try:
        return not probe.decompress(_FIXED_FINAL) and probe.eof and not probe.unused_data
    except zlib.error:
        return False
