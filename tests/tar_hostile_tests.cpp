// Archives no well-behaved tar writes: hostile ones (names with NUL bytes or terminal escapes,
// metadata built to grow memory or time) and odd ones other tars still read (lenient pax values,
// links with data). Each is built byte by byte here, and where GNU tar and bsdtar read it the
// same way, sluice must read it that way too.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/tar.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::describe;
using testing::quote;

using Records = std::vector<std::pair<std::string, std::string>>;

// An archive written block by block: ustar headers with whatever fields a test wants, pax headers
// with any records, contents.
class RawTar {
 public:
  RawTar& header(const std::string& name, char type, std::uint64_t size = 0, const std::string& link = {},
                 std::uint32_t mode = 0644) {
    std::string block(512, '\0');
    block.replace(0, std::min<std::size_t>(name.size(), 100), name.substr(0, 100));
    put(block, 100, fmt::format("{:07o}", mode));
    put(block, 108, fmt::format("{:07o}", 0));
    put(block, 116, fmt::format("{:07o}", 0));
    put(block, 124, fmt::format("{:011o}", size));
    put(block, 136, fmt::format("{:011o}", mtime));
    block[156] = type;
    block.replace(157, std::min<std::size_t>(link.size(), 100), link.substr(0, 100));
    block.replace(257, 8, std::string("ustar\0" "00", 8));
    put(block, 265, "root");
    put(block, 297, "root");
    block.replace(148, 8, 8, ' ');
    unsigned sum = 0;
    for (const char c : block) sum += static_cast<unsigned char>(c);
    put(block, 148, fmt::format("{:06o}", sum));
    block[155] = ' ';
    append(block);
    return *this;
  }
  // Content, padded to the block.
  RawTar& data(const std::string& bytes) {
    append(bytes);
    append(std::string((512 - bytes.size() % 512) % 512, '\0'));
    return *this;
  }
  RawTar& pax(const Records& records, char type = 'x') {
    std::string body;
    for (const auto& [key, value] : records) body += record(key, value);
    return header("PaxHeaders/entry", type, body.size()).data(body);
  }
  RawTar& file(const std::string& name, const std::string& content) { return header(name, '0', content.size()).data(content); }
  RawTar& end() {
    append(std::string(1024, '\0'));
    return *this;
  }
  const Bytes& bytes() const { return bytes_; }

  std::int64_t mtime = 1000000000;  // of the headers from here on

  // "LEN key=value\n", LEN counting itself.
  static std::string record(const std::string& key, const std::string& value) {
    const std::size_t rest = key.size() + value.size() + 3;  // ' ', '=', '\n'
    std::size_t length = rest + 1;
    while (std::to_string(length).size() + rest != length) ++length;
    return fmt::format("{} {}={}\n", length, key, value);
  }

 private:
  static void put(std::string& block, std::size_t at, const std::string& text) { block.replace(at, text.size(), text); }
  void append(const std::string& text) { bytes_.insert(bytes_.end(), text.begin(), text.end()); }
  Bytes bytes_;
};

class TarHostile : public testing::CommandTest {
 protected:
  testing::CommandResult sluice_tar(const std::string& args) { return sh(testing::sluice() + " tar " + args); }
  void put_tar(const std::string& name, const RawTar& tar) { put(name, tar.bytes()); }
  // `tar -t` of GNU tar, bsdtar and sluice, each as one line per entry.
  struct Listings {
    std::string gnu, bsd, ours;
  };
  Listings list_with_each(const std::string& archive) {
    return {sh("LC_ALL=C.UTF-8 tar -tf " + archive + " 2>/dev/null").out,
            sh("LC_ALL=C.UTF-8 bsdtar -tf " + archive + " 2>/dev/null").out,
            sluice_tar("-t -f " + archive).out};
  }
};

// ---- Security ----

// A name of 400 KB ("a/" 200,000 times) with --exclude or member names: matching costs its
// length, not its length squared (each tail was matched: 80,000 components took 3.8 s, and the
// 8 MiB a pax name may have would take hours); it fails by its length, as without them.
// Refusals name the archive, and a malformed pax record its header's byte (not its data's end).
TEST_F(TarHostile, LongNamesAreMatchedInLinearTimeAndMessagesNameTheArchive) {
  std::string deep;
  for (int i = 0; i < 200000; ++i) deep += "a/";
  deep += "f";
  put_tar("deep.tar",
          RawTar().file("kept.o", "o").pax({{"path", deep}}).file("placeholder", "x").file("../up", "u").end());
  auto r = sluice_tar("-x -f deep.tar -C out --exclude '*.o'");
  EXPECT_EQ(r.status, 2) << r.err.substr(0, 300);
  EXPECT_NE(r.err.find("sluice: deep.tar: cannot extract 'a/a/a/"), std::string::npos) << r.err.substr(0, 300);
  EXPECT_NE(r.err.find("sluice: deep.tar: refusing entry '../up' (archive byte "), std::string::npos)
      << r.err.substr(0, 300);
  EXPECT_FALSE(fs::exists(dir_ / "out/kept.o"));
  r = sluice_tar("-x -f deep.tar -C out a/a/a");
  EXPECT_EQ(r.status, 2) << r.err.substr(0, 300);
  EXPECT_EQ(r.err.find("not found in archive"), std::string::npos) << r.err.substr(0, 300);
  EXPECT_EQ(r.err.find("'../up'"), std::string::npos) << r.err.substr(0, 300);

  // Under an excluded directory, a name past PATH_MAX is still excluded (listed, -O, extracted),
  // as GNU tar excludes it.
  std::string under = "proj/node_modules";
  for (int i = 0; i < 1000; ++i) under += "/dir" + std::to_string(i);  // 7,000 bytes
  put_tar("under.tar", RawTar().file("proj/ok.txt", "ok").pax({{"path", under + "/evil.txt"}}).file("x", "evil").end());
  for (const char* run : {"-t -f under.tar", "-x -O -f under.tar", "-x -f under.tar -C under"}) {
    r = sluice_tar(std::string(run) + " --exclude node_modules");
    EXPECT_EQ(r.status, 0) << run << ": " << r.err.substr(0, 300);
    EXPECT_EQ(r.out.find("evil"), std::string::npos) << run;
  }

  RawTar bad;
  bad.file("first", "1").header("PaxHeaders/entry", 'x', 10).data("99 path=x\n").file("second", "2").end();
  put_tar("bad-pax.tar", bad);
  r = sluice_tar("-x -f bad-pax.tar -C out");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("of the extended header at archive byte 1024"), std::string::npos) << r.err;
}

