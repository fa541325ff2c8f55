// The habits of gzip, pigz, zstd and lz4 users, run against the real `sluice` program and the
// real tools: list mode, level and thread flags, the SLUICE environment variable, the program's
// other names, -S, -N, zcat -f, links, what -r takes, and JSON for names that are not UTF-8.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fmt/format.h>
#include <cctype>
#include <filesystem>

#include "tests/test_support.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::describe;
using testing::quote;
using testing::random_bytes;
using testing::text_bytes;

class Conventions : public testing::CommandTest {
 protected:
  // data.bin: `bytes` of real text (the C++ library's headers).
  void put_text(std::size_t bytes) {
    const auto r = sh(fmt::format("cat /usr/include/c++/*/bits/*.h | head -c {} > data.bin", bytes));
    ASSERT_EQ(r.status, 0) << describe(r);
  }
  // The uncompressed size `sluice -l --json` reports for `file`, and how ("recorded"/"decoded").
  std::pair<std::string, std::string> listed(const std::string& file) {
    const auto r =
        sh(fmt::format("{} -l --json {} | /usr/bin/python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); "
                       "print(r[\"uncompressed_bytes\"], r[\"sizes\"])'",
                       testing::sluice(), file));
    EXPECT_EQ(r.status, 0) << describe(r);
    const auto space = r.out.find(' ');
    if (space == std::string::npos) return {};
    return {r.out.substr(0, space), r.out.substr(space + 1, r.out.size() - space - 2)};
  }
  std::string count_bytes(const std::string& command) {
    const auto r = sh(command + " | wc -c");
    EXPECT_EQ(r.status, 0) << describe(r);
    return r.out.substr(0, r.out.find('\n'));
  }
};

// ---- -l / --list ----

struct ListCase {
  std::string name;
  std::string make;     // writes x.<suffix> from data.bin
  std::string file;     // the file made
  std::string decoder;  // the stock tool that counts its bytes
  std::string sizes;    // "recorded": read without decoding; "decoded"
};

class ListMode : public Conventions, public ::testing::WithParamInterface<ListCase> {};

