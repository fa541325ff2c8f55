// `sluice zip` and sluice/zip.h against the real zip tools: Info-ZIP zip and unzip, bsdtar,
// 7-Zip (7zz) and Python's zipfile, both ways; hostile archives built with Python byte by byte;
// every truncation and bit flip of a small archive through the library.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <algorithm>
#include <filesystem>
#include <string>

#include "archives/zip_format.h"
#include "sluice/codec.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/tar.h"
#include "sluice/zip.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::describe;
using testing::quote;

constexpr const char* kPython = "/usr/bin/python3";

class ZipTest : public testing::CommandTest {
 protected:
  // A tree with what archives hold: a file of several chunks, incompressible data, an empty file,
  // a symlink, nested directories, a non-ASCII name.
  void make_tree(const std::string& root = "src") {
    put(root + "/big.txt", testing::text_bytes(3 * 1024 * 1024 + 17, 1));
    put(root + "/random.bin", testing::random_bytes(200'000, 2));
    put(root + "/empty", {});
    put(root + "/sub/deeper/small.txt", testing::to_bytes(std::string("hello\n")));
    put(root + "/sub/\xc3\xa9t\xc3\xa9 \xe5\x90\x8d.txt", testing::to_bytes(std::string("non-ASCII\n")));
    fs::create_symlink("big.txt", dir_ / (root + "/link"));
    ::chmod((dir_ / (root + "/sub/deeper/small.txt")).c_str(), 0750);
  }

  // Runs Python with `code`; expects success.
  std::string python(const std::string& code) {
    const auto result = sh(fmt::format("{} -c {}", kPython, quote(code)));
    EXPECT_EQ(result.status, 0) << describe(result);
    return result.out;
  }

  void expect_ok(const testing::CommandResult& result) { ASSERT_EQ(result.status, 0) << describe(result); }
};

TEST_F(ZipTest, EveryPeerReadsWhatSluiceWrites) {
  make_tree();
  expect_ok(sluice("zip -c -o a.zip src"));
  expect_ok(sh("unzip -tq a.zip"));
  expect_ok(sh("7zz t a.zip"));
  python("import zipfile; z = zipfile.ZipFile('a.zip'); assert z.testzip() is None");
  // Extracted by each peer: the same tree, the symlink a symlink, the mode kept.
  for (const auto& [dir, command] : std::vector<std::pair<std::string, std::string>>{
           {"by-unzip", "unzip -q a.zip -d by-unzip"},
           {"by-bsdtar", "mkdir by-bsdtar && bsdtar -xf a.zip -C by-bsdtar"},
           {"by-7z", "7zz x -oby-7z a.zip >/dev/null"}}) {
    expect_ok(sh(command));
    expect_ok(sh(fmt::format("diff -r src {}/src", dir)));
    EXPECT_TRUE(fs::is_symlink(dir_ / dir / "src/link")) << dir;
    EXPECT_EQ(fs::status(dir_ / dir / "src/sub/deeper/small.txt").permissions() & fs::perms::all, fs::perms(0750))
        << dir;
  }
  // Python sees the Unix modes, the UTF-8 name and the methods: a text file deflated, stored
  // where deflate does not pay.
  const std::string listing = python(
      "import zipfile\n"
      "for i in zipfile.ZipFile('a.zip').infolist(): print(i.filename, i.compress_type, oct(i.external_attr >> 16))");
  EXPECT_NE(listing.find("src/big.txt 8 0o100644"), std::string::npos) << listing;
  EXPECT_NE(listing.find("src/link 0 0o120777"), std::string::npos) << listing;
  EXPECT_NE(listing.find("src/sub/deeper/small.txt 0 0o100750"), std::string::npos) << listing;
  EXPECT_NE(listing.find("src/sub/\xc3\xa9t\xc3\xa9 \xe5\x90\x8d.txt"), std::string::npos) << listing;
  EXPECT_NE(listing.find("src/sub/ 0 0o40755"), std::string::npos) << listing;
}

// -0 (--level 0) stores every member, as Info-ZIP's zip -0 does (it was taken for "no level" and
// deflated at 6): big files of several chunks too, to a file and to a pipe, read by the peers.
TEST_F(ZipTest, LevelZeroStoresEveryMemberAsZipDoes) {
  make_tree();
  expect_ok(sluice("zip -c -0 --chunk-size 64K -o stored.zip src"));
  expect_ok(sluice("zip -c --level 0 --chunk-size 64K -o - src > piped.zip"));
  expect_ok(sluice("zip -c --level=0 --chunk-size 64K -o same.zip src"));
  expect_ok(sh("cmp stored.zip same.zip"));
  for (const char* archive : {"stored.zip", "piped.zip"}) {
    SCOPED_TRACE(archive);
    const std::string methods =
        python(fmt::format("import zipfile\n"
                           "z = zipfile.ZipFile('{}')\n"
                           "assert z.testzip() is None\n"
                           "print(sorted({{i.compress_type for i in z.infolist()}}))",
                           archive));
    EXPECT_EQ(methods, "[0]\n");
    expect_ok(sh(fmt::format("unzip -tq {}", archive)));
    expect_ok(sh(fmt::format("7zz t {} >/dev/null", archive)));
    expect_ok(sluice(fmt::format("zip --test -f {}", archive)));
  }
  EXPECT_GT(fs::file_size(dir_ / "stored.zip"), 3u * 1024 * 1024 + 200'000);
}

// Paths given twice, or one under another given before, are stored once, as Info-ZIP stores them:
// a second member of a name made unzip ask what to do, and 7-Zip refuses to write one.
TEST_F(ZipTest, ANameGivenTwiceIsStoredOnce) {
  make_tree();
  expect_ok(sluice("zip -c -o twice.zip src/big.txt src/big.txt src/sub src/sub/deeper ./src/big.txt"));
  const std::string names =
      python("import zipfile; print(' '.join(i.filename for i in zipfile.ZipFile('twice.zip').infolist()))");
  EXPECT_EQ(names,
            "src/big.txt src/sub/ src/sub/deeper/ src/sub/deeper/small.txt src/sub/\xc3\xa9t\xc3\xa9 "
            "\xe5\x90\x8d.txt\n");
  expect_ok(sh("unzip -q twice.zip -d out < /dev/null"));
  // Two files whose names come out the same (the "../" is not stored): an error naming both, as
  // Info-ZIP's "cannot repeat names", and no archive; the second was left out without a word.
  put("x/f", testing::to_bytes(std::string("outer\n")));
  put("in/x/f", testing::to_bytes(std::string("inner\n")));
  const auto clash = sh(fmt::format("cd in && {} zip -c -o ../clash.zip x/f ../x/f", testing::sluice()));
  EXPECT_EQ(clash.status, 2) << describe(clash);
  EXPECT_NE(clash.err.find("../x/f: would be stored as 'x/f', the name of x/f already"), std::string::npos)
      << clash.err;
  EXPECT_FALSE(fs::exists(dir_ / "clash.zip"));
}

TEST_F(ZipTest, SameTreeSameBytesForAnyThreadCount) {
  make_tree();
  expect_ok(sluice("zip -c -j1 -o one.zip src"));
  expect_ok(sluice("zip -c -j2 -o two.zip src"));
  expect_ok(sluice("zip -c -j4 --chunk-size 1M -o four.zip src"));
  expect_ok(sh("cmp one.zip two.zip && cmp one.zip four.zip"));
}

TEST_F(ZipTest, ToAPipeMembersCarryDataDescriptors) {
  make_tree();
  expect_ok(sluice("zip -c -o - src | cat > piped.zip"));
  expect_ok(sh("unzip -tq piped.zip"));
  // The big file's sizes follow its data (bit 3); a file of one chunk has them in its header.
  const std::string flags = python(
      "import zipfile\n"
      "z = zipfile.ZipFile('piped.zip'); assert z.testzip() is None\n"
      "print(z.getinfo('src/big.txt').flag_bits & 8, z.getinfo('src/random.bin').flag_bits & 8)");
  EXPECT_EQ(flags, "8 0\n");
  // A streaming reader takes it from a pipe (files only: a symlink's mode is in the central
  // directory, which a streaming reader has not seen when it makes the entry).
  expect_ok(
      sh("mkdir streamed && cat piped.zip | bsdtar -xf - -C streamed && cmp src/big.txt streamed/src/big.txt && "
         "cmp src/random.bin streamed/src/random.bin && diff -r src/sub streamed/src/sub"));
}

TEST_F(ZipTest, ReadsWhatEveryPeerWrites) {
  make_tree();
  const std::vector<std::pair<std::string, std::string>> writers = {
      {"infozip.zip", "zip -qry infozip.zip src"},
      {"infozip-stream.zip", "zip -qr - src | cat > infozip-stream.zip"},  // data descriptors (no -y on a pipe)
      {"infozip-stored.zip", "zip -qry -0 infozip-stored.zip src"},
      {"bsdtar.zip", "bsdtar --format zip -cf bsdtar.zip src"},
      {"7z.zip", "7zz a -tzip -snl 7z.zip src >/dev/null"},
  };
  for (const auto& [archive, command] : writers) {
    expect_ok(sh(command));
    expect_ok(sluice(fmt::format("zip --test -f {}", archive)));
    expect_ok(sluice(fmt::format("zip -x -f {} -C out-{}", archive, archive)));
    expect_ok(sh(fmt::format("diff -r src out-{}/src", archive)));
  }
  // Python's zipfile writing to a stream it cannot seek in: data descriptors on every member.
  python(
      "import zipfile, os, sys\n"
      "class Pipe:\n"
      "  def __init__(s): s.f = open('py-stream.zip', 'wb'); s.n = 0\n"
      "  def write(s, b): s.n += len(b); return s.f.write(b)\n"
      "  def tell(s): return s.n\n"
      "  def flush(s): s.f.flush()\n"
      "  def seekable(s): return False\n"
      "p = Pipe()\n"
      "with zipfile.ZipFile(p, 'w', zipfile.ZIP_DEFLATED) as z:\n"
      "  for root, dirs, files in os.walk('src'):\n"
      "    for f in sorted(files):\n"
      "      path = os.path.join(root, f)\n"
      "      if not os.path.islink(path):\n"
      "        with open(path, 'rb') as i, z.open(path, 'w') as o: o.write(i.read())\n"
      "p.f.close()\n");
  expect_ok(sluice("zip -x -f py-stream.zip -C out-py"));
  expect_ok(sh("cmp src/big.txt out-py/src/big.txt && cmp src/random.bin out-py/src/random.bin"));
}

TEST_F(ZipTest, ZstdMembersRoundTrip) {
  make_tree();
  expect_ok(sluice("zip -c -F zstd -o z.zip src"));
  const std::string methods = python(
      "import zipfile\n"
      "print(zipfile.ZipFile('z.zip').getinfo('src/big.txt').compress_type)");
  EXPECT_EQ(methods, "93\n");
  expect_ok(sluice("zip --test -f z.zip"));
  expect_ok(sluice("zip -x -f z.zip -C out"));
  expect_ok(sh("diff -r src out/src"));
  // 7-Zip reads every member (Debian 12's bsdtar fails those past about 1 MiB: README).
  expect_ok(
      sh("7zz x -y -oout7 z.zip >/dev/null && cmp src/big.txt out7/src/big.txt && "
         "cmp src/random.bin out7/src/random.bin"));
}

TEST_F(ZipTest, ListsLikeThePeers) {
  make_tree();
  expect_ok(sluice("zip -c -o a.zip src"));
  const auto names = sluice("zip -t -f a.zip");
  expect_ok(names);
  const auto peers = sh("unzip -Z1 a.zip");
  EXPECT_EQ(names.out, peers.out);
  const auto selected = sluice("zip -t -v -f a.zip src/sub --exclude '*.txt'");
  expect_ok(selected);
  EXPECT_NE(selected.out.find("drwxr-xr-x"), std::string::npos) << selected.out;
  EXPECT_EQ(selected.out.find("small.txt"), std::string::npos) << selected.out;
  const auto missing = sluice("zip -t -f a.zip nowhere");
  EXPECT_EQ(missing.status, 1) << describe(missing);
  EXPECT_NE(missing.err.find("nowhere: not found in archive"), std::string::npos) << missing.err;
  // Setuid, setgid and sticky bits as unzip -Z shows them (they were left out: -rwxr-xr-x).
  expect_ok(
      sh("mkdir m && for mode in 4755 2750 1777 4644; do echo $mode > m/f$mode; chmod $mode m/f$mode; done && "
         "zip -qr modes.zip m"));
  const auto ours = sluice("zip -t -v -f modes.zip");
  expect_ok(ours);
  const auto theirs = sh("unzip -Z modes.zip | grep ' m/f' | cut -c1-10 | LC_ALL=C sort");
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < ours.out.size(); at = ours.out.find('\n', at) + 1) {
    if (ours.out.compare(at, 1, "-") == 0) lines.push_back(ours.out.substr(at, 10) + "\n");
  }
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(fmt::format("{}", fmt::join(lines, "")), theirs.out);
  EXPECT_EQ(theirs.out, "-rwSr--r--\n-rwsr-xr-x\n-rwxr-s---\n-rwxrwxrwt\n");
}

// An archive whose comment was cut short (a download that stopped in it) is read, as unzip,
// zipfile and bsdtar read it; it was "not a zip archive". One cut before its end record is said
// to be a zip cut short.
TEST_F(ZipTest, ACommentCutShortIsReadAndAZipCutShortIsNamedSo) {
  make_tree();
  expect_ok(
      sh("zip -qr c.zip src && printf 'C%.0s' $(seq 100) | zip -z c.zip > /dev/null && "
         "head -c $(( $(stat -c %s c.zip) - 50 )) c.zip > cut.zip && unzip -tq cut.zip"));
  expect_ok(sluice("zip --test -f cut.zip"));
  EXPECT_EQ(sluice("zip -t -f cut.zip").out, sh("unzip -Z1 c.zip").out);
  expect_ok(sh("head -c 5000 c.zip > short.zip"));
  const auto r = sluice("zip --test -f short.zip");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("short.zip: a zip archive cut short"), std::string::npos) << r.err;
  // A tar or a compressed stream is named as what it is, as sluice tar names a zip.
  expect_ok(sh("tar -cf t.tar src && gzip -k t.tar"));
  for (const auto& [archive, is] : std::vector<std::pair<std::string, std::string>>{
           {"t.tar", "it is a tar archive (read it with sluice tar)"}, {"t.tar.gz", "it is gzip data"}}) {
    const auto named = sluice("zip -t -f " + archive);
    EXPECT_EQ(named.status, 1) << describe(named);
    EXPECT_NE(named.err.find(archive + ": not a zip archive (no end of central directory record); " + is),
              std::string::npos)
        << named.err;
  }
}

TEST_F(ZipTest, ManyMembersGoZip64BothWays) {
  // Python writes the zip64 end records past 65,535 members; so must we.
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('many.zip', 'w') as z:\n"
      "  for i in range(65600): z.writestr(f'm/{i}', b'')\n");
  const auto listed = sluice("zip -t -f many.zip | wc -l");
  expect_ok(listed);
  EXPECT_EQ(listed.out, "65600\n");
  python(
      "import os\n"
      "os.makedirs('tree')\n"
      "for i in range(65600): open(f'tree/{i:05}', 'wb').close()\n");
  expect_ok(sluice("zip -c -o ours.zip tree"));
  EXPECT_EQ(python("import zipfile; print(len(zipfile.ZipFile('ours.zip').infolist()))"), "65601\n");
  const auto unzip = sh("unzip -l ours.zip | tail -1");
  EXPECT_NE(unzip.out.find("65601 files"), std::string::npos) << describe(unzip);
}

