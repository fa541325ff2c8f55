"""sluice.zip against Python's zipfile and Info-ZIP: archives both ways, transcode, the errors,
and Ctrl-C."""
import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

import sluice
import sluice.zip

from test_tar_and_readers import contents


def test_create_is_read_by_zipfile_and_unzip_and_extract_gives_the_tree_back(tmp_path, tree):
    archive = tmp_path / "a.zip"
    seen = []
    stats = sluice.zip.create(archive, [tree.name], directory=tmp_path, on_entry=lambda m: seen.append(m.name))
    assert stats.entries == len(seen) == 9  # zip has no hard links: "hard" is a second copy
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None
        assert z.read("src/sub/big.bin") == (tree / "sub" / "big.bin").read_bytes()
        assert z.getinfo("src/sub/big.bin").compress_type == zipfile.ZIP_DEFLATED
        assert z.getinfo("src/sub/deeper/caf\u00e9 \u00fcber.txt").flag_bits & 0x800  # UTF-8
    subprocess.run(["unzip", "-tq", str(archive)], check=True, stdout=subprocess.DEVNULL)
    result = sluice.zip.extract(archive, tmp_path / "out")
    assert result.ok and result.extracted == 9
    assert contents(tmp_path / "out" / "src") == contents(tree)


def test_reads_zipfile_archives_and_lists_as_zipfile_does(tmp_path, tree):
    archive = tmp_path / "py.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(tree / "sub" / "big.bin", "big.bin")
        z.writestr("dir/", b"")
        z.writestr(zipfile.ZipInfo("stored.txt"), b"stored")
    members = sluice.zip.list(archive)
    assert [(m.name, m.type, m.size, m.method) for m in members] == [
        ("big.bin", "file", 3 * 1024 * 1024 + 7, "deflate"), ("dir", "directory", 0, "deflate"),
        ("stored.txt", "file", 6, "stored")]
    with zipfile.ZipFile(archive) as z:
        assert [m.crc for m in members] == [i.CRC for i in z.infolist()]
        assert [m.compress_size for m in members] == [i.compress_size for i in z.infolist()]
    assert sluice.zip.test(archive).ok
    result = sluice.zip.extract(archive, tmp_path / "out", members=["stored.txt"])
    assert result.ok and (tmp_path / "out" / "stored.txt").read_bytes() == b"stored"
    assert not (tmp_path / "out" / "big.bin").exists()


def test_same_tree_same_bytes_for_any_thread_count_and_the_program(tmp_path, tree):
    sluice.zip.create(tmp_path / "one.zip", ["src"], directory=tmp_path, threads=1)
    sluice.zip.create(tmp_path / "two.zip", ["src"], directory=tmp_path, threads=2)
    program = os.environ.get("SLUICE_PROGRAM", "sluice")
    subprocess.run([program, "zip", "-c", "-o", str(tmp_path / "cli.zip"), "-C", str(tmp_path), "src"], check=True)
    one = (tmp_path / "one.zip").read_bytes()
    assert one == (tmp_path / "two.zip").read_bytes() == (tmp_path / "cli.zip").read_bytes()


def test_into_a_file_object_as_a_stream(tmp_path, tree):
    class Pipe:  # write-only, no seek: what a socket or an upload stream offers
        def __init__(self):
            self.data = bytearray()

        def write(self, b):
            self.data += b
            return len(b)

    pipe = Pipe()
    sluice.zip.create(pipe, ["src"], directory=tmp_path)
    (tmp_path / "piped.zip").write_bytes(pipe.data)
    with zipfile.ZipFile(tmp_path / "piped.zip") as z:
        assert z.testzip() is None
        assert z.getinfo("src/sub/big.bin").flag_bits & 0x08  # sizes after the data


def test_transcode_makes_each_member_a_gzip_file(tmp_path, tree):
    archive = tmp_path / "upload.zip"
    subprocess.run(["zip", "-qry", str(archive), "src"], cwd=tmp_path, check=True)
    result = sluice.zip.transcode(archive, tmp_path / "store", "gzip")
    assert result.ok
    store = tmp_path / "store" / "src"
    assert gzip.decompress((store / "sub" / "big.bin.gz").read_bytes()) == (tree / "sub" / "big.bin").read_bytes()
    assert gzip.decompress((store / "empty.gz").read_bytes()) == b""
    # The link to a.txt links to its compressed file, under its name too.
    assert os.readlink(store / "link.gz") == "a.txt.gz" and not (store / "a.txt").exists()


def test_transcode_keeps_a_file_that_was_in_dest_unless_told_to_overwrite(tmp_path):
    """As `sluice transcode` does (it replaced them, saying ok, where the command kept them)."""
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", b"theirs")
        z.writestr("b.txt", b"new")
    store = tmp_path / "store"
    store.mkdir()
    (store / "a.txt.gz").write_bytes(b"mine")
    result = sluice.zip.transcode(archive, store)
    assert not result.ok
    assert [(m.name, why) for m, why in result.refused] == [("a.txt", "it exists already and is kept")]
    assert (store / "a.txt.gz").read_bytes() == b"mine"
    assert gzip.decompress((store / "b.txt.gz").read_bytes()) == b"new"
    assert sluice.zip.transcode(archive, store, overwrite=True).ok
    assert gzip.decompress((store / "a.txt.gz").read_bytes()) == b"theirs"