TEST_P(ListMode, SizesMatchWhatTheStockToolDecodesAtEdgeSizes) {
  const auto& c = GetParam();
  const std::size_t chunk = 64 * 1024;
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, chunk - 1, chunk, chunk + 1, 10 * chunk, 10 * chunk + 5}) {
    put_text(size);
    fs::remove(dir_ / c.file);
    std::string make = c.make;  // "$S" is the sluice program
    if (const auto at = make.find("$S"); at != std::string::npos) make.replace(at, 2, testing::sluice());
    const auto made = sh(make);
    ASSERT_EQ(made.status, 0) << describe(made);
    const std::string expected = count_bytes(fmt::format("{} -dc {}", c.decoder, c.file));
    ASSERT_EQ(expected, std::to_string(size));
    const auto [bytes, how] = listed(c.file);
    EXPECT_EQ(bytes, expected) << c.name << " at " << size;
    if (size > 0) {
      EXPECT_EQ(how, c.sizes) << c.name << " at " << size;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Streams, ListMode,
    ::testing::Values(
        ListCase{"sluice_gzip", "$S --chunk-size 64K -c data.bin > x.gz", "x.gz", "gzip", "recorded"},
        ListCase{"sluice_gzip_multi_member", "$S --multi-member --chunk-size 64K -c data.bin > x.gz", "x.gz", "gzip",
                 "recorded"},
        ListCase{"sluice_bgzf", "$S --bgzf -c data.bin > x.gz", "x.gz", "gzip", "recorded"},
        ListCase{"sluice_zstd", "$S -F zstd --chunk-size 64K -c data.bin > x.zst", "x.zst", "zstd", "recorded"},
        ListCase{"sluice_lz4", "$S -F lz4 --chunk-size 64K -c data.bin > x.lz4", "x.lz4", "lz4", "decoded"},
        ListCase{"gzip_9", "gzip -9 -c data.bin > x.gz", "x.gz", "gzip", "decoded"},
        ListCase{"pigz", "pigz -c -b 64 data.bin > x.gz", "x.gz", "gzip", "decoded"},
        ListCase{"zstd_19", "zstd -q -19 -c data.bin > x.zst", "x.zst", "zstd", "recorded"},
        ListCase{"zstd_pipe", "cat data.bin | zstd -q -c > x.zst", "x.zst", "zstd", "decoded"},
        ListCase{"lz4_content_size", "lz4 -q --content-size -c data.bin > x.lz4", "x.lz4", "lz4", "recorded"}),
    [](const auto& test) { return test.param.name; });

TEST_F(Conventions, ListTableHasATotalConcatenationsAddUpAndBadFilesAreNamed) {
  put_text(300 * 1024);
  ASSERT_EQ(sh(testing::sluice() + " --chunk-size 64K -c data.bin > a.gz && cat a.gz a.gz > twice.gz && "
                                   "gzip -c data.bin > g.gz && cat a.gz g.gz > mixed.gz && cat g.gz a.gz > mixed2.gz")
                .status,
            0);
  const auto r = sluice("-l a.gz twice.gz mixed.gz mixed2.gz");
  ASSERT_EQ(r.status, 0) << describe(r);
  // Two of our streams one after the other: both counted, still without decoding; a foreign
  // member before or after ours: decoded.
  EXPECT_EQ(listed("twice.gz"), std::make_pair(std::to_string(2 * 300 * 1024), std::string("recorded")));
  EXPECT_EQ(listed("mixed.gz"), std::make_pair(std::to_string(2 * 300 * 1024), std::string("decoded")));
  EXPECT_EQ(listed("mixed2.gz"), std::make_pair(std::to_string(2 * 300 * 1024), std::string("decoded")));
  EXPECT_NE(r.out.find("total"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::to_string(7 * 300 * 1024)), std::string::npos) << "the total of the 4 files\n" << r.out;
  EXPECT_NE(r.out.rfind("4 files\n"), std::string::npos) << r.out;

  // A file that is not compressed, a missing one, a truncated one: each named, exit 1, the rest listed.
  ASSERT_EQ(sh("head -c 2000 a.gz > cut.gz").status, 0);
  const auto bad = sluice("-l data.bin missing.gz cut.gz a.gz");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("sluice: data.bin: not compressed data"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("sluice: missing.gz: cannot open"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("sluice: cut.gz: "), std::string::npos) << bad.err;
  EXPECT_NE(bad.out.find(" a.gz\n"), std::string::npos) << bad.out;
  // From standard input too; -l writes nothing.
  const auto piped = sh(fmt::format("cat a.gz | {} -l", testing::sluice()));
  EXPECT_EQ(piped.status, 0) << describe(piped);
  EXPECT_NE(piped.out.find(fmt::format(" {} ", 300 * 1024)), std::string::npos) << piped.out;
  EXPECT_NE(piped.out.find("<stdin>"), std::string::npos) << piped.out;
  EXPECT_EQ(sluice("-l -o x a.gz").status, 2);
}

// Garbage after the stream: listed up to it with -d's and -t's warning and exit status 2, from a
// file and from a pipe, for each format; it was an error (exit 1) that listed nothing.
TEST_F(Conventions, ListListsAStreamUpToTrailingGarbageAndWarns) {
  put_text(5000);
  ASSERT_EQ(
      sh("gzip -c data.bin > g.gz && " + testing::sluice() +
         " -c data.bin > s.gz && zstd -q -c data.bin > z.zst && "
         "lz4 -q -c data.bin > l.lz4 && for f in g.gz s.gz z.zst l.lz4; do cp $f bad.$f; printf 'junk' >> bad.$f; done")
          .status,
      0);
  for (const std::string file : {"g.gz", "s.gz", "z.zst", "l.lz4"}) {
    const auto r = sluice("-l bad." + file + " " + file);
    EXPECT_EQ(r.status, 2) << describe(r);
    const auto size = std::to_string(fs::file_size(dir_ / file));
    EXPECT_NE(r.err.find(fmt::format("sluice: warning: bad.{}: trailing garbage after the last ", file)),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find(fmt::format("(at byte {}); ignored (listed up to it)", size)), std::string::npos) << r.err;
    EXPECT_EQ(listed("bad." + file), std::make_pair(std::string("5000"), std::string("decoded"))) << r.out;
    EXPECT_NE(r.out.find(fmt::format(" {} ", size)), std::string::npos) << "compressed up to the garbage\n" << r.out;
    EXPECT_NE(r.out.find(" " + file + "\n"), std::string::npos) << "the next file listed\n" << r.out;
  }
  // The check of a file's frames before the garbage (zstd's was "-").
  EXPECT_NE(sluice("-l bad.z.zst").out.find(" XXH64 "), std::string::npos);
  const auto piped = sh("cat bad.z.zst | " + testing::sluice() + " -l --json -");
  EXPECT_EQ(piped.status, 2) << describe(piped);
  EXPECT_NE(piped.out.find("\"status\": \"ok\", \"format\": \"zstd\""), std::string::npos) << piped.out;
  EXPECT_NE(piped.out.find("\"uncompressed_bytes\": 5000"), std::string::npos) << piped.out;
  EXPECT_NE(piped.out.find("\"warning\": \"<stdin>: trailing garbage after the last zstd frame"), std::string::npos)
      << piped.out;
  EXPECT_EQ(sluice("-l -q bad.g.gz").err, "");
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)  // they need the address space
  // A file that cannot be mapped whole (3 GB under a 2 GB address space) is decoded from windows
  // mapped in turn, which pass no bytes through the listing's source: its format was not known,
  // and the listing failed as "empty input".
  ASSERT_EQ(sh("cp bad.g.gz huge.gz && truncate -s 3G huge.gz").status, 0);
  const auto huge = sh("ulimit -v 2000000 && " + testing::sluice() + " -l huge.gz");
  EXPECT_EQ(huge.status, 2) << describe(huge);
  EXPECT_NE(huge.out.find("gzip "), std::string::npos) << huge.out;
  EXPECT_NE(huge.err.find("huge.gz: trailing garbage after the last gzip member"), std::string::npos) << huge.err;
#endif
}

// "recorded" only where the size is checked: the default form's chunks are counted at their sync
// flush patterns, which stored data may hold too; 4,096 of them in chunks of 1 MiB add exactly
// 4 GiB, which ISIZE cannot tell (16 MiB was listed as 4.3 GB). A multi-member size field is
// checked against its member's ISIZE (one 1,000 bytes short was believed).
// Recorded sizes that add up past 2^64 are no record: two zstd frames each claiming 2^63 bytes (and
// holding none) were listed as 0 bytes, "recorded" (zstd -l adds them up the same way).
TEST_F(Conventions, ListDecodesWhereRecordedSizesOverflow) {
  ASSERT_EQ(sh("printf '\\x28\\xb5\\x2f\\xfd\\xc0\\0\\0\\0\\0\\0\\0\\0\\0\\x80\\x01\\0\\0' > one.zst && "
               "cat one.zst one.zst > two.zst")
                .status,
            0);
  using Listed = std::pair<std::string, std::string>;
  EXPECT_EQ(listed("one.zst"), Listed("9223372036854775808", "recorded"));
  EXPECT_EQ(listed("two.zst"), Listed("0", "decoded"));
}

// --json gives null where the table prints "-" (units only decoding could count, a check not
// known from a pipe): they were 0 and "", which a script takes for values.
TEST_F(Conventions, ListJsonSaysNullWhereTheTableSaysDash) {
  put_text(4000);
  ASSERT_EQ(sh("gzip -c data.bin > d.gz").status, 0);
  const auto piped = sh("cat d.gz | " + testing::sluice() + " -l --json - | head -1");
  EXPECT_NE(piped.out.find("\"units\": null"), std::string::npos) << piped.out;
  EXPECT_NE(piped.out.find("\"check\": null"), std::string::npos) << piped.out;
  const auto table = sh("cat d.gz | " + testing::sluice() + " -l -");
  EXPECT_NE(table.out.find("gzip         -"), std::string::npos) << table.out;
  const auto file = sluice("-l --json d.gz");
  EXPECT_NE(file.out.find("\"check\": \"CRC-32\""), std::string::npos) << file.out;
}

TEST_F(Conventions, ListRecordsOnlySizesItCanCheck) {
  const auto made =
      run_python(fmt::format("import os, subprocess\n"
                             "n = 16 << 20\n"
                             "base = bytearray(os.urandom(n))\n"
                             "k = 4096\n"
                             "for attempt in range(8):\n"
                             "  d = bytearray(base)\n"
                             "  step = (n - (2 << 20)) // k\n"
                             "  for i in range(k): d[50 + i * step:54 + i * step] = b'\\0\\0\\xff\\xff'\n"
                             "  open('p.bin', 'wb').write(d)\n"
                             "  z = subprocess.run([{}, '-c', '-n', 'p.bin'], capture_output=True, check=True).stdout\n"
                             "  open('p.gz', 'wb').write(z)\n"
                             "  extra = z[24:-8].count(b'\\0\\0\\xff\\xff') - 15\n"
                             "  if extra == 4096: break\n"
                             "  k += 4096 - extra\n"
                             "print(extra)\n",
                             testing::sluice()));
  ASSERT_EQ(made.status, 0) << describe(made);
  ASSERT_EQ(made.out, "4096\n") << "could not make the file";
  auto r = sluice("-l p.gz");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(listed("p.gz"), std::make_pair(std::to_string(16 << 20), std::string("decoded"))) << r.out;

  put_text(300 * 1024);
  ASSERT_EQ(sh(testing::sluice() + " --multi-member --chunk-size 64K -c -n data.bin > m.gz").status, 0);
  Bytes lying = get("m.gz");
  ASSERT_EQ(lying[3] & 4, 4);  // FEXTRA: 'S','L', 8 bytes: the member's length, then its content's
  ASSERT_EQ(lying[12], 'S');
  lying[20] ^= 0x08;  // the first member's content size, 8 bytes off
  put("lying.gz", lying);
  r = sluice("-l lying.gz");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(listed("lying.gz"), std::make_pair(std::to_string(300 * 1024), std::string("decoded"))) << r.out;
}

// A frame that fails its checksum is named at its start, however the input arrived: liblz4 and
// zstd say nothing of where the fault is, and the bytes they had taken in gave byte 4 from a
// file and 1000 from a pipe for a fault at 30,000 (a second reader).
TEST_F(Conventions, AChecksumFailureIsAtItsFramesStartFromAFileAsFromAPipe) {
  put_text(800 * 1024);
  ASSERT_EQ(sh("zstd -q -c data.bin > z.zst && lz4 -q -BX -c data.bin > l.lz4").status, 0);
  ASSERT_EQ(sh("/usr/bin/python3 -c \"import sys\n"
               "for name, at in (('z.zst', -2), ('l.lz4', 30000)):\n"
               "  d = bytearray(open(name, 'rb').read()); d[at] ^= 1; open('bad-' + name, 'wb').write(d)\"")
                .status,
            0);
  for (const char* file : {"bad-z.zst", "bad-l.lz4"}) {
    SCOPED_TRACE(file);
    const auto whole = sluice(fmt::format("-dc {} > /dev/null", file));
    const auto piped = sh(
        fmt::format("(head -c 1000 {0}; sleep 0.2; tail -c +1001 {0}) | {1} -dc > /dev/null", file, testing::sluice()));
    EXPECT_EQ(whole.status, 1) << describe(whole);
    EXPECT_EQ(piped.status, 1) << describe(piped);
    EXPECT_NE(whole.err.find("checksum"), std::string::npos) << whole.err;
    EXPECT_NE(whole.err.find("(at byte 0)"), std::string::npos) << whole.err;
    EXPECT_NE(piped.err.find("(at byte 0)"), std::string::npos) << piped.err;
  }
}

// ---- Levels and threads ----

TEST_F(Conventions, TheLastLevelGivenWinsAndFastBestAndZstdFastAreLevels) {
  put_text(400 * 1024);
  const auto bytes_of = [&](const std::string& args) {
    const auto r = sluice(args + " -c data.bin > out");
    EXPECT_EQ(r.status, 0) << args << ": " << r.err;
    return get("out");
  };
  EXPECT_EQ(bytes_of("-9 -1"), bytes_of("-1"));
  EXPECT_EQ(bytes_of("-1 -9"), bytes_of("-9"));
  EXPECT_NE(bytes_of("-1"), bytes_of("-9"));
  EXPECT_EQ(bytes_of("--fast"), bytes_of("-1"));
  EXPECT_EQ(bytes_of("--best"), bytes_of("-9"));
  EXPECT_EQ(bytes_of("--level 3 -7"), bytes_of("-7"));
  EXPECT_EQ(bytes_of("-F zstd --fast=4"), bytes_of("-F zstd --level=-4"));
  EXPECT_EQ(bytes_of("-F zstd -19 --fast"), bytes_of("-F zstd --level=-1"));
  EXPECT_GT(bytes_of("-F zstd --fast=4").size(), bytes_of("-F zstd").size());
  EXPECT_EQ(bytes_of("-F zstd --ultra -22"), bytes_of("-F zstd -22"));
  // zstd reads its negative levels.
  ASSERT_EQ(sluice("-F zstd --fast=4 -c data.bin > neg.zst").status, 0);
  EXPECT_EQ(sh("zstd -dc neg.zst | cmp - data.bin").status, 0);
  // -0: pigz stores; sluice's gzip has no such level, and says so.
  const auto zero = sluice("-0 -c data.bin > out");
  EXPECT_EQ(zero.status, 2);
  EXPECT_NE(zero.err.find("gzip has no level 0"), std::string::npos) << zero.err;
}

TEST_F(Conventions, LevelsInClustersOfShortOptionsAndValuesThatLookLikeLevels) {
  put_text(400 * 1024);
  const auto bytes_of = [&](const std::string& args) {
    const auto r = sluice(args + " > out");
    EXPECT_EQ(r.status, 0) << args << ": " << r.err;
    return get("out");
  };
  // gzip's -9c and -c9, with -j's value attached after them.
  EXPECT_EQ(bytes_of("-9c data.bin"), bytes_of("-9 -c data.bin"));
  EXPECT_EQ(bytes_of("-c1 data.bin"), bytes_of("-1 -c data.bin"));
  EXPECT_EQ(bytes_of("-9cj2 data.bin"), bytes_of("-9 -c -j 2 data.bin"));
  EXPECT_EQ(bytes_of("-c19 -F zstd data.bin"), bytes_of("-19 -c -F zstd data.bin"));
  EXPECT_NE(bytes_of("-1c data.bin"), bytes_of("-9c data.bin"));
  EXPECT_TRUE(fs::exists(dir_ / "data.bin")) << "-9c writes to stdout: nothing in place";
  EXPECT_FALSE(fs::exists(dir_ / "data.bin.gz"));
  // The value of an option is never a level: -o -9 names the output "-9", -S -3 a suffix.
  put("-5", text_bytes(1000, 30));
  ASSERT_EQ(sluice("-o -9 -- -5").status, 0);
  EXPECT_EQ(sh("gzip -dc -- -9 | cmp - -- -5").status, 0);
  ASSERT_EQ(sluice("-S -3 -- -5").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "-5-3"));
  ASSERT_EQ(sluice("-S --best -- -5").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "-5--best"));
  const auto threads = sh("seq 9 | " + testing::sluice() + " -j -1");
  EXPECT_EQ(threads.status, 2);
  EXPECT_NE(threads.err.find("--threads: Value -1 not in range"), std::string::npos) << threads.err;
  // A letter the command does not have is a usage error that names it.
  const auto unknown = sluice("-9z data.bin");
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.err.find("not expected: -z"), std::string::npos) << unknown.err;
  // A level run into other characters is no file name: a usage error before anything is done
  // (gzip: "invalid option -- '-'"), in every command.
  for (const char* args : {"-9-c data.bin", "tar -c -9-x -f x.tar data.bin", "zip -c -9-x -f x.zip data.bin"}) {
    const auto odd = sluice(args);
    EXPECT_EQ(odd.status, 2) << args << ": " << describe(odd);
    EXPECT_NE(odd.err.find("not expected: -9-"), std::string::npos) << odd.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "data.bin.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "x.tar"));
  EXPECT_FALSE(fs::exists(dir_ / "x.zip"));
  // After tar's old-style bundle, the word a letter takes is its value, whatever it looks like.
  const auto bundle = sluice("tar cf -9-x.tar data.bin");
  EXPECT_EQ(bundle.status, 0) << describe(bundle);
  EXPECT_TRUE(fs::exists(dir_ / "-9-x.tar"));
}