TEST_F(ZipTest, HugeSparseMemberGoesZip64) {
  // 4 GiB + 1 MiB of zeros (a sparse file): sizes in zip64 fields, read back by Python and us.
  // The file is made on tmpfs where there is one: ext4 fills the page cache with the holes' zeros
  // on first reading (20-27 s of system time here), tmpfs reads them from its zero page (0.4 s).
  struct Scratch {
    std::string path;
    ~Scratch() {
      if (!path.empty()) fs::remove_all(path);
    }
  } shm;
  char pattern[] = "/dev/shm/sluice-zip64-XXXXXX";
  if (::mkdtemp(pattern) != nullptr) shm.path = pattern;
  const auto where = quote(shm.path.empty() ? dir_.path().string() : shm.path);
  expect_ok(sh(fmt::format("cd {} && truncate -s 4295999488 huge && printf end >> huge && {} zip -c -1 -o {} huge",
                           where, testing::sluice(), quote((dir_ / "huge.zip").string()))));
  EXPECT_EQ(python("import zipfile; i = zipfile.ZipFile('huge.zip').getinfo('huge'); print(i.file_size)"),
            "4295999491\n");
  expect_ok(sluice("zip --test -f huge.zip"));
}

// -v names each output as `sluice run -v` does, --json gives `sluice run --json`'s records; a
// member refused is a problem record and the exit status stays 2. Transcode had neither.
TEST_F(ZipTest, TranscodeNamesItsOutputsWithVerboseAndJson) {
  make_tree();
  expect_ok(sh("zip -qry bundle.zip src"));
  const auto verbose = sluice("transcode -v bundle.zip --output-dir v -F gzip");
  expect_ok(verbose);
  EXPECT_NE(verbose.err.find(fmt::format("-> v/src/big.txt.gz ({} -> ", fs::file_size(dir_ / "src/big.txt"))),
            std::string::npos)
      << verbose.err;
  EXPECT_EQ(std::count(verbose.err.begin(), verbose.err.end(), '\n'), 5) << verbose.err;  // the five files
  put("j/src/empty.gz", testing::to_bytes(std::string("kept\n")));
  const auto json = sluice("transcode --json bundle.zip --output-dir j -F gzip");
  EXPECT_EQ(json.status, 2) << describe(json);
  put("records", testing::to_bytes(json.out));
  const auto summary = python(
      "import json\n"
      "records = [json.loads(line) for line in open('records')]\n"
      "ok = [r['output'] for r in records if r.get('status') == 'ok']\n"
      "problems = [r['problem'] for r in records if 'problem' in r]\n"
      "print(len(ok), 'j/src/big.txt.gz' in ok, 'j/src/empty.gz' in ok, len(problems), 'kept' in problems[0],\n"
      "      records[-1]['summary']['outputs'], records[-1]['summary']['refused'])\n");
  EXPECT_EQ(summary, "4 True False 1 True 4 1\n") << json.out;
  const auto to_stdout = sluice("transcode --json bundle.zip -o - -F gzip");
  EXPECT_EQ(to_stdout.status, 2) << describe(to_stdout);
  EXPECT_NE(to_stdout.err.find("--json writes its records to stdout"), std::string::npos) << to_stdout.err;
}