// A transcoded tree is a store of compressed files that others are served from: an upload's
// symbolic link "x.gz -> /etc/shadow", or one that climbs with "..", was made there, and a FIFO
// (a reader opening it waits for ever). They are refused (exit 2), links that only go down are
// made; tar -x still makes them all, as GNU tar does.
TEST_F(TarHostile, TranscodingMakesNoLinkOutOfTheTreeAndNoFifo) {
  ASSERT_EQ(sh("mkdir -p src/sub && echo data > src/a.txt && ln -s a.txt src/down && ln -s /etc/passwd src/x.gz && "
               "ln -s ../../outside src/sub/up && ln -s sub/../a.txt src/round && mkfifo src/pipe && "
               "tar -C src -cf t.tar a.txt down x.gz sub pipe round && cd src && zip -qy ../z.zip a.txt down x.gz")
                .status,
            0);
  auto r = sh(testing::sluice() + " transcode t.tar --output-dir store -F gzip");
  EXPECT_EQ(r.status, 2) << describe(r);
  for (const char* refused : {"'x.gz'", "'sub/up'", "'round'"}) {
    EXPECT_NE(r.err.find(std::string(refused) + " (archive byte"), std::string::npos) << refused << ": " << r.err;
  }
  EXPECT_NE(r.err.find("symbolic link to '/etc/passwd' may lead out of the tree"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not a file (a tree of compressed files holds no FIFO or device)"), std::string::npos) << r.err;
  // A link to a file that was compressed links to its compressed file, renamed with it.
  EXPECT_EQ(sh("cd store && find . | sort").out, ".\n./a.txt.gz\n./down.gz\n./sub\n");
  EXPECT_EQ(sh("readlink store/down.gz").out, "a.txt.gz\n");
  r = sh(testing::sluice() + " transcode z.zip --output-dir zstore -F gzip");
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_NE(r.err.find("symbolic link to '/etc/passwd' may lead out of the tree"), std::string::npos) << r.err;
  EXPECT_EQ(sh("cd zstore && find . | sort").out, ".\n./a.txt.gz\n./down.gz\n");
  r = sluice_tar("-x -f t.tar -C plain");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(sh("cd plain && find . | sort").out, ".\n./a.txt\n./down\n./pipe\n./round\n./sub\n./sub/up\n./x.gz\n");
}

// A bomb of directories: names of many components make a directory each, which --max-output
// did not count (ten entries of 2,040 components, 328 bytes of .tar.gz, made 20,421 directories
// and 80 MB of disk under --max-output 1K). Each directory made counts as 4096 bytes, one that
// exists already as nothing; zip counts its members' directories before anything is written.
TEST_F(TarHostile, MaxOutputCountsTheDirectoriesEntriesMake) {
  ASSERT_EQ(sh("python3 -c \"import tarfile, zipfile\n"
               "names = ['d%d/' % n + 'a/' * 59 for n in range(3)]\n"
               "with tarfile.open('deep.tar.gz', 'w:gz') as t:\n"
               "    for name in names:\n"
               "        i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; t.addfile(i)\n"
               "with zipfile.ZipFile('deep.zip', 'w') as z:\n"
               "    for name in names: z.writestr(name, b'')\n"
               "    z.writestr('d0/x', b'12345')\n\"")
                .status,
            0);
  auto r = sluice_tar("-x -f deep.tar.gz -C out --max-output 100K");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("would take the output past the limit of 102400 bytes set for this run (102400 written before "
                       "it; a directory counts as 4096 bytes)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(sh("find out -mindepth 1 -type d | wc -l").out, "25\n");
  r = sluice_tar("-x -f deep.tar.gz -C fits --max-output 737280");  // 180 directories exactly
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(sh("find fits -mindepth 1 -type d | wc -l").out, "180\n");
  r = sluice_tar("-x -f deep.tar.gz -C fits --max-output 4K");  // all there already: nothing made
  EXPECT_EQ(r.status, 0) << describe(r);
  r = sluice_tar("-x -f deep.tar.gz -C short --max-output 737279");
  EXPECT_EQ(r.status, 1) << describe(r);

  r = sh(testing::sluice() + " zip -x -f deep.zip -C zout --max-output 100K");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("declare 5 bytes of files and 180 directories (4096 bytes each)"), std::string::npos) << r.err;
  EXPECT_EQ(sh("find zout -mindepth 1 | wc -l").out, "0\n");
  r = sh(testing::sluice() + " zip -x -f deep.zip -C zfits --max-output 737285");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(get("zfits/d0/x"), testing::to_bytes(std::string("12345")));

  // Zip counts directories as the extractor makes them: "./e/f/", "e//f/" and "e/f/" are two.
  ASSERT_EQ(sh("python3 -c \"import zipfile\n"
               "with zipfile.ZipFile('spelled.zip', 'w') as z:\n"
               "    for name in ['./e/f/x', 'e//f/y', 'e/f/z']: z.writestr(name, b'1')\n\"")
                .status,
            0);
  r = sh(testing::sluice() + " zip -x -f spelled.zip -C spelled --max-output 8195");  // 2 directories, 3 bytes
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(sh("cd spelled && find . | sort").out, ".\n./e\n./e/f\n./e/f/x\n./e/f/y\n./e/f/z\n");
  r = sh(testing::sluice() + " zip -x -f spelled.zip -C tight --max-output 8194");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("declare 3 bytes of files and 2 directories (4096 bytes each)"), std::string::npos) << r.err;
}

// A bomb: 48 MiB of zeros packed by GNU tar and gzip into 50 KB. --max-output stops the run
// before the file that would pass it is begun (nothing of it on disk, nor after it); what came
// before stays, as after a corrupt archive. -O counts alike, and the library counts a transcoded
// file's contents, not what they compress to. Without the limit, or with room, all is extracted.
TEST_F(TarHostile, MaxOutputStopsABombBeforeItsFileIsBegun) {
  put("src/1-first", testing::to_bytes(std::string(1000, 'f')));
  ASSERT_EQ(sh("head -c 50331648 /dev/zero > src/2-zeros && echo last > src/3-last && "
               "tar -C src -czf bomb.tar.gz 1-first 2-zeros 3-last")
                .status,
            0);
  ASSERT_LT(fs::file_size(dir_ / "bomb.tar.gz"), 200'000u);
  auto r = sluice_tar("-x -f bomb.tar.gz -C out --max-output 10M");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_EQ(r.err,
            "sluice: bomb.tar.gz: '2-zeros' (archive byte 1536) holds 50331648 bytes: the files would exceed the "
            "limit of 10485760 bytes set for this run (1000 written before it)\n");
  EXPECT_EQ(sh("ls -A out").out, "1-first\n");  // no temporary left beside it either

  r = sluice_tar("-x -O -f bomb.tar.gz --max-output 10M");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_EQ(r.out, std::string(1000, 'f'));
  EXPECT_NE(r.err.find("bomb.tar.gz: '2-zeros' (archive byte 1536) holds 50331648 bytes"), std::string::npos) << r.err;

  r = sluice_tar("-x -f bomb.tar.gz -C room --max-output 50332653");  // exactly the three files
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(fs::file_size(dir_ / "room/2-zeros"), 50331648u);
  EXPECT_EQ(get("room/3-last"), testing::to_bytes(std::string("last\n")));
  r = sluice_tar("-x -f bomb.tar.gz -C tight --max-output 50332652");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_FALSE(fs::exists(dir_ / "tight/3-last"));
  // Usage errors, before the archive is opened: no size, 0 (which would be no limit), a size past
  // 64 bits (17179869184G wrapped to 0), and the limit where nothing is extracted.
  for (const char* args : {"-x -f bomb.tar.gz -C out --max-output 10X", "-x -f bomb.tar.gz -C out --max-output 0",
                           "-x -f bomb.tar.gz -C out --max-output 17179869184G", "-t -f bomb.tar.gz --max-output 1M",
                           "-c -f new.tar --max-output 1M src"}) {
    r = sluice_tar(args);
    EXPECT_EQ(r.status, 2) << args << ": " << describe(r);
  }
  EXPECT_FALSE(fs::exists(dir_ / "new.tar"));

  FdSource source((dir_ / "bomb.tar.gz").string());
  TarExtractOptions options;
  options.directory = (dir_ / "tx").string();
  options.max_output_bytes = 10 << 20;
  CompressOptions gzip;
  gzip.codec = "gzip";
  try {
    transcode_tar(source, options, gzip);
    ADD_FAILURE() << "a 48 MiB file transcoded under a 10 MiB limit";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kLimit);
    EXPECT_EQ(e.path(), (dir_ / "bomb.tar.gz").string());
  }
  EXPECT_EQ(sh("ls -A tx").out, "1-first.gz\n");
}

// An entry of a type no tar knows is read as a regular file, as POSIX asks, and told as it is
// extracted, as GNU tar tells it (exit 0; it was extracted without a word); not when listed or
// not selected. A contiguous file ('7') is a regular file.
TEST_F(TarHostile, AnEntryOfUnknownTypeIsAFileWithAWarning) {
  RawTar tar;
  tar.header("odd", 'Z', 3).data("abc").header("contiguous", '7', 3).data("def").end();
  put_tar("types.tar", tar);
  auto r = sluice_tar("-x -f types.tar -C out");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err,
            "sluice: warning: types.tar: entry 'odd' (archive byte 0) is of unknown type 'Z': extracted as a regular "
            "file\n");
  EXPECT_EQ(get("out/odd"), testing::to_bytes(std::string("abc")));
  EXPECT_EQ(get("out/contiguous"), testing::to_bytes(std::string("def")));
  r = sluice_tar("-t -f types.tar");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  r = sluice_tar("-x -f types.tar -C out2 contiguous");
  EXPECT_EQ(r.err, "") << describe(r);
}

// A NUL inside a pax name: the check must see what the system calls see. "x/..\0y" passes a check
// on the whole string and is "x/.." (the destination) to mkdir and chmod.

TEST_F(TarHostile, NulInANameOrLinkTargetIsRefusedAndTheDestinationIsNeverChanged) {
  RawTar tar;
  tar.file("before.txt", "kept")
      .pax({{"path", std::string("x/..\0y", 6)}}).header("placeholder", '5', 0, {}, 0777)
      .pax({{"path", std::string("x/\0../..", 8)}}).header("placeholder", '5', 0, {}, 0777)
      .pax({{"path", std::string("z/..\0/f.txt", 11)}}).file("placeholder", "escaped?")
      .pax({{"linkpath", std::string("before.txt\0/../../etc/passwd", 28)}}).header("hard", '1')
      .pax({{"linkpath", std::string("ok\0/etc", 7)}}).header("sym", '2')
      .header("./", '5', 0, {}, 0777)
      .header(".", '5', 0, {}, 0777)
      .file("after.txt", "kept too")
      .end();
  put_tar("nul.tar", tar);
  fs::create_directories(dir_ / "dest");
  ASSERT_EQ(::chmod((dir_ / "dest").c_str(), 0750), 0);
  struct stat before {};
  ASSERT_EQ(::stat((dir_ / "dest").c_str(), &before), 0);

  for (const std::string options : {"", " -p", " -p --same-owner"}) {
    SCOPED_TRACE(options);
    const auto r = sluice_tar("-x" + options + " -f nul.tar -C dest");
    EXPECT_EQ(r.status, 2) << describe(r);
    struct stat after {};
    ASSERT_EQ(::stat((dir_ / "dest").c_str(), &after), 0);
    EXPECT_EQ(after.st_mode, before.st_mode);
    EXPECT_EQ(after.st_uid, before.st_uid);
    EXPECT_EQ(after.st_gid, before.st_gid);
    EXPECT_NE(after.st_mtim.tv_sec, 1000000000) << "the archive's time was applied to the destination";
    EXPECT_EQ(get("dest/before.txt"), testing::to_bytes(std::string("kept")));
    EXPECT_EQ(get("dest/after.txt"), testing::to_bytes(std::string("kept too")));
    // Every entry with a NUL refused, named with the NUL escaped as GNU tar shows it.
    for (const std::string name : {"x/..\\000y", "x/\\000../..", "z/..\\000/f.txt"}) {
      EXPECT_NE(r.err.find(fmt::format("refusing entry '{}' (archive byte ", name)), std::string::npos)
          << name << "\n" << r.err;
    }
    EXPECT_NE(r.err.find("hard link to 'before.txt\\000/../../etc/passwd': name contains a NUL byte"), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("): link target contains a NUL byte"), std::string::npos) << r.err;
    // Nothing else was made: no x, no z, no f.txt, no links.
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir_ / "dest")) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"after.txt", "before.txt"}));
  }
  // GNU tar and bsdtar see the same entries in the listing (with the names cut at the NUL).
  const auto r = sluice_tar("-t -f nul.tar");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "before.txt\nx/..\\000y\nx/\\000../..\nz/..\\000/f.txt\nhard\nsym\n./\n.\nafter.txt\n");
}