TEST_F(Conventions, AnEmptySuffixIsAUsageErrorAsInGzip) {
  put("a", text_bytes(100, 41));
  const auto r = sluice("-S '' a");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("invalid suffix ''"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "a.gz"));
}

TEST_F(Conventions, TheLaterOfKeepAndRmWins) {
  put("a", text_bytes(1000, 31));
  put("b", text_bytes(1000, 32));
  ASSERT_EQ(sluice("--rm -k a").status, 0);
  ASSERT_EQ(sluice("-k --rm b").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "a"));
  EXPECT_TRUE(fs::exists(dir_ / "a.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "b"));
  EXPECT_TRUE(fs::exists(dir_ / "b.gz"));
}

// -q and -v, -n and -N: the later wins, as in gzip, so that an alias's or the SLUICE variable's
// flag can be taken back (-q beat -v, and -N beat -n, wherever each stood).
TEST_F(Conventions, TheLaterOfQuietAndVerboseAndOfNoNameAndNameWins) {
  put("a", text_bytes(1000, 33));
  auto r = sluice("-q -v -c a > /dev/null");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_NE(r.err.find("a: 1000 B ->"), std::string::npos) << r.err;
  r = sluice("-v -q -c a > /dev/null");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.err, "");
  r = sh("SLUICE=-v " + testing::sluice() + " -q -c a > /dev/null");
  EXPECT_EQ(r.err, "") << describe(r);
  // A member named "victim" in its header, as file.gz.
  ASSERT_EQ(sh("cp a victim && gzip victim && mv victim.gz file.gz && cp file.gz again.gz").status, 0);
  r = sluice("-d -N -n file.gz");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(fs::exists(dir_ / "file"));
  EXPECT_FALSE(fs::exists(dir_ / "victim"));
  r = sluice("-d -n -N again.gz");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_TRUE(fs::exists(dir_ / "victim"));
  EXPECT_FALSE(fs::exists(dir_ / "again"));
  // Compressing, -n after -N stores no name.
  ASSERT_EQ(sluice("-N -n -c a > named.gz").status, 0);
  EXPECT_EQ(sh("gzip -lN named.gz | tail -1 | awk '{print $NF}'").out, "named\n");
}