TEST_F(ZipTest, TranscodeMakesEachMemberItsOwnCompressedFile) {
  make_tree();
  expect_ok(sh("zip -qry bundle.zip src"));
  expect_ok(sluice("transcode bundle.zip --output-dir gz -F gzip"));
  // Each file as NAME.gz, the bytes `sluice -c` makes of it (name and time in the header); the
  // symlink and directories as they are; no plain file written.
  for (const char* file : {"big.txt", "random.bin", "empty", "sub/deeper/small.txt"}) {
    expect_ok(
        sh(fmt::format("rm -rf same && mkdir same && cp -p src/{0} same/ && "
                       "{1} -c same/$(basename {0}) | cmp - gz/src/{0}.gz",
                       file, testing::sluice())));
  }
  // The symbolic link to big.txt links to its compressed file, under its name too (it was left
  // pointing at big.txt, which the tree does not hold), wherever it stands in the archive.
  EXPECT_TRUE(fs::is_symlink(dir_ / "gz/src/link.gz"));
  EXPECT_EQ(fs::read_symlink(dir_ / "gz/src/link.gz"), "big.txt.gz");
  EXPECT_FALSE(fs::exists(dir_ / "gz/src/link"));
  EXPECT_FALSE(fs::exists(dir_ / "gz/src/big.txt"));
  // Again into the same directory: what is there is kept without -f (it was replaced, exit 0),
  // as an existing output of `sluice transcode -o` is; -f replaces it.
  put("gz/src/empty.gz", testing::to_bytes(std::string("precious\n")));
  const auto again = sluice("transcode bundle.zip --output-dir gz -F gzip");
  EXPECT_NE(again.status, 0) << describe(again);
  EXPECT_NE(again.err.find("refusing member 'src/empty'"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("it exists already and is kept"), std::string::npos) << again.err;
  EXPECT_EQ(get("gz/src/empty.gz"), testing::to_bytes(std::string("precious\n")));
  expect_ok(sluice("transcode -f bundle.zip --output-dir gz -F gzip"));
  expect_ok(sh("gzip -dc gz/src/empty.gz | cmp - src/empty"));
  const auto names = sh("gzip -lN gz/src/big.txt.gz | tail -1");
  EXPECT_NE(names.out.find("gz/src/big.txt"), std::string::npos) << describe(names);
  // A tar (compressed) the same way, to zstd.
  expect_ok(sh("tar -czf bundle.tgz src"));
  expect_ok(sluice("transcode bundle.tgz --output-dir zst -F zstd"));
  expect_ok(sh("zstd -dc zst/src/big.txt.zst | cmp - src/big.txt && zstd -dc zst/src/empty.zst | cmp - src/empty"));
  // A tar is read once: a link after its file is renamed with it; one before it stays as it is.
  expect_ok(sh("tar -cf first.tar src/big.txt src/link && tar -cf after.tar src/link src/big.txt"));
  expect_ok(sluice("transcode first.tar --output-dir first -F gzip"));
  EXPECT_EQ(fs::read_symlink(dir_ / "first/src/link.gz"), "big.txt.gz");
  expect_ok(sluice("transcode after.tar --output-dir after -F gzip"));
  EXPECT_EQ(fs::read_symlink(dir_ / "after/src/link"), "big.txt");
  // Bytes in front of the archive (a self-extractor's program; zeros, which a tar reader took for
  // an empty archive: exit 0 and nothing made) are allowed for, as in extraction.
  expect_ok(
      sh("(printf 'MZ'; head -c 5000 /dev/zero) > sfx-mz.zip && cat bundle.zip >> sfx-mz.zip && "
         "head -c 10240 /dev/zero > sfx-zeros.zip && cat bundle.zip >> sfx-zeros.zip"));
  for (const char* archive : {"sfx-mz.zip", "sfx-zeros.zip"}) {
    expect_ok(sluice(fmt::format("transcode {0} --output-dir out-{0} -F gzip", archive)));
    expect_ok(sh(fmt::format("gzip -dc out-{}/src/big.txt.gz | cmp - src/big.txt", archive)));
  }
  // A tar holding a zip whose end record's comment runs over the tar's end blocks is a tar.
  expect_ok(sh("cp bundle.zip inner.zip && tar -cf poly.tar src/empty inner.zip"));
  python(
      "import struct\n"
      "data = bytearray(open('poly.tar', 'rb').read())\n"
      "end = data.rfind(b'PK\\x05\\x06')\n"
      "struct.pack_into('<H', data, end + 20, len(data) - end - 22)\n"
      "open('poly.tar', 'wb').write(data)\n");
  expect_ok(sluice("transcode poly.tar --output-dir out-poly -F gzip"));
  EXPECT_TRUE(fs::exists(dir_ / "out-poly/inner.zip.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "out-poly/src/big.txt.gz"));
  // Needs the format; a member escaping the directory is refused as in extraction.
  const auto no_format = sluice("transcode bundle.zip --output-dir x");
  EXPECT_EQ(no_format.status, 2) << describe(no_format);
  EXPECT_NE(no_format.err.find("-F"), std::string::npos) << no_format.err;
}

// The extended timestamp holds 32 bits: before 1970 signed, past 2038-01-19 unsigned (Info-ZIP
// on 64-bit systems, bsdtar): sluice read 2100 as 1964 and wrote 2038 for it.
TEST_F(ZipTest, TimesPast2038AndBefore1970AsInfoZipKeepsThem) {
  put("src/late", testing::to_bytes(std::string("late\n")));
  put("src/early", testing::to_bytes(std::string("early\n")));
  expect_ok(sh("touch -d '2100-06-01 12:00:00 UTC' src/late && touch -d '1960-03-01 00:00:00 UTC' src/early"));
  const auto mtime = [&](const std::string& path) { return fs::last_write_time(dir_ / path); };
  expect_ok(sh("cd src && zip -q ../infozip.zip late early"));
  expect_ok(sluice("zip -c -o sluice.zip -C src late early"));
  for (const char* archive : {"infozip.zip", "sluice.zip"}) {
    expect_ok(sluice(fmt::format("zip -x -f {0} -C out-{0}", archive)));
    EXPECT_EQ(mtime(fmt::format("out-{}/late", archive)), mtime("src/late")) << archive;
    EXPECT_EQ(mtime(fmt::format("out-{}/early", archive)), mtime("src/early")) << archive;
  }
  expect_ok(sh("unzip -q -d out-unzip sluice.zip"));
  EXPECT_EQ(mtime("out-unzip/late"), mtime("src/late"));
  EXPECT_EQ(python("import zipfile; print(zipfile.ZipFile('sluice.zip').getinfo('late').date_time[0])"), "2100\n");
}

// DOS times are local times. zip_dos_to_unix, and a converter that remembers the last hour, answer
// as mktime() does (without its stat of the zone file at every call) in zones with and without
// summer time, half-hour offsets, southern summers, the hours a change skips or repeats, and
// fields no valid time has (day 0, month 13, hour 31, minute 63), which both normalise. The
// zones are POSIX rules, which need no tzdata.
TEST(ZipTimes, DosTimesAreConvertedAsMktimeConvertsThem) {
  const char* const saved = std::getenv("TZ");
  const std::string restore = saved ? saved : "";
  for (const char* zone :
       {"UTC0", "CET-1CEST,M3.5.0,M10.5.0/3", "EST5EDT,M3.2.0,M11.1.0", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
        "<-03>3", "<+1345>-12:45<+1445>,M9.5.0/2:45,M4.1.0/3:45"}) {
    SCOPED_TRACE(zone);
    ::setenv("TZ", zone, 1);
    ::tzset();
    detail::DosTimeConverter converter;
    std::uint32_t state = 12345;
    const auto next = [&] { return state = state * 1664525u + 1013904223u; };
    for (int i = 0; i < 30000; ++i) {
      auto date = static_cast<std::uint16_t>(next() >> 16);
      auto hour = static_cast<std::uint16_t>(next() & 0xF800);
      if (i % 2 == 0) {  // around the changes: late March, April, October, November, at any hour
        const int month = (i / 2) % 4 == 0 ? 3 : (i / 2) % 4 == 1 ? 4 : (i / 2) % 4 == 2 ? 10 : 11;
        date = static_cast<std::uint16_t>((date & 0xFE1F) | (month << 5));
        hour = static_cast<std::uint16_t>(((i / 8) % 24) << 11);
      }
      for (int in_hour = 0; in_hour < 3; ++in_hour) {  // times of one hour, one after the other
        const auto time = static_cast<std::uint16_t>(hour | (next() & 0x7FF));
        std::tm local{};
        local.tm_year = 80 + (date >> 9);
        local.tm_mon = ((date >> 5) & 15) - 1;
        local.tm_mday = date & 31;
        local.tm_hour = time >> 11;
        local.tm_min = (time >> 5) & 63;
        local.tm_sec = (time & 31) * 2;
        local.tm_isdst = -1;
        const std::int64_t expected = date == 0 ? 0 : static_cast<std::int64_t>(std::mktime(&local));
        const std::string what = fmt::format("date {:#06x} time {:#06x}", date, time);
        ASSERT_EQ(converter.to_unix(date, time), expected) << what;
        ASSERT_EQ(detail::zip_dos_to_unix(date, time), expected) << what;
      }
    }
  }
  if (saved)
    ::setenv("TZ", restore.c_str(), 1);
  else
    ::unsetenv("TZ");
  ::tzset();
}

// --- hostile archives ---

TEST_F(ZipTest, RefusesPathsOutsideTheDestination) {
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('slip.zip', 'w') as z:\n"
      "  z.writestr('a/../../escaped.txt', b'x')\n"
      "  z.writestr('/tmp/sluice-zip-absolute.txt', b'x')\n"
      "  z.writestr('fine.txt', b'fine')\n");
  const auto result = sluice("zip -x -f slip.zip -C out");
  EXPECT_EQ(result.status, 2) << describe(result);
  EXPECT_NE(result.err.find("refusing member 'a/../../escaped.txt'"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("'..'"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("refusing member '/tmp/sluice-zip-absolute.txt' (archive byte"), std::string::npos)
      << result.err;
  EXPECT_FALSE(fs::exists("/tmp/sluice-zip-absolute.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "escaped.txt"));
  EXPECT_TRUE(fs::exists(dir_ / "out/fine.txt"));
  const auto strict = sluice("zip -x --strict -f slip.zip -C strict");
  EXPECT_EQ(strict.status, 1) << describe(strict);
  EXPECT_FALSE(fs::exists(dir_ / "escaped.txt"));
}

// Transcoding refuses the members that extraction refuses: ".", ".." and "x/.." became the files
// "..gz", "...gz" and "x/...gz" (exit 0), where tar transcoding and zip -x refused them; and
// "y/." and "z/./." are "y" and "z" to extraction, so "y.gz" and "z.gz" (they were "y/..gz").
TEST_F(ZipTest, TranscodingRefusesDotNamesAsExtractionDoes) {
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('dots.zip', 'w') as z:\n"
      "  for name in ('.', '..', 'x/..', 'y/.', 'z/./.', 'fine.txt'): z.writestr(name, b'data')\n");
  const auto result = sluice("transcode dots.zip --output-dir out -F gzip");
  EXPECT_EQ(result.status, 2) << describe(result);
  for (const char* refused : {"refusing member '.' (archive byte 0)", "refusing member '..' (archive byte",
                              "refusing member 'x/..' (archive byte"}) {
    EXPECT_NE(result.err.find(refused), std::string::npos) << refused << "\n" << result.err;
  }
  EXPECT_EQ(sh("cd out && find . | sort | tr '\\n' ' '").out, ". ./fine.txt.gz ./y.gz ./z.gz ");
  EXPECT_EQ(sh("gzip -dc out/fine.txt.gz").out, "data");
}

// A member refused for its data (a symlink target over 4 KiB) or that the file system will not
// take (a name too long) is named with its archive and byte, as a member with damaged data is
// (they named neither, or only the file); with --strict the first stops the run, named once.
TEST_F(ZipTest, MembersThatCannotBeExtractedAreNamedWithTheirArchive) {
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('odd.zip', 'w') as z:\n"
      "  i = zipfile.ZipInfo('long-link'); i.create_system = 3; i.external_attr = 0o120777 << 16\n"
      "  z.writestr(i, 'x' * 5000)\n"
      "  z.writestr('d/' + 'n' * 300, b'x')\n"
      "  z.writestr('fine.txt', b'fine')\n");
  const std::string long_name = "d/" + std::string(300, 'n');
  const auto result = sluice("zip -x -f odd.zip -C out");
  EXPECT_EQ(result.status, 2) << describe(result);
  EXPECT_NE(result.err.find("sluice: odd.zip: member 'long-link' (archive byte 0): symbolic link target of 5000 bytes "
                            "(at most 4096)\n"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find(fmt::format("sluice: odd.zip: member '{0}' (archive byte 5039): out/{0}: cannot create "
                                        "output: File name too long\n",
                                        long_name)),
            std::string::npos)
      << result.err;
  EXPECT_TRUE(fs::exists(dir_ / "out/fine.txt"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir_ / "out/long-link")));
  const auto strict = sluice("zip -x --strict -f odd.zip -C strict");
  EXPECT_EQ(strict.status, 1) << describe(strict);
  EXPECT_EQ(strict.err,
            "sluice: odd.zip: member 'long-link' (archive byte 0): symbolic link target of 5000 bytes (at most 4096)\n");
  EXPECT_FALSE(fs::exists(dir_ / "strict/fine.txt"));
}

TEST_F(ZipTest, NeverWritesThroughASymlink) {
  fs::create_directories(dir_ / "outside");
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('link.zip', 'w') as z:\n"
      "  i = zipfile.ZipInfo('link'); i.create_system = 3; i.external_attr = 0o120777 << 16\n"
      "  z.writestr(i, '../outside')\n"
      "  z.writestr('link/planted.txt', b'x')\n");
  const auto result = sluice("zip -x -f link.zip -C out");
  EXPECT_EQ(result.status, 2) << describe(result);
  EXPECT_NE(result.err.find("symbolic link"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir_ / "outside/planted.txt"));
  EXPECT_TRUE(fs::is_symlink(dir_ / "out/link"));
}

// Members with wildcards are patterns, as unzip takes them (its * and ? match '/' too); the
// library takes members as names unless asked (Python's zip.extract, as zipfile's extractall).
TEST_F(ZipTest, MembersWithWildcardsAreMatchedAsUnzipMatchesThem) {
  put("w/a.txt", testing::to_bytes(std::string("a")));
  put("w/sub/b.txt", testing::to_bytes(std::string("b")));
  put("w/sub/c.log", testing::to_bytes(std::string("c")));
  put("w/[x].txt", testing::to_bytes(std::string("x")));
  put("w/x.txt", testing::to_bytes(std::string("x")));
  put("w/dir.txt/inner", testing::to_bytes(std::string("i")));
  put("w/back\\slash", testing::to_bytes(std::string("\\")));
  expect_ok(sh("cd w && " + testing::sluice() + " zip -c -o ../w.zip ."));
  // (A member without wildcards selects what is under it too, as in sluice tar: unzip's "sub"
  // matches only a member named so.) A pattern matches the whole name, a directory's with its
  // '/'; '[x].txt' is a pattern, not also a name; a backslash escapes, as in unzip.
  for (const std::string pattern :
       {"'*.txt'", "'sub/*'", "'?.txt'", "'*/c.*'", "'\\[x].txt'", "'s*'", "'*/'", "'[x].txt'", "'*/inner'"}) {
    const auto ours = sluice("zip -t -f w.zip " + pattern);
    const auto theirs = sh("unzip -Z1 w.zip " + pattern);
    EXPECT_EQ(ours.status, 0) << pattern << ": " << describe(ours);
    EXPECT_EQ(ours.out, theirs.out) << pattern;
  }
  // (Listed, the name's backslash is shown escaped: compared by what is extracted.)
  expect_ok(sluice("zip -x -f w.zip -C slash 'back\\\\slash'"));
  EXPECT_EQ(sh("cd slash && find . -type f").out, "./back\\slash\n");
  expect_ok(sluice("zip -x -f w.zip -C out '*.txt'"));
  EXPECT_EQ(sh("cd out && find . -type f | sort").out, "./[x].txt\n./a.txt\n./sub/b.txt\n./x.txt\n");
  const auto none = sluice("zip -x -f w.zip -C none '*.none' a.txt");
  EXPECT_EQ(none.status, 1) << describe(none);
  EXPECT_NE(none.err.find("*.none: not found in archive"), std::string::npos) << none.err;
  EXPECT_TRUE(fs::exists(dir_ / "none/a.txt"));

  FdSource source((dir_ / "w.zip").string());
  ZipExtractOptions options;
  options.directory = (dir_ / "library").string();
  options.members = {"*.txt"};
  EXPECT_EQ(extract_zip(source, options).members_not_found, std::vector<std::string>{"*.txt"});
}

// Info-ZIP's zip adds to an archive that exists: creating over one is refused (the archive left
// as it was) unless --force says to replace it. Extraction replaces a file as tar does; -k keeps
// it and refuses its member (exit 2), as sluice tar -x -k.
TEST_F(ZipTest, AnArchiveThatExistsIsReplacedOnlyWithForceAndMinusKKeepsFiles) {
  put("src/a.txt", testing::to_bytes(std::string("new a\n")));
  put("src/b.txt", testing::to_bytes(std::string("new b\n")));
  expect_ok(sluice("zip -c -o bundle.zip src/a.txt"));
  const Bytes first = get("bundle.zip");
  const auto again = sluice("zip -c -o bundle.zip src/b.txt");
  EXPECT_EQ(again.status, 1) << describe(again);
  EXPECT_NE(again.err.find("bundle.zip: already exists; sluice zip -c writes a new archive and does not add to one: "
                           "--force replaces it"),
            std::string::npos)
      << again.err;
  EXPECT_EQ(get("bundle.zip"), first);
  EXPECT_EQ(dir_.listing(), (std::vector<std::string>{"bundle.zip", "src"})) << "no temporary left";
  expect_ok(sluice("zip -c --force -o bundle.zip src/b.txt"));
  EXPECT_EQ(sh("unzip -Z1 bundle.zip").out, "src/b.txt\n");
  // Replaced inside the tree it archives: the archive it replaces is left out, as the one being
  // written is (it was packed into the new one, which grew at each run).
  expect_ok(sluice("zip -c -o src/self.zip src"));
  const auto replaced = sluice("zip -c --force -o src/self.zip src");
  EXPECT_EQ(replaced.status, 0) << describe(replaced);
  EXPECT_NE(replaced.err.find("src/self.zip: is the archive being written; not added"), std::string::npos)
      << replaced.err;
  EXPECT_EQ(sh("unzip -Z1 src/self.zip").out, "src/\nsrc/a.txt\nsrc/b.txt\n");
  fs::remove(dir_ / "src/self.zip");
  // A symbolic link at the archive's path is what is replaced; the file it points to is archived.
  expect_ok(sluice("zip -c -o src/real.zip src/a.txt"));
  fs::create_symlink("src/real.zip", dir_ / "link.zip");
  expect_ok(sluice("zip -c --force -o link.zip src"));
  EXPECT_EQ(sh("unzip -Z1 link.zip").out, "src/\nsrc/a.txt\nsrc/b.txt\nsrc/real.zip\n");
  EXPECT_FALSE(fs::is_symlink(dir_ / "link.zip"));
  fs::remove(dir_ / "src/real.zip");
  fs::remove(dir_ / "link.zip");

  put("out/src/b.txt", testing::to_bytes(std::string("mine\n")));
  const auto kept = sluice("zip -x -k -f bundle.zip -C out");
  EXPECT_EQ(kept.status, 2) << describe(kept);
  EXPECT_NE(kept.err.find("refusing member 'src/b.txt'"), std::string::npos) << kept.err;
  EXPECT_EQ(get("out/src/b.txt"), testing::to_bytes(std::string("mine\n")));
  expect_ok(sluice("zip -x -f bundle.zip -C out"));
  EXPECT_EQ(get("out/src/b.txt"), testing::to_bytes(std::string("new b\n")));
  // A directory member where a symbolic link is: -k keeps the link (it was replaced by a
  // directory), and nothing goes through it.
  expect_ok(sluice("zip -c -o tree.zip src"));
  fs::create_directories(dir_ / "elsewhere");
  fs::create_directories(dir_ / "kk");
  fs::create_directory_symlink("../elsewhere", dir_ / "kk/src");
  const auto link = sluice("zip -x -k -f tree.zip -C kk");
  EXPECT_EQ(link.status, 2) << describe(link);
  EXPECT_NE(link.err.find("refusing member 'src'"), std::string::npos) << link.err;
  EXPECT_TRUE(fs::is_symlink(dir_ / "kk/src"));
  EXPECT_TRUE(fs::is_empty(dir_ / "elsewhere"));
  // Each goes with its mode only.
  EXPECT_EQ(sluice("zip -t -k -f bundle.zip").status, 2);
  EXPECT_EQ(sluice("zip -x --force -f bundle.zip -C out").status, 2);
}

// A local header that says other than the central directory fails its member, named, and the
// others are extracted (as Python's zipfile; unzip and 7-Zip report an error too). The central
// record saying stored over a local header saying deflate was tested as correct and extracted as
// the raw deflate bytes, where unzip and bsdtar extract the text the local header describes.
// Zeros in a local header whose data is followed by a descriptor are not a disagreement.
TEST_F(ZipTest, ALocalHeaderSayingOtherThanTheDirectoryFailsItsMember) {
  python(
      "import zipfile, struct, zlib\n"
      "text = b'#!/bin/sh\\necho hi\\n' * 50\n"
      "with zipfile.ZipFile('a.zip', 'w', zipfile.ZIP_DEFLATED) as z:\n"
      "  for name in ('method', 'size', 'crc', 'name', 'ok'): z.writestr(name, text)\n"
      "class Pipe:\n"  // unseekable: data descriptors, zeros in the local headers
      "  def __init__(s): s.b = bytearray()\n"
      "  def write(s, x): s.b += x; return len(x)\n"
      "  def flush(s): pass\n"
      "p = Pipe()\n"
      "with zipfile.ZipFile(p, 'w', zipfile.ZIP_DEFLATED) as z: z.writestr('streamed', text)\n"
      "open('streamed.zip', 'wb').write(p.b)\n"
      "d = bytearray(open('a.zip', 'rb').read())\n"
      "end = d.rindex(b'PK\\x05\\x06')\n"
      "at = struct.unpack('<I', d[end+16:end+20])[0]\n"
      "central = {}\n"
      "while d[at:at+4] == b'PK\\x01\\x02':\n"
      "  n, e, c = struct.unpack('<HHH', d[at+28:at+34])\n"
      "  central[bytes(d[at+46:at+46+n])] = at\n"
      "  at += 46 + n + e + c\n"
      "def local(name): return struct.unpack('<I', d[central[name]+42:central[name]+46])[0]\n"
      "m = central[b'method']\n"  // the directory: stored, the raw deflate bytes' CRC-32 and size
      "data = d[local(b'method') + 36:local(b'method') + 36 + struct.unpack('<I', d[m+20:m+24])[0]]\n"
      "struct.pack_into('<H', d, m + 10, 0)\n"
      "struct.pack_into('<III', d, m + 16, zlib.crc32(data), len(data), len(data))\n"
      "struct.pack_into('<I', d, local(b'size') + 22, 7)\n"
      "struct.pack_into('<I', d, local(b'crc') + 14, 0x12345678)\n"
      "d[local(b'name') + 30] = ord('N')\n"
      "open('differ.zip', 'wb').write(d)\n");
  const auto result = sluice("zip -x -f differ.zip -C out");
  EXPECT_EQ(result.status, 2) << describe(result);
  for (const char* expected :
       {"member 'method' (archive byte 0): the local header says deflate, the central directory stored",
        "member 'size' (archive byte ", "the local header says 7 bytes (", "member 'crc' (archive byte ",
        "CRC-32 12345678), the central directory 900 (", "member 'name' (archive byte ",
        "the local header names 'Name'"}) {
    EXPECT_NE(result.err.find(expected), std::string::npos) << expected << "\n" << result.err;
  }
  for (const char* failed : {"method", "size", "crc", "name"})
    EXPECT_FALSE(fs::exists(dir_ / "out" / failed)) << failed;
  std::string text;
  for (int i = 0; i < 50; ++i) text += "#!/bin/sh\necho hi\n";
  EXPECT_EQ(get("out/ok"), testing::to_bytes(text));
  const auto test = sluice("zip --test -f differ.zip");
  EXPECT_EQ(test.status, 1) << describe(test);
  EXPECT_NE(test.err.find("4 of 5 members failed"), std::string::npos) << test.err;
  const auto streamed = sluice("zip --test -f streamed.zip");
  EXPECT_EQ(streamed.status, 0) << describe(streamed);
}

// A directory member does not remove a file at its name, one there before or one the archive
// just extracted: the member is refused and the file kept, as unzip and 7-Zip do (tar's
// extraction replaces it, as GNU tar and bsdtar do).
TEST_F(ZipTest, ADirectoryMemberNeverRemovesAFile) {
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('dir.zip', 'w') as z: z.writestr('x/', b'')\n"
      "with zipfile.ZipFile('both.zip', 'w') as z:\n"
      "  z.writestr('y', b'archived')\n"
      "  z.writestr('y/', b'')\n"
      "  z.writestr('y/z', b'under')\n");
  put("out/x", testing::to_bytes(std::string("user data")));
  const auto over = sluice("zip -x -f dir.zip -C out");
  EXPECT_EQ(over.status, 2) << describe(over);
  EXPECT_NE(over.err.find("refusing member 'x' (archive byte 0): a file exists at that path"), std::string::npos)
      << over.err;
  EXPECT_EQ(get("out/x"), testing::to_bytes(std::string("user data")));
  const auto both = sluice("zip -x -f both.zip -C out");
  EXPECT_EQ(both.status, 2) << describe(both);
  EXPECT_EQ(get("out/y"), testing::to_bytes(std::string("archived")));
  EXPECT_NE(both.err.find("refusing member 'y/z'"), std::string::npos) << both.err;
}

TEST_F(ZipTest, RefusesOverlappingMembersBeforeWritingAnything) {
  // Two central directory records for one local header: the overlap of "zip bombs" that reuse
  // one member's data many times.
  python(
      "import zipfile, struct\n"
      "with zipfile.ZipFile('one.zip', 'w', zipfile.ZIP_DEFLATED) as z: z.writestr('a', b'a' * 100000)\n"
      "d = open('one.zip', 'rb').read()\n"
      "end = d.rindex(b'PK\\x05\\x06')\n"
      "cd_offset = struct.unpack('<I', d[end+16:end+20])[0]\n"
      "cd = d[cd_offset:end]\n"
      "eocd = bytearray(d[end:])\n"
      "struct.pack_into('<HHII', eocd, 8, 2, 2, 2 * len(cd), cd_offset)\n"
      "open('bomb.zip', 'wb').write(d[:cd_offset] + cd + cd + bytes(eocd))\n");
  const auto result = sluice("zip -x -f bomb.zip -C out");
  EXPECT_EQ(result.status, 1) << describe(result);
  EXPECT_NE(result.err.find("overlap"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir_ / "out/a"));
}

// A zip bomb of Info-ZIP's: 48 MiB of zeros in 50 KB. With --max-output the members to extract
// are weighed by the sizes they declare before anything is written (a member decoding to more
// than it declares fails: LyingSizesAndBadChecksumsFailTheirMemberOnly); members chosen under
// the limit, or a limit with room, extract. An unpack pipeline's untar stage takes the limit as
// `max_output` (Python's, and transcoding: python/tests/test_archives.py).
TEST_F(ZipTest, MaxOutputRefusesABombBeforeWritingAnything) {
  put("src/small", testing::to_bytes(std::string(1000, 's')));
  ASSERT_EQ(sh("head -c 50331648 /dev/zero > src/zeros && cd src && zip -q ../bomb.zip small zeros").status, 0);
  ASSERT_LT(fs::file_size(dir_ / "bomb.zip"), 200'000u);
  auto r = sluice("zip -x -f bomb.zip -C out --max-output 10M");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_EQ(r.err,
            "sluice: bomb.zip: the members to extract declare 50332648 bytes in all, more than the limit of 10485760 "
            "bytes set for this run; nothing was extracted\n");
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  expect_ok(sluice("zip -x -f bomb.zip -C out --max-output 10M small"));
  EXPECT_EQ(get("out/small"), testing::to_bytes(std::string(1000, 's')));
  expect_ok(sluice("zip -x -f bomb.zip -C room --max-output 50332648"));
  EXPECT_EQ(fs::file_size(dir_ / "room/zeros"), 50331648u);
  EXPECT_EQ(sluice("zip -x -f bomb.zip -C tight --max-output 50332647").status, 1);
  EXPECT_FALSE(fs::exists(dir_ / "tight"));
  for (const char* args : {"zip -x -f bomb.zip -C zero --max-output 0", "zip --test -f bomb.zip --max-output 1M",
                           "transcode bomb.zip --output-dir zero -F gzip --max-output 0"}) {
    r = sluice(args);
    EXPECT_EQ(r.status, 2) << args << ": " << describe(r);
  }
  EXPECT_FALSE(fs::exists(dir_ / "zero"));

  put("p.toml", testing::to_bytes(std::string("[input]\npaths = [\"bomb.zip\"]\n[[stage]]\nkind = \"untar\"\n"
                                              "max_output = \"10M\"\n[output]\ndirectory = \"run\"\n")));
  r = sluice("run p.toml");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("more than the limit of 10485760 bytes"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "run/zeros"));
  r = sluice("run --dry-run p.toml");
  EXPECT_NE(r.out.find("at most 10485760 bytes of files from each archive"), std::string::npos) << r.out;
}

// A zip64 end record that counts 2^40 members in a directory as big as the file (a sparse file of
// 200 GiB: 4 KiB on disk): the reader's table grows as records are read, so the archive fails as
// what it is, not as out of memory (a table sized from the claim asked for 1.7 times the file).
TEST_F(ZipTest, AClaimOfTrillionsOfMembersFailsAsTheRecordsItHasNotAsOutOfMemory) {
  python(R"(import struct
size = 200 * 1024 ** 3
end = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0)
record_at = size - len(end) - 20 - 56
locator = struct.pack('<IIQI', 0x07064b50, 0, record_at, 1)
record = struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, 2 ** 40, 2 ** 40, record_at, 0)
with open('claims.zip', 'wb') as f:
    f.truncate(record_at)
    f.seek(record_at)
    f.write(record + locator + end)
)");
  const auto r = sluice("zip -t -f claims.zip");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("claims.zip: bad central directory record (at byte 0)"), std::string::npos) << r.err;
}

