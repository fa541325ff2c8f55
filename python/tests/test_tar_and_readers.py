"""sluice.tar against tarfile, GNU tar and bsdtar; run_pipeline; and Python's zstandard and
lz4.frame readers of what sluice writes (and the other way round)."""
import gc
import gzip
import io
import os
import random
import subprocess
import sys
import tarfile
import textwrap

import pytest

import sluice
import sluice.tar

PROGRAM = os.environ.get("SLUICE_PROGRAM", "sluice")


def text(size, seed=1):
    rng = random.Random(seed)
    words = [b"tar", b"member", b"header", b"pax", b"block", b"record", b"\n"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" "
    return bytes(out[:size])


def contents(root):
    """Every path under root with what it is: bytes, link target or a directory mark."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, root)
            if os.path.islink(path):
                found[key] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                found[key] = ("dir",)
            else:
                with open(path, "rb") as f:
                    found[key] = ("file", f.read(), os.stat(path).st_mode & 0o777)
    return found


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar.zst", ".tar.lz4", ".tar"])
def test_create_then_tarfile_gnu_tar_bsdtar_and_extract_agree(tmp_path, tree, suffix):
    archive = tmp_path / ("out" + suffix)
    stats = sluice.tar.create(archive, ["src"], directory=tmp_path)
    assert stats.entries == 9
    assert stats.format == {".tar": ""}.get(suffix, sluice.tar.format_for(archive))
    expected = contents(tree)
    # Python's tarfile reads it: gzip with Python's own gzip module; zstd and lz4, which tarfile
    # cannot, in stream mode through sluice.open.
    if suffix in (".tar.zst", ".tar.lz4"):
        with sluice.open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as t:
            t.extractall(tmp_path / "by-tarfile")
    else:
        with tarfile.open(archive, "r:*") as t:
            t.extractall(tmp_path / "by-tarfile")
    assert contents(tmp_path / "by-tarfile" / "src") == expected
    # GNU tar and bsdtar, through the stock decompressors.
    for tool in (["tar"], ["bsdtar"]):
        dest = tmp_path / ("by-" + tool[0])
        dest.mkdir()
        unpack = {".tar.zst": ["-I", "zstd"], ".tar.lz4": ["-I", "lz4"]}.get(suffix, []) if tool == ["tar"] else []
        subprocess.run(tool + unpack + ["-xf", str(archive), "-C", str(dest)], check=True)
        assert contents(dest / "src") == expected, tool
    # And sluice itself, from a path and from a file object.
    result = sluice.tar.extract(archive, tmp_path / "by-sluice")
    assert result.ok and result.extracted == 9
    assert contents(tmp_path / "by-sluice" / "src") == expected
    with open(archive, "rb") as f:
        assert [m.name for m in sluice.tar.list(f)] == [m.name for m in sluice.tar.list(archive)]


def test_same_tree_same_bytes_for_any_thread_count_and_the_program(tmp_path, tree):
    made = []
    for threads in (1, 2, 8):
        archive = tmp_path / f"j{threads}.tar.gz"
        sluice.tar.create(archive, ["src"], directory=tmp_path, threads=threads, mtime=0, owner="root:0",
                          group="root:0")
        made.append(archive.read_bytes())
    assert made[0] == made[1] == made[2]
    program = tmp_path / "program.tar.gz"
    subprocess.run([PROGRAM, "tar", "-c", "-o", str(program), "-C", str(tmp_path), "--mtime", "@0", "--owner",
                    "root:0", "--group", "root:0", "src"], check=True)
    assert program.read_bytes() == made[0]


def test_tarfile_stream_mode_and_the_gzip_extra_field(tmp_path, tree):
    """Python's tarfile before 3.12.8/3.13.1 reads a gzip header's extra field from the inflated
    stream in "r|gz" mode (CPython gh-107398) and finds no members in any gzip that has one:
    sluice's default form, BGZF, bgzip's. The README says so; --single-member has none."""
    fixed = sys.version_info >= (3, 13, 1) or (3, 12, 8) <= sys.version_info < (3, 13)
    for form, readable in [("independent", fixed), ("single-member", True)]:
        archive = tmp_path / f"{form}.tar.gz"
        sluice.tar.create(archive, ["src"], directory=tmp_path, form=form)
        with open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as t:
            names = [m.name for m in t]
        assert (len(names) == 9) == readable, (form, names)
        # Through sluice.open, stream mode reads every form.
        with sluice.open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as t:
            assert len([m.name for m in t]) == 9


def test_list_reports_members_as_tarfile_does(tmp_path, tree):
    archive = tmp_path / "t.tar.zst"
    sluice.tar.create(archive, ["src"], directory=tmp_path)
    members = {m.name: m for m in sluice.tar.list(archive)}
    assert members["src/link"].issym() and members["src/link"].linkname == "a.txt"
    assert members["src/a.txt"].isfile() and members["src/a.txt"].mode == 0o640 and members["src/a.txt"].size == 6
    assert members["src/sub/"].isdir()
    assert any(m.islnk() for m in members.values())
    assert "src/sub/deeper/caf\u00e9 \u00fcber.txt" in members


def test_entries_gives_what_list_gives_from_paths_and_file_objects(tmp_path, tree):
    """entries() yields list()'s entries: plain and compressed, from a path or a file object (a
    pipe's too); an error of the archive comes after the entries before it."""
    plain = tmp_path / "t.tar"
    sluice.tar.create(plain, ["src"], directory=tmp_path)
    packed = tmp_path / "t.tar.zst"
    sluice.tar.create(packed, ["src"], directory=tmp_path)
    listed = sluice.tar.list(plain)
    assert len(listed) > 5 and sluice.tar.list(packed) == listed
    for archive in (plain, packed):
        assert [m for m in sluice.tar.entries(archive)] == listed
        with open(archive, "rb") as f:
            assert [m for m in sluice.tar.entries(f)] == listed
        with subprocess.Popen(["cat", str(archive)], stdout=subprocess.PIPE) as cat:
            assert [m for m in sluice.tar.entries(cat.stdout)] == listed
    # Cut inside its 3 MB file's data: the entries before it, then the error list() raises.
    data = plain.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(sluice.CorruptDataError) as listing:
        sluice.tar.list(cut)
    seen = []
    with pytest.raises(sluice.CorruptDataError) as walking:
        for member in sluice.tar.entries(cut):
            seen.append(member)
    assert str(walking.value) == str(listing.value)
    assert seen and seen == listed[:len(seen)]
    # A bad header in the first piece read: the entries before it first, then its error.
    third = bytearray(data)
    third[listed[3].offset + 148:listed[3].offset + 156] = b"0000000\0"  # its checksum
    (tmp_path / "bad.tar").write_bytes(bytes(third))
    seen = []
    with pytest.raises(sluice.CorruptDataError):
        for member in sluice.tar.entries(tmp_path / "bad.tar"):
            seen.append(member)
    assert seen == listed[:3]
    with pytest.raises(TypeError):  # at the call, not at the loop
        sluice.tar.entries(plain, threads="2")
    with pytest.raises(sluice.UsageError):
        sluice.tar.entries(plain, threads=-1)


def test_entries_from_fifos_odd_names_and_odd_files_as_list_reads_them(tmp_path, tree):
    """What a second reader found in entries(): a compressed archive named by a FIFO's path was
    opened twice (its first bytes lost, or a hang), a non-blocking file object gave a short
    listing without an error, a name that is not UTF-8 was a TypeError, a missing file was
    Python's error at the first next(), trailing garbage after the stream was an error (list()
    warns), an xz file was "truncated inside a header"."""
    packed = tmp_path / "t.tar.zst"
    sluice.tar.create(packed, ["src"], directory=tmp_path)
    listed = sluice.tar.list(packed)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with subprocess.Popen(["sh", "-c", f"cat {packed} > {fifo}"]):
        assert [m for m in sluice.tar.entries(fifo)] == listed
    odd = tmp_path / os.fsdecode(b"n\xff.tar.zst")
    odd.write_bytes(packed.read_bytes())
    assert [m for m in sluice.tar.entries(odd)] == listed
    assert [m for m in sluice.tar.entries(os.fsencode(odd))] == listed
    with pytest.raises(FileNotFoundError) as caught:
        sluice.tar.entries(tmp_path / "missing.tar")  # at the call
    assert isinstance(caught.value, sluice.Error)
    with pytest.raises(sluice.UsageError):
        sluice.tar.entries(packed, threads=2**31)
    (tmp_path / "garbage.tar.zst").write_bytes(packed.read_bytes() + b"garbage")
    assert [m for m in sluice.tar.entries(tmp_path / "garbage.tar.zst")] == listed
    (tmp_path / "x.tar.xz").write_bytes(b"\xfd7zXZ\0" + bytes(100))
    with pytest.raises(sluice.CorruptDataError, match="not a tar archive: this is an xz stream"):
        next(sluice.tar.entries(tmp_path / "x.tar.xz"))
    reader, writer = os.pipe()
    os.set_blocking(reader, False)
    try:  # nothing written yet: read() gives None
        with open(reader, "rb", buffering=0, closefd=False) as f:
            with pytest.raises(sluice.Error, match="non-blocking"):
                next(sluice.tar.entries(f))
    finally:
        os.close(reader)
        os.close(writer)


# The peak of this process's own memory (VmHWM: ru_maxrss keeps the forked parent's across exec).
_PEAK = textwrap.dedent("""
    import re, sys, sluice.tar
    if sys.argv[2] == "entries":
        count = sum(1 for _ in sluice.tar.entries(sys.argv[1], threads=1))
    else:
        count = len(sluice.tar.list(sys.argv[1], threads=1))
    status = open("/proc/self/status").read()
    print(count, int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) // 1024)
""")


def test_entries_holds_a_bounded_number_of_entries_where_list_holds_them_all(tmp_path):
    """300,000 empty files in a .tar.zst of 17 KB: list() holds them all (about 170 MB),
    entries() those of 1 MiB of the archive at a time. (One thread: the decoding's own memory
    is small.) A loop left early, or at the interpreter's exit, leaves nothing running."""
    header = tarfile.TarInfo("f").tobuf(format=tarfile.USTAR_FORMAT)
    archive = tmp_path / "many.tar.zst"
    with sluice.open(archive, "wb") as f:
        for _ in range(300):
            f.write(header * 1000)
        f.write(b"\0" * 1024)
    peaks = {}
    for way in ("entries", "list"):
        done = subprocess.run([sys.executable, "-c", _PEAK, str(archive), way], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        count, peaks[way] = map(int, done.stdout.split())
        assert count == 300_000
    assert peaks["entries"] < 60 and peaks["list"] > peaks["entries"] + 100, peaks
    half_read = "import sluice.tar, sys; walk = sluice.tar.entries(sys.argv[1]); next(walk); print('ok')"
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", half_read, str(archive)], capture_output=True, text=True,
                              timeout=120)
        assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


def test_a_hostile_tarfile_archive_is_refused_entry_by_entry(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        for name, kind, target in [("../escape.txt", tarfile.REGTYPE, ""), ("/abs.txt", tarfile.REGTYPE, ""),
                                   ("ok.txt", tarfile.REGTYPE, ""), ("out", tarfile.SYMTYPE, "/etc"),
                                   ("out/passwd", tarfile.REGTYPE, "")]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = target
            payload = b"owned\n" if kind == tarfile.REGTYPE else b""
            info.size = len(payload)
            t.addfile(info, io.BytesIO(payload))
    dest = tmp_path / "dest"
    result = sluice.tar.extract(archive, dest)
    refused = {member.name for member, _why in result.refused}
    assert {"../escape.txt", "/abs.txt", "out/passwd"} <= refused
    assert not result.ok
    assert (dest / "ok.txt").read_bytes() == b"owned\n"
    assert not (tmp_path / "escape.txt").exists()
    with pytest.raises(sluice.Error) as caught:
        sluice.tar.extract(archive, tmp_path / "strict", strict=True)
    assert "escape" in str(caught.value)
    # The archive is named, as zip's strict extract names it (filename was None).
    assert caught.value.filename == str(archive) and str(caught.value).startswith(f"{archive}: refusing entry")


def untar_pipeline(archive, directory) -> str:
    """A pipeline that unpacks `archive` into `directory`."""
    return f"""
[input]
paths = ["{archive}"]

[[stage]]
kind = "untar"

[output]
directory = "{directory}"
"""


def test_max_output_stops_a_tar_bomb_before_its_file_is_begun(tmp_path):
    # tarfile's bomb: 48 MiB of zeros after a small file, in a .tar.gz of 50 KB. The file that
    # would pass the limit is not begun, the one before it stays (as after a corrupt archive).
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("first", b"f" * 1000), ("zeros", bytes(48 << 20)), ("last", b"last")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert archive.stat().st_size < 200_000
    with open(archive, "rb") as file:
        with pytest.raises(sluice.OutputLimitError) as caught:
            sluice.tar.extract(file, tmp_path / "out", max_output=10 << 20)
    assert "'zeros' (archive byte 1536) holds 50331648 bytes" in str(caught.value)
    assert sorted(os.listdir(tmp_path / "out")) == ["first"]
    result = sluice.tar.extract(archive, tmp_path / "room", max_output=(48 << 20) + 1004)
    assert result.ok and (tmp_path / "room" / "last").read_bytes() == b"last"


def test_failed_entries_listed_stop_at_16_mib_of_names_and_the_rest_are_counted(tmp_path):
    """A small compressed archive can hold any number of entries with names of megabytes: the
    result lists the first failed or refused (16 MiB of names and messages) and says how many more; so
    does a pipeline's problems (2,000 refused entries of 64 KB names: 278 MB before, 58 MB now)."""
    archive = tmp_path / "many.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as t:
        for i in range(400):
            info = tarfile.TarInfo(f"../{i}/" + "a" * 65536)
            t.addfile(info, io.BytesIO(b""))
        t.addfile(tarfile.TarInfo("ok"), io.BytesIO(b""))
    result = sluice.tar.extract(archive, tmp_path / "dest")
    listed = len(result.failed)  # names too long for the system: failed before any other check
    assert 200 < listed < 260
    assert [m.name for m, _ in result.failed] == [f"../{i}/" + "a" * 65536 for i in range(listed)]
    assert all(isinstance(error, OSError) and "File name too long" in str(error) for _, error in result.failed)
    assert result.warnings == [f"{archive}: {400 - listed} more entries failed, not listed"]
    assert not result.ok and (tmp_path / "dest" / "ok").exists()
    pipeline = untar_pipeline(archive, tmp_path / "out")
    report = sluice.run_pipeline(pipeline)
    assert 200 < len(report.problems) - 1 < 260
    assert report.problems[-1] == f"{400 - (len(report.problems) - 1)} more problems, not listed"

    # Warnings likewise: one per unreadable pax record, 400,000 of them in a 2 MB .tar.gz (7 million
    # in 150 KB took 2.3 GB).
    records = b"11 mtime=x\n" * 400_000
    pax = tarfile.TarInfo("PaxHeaders/x")
    pax.type, pax.size = tarfile.XHDTYPE, len(records)
    body = pax.tobuf(tarfile.USTAR_FORMAT) + records + bytes(-len(records) % 512)
    body += tarfile.TarInfo("after").tobuf(tarfile.USTAR_FORMAT) + bytes(1024)
    (tmp_path / "warned.tar.gz").write_bytes(gzip.compress(body))
    result = sluice.tar.extract(tmp_path / "warned.tar.gz", tmp_path / "warned")
    listed = len(result.warnings) - 1
    assert 50_000 < listed < 200_000 and "mtime='x'" in result.warnings[0]
    assert result.warnings[-1] == f"{tmp_path / 'warned.tar.gz'}: {400_000 - listed} more warnings, not listed"
    assert (tmp_path / "warned" / "after").exists()


def test_a_corrupt_archive_raises_with_path_and_offset(tmp_path, tree):
    archive = tmp_path / "t.tar.gz"
    sluice.tar.create(archive, ["src"], directory=tmp_path)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x55
    archive.write_bytes(bytes(data))
    with pytest.raises(sluice.CorruptDataError) as caught:
        sluice.tar.extract(archive, tmp_path / "dest")
    assert caught.value.path == str(archive) and caught.value.offset is not None


def test_a_cut_archive_is_a_truncated_error_and_a_file_no_destination(tmp_path):
    """A tar cut short was a CorruptDataError (a gzip stream cut short is a TruncatedError, also
    an EOFError); a destination that is a file was a plain sluice.Error with no errno."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big.bin").write_bytes(random.Random(5).randbytes(5000))
    archive = tmp_path / "t.tar"
    sluice.tar.create(archive, ["src"], directory=tmp_path)
    with tarfile.open(archive) as t:
        content = t.getmember("src/big.bin").offset_data
    archive.write_bytes(archive.read_bytes()[:content + 1000])  # inside big.bin's content
    for name, data in (("t.tar", None), ("t.tar.gz", gzip.compress(archive.read_bytes()))):
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(sluice.TruncatedError, match="archive truncated in entry 'src/big.bin'") as caught:
            sluice.tar.extract(tmp_path / name, tmp_path / "dest", strict=True)
        assert isinstance(caught.value, EOFError) and caught.value.filename == str(tmp_path / name)
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(NotADirectoryError) as caught:
        sluice.tar.extract(tmp_path / "t.tar", tmp_path / "afile")
    assert isinstance(caught.value, sluice.Error) and caught.value.filename == str(tmp_path / "afile")


def test_the_streaming_writer_keeps_no_entries_and_an_entry_failed_halfway_ends_it(tmp_path):
    """tarfile keeps every TarInfo it writes: 31 MB for 100,000 entries in a writer said to run in
    constant memory. A file that is not there raised the builtin FileNotFoundError; a file object
    short of tarinfo.size a bare OSError, after which the next entry went where the data should
    have been and close() published the corrupt archive."""
    import tracemalloc
    tracemalloc.start()
    try:
        with sluice.tar.open(tmp_path / "many.tar", "w") as archive:
            for i in range(20_000):
                info = tarfile.TarInfo(f"f{i}")
                archive.addfile(info)
                if i == 2_000:
                    early = tracemalloc.get_traced_memory()[0]
            grown = tracemalloc.get_traced_memory()[0] - early
    finally:
        tracemalloc.stop()
    assert grown < 500_000, grown  # 5.6 MB when the members were kept
    with tarfile.open(tmp_path / "many.tar") as t:
        assert len(t.getnames()) == 20_000
    (tmp_path / "ok.txt").write_bytes(b"fine\n")
    archive = sluice.tar.open(tmp_path / "a.tar.gz", "w")
    with pytest.raises(FileNotFoundError) as caught:  # before the entry began: the archive goes on
        archive.add(tmp_path / "missing.txt")
    assert isinstance(caught.value, sluice.Error) and caught.value.filename == str(tmp_path / "missing.txt")
    archive.add(tmp_path / "ok.txt", arcname="ok.txt")
    archive.close()
    with tarfile.open(tmp_path / "a.tar.gz") as t:
        assert t.getnames() == ["ok.txt"]
    archive = sluice.tar.open(tmp_path / "b.tar.gz", "w")
    archive.add(tmp_path / "ok.txt", arcname="ok.txt")
    info = tarfile.TarInfo("short")
    info.size = 100
    with pytest.raises(sluice.Error, match="entry 'short': its data ended before the 100 bytes declared"):
        archive.addfile(info, io.BytesIO(b"five!"))
    with pytest.raises(sluice.Error, match="failed halfway"):
        archive.add(tmp_path / "ok.txt", arcname="again.txt")
    with pytest.raises(sluice.Error, match="abandoned"):
        archive.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "many.tar", "ok.txt"]


def test_the_streaming_writer_leaves_itself_out_and_takes_back_what_a_failed_entry_noted(tmp_path):
    """An archive made inside the tree it adds archived its own half-written temporary; a hard
    link noted by an entry that then failed became a link to an entry never written; a regular
    file with a size and no file object wrote a header whose data was the next entry; a caller's
    file object failing inside a header left an archive that close() finished."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"linked data\n")
    os.link(tmp_path / "d" / "x", tmp_path / "d" / "y")
    for name in ("inside.tar", "inside.tar.gz"):
        with sluice.tar.open(tmp_path / name, "w") as archive:
            archive.add(tmp_path, arcname=".")
        with tarfile.open(tmp_path / name) as t:
            assert not [n for n in t.getnames() if ".sluice" in n], t.getnames()

    def refuse(info):
        raise RuntimeError("a filter's bug")
    archive = sluice.tar.open(tmp_path / "links.tar", "w")
    with pytest.raises(RuntimeError):
        archive.add(tmp_path / "d" / "x", arcname="x", filter=refuse)
    with pytest.raises(sluice.UsageError, match="needs a file object"):
        info = tarfile.TarInfo("sized")
        info.size = 10
        archive.addfile(info)
    archive.add(tmp_path / "d" / "y", arcname="y")
    archive.close()
    with tarfile.open(tmp_path / "links.tar") as t:
        assert t.getnames() == ["y"]
        assert t.getmember("y").isreg() and t.extractfile("y").read() == b"linked data\n"

    class FailsMidHeader(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        limit = 1 << 30

        def write(self, b):  # up to the limit, then an error
            room = self.limit - len(self.data)
            self.data += bytes(b)[:room]
            if len(b) > room:
                raise OSError(5, "Input/output error")
            return len(b)

        def tell(self):
            return len(self.data)
    out = FailsMidHeader()
    archive = sluice.tar.open(out, "w")
    archive.add(tmp_path / "d" / "x", arcname="one")
    out.limit = len(out.data) + 100  # inside the next header
    with pytest.raises(OSError):
        archive.add(tmp_path / "d" / "x", arcname="two")
    with pytest.raises(sluice.Error, match="halfway"):
        archive.close()


def test_create_failure_leaves_no_archive(tmp_path):
    archive = tmp_path / "x.tar.zst"
    with pytest.raises(sluice.Error):
        sluice.tar.create(archive, [str(tmp_path / "missing")])
    assert sorted(os.listdir(tmp_path)) == []


def test_an_archive_made_again_inside_its_tree_leaves_the_one_it_replaces_out(tmp_path):
    """Each run packed the last run's archive into the new one, which grew."""
    import zipfile
    for tree in ("t", "z"):
        (tmp_path / tree).mkdir()
        (tmp_path / tree / "a").write_bytes(b"a")
    for _ in range(2):
        sluice.tar.create(tmp_path / "t" / "self.tar.gz", [str(tmp_path / "t")])
        sluice.zip.create(tmp_path / "z" / "self.zip", [str(tmp_path / "z")])
    with tarfile.open(tmp_path / "t" / "self.tar.gz") as archive:
        assert [name.rsplit("/", 1)[-1] for name in archive.getnames()] == ["t", "a"]
    assert [name.rsplit("/", 1)[-1] for name in zipfile.ZipFile(tmp_path / "z" / "self.zip").namelist()] == ["", "a"]


def test_streaming_writer_takes_tarinfo_and_paths_in_constant_memory(tmp_path, tree):
    archive = tmp_path / "stream.tar.zst"
    payload = text(5 * 1024 * 1024, 9)
    with sluice.tar.open(archive, "w") as writer:
        writer.add(tree, arcname="src")
        info = tarfile.TarInfo("generated/rows.csv")
        info.size = len(payload)
        info.mtime = 1_700_000_000
        writer.addfile(info, io.BytesIO(payload))
        folder = tarfile.TarInfo("generated/dir")
        folder.type = tarfile.DIRTYPE
        writer.addfile(folder)
    members = [m.name for m in sluice.tar.list(archive)]
    assert members[-2:] == ["generated/rows.csv", "generated/dir/"] or members[-2:] == ["generated/rows.csv",
                                                                                       "generated/dir"]
    result = sluice.tar.extract(archive, tmp_path / "out")
    assert result.ok
    assert (tmp_path / "out" / "generated" / "rows.csv").read_bytes() == payload
    assert contents(tmp_path / "out" / "src") == contents(tree)
    with sluice.open(archive, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as t:
        assert [m.name for m in t][-2] == "generated/rows.csv"


def test_a_first_name_that_begins_with_gzips_magic_is_a_name(tmp_path):
    """A plain tar whose first name starts b"\\x1f\\x8b\\x08" (its header's checksum good), as GNU
    tar and tarfile read it: entries() and list() took it for a corrupt gzip member."""
    with tarfile.open(tmp_path / "magic.tar", "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as t:
        info = tarfile.TarInfo("\x1f\x8b\x08name")
        info.size = 5
        t.addfile(info, io.BytesIO(b"hello"))
    expected = [os.fsdecode(b"\x1f\x8b\x08name")]
    with open(tmp_path / "magic.tar", "rb") as f:
        assert [m.name for m in sluice.tar.entries(f)] == expected
    assert [m.name for m in sluice.tar.list(tmp_path / "magic.tar")] == expected


def test_a_name_that_promises_another_format_is_refused_without_one(tmp_path):
    """tar.create("x.tar.xz") wrote a plain tar under the name, as `sluice tar -c` refuses to."""
    (tmp_path / "f").write_bytes(b"data")
    for name in ("x.tar.xz", "x.tar.bz2", "x.zip"):
        with pytest.raises(sluice.UsageError, match="cannot tell the compression from the name"):
            sluice.tar.create(tmp_path / name, [tmp_path / "f"])
        with pytest.raises(sluice.UsageError, match="cannot tell the compression"):
            sluice.tar.open(tmp_path / name, "w")
        assert not (tmp_path / name).exists()
    sluice.tar.create(tmp_path / "x.tar.xz", [tmp_path / "f"], format="none")  # asked for
    assert tarfile.open(tmp_path / "x.tar.xz", "r:").getnames()


def test_one_writer_shared_by_threads_writes_each_entry_whole(tmp_path):
    """A TarWriter handed to a ThreadPoolExecutor: the entries of four threads were interleaved,
    a corrupt archive published (tarfile saw 17 of 40 members)."""
    import concurrent.futures
    data = os.urandom(300_000)
    def add(i):
        info = tarfile.TarInfo(f"f{i:02d}")
        info.size = len(data)
        w.addfile(info, io.BytesIO(data))
    with sluice.tar.open(tmp_path / "mt.tar.gz") as w:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(add, range(40)))
    with tarfile.open(tmp_path / "mt.tar.gz") as t:
        members = t.getmembers()
        assert sorted(m.name for m in members) == [f"f{i:02d}" for i in range(40)]
        assert all(t.extractfile(m).read() == data for m in members)


def test_streaming_writer_leaves_nothing_when_the_block_raises(tmp_path):
    archive = tmp_path / "half.tar.gz"
    with pytest.raises(RuntimeError):
        with sluice.tar.open(archive) as writer:
            info = tarfile.TarInfo("a")
            info.size = 3
            writer.addfile(info, io.BytesIO(b"abc"))
            raise RuntimeError("stop")
    assert os.listdir(tmp_path) == []


def test_streaming_writer_into_a_file_object(tmp_path):
    buffer = io.BytesIO()
    with sluice.tar.TarWriter(buffer, format="gzip") as writer:
        info = tarfile.TarInfo("x.txt")
        info.size = 5
        writer.addfile(info, io.BytesIO(b"12345"))
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue()), mode="r:gz") as t:
        assert t.extractfile("x.txt").read() == b"12345"


def test_run_pipeline_reports_what_an_untar_stage_refused(tmp_path):
    # Refused entries passed silently; now each is in problems, the others extracted.
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as t:
        for name, data in [("../outside", b"x"), ("ok", b"fine")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    pipeline = untar_pipeline(archive, tmp_path / "out")
    report = sluice.run_pipeline(pipeline)
    assert not report.ok
    assert report.problems == [f"{archive}: refusing entry '../outside' (archive byte 0): path contains '..'"]
    assert (tmp_path / "out" / "ok").read_bytes() == b"fine" and not (tmp_path / "outside").exists()
    with pytest.raises(sluice.Error, match="outside"):
        sluice.run_pipeline(pipeline.replace('kind = "untar"', 'kind = "untar"\nstrict = true'),
                            ["output.overwrite=true"])


def test_run_pipeline_from_text_and_file_with_overrides(tmp_path, tree):
    pipeline = f"""
[input]
paths = ["{tree}"]

[[stage]]
kind = "compress"
codec = "zstd"

[[stage]]
kind = "checksum"

[output]
directory = "{tmp_path / 'out'}"
"""
    plan = sluice.run_pipeline(pipeline, dry_run=True)
    assert "compress" in plan and "zstd" in plan
    seen = []
    report = sluice.run_pipeline(pipeline, {"stage.1.level": 9}, on_item=seen.append)
    assert len(report.items) == len(seen) == 5  # the regular files and the hard link
    # The symbolic link is not followed (one to a file outside the tree took it in), and said.
    assert not report.ok and len(report.problems) == 1
    assert "is a symbolic link, which a walk does not follow: left alone" in report.problems[0]
    assert report.manifest.endswith("SHA256SUMS")
    subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=tmp_path / "out", check=True)
    big = [item for item in report.items if item.input.endswith("big.bin")][0]
    assert sluice.decompress(open(big.output, "rb").read()) == (tree / "sub" / "big.bin").read_bytes()
    path = tmp_path / "p.toml"
    path.write_text(pipeline.replace("zstd", "lz4"))
    report = sluice.run_pipeline(path, ["output.overwrite=true"])
    assert all(item.output.endswith(".lz4") for item in report.items)


def test_run_pipeline_mistakes_name_the_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[input]\npaths = ["x"]\n\n[[stage]]\nkind = "compress"\nlevel = 99\n\n[output]\nstdout = true\n')
    with pytest.raises(sluice.UsageError) as caught:
        sluice.run_pipeline(path)
    assert f"{path}:6" in str(caught.value)


# ---- Python's own readers of sluice's zstd and lz4 ----

zstandard = pytest.importorskip("zstandard")
lz4_frame = pytest.importorskip("lz4.frame")

BIG = text(9 * 1024 * 1024 + 5, 4)


def test_zstandard_one_shot_decompress_stops_after_the_first_frame_and_the_documented_ways_read_all():
    packed = sluice.compress(BIG, "zstd")
    assert sluice.decompress(packed) == BIG
    # One-shot decompress() reads one frame: what the README and docstrings warn about.
    first = zstandard.ZstdDecompressor().decompress(packed)
    assert 0 < len(first) < len(BIG) and BIG.startswith(first)
    # The documented ways to read every frame.
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(packed), read_across_frames=True)
    assert reader.read() == BIG


def test_zstandard_output_is_read_by_sluice():
    for threads in (0, 4):
        packed = zstandard.ZstdCompressor(level=3, threads=threads, write_content_size=True).compress(BIG)
        assert sluice.decompress(packed) == BIG
    frames = b"".join(zstandard.ZstdCompressor().compress(BIG[i:i + 1_000_000]) for i in range(0, len(BIG), 1_000_000))
    assert sluice.decompress(frames) == BIG


def test_lz4_frame_reads_sluice_lz4_whole():
    packed = sluice.compress(BIG, "lz4")
    assert lz4_frame.decompress(packed) == BIG
    with lz4_frame.open(io.BytesIO(packed)) as f:
        assert f.read() == BIG


@pytest.mark.parametrize("kwargs", [{}, {"block_linked": False, "block_checksum": True, "content_checksum": True},
                                    {"block_size": lz4_frame.BLOCKSIZE_MAX4MB, "store_size": False}])
def test_lz4_frame_output_is_read_by_sluice(kwargs):
    packed = lz4_frame.compress(BIG, **kwargs)
    assert sluice.decompress(packed) == BIG


def test_a_plain_tar_into_a_callers_file_object_leaves_it_open(tmp_path):
    buffer = io.BytesIO()
    with sluice.tar.open(buffer) as writer:
        info = tarfile.TarInfo("x.txt")
        info.size = 3
        writer.addfile(info, io.BytesIO(b"abc"))
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue())) as t:
        assert t.extractfile("x.txt").read() == b"abc"