TEST_F(Conventions, ZstdAndPigzThreadFlagsAndZeroForAllCores) {
  put("data.bin", text_bytes(3 * 1024 * 1024, 7));
  ASSERT_EQ(sluice("-j 2 -c data.bin > ref.gz").status, 0);
  for (const char* flags : {"-T2", "-T 2", "-T0", "-p 2", "-p2", "-j 0", "-j 1 -j 2", "--threads=0"}) {
    const auto r = sluice(fmt::format("{} -c data.bin > out.gz", flags));
    ASSERT_EQ(r.status, 0) << flags << ": " << r.err;
    EXPECT_EQ(get("out.gz"), get("ref.gz")) << flags;
  }
  EXPECT_EQ(sluice("-T 1025 data.bin").status, 2);
}

// ---- The environment and the program's names ----

TEST_F(Conventions, SluiceEnvironmentOptionsComeFirstAndTheCommandLineWins) {
  put_text(200 * 1024);
  ASSERT_EQ(sluice("-1 -c data.bin > l1.gz").status, 0);
  ASSERT_EQ(sluice("-9 -c data.bin > l9.gz").status, 0);
  ASSERT_EQ(sluice("-F zstd -c data.bin > z.zst").status, 0);
  ASSERT_EQ(sh(fmt::format("SLUICE=-1 {} -c data.bin > e1.gz", testing::sluice())).status, 0);
  EXPECT_EQ(get("e1.gz"), get("l1.gz"));
  ASSERT_EQ(sh(fmt::format("SLUICE='-1 -T2' {} -9 -c data.bin > e9.gz", testing::sluice())).status, 0);
  EXPECT_EQ(get("e9.gz"), get("l9.gz"));
  ASSERT_EQ(sh(fmt::format("SLUICE='--format=zstd' {} -c data.bin > ez.zst", testing::sluice())).status, 0);
  EXPECT_EQ(get("ez.zst"), get("z.zst"));
  // A word that is not an option (a file name) is refused, naming the variable; so is an option
  // whose value would be the command line's next word, and "--".
  auto r = sh(fmt::format("SLUICE='zstd' {} -c data.bin > x", testing::sluice()));
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("SLUICE holds 'zstd', which is not an option"), std::string::npos) << r.err;
  for (const char* word : {"-F", "-o", "--output", "--"}) {
    r = sh(fmt::format("SLUICE='{}' {} -9 -c data.bin > x", word, testing::sluice()));
    EXPECT_EQ(r.status, 2) << word;
    EXPECT_NE(r.err.find(fmt::format("SLUICE holds '{}' ", word)), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(dir_ / "-9"));
  // What changes what a run does, not how, is refused, alone or in a cluster: an export of
  // SLUICE=--rm removed every input of every run after it (gzip refuses -d or -f in GZIP).
  for (const char* word : {"--rm", "-d", "-kd", "--output-dir=o", "--json", "-f", "-r", "-t", "-Sx", "-c"}) {
    r = sh(fmt::format("SLUICE='{}' {} data.bin", word, testing::sluice()));
    EXPECT_EQ(r.status, 2) << word << describe(r);
    EXPECT_NE(r.err.find(fmt::format("SLUICE holds '{}', which changes what a run does", word)), std::string::npos)
        << r.err;
    EXPECT_TRUE(fs::exists(dir_ / "data.bin")) << word;
    EXPECT_FALSE(fs::exists(dir_ / "data.bin.gz")) << word;
  }
  ASSERT_EQ(
      sh(fmt::format("SLUICE='-kqn -T2 --no-pin --chunk-size=64K' {} -c data.bin > k.gz", testing::sluice())).status,
      0);
}

TEST_F(Conventions, InvokedAsUnsluiceItDecompressesAsSluicecatItWritesToStdout) {
  put("data.bin", text_bytes(100000, 3));
  ASSERT_EQ(sh(fmt::format("ln -s {} unsluice && ln -s {} sluicecat", testing::sluice(), testing::sluice())).status, 0);
  ASSERT_EQ(sluice("data.bin").status, 0);
  const auto cat = sh("./sluicecat data.bin.gz > back && cmp back data.bin");
  EXPECT_EQ(cat.status, 0) << describe(cat);
  fs::remove(dir_ / "data.bin");
  const auto un = sh("./unsluice data.bin.gz");
  EXPECT_EQ(un.status, 0) << describe(un);
  EXPECT_EQ(get("data.bin"), text_bytes(100000, 3));
  EXPECT_TRUE(fs::exists(dir_ / "data.bin.gz")) << "inputs are kept, as with sluice -d";
}

// ---- File conventions: -S, -N, zcat -f, links ----

TEST_F(Conventions, SuffixFlagNamesTheOutputAndIsTakenOffWhenDecompressing) {
  put("data.bin", text_bytes(50000, 4));
  ASSERT_EQ(sluice("-S .z data.bin").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "data.bin.z"));
  EXPECT_EQ(sh("gzip -dc data.bin.z | cmp - data.bin").status, 0);
  fs::rename(dir_ / "data.bin", dir_ / "orig");
  ASSERT_EQ(sluice("-d -S .z data.bin.z").status, 0);
  EXPECT_EQ(get("data.bin"), get("orig"));
  // gzip reads it the same way.
  EXPECT_EQ(sh("gzip -dc -S .z data.bin.z | cmp - orig").status, 0);
  const auto again = sluice("-S .z data.bin.z");
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("already has the .z suffix"), std::string::npos) << again.err;
}