TEST_F(ZipTest, CentralDirectoryOutsideTheFile) {
  python(
      "import zipfile, struct\n"
      "with zipfile.ZipFile('a.zip', 'w') as z: z.writestr('a', b'a')\n"
      "d = bytearray(open('a.zip', 'rb').read())\n"
      "end = d.rindex(b'PK\\x05\\x06')\n"
      "struct.pack_into('<I', d, end + 12, 0x7fffffff)\n"
      "open('outside.zip', 'wb').write(d)\n");
  const auto result = sluice("zip -t -f outside.zip");
  EXPECT_EQ(result.status, 1) << describe(result);
  EXPECT_NE(result.err.find("outside.zip: the central directory lies outside the file"), std::string::npos)
      << result.err;
}

// An end record that claims a central directory of 512 MiB, over a sparse file of zeros: the
// first record is refused where it starts, after a window of the directory was read, not after
// all it claims (which took that much memory; 6 GB ended the program on an uncaught bad_alloc).
TEST(ZipLibrary, ADirectoryClaimingGigabytesCostsAWindowOfMemory) {
  testing::ScratchDir dir;
  constexpr std::uint64_t kClaimed = 512ull * 1024 * 1024;
  const fs::path path = dir / "claims.zip";
  {
    std::uint8_t end[22] = {'P', 'K', 5, 6};
    for (int i = 0; i < 4; ++i) end[12 + i] = static_cast<std::uint8_t>(kClaimed >> (8 * i));  // directory bytes
    end[10] = 1;                                                                               // one member
    testing::write_file(path, Bytes{});
    fs::resize_file(path, kClaimed + sizeof end);
    std::FILE* file = std::fopen(path.c_str(), "r+b");
    ASSERT_NE(file, nullptr);
    std::fseek(file, static_cast<long>(kClaimed), SEEK_SET);
    std::fwrite(end, 1, sizeof end, file);
    std::fclose(file);
  }
  const long before = testing::peak_rss_kib();
  FdSource archive(path.string());
  try {
    list_zip(archive, [](const ZipEntry&) {});
    ADD_FAILURE() << "a directory of zeros was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.offset(), std::optional<std::uint64_t>{0}) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad central directory record"), std::string::npos) << e.what();
  }
  EXPECT_LT(testing::peak_rss_kib() - before, 64 * 1024) << "KiB of peak RSS growth";
}