def test_a_plain_tar_goes_into_a_pipe_or_an_object_that_only_writes(tmp_path):
    """tarfile asks its output's position at the start: a pipe's tell() (sluice.tar.open of
    sys.stdout.buffer, piped) failed with ESPIPE, and an object without tell() or flush() was
    an AttributeError, where tarfile's "w|" and format="gzip" write to both."""
    (tmp_path / "f").write_bytes(b"abc")
    script = "import sys, sluice.tar\nwith sluice.tar.open(sys.stdout.buffer) as a:\n    a.add('f')\n"
    piped = subprocess.run(f"{sys.executable} -c \"{script}\" | cat", shell=True, cwd=tmp_path,
                           capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(piped.stdout)) as t:
        assert t.getnames() == ["f"] and t.extractfile("f").read() == b"abc"

    class Writes:
        def __init__(self):
            self.data = bytearray()

        def write(self, data):
            self.data += data
            return len(data)

    for format in ("none", "gzip"):
        out = Writes()
        with sluice.tar.open(out, format=format) as writer:
            writer.add(str(tmp_path / "f"), arcname="f")
        with tarfile.open(fileobj=io.BytesIO(bytes(out.data))) as t:
            assert t.extractfile("f").read() == b"abc", format
    # Written after what the object holds: its position is where the archive starts.
    held = io.BytesIO(b"x" * 10)
    held.seek(10)
    with sluice.tar.open(held) as writer:
        writer.add(str(tmp_path / "f"), arcname="f")
    with tarfile.open(fileobj=io.BytesIO(held.getvalue()[10:])) as t:
        assert t.extractfile("f").read() == b"abc"