TEST_F(Conventions, NameFlagRestoresTheRecordedNameAndTime) {
  put("original.txt", text_bytes(50000, 5));
  ASSERT_EQ(sh("touch -d @1000000000 original.txt").status, 0);
  ASSERT_EQ(sluice("original.txt").status, 0);
  fs::rename(dir_ / "original.txt.gz", dir_ / "renamed.gz");
  fs::remove(dir_ / "original.txt");
  ASSERT_EQ(sh("touch -d @1500000000 renamed.gz").status, 0);
  const auto r = sluice("-dN renamed.gz");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(fs::exists(dir_ / "original.txt"));
  EXPECT_EQ(get("original.txt"), text_bytes(50000, 5));
  struct stat status {};
  ASSERT_EQ(::stat((dir_ / "original.txt").c_str(), &status), 0);
  EXPECT_EQ(status.st_mtime, 1000000000) << "the time the header records";
  // Without -N, the name comes from the file's name and the time from the file, as gunzip does.
  ASSERT_EQ(sluice("-d renamed.gz").status, 0);
  ASSERT_EQ(::stat((dir_ / "renamed").c_str(), &status), 0);
  EXPECT_EQ(status.st_mtime, 1500000000);
  // gunzip -N agrees on the name.
  fs::remove(dir_ / "original.txt");
  ASSERT_EQ(sh("gunzip -N -k renamed.gz").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "original.txt"));

  // A recorded name longer than a file name may be (300 bytes, from Python's gzip): cut to 255
  // bytes with a warning (exit 2), as gunzip -N does; it had failed, nothing written.
  const std::string long_name(300, 'L');
  ASSERT_EQ(run_python(fmt::format("import gzip\nwith open('long.gz', 'wb') as raw:\n"
                                   "  with gzip.GzipFile('{}', 'wb', fileobj=raw) as f: f.write(b'long')\n",
                                   long_name))
                .status,
            0);
  const auto cut = sluice("-dN long.gz");
  EXPECT_EQ(cut.status, 2) << describe(cut);
  EXPECT_NE(cut.err.find("warning: long.gz: the name it records is 300 bytes"), std::string::npos) << cut.err;
  EXPECT_EQ(get(long_name.substr(0, 255)), testing::to_bytes(std::string("long")));
  EXPECT_EQ(sluice("-dN -q -f long.gz").status, 2);  // quiet, still a warning's status
}

TEST_F(Conventions, OutputDashIsStandardOutputAsInTheSubcommandsAndLz4) {
  put("data.bin", text_bytes(5000, 9));
  const auto packed = sluice("-o - data.bin > out.gz");
  ASSERT_EQ(packed.status, 0) << describe(packed);
  EXPECT_FALSE(fs::exists(dir_ / "-")) << "a file named '-' was written";
  EXPECT_EQ(sh("gzip -dc out.gz | cmp - data.bin").status, 0);
  const auto unpacked = sluice("-d -o - out.gz > back");
  ASSERT_EQ(unpacked.status, 0) << describe(unpacked);
  EXPECT_EQ(get("back"), get("data.bin"));
  EXPECT_FALSE(fs::exists(dir_ / "-"));
  // Still one input, as -o PATH takes; with -c it says the two do not go together.
  put("other.bin", text_bytes(100, 10));
  const auto two = sluice("-o - data.bin other.bin > /dev/null");
  EXPECT_EQ(two.status, 2);
  EXPECT_NE(two.err.find("-o takes one input file"), std::string::npos) << two.err;
  EXPECT_EQ(sluice("-c -o - data.bin > /dev/null").status, 2);
}

TEST_F(Conventions, DecompressToStdoutWithForcePassesOtherDataThroughAsZcatDoes) {
  put("plain.txt", {'p', 'l', 'a', 'i', 'n', '\n'});
  put("data.bin", text_bytes(70000, 6));
  ASSERT_EQ(sluice("-F zstd data.bin").status, 0);
  const auto r = sluice("-dcf plain.txt data.bin.zst plain.txt > out");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(sh("zcat -f plain.txt > expect && cat data.bin >> expect && cat plain.txt >> expect").status, 0);
  EXPECT_EQ(get("out"), get("expect"));
  // From a pipe too, and an empty input is empty output.
  EXPECT_EQ(sh(fmt::format("cat plain.txt | {} -dcf | cmp - plain.txt", testing::sluice())).status, 0);
  EXPECT_EQ(sh(fmt::format("{} -dcf < /dev/null | wc -c | grep -qx 0", testing::sluice())).status, 0);
  // Without -f it is an error, and without -c -f does not pass data through to a file.
  EXPECT_EQ(sluice("-dc plain.txt > /dev/null").status, 1);
}

TEST_F(Conventions, DecompressToStdoutWithForceCopiesDataAfterTheLastMemberAsGzipAndZstdDo) {
  put("tail.txt", {'p', 'l', 'a', 'i', 'n', ' ', 't', 'a', 'i', 'l', '\n'});
  put("data.bin", text_bytes(3 << 20, 7));  // several chunks: decoded in parallel at -j2
  ASSERT_EQ(sh("cp data.bin small.bin && truncate -s 5000 small.bin && gzip -k small.bin && gzip -c data.bin > big.gz")
                .status,
            0);
  ASSERT_EQ(sluice("-k data.bin").status, 0);
  ASSERT_EQ(sluice("-F zstd -k small.bin").status, 0);
  // A member, then text; a member, then another format's frame (not a member: copied as it is).
  ASSERT_EQ(sh("cat small.bin.gz tail.txt > a.gz && cat small.bin.zst tail.txt > a.zst && cat data.bin.gz tail.txt "
               "> b.gz && cat big.gz small.bin.zst > c.gz && printf 'xxxxxxxxxx' | cat - a.gz > offset.gz")
                .status,
            0);
  for (const std::string file : {"a.gz", "b.gz", "c.gz"}) {
    for (const std::string threads : {"-j1", "-j2"}) {
      const auto r = sluice(fmt::format("-dcf {} {} > out", threads, file));
      EXPECT_EQ(r.status, 0) << file << " " << threads << ": " << describe(r);
      ASSERT_EQ(sh(fmt::format("gzip -dcf {} > expect", file)).status, 0);
      EXPECT_EQ(get("out"), get("expect")) << file << " " << threads;
    }
  }
  EXPECT_EQ(sluice("-dcf a.zst > out").status, 0);
  ASSERT_EQ(sh("zstd -dcfq a.zst > expect").status, 0);
  EXPECT_EQ(get("out"), get("expect"));
  // Standard input that is a file, from where the caller left it: offsets are the stream's.
  const auto shifted = sh(fmt::format("{{ head -c 10 > /dev/null && {} -dcf > out; }} < offset.gz", testing::sluice()));
  EXPECT_EQ(shifted.status, 0) << describe(shifted);
  ASSERT_EQ(sh("gzip -dcf a.gz > expect").status, 0);
  EXPECT_EQ(get("out"), get("expect"));
  // From a pipe alike (the bytes after the stream were read with it: they were lost, with a
  // warning), a long tail too, after members looked for ahead (-j2), as `curl | zcat -f` gives.
  ASSERT_EQ(sh("head -c 8000000 /dev/urandom > noise && cat data.bin.gz big.gz noise > d.gz").status, 0);
  for (const std::string file : {"a.gz", "b.gz", "c.gz", "d.gz", "a.zst"}) {
    for (const std::string threads : {"-j1", "-j2"}) {
      const auto piped = sh(fmt::format("cat {} | {} -dcf {} > out", file, testing::sluice(), threads));
      EXPECT_EQ(piped.status, 0) << file << " " << threads << ": " << describe(piped);
      ASSERT_EQ(sh(fmt::format("cat {} | {} > expect", file, file == "a.zst" ? "zstd -dcfq" : "gzip -dcf")).status, 0);
      EXPECT_TRUE(get("out") == get("expect")) << file << " " << threads;
    }
  }
  // Without -f it stays a warning, and the output is the stream's alone.
  EXPECT_EQ(sluice("-dc a.gz > out").status, 2);
  EXPECT_EQ(get("out"), get("small.bin"));
}