// A member's deflate data is decoded inside a gzip header and trailer made for it: its damage is
// reported as the archive holds it, deflate data, not as a gzip member the user never had.
// A file read at offsets, counting the reads and their bytes.
class CountingSource final : public ByteSource {
 public:
  explicit CountingSource(const fs::path& path) : file_(path.string()) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override { return file_.read(dst, max_bytes); }
  const std::string& name() const override { return file_.name(); }
  std::optional<std::uint64_t> size() const override { return file_.size(); }
  bool random_access() const override { return true; }
  std::size_t read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) override {
    ++reads;
    const std::size_t got = file_.read_at(offset, dst, max_bytes);
    bytes += got;
    return got;
  }
  std::uint64_t reads = 0, bytes = 0;

 private:
  FdSource file_;
};

// Local headers are read in archive order through a window that moves forward: an archive whose
// directory lists its 3,000 members backwards reads as one in order does, little more than its
// size in far fewer reads than a read a member (a window read each way took 64 KiB a member:
// 190 MB for this 270 KB archive).
TEST_F(ZipTest, LocalHeadersInAnyOrderCostAboutTheArchivesSizeInReads) {
  python(
      "import zipfile, struct\n"
      "with zipfile.ZipFile('ordered.zip', 'w', zipfile.ZIP_DEFLATED) as z:\n"
      "  for i in range(3000): z.writestr(f'dir/member-{i:05}.txt', f'contents of member {i}\\n' * 3)\n"
      "d = open('ordered.zip', 'rb').read()\n"
      "end = d.rindex(b'PK\\x05\\x06')\n"
      "cd = struct.unpack('<I', d[end+16:end+20])[0]\n"
      "records, at = [], cd\n"
      "while d[at:at+4] == b'PK\\x01\\x02':\n"
      "  n, e, c = struct.unpack('<HHH', d[at+28:at+34])\n"
      "  records.append(d[at:at+46+n+e+c])\n"
      "  at += 46 + n + e + c\n"
      "open('backwards.zip', 'wb').write(d[:cd] + b''.join(reversed(records)) + d[end:])\n");
  for (const char* name : {"ordered.zip", "backwards.zip"}) {
    SCOPED_TRACE(name);
    CountingSource source(dir_ / name);
    const ZipReader reader(source);
    ASSERT_EQ(reader.size(), 3000u);
    const std::uint64_t size = fs::file_size(dir_ / name);
    EXPECT_LT(source.bytes, 2 * size) << source.reads << " reads";
    EXPECT_LT(source.reads, 300u);
  }
  expect_ok(sluice("zip --test -f backwards.zip"));
  expect_ok(sluice("zip -x -f backwards.zip -C out"));
  EXPECT_EQ(get("out/dir/member-02999.txt"),
            testing::to_bytes(std::string("contents of member 2999\n") + "contents of member 2999\n" +
                              "contents of member 2999\n"));
}