def test_bad_members_are_reported_and_a_hostile_archive_raises_with_its_path(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("fine.txt", b"fine")
        z.writestr("../escape.txt", b"x")
        z.writestr("crc.txt", b"checked data")
    data = bytearray(archive.read_bytes())
    data[data.index(b"checked data")] ^= 1
    archive.write_bytes(data)
    result = sluice.zip.extract(archive, tmp_path / "out")
    assert [m.name for m, _ in result.refused] == ["../escape.txt"]
    assert [m.name for m, _ in result.failed] == ["crc.txt"]
    assert isinstance(result.failed[0][1], sluice.CorruptDataError)
    assert "CRC-32" in str(result.failed[0][1])
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out" / "crc.txt").exists()
    with pytest.raises(sluice.Error):
        sluice.zip.extract(archive, tmp_path / "strict", strict=True)
    assert not sluice.zip.test(archive).ok
    (tmp_path / "not.zip").write_bytes(b"this is no zip archive at all")
    with pytest.raises(sluice.CorruptDataError) as caught:
        sluice.zip.list(tmp_path / "not.zip")
    assert caught.value.filename == str(tmp_path / "not.zip")
    with pytest.raises(OSError):
        sluice.zip.list(tmp_path / "missing.zip")


def test_max_output_refuses_a_zip_bomb_before_writing_anything(tmp_path):
    # zipfile's own bomb: 48 MiB of zeros in 50 KB. extract() and transcode() weigh the members by
    # the sizes they declare; transcode counts the contents, not the .gz files they become.
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("small", b"s" * 1000)
        z.writestr("zeros", bytes(48 << 20))
    assert archive.stat().st_size < 200_000
    for unpack in (sluice.zip.extract, sluice.zip.transcode):
        with pytest.raises(sluice.OutputLimitError) as caught:
            unpack(archive, tmp_path / "out", max_output=10 << 20)
        assert caught.value.filename == str(archive)
        assert "declare 50332648 bytes in all, more than the limit of 10485760" in str(caught.value)
        assert not (tmp_path / "out").exists()
    assert sluice.zip.extract(archive, tmp_path / "one", members=["small"], max_output=1000).ok
    assert (tmp_path / "one" / "small").read_bytes() == b"s" * 1000
    assert sluice.zip.transcode(archive, tmp_path / "gz", max_output=50332648).ok
    for wrong in (0, -1, 1.5, True):  # 0 would be no limit to the library
        with pytest.raises(sluice.UsageError):
            sluice.zip.extract(archive, tmp_path / "never", max_output=wrong)
        with pytest.raises(sluice.UsageError):
            sluice.decompress(gzip.compress(b"x"), max_output=wrong)
    assert not (tmp_path / "never").exists()
    assert gzip.decompress((tmp_path / "gz" / "zeros.gz").read_bytes()) == bytes(48 << 20)


def test_names_that_are_not_utf8_go_both_ways_as_bytes_or_as_os_fsdecode_gives_them(tmp_path):
    # A Unix file system's names are bytes: os.listdir gives these with surrogate escapes.
    root = os.fsencode(tmp_path)
    os.mkdir(root + b"/src")
    with open(root + b"/src/caf\xe9", "wb") as f:
        f.write(b"latin-1 name\n")
    for module, suffix in ((sluice.zip, b".zip"), (sluice.tar, b".tar.gz")):
        archive = root + b"/arch\xe9" + suffix
        module.create(archive, [b"src"], directory=root)
        assert os.fsencode(os.fsdecode(archive)) == archive
        names = [m.name for m in module.list(archive)]
        assert "src/caf\udce9" in names
        for given in (archive, os.fsdecode(archive)):
            dest = root + b"/out-" + suffix[1:4] + (b"b" if isinstance(given, bytes) else b"s")
            result = module.extract(given, dest, members=["src/caf\udce9", "src/missing\udcff"])
            assert result.not_found == ["src/missing\udcff"]
            with open(dest + b"/src/caf\xe9", "rb") as f:
                assert f.read() == b"latin-1 name\n"
    assert sluice.zip.test(root + b"/arch\xe9.zip").ok


def test_refused_and_failed_members_are_listed_up_to_16_mib_of_names_then_counted(tmp_path):
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as z:  # 200 members whose names are too long to make
        for i in range(200):
            z.writestr("d/" * 30_000 + str(i), b"")
    result = sluice.zip.extract(archive, tmp_path / "out")
    assert 50 < len(result.failed) < 200 and not result.refused
    assert result.not_listed == 200 - len(result.failed)
    assert not result.ok


def test_ctrl_c_stops_create_and_leaves_no_archive(tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.write(os.urandom(1 << 20) * 250)  # 3-5 s of level 9 on one thread here
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(os.path.dirname(sluice.__file__))!r})
        import sluice.zip
        print("ready", flush=True)
        try:
            sluice.zip.create({str(tmp_path / "out.zip")!r}, [{str(big)!r}], level=9, threads=1)
            print("finished", flush=True)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    assert out.strip() == "interrupted"
    assert sorted(os.listdir(tmp_path)) == ["big.bin"], "neither the archive nor its temporary is left"


def test_an_on_entry_callback_that_raises_stops_extraction_with_its_exception(tmp_path, tree):
    archive = tmp_path / "a.zip"
    sluice.zip.create(archive, ["src"], directory=tmp_path)

    def refuse(member):
        raise RuntimeError(f"no thanks: {member.name}")

    with pytest.raises(RuntimeError, match="no thanks: src"):
        sluice.zip.extract(archive, tmp_path / "out", on_entry=refuse)
    assert not (tmp_path / "out" / "src" / "sub" / "big.bin").exists()