TEST_F(Conventions, SymbolicAndHardLinksAreRefusedUnlessForcedAsGzipDoes) {
  put("data.bin", text_bytes(10000, 8));
  ASSERT_EQ(sh("ln -s data.bin soft && ln data.bin hard").status, 0);
  const auto soft = sluice("soft");
  EXPECT_EQ(soft.status, 1);
  EXPECT_EQ(soft.err, "sluice: soft: is a symbolic link; use -f to take the file it points to\n");
  const auto hard = sluice("hard");
  EXPECT_EQ(hard.status, 1);
  EXPECT_EQ(hard.err, "sluice: hard: has 1 other link; use -f to take it\n");
  EXPECT_FALSE(fs::exists(dir_ / "soft.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "hard.gz"));
  // To stdout they are read as gzip -c reads them; -f takes them.
  EXPECT_EQ(sluice("-c soft > s.gz").status, 0);
  EXPECT_EQ(sluice("-f soft hard").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "soft.gz"));
  EXPECT_TRUE(fs::exists(dir_ / "hard.gz"));
}

// -r as gzip and zstd take it: a link to a directory named is not walked, and a file with other
// names found in the walk is left alone (--rm removed every name of it).
TEST_F(Conventions, RecursionKeepsTheLinkRulesUnlessForced) {
  ASSERT_EQ(sh("mkdir real tree && echo a > real/a && ln -s real lnk && echo d > tree/f && ln tree/f tree/f2 && "
               "echo e > tree/e")
                .status,
            0);
  const auto linked = sluice("-r lnk");
  EXPECT_EQ(linked.status, 1);
  EXPECT_EQ(linked.err, "sluice: lnk: is a symbolic link; use -f to take the file it points to\n");
  EXPECT_FALSE(fs::exists(dir_ / "real" / "a.gz"));
  const auto hard = sluice("-r --rm tree");
  EXPECT_EQ(hard.status, 1) << hard.err;
  EXPECT_NE(hard.err.find("sluice: tree/f: has 1 other link; use -f to take it\n"), std::string::npos) << hard.err;
  EXPECT_NE(hard.err.find("sluice: tree/f2: has 1 other link"), std::string::npos) << hard.err;
  EXPECT_TRUE(fs::exists(dir_ / "tree" / "f"));
  EXPECT_TRUE(fs::exists(dir_ / "tree" / "f2"));
  EXPECT_FALSE(fs::exists(dir_ / "tree" / "f.gz"));
  EXPECT_TRUE(fs::exists(dir_ / "tree" / "e.gz"));  // the others are done
  EXPECT_EQ(sluice("-rf lnk").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "real" / "a.gz"));
  // Only files the walk takes are judged: decompressing, a plain file with other names is left
  // out as any plain file is, not a failure.
  ASSERT_EQ(sh("mkdir packed && echo p > packed/plain && ln packed/plain packed/plain2 && echo g | gzip > packed/g.gz")
                .status,
            0);
  const auto unpacked = sluice("-d -r packed");
  EXPECT_EQ(unpacked.status, 0) << unpacked.err;
  EXPECT_EQ(unpacked.err, "");
  EXPECT_TRUE(fs::exists(dir_ / "packed" / "g"));
}