// Records that name one local header twice overlap whatever the header holds: said before any
// local header is read. 2,000 records naming two headers of 128 KiB each read 262 MB, formatting a
// 64 KiB name for each (65,535 such records in 3.6 MB took 47 s).
TEST_F(ZipTest, RecordsNamingOneLocalHeaderTwiceAreRefusedBeforeAnyIsRead) {
  python(
      "import struct\n"
      "def local(name): return struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name),"
      " 65535) + name + bytes(65535)\n"
      "heads = [local(b'a' * 65535), local(b'b' * 65535)]\n"
      "offsets = [0, len(heads[0])]\n"
      "cd = b''.join(struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 0, 0, 0x21, 0, 0, 0, 1, 0, 0, 0, 0, 0,"
      " offsets[i % 2]) + b'n' for i in range(2000))\n"
      "body = heads[0] + heads[1]\n"
      "open('twice.zip', 'wb').write(body + cd + struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 2000, 2000, len(cd),"
      " len(body), 0))\n");
  CountingSource source(dir_ / "twice.zip");
  try {
    const ZipReader reader(source);
    ADD_FAILURE() << "an archive of overlapping members was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("overlap (the shape of a zip bomb)"), std::string::npos) << e.what();
  }
  EXPECT_LT(source.bytes, 2 * fs::file_size(dir_ / "twice.zip")) << source.reads << " reads";
}

// The reader keeps every member's entry (for the overlap check and the extraction in parallel),
// in a table of about 100 bytes a member: a vector of ZipEntry took 183 (366 MB for 2 million
// empty members, where the archive has 92 bytes of each). An archive written byte by byte
// (zipfile takes minutes for this many).
TEST_F(ZipTest, AMemberCostsTheReaderAboutAHundredBytes) {
  constexpr int kMembers = 400'000;
  python(fmt::format(R"(import struct
def write(path, n):
    local, central, at = [], [], 0
    for i in range(n):
        name = b'f%07d' % i
        local.append(struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name), 0) + name)
        central.append(struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 0x031e, 20, 0, 0, 0, 0x21, 0, 0, 0, len(name),
                                   0, 0, 0, 0, 0o100644 << 16, at) + name)
        at += 30 + len(name)
    directory = b''.join(central)
    with open(path, 'wb') as f:
        f.write(b''.join(local) + directory)
        f.write(struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, n & 0xffff, n & 0xffff, len(directory), at, 0))
write('one.zip', 1)
write('many.zip', {})
)",
                     kMembers));
  const long one = sluice_peak_kib("zip --test -f one.zip");
  const long many = sluice_peak_kib("zip --test -f many.zip");
  EXPECT_EQ(sh("unzip -tq many.zip").status, 0);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)  // their allocators keep freed memory
  EXPECT_LT((many - one) * 1024 / kMembers, 130) << "bytes of peak memory a member (" << many - one << " KiB)";
#else
  (void)one, (void)many;
#endif
}

TEST_F(ZipTest, DamagedDeflateDataIsNamedAsTheArchiveHoldsIt) {
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('a.zip', 'w', zipfile.ZIP_DEFLATED) as z:\n"
      "  z.writestr('text', open('/usr/include/stdio.h', 'rb').read() * 4)\n"
      "d = bytearray(open('a.zip', 'rb').read())\n"
      "d[30 + 4 + 3000] ^= 0x10\n"
      "open('bad.zip', 'wb').write(d)\n");
  const auto result = sluice("zip --test -f bad.zip");
  EXPECT_EQ(result.status, 1) << describe(result);
  EXPECT_NE(result.err.find("member 'text' (archive byte 0): corrupt deflate data"), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("gzip"), std::string::npos) << result.err;
}