using testing::peak_rss_kib;

// Writes `count` pax headers of about `bytes` each, of records with keywords no tar knows and
// distinct in every header (what a map of every record would keep), into `reader`.
void write_unknown_records(TarReader& reader, char type, int count, std::size_t bytes) {
  const std::string sample = RawTar::record("LIBARCHIVE.xattr.k00.0000000", "v");
  for (int header = 0; header < count; ++header) {
    std::string body;
    body.reserve(bytes + sample.size());
    for (std::size_t i = 0; body.size() + sample.size() <= bytes; ++i) {
      body += RawTar::record(fmt::format("LIBARCHIVE.xattr.k{:02}.{:07}", header, i), "v");
    }
    RawTar tar;
    tar.header("PaxHeaders/x", type, body.size()).data(body);
    reader.write(testing::view(tar.bytes()));
  }
}

class Entries final : public TarEntryHandler {
 public:
  void begin(const TarEntry& entry) override { entries.push_back(entry); }
  void data(ByteView) override {}
  void end() override {}
  void warning(const std::string& message) override { warnings.push_back(message); }
  std::vector<TarEntry> entries;
  std::vector<std::string> warnings;
};

// Memory: local headers in a row, and global headers (which are never dropped), each of 8 MiB less a
// little, of distinct records. What is held is bounded whatever the sequence.
// ---- Pipelines that unpack (sluice run with an untar stage, sluice transcode --output-dir) ----

// The checksum manifest goes where the archive was extracted: a link the archive would put at its
// name (to a FIFO or a file outside) is refused, and the manifest never written through; the
// report reads the files the archive left, never what a later entry's link points to.
TEST_F(TarHostile, AnUnpackPipelinesManifestAndReportFollowNoLinkTheArchiveMade) {
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  put("secret", testing::to_bytes(std::string("outside, not to be read")));
  put("target", testing::to_bytes(std::string("outside, not to be written")));
  for (const std::string outside : {"fifo", "target"}) {
    SCOPED_TRACE(outside);
    RawTar tar;
    tar.file("a", "inside").header("a", '2', 0, (dir_ / "secret").string());  // a file, then a link in its place
    tar.file("b", "kept").header("SHA256SUMS", '2', 0, (dir_ / outside).string()).end();
    put_tar("hostile.tar", tar);
    put("p.toml", testing::to_bytes(fmt::format("[input]\npaths = [\"hostile.tar\"]\n[[stage]]\nkind = \"untar\"\n"
                                                "[[stage]]\nkind = \"checksum\"\n[output]\ndirectory = \"out-{}\"\n",
                                                outside)));
    // Opened for reading (no writer blocks), to catch what a write into it would leave.
    const int fifo = ::open((dir_ / "fifo").c_str(), O_RDONLY | O_NONBLOCK);
    ASSERT_GE(fifo, 0);
    const auto r = sh(testing::sluice() + " run -v p.toml");
    char byte = 0;
    EXPECT_LE(::read(fifo, &byte, 1), 0) << "the manifest went into the FIFO outside";
    ::close(fifo);
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_NE(r.err.find("refusing entry 'SHA256SUMS' (archive byte 2560): reserved for the run's manifest"),
              std::string::npos)
        << r.err;
    const fs::path out = dir_ / ("out-" + outside);
    EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(out / "SHA256SUMS"))) << describe(r);
    EXPECT_EQ(get("target"), testing::to_bytes(std::string("outside, not to be written")));
    const Bytes written = testing::read_file(out / "SHA256SUMS");
    const std::string manifest(written.begin(), written.end());
    EXPECT_EQ(manifest, sh("cd " + quote(out.string()) + " && sha256sum b").out);  // 'a' is a link now: not reported
    EXPECT_EQ(r.err.find("secret"), std::string::npos) << r.err;
  }
}

// Entries an untar stage refuses or cannot write are named and the run ends with a failure
// status, the others extracted, as `sluice tar -x` does (they passed silently, with status 0).
TEST_F(TarHostile, AnUnpackPipelineNamesWhatItRefusedAndFails) {
  RawTar tar;
  tar.file("../outside", "x")
      .file("/absolute", "y")
      .file("ok", "z")
      .pax({{"path", std::string(300, 'y')}})
      .file("placeholder", "3")
      .end();
  put_tar("bad.tar", tar);
  // Named as transcode_tar names them, with the extension of what they would have become.
  const std::vector<std::string> expected = {
      "sluice: bad.tar: refusing entry '../outside.gz' (archive byte 0): path contains '..'",
      "sluice: bad.tar: refusing entry '/absolute.gz' (archive byte 1024): absolute path",
      fmt::format("sluice: bad.tar: cannot extract '{0}.gz' (archive byte 3072): tx/{0}.gz: cannot create output: "
                  "File name too long",
                  std::string(300, 'y'))};
  auto r = sh(testing::sluice() + " transcode bad.tar --output-dir tx -F gzip");
  EXPECT_EQ(r.status, 2) << describe(r);
  for (const auto& line : expected) EXPECT_NE(r.err.find(line), std::string::npos) << line << "\n" << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "tx/ok.gz"));
  put("p.toml", testing::to_bytes(std::string("[input]\npaths = [\"bad.tar\"]\n[[stage]]\nkind = \"untar\"\n"
                                              "[output]\ndirectory = \"run\"\n")));
  r = sh(testing::sluice() + " run p.toml");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("refusing entry '../outside' (archive byte 0)"), std::string::npos) << r.err;
  EXPECT_EQ(get("run/ok"), testing::to_bytes(std::string("z")));
  EXPECT_FALSE(fs::exists(dir_ / "outside"));
}

TEST(TarHostileLibrary, MetadataHeldForEntriesIsBoundedWhateverTheSequenceOfHeaders) {
  Entries handler;
  TarReader reader(handler, "many-headers.tar");
  const long before = peak_rss_kib();
  write_unknown_records(reader, 'x', 12, 8 * 1024 * 1024 - 4096);
  reader.write(testing::view(RawTar().file("one", "1").bytes()));
  write_unknown_records(reader, 'g', 12, 8 * 1024 * 1024 - 4096);
  reader.write(testing::view(RawTar().file("two", "2").end().bytes()));
  reader.finish();
  ASSERT_EQ(handler.entries.size(), 2u);
  EXPECT_EQ(handler.entries[0].path, "one");
  EXPECT_EQ(handler.entries[1].path, "two");
#if !defined(__SANITIZE_ADDRESS__)  // ASan keeps freed blocks in quarantine
  EXPECT_LT(peak_rss_kib() - before, 48 * 1024) << "KiB of peak RSS growth for 192 MiB of pax records";
#else
  (void)before;
#endif
}

// An archive made as it is read: `next` gives its bytes piece by piece, and nothing at the end.
class GeneratedSource final : public ByteSource {
 public:
  GeneratedSource(std::string name, std::function<Bytes()> next) : name_(std::move(name)), next_(std::move(next)) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    if (at_ == piece_.size()) {
      piece_ = next_();
      at_ = 0;
    }
    const std::size_t n = std::min(max_bytes, piece_.size() - at_);
    std::copy_n(piece_.begin() + static_cast<std::ptrdiff_t>(at_), n, dst);
    at_ += n;
    return n;
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_;
  std::function<Bytes()> next_;
  Bytes piece_;
  std::size_t at_ = 0;
};

// Names 600 directories deep, taking turns among three trees: each entry's directories are
// opened one by one from the deepest known (the cache holds whole names, not every prefix; a
// prefix looked up by its whole path cost its depth, and a cache dropped as it filled sent every
// entry through that: 200 entries 2,000 deep took 50 s). The same tree as GNU tar's.
TEST_F(TarHostile, DeepNamesTakingTurnsExtractAsGnuTarExtractsThem) {
  RawTar tar;
  std::string chain;
  for (int depth = 0; depth < 600; ++depth) chain += "/d";
  for (int i = 0; i < 30; ++i) {
    const std::string path = fmt::format("{}{}/f{}", static_cast<char>('a' + i % 3), chain, i);
    tar.header("././@LongLink", 'L', path.size() + 1).data(path + '\0').file(path.substr(0, 100), fmt::format("{}", i));
  }
  put_tar("deep.tar", tar.end());
  const auto r = sluice_tar("-x -f deep.tar -C ours");
  EXPECT_EQ(r.status, 0) << describe(r);
  fs::create_directories(dir_ / "gnu");
  const auto gnu = sh("tar -xf deep.tar -C gnu");
  ASSERT_EQ(gnu.status, 0) << describe(gnu);
  const auto compared = sh("diff -r ours gnu && find ours -type f | wc -l");
  EXPECT_EQ(compared.status, 0) << describe(compared);
  EXPECT_EQ(compared.out, "30\n");
}