// What -r's walk does not take (a symbolic link, a FIFO) is named, as gzip and pigz name it, and
// the status is a warning's; it was left out without a word. A word after the options is a file,
// `demo` as `tar` is (`sluice -k demo` ran the demo).
TEST_F(Conventions, RecursionNamesWhatItLeavesAlone) {
  ASSERT_EQ(sh("mkdir tree && echo a > tree/a && ln -s a tree/link && mkfifo tree/fifo && echo d > demo").status, 0);
  for (const char* mode : {"-r tree", "-l -r tree"}) {  // the first writes tree/a.gz, the second lists it
    const auto r = sluice(mode);
    EXPECT_EQ(r.status, 2) << mode << r.err;
    EXPECT_NE(r.err.find("sluice: warning: tree/fifo: is not a regular file or a directory: left alone\n"
                         "sluice: warning: tree/link: is a symbolic link, which -r does not follow: left alone\n"),
              std::string::npos)
        << mode << r.err;
  }
  EXPECT_TRUE(fs::exists(dir_ / "tree" / "a.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "tree" / "link.gz"));
  EXPECT_EQ(sluice("-q -t -r tree").err, "");
  const auto demo = sluice("-k demo");
  EXPECT_EQ(demo.status, 2);
  EXPECT_NE(demo.err.find("for a file of that name, write ./demo"), std::string::npos) << demo.err;
  EXPECT_EQ(sluice("-k ./demo").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "demo.gz"));
}

// An output that is another input of the run: x.gz.gz decoded to x.gz while x.gz is decoded too
// gave exit 0 or 1 from run to run (which came first was up to the threads; with -f, x.gz could
// be replaced before it was read). That job is refused and named; the other is done.
TEST_F(Conventions, AnOutputThatIsAnotherInputIsRefused) {
  ASSERT_EQ(sh("echo inner | gzip > x.gz && echo outer | gzip | gzip > x.gz.gz && cp x.gz.gz y.gz.gz").status, 0);
  for (int run = 0; run < 3; ++run) {
    const auto r = sluice("-d -f x.gz.gz x.gz");
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_NE(r.err.find("sluice: x.gz.gz: its output x.gz is also an input of this run; left alone\n"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(get("x"), testing::to_bytes(std::string("inner\n")));
    EXPECT_EQ(get("x.gz.gz"), get("y.gz.gz"));
  }
}

// -t, -l and -v print a name escaped, as the messages do: "nl\nname.gz" forged an "OK" line of its
// own, and an escape sequence in a name coloured the terminal.
TEST_F(Conventions, ListingsEscapeNamesAsMessagesDo) {
  put("nl\nname", text_bytes(10, 1));
  put("esc\033[31mred", text_bytes(10, 2));
  ASSERT_EQ(sluice("-k nl*name esc*red").status, 0);
  const auto tested = sluice("-t nl*name.gz esc*red.gz");
  EXPECT_EQ(std::count(tested.err.begin(), tested.err.end(), '\n'), 2) << tested.err;
  EXPECT_EQ(tested.err.rfind("nl\\nname.gz: OK (", 0), 0u) << tested.err;
  EXPECT_NE(tested.err.find("\nesc\\033[31mred.gz: OK ("), std::string::npos) << tested.err;
  const auto listed = sluice("-l nl*name.gz");
  EXPECT_NE(listed.out.find(" nl\\nname.gz\n"), std::string::npos) << listed.out;
  const auto verbose = sluice("-v -f -k nl*name");
  EXPECT_EQ(verbose.err.rfind("nl\\nname: 10 B -> ", 0), 0u) << verbose.err;
}

// `-` among files is standard input to standard output, as it is alone: not to a terminal, not
// with --json; and compressed data is not read from a terminal (gzip: "compressed data not read
// from a terminal"), where sluice waited for it.
TEST_F(Conventions, StandardInputAmongFilesKeepsTheTerminalAndJsonRules) {
  put("a", text_bytes(1000, 3));
  const auto terminal = sh(fmt::format("echo data | script -qec {} /dev/null", quote(testing::sluice() + " - a")));
  EXPECT_EQ(terminal.status, 1) << terminal.out;
  EXPECT_NE(terminal.out.find("refusing to write compressed data to a terminal"), std::string::npos) << terminal.out;
  EXPECT_FALSE(fs::exists(dir_ / "a.gz"));
  const auto json = sluice("--json - a < a > out");
  EXPECT_EQ(json.status, 2) << json.err;
  EXPECT_NE(json.err.find("--json prints on standard output"), std::string::npos) << json.err;
  EXPECT_FALSE(fs::exists(dir_ / "a.gz"));
  for (const char* args : {"-d -o x -", "-t -", "-dc a.gz -"}) {
    const auto r =
        sh(fmt::format("timeout 10 script -qec {} /dev/null < /dev/null", quote(testing::sluice() + " " + args)));
    EXPECT_EQ(r.status, 1) << args << r.out;
    EXPECT_NE(r.out.find("refusing to read compressed data from a terminal (use -f to force)"), std::string::npos)
        << args << r.out;
  }
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

// Messages that cannot be written are dropped, as gzip's are: the run ends with its own status
// (it died of std::terminate, 134, at the first message, in the middle of a batch too).
TEST_F(Conventions, AnUnwritableStandardErrorLeavesTheRunItsOwnStatus) {
  put("a", text_bytes(1000, 4));
  put("b", text_bytes(1000, 5));
  EXPECT_EQ(sluice("-v a b 2>&-").status, 0);
  EXPECT_TRUE(fs::exists(dir_ / "a.gz"));
  EXPECT_TRUE(fs::exists(dir_ / "b.gz"));
  EXPECT_EQ(sluice("-f a missing 2>/dev/full").status, 1);
  EXPECT_EQ(sluice("-l missing.gz 2>/dev/full").status, 1);
  EXPECT_EQ(sluice("--bogus 2>/dev/full").status, 2);
}

// Past `ulimit -f` a write fails (SIGXFSZ killed the process with its temporary left): the output
// that was there is kept, nothing else is left, exit 1 with the reason.
TEST_F(Conventions, AFileSizeLimitFailsTheOutputAndLeavesNothing) {
  put("big", random_bytes(3'000'000, 6));
  put("big.gz", text_bytes(100, 7));
  const auto r = sh(fmt::format("ulimit -f 1024; {} -f big", testing::sluice()));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("big.gz: write failed: File too large"), std::string::npos) << r.err;
  EXPECT_EQ(get("big.gz"), text_bytes(100, 7));
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir_.path())) names.push_back(entry.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"big", "big.gz"}));
}

// -q prints nothing but errors, as gzip -q: a warning (trailing garbage) only sets the status.
TEST_F(Conventions, QuietSaysNothingOfWarnings) {
  ASSERT_EQ(sh("seq 10 | gzip > g.gz && echo junk >> g.gz").status, 0);
  for (const char* args : {"-q -dc g.gz", "-q -t g.gz", "-q -dk g.gz"}) {
    const auto r = sluice(std::string(args) + " > /dev/null");
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_EQ(r.err, "") << args;
  }
  const auto tested = sluice("-t g.gz");
  EXPECT_NE(tested.err.find("ignored (the data before it was checked)"), std::string::npos) << tested.err;
}

// ---- Outputs ----

// gzip: "a.gz already exists; not overwritten". A name made from the input is not written through
// a link to a device, or into a FIFO (which would block); with -f the link or FIFO is replaced.
TEST_F(Conventions, AnExistingDeviceOrFifoUnderTheOutputsNameIsNotWrittenInto) {
  put("a", text_bytes(1000, 35));
  put("b", text_bytes(1000, 36));
  ASSERT_EQ(sh("ln -s /dev/full a.gz && mkfifo b.gz").status, 0);
  for (const char* name : {"a", "b"}) {
    const auto r = sh("timeout 20 " + testing::sluice() + " " + name);
    EXPECT_EQ(r.status, 1) << name;
    EXPECT_EQ(r.err, fmt::format("sluice: {}.gz: already exists; use -f to overwrite\n", name)) << name;
  }
  EXPECT_TRUE(fs::is_symlink(dir_ / "a.gz"));
  EXPECT_TRUE(fs::is_fifo(dir_ / "b.gz"));
  ASSERT_EQ(sh("timeout 20 " + testing::sluice() + " -f a b").status, 0);
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir_ / "a.gz")));
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir_ / "b.gz")));
  EXPECT_EQ(sh("gzip -dc a.gz | cmp - a && gzip -dc b.gz | cmp - b").status, 0);
  EXPECT_TRUE(fs::is_character_file("/dev/full"));
  // A device named with -o is written in place, as before.
  EXPECT_EQ(sluice("-o /dev/null a").status, 0);
}