def test_a_callback_that_raises_stops_the_run_and_publishes_nothing(tmp_path, tree):
    archive = tmp_path / "x.tar.zst"

    def stop(member):
        raise LookupError(member.name)

    with pytest.raises(LookupError):
        sluice.tar.create(archive, ["src"], directory=tmp_path, on_entry=stop)
    assert not archive.exists()


def test_run_pipeline_takes_a_path_with_an_equals_sign(tmp_path, tree):
    folder = tmp_path / "date=2024-01-01"
    folder.mkdir()
    path = folder / "p.toml"
    path.write_text(f'[input]\npaths = ["{tree / "a.txt"}"]\n\n[[stage]]\nkind = "compress"\ncodec = "gzip"\n\n'
                    f'[output]\ndirectory = "{tmp_path / "out"}"\n')
    report = sluice.run_pipeline(str(path))
    assert [os.path.basename(item.output) for item in report.items] == ["a.txt.gz"]


@pytest.mark.parametrize("flags", [["-F", "zstd"], ["-F", "gzip", "--multi-member"], ["-F", "gzip", "--bgzf"]])
@pytest.mark.parametrize("as_object", [False, True])
def test_seek_starts_at_the_unit_that_holds_the_target(tmp_path, flags, as_object):
    # Streams whose units record their sizes: a seek decodes from the unit that holds the target,
    # so a damaged unit before it is never read (reading from the start fails on it).
    data = text(6 * 1024 * 1024, 9)
    plain = tmp_path / "plain"
    plain.write_bytes(data)
    chunk = [] if "--bgzf" in flags else ["--chunk-size", "262144"]
    packed = subprocess.run([PROGRAM, *flags, *chunk, "-c", str(plain)], stdout=subprocess.PIPE, check=True).stdout
    damaged = bytearray(packed)
    damaged[200] ^= 0x55  # inside the first unit's compressed data
    path = tmp_path / "damaged"
    prefix = b"a header of another format " * 3  # the stream starts inside the file object
    path.write_bytes(prefix + bytes(damaged))
    (tmp_path / "plain.damaged").write_bytes(bytes(damaged))
    with open(path, "rb") as raw:
        raw.seek(len(prefix))
        f = sluice.open(raw if as_object else tmp_path / "plain.damaged")
        with pytest.raises(sluice.CorruptDataError):
            f.read()
        for offset in [5 * 1024 * 1024 + 17, 3 * 1024 * 1024, 4 * 1024 * 1024 - 1, len(data) - 10]:
            assert f.seek(offset) == offset
            assert f.read(100_000) == data[offset:offset + 100_000]
        f.close()
    with sluice.open(io.BytesIO(bytes(damaged))) as f:  # forward from the start, then back
        assert f.seek(len(data) - 5) == len(data) - 5 and f.read() == data[-5:]
        assert f.seek(3 * 1024 * 1024) == 3 * 1024 * 1024 and f.read(10) == data[3 * 1024 * 1024:][:10]