// Nothing is made for an entry the system cannot take or a hard link to nothing, as GNU tar
// makes nothing: a name longer than PATH_MAX (5,000 directories deep; they were made one by one
// before the file failed), and a link whose target's directories do not exist (they were made).
TEST_F(TarHostile, NoDirectoryIsMadeForANameTooLongOrALinkToNothing) {
  std::string deep;
  for (int i = 0; i < 5000; ++i) deep += "b/";
  deep += "f";
  RawTar tar;
  tar.header("././@LongLink", 'L', deep.size() + 1).data(deep + '\0').file(deep.substr(0, 100), "y");
  tar.header("h", '1', 0, "new/dir/t").file("kept", "k").end();
  put_tar("odd.tar", tar);
  const auto r = sluice_tar("-x -f odd.tar -C out");
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_NE(r.err.find("File name too long"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hard link target 'new/dir/t' was not extracted"), std::string::npos) << r.err;
  EXPECT_EQ(sh("cd out && find . | sort").out, ".\n./kept\n");
}

// Directories wait for their modes and times until the end, in memory that is bounded: past
// 16 MiB of them, all but the entry's own line get theirs at once (as GNU tar does for all), and
// the cache of directories known to be real ones is dropped past 8 MiB. Here 8,000 directories of
// 3.6 KB names, in one directory (an entry too) 14 deep: 83 MiB before, 23 now. All get their modes and
// times, and the one they are in, kept waiting as their ancestor, its own.
TEST_F(TarHostile, DirectoriesHeldForTheirModesAndTimesAreBounded) {
  constexpr int kDirectories = 8000;
  std::string top = "top";
  for (char c = 'a'; c < 'a' + 13; ++c) top += "/" + std::string(250, c);
  const auto name = [&](int i) { return fmt::format("{}/{:05}", top, i); };
  const auto entry = [](const std::string& path, std::uint32_t mode) {
    RawTar tar;
    tar.header("././@LongLink", 'L', path.size() + 1).data(path + '\0').header(path.substr(0, 100), '5', 0, {}, mode);
    return tar.bytes();
  };
  int next = -1;
  GeneratedSource source("many-directories.tar", [&] {
    const int i = next++;
    if (i < 0) return entry(top, 0755);
    if (i < kDirectories) return entry(name(i), 0750);
    return i == kDirectories ? RawTar().end().bytes() : Bytes{};
  });
  TarExtractOptions options;
  options.directory = (dir_ / "dest").string();
  const long before = peak_rss_kib();
  const TarExtractStats stats = extract_tar(source, options);
  EXPECT_EQ(stats.extracted, static_cast<std::uint64_t>(kDirectories + 1));
  EXPECT_EQ(stats.refused + stats.failed, 0u);
#if !defined(__SANITIZE_ADDRESS__)  // ASan keeps freed blocks in quarantine
  EXPECT_LT(peak_rss_kib() - before, 40 * 1024) << "KiB of peak RSS growth for 8,000 directories";
#else
  (void)before;
#endif
  for (const int i : {-1, 0, 1, kDirectories / 2, kDirectories - 1}) {
    struct stat status {};
    ASSERT_EQ(::stat((dir_ / "dest" / (i < 0 ? top : name(i))).c_str(), &status), 0) << i;
    EXPECT_EQ(status.st_mode & 07777, i < 0 ? 0755u : 0750u) << i;
    EXPECT_EQ(status.st_mtim.tv_sec, 1000000000) << i;
  }
}

// Transcoding to files (sluice transcode --output-dir) remembers which files it wrote compressed,
// so that a hard link to one gets the extension too; refused entries are not remembered, and those
// written only as a hash of their names: 500 refused entries of 128 KB names grew memory by 70 MB.
TEST_F(TarHostile, TranscodingToFilesHoldsLittleForEachEntryAndRenamesLinksToWhatItCompressed) {
  const std::string long_name(128 * 1024, 'n');
  int next = 0;
  GeneratedSource source("many-refused.tar", [&]() -> Bytes {
    RawTar tar;
    const int i = next++;
    if (i == 0) return tar.file("a", "content").header("h", '1', 0, "a").header("./h-dot", '1', 0, "./a").bytes();
    if (i <= 500) {
      const std::string path = fmt::format("../{}/{}", i, long_name);
      return tar.header("././@LongLink", 'L', path.size() + 1).data(path + '\0').file(path.substr(0, 100), "x").bytes();
    }
    return i == 501 ? tar.end().bytes() : Bytes{};
  });
  TarExtractOptions options;
  options.directory = (dir_ / "tx").string();
  CompressOptions gzip;
  gzip.codec = "gzip";
  const long before = peak_rss_kib();
  const TarExtractStats stats = transcode_tar(source, options, gzip);
  EXPECT_EQ(stats.refused + stats.failed, 500u);  // too long for the system, before any other check
  EXPECT_EQ(stats.extracted, 3u);
#if !defined(__SANITIZE_ADDRESS__)  // ASan keeps freed blocks in quarantine
  EXPECT_LT(peak_rss_kib() - before, 32 * 1024) << "KiB of peak RSS growth for 500 refused entries";
#else
  (void)before;
#endif
  struct stat a {
  }, h{}, h_dot{};
  ASSERT_EQ(::stat((dir_ / "tx/a.gz").c_str(), &a), 0);
  ASSERT_EQ(::stat((dir_ / "tx/h.gz").c_str(), &h), 0);
  ASSERT_EQ(::stat((dir_ / "tx/h-dot.gz").c_str(), &h_dot), 0);
  EXPECT_EQ(h.st_ino, a.st_ino);
  EXPECT_EQ(h_dot.st_ino, a.st_ino);
  EXPECT_EQ(sh("gzip -dc tx/h.gz").out, "content");
}

// Hard links when transcoding to files go where GNU tar's extraction puts them, under the names
// transcoding gives: a link to a link to a compressed file is one to it too (it was refused: "not
// extracted"), a link to a name a later entry took is to that entry (it went to the stale .gz), a
// name with a trailing slash gets the extension after the name ("h/" made "h/.gz"); a link whose
// target is named as a directory ("x/") is refused, as GNU tar refuses it; a link to a file whose
// .gz a later entry took is refused, not linked to that entry; and "..", "d/.." are refused as
// extraction refuses them (they became "...gz" and "d/...gz").
TEST_F(TarHostile, HardLinksWhenTranscodingGoWhereGnuTarPutsThem) {
  RawTar tar;
  tar.file("x", "content").header("a", '1', 0, "x").header("h", '1', 0, "a");
  tar.file("r", "replaced").header("r", '2', 0, "x").header("hr", '1', 0, "r");
  tar.header("hs/", '1', 0, "./x").header("hd", '1', 0, "x/");
  tar.file("y", "gone").header("y.gz", '2', 0, "elsewhere").header("hy", '1', 0, "y");
  tar.file("..", "up").file("d/..", "up").end();
  put_tar("links.tar", tar);
  const auto r = sh(testing::sluice() + " transcode links.tar --output-dir tx -F gzip");
  EXPECT_EQ(r.status, 2) << describe(r);
  for (const char* refused : {"refusing entry 'hd' (archive byte 4608): hard link to 'x/'",
                              "refusing entry 'hy' (archive byte 6656): hard link target 'y' was not extracted",
                              "refusing entry '..' (archive byte 7168)", "refusing entry 'd/..' (archive byte 8192)"}) {
    EXPECT_NE(r.err.find(refused), std::string::npos) << refused << "\n" << r.err;
  }
  const auto inode = [&](const std::string& name) {
    struct stat status {};
    return ::lstat((dir_ / "tx" / name).c_str(), &status) == 0 ? status.st_ino : 0;
  };
  ASSERT_NE(inode("x.gz"), 0u);
  for (const char* name : {"a.gz", "h.gz", "hs.gz"}) EXPECT_EQ(inode(name), inode("x.gz")) << name;
  // The symbolic link r -> x replaces the file r, as in GNU tar's extraction: under the names
  // transcoding gives, r.gz -> x.gz replaces r's compressed file, and hr links to that link.
  EXPECT_TRUE(fs::is_symlink(dir_ / "tx/r.gz"));
  EXPECT_EQ(fs::read_symlink(dir_ / "tx/r.gz"), "x.gz");
  EXPECT_EQ(inode("hr.gz"), inode("r.gz"));
  EXPECT_TRUE(fs::is_symlink(dir_ / "tx/y.gz"));
  EXPECT_EQ(sh("cd tx && ls -A | sort | tr '\\n' ' '").out, "a.gz h.gz hr.gz hs.gz r.gz x.gz y.gz ");
  EXPECT_EQ(sh("gzip -dc tx/h.gz").out, "content");
}

// A name with a NUL byte names another file to the system, which ends it there: a walk of
// "in\0/f.txt" found "in" again under itself without end (memory grew until the process was
// killed), an archive "a.tar\0x" opened a.tar, a destination "d\0/../x" was d. Each is refused,
// nothing made. Names from a -T list reach the library so.
TEST_F(TarHostile, NamesWithANulByteAreRefusedBeforeAnythingIsMade) {
  ASSERT_EQ(sh("mkdir in && echo hi > in/f.txt && tar -cf a.tar in && printf 'in\\0/f.txt\\n' > list").status, 0);
  const auto expect_refused = [](const std::function<void()>& call, const std::string& what) {
    try {
      call();
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kUsage) << what << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("the name holds a NUL byte"), std::string::npos) << e.what();
    }
  };
  // (Names that would loop, "in\0/f.txt", only through the command, its memory capped.)
  MemorySink sink;
  expect_refused([&] { create_tar({(dir_ / std::string("none\0/f.txt", 11)).string()}, sink, "", {}); },
                 "a path to archive");
  TarCreateOptions under;
  under.directory = (dir_ / std::string("none\0x", 6)).string();
  expect_refused([&] { create_tar({"f.txt"}, sink, "", {}, under); }, "-C");
  const std::string archive = (dir_ / std::string("a.tar\0x", 7)).string();
  expect_refused([&] { FdSource source(archive); }, "an archive");
  FdSource source((dir_ / "a.tar").string());
  TarExtractOptions into;
  into.directory = (dir_ / std::string("d\0/../x", 8)).string();
  expect_refused([&] { extract_tar(source, into); }, "a destination");
  EXPECT_FALSE(fs::exists(dir_ / "d"));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const std::string capped;  // their shadow memory needs the address space a cap would deny
#else
  const std::string capped = "ulimit -v 2000000 && ";
#endif
  const auto listed = sh(capped + "timeout 60 " + testing::sluice() + " tar -c -f out.tar -T list");
  EXPECT_EQ(listed.status, 2) << describe(listed);
  EXPECT_NE(listed.err.find("in\\000/f.txt: the name holds a NUL byte"), std::string::npos) << listed.err;
  EXPECT_FALSE(fs::exists(dir_ / "out.tar"));
}