// As gzip: the output of someone else's file gets its owner and group where the process may give
// them (root), and never its setuid, setgid or sticky bits.
TEST_F(Conventions, OutputsGetTheInputsOwnerButNoSetuidBits) {
  put("tool", text_bytes(1000, 37));
  if (::geteuid() == 0) {
    ASSERT_EQ(sh("chown 65534:65534 tool").status, 0);
  }
  ASSERT_EQ(sh("chmod 6755 tool").status, 0);
  ASSERT_EQ(sluice("-k tool").status, 0);
  ASSERT_EQ(sh("mv tool tool.orig").status, 0);
  ASSERT_EQ(sluice("-d tool.gz").status, 0);
  for (const char* name : {"tool.gz", "tool"}) {
    struct stat status {};
    ASSERT_EQ(::stat((dir_ / name).c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0755u) << name;
    if (::geteuid() == 0) {
      EXPECT_EQ(status.st_uid, 65534u) << name;
      EXPECT_EQ(status.st_gid, 65534u) << name;
    }
  }
}

TEST_F(Conventions, ReplacingAFileWithALongNameNeedsNoLongerName) {
  const std::string name(252, 'n');
  put(name, text_bytes(1000, 40));
  ASSERT_EQ(sluice("-k " + name).status, 0);
  const auto forced = sluice("-f -k " + name);
  EXPECT_EQ(forced.status, 0) << forced.err;
  const auto back = sluice("-d -f " + name + ".gz");
  EXPECT_EQ(back.status, 0) << back.err;
  EXPECT_EQ(get(name), text_bytes(1000, 40));
}

// ---- -r ----

TEST_F(Conventions, AnUnreadableFileInATreeFailsAloneAndTheRestIsDone) {
  if (::geteuid() == 0 && sh("command -v setpriv").status != 0) GTEST_SKIP() << "root without setpriv";
  put("tree/a.txt", text_bytes(1000, 38));
  put("tree/locked.txt", text_bytes(1000, 39));
  std::string as_user;
  if (::geteuid() == 0) {
    as_user = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
    ASSERT_EQ(sh("chmod -R a+rwX tree && chmod a+x .").status, 0);
    if (sh(as_user + "test -w tree").status != 0) GTEST_SKIP() << "nobody cannot reach the scratch directory";
  }
  ASSERT_EQ(sh("chmod 000 tree/locked.txt").status, 0);
  const auto r = sh(as_user + testing::sluice() + " -r tree");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("sluice: tree/locked.txt: cannot open: Permission denied"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "tree/a.txt.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "tree/locked.txt.gz"));
}

TEST_F(Conventions, RecursiveLeavesCompressedFilesAndTheOutputDirectoryAlone) {
  put("tree/a.log", text_bytes(20000, 9));
  put("tree/sub/b.txt", text_bytes(20000, 10));
  ASSERT_EQ(sh("cd tree && gzip -c a.log > sub/old.gz && cp sub/old.gz sub/renamed.log && tar czf x.tgz a.log && "
               "xz -c a.log > y.xz && zstd -q -c a.log -o z.zst && printf 'BZh9' > w.bz2")
                .status,
            0);
  const auto first = sluice("-r tree --output-dir tree/out");
  ASSERT_EQ(first.status, 0) << first.err;
  const auto second = sluice("-r tree --output-dir tree/out -f");
  ASSERT_EQ(second.status, 0) << second.err;
  const auto found = sh("cd tree/out && find . -type f | sort");
  EXPECT_EQ(found.out, "./tree/a.log.gz\n./tree/sub/b.txt.gz\n") << "no output of a compressed file, nothing "
                                                                    "from the output directory";
  // In place: the outputs of a first run are not compressed again by a second.
  const auto in_place = sluice("-r tree/sub");
  ASSERT_EQ(in_place.status, 0) << in_place.err;
  const auto again = sluice("-r tree/sub");
  EXPECT_EQ(again.status, 1) << "b.txt.gz exists";
  EXPECT_FALSE(fs::exists(dir_ / "tree/sub/b.txt.gz.gz"));
  EXPECT_FALSE(fs::exists(dir_ / "tree/sub/renamed.log.gz"));
}

TEST_F(Conventions, AnUnreadableSubdirectoryIsNamedAndTheRestIsDone) {
  if (::geteuid() == 0 && sh("command -v setpriv").status != 0) GTEST_SKIP() << "root without setpriv";
  put("tree/a.txt", text_bytes(1000, 11));
  put("tree/locked/b.txt", text_bytes(1000, 12));
  put("tree/z/c.txt", text_bytes(1000, 13));
  // As root every directory is readable: run sluice as nobody over a tree nobody may write.
  std::string as_user;
  if (::geteuid() == 0) {
    as_user = "setpriv --reuid=65534 --regid=65534 --clear-groups ";
    ASSERT_EQ(sh("chmod -R a+rwX tree && chmod a+x .").status, 0);
    if (sh(as_user + "test -w tree").status != 0) GTEST_SKIP() << "nobody cannot reach the scratch directory";
  }
  ASSERT_EQ(sh("chmod 000 tree/locked").status, 0);
  const auto r = sh(as_user + testing::sluice() + " -r tree");
  sh("chmod 755 tree/locked");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("sluice: tree/locked: cannot read directory: Permission denied"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "tree/a.txt.gz"));
  EXPECT_TRUE(fs::exists(dir_ / "tree/z/c.txt.gz"));
}

// ---- Messages ----

TEST_F(Conventions, WhatIsPrintedOnAFullStandardOutputIsAnError) {
  put("data.bin", text_bytes(1000, 33));
  ASSERT_EQ(sluice("-k data.bin").status, 0);
  for (const char* args : {"-l data.bin.gz", "-t --json data.bin.gz", "--version", "--help", "tar --help"}) {
    const auto r = sluice(std::string(args) + " > /dev/full");
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_TRUE(r.err.ends_with("sluice: standard output: write error: No space left on device\n")) << args << r.err;
  }
}

TEST_F(Conventions, AnUnknownOptionInTheEnvironmentIsBlamedOnIt) {
  put("data.bin", text_bytes(1000, 34));
  const auto r = sh("SLUICE=--bogus " + testing::sluice() + " -c data.bin > out");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("--bogus (from SLUICE='--bogus')"), std::string::npos) << r.err;
}

TEST_F(Conventions, JsonRecordsAreValidForNamesThatAreNotUtf8AndCarryTheirPosition) {
  const std::string latin1 = "caf\xe9.txt";  // é in Latin-1: not UTF-8
  put(latin1, text_bytes(1000, 14));
  put("b\xc3\xa9.txt", text_bytes(1000, 15));  // UTF-8 é
  const auto r =
      sh(fmt::format("{} --json -k $'caf\\xe9.txt' $'b\\xc3\\xa9.txt' missing | /usr/bin/python3 -c '"
                     "import json, os, sys\n"
                     "for line in sys.stdin:\n"
                     "    r = json.loads(line)\n"
                     "    if \"summary\" in r: continue\n"
                     "    print(r[\"index\"], os.fsencode(r[\"input\"]).hex(), r[\"status\"])'",
                     testing::sluice()));
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_NE(r.out.find(fmt::format("0 {} ok", "636166e92e747874")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fmt::format("1 {} ok", "62c3a92e747874")), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 6d697373696e67 error"), std::string::npos) << r.out;
}

TEST_F(Conventions, HelpHasNoParserArtifactsAndACommandNameLaterIsNotTakenSilently) {
  for (const char* command : {"", "demo ", "tar ", "zip ", "run ", "transcode "}) {
    const auto help = sluice(fmt::format("{}--help", command));
    ASSERT_EQ(help.status, 0) << command;
    for (const char* artifact : {":{", "INT in", "... ...", "TEXT", "REQUIRED", "Excludes:", "Needs:"}) {
      EXPECT_EQ(help.out.find(artifact), std::string::npos) << command << artifact << "\n" << help.out;
    }
    // Positionals are named in capitals, as in the usage line.
    const std::size_t positionals = help.out.find("Positionals:\n  ");
    ASSERT_NE(positionals, std::string::npos) << command;
    EXPECT_TRUE(std::isupper(static_cast<unsigned char>(help.out[positionals + 15]))) << command << help.out;
  }
  const auto help = sluice("--help");
  for (const char* flag : {"-l,--list", "-N,--name", "-S,--suffix", "-j,-T,-p,--threads", "--ultra"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
  put("data.bin", text_bytes(100, 16));
  const auto r = sluice("-c data.bin tar");
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.err.find("for a file of that name, write ./tar"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sluice