def test_exit_after_a_seek_without_close_is_clean(tmp_path):
    # A file left open at exit, its run reading on other threads, must not crash the interpreter.
    plain = tmp_path / "plain"
    plain.write_bytes(text(3 * 1024 * 1024, 4))
    subprocess.run([PROGRAM, "-F", "zstd", "--chunk-size", "262144", "-k", str(plain)], check=True)
    script = (f"import sluice, io\n"
              f"f = sluice.open({str(plain) + '.zst'!r}); f.seek(2_000_000); f.read(10)\n"
              f"g = sluice.open(open({str(plain) + '.zst'!r}, 'rb')); g.read(10)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


_FORKED_WRITER = textwrap.dedent("""
    import io, os, sys, tarfile, sluice
    directory, child_ends = sys.argv[1], sys.argv[2]

    def add(writer, name):
        info = tarfile.TarInfo(name)
        info.size = 1
        writer.addfile(info, io.BytesIO(b"x"))

    for name in ("plain.tar", "packed.tar.zst"):
        writer = sluice.tar.open(os.path.join(directory, name))
        add(writer, "a")
        pid = os.fork()
        if pid == 0:  # the child ends (its exit handlers run) while the parent writes on
            if child_ends == "error":
                raise RuntimeError("the child failed")
            sys.exit(0)
        os.waitpid(pid, 0)
        add(writer, "b")
        writer.close()
""")


@pytest.mark.parametrize("child_ends", ["normally", "error"])
def test_a_forked_child_leaves_the_parents_open_archives_alone(tmp_path, child_ends):
    done = subprocess.run([sys.executable, "-c", _FORKED_WRITER, str(tmp_path), child_ends], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["packed.tar.zst", "plain.tar"]
    assert [m.name for m in sluice.tar.list(tmp_path / "plain.tar")] == ["a", "b"]
    assert [m.name for m in sluice.tar.list(tmp_path / "packed.tar.zst")] == ["a", "b"]


def test_a_writer_over_the_callers_own_file_leaves_it_to_the_caller(tmp_path):
    """A file object of the caller's (here a sluice file written as zstd under a name that says
    nothing) is flushed by close(), never closed or abandoned, dropped writer or not."""
    with sluice.open(tmp_path / "out.bin", "wb", format="zstd") as own:
        writer = sluice.tar.open(own)
        info = tarfile.TarInfo("entry")
        info.size = 5
        writer.addfile(info, io.BytesIO(b"entry"))
        writer.close()
        assert not own.closed
    assert [m.name for m in sluice.tar.list(tmp_path / "out.bin")] == ["entry"]
    other = sluice.open(tmp_path / "other.bin", "wb", format="zstd")
    dropped = sluice.tar.open(other)
    del dropped
    gc.collect()
    assert not other.closed
    other.close()
    assert (tmp_path / "other.bin").exists()