// The records kept (known keywords) count together, over local, global and GNU long-name headers.
TEST(TarHostileLibrary, KnownRecordsOverEightMebibytesInAllAreAnError) {
  const std::string big(3 * 1024 * 1024, 'p');
  RawTar tar;
  tar.pax({{"path", big}}, 'g').pax({{"linkpath", big}}).header("././@LongLink", 'L', big.size()).data(big);
  tar.header("entry", '0').end();
  Entries handler;
  TarReader reader(handler, "big-names.tar");
  try {
    reader.write(testing::view(tar.bytes()));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruptData);
    EXPECT_NE(std::string(e.what()).find("big-names.tar: extended header of 3145728 bytes is too large"),
              std::string::npos) << e.what();
  }
  EXPECT_TRUE(handler.entries.empty());
}

// A global header of 500,000 empty records before 1,000 entries: each entry once cost a pass over
// every record. Read in full (the time is in BENCHMARKS.md; no timing here).
TEST_F(TarHostile, AGlobalHeaderOfHalfAMillionRecordsBeforeAThousandEntries) {
  Records records;
  for (int i = 0; i < 500000; ++i) records.emplace_back(fmt::format("k{:06}", i), "");
  RawTar tar;
  tar.pax(records, 'g');
  std::string expected;
  for (int i = 0; i < 1000; ++i) {
    tar.header(fmt::format("f{:04}", i), '0');
    expected += fmt::format("f{:04}\n", i);
  }
  put_tar("records.tar", tar.end());
  const auto r = sluice_tar("-t -f records.tar");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, expected);
}

// ---- Names on a terminal ----

TEST(TarNames, PrintableNameEscapesAsGnuTar) {
  EXPECT_EQ(printable_name("plain name.txt"), "plain name.txt");
  EXPECT_EQ(printable_name("caf\xc3\xa9 \xe2\x9c\x93"), "caf\xc3\xa9 \xe2\x9c\x93");
  EXPECT_EQ(printable_name("a\nb\tc\rd\a\b\f\v"), "a\\nb\\tc\\rd\\a\\b\\f\\v");
  EXPECT_EQ(printable_name("\x1b[31mred"), "\\033[31mred");
  EXPECT_EQ(printable_name("back\\slash"), "back\\\\slash");
  EXPECT_EQ(printable_name(std::string("nul\0x", 5)), "nul\\000x");
  EXPECT_EQ(printable_name("del\x7f"), "del\\177");
  EXPECT_EQ(printable_name("c1\xc2\x9b"), "c1\\302\\233");           // 8-bit CSI
  EXPECT_EQ(printable_name("ls\xe2\x80\xa8"), "ls\\342\\200\\250");  // U+2028
  EXPECT_EQ(printable_name("bad\xff\xc3"), "bad\\377\\303");
  EXPECT_EQ(printable_name("over\xc0\xaf"), "over\\300\\257");  // overlong '/'
  EXPECT_EQ(printable_name("sur\xed\xa0\x80"), "sur\\355\\240\\200");
  // The path of an Error.
  EXPECT_EQ(std::string(Error(ErrorKind::kIo, "cannot open", "a\x1b]0;title\a").what()),
            "a\\033]0;title\\a: cannot open");
}