TEST_F(ZipTest, LyingSizesAndBadChecksumsFailTheirMemberOnly) {
  python(
      "import zipfile, struct\n"
      "with zipfile.ZipFile('a.zip', 'w', zipfile.ZIP_DEFLATED) as z:\n"
      "  z.writestr('liar', b'abc' * 10000)\n"
      "  z.writestr('fine', b'fine')\n"
      "  z.writestr(zipfile.ZipInfo('crc'), b'stored data')\n"
      "  z.writestr('short', b'xyz' * 10000)\n"
      "  z.writestr('badcrc', b'q' * 5000)\n"
      "d = bytearray(open('a.zip', 'rb').read())\n"
      "end = d.rindex(b'PK\\x05\\x06')\n"
      "cd = struct.unpack('<I', d[end+16:end+20])[0]\n"
      "entries, at = {}, cd\n"  // central directory offsets by name
      "while d[at:at+4] == b'PK\\x01\\x02':\n"
      "  n, e, c = struct.unpack('<HHH', d[at+28:at+34])\n"
      "  entries[bytes(d[at+46:at+46+n])] = at\n"
      "  at += 46 + n + e + c\n"
      "def local_of(name): return struct.unpack('<I', d[entries[name]+42:entries[name]+46])[0]\n"
      "for name, size in ((b'liar', 1000), (b'short', 40000)):\n"  // declares 1000 bytes decoded; more than it holds
      "  struct.pack_into('<I', d, entries[name] + 24, size)\n"    // in both headers
      "  struct.pack_into('<I', d, local_of(name) + 22, size)\n"
      "local = local_of(b'badcrc')\n"
      "for crc_at in (entries[b'badcrc'] + 16, local + 14):\n"
      "  d[crc_at] ^= 1\n"
      "stored = d.index(b'stored data')\n"
      "d[stored] ^= 1\n"
      "open('bad.zip', 'wb').write(d)\n");
  const auto result = sluice("zip -x -f bad.zip -C out");
  EXPECT_EQ(result.status, 2) << describe(result);
  EXPECT_NE(result.err.find("member 'liar' (archive byte 0): decodes to 30000 bytes, the archive declares 1000"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("member 'crc'"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("CRC-32"), std::string::npos) << result.err;
  // A deflated member's checks are the archive's declarations, in the archive's words (they said
  // "incorrect length check (ISIZE mismatch)", gzip's, from the frame the member is decoded in).
  EXPECT_NE(result.err.find("member 'short' (archive byte 168)"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("decodes to 30000 bytes, the archive declares 40000"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("corrupt deflate data: not the CRC-32 the archive declares"), std::string::npos)
      << result.err;
  EXPECT_EQ(result.err.find("ISIZE"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(dir_ / "out/liar"));
  EXPECT_FALSE(fs::exists(dir_ / "out/crc"));
  EXPECT_FALSE(fs::exists(dir_ / "out/short"));
  EXPECT_FALSE(fs::exists(dir_ / "out/badcrc"));
  EXPECT_EQ(dir_.listing().size(), 3u);  // a.zip, bad.zip, out: no temporaries left
  EXPECT_EQ(get("out/fine"), testing::to_bytes(std::string("fine")));
  const auto test = sluice("zip --test -f bad.zip");
  EXPECT_EQ(test.status, 1) << describe(test);
  EXPECT_NE(test.err.find("4 of 5 members failed"), std::string::npos) << test.err;
  // Only the MEMBERs given, as unzip -t takes them (the whole archive was tested, and a misspelt
  // member said nothing); one not found is named with its archive, exit 1.
  expect_ok(sluice("zip --test -f bad.zip fine"));
  expect_ok(sluice("zip --test -f bad.zip 'f*' --exclude crc"));
  const auto one = sluice("zip --test -f bad.zip fine liar");
  EXPECT_EQ(one.status, 1) << describe(one);
  EXPECT_NE(one.err.find("1 of 2 members failed"), std::string::npos) << one.err;
  const auto missing = sluice("zip --test -f bad.zip fine nothere");
  EXPECT_EQ(missing.status, 1) << describe(missing);
  EXPECT_NE(missing.err.find("bad.zip: nothere: not found in archive"), std::string::npos) << missing.err;
  EXPECT_EQ(missing.err.find("failed"), std::string::npos) << missing.err;
}

// A member whose declared compressed size runs past the end of its deflate stream: unzip and
// zipfile pass over the rest. The gzip frame the member is decoded in took those bytes for its
// trailer ("not the CRC-32 the archive declares"); a member past 8 MiB is decoded in parallel,
// whose run stops before its last output is written.
TEST_F(ZipTest, BytesAfterADeflateStreamArePassedOverAsUnzipDoes) {
  python(
      "import os, struct, zlib\n"
      "def member(name, data, pad, crc=None, comp=None, size=None):\n"
      "  c = zlib.compressobj(6, zlib.DEFLATED, -15)\n"
      "  comp = (c.compress(data) + c.flush() if comp is None else comp) + pad\n"
      "  crc = zlib.crc32(data) if crc is None else crc\n"
      "  fields = (0x21, crc, len(comp), len(data) if size is None else size, len(name))\n"
      "  local = struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 8, 0, *fields, 0) + name\n"
      "  central = struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 20, 20, 0, 8, 0, *fields, 0, 0, 0, 0, 0, 0)\n"
      "  return local + comp, central, name\n"
      "text = b''.join(b'line %d of the member\\n' % i for i in range(450000))\n"
      "parts = [member(b'one', text[:5000], b'\\0'), member(b'junk', os.urandom(3000) + text[:9000], b'garbage!!'),\n"
      "         member(b'big', text, b'\\0' * 3), member(b'badcrc', text[:7000], b'\\0', crc=12345)]\n"
      // An empty deflate stream, a made-up gzip trailer and a gzip header, then "EVIL" deflated:
      // with the frame's trailer, two gzip members of which the second holds "EVIL". unzip
      // finds the empty stream (a bad CRC-32); so must we.
      "c = zlib.compressobj(6, zlib.DEFLATED, -15)\n"
      "evil = b'\\3\\0' + bytes(8) + bytes.fromhex('1f8b0800000000000003') + c.compress(b'EVIL') + c.flush()\n"
      "parts.append(member(b'twice', b'EVIL', b'', comp=evil))\n"
      "parts.append(member(b'longer', text[:3000], b'pad', size=3001))\n"  // a size one too large
      "out, central = b'', b''\n"
      "for local, c, name in parts:\n"
      "  central += c[:42] + struct.pack('<I', len(out)) + name\n"
      "  out += local\n"
      "eocd = struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 6, 6, len(central), len(out), 0)\n"
      "open('padded.zip', 'wb').write(out + central + eocd)\n");
  ASSERT_GT(fs::file_size(dir_ / "padded.zip"), 0u);
  const auto peer = sh("unzip -t padded.zip");
  EXPECT_NE(peer.out.find("badcrc                   bad CRC"), std::string::npos) << describe(peer);
  EXPECT_NE(peer.out.find("twice                    bad CRC"), std::string::npos) << describe(peer);
  for (const int threads : {1, 2}) {
    SCOPED_TRACE(threads);
    const auto test = sluice(fmt::format("zip --test -j{} -f padded.zip", threads));
    EXPECT_EQ(test.status, 1) << describe(test);
    EXPECT_NE(test.err.find("3 of 6 members failed"), std::string::npos) << test.err;
    EXPECT_NE(test.err.find("member 'badcrc'"), std::string::npos) << test.err;
    EXPECT_NE(test.err.find("member 'twice' (archive byte "), std::string::npos) << test.err;
    EXPECT_NE(test.err.find("decodes to 0 bytes, the archive declares 4"), std::string::npos) << test.err;
    EXPECT_NE(test.err.find("decodes to 3000 bytes, the archive declares 3001"), std::string::npos) << test.err;
    const std::string out = fmt::format("out{}", threads);
    const auto extract = sluice(fmt::format("zip -x -j{} -f padded.zip -C {}", threads, out));
    EXPECT_EQ(extract.status, 2) << describe(extract);
    for (const char* name : {"one", "junk", "big"}) {
      EXPECT_EQ(get(fmt::format("{}/{}", out, name)),
                testing::to_bytes(sh(fmt::format("unzip -p padded.zip {}", name)).out))
          << name;
    }
    EXPECT_FALSE(fs::exists(dir_ / out / "badcrc"));
    EXPECT_FALSE(fs::exists(dir_ / out / "twice"));
  }
}

TEST_F(ZipTest, EncryptedAndUnsupportedMembersAreNamed) {
  put("secret.txt", testing::to_bytes(std::string("secret")));
  expect_ok(sh("zip -q -P password enc.zip secret.txt"));
  const auto encrypted = sluice("zip -x -f enc.zip -C out");
  EXPECT_EQ(encrypted.status, 2) << describe(encrypted);
  EXPECT_NE(encrypted.err.find("member 'secret.txt' (archive byte 0): encrypted (not supported)"), std::string::npos)
      << encrypted.err;
  // Deflate64 (7-Zip writes it; no Debian library decodes it): the member is named.
  put("d64.txt", testing::text_bytes(100'000, 5));  // big enough not to be stored
  expect_ok(sh("7zz a -tzip -mm=Deflate64 d64.zip d64.txt >/dev/null"));
  const auto deflate64 = sluice("zip --test -f d64.zip");
  EXPECT_EQ(deflate64.status, 1) << describe(deflate64);
  EXPECT_NE(deflate64.err.find("member 'd64.txt' (archive byte 0): compression method deflate64 is not supported"),
            std::string::npos)
      << deflate64.err;
}

TEST_F(ZipTest, ReadsBzip2LzmaAndXzMembers) {
  make_tree();
  // 7-Zip writes all three (LZMA with its end marker); Python's zipfile bzip2 and LZMA.
  for (const char* method : {"BZip2", "LZMA", "XZ"}) {
    SCOPED_TRACE(method);
    const std::string archive = fmt::format("{}.zip", method);
    expect_ok(sh(fmt::format("7zz a -tzip -mm={} -snl {} src >/dev/null", method, archive)));
    expect_ok(sluice("zip --test -f " + archive));
    expect_ok(sluice(fmt::format("zip -x -f {} -C out-{}", archive, method)));
    expect_ok(sh(fmt::format("diff -r src out-{}/src", method)));
  }
  python(
      "import zipfile\n"
      "for name, method in (('py-bz2.zip', zipfile.ZIP_BZIP2), ('py-lzma.zip', zipfile.ZIP_LZMA)):\n"
      "  with zipfile.ZipFile(name, 'w', method) as z: z.write('src/big.txt')\n");
  for (const char* archive : {"py-bz2.zip", "py-lzma.zip"}) {
    expect_ok(sluice(fmt::format("zip -x -f {} -C out-{}", archive, archive)));
    expect_ok(sh(fmt::format("cmp src/big.txt out-{}/src/big.txt", archive)));
  }
  // A corrupt bzip2 member is that member's error.
  expect_ok(sh(fmt::format(
      "{} -c {}", kPython,
      quote("import zipfile\n"
            "with zipfile.ZipFile('bad-bz2.zip', 'w', zipfile.ZIP_BZIP2) as z: z.writestr('b', b'b' * 100000)\n"
            "d = bytearray(open('bad-bz2.zip', 'rb').read()); d[60] ^= 0xff\n"
            "open('bad-bz2.zip', 'wb').write(d)"))));
  const auto bad = sluice("zip --test -f bad-bz2.zip");
  EXPECT_EQ(bad.status, 1) << describe(bad);
  EXPECT_NE(bad.err.find("member 'b' (archive byte 0)"), std::string::npos) << bad.err;
}

TEST_F(ZipTest, ReadingAPipeIsAClearError) {
  expect_ok(sh("printf x > f && zip -q a.zip f"));
  const auto result = sh(testing::sluice() + " zip -t -f - < <(cat a.zip)");
  EXPECT_EQ(result.status, 2) << describe(result);
  EXPECT_NE(result.err.find("not a pipe"), std::string::npos) << result.err;
}

TEST_F(ZipTest, Cp437NamesAsUnzipReadsThem) {
  // A name from DOS (host 0, no UTF-8 flag): 0x82 is 'é' in code page 437.
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('dos.zip', 'w') as z:\n"
      "  i = zipfile.ZipInfo('caf\\u00e9'); i.create_system = 0; z.writestr(i, b'x')\n");
  const auto listed = sluice("zip -t -f dos.zip");
  expect_ok(listed);
  EXPECT_EQ(listed.out, "caf\xc3\xa9\n");
}

// Members from DOS or Windows: '\' separators read as '/' (so '..\' is refused as '../' is), and
// no recorded permissions: the umask trims the default even for root, as unzip gives 0644/0755.
TEST_F(ZipTest, WindowsMembersGetSeparatorsAndModesAsUnzipGivesThem) {
  python(
      "import zipfile\n"
      "with zipfile.ZipFile('win.zip', 'w') as z:\n"
      "  i = zipfile.ZipInfo('dir/'); i.create_system = 0; i.external_attr = 0x10; z.writestr(i, b'')\n"
      "  i = zipfile.ZipInfo('dir\\\\file.txt'); i.create_system = 0; i.external_attr = 0x20; z.writestr(i, b'x')\n"
      "  i = zipfile.ZipInfo('..\\\\..\\\\slip.txt'); i.create_system = 0; z.writestr(i, b'x')\n"
      "  i = zipfile.ZipInfo('RO.TXT'); i.create_system = 0; i.external_attr = 0x21; z.writestr(i, b'ro')\n");
  const auto result = sh("umask 027 && " + testing::sluice() + " zip -x -f win.zip -C out");
  EXPECT_EQ(result.status, 2) << describe(result);
  EXPECT_NE(result.err.find("refusing member '../../slip.txt'"), std::string::npos) << result.err;
  EXPECT_TRUE(fs::is_regular_file(dir_ / "out/dir/file.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "slip.txt"));
  struct stat status {};
  ASSERT_EQ(::stat((dir_ / "out/dir/file.txt").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0640u);
  ASSERT_EQ(::stat((dir_ / "out/dir").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0750u);
  // The read-only attribute: read-only, as unzip and bsdtar extract it (it was writable).
  ASSERT_EQ(::stat((dir_ / "out/RO.TXT").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0440u);
  ASSERT_EQ(sh("umask 027 && unzip -q win.zip RO.TXT -d unzipped").status, 0);
  ASSERT_EQ(::stat((dir_ / "unzipped/RO.TXT").c_str(), &status), 0);
  EXPECT_EQ(status.st_mode & 07777, 0440u);
}

// The library in one process (the ThreadSanitizer job runs these): an archive of files of one and
// of several chunks written on 2 threads into memory (data descriptors) and into a file (sizes
// patched), read back, extracted and transcoded on 2 threads.
TEST(ZipLibrary, RoundTripInProcessOnTwoThreads) {
  testing::ScratchDir dir;
  fs::create_directories(dir / "in");
  for (int i = 0; i < 40; ++i)
    testing::write_file(dir / fmt::format("in/{:02}.txt", i), testing::text_bytes(5000 + i * 997, i));
  testing::write_file(dir / "in/big.txt", testing::text_bytes(600'000, 99));
  ZipCreateOptions options;
  options.directory = dir.path().string();
  options.threads = 2;
  options.chunk_bytes = 64 * 1024;
  MemorySink memory;
  const ZipStats created = create_zip({"in"}, memory, options);
  EXPECT_EQ(created.entries, 42u);
  {
    OutputFile file((dir / "a.zip").string(), false);
    create_zip({"in"}, file, options);
    file.commit(false);
  }
  for (const auto& bytes : {testing::to_bytes(memory.buffer()), testing::read_file(dir / "a.zip")}) {
    MemorySource source(testing::view(bytes));
    const ZipTestStats tested = test_zip(source, 2);
    EXPECT_EQ(tested.entries, 42u);
    EXPECT_EQ(tested.failed, 0u);
  }
  FdSource archive((dir / "a.zip").string());
  ZipExtractOptions extract;
  extract.directory = (dir / "out").string();
  extract.threads = 2;
  const ZipExtractStats extracted = extract_zip(archive, extract);
  EXPECT_EQ(extracted.extracted, 42u);
  EXPECT_EQ(testing::read_file(dir / "out/in/big.txt"), testing::read_file(dir / "in/big.txt"));
  EXPECT_EQ(testing::read_file(dir / "out/in/17.txt"), testing::read_file(dir / "in/17.txt"));
  extract.directory = (dir / "gz").string();
  CompressOptions gzip;
  gzip.codec = "gzip";
  const ZipExtractStats transcoded = transcode_zip(archive, extract, gzip);
  EXPECT_EQ(transcoded.extracted, 42u);
  EXPECT_EQ(testing::to_bytes(decompress_buffer(testing::view(testing::read_file(dir / "gz/in/big.txt.gz")))),
            testing::read_file(dir / "in/big.txt"));
}

// A write that fails, or a stop, while many pieces are in flight: that error, once, and nothing
// of the pieces in flight left behind (the ASan job's LeakSanitizer checks the last part).
TEST(ZipLibrary, AFailedWriteOrAStopEndsTheRunWithThatError) {
  testing::ScratchDir dir;
  fs::create_directories(dir / "in");
  for (int i = 0; i < 30; ++i)
    testing::write_file(dir / fmt::format("in/{:02}.txt", i), testing::text_bytes(200'000 + i, i));
  ZipCreateOptions options;
  options.directory = dir.path().string();
  options.threads = 2;
  options.chunk_bytes = 64 * 1024;
  for (const std::size_t limit : {std::size_t{0}, std::size_t{100'000}, std::size_t{1'000'000}}) {
    testing::FailingSink sink(limit, "failing.zip");
    try {
      create_zip({"in"}, sink, options);
      ADD_FAILURE() << "a sink failing after " << limit << " bytes was not reported";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kIo) << e.what();
      EXPECT_NE(e.detail().find("No space left"), std::string::npos) << e.what();
    }
  }
  std::stop_source stop;  // asked for once the third member is written: the rest are in flight
  options.stop = stop.get_token();
  int entries = 0;
  options.on_entry = [&](const ZipEntry&) {
    if (++entries == 3) stop.request_stop();
  };
  MemorySink memory;
  try {
    create_zip({"in"}, memory, options);
    ADD_FAILURE() << "a stopped run was not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCancelled) << e.what();
  }
  EXPECT_EQ(entries, 3);
}

// A tar's files compressed one by one: members and exclusions apply to the names in the archive,
// and a hard link to a compressed file links to the compressed file.
TEST(TarTranscode, PicksByArchiveNamesAndLinksToTheCompressedFile) {
  testing::ScratchDir dir;
  fs::create_directories(dir / "t/keep");
  testing::write_file(dir / "t/keep/a.txt", testing::text_bytes(10000, 1));
  testing::write_file(dir / "t/keep/skip.log", testing::text_bytes(100, 2));
  testing::write_file(dir / "t/other.txt", testing::text_bytes(100, 3));
  fs::create_hard_link(dir / "t/keep/a.txt", dir / "t/keep/b.txt");
  MemorySink tar;
  TarCreateOptions create;
  create.directory = dir.path().string();
  create_tar({"t"}, tar, "", CompressOptions{}, create);
  MemorySource source(tar.buffer().view());
  TarExtractOptions extract;
  extract.directory = (dir / "out").string();
  extract.members = {"t/keep", "t/missing"};
  extract.exclude = {"*.log"};
  CompressOptions zstd;
  zstd.codec = "zstd";
  const TarExtractStats stats = transcode_tar(source, extract, zstd);
  EXPECT_EQ(stats.members_not_found, std::vector<std::string>{"t/missing"});
  EXPECT_TRUE(fs::exists(dir / "out/t/keep/a.txt.zst"));
  EXPECT_FALSE(fs::exists(dir / "out/t/keep/skip.log.zst"));
  EXPECT_FALSE(fs::exists(dir / "out/t/other.txt.zst"));
  ASSERT_TRUE(fs::exists(dir / "out/t/keep/b.txt.zst"));
  EXPECT_TRUE(fs::equivalent(dir / "out/t/keep/a.txt.zst", dir / "out/t/keep/b.txt.zst"));
  EXPECT_EQ(testing::to_bytes(decompress_buffer(testing::view(testing::read_file(dir / "out/t/keep/a.txt.zst")))),
            testing::read_file(dir / "t/keep/a.txt"));
}

// Every truncation and single-bit flip of a small archive: an Error or a correct reading, never a
// crash (the sanitizer builds run this too).
TEST(ZipDamage, EveryTruncationAndBitFlipIsAnErrorOrCorrect) {
  testing::ScratchDir dir;
  testing::write_file(dir / "a.txt", testing::text_bytes(3000, 3));
  testing::write_file(dir / "b.bin", testing::random_bytes(100, 4));
  MemorySink sink;
  ZipCreateOptions options;
  options.directory = dir.path().string();
  create_zip({"a.txt", "b.bin"}, sink, options);
  const Bytes archive = testing::to_bytes(sink.buffer());
  const auto check = [](const Bytes& bytes) {
    MemorySource source(testing::view(bytes));
    try {
      const ZipTestStats stats = test_zip(source, 2, [](const ZipEntry&, const Error&) {});
      return stats.entries - stats.failed;
    } catch (const Error&) {
      return std::uint64_t{0};
    }
  };
  EXPECT_EQ(check(archive), 2u);
  for (std::size_t size = 0; size < archive.size(); ++size) {
    check(Bytes(archive.begin(), archive.begin() + static_cast<std::ptrdiff_t>(size)));
  }
  for (std::size_t at = 0; at < archive.size(); ++at) {
    Bytes flipped = archive;
    flipped[at] ^= static_cast<std::uint8_t>(1u << (at % 8));
    check(flipped);
  }
}

}  // namespace
}  // namespace sluice