TEST_F(TarHostile, ListingsAndMessagesEscapeNamesAsGnuTarDoes) {
  const std::vector<std::string> names = {"a\nb", "esc\x1b[31mred", "back\\slash", "tab\tx", "del\x7fx", "caf\xc3\xa9",
                                          "bad\xff" "byte", "c1\xc2\x9bx", "bell\a", "cr\rx"};
  RawTar tar;
  for (const auto& name : names) tar.pax({{"path", name}}).file("placeholder", "x");
  tar.header("dir\x1b[1m/", '5');
  put_tar("names.tar", RawTar(tar).end());
  put_tar("refused.tar", tar.header("/abs\x1b[2Jolute", '0').end());
  const auto listings = list_with_each("names.tar");
  EXPECT_EQ(listings.ours, listings.gnu);
  EXPECT_EQ(listings.ours.find('\x1b'), std::string::npos);
  auto r = sluice_tar("-tv -f names.tar");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" a\\nb\n"), std::string::npos) << r.out;
  r = sluice_tar("-x -v -f refused.tar -C out");
  EXPECT_EQ(r.status, 2) << describe(r);  // the absolute name was refused
  EXPECT_EQ(r.out, listings.gnu);
  EXPECT_NE(r.err.find("refusing entry '/abs\\033[2Jolute'"), std::string::npos) << r.err;
  for (const auto& text : {r.out, r.err}) {
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
    EXPECT_EQ(text.find('\r'), std::string::npos) << text;
  }
  // The names themselves are extracted as they are.
  EXPECT_TRUE(fs::exists(dir_ / "out" / "esc\x1b[31mred"));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "a\nb"));
  // A member not found, and a file that cannot be read while creating.
  r = sluice_tar("-t -f names.tar " + quote("no\x1b[0mpe"));
  EXPECT_NE(r.err.find("no\\033[0mpe: not found in archive"), std::string::npos) << r.err;
  r = sluice_tar("-c -f new.tar " + quote("missing\x1b[0m"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("missing\\033[0m"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << r.err;
}

// ---- Where the other tars agree ----

// Links, devices and FIFOs with a pax size record: GNU tar and bsdtar read that many bytes as the
// entry's data. With a size in the ustar field only, or on a directory, they disagree, and sluice
// reads as one of them. The data block here looks like a header of a "ghost" entry.
TEST_F(TarHostile, EntriesWithDataAreReadAsGnuTarAndBsdtarReadThem) {
  int agreed = 0;
  for (const char type : {'1', '2', '3', '4', '5', '6'}) {
    for (const std::string how : {"ustar-size", "pax-size", "pax-size-ustar-0", "pax-other"}) {
      SCOPED_TRACE(fmt::format("type {} {}", type, how));
      RawTar ghost;
      ghost.header("ghost", '0');
      RawTar tar;
      tar.file("target", "abc\n");
      if (how == "pax-size" || how == "pax-size-ustar-0") tar.pax({{"size", "512"}});
      if (how == "pax-other") tar.pax({{"mtime", "1"}});
      tar.header("entry", type, how == "pax-size-ustar-0" ? 0 : 512, type == '1' || type == '2' ? "target" : "");
      const std::string name = fmt::format("{}-{}.tar", type, how);
      Bytes bytes = tar.bytes();
      bytes.insert(bytes.end(), ghost.bytes().begin(), ghost.bytes().end());
      RawTar rest;
      rest.file("last", "").end();
      bytes.insert(bytes.end(), rest.bytes().begin(), rest.bytes().end());
      put(name, bytes);
      const auto listings = list_with_each(name);
      ASSERT_FALSE(listings.gnu.empty());
      if (listings.gnu == listings.bsd) {
        ++agreed;
        EXPECT_EQ(listings.ours, listings.gnu);
      } else {
        EXPECT_TRUE(listings.ours == listings.gnu || listings.ours == listings.bsd) << listings.ours;
      }
    }
  }
  EXPECT_GE(agreed, 12);
}

// Solaris tar's extended header (typeflag 'X', from before POSIX named it 'x') holds pax records
// for the next entry, which GNU tar, bsdtar and Python's tarfile apply. sluice read it as a file of
// its own (in CPython's testtar.tar: "/tmp/PaxHeaders.378/misc/regtype-suntar", refused as an
// absolute path, exit 2) and the entry lost the header's path and time.
TEST_F(TarHostile, ASolarisExtendedHeaderAppliesToTheNextEntryAsPaxDoes) {
  RawTar tar;
  tar.mtime = 0;
  tar.pax({{"path", "long/name-from-the-header"}, {"mtime", "1041808783"}}, 'X')
      .file("file", "abc\n")
      .file("last", "")
      .end();
  put_tar("solaris.tar", tar);
  const auto listings = list_with_each("solaris.tar");
  EXPECT_EQ(listings.gnu, "long/name-from-the-header\nlast\n");
  EXPECT_EQ(listings.bsd, listings.gnu);
  EXPECT_EQ(listings.ours, listings.gnu);
  const auto r = sluice_tar("-x -f solaris.tar -C out");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(get("out/long/name-from-the-header"), testing::to_bytes("abc\n"));
  EXPECT_EQ(fs::last_write_time(dir_ / "out/long/name-from-the-header"),
            fs::last_write_time(dir_ / "out/last") + std::chrono::seconds(1041808783));
}

// A volume label (GNU tar -V) names the archive: GNU tar and bsdtar extract the files after it and
// make nothing for it, exit 0 (sluice refused it as "not supported", exit 2). bsdtar does not list
// it, nor does sluice; GNU tar lists it as "LABEL--Volume Header--".
TEST_F(TarHostile, AVolumeLabelIsPassedOverAsGnuTarAndBsdtarDo) {
  put("f1", testing::to_bytes("one\n"));
  ASSERT_EQ(sh("tar -cf labelled.tar -V 'my label' f1").status, 0);
  const auto listings = list_with_each("labelled.tar");
  EXPECT_EQ(listings.bsd, "f1\n");
  EXPECT_EQ(listings.ours, listings.bsd);
  const auto r = sluice_tar("-x -f labelled.tar -C out");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(get("out/f1"), testing::to_bytes("one\n"));
  EXPECT_EQ(testing::run("ls -A out", dir_.path()).out, "f1\n");
}

// pax values that are odd but readable: read as GNU tar and bsdtar read them; unreadable ones are
// ignored with a warning (the ustar field applies) and the rest of the archive is read, exit 2.
TEST_F(TarHostile, OddPaxValuesAreReadAndUnreadableOnesIgnoredWithAWarning) {
  struct Case {
    Records records;
    std::string listing;  // -tv, TZ=UTC, from the size on
    int status;
  };
  const std::vector<Case> cases = {
      {{{"path", ""}}, "4 1970-01-01 00:00 file", 0},  // deleted: the ustar name applies
      {{{"mtime", "1234567890.5x"}}, "4 2009-02-13 23:31 file", 0},
      {{{"mtime", "+1234567890"}}, "4 2009-02-13 23:31 file", 0},
      {{{"mtime", " 1234567890"}}, "4 2009-02-13 23:31 file", 0},
      {{{"mtime", "-1.5"}}, "4 1969-12-31 23:59 file", 0},
      {{{"size", "0000000000000000000000004"}}, "4 1970-01-01 00:00 file", 0},
      {{{"uid", "+12"}}, "4 1970-01-01 00:00 file", 0},
      {{{"size", "4x"}}, "4 1970-01-01 00:00 file", 2},
      {{{"mtime", "99999999999999999999999"}}, "4 1970-01-01 00:00 file", 2},
      {{{"uid", "-5"}}, "4 1970-01-01 00:00 file", 2},
      {{{"mtime", "x"}, {"uname", "kept"}}, "4 1970-01-01 00:00 file", 2},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(fmt::format("{}={}", c.records[0].first, c.records[0].second));
    RawTar tar;
    tar.mtime = 0;
    tar.pax(c.records).file("file", "abc\n").file("last", "").end();
    const std::string name = fmt::format("odd-{}.tar", i);
    put_tar(name, tar);
    const auto r = sh("TZ=UTC " + testing::sluice() + " tar -tv -f " + name);
    EXPECT_EQ(r.status, c.status) << describe(r);
    EXPECT_NE(r.out.find(c.listing + "\n"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(" last\n"), std::string::npos) << r.out;
    if (c.status == 2) {
      EXPECT_NE(r.err.find(fmt::format("warning: {}: ignoring the pax value {}=", name, c.records[0].first)),
                std::string::npos) << r.err;
      EXPECT_NE(r.err.find("at archive byte 0"), std::string::npos) << r.err;
    } else {
      EXPECT_EQ(r.err, "");
    }
    if (c.records.size() > 1) {
      EXPECT_NE(r.out.find(" kept/"), std::string::npos) << r.out;
    }
  }
}

// POSIX: an empty value deletes a keyword, from the global values (a 'g' record) or, for one entry,
// the global value (an 'x' record), so that the ustar field applies.
TEST(TarHostileLibrary, EmptyPaxValuesDeleteTheKeyword) {
  RawTar tar;
  tar.pax({{"uname", "global-user"}, {"mtime", "5"}}, 'g')
      .file("a", "")                               // global-user, 5
      .pax({{"uname", ""}}).file("b", "")          // root (ustar), 5
      .pax({{"mtime", ""}}, 'g').file("c", "")     // global-user, ustar mtime
      .pax({{"path", ""}, {"linkpath", ""}}).header("d", '2', 0, "target")
      .end();
  Entries handler;
  TarReader reader(handler, "t.tar");
  reader.write(testing::view(tar.bytes()));
  reader.finish();
  ASSERT_EQ(handler.entries.size(), 4u);
  EXPECT_EQ(handler.entries[0].uname, "global-user");
  EXPECT_EQ(handler.entries[0].mtime_seconds, 5);
  EXPECT_EQ(handler.entries[1].uname, "root");
  EXPECT_EQ(handler.entries[1].mtime_seconds, 5);
  EXPECT_EQ(handler.entries[2].uname, "global-user");
  EXPECT_EQ(handler.entries[2].mtime_seconds, 1000000000);
  EXPECT_EQ(handler.entries[3].path, "d");
  EXPECT_EQ(handler.entries[3].link_target, "target");
  EXPECT_TRUE(handler.warnings.empty());
}

// ---- Sparse files, and archives from every tar ----

// A tree with what tars store in different ways: sparse files (holes at the start, the middle and
// the end, more than four data regions, all hole), hard links, names over 100 and 255 bytes,
// names that are not UTF-8.
void make_odd_tree(const fs::path& root) {
  const std::string script = R"(
import os, sys
root = sys.argv[1].encode()
def path(*parts): return os.path.join(root, *parts)
os.makedirs(path(b'sparse'))
with open(path(b'sparse', b'ten-regions.bin'), 'wb') as f:
    for i in range(10):
        f.seek(i * 1048576 + 4096 * i); f.write(bytes([65 + i]) * (5000 + i))
    f.truncate(10 * 1048576 + 12345)
with open(path(b'sparse', b'hole-first.bin'), 'wb') as f:
    f.seek(300000); f.write(b'x' * 70000)
with open(path(b'sparse', b'all-hole.bin'), 'wb') as f: f.truncate(3 << 20)
with open(path(b'dense.txt'), 'wb') as f: f.write(b'dense\n' * 1000)
os.link(path(b'dense.txt'), path(b'sparse', b'hard-link-to-dense'))
os.link(path(b'sparse', b'hole-first.bin'), path(b'hard-link-to-sparse'))
long_dir = path(b'd' * 120, b'e' * 120)
os.makedirs(long_dir)
with open(os.path.join(long_dir, b'n' * 200), 'wb') as f: f.write(b'long name\n')
with open(path(b'caf\xe9-latin1.txt'), 'wb') as f: f.write(b'latin-1 name\n')
with open(path(b'bad-\xff\xfe.bin'), 'wb') as f: f.write(b'\x00\x01')
os.symlink(b'caf\xe9-latin1.txt', path(b'link-\xe9'))
for dirpath, dirs, files in os.walk(root):
    for name in files + dirs:
        os.utime(os.path.join(dirpath, name), (1600000000, 1600000000), follow_symlinks=False)
)";
  testing::write_file(root.parent_path() / "make_tree.py", testing::to_bytes(script));
  const auto r = testing::run("python3 make_tree.py " + quote(root.filename().string()), root.parent_path());
  ASSERT_EQ(r.status, 0) << describe(r);
}

class TarFromEveryTar : public TarHostile {
 protected:
  // Every entry under `dir` (type, mode, size, link count, mtime, link target) and every file's
  // content hash, in byte order of the names.
  std::string listing(const std::string& dir) {
    // Directories' times are left out: GNU tar sets some of them to the time of extraction.
    const auto r = sh("cd " + quote(dir) + " && LC_ALL=C find . -mindepth 1 -printf '%p %y %m %s %n %Ts %l\\n' | "
                      "awk '$2 == \"d\" { $6 = \"-\" } 1' | LC_ALL=C sort"
                      " && LC_ALL=C find . -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum");
    EXPECT_EQ(r.status, 0) << describe(r);
    return r.out;
  }
  // Disk blocks the files under `dir` take, in KiB.
  long disk_kib(const std::string& dir) { return std::stol(sh("du -sk " + quote(dir) + " | cut -f1").out); }
};

// Archives of the same tree by GNU tar (every format and sparse version), bsdtar and Python's
// tarfile: sluice extracts each to the same tree as GNU tar does, holes as holes.
TEST_F(TarFromEveryTar, ExtractsTheSameTreeAsGnuTarWithHolesKept) {
  make_odd_tree(dir_ / "src");
  const std::vector<std::pair<std::string, std::string>> makers = {
      {"gnu-S", "tar --format=gnu -S -cf {} src"},
      {"oldgnu-S", "tar --format=oldgnu -S -cf {} src"},
      {"posix-S-0.0", "tar --format=posix -S --sparse-version=0.0 -cf {} src"},
      {"posix-S-0.1", "tar --format=posix -S --sparse-version=0.1 -cf {} src"},
      {"posix-S-1.0", "tar --format=posix -S --sparse-version=1.0 -cf {} src"},
      {"gnu", "tar --format=gnu -cf {} src"},
      {"posix", "tar --format=posix -cf {} src"},
      {"bsdtar", "bsdtar -cf {} src"},
      {"bsdtar-pax", "bsdtar --format=pax -cf {} src"},
      {"bsdtar-gnutar", "bsdtar --format=gnutar -cf {} src"},
      {"python-pax", "python3 -c \"import tarfile; t = tarfile.open('{}', 'w', format=tarfile.PAX_FORMAT); t.add('src'); t.close()\""},
      {"python-gnu", "python3 -c \"import tarfile; t = tarfile.open('{}', 'w', format=tarfile.GNU_FORMAT); t.add('src'); t.close()\""},
  };
  const long dense_kib = 30 * 1024;  // the sparse files' sizes added up, roughly; written out they take this much
  for (const auto& [name, command] : makers) {
    SCOPED_TRACE(name);
    const std::string archive = name + ".tar";
    auto r = sh(fmt::format(fmt::runtime(command), archive));
    ASSERT_EQ(r.status, 0) << describe(r);
    r = sh("mkdir gnu-" + name + " && tar -xf " + archive + " -C gnu-" + name);
    ASSERT_EQ(r.status, 0) << describe(r);
    r = sluice_tar("-x -f " + archive + " -C ours-" + name);
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(listing("ours-" + name), listing("gnu-" + name));
    if (name.find("-S") != std::string::npos || name.starts_with("bsdtar-pax") || name == "bsdtar") {
      EXPECT_LT(disk_kib("ours-" + name), dense_kib / 4) << "holes were written out";
    }
    // Listed with the real sizes, as GNU tar lists them.
    r = sh("TZ=UTC LC_ALL=C.UTF-8 tar -tvf " + archive + " | awk '{print $3, $6}'");
    const auto ours = sh("TZ=UTC " + testing::sluice() + " tar -tv -f " + archive + " | awk '{print $3, $6}'");
    EXPECT_EQ(ours.out, r.out);
  }
}

// sluice tar -S: the holes take no room in the archive, and GNU tar, bsdtar, Python's tarfile and
// sluice extract the same tree from it.
TEST_F(TarFromEveryTar, SparseArchivesWeWriteAreReadByEveryTar) {
  make_odd_tree(dir_ / "src");
  for (const std::string format : {".tar", ".tar.zst"}) {
    SCOPED_TRACE(format);
    const std::string archive = "ours" + format;
    auto r = sluice_tar("-c -S -f " + archive + " src");
    ASSERT_EQ(r.status, 0) << describe(r);
    const std::string plain = format == ".tar" ? archive : "ours-plain.tar";
    if (format == ".tar") {
      EXPECT_LT(fs::file_size(dir_ / archive), 1024u * 1024u);
    } else {
      ASSERT_EQ(sh("zstd -q -d -c " + archive + " > " + plain).status, 0);
    }
    const std::string expected = listing("src");
    for (const std::string reader : {"gnu", "bsd", "python", "sluice"}) {
      SCOPED_TRACE(reader);
      const std::string out = reader + format;
      fs::create_directories(dir_ / out);
      if (reader == "gnu") r = sh("tar -xf " + plain + " -C " + out);
      if (reader == "bsd") r = sh("bsdtar -xf " + plain + " -C " + out);
      if (reader == "python") r = sh("python3 -c \"import tarfile; tarfile.open('" + plain + "').extractall('" + out + "')\"");
      if (reader == "sluice") r = sluice_tar("-x -f " + archive + " -C " + out);
      ASSERT_EQ(r.status, 0) << describe(r);
      std::string got = listing(out + "/src");
      // Python's tarfile restores neither hard links' shared inode nor sparse holes.
      if (reader == "python") continue;
      EXPECT_EQ(got, expected);
      EXPECT_LT(disk_kib(out), 1024) << "holes were written out";
    }
  }
  // Without -S the same files are stored whole.
  auto r = sluice_tar("-c -f dense.tar src");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_GT(fs::file_size(dir_ / "dense.tar"), 10u * 1024u * 1024u);
}

// An old GNU sparse entry with more than four regions (the rest in extension blocks), then more
// entries: every later entry is read (they were lost, with exit status 0).
TEST_F(TarFromEveryTar, EntriesAfterAnOldGnuSparseEntryAreAllRead) {
  make_odd_tree(dir_ / "src");
  ASSERT_EQ(sh("tar --format=gnu -S -cf old.tar src/sparse/ten-regions.bin src/dense.txt src/sparse/hole-first.bin").status, 0);
  const auto r = sluice_tar("-t -f old.tar");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "src/sparse/ten-regions.bin\nsrc/dense.txt\nsrc/sparse/hole-first.bin\n");
}

// A plain archive whose first name begins with gzip's or zstd's magic: GNU tar and bsdtar read it
// (the header's checksum is good), sluice took it for a corrupt gzip member.
TEST_F(TarFromEveryTar, AFirstNameThatBeginsWithACodecsMagicIsAName) {
  for (const char* name : {"\\x1f\\x8b\\x08name", "(\\xb5/\\xfdz"}) {
    SCOPED_TRACE(name);
    auto r =
        sh(fmt::format("rm -rf magic.tar out && mkdir out && python3 -c \"import tarfile, io; "
                       "t = tarfile.open('magic.tar', 'w', format=tarfile.GNU_FORMAT, encoding='latin-1'); "
                       "i = tarfile.TarInfo('{}'); i.size = 5; t.addfile(i, io.BytesIO(b'hello')); t.close()\"",
                       name));
    ASSERT_EQ(r.status, 0) << describe(r);
    const auto gnu = sh("tar -tf magic.tar");
    r = sluice_tar("-t -f magic.tar");
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(r.out.size(), gnu.out.size()) << r.out << " / " << gnu.out;
    r = sluice_tar("-x -f magic.tar -C out");
    EXPECT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(sh("find out -type f -exec cat {} +").out, "hello");
  }
}

// transcode --output-dir of a sparse file: it was written plain, holes and all, without the
// suffix, into a directory meant to hold only NAME.gz. Each is compressed whole now, its holes as
// zeros, in every sparse form GNU tar writes.
TEST_F(TarFromEveryTar, TranscodeCompressesASparseFileWhole) {
  make_odd_tree(dir_ / "src");
  for (const std::string format : {"gnu", "pax", "oldgnu"}) {
    SCOPED_TRACE(format);
    ASSERT_EQ(sh("tar --format=" + format + " -S -cf " + format + ".tar src/sparse src/dense.txt").status, 0);
    const auto r = sh(testing::sluice() + " transcode " + format + ".tar --output-dir " + format + " -F gzip");
    ASSERT_EQ(r.status, 0) << describe(r);
    for (const char* name : {"ten-regions.bin", "hole-first.bin", "all-hole.bin"}) {
      const std::string file = format + "/src/sparse/" + name;
      EXPECT_FALSE(fs::exists(dir_ / file)) << file;
      const auto same = sh("gzip -dc " + file + ".gz | cmp - src/sparse/" + name);
      EXPECT_EQ(same.status, 0) << describe(same);
    }
    EXPECT_EQ(sh("gzip -dc " + format + "/src/dense.txt.gz | cmp - src/dense.txt").status, 0);
  }
}

// A sparse map that does not match what the entry stores, or cannot be read: the entry is refused
// by name, and the entries after it are extracted.
TEST_F(TarHostile, ABrokenSparseMapRefusesItsEntryAndTheRestIsExtracted) {
  RawTar tar;
  tar.pax({{"GNU.sparse.size", "100000"}, {"GNU.sparse.numblocks", "1"}, {"GNU.sparse.offset", "5000"},
           {"GNU.sparse.numbytes", "600"}})
      .file("too-few-bytes", std::string(512, 'a'))
      .pax({{"GNU.sparse.size", "1000"}, {"GNU.sparse.map", "900,512"}}).file("past-the-end", std::string(512, 'b'))
      .pax({{"GNU.sparse.size", "x"}, {"GNU.sparse.map", "0,1"}}).file("unreadable", "c")
      .pax({{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.realsize", "10"}})
      .file("map-runs-on", std::string(512, '7'))
      .pax({{"GNU.sparse.size", "3000"}, {"GNU.sparse.map", "1000,3,2000,2"}}).file("good", "xyzuv")
      .file("after", "after")
      .end();
  put_tar("broken.tar", tar);
  const auto r = sluice_tar("-x -f broken.tar -C out");
  EXPECT_EQ(r.status, 2) << describe(r);
  for (const std::string name : {"too-few-bytes", "past-the-end", "unreadable", "map-runs-on"}) {
    EXPECT_NE(r.err.find(fmt::format("refusing entry '{}'", name)), std::string::npos) << name << "\n" << r.err;
  }
  EXPECT_EQ(get("out/after"), testing::to_bytes(std::string("after")));
  Bytes good(3000, 0);
  good[1000] = 'x', good[1001] = 'y', good[1002] = 'z', good[2000] = 'u', good[2001] = 'v';
  EXPECT_EQ(get("out/good"), good);
}

// ---- Errors that end one entry, not the extraction ----

TEST_F(TarHostile, AnEntryTheFileSystemRefusesIsReportedAndTheRestExtracted) {
  RawTar tar;
  tar.file("first.txt", "1")
      .pax({{"path", std::string(300, 'x') + "/f.txt"}}).file("placeholder", "2")
      .pax({{"path", std::string(300, 'y')}}).file("placeholder", "3")
      .file("last.txt", "4")
      .end();
  put_tar("long.tar", tar);
  auto r = sluice_tar("-x -f long.tar -C out");
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_NE(r.err.find(fmt::format("cannot extract '{}/f.txt' (archive byte 1024)", std::string(300, 'x'))),
            std::string::npos) << r.err;
  EXPECT_NE(r.err.find("File name too long"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 2) << r.err;
  EXPECT_EQ(get("out/first.txt"), testing::to_bytes(std::string("1")));
  EXPECT_EQ(get("out/last.txt"), testing::to_bytes(std::string("4")));
  // GNU tar extracts the same entries.
  fs::create_directories(dir_ / "gnu");
  EXPECT_EQ(sh("tar -xf long.tar -C gnu").status, 2);
  EXPECT_EQ(sh("ls -A gnu").out, sh("ls -A out").out);
  // --strict stops at it.
  r = sluice_tar("-x --strict -f long.tar -C strict");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_TRUE(fs::exists(dir_ / "strict/first.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "strict/last.txt"));
}

TEST_F(TarHostile, TrailingGarbageAfterACompressedArchiveStillExtractsEveryEntry) {
  RawTar tar;
  for (int i = 0; i < 20; ++i) tar.file(fmt::format("f{:02}", i), std::string(100000, static_cast<char>('a' + i)));
  put_tar("x.tar", tar.end());
  for (const std::string compressor : {"gzip", "pigz", "zstd -q", "lz4 -q"}) {
    SCOPED_TRACE(compressor);
    ASSERT_EQ(sh(compressor + " -c x.tar > x.tar.z && printf 'junk after the stream' >> x.tar.z").status, 0);
    const auto r = sluice_tar("-x -f x.tar.z -C out");
    EXPECT_EQ(r.status, 2) << describe(r);
    EXPECT_NE(r.err.find("warning: x.tar.z: trailing garbage"), std::string::npos) << r.err;
    EXPECT_EQ(sh("ls out | wc -l").out, "20\n");
    EXPECT_EQ(get("out/f19"), testing::to_bytes(std::string(100000, 't')));
    fs::remove_all(dir_ / "out");
  }
}

// An extended header whose entry never comes is an error wherever the archive ends: right after
// its content (only padding missing), or behind a global header and the end-of-archive blocks.
TEST(TarHostileLibrary, AnExtendedHeaderWithoutItsEntryIsAnErrorWhereverTheArchiveEnds) {
  const auto fails = [](const Bytes& bytes, const std::string& what) {
    Entries handler;
    TarReader reader(handler, "t.tar");
    try {
      reader.write(testing::view(bytes));
      reader.finish();
      ADD_FAILURE() << what << ": accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("extended header without its entry"), std::string::npos) << what << ": " << e.what();
    }
  };
  RawTar local;
  local.file("first", "1").pax({{"path", "aaaaaaaaaaaaaaaaaaaaa"}});
  Bytes cut = local.bytes();
  cut.erase(cut.end() - (512 - 30), cut.end());  // the records, their padding missing
  fails(cut, "x, then the end inside its padding");
  fails(RawTar(local).pax({{"uname", "u"}}, 'g').end().bytes(), "x, g, end of archive");
  RawTar long_name;
  long_name.header("././@LongLink", 'L', 10).data("long-name");
  fails(long_name.bytes(), "L, then the end");
  // And the entry after an x and a g header is said to begin at the x.
  Entries handler;
  TarReader reader(handler, "t.tar");
  RawTar both;
  both.file("first", "1").pax({{"path", "named"}}).pax({{"uname", "u"}}, 'g').file("placeholder", "2").end();
  reader.write(testing::view(both.bytes()));
  reader.finish();
  ASSERT_EQ(handler.entries.size(), 2u);
  EXPECT_EQ(handler.entries[1].path, "named");
  EXPECT_EQ(handler.entries[1].header_offset, 1024u);
}

// A GNU.sparse.map of millions of regions is refused as unreadable once past what the metadata
// budget holds (it was built whole, then checked), and the entries after it are read.
TEST_F(TarHostile, ASparseMapOfMillionsOfRegionsIsRefusedAndTheRestExtracted) {
  std::string map = "0,0";
  while (map.size() < 7 * 1024 * 1024) map += ",0,0";
  RawTar tar;
  tar.pax({{"GNU.sparse.size", "10"}, {"GNU.sparse.map", map}}).file("huge-map", "")
      .file("after", "after")
      .end();
  put_tar("map.tar", tar);
  const auto r = sluice_tar("-x -f map.tar -C out");
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_NE(r.err.find("refusing entry 'huge-map'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("unreadable sparse map"), std::string::npos) << r.err;
  EXPECT_EQ(get("out/after"), testing::to_bytes(std::string("after")));
}

// A directory that comes twice takes the last entry's mode, as with GNU tar.
// Whatever the thread count, extraction gives GNU tar's tree: a name given twice takes its last
// entry, a file then a directory of that name (refused), a file under a name that a file took,
// links to files just made, a symlink where a file was, files in a directory that comes after
// them, among hundreds of small files. (Files made by two threads of their own while the reader
// went on were tried against this test: no faster on two cores, BENCHMARKS.md.)
TEST_F(TarFromEveryTar, AnyThreadCountGivesTheTreeExtractionInOrderGives) {
  RawTar tar;
  const auto many = [&](const std::string& dir, int count) {
    for (int i = 0; i < count; ++i)
      tar.file(fmt::format("{}/f{:03}", dir, i),
               std::string(static_cast<std::size_t>(100 + i), static_cast<char>('a' + i % 26)));
  };
  many("bulk", 300);
  tar.file("twice", "first").file("twice", "second, longer");
  many("bulk2", 200);
  tar.file("then-dir", "a file").header("then-dir/", '5');
  tar.file("plain", "a file").file("plain/under", "refused: plain is a file");
  tar.file("target", "linked to").header("hard", '1', 0, "target").header("soft", '2', 0, "target");
  tar.file("was-file", "replaced by a link").header("was-file", '2', 0, "target");
  many("late", 50);
  tar.header("late/", '5', 0, {}, 0750).header("late/sub/", '5').file("late/sub/x", "after its directory");
  many("bulk3", 300);
  tar.file("twice", "third").end();
  put_tar("order.tar", tar);
  ASSERT_EQ(sh("mkdir gnu && tar -xf order.tar -C gnu 2>/dev/null; true").status, 0);
  const std::string gnu = listing("gnu");
  for (const char* threads : {"1", "2", "4"}) {
    SCOPED_TRACE(threads);
    const std::string out = std::string("ours-") + threads;
    const auto r = sluice_tar(fmt::format("-x -j{} -f order.tar -C {}", threads, out));
    EXPECT_EQ(r.status, 2) << describe(r);  // the refused entries
    EXPECT_EQ(listing(out), gnu);
  }
  EXPECT_EQ(get("ours-2/twice"), testing::to_bytes(std::string("third")));
}

TEST_F(TarHostile, ADirectoryThatComesTwiceTakesItsLastMode) {
  RawTar tar;
  tar.header("d/", '5', 0, {}, 0700).file("d/f", "x").header("d/", '5', 0, {}, 0751).end();
  put_tar("dirs.tar", tar);
  const auto r = sluice_tar("-x -f dirs.tar -C out");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(static_cast<unsigned>(fs::status(dir_ / "out/d").permissions()) & 0777, 0751u);
  ASSERT_EQ(sh("mkdir gnu && tar -xf dirs.tar -C gnu && stat -c %a gnu/d").out, "751\n");
}

}  // namespace
}  // namespace sluice
