// End-to-end tests of the `sluice` command against the real gzip, pigz, zstd, lz4 and GNU tar:
// file conventions, interop in both directions, determinism across thread counts, and every
// error path (exit status, message, and that no output or temporary file is left behind).
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fmt/format.h>

#include "sluice/version.h"
#include "tests/test_support.h"

namespace sluice {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;
using testing::describe;
using testing::quote;
using testing::random_bytes;
using testing::text_bytes;
using testing::to_bytes;

struct Format {
  std::string codec;      // -F value
  std::string extension;  // what sluice appends
  std::string tool;       // the stock tool that reads and writes it
};
const std::vector<Format> kFormats = {{"gzip", ".gz", "gzip"}, {"zstd", ".zst", "zstd"}, {"lz4", ".lz4", "lz4"}};

void PrintTo(const Format& f, std::ostream* os) { *os << f.codec; }

class Cli : public testing::CommandTest {
 protected:
  // data.bin: 4 MB of real text, the C++ standard library's headers, which every machine that
  // builds sluice has. (text_bytes' synthetic text, 16 words, is not a fair test of a match
  // finder: libdeflate makes it 9% larger than zlib at level 6, the Silesia corpus 1% smaller.)
  void put_real_text() {
    const auto r = sh("cat /usr/include/c++/*/bits/*.h | head -c 4000000 > data.bin && test -s data.bin");
    ASSERT_EQ(r.status, 0) << describe(r);
  }
  bool exists(const std::string& name) { return fs::exists(dir_ / name); }
  std::vector<std::string> listing() { return dir_.listing(); }
  // The directory holds exactly these names: no stray output, no leftover temporary.
  void expect_listing(std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    EXPECT_EQ(listing(), names);
  }
};

// ---- Compression: naming, inputs kept, stock tools read what we write ----

class CliFormat : public Cli, public ::testing::WithParamInterface<Format> {};

TEST_P(CliFormat, CompressedFilesDecodeWithTheStockToolAtEdgeSizes) {
  const auto& f = GetParam();
  const std::size_t chunk = 64 * 1024;
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, chunk - 1, chunk, chunk + 1, 10 * chunk + 5}) {
    const Bytes input = text_bytes(size, size);
    put("data.bin", input);
    const auto r = sluice(fmt::format("-F {} --chunk-size 64K data.bin", f.codec));
    ASSERT_EQ(r.status, 0) << describe(r);
    expect_listing({"data.bin", "data.bin" + f.extension});
    EXPECT_EQ(get("data.bin"), input) << "the input must be kept";
    const auto decoded = sh(fmt::format("{} -dc data.bin{} > back && cmp back data.bin", f.tool, f.extension));
    EXPECT_EQ(decoded.status, 0) << f.tool << " could not read our output at size " << size << ": " << decoded.err;
    fs::remove(dir_ / ("data.bin" + f.extension));
    fs::remove(dir_ / "back");
  }
}

TEST_P(CliFormat, OutputIsIdenticalForOneTwoAndEightThreads) {
  const auto& f = GetParam();
  put("data.bin", text_bytes(2 * 1024 * 1024 + 3, 5));
  for (int threads : {1, 2, 8}) {
    const auto r = sluice(fmt::format("-F {} --chunk-size 64K -j {} -c data.bin > out.{}", f.codec, threads, threads));
    ASSERT_EQ(r.status, 0) << describe(r);
  }
  EXPECT_EQ(get("out.1"), get("out.2"));
  EXPECT_EQ(get("out.1"), get("out.8"));
  // Threads not pinned to CPUs: the same bytes, and they decode.
  const auto r = sluice(fmt::format("-F {} --chunk-size 64K --no-pin -c data.bin > out.free", f.codec));
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(get("out.free"), get("out.1"));
  ASSERT_EQ(sluice("--no-pin -d -c out.free > back").status, 0);
  EXPECT_EQ(get("back"), get("data.bin"));
}

TEST_P(CliFormat, FiltersStdinToStdoutBothWays) {
  const auto& f = GetParam();
  put("data.bin", text_bytes(500 * 1024, 6));
  ASSERT_EQ(sluice(fmt::format("-F {} < data.bin > packed", f.codec)).status, 0);
  EXPECT_EQ(sh(fmt::format("{} -dc packed | cmp - data.bin", f.tool)).status, 0);
  ASSERT_EQ(sluice("-d < packed > back").status, 0);
  EXPECT_EQ(get("back"), get("data.bin"));
}

TEST_P(CliFormat, DecompressRestoresTheNameAndKeepsTheCompressedFile) {
  const auto& f = GetParam();
  const Bytes input = random_bytes(300 * 1024, 7);
  put("orig", input);
  ASSERT_EQ(sh(fmt::format("{} -q -c orig > 'my file{}'", f.tool, f.extension)).status, 0);
  const auto r = sluice(fmt::format("-d 'my file{}'", f.extension));
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(get("my file"), input);
  EXPECT_TRUE(exists("my file" + f.extension));
}

TEST_P(CliFormat, CorruptAndTruncatedInputsFailCleanly) {
  const auto& f = GetParam();
  put("data.bin", text_bytes(400 * 1024, 8));
  ASSERT_EQ(sluice(fmt::format("-F {} -c data.bin > good", f.codec)).status, 0);
  const Bytes good = get("good");
  fs::remove(dir_ / "data.bin");

  Bytes corrupt = good;
  corrupt[corrupt.size() / 2] ^= 0x55;
  Bytes truncated(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(good.size() / 2));
  const std::vector<std::tuple<std::string, Bytes, std::string>> cases = {{"corrupt", corrupt, "corrupt"},
                                                                          {"truncated", truncated, "truncated"}};
  for (const auto& [name, bytes, message] : cases) {
    const std::string file = name + f.extension;
    put(file, bytes);
    const auto r = sluice("-d " + file);
    EXPECT_EQ(r.status, 1) << name << ": " << describe(r);
    EXPECT_NE(r.err.find(file), std::string::npos) << "the message must name the file: " << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << name << ": " << r.err;
    EXPECT_NE(r.err.find("at byte"), std::string::npos) << "the message must give an offset: " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line per failure: " << r.err;
    expect_listing({"good", file});
    EXPECT_EQ(get(file), bytes) << "the input must be untouched";
    fs::remove(dir_ / file);
  }
}

// Trailing garbage: everything before it is written and the output published, with a warning
// naming the file and the byte, and exit status 2, as gzip does; the input is kept, even with --rm.
TEST_P(CliFormat, TrailingGarbageIsAWarningAfterTheWholeOutputIsWritten) {
  const auto& f = GetParam();
  const Bytes data = text_bytes(3 * 1024 * 1024 + 5, 8);
  put("data.bin", data);
  ASSERT_EQ(sluice(fmt::format("-F {} -c data.bin > good", f.codec)).status, 0);
  Bytes garbage = get("good");
  const std::size_t end = garbage.size();
  for (char c : std::string("this is not compressed")) garbage.push_back(static_cast<std::uint8_t>(c));
  for (const std::string threads : {"1", "2"}) {
    SCOPED_TRACE(threads + " threads");
    const std::string file = "garbage" + f.extension;
    put(file, garbage);
    auto r = sluice("-d --rm -j " + threads + " " + file);
    EXPECT_EQ(r.status, 2) << describe(r);
    EXPECT_NE(r.err.find(fmt::format("warning: {}: trailing garbage", file)), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(fmt::format("(at byte {})", end)), std::string::npos) << r.err;
    EXPECT_EQ(get("garbage"), data);
    EXPECT_EQ(get(file), garbage) << "the input must be kept";
    r = sluice("-dc -j " + threads + " " + file + " > out");
    EXPECT_EQ(r.status, 2) << describe(r);
    EXPECT_EQ(get("out"), data);
    fs::remove(dir_ / "garbage");
  }
  // A few bytes (a newline, "xyz"), fewer than a frame's magic: garbage too, not a frame cut
  // short; and from a pipe. The start of a real magic is a truncation.
  for (const std::string tail : {"\n", "xyz", "garbage"}) {
    Bytes few = get("good");
    few.insert(few.end(), tail.begin(), tail.end());
    put("few" + f.extension, few);
    for (const std::string& how : {"-j 1 few" + f.extension, "-j 2 few" + f.extension, "< few" + f.extension}) {
      const auto r = sluice("-dc " + how + " > out");
      EXPECT_EQ(r.status, 2) << how << " " << tail.size() << describe(r);
      EXPECT_NE(r.err.find("trailing garbage"), std::string::npos) << r.err;
      EXPECT_EQ(get("out"), data) << how;
    }
  }
  Bytes cut = get("good");
  cut.push_back(get("good")[0]);
  put("cut" + f.extension, cut);
  const auto r = sluice("-dc cut" + f.extension + " > out");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
}

// A file cut short (a download that stopped): what its complete blocks decode to comes out before
// the error, at least all that the stock tool's -dc gives, from sluice's stream and the tool's, at
// one thread and two and from a pipe. A one-frame zstd or lz4 file of a few hundred KB gave
// nothing: its frame was a unit that never ended.
TEST_P(CliFormat, AFileCutShortGivesWhatItsCompleteBlocksDecodeToBeforeTheError) {
  const auto& f = GetParam();
  const Bytes data = text_bytes(1100 * 1000, 12);
  put("data.bin", data);
  ASSERT_EQ(sluice(fmt::format("-F {} -c data.bin > ours", f.codec)).status, 0);
  ASSERT_EQ(sh(fmt::format("{} -q -c data.bin > theirs", f.tool)).status, 0);
  for (const std::string made : {"ours", "theirs"}) {
    const Bytes whole = get(made);
    for (const std::size_t lost : {std::size_t{1}, std::size_t{5}, whole.size() / 3}) {
      SCOPED_TRACE(fmt::format("{} without its last {} bytes", made, lost));
      put("cut" + f.extension, Bytes(whole.begin(), whole.end() - static_cast<std::ptrdiff_t>(lost)));
      sh(fmt::format("{} -dc cut{} > tools", f.tool, f.extension));
      const std::size_t tools = get("tools").size();
      for (const std::string how : {"-j 1 cut", "-j 2 cut", "< cut"}) {
        const auto r = sluice("-dc " + how + f.extension + " > out");
        EXPECT_EQ(r.status, 1) << how << describe(r);
        EXPECT_NE(r.err.find("truncated"), std::string::npos) << how << r.err;
        const Bytes out = get("out");
        EXPECT_GE(out.size(), tools) << how;
        EXPECT_TRUE(std::equal(out.begin(), out.end(), data.begin())) << how << ": not the data's start";
      }
    }
  }
  // A skippable frame and a few bytes that begin no frame: no zstd data at all, an error as zstd
  // says (not "trailing garbage", a warning, after no frame).
  if (f.codec == "zstd") {
    put("skip.zst", {0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'a', 'b', 'c', 'd', 'a', 'b', '\n'});
    const auto r = sluice("-dc skip.zst > out");
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_EQ(r.err.find("trailing garbage"), std::string::npos) << r.err;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, CliFormat, ::testing::ValuesIn(kFormats),
                         [](const auto& test) { return test.param.codec; });

// ---- Reading what the stock tools write ----

struct Foreign {
  std::string name;
  std::string command;  // makes "foreign" from "data.bin"
};
void PrintTo(const Foreign& f, std::ostream* os) { *os << f.name; }

class CliForeign : public Cli, public ::testing::WithParamInterface<Foreign> {};

TEST_P(CliForeign, StockToolOutputDecodes) {
  put("data.bin", text_bytes(3 * 1024 * 1024 + 77, 9));
  put("other.bin", random_bytes(200 * 1024, 10));
  const auto made = sh(GetParam().command);
  ASSERT_EQ(made.status, 0) << "could not make the sample: " << made.err;
  const auto r = sluice("-dc foreign > back");
  ASSERT_EQ(r.status, 0) << describe(r);
  const bool two_inputs = GetParam().command.find("other.bin") != std::string::npos;
  const auto expected = two_inputs ? sh("cat data.bin other.bin > expected") : sh("cp data.bin expected");
  ASSERT_EQ(expected.status, 0);
  EXPECT_EQ(get("back"), get("expected"));
}

// A zstd skippable frame (magic 0x184D2A50, 6 bytes of payload) before a normal frame.
const char* kSkippablePrefix = "printf '\\x50\\x2a\\x4d\\x18\\x06\\x00\\x00\\x00sluice'";

INSTANTIATE_TEST_SUITE_P(
    Tools, CliForeign,
    ::testing::Values(
        Foreign{"gzip", "gzip -c data.bin > foreign"}, Foreign{"gzip_fast", "gzip -1 -c data.bin > foreign"},
        Foreign{"gzip_no_name", "gzip -n -c < data.bin > foreign"}, Foreign{"pigz", "pigz -p 2 -c data.bin > foreign"},
        Foreign{"pigz_independent", "pigz -i -c data.bin > foreign"},
        Foreign{"pigz_zlib_level9", "pigz -9 -c data.bin > foreign"},
        Foreign{"igzip", "igzip -c data.bin > foreign"}, Foreign{"igzip_level3", "igzip -3 -c data.bin > foreign"},
        Foreign{"libdeflate_gzip", "libdeflate-gzip -c data.bin > foreign"},
        Foreign{"libdeflate_gzip_level1", "libdeflate-gzip -1 -c data.bin > foreign"},
        Foreign{"gzip_multi_member", "{ gzip -c data.bin; gzip -c other.bin; } > foreign"},
        Foreign{"gzip_tape_padding", "{ gzip -c data.bin; head -c 10240 /dev/zero; } > foreign"},
        Foreign{"pigz_tape_padding", "{ pigz -c data.bin; head -c 700 /dev/zero; } > foreign"},
        Foreign{"bgzip", "bgzip -c data.bin > foreign"}, Foreign{"bgzip_threads", "bgzip -@ 2 -c data.bin > foreign"},
        Foreign{"bgzip_then_gzip", "{ bgzip -c data.bin; gzip -c other.bin; } > foreign"},
        Foreign{"zstd_t2", "zstd -q -T2 -c data.bin > foreign"}, Foreign{"zstd_19", "zstd -q -19 -c data.bin > foreign"},
        Foreign{"zstd_no_check", "zstd -q --no-check --no-content-size -c < data.bin > foreign"},
        Foreign{"zstd_multi_frame", "{ zstd -q -c data.bin; zstd -q -c other.bin; } > foreign"},
        Foreign{"zstd_skippable", fmt::format("{{ {}; zstd -q -c data.bin; }} > foreign", kSkippablePrefix)},
        Foreign{"lz4_default", "lz4 -q -c data.bin > foreign"},
        Foreign{"lz4_linked_blocks", "lz4 -q -BD -c data.bin > foreign"},
        Foreign{"lz4_block_checksums", "lz4 -q -BX -B4 -c data.bin > foreign"},
        Foreign{"lz4_content_size_no_crc", "lz4 -q --content-size --no-frame-crc -c data.bin > foreign"},
        Foreign{"lz4_hc", "lz4 -q -9 -c data.bin > foreign"},
        Foreign{"lz4_concatenated", "{ lz4 -q -c data.bin; lz4 -q -c other.bin; } > foreign"},
        Foreign{"lz4_legacy", "lz4 -q -l -c data.bin > foreign"},
        Foreign{"lz4_legacy_then_frame", "{ lz4 -q -l -c data.bin; lz4 -q -c other.bin; } > foreign"},
        Foreign{"lz4_linked_then_legacy", "{ lz4 -q -BD -B4 -c data.bin; lz4 -q -l -c other.bin; } > foreign"}),
    [](const auto& test) { return test.param.name; });

// pigz's output on two threads, through the program: decoded in pieces (parallel inflate) to a
// file, tested with -t, and extracted as a .tar.gz, each exactly; and damage in the middle of it
// is reported as it is on one thread.
TEST_F(Cli, PigzOutputDecodesInPiecesThroughEveryPath) {
  put("data.bin", text_bytes(3 * 1024 * 1024 + 77, 19));
  ASSERT_EQ(sh("pigz -p2 -c data.bin > data.bin.gz && mkdir t && cp data.bin t/ && tar -cf - t | pigz -p2 > t.tgz && mkdir out")
                .status,
            0);
  const auto decoded = sluice("-d -k -j2 -o back data.bin.gz");
  ASSERT_EQ(decoded.status, 0) << describe(decoded);
  EXPECT_EQ(get("back"), get("data.bin"));
  const auto tested = sluice("-t -j2 data.bin.gz");
  EXPECT_EQ(tested.status, 0) << describe(tested);
  const auto extracted = sluice("tar -x -j2 -f t.tgz -C out");
  ASSERT_EQ(extracted.status, 0) << describe(extracted);
  EXPECT_EQ(get("out/t/data.bin"), get("data.bin"));
  ASSERT_EQ(sh("cp data.bin.gz bad.gz && printf 'X' | dd of=bad.gz bs=1 seek=600000 conv=notrunc 2>/dev/null").status, 0);
  const auto one = sluice("-t -j1 bad.gz"), two = sluice("-t -j2 bad.gz");
  EXPECT_NE(one.status, 0) << describe(one);
  EXPECT_EQ(two.status, one.status) << describe(two);
  const auto reason = [](const std::string& err) { return err.substr(0, err.find(" (at byte")); };
  EXPECT_EQ(reason(two.err), reason(one.err));
}

// ---- lz4: a stream is one frame ----

// One frame however many chunks (`lz4 --list` counts the frames; it shows no uncompressed size,
// which the header leaves out), read whole by `lz4 -d`, the empty stream too.
TEST_F(Cli, Lz4OutputIsOneFrameForTheLz4Tool) {
  put("data", text_bytes(9 * 1024 * 1024 + 123, 30));
  put("empty", {});
  ASSERT_EQ(sluice("-F lz4 -c data > data.lz4").status, 0);
  ASSERT_EQ(sluice("-F lz4 -c empty > empty.lz4").status, 0);
  for (const char* name : {"data", "empty"}) {
    const auto decoded = sh(fmt::format("lz4 -dc {0}.lz4 > {0}.back && cmp {0}.back {0}", name));
    EXPECT_EQ(decoded.status, 0) << describe(decoded);
    const auto listed = sh(fmt::format("lz4 --list {}.lz4 | awk 'NR == 2 {{ print $1 }}'", name));
    ASSERT_EQ(listed.status, 0) << describe(listed);
    EXPECT_EQ(listed.out, "1\n") << name << ": one frame";
  }
}

// Python's lz4.frame.decompress() reads one frame: the whole stream, where it read only the first
// 4 MiB of the frames earlier versions wrote for each block. (python3-lz4, scripts/setup.sh.)
TEST_F(Cli, Lz4OutputIsReadWholeByPythonsLz4Frame) {
  if (sh("/usr/bin/python3 -c 'import lz4.frame'").status != 0) GTEST_SKIP() << "python3-lz4 is not installed";
  put("data", text_bytes(9 * 1024 * 1024 + 123, 31));
  put("empty", {});
  ASSERT_EQ(sluice("-F lz4 -j 2 -c data > data.lz4").status, 0);
  ASSERT_EQ(sluice("-F lz4 -c empty > empty.lz4").status, 0);
  for (const char* name : {"data", "empty"}) {
    const auto r =
        sh(fmt::format("/usr/bin/python3 -c 'import lz4.frame, sys; "
                       "sys.stdout.buffer.write(lz4.frame.decompress(open(\"{0}.lz4\", \"rb\").read()))' "
                       "> {0}.back && cmp {0}.back {0}",
                       name));
    EXPECT_EQ(r.status, 0) << describe(r);
  }
}

// gzip members with every optional header field: FEXTRA, FNAME, FCOMMENT and FHCRC.
TEST_F(Cli, GzipHeaderWithEveryOptionalFieldDecodes) {
  const Bytes input = text_bytes(100 * 1024, 11);
  Bytes packed = testing::gzip_with_header_fields(input, "SL\x04\x00test", "name.txt", "a comment");
  ASSERT_EQ(packed[3], 0x02 | 0x04 | 0x08 | 0x10) << "FHCRC, FEXTRA, FNAME and FCOMMENT";
  put("fields.gz", packed);
  const auto r = sluice("-d fields.gz");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(get("fields"), input);

  packed[12] ^= 0x01;  // inside FEXTRA: the header CRC no longer matches
  put("badhcrc.gz", packed);
  const auto bad = sluice("-d badhcrc.gz");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("header crc"), std::string::npos) << bad.err;
  EXPECT_FALSE(exists("badhcrc"));
}

// ---- gzip specifics ----

// The default form (independent members; ISA-L at level 1, libdeflate above) stays close to pigz's size on real
// text; the single-member form (zlib, like pigz) within 1% even on synthetic text.
TEST_F(Cli, GzipSizeStaysCloseToPigz) {
  put_real_text();
  for (int level : {1, 6, 9}) {
    ASSERT_EQ(sluice(fmt::format("-{} -c data.bin > ours", level)).status, 0);
    ASSERT_EQ(sh(fmt::format("pigz -{} -c data.bin > theirs", level)).status, 0);
    const double ours = static_cast<double>(fs::file_size(dir_ / "ours"));
    const double theirs = static_cast<double>(fs::file_size(dir_ / "theirs"));
    EXPECT_LE(ours, theirs * 1.03) << "level " << level;
  }
  put("data.bin", text_bytes(4 * 1024 * 1024, 12));
  for (int level : {1, 6, 9}) {
    ASSERT_EQ(sluice(fmt::format("-{} --single-member -c data.bin > ours", level)).status, 0);
    ASSERT_EQ(sh(fmt::format("pigz -{} -c data.bin > theirs", level)).status, 0);
    const double ours = static_cast<double>(fs::file_size(dir_ / "ours"));
    const double theirs = static_cast<double>(fs::file_size(dir_ / "theirs"));
    EXPECT_LE(ours, theirs * 1.01) << "level " << level << ", single member";
  }
}

TEST_F(Cli, GzipFromStdinIsReproducibleWithZeroMtimeAndNoName) {
  put("data.bin", text_bytes(100 * 1024, 13));
  ASSERT_EQ(sluice("< data.bin > a.gz").status, 0);
  ASSERT_EQ(sh("touch -d '2001-01-01' data.bin").status, 0);
  ASSERT_EQ(sluice("< data.bin > b.gz").status, 0);
  const Bytes a = get("a.gz");
  EXPECT_EQ(a, get("b.gz"));
  EXPECT_EQ(a[3] & 0x08, 0) << "no FNAME";
  EXPECT_EQ(a[4] | a[5] | a[6] | a[7], 0) << "MTIME 0";
}

TEST_F(Cli, GzipFromAFileStoresItsNameAndTimeLikeGzip) {
  put("named.txt", text_bytes(1000, 14));
  ASSERT_EQ(sh("touch -d '@1600000000' named.txt").status, 0);
  ASSERT_EQ(sluice("named.txt").status, 0);
  EXPECT_EQ(sh("gzip -lvN named.txt.gz | grep -q named.txt").status, 0);
  const Bytes packed = get("named.txt.gz");
  EXPECT_EQ(packed[4] | packed[5] << 8 | packed[6] << 16 | packed[7] << 24, 1600000000);
  EXPECT_EQ(fs::last_write_time(dir_ / "named.txt.gz"), fs::last_write_time(dir_ / "named.txt"))
      << "the output keeps the input's mtime, as gzip does";
  ASSERT_EQ(sluice("-n -c named.txt > anonymous.gz").status, 0);
  EXPECT_EQ(get("anonymous.gz")[3] & 0x08, 0) << "-n stores no name";
  EXPECT_LT(fs::file_size(dir_ / "anonymous.gz"), fs::file_size(dir_ / "named.txt.gz")) << "no name member";
}

// ---- tar -I ----

TEST_F(Cli, WorksAsTarsCompressProgram) {
  fs::create_directories(dir_ / "tree" / "sub");
  put("tree/a.txt", text_bytes(300 * 1024, 15));
  put("tree/sub/b.bin", random_bytes(70 * 1024, 16));
  put("tree/empty", {});
  const std::string S = testing::sluice();
  for (const auto& [flags, archive] : {std::pair{"-F zstd", "x.tar.zst"}, {"", "x.tar.gz"}, {"-F lz4", "x.tar.lz4"}}) {
    const auto packed = sh(fmt::format("tar -I {} -cf {} tree", quote(S + " " + flags), archive));
    ASSERT_EQ(packed.status, 0) << packed.err;
    fs::remove_all(dir_ / "out");
    fs::create_directories(dir_ / "out");
    const auto unpacked = sh(fmt::format("tar -I {} -xf {} -C out && diff -r tree out/tree", S, archive));
    EXPECT_EQ(unpacked.status, 0) << archive << ": " << unpacked.err << unpacked.out;
  }
  EXPECT_EQ(sh("tar -xzf x.tar.gz -O tree/a.txt | cmp - tree/a.txt").status, 0) << "GNU tar's own gzip reads ours";
}

// ---- Conventions ----

TEST_F(Cli, FormatIsDetectedFromContentNotSuffix) {
  put("data.bin", text_bytes(10000, 17));
  ASSERT_EQ(sh("zstd -q -c data.bin > looks-like.gz").status, 0);
  const auto r = sluice("-d looks-like.gz");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(get("looks-like"), get("data.bin"));
}

TEST_F(Cli, TgzDecompressesToTar) {
  put("a.tar", text_bytes(5000, 18));
  ASSERT_EQ(sh("gzip -c a.tar > b.tgz").status, 0);
  ASSERT_EQ(sluice("-d b.tgz").status, 0);
  EXPECT_EQ(get("b.tar"), get("a.tar"));
}

// Suffixes in any case, and gzip's old .z, are taken as gzip -d takes them (names from systems
// that upper-case them: LOGS.GZ); the name before the suffix keeps its case.
TEST_F(Cli, SuffixesInAnyCaseAndGzipsOldOnesAreTaken) {
  const Bytes input = text_bytes(5000, 28);
  put("data", input);
  ASSERT_EQ(sh("gzip -c data > LOGS.GZ && gzip -c data > old.z && gzip -c data > B.TGZ && zstd -q -c data > C.Zst && "
               "mkdir tree && cp LOGS.GZ C.Zst data tree/")
                .status,
            0);
  for (const char* name : {"LOGS.GZ", "old.z", "B.TGZ", "C.Zst"}) {
    const auto r = sluice(fmt::format("-d {}", name));
    EXPECT_EQ(r.status, 0) << name << ": " << describe(r);
  }
  EXPECT_EQ(get("LOGS"), input);
  EXPECT_EQ(get("old"), input);
  EXPECT_EQ(get("B.tar"), input);
  EXPECT_EQ(get("C"), input);
  // Walking a tree to compress, they are compressed files: left alone.
  const auto walk = sluice("-r tree");
  ASSERT_EQ(walk.status, 0) << describe(walk);
  EXPECT_TRUE(exists("tree/data.gz"));
  EXPECT_FALSE(exists("tree/LOGS.GZ.gz"));
  EXPECT_FALSE(exists("tree/C.Zst.gz"));
  EXPECT_EQ(walk.err, "");
  // -v names each (a .gz renamed .log known by its content), --json's summary counts them: a
  // script checking the summary was told every file was handled.
  ASSERT_EQ(sh("mkdir tree2 && cp LOGS.GZ data tree2/ && cp LOGS.GZ tree2/renamed.log").status, 0);
  const auto told = sluice("-r -v --json tree2");
  ASSERT_EQ(told.status, 0) << describe(told);
  EXPECT_NE(told.err.find("sluice: tree2/LOGS.GZ: compressed already (by its suffix); left alone\n"), std::string::npos)
      << told.err;
  EXPECT_NE(told.err.find("sluice: tree2/renamed.log: compressed already (by its content); left alone\n"),
            std::string::npos)
      << told.err;
  EXPECT_NE(told.out.find("{\"summary\": {\"files\": 1, \"failed\": 0, \"skipped\": 0, \"left_alone\": 2,"),
            std::string::npos)
      << told.out;
  // Named on the command line, LOGS.GZ already has gzip's suffix, as gzip says.
  const auto again = sluice("LOGS.GZ");
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("already has the .gz suffix"), std::string::npos) << again.err;
  // So do the codec's tar shorthands (as gzip says of .tgz); another codec's are compressed.
  put("tree/b.tgz", testing::to_bytes(std::string("tar-ish\n")));
  const auto tgz = sluice("tree/b.tgz");
  EXPECT_EQ(tgz.status, 1);
  EXPECT_NE(tgz.err.find("tree/b.tgz: already has the .tgz suffix; left unchanged"), std::string::npos) << tgz.err;
  EXPECT_FALSE(exists("tree/b.tgz.gz"));
  EXPECT_EQ(sluice("-F zstd -k tree/b.tgz").status, 0);
  EXPECT_TRUE(exists("tree/b.tgz.zst"));
  // Unix compress's .Z is not gzip's .z: walking to decompress, a .Z file is not taken (sluice
  // does not decode it), nor is a dotfile named .z (no name before the suffix); tar does not
  // write gzip under compress's names.
  ASSERT_EQ(sh("mkdir walk && printf '\\037\\235\\220abc' > walk/old.Z && cp LOGS.GZ walk/ && echo x > walk/.z").status,
            0);
  const auto unwalk = sluice("-d -r walk");
  EXPECT_EQ(unwalk.status, 0) << describe(unwalk);
  EXPECT_EQ(get("walk/LOGS"), input);
  EXPECT_TRUE(exists("walk/old.Z") && exists("walk/.z"));
  for (const char* name : {"x.tar.Z", "x.taZ"}) {
    const auto tar = sluice(fmt::format("tar -c -f {} data", name));
    EXPECT_EQ(tar.status, 2) << name << ": " << describe(tar);
    EXPECT_NE(tar.err.find("cannot tell the compression"), std::string::npos) << tar.err;
  }
  EXPECT_EQ(sluice("tar -c -f X.TAR data").status, 0);
}

TEST_F(Cli, RmRemovesTheInputOnlyAfterSuccess) {
  const Bytes input = text_bytes(200 * 1024, 19);
  put("data.bin", input);
  ASSERT_EQ(sluice("--rm -F zstd data.bin").status, 0);
  expect_listing({"data.bin.zst"});
  ASSERT_EQ(sluice("--rm -d data.bin.zst").status, 0);
  expect_listing({"data.bin"});
  EXPECT_EQ(get("data.bin"), input);

  put("bad.zst", {0x28, 0xb5, 0x2f, 0xfd, 0x00});
  auto r = sluice("--rm -d bad.zst");
  EXPECT_EQ(r.status, 1);
  expect_listing({"bad.zst", "data.bin"});

  // A setuid file is left with --rm (no output carries the bit: it would be gone), as gzip
  // leaves it; kept, or with -f, it is compressed.
  ASSERT_EQ(::chmod((dir_ / "data.bin").c_str(), 04755), 0);
  r = sluice("--rm data.bin");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("data.bin: is set-user-ID: its output would not be, and --rm would lose it"), std::string::npos)
      << r.err;
  expect_listing({"bad.zst", "data.bin"});
  r = sluice("--rm -o elsewhere.gz data.bin");  // an output named: the input would go all the same
  EXPECT_EQ(r.status, 1) << describe(r);
  expect_listing({"bad.zst", "data.bin"});
  ASSERT_EQ(sluice("--rm -f data.bin").status, 0);
  expect_listing({"bad.zst", "data.bin.gz"});
}

TEST_F(Cli, ExistingOutputIsRefusedUnlessForced) {
  put("data.bin", text_bytes(1000, 20));
  put("data.bin.gz", to_bytes(std::string("precious")));
  const auto refused = sluice("data.bin");
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("already exists"), std::string::npos) << refused.err;
  EXPECT_EQ(get("data.bin.gz"), to_bytes(std::string("precious")));
  expect_listing({"data.bin", "data.bin.gz"});
  ASSERT_EQ(sluice("-f data.bin").status, 0);
  EXPECT_EQ(sh("gzip -dc data.bin.gz | cmp - data.bin").status, 0);
}

TEST_F(Cli, OutputOptionWritesThePathGiven) {
  put("data.bin", text_bytes(1000, 21));
  ASSERT_EQ(sluice("-F lz4 -o out/../custom.name data.bin").status, 1) << "missing directory";
  ASSERT_EQ(sluice("-F lz4 -o custom.name data.bin").status, 0);
  EXPECT_EQ(sh("lz4 -dc custom.name | cmp - data.bin").status, 0);
  ASSERT_EQ(sluice("-d -o /dev/null custom.name").status, 0) << "devices are written in place";
  EXPECT_TRUE(fs::is_character_file("/dev/null"));
}

// A name of one of the program's descriptors is written through it, as "-" is standard output:
// into a file on stdout it was "already exists", and an archive (tar -c replaces what is there)
// was renamed over the link itself, which as root was the system's /dev/stdout. (tar's case is
// tried through /dev/fd/1 and /proc/self/fd/1 only: a rename into /proc fails, where one over
// /dev/stdout would break the machine's.)
TEST_F(Cli, AnOutputNamingStandardOutputIsWrittenThroughIt) {
  put("data.bin", text_bytes(1000, 21));
  ASSERT_EQ(sh("ln -s /dev devices").status, 0);
  // However spelt, and through a link to /dev (the link /dev/stdout is read, not renamed over).
  for (const std::string name : {"/dev/stdout", "/dev/fd/1", "/proc/self/fd/1", "/dev//stdout", "devices/stdout",
                                 "/proc/thread-self/fd/1", "/dev/./fd/1"}) {
    SCOPED_TRACE(name);
    auto r = sluice("-o " + name + " data.bin > out.gz");
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(sh("gzip -dc out.gz | cmp - data.bin").status, 0);
    // Appended to, at the descriptor's offset, not from the start of the file.
    put("log", testing::to_bytes(std::string("before\n")));
    r = sluice("-o " + name + " data.bin >> log");
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(sh("head -c 7 log && tail -c +8 log | gzip -dc | cmp - data.bin").out, "before\n");
    if (name.find("stdout") != std::string::npos) continue;
    r = sh(testing::sluice() + " tar -c -f " + name + " data.bin > out.tar");
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(sh("tar -tf out.tar").out, "data.bin\n");
    r = sh(testing::sluice() + " zip -c -o " + name + " data.bin | cat > out.zip");
    ASSERT_EQ(r.status, 0) << describe(r);
    EXPECT_EQ(sh("unzip -Z1 out.zip").out, "data.bin\n");
  }
  EXPECT_TRUE(fs::is_symlink("/dev/stdout"));
}

TEST_F(Cli, SeveralFilesOneMissingTheOthersStillDone) {
  put("a", text_bytes(1000, 22));
  put("c", text_bytes(1000, 23));
  const auto r = sluice("a missing c");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("missing: cannot open: No such file or directory"), std::string::npos) << r.err;
  expect_listing({"a", "a.gz", "c", "c.gz"});
  // An empty name is named as '' (it was nothing at all), and the summary escapes names as every
  // message does (one holding an escape sequence went to the terminal raw).
  const auto odd = sluice("-c a '' $'esc\\033[31m' > /dev/null");
  EXPECT_EQ(odd.status, 1);
  EXPECT_NE(odd.err.find("sluice: '': cannot open: No such file or directory (an empty file name)\n"),
            std::string::npos)
      << odd.err;
  EXPECT_NE(odd.err.find("2 of 3 files failed: '', esc\\033[31m\n"), std::string::npos) << odd.err;
  EXPECT_EQ(odd.err.find('\033'), std::string::npos) << "no raw escape";
}

// ---- Error paths ----

TEST_F(Cli, MissingFileDirectoryAndUnreadableInputAreErrors) {
  fs::create_directories(dir_ / "adir");
  put("plain.txt", text_bytes(100, 24));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"missing.txt", "missing.txt: cannot open: No such file or directory"},
      {"adir", "adir: is a directory (use -r to process what it holds)"},
      {"plain.txt/inside", "plain.txt/inside: cannot open: Not a directory"},
      {"-c /proc/self/mem", "/proc/self/mem: read failed: Input/output error (at byte 0)"}};
  for (const auto& [args, message] : cases) {
    const auto r = sluice(args);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_EQ(r.err, "sluice: " + message + "\n") << args;
    expect_listing({"adir", "plain.txt"});
  }
}

TEST_F(Cli, UnwritableOutputIsAnErrorAndLeavesNothing) {
  put("data.bin", text_bytes(300 * 1024, 25));
  const auto no_dir = sluice("-o nowhere/out.gz data.bin");
  EXPECT_EQ(no_dir.status, 1);
  EXPECT_NE(no_dir.err.find("nowhere/out.gz: cannot create output: No such file or directory"), std::string::npos)
      << no_dir.err;
  const auto full_stdout = sluice("-c data.bin > /dev/full");
  EXPECT_EQ(full_stdout.status, 1);
  EXPECT_NE(full_stdout.err.find("write failed: No space left on device"), std::string::npos) << full_stdout.err;
  const auto full_device = sluice("-o /dev/full data.bin");
  EXPECT_EQ(full_device.status, 1);
  EXPECT_NE(full_device.err.find("/dev/full: write failed"), std::string::npos) << full_device.err;
  expect_listing({"data.bin"});
}

TEST_F(Cli, NotCompressedInputAndUnknownSuffixAreErrors) {
  put("plain.gz", text_bytes(1000, 26));
  const auto plain = sluice("-d plain.gz");
  EXPECT_EQ(plain.status, 1);
  EXPECT_NE(plain.err.find("plain.gz: not compressed data in a known format"), std::string::npos) << plain.err;
  put("data.unknown", text_bytes(1000, 27));
  const auto suffix = sluice("-d data.unknown");
  EXPECT_EQ(suffix.status, 1);
  EXPECT_NE(suffix.err.find("unknown suffix"), std::string::npos) << suffix.err;
  put("done.gz", {});
  const auto again = sluice("done.gz");
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("already has the .gz suffix"), std::string::npos) << again.err;
  expect_listing({"data.unknown", "done.gz", "plain.gz"});
}

// A format sluice does not decode is named, as the real tools write it.
// Scripts call sluice once per small file: such a run compresses or decodes on the main thread
// and does not start oneTBB at all (which would load its allocator, libtbbmalloc, and start a
// worker per core). A large file, which does start it, shows that the check can fail.
TEST_F(Cli, ASmallFileIsCompressedOrDecodedWithoutStartingTheThreadPool) {
  put("small", testing::to_bytes("ab\n"));
  put("large", random_bytes(4 << 20, 5));
  ASSERT_EQ(sh("gzip -k small large && zstd -q small -o small.zst && lz4 -q small small.lz4").status, 0);
  const std::string s = testing::sluice();
  for (const std::string file : {"small.gz", "small.zst", "small.lz4"}) {
    for (const std::string j : {"", " -j1", " -j2"}) {
      const auto r = sh("LD_DEBUG=files " + s + " -dc" + j + " " + file + " 2>debug.txt; echo status $?");
      EXPECT_EQ(r.out, "ab\nstatus 0\n") << file << j;
      EXPECT_EQ(sh("grep -c tbbmalloc debug.txt").out, "0\n") << file << j << ": oneTBB was started";
    }
  }
  for (const std::string format : {"gzip", "zstd", "lz4"}) {
    for (const std::string j : {" -j1", " -j2"}) {
      const auto r = sh("LD_DEBUG=files " + s + " -c -F " + format + j + " small 2>debug.txt | " + s + " -dc");
      EXPECT_EQ(r.out, "ab\n") << format << j << ": " << describe(r);
      EXPECT_EQ(sh("grep -c tbbmalloc debug.txt").out, "0\n") << format << j << ": oneTBB was started";
    }
  }
  // The same bytes as through the graph (two files in one run go through it).
  for (const std::string format : {"gzip", "zstd", "lz4"}) {
    EXPECT_EQ(sh(fmt::format("{0} -c -F {1} small > one && cat one one > two && {0} -c -F {1} small small | cmp - two",
                             s, format))
                  .status,
              0)
        << format;
  }
  EXPECT_EQ(sh("LD_DEBUG=files " + s + " -dc large.gz 2>debug.txt | cmp - large").status, 0);
  EXPECT_NE(sh("grep -c tbbmalloc debug.txt").out, "0\n") << "a large file started no thread pool";
  EXPECT_EQ(sh("LD_DEBUG=files " + s + " -c -F gzip large 2>debug.txt | gzip -dc | cmp - large").status, 0);
  EXPECT_NE(sh("grep -c tbbmalloc debug.txt").out, "0\n") << "a large file was compressed without the pool";
}

TEST_F(Cli, DecompressingAnotherFormatNamesIt) {
  put("data.txt", text_bytes(5000, 28));
  ASSERT_EQ(sh("xz -k data.txt && bzip2 -k data.txt && zip -q data.zip data.txt").status, 0);
  for (const auto& [file, format] : std::vector<std::pair<std::string, std::string>>{
           {"data.txt.xz", "an xz stream"}, {"data.txt.bz2", "a bzip2 stream"}, {"data.zip", "a zip archive"}}) {
    const auto r = sluice("-dc " + file);
    EXPECT_EQ(r.status, 1) << file;
    EXPECT_NE(r.err.find(file + ": not compressed data in a known format: " + format +
                         ", which sluice does not decode (it reads gzip, zstd, lz4) (at byte 0)"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(Cli, UsageErrorsExitWithTwo) {
  put("a", {});
  put("b", {});
  for (const char* args : {"--level 10 a", "-F zstd --level 23 a", "-0 a", "-F brotli a", "--chunk-size 12X a",
                           "--chunk-size 10 a", "--bogus a", "-o out a b", "-j 1025 a", "-c -o x a",
                           // stdin has no name to write under DIR (it went to stdout, silently)
                           "--output-dir od < a", "--output-dir od a - < b"}) {
    const auto r = sluice(args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("sluice: ", 0), 0u) << args << ": " << r.err;
  }
  expect_listing({"a", "b"});
}

TEST_F(Cli, CompressedDataIsNotWrittenToATerminal) {
  put("data.bin", text_bytes(1000, 28));
  // `script` gives the command a terminal for stdout.
  const auto r = sh(fmt::format("script -qec {} /dev/null", quote(testing::sluice() + " -c data.bin")));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("refusing to write compressed data to a terminal"), std::string::npos) << r.out;
}

TEST_F(Cli, HelpVersionAndDemo) {
  const auto help = sluice("--help");
  EXPECT_EQ(help.status, 0);
  // The commands main() dispatches before parsing are listed under Subcommands, and have help of
  // their own.
  const std::string subcommands = help.out.substr(help.out.find("\nSubcommands:\n"));
  for (const char* command : {"tar", "zip", "transcode", "run"}) {
    EXPECT_NE(subcommands.find(fmt::format("\n  {} ", command)), std::string::npos) << command << "\n" << help.out;
    const auto own = sluice(fmt::format("{} --help", command));
    EXPECT_EQ(own.status, 0) << command;
    EXPECT_NE(own.out.find(fmt::format("sluice {}", command)), std::string::npos) << own.out;
  }
  const auto version = sluice("--version");
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out, "sluice " SLUICE_VERSION_STRING "\n");
  EXPECT_EQ(std::string(SLUICE_VERSION_STRING),
            fmt::format("{}.{}.{}", SLUICE_VERSION_MAJOR, SLUICE_VERSION_MINOR, SLUICE_VERSION_PATCH));
  const auto demo = sluice("demo --size 2M -j 2");
  EXPECT_EQ(demo.status, 0) << demo.err;
  EXPECT_NE(demo.out.find("All round trips match."), std::string::npos) << demo.out;
  for (const char* codec : {"gzip", "zstd", "lz4"}) EXPECT_NE(demo.out.find(codec), std::string::npos);
}

// ---- Parallel decompression and integrity tests ----

TEST_F(Cli, IndependentGzipIsReadByEveryGunzipAndStaysSmall) {
  put_real_text();
  const auto r = sluice("--independent data.bin");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(sh("gzip -t data.bin.gz && gzip -dc data.bin.gz | cmp - data.bin").status, 0);
  EXPECT_EQ(sh("pigz -dc data.bin.gz | cmp - data.bin").status, 0);
  EXPECT_EQ(sh("bsdcat data.bin.gz | cmp - data.bin").status, 0) << "libarchive reads it too";
  EXPECT_EQ(sh("igzip -dc data.bin.gz | cmp - data.bin").status, 0) << "ISA-L's igzip";
  EXPECT_EQ(sh("libdeflate-gzip -dc data.bin.gz | cmp - data.bin").status, 0) << "libdeflate-gzip";
  ASSERT_EQ(sh("pigz -c data.bin > pigz.gz").status, 0);
  EXPECT_LE(static_cast<double>(fs::file_size(dir_ / "data.bin.gz")),
            static_cast<double>(fs::file_size(dir_ / "pigz.gz")) * 1.03);
  for (int threads : {1, 2, 8}) {
    EXPECT_EQ(sluice(fmt::format("-d -j {} -c data.bin.gz | cmp - data.bin", threads)).status, 0) << threads;
  }
  EXPECT_EQ(sluice("-d < data.bin.gz | cmp - data.bin").status, 0) << "from a pipe";
}

// Every engine, at its low and high levels and in both forms it can write, makes gzip that the
// stock gunzip reads; sluice reads it back with every engine.
TEST_F(Cli, EveryGzipBackendWritesWhatGunzipReads) {
  put("data.bin", text_bytes(700 * 1024, 54));
  for (const std::string backend : {"zlib", "libdeflate", "isal"}) {
    for (const std::string form : {"", " --single-member"}) {
      if (!form.empty() && backend != "zlib") continue;
      for (int level : {1, 9}) {
        const std::string flags = fmt::format("--gzip-backend {} -{}{} --chunk-size 256K", backend, level, form);
        auto r = sluice(flags + " -c data.bin > out.gz");
        ASSERT_EQ(r.status, 0) << flags << ": " << describe(r);
        EXPECT_EQ(sh("gzip -dc out.gz | cmp - data.bin").status, 0) << flags;
        for (const std::string reader : {"zlib", "libdeflate", "isal"}) {
          EXPECT_EQ(sluice("-d --gzip-backend " + reader + " -c out.gz | cmp - data.bin").status, 0)
              << flags << ", read with " << reader;
        }
      }
    }
  }
}

// More threads than cores run (as pigz -p 8 does) without oneTBB's worker-cap warnings on stderr.
TEST_F(Cli, MoreThreadsThanCoresRunQuietly) {
  put("data.bin", text_bytes(3 * 1024 * 1024, 56));
  for (const std::string flags : {"-j 16 -F zstd --chunk-size 64K", "-j 16 --chunk-size 64K"}) {
    const auto r = sluice(flags + " -c data.bin > out && " + testing::sluice() + " -d -j 16 -c out | cmp - data.bin");
    EXPECT_EQ(r.status, 0) << flags << ": " << describe(r);
    EXPECT_EQ(r.err, "") << flags;
  }
}

// ---- The default gzip: one member that single-member readers read whole ----

// Readers that take one gzip member and stop (zlib's inflate with a gzip wrapper, curl
// --compressed, a browser for Content-Encoding: gzip and DecompressionStream) read the default
// output whole, from a file and from stdin, at every size around the chunk size.
TEST_F(Cli, SingleMemberReadersReadTheDefaultGzipWhole) {
  put_real_text();
  std::vector<std::string> names;
  const std::size_t chunk = 64 * 1024;
  for (const std::size_t size : {std::size_t{0}, std::size_t{1}, chunk - 1, chunk, chunk + 1, 5 * chunk + 3}) {
    for (const bool from_stdin : {false, true}) {
      const std::string name = fmt::format("{}{}", from_stdin ? "piped" : "file", size);
      auto r = sh(fmt::format("head -c {} data.bin > {}", size, name));
      ASSERT_EQ(r.status, 0) << describe(r);
      r = sluice(from_stdin ? fmt::format("--chunk-size 64K < {0} > {0}.gz", name) : "--chunk-size 64K " + name);
      ASSERT_EQ(r.status, 0) << describe(r);
      names.push_back(name);
    }
  }
  auto r = sh("cp data.bin default && " + testing::sluice() + " default");  // the default chunk size: 4 chunks
  ASSERT_EQ(r.status, 0) << describe(r);
  names.push_back("default");
  const std::string list = fmt::format("{}", fmt::join(names, " "));
  r =
      sh("/usr/bin/python3 -c '\n"
         "import sys, zlib\n"
         "for name in sys.argv[1:]:\n"
         "    d = zlib.decompressobj(31)\n"
         "    out = d.decompress(open(name + \".gz\", \"rb\").read())\n"
         "    if not d.eof or d.unused_data or out != open(name, \"rb\").read():\n"
         "        print(name, len(out), d.eof, len(d.unused_data))\n"
         "' " +
         list);
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "") << "zlib.decompressobj(31) stopped short";
  r = sh("/usr/bin/python3 " + testing::source_file("tests/http_gzip_readers.py") + " . " + list);
  EXPECT_EQ(r.status, 0) << describe(r);
}

// What the default replaced, one member per chunk, is what those readers cut short: the check
// above can tell.
TEST_F(Cli, MultiMemberGzipIsCutShortBySingleMemberReaders) {
  put_real_text();
  auto r = sluice("--multi-member --chunk-size 64K -n data.bin");
  ASSERT_EQ(r.status, 0) << describe(r);
  r = sh("/usr/bin/python3 " + testing::source_file("tests/http_gzip_readers.py") + " . data.bin");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.out.find("chromium fetch data.bin: 65536 of "), std::string::npos) << r.out;  // the first member
  EXPECT_NE(r.out.find("chromium stream data.bin"), std::string::npos) << r.out;
}

// Valid zstd frames that sluice does not decode are named for what they need, not "corrupt".
TEST_F(Cli, ZstdFramesThatNeedADictionaryOrAHugeWindowAreNamedSo) {
  const auto made =
      sh("for i in $(seq 50); do seq $i 2000 > s$i; done && zstd -q --train s* -o dict.bin --maxdict=4096 && "
         "zstd -qc -D dict.bin s1 > dict.zst && seq 1 100000 | zstd -q --long=30 > window.zst");
  ASSERT_EQ(made.status, 0) << describe(made);
  for (const std::string how : {"", "-j 1 "}) {
    auto r = sluice("-dc " + how + "dict.zst > out");
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_NE(r.err.find("needs a zstd dictionary, which sluice does not take"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("corrupt"), std::string::npos) << r.err;
    r = sluice("-dc " + how + "< window.zst > out");
    EXPECT_EQ(r.status, 1) << describe(r);
    EXPECT_NE(r.err.find("window is larger than the 128 MiB sluice decodes"), std::string::npos) << r.err;
  }
}

// A size field that lies (a flipped bit in BGZF's BSIZE or in sluice's own 'S','L', another
// tool's 'B','C' of another meaning) is not trusted past what it can mean: such a member is
// decoded as gzip decodes any, and gzip's output comes out, at any -j.
TEST_F(Cli, SizeFieldsThatLieAreReadAsGzipReadsThem) {
  put_real_text();
  ASSERT_EQ(sh("bgzip -c data.bin > b.gz && " + testing::sluice() + " --multi-member -c data.bin > m.gz").status, 0);
  const auto r =
      sh("/usr/bin/python3 -c '\n"
         "import sys\n"
         "b = open(\"b.gz\", \"rb\").read(); m = open(\"m.gz\", \"rb\").read()\n"
         "def flip(data, at, bit, name):\n"
         "    d = bytearray(data); d[at] ^= bit; open(name, \"wb\").write(d)\n"
         "flip(b, 16, 0x80, \"bsize-high.gz\")\n"
         "flip(b, 17, 0x01, \"bsize-top.gz\")\n"
         "flip(b, len(b) - 12, 0x10, \"bsize-eof.gz\")\n"
         "at = m.index(b\"SL\")\n"
         "flip(m, at + 4 + 3, 0x40, \"sl-size.gz\")\n"
         "flip(m, at + 4, 0x01, \"sl-size-low.gz\")\n"
         "'");
  ASSERT_EQ(r.status, 0) << describe(r);
  for (const char* name : {"bsize-high.gz", "bsize-top.gz", "bsize-eof.gz", "sl-size.gz", "sl-size-low.gz"}) {
    ASSERT_EQ(sh(fmt::format("gzip -dc {} | cmp - data.bin", name)).status, 0) << name << ": gzip reads it";
    for (const char* threads : {"1", "2"}) {
      const auto decoded = sluice(fmt::format("-dc -j {} {} > out", threads, name));
      EXPECT_EQ(decoded.status, 0) << name << " -j" << threads << describe(decoded);
      EXPECT_EQ(get("out"), get("data.bin")) << name << " -j" << threads;
    }
  }
}

// --bgzf writes what htslib needs: tabix indexes it and answers a region query from it, where it
// refuses the default form.
TEST_F(Cli, BgzfOutputIsIndexedAndQueriedByTabix) {
  auto r =
      sh("awk 'BEGIN { for (i = 0; i < 200000; i++) printf \"chr1\\t%d\\t%d\\tfeature%d\\n\", i * 10, i * 10 + 5, i }' "
         "> regions.bed && cp regions.bed plain.bed");
  ASSERT_EQ(r.status, 0) << describe(r);
  r = sluice("--bgzf regions.bed");
  ASSERT_EQ(r.status, 0) << describe(r);
  r = sh("bgzip -t regions.bed.gz && tabix -p bed regions.bed.gz && tabix regions.bed.gz chr1:500000-500100");
  ASSERT_EQ(r.status, 0) << describe(r);
  const auto expected = sh("awk '$3 > 500000 - 1 && $2 < 500100' regions.bed");
  EXPECT_EQ(r.out, expected.out);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 10);
  r = sluice("plain.bed");
  ASSERT_EQ(r.status, 0) << describe(r);
  r = sh("tabix -p bed plain.bed.gz");
  EXPECT_NE(r.status, 0) << "tabix takes BGZF only: " << describe(r);
  EXPECT_EQ(sluice("--bgzf --chunk-size 1M plain.bed").status, 2) << "BGZF's block size is fixed";
}

TEST_F(Cli, GzipBackendMistakesAreUsageErrors) {
  put("data.bin", text_bytes(1000, 55));
  auto r = sluice("--gzip-backend brotli data.bin");
  EXPECT_EQ(r.status, 2) << describe(r);
  r = sluice("--gzip-backend libdeflate --single-member data.bin");
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_NE(r.err.find("written by zlib only"), std::string::npos) << r.err;
  r = sluice("--independent --single-member data.bin");
  EXPECT_EQ(r.status, 2) << describe(r);
  r = sluice("-F zstd --gzip-backend isal data.bin");
  EXPECT_EQ(r.status, 2) << describe(r);
  EXPECT_NE(r.err.find("zstd has no backends"), std::string::npos) << r.err;
  expect_listing({"data.bin"});
}

TEST_F(Cli, MaxOutputRefusesADecompressionBomb) {
  auto r = sh("head -c 300M /dev/zero | zstd -q > bomb.zst");
  ASSERT_EQ(r.status, 0) << describe(r);
  r = sluice("-d --max-output 16M bomb.zst");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bomb.zst: output exceeds the limit of 16777216 bytes"), std::string::npos) << r.err;
  expect_listing({"bomb.zst"});  // no output, no temporary
  r = sluice("-d --max-output 300M -c bomb.zst | wc -c");
  EXPECT_EQ(r.out, "314572800\n") << describe(r);
  r = sluice("-d --max-output lots bomb.zst");
  EXPECT_EQ(r.status, 2);
}

TEST_F(Cli, TestModeChecksEveryFileAndWritesNothing) {
  put("data.bin", text_bytes(500 * 1024, 54));
  ASSERT_EQ(sluice("-F zstd -c data.bin > good.zst").status, 0);
  ASSERT_EQ(sluice("--independent -c data.bin > good.gz").status, 0);
  ASSERT_EQ(sluice("-F lz4 -c data.bin > good.lz4").status, 0);
  Bytes bad = get("good.zst");
  bad[bad.size() / 2] ^= 1;
  put("bad.zst", bad);
  fs::remove(dir_ / "data.bin");
  const auto good = sluice("-t good.zst good.gz good.lz4");
  EXPECT_EQ(good.status, 0) << describe(good);
  EXPECT_NE(good.err.find("good.gz: OK"), std::string::npos) << good.err;
  const auto r = sluice("-t good.zst bad.zst");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bad.zst: corrupt zstd frame"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("1 of 2 files failed: bad.zst"), std::string::npos) << r.err;
  EXPECT_EQ(sluice("-t -q good.lz4").err, "");
  expect_listing({"bad.zst", "good.gz", "good.lz4", "good.zst"});
}

// ---- Batches ----

TEST_F(Cli, ABatchWithSpacesUtf8AndEmptyFilesCompressesInOneRun) {
  const std::vector<std::string> names = {"plain.txt", "with space.log", "ünïcødé.csv", "empty"};
  for (std::size_t i = 0; i < names.size(); ++i) put(names[i], names[i] == "empty" ? Bytes{} : text_bytes(50000 * i, i));
  std::string args = "-F zstd";
  for (const auto& name : names) args += " " + quote(name);
  const auto r = sluice(args);
  ASSERT_EQ(r.status, 0) << describe(r);
  for (const auto& name : names) {
    EXPECT_EQ(sh(fmt::format("zstd -dc {} | cmp - {}", quote(name + ".zst"), quote(name))).status, 0) << name;
  }
}

TEST_F(Cli, RecursiveWithOutputDirKeepsRelativePathsAndSkipsCompressedFiles) {
  fs::create_directories(dir_ / "logs" / "2026" / "11");
  put("logs/a.log", text_bytes(100000, 30));
  put("logs/2026/11/b.log", text_bytes(300000, 31));
  put("logs/2026/old.log.gz", to_bytes(std::string("not ours to touch")));
  const auto r = sluice("-r logs --output-dir out");
  ASSERT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(sh("gzip -dc out/logs/a.log.gz | cmp - logs/a.log").status, 0);
  EXPECT_EQ(sh("gzip -dc out/logs/2026/11/b.log.gz | cmp - logs/2026/11/b.log").status, 0);
  EXPECT_FALSE(exists("out/logs/2026/old.log.gz.gz"));
  EXPECT_EQ(sh("find out -type f | wc -l").out, "2\n");
  // And back, into another directory.
  const auto back = sluice("-d -r out --output-dir restored");
  ASSERT_EQ(back.status, 0) << describe(back);
  EXPECT_EQ(sh("diff -r restored/out/logs/2026/11 logs/2026/11 && cmp restored/out/logs/a.log logs/a.log").status, 0);
  // A tree named from beside it (../logs) keeps its shape under the directory, nothing above it.
  fs::create_directories(dir_ / "work");
  const auto beside = sh("cd work && " + testing::sluice() + " -r ../logs --output-dir o");
  ASSERT_EQ(beside.status, 0) << describe(beside);
  EXPECT_EQ(sh("cd work/o && find . -type f | sort").out, "./logs/2026/11/b.log.gz\n./logs/a.log.gz\n");
}

TEST_F(Cli, DuplicateOutputNamesAreRefused) {
  put("a", text_bytes(100, 32));
  const auto r = sluice("a ./a");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("same output name as for a"), std::string::npos) << r.err;
  EXPECT_EQ(sh("gzip -dc a.gz | cmp - a").status, 0) << "the first one is still done";
}

TEST_F(Cli, AFailureInTheMiddleLeavesTheOthersDoneAndASummary) {
  put("a", text_bytes(200000, 33));
  put("c", text_bytes(200000, 34));
  fs::create_directories(dir_ / "d");
  const auto r = sluice("a missing d c");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("sluice: 2 of 4 files failed: missing, d"), std::string::npos) << r.err;
  expect_listing({"a", "a.gz", "c", "c.gz", "d"});
}

TEST_F(Cli, OutputDirThatCannotBeCreatedFailsEveryFileCleanly) {
  put("a", text_bytes(1000, 35));
  put("blocker", {});
  const auto r = sluice("a --output-dir blocker/sub");
  EXPECT_EQ(r.status, 1);
  // The directory's own error, named (on a read-only file system the output's error was "No such
  // file or directory", what mkdir met not said).
  EXPECT_NE(r.err.find("cannot create directory blocker/sub: Not a directory"), std::string::npos) << r.err;
  expect_listing({"a", "blocker"});
}

TEST_F(Cli, FailFastStopsAtTheFirstFailure) {
  put("a", text_bytes(1000, 36));
  put("c", text_bytes(1000, 37));
  const auto r = sluice("--fail-fast a missing c");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("missing: cannot open"), std::string::npos) << r.err;
  expect_listing({"a", "a.gz", "c"});  // what came before the failure is done, nothing after it
  // What was not tried is not counted as failed (it was, and named: "3 of 3 files failed").
  const auto json = sluice("--fail-fast --json missing a c");
  EXPECT_EQ(json.status, 1);
  EXPECT_NE(json.out.find("{\"summary\": {\"files\": 3, \"failed\": 1, \"skipped\": 2,"), std::string::npos)
      << json.out;
  EXPECT_NE(json.err.find("sluice: 1 of 3 files failed: missing; 2 not tried (--fail-fast)\n"), std::string::npos)
      << json.err;
  const auto shown = sluice("--fail-fast --progress missing a c");
  EXPECT_NE(shown.err.find("sluice: 0 files (1 failed, 2 not tried), "), std::string::npos) << shown.err;
}

TEST_F(Cli, JsonGivesOneRecordPerFileAndASummary) {
  put("a", text_bytes(100000, 38));
  const auto r = sluice("--json -F lz4 a missing");
  EXPECT_EQ(r.status, 1);
  // Records come as files complete; "index" is the input's position on the command line.
  EXPECT_NE(r.out.find("{\"index\": 0, \"input\": \"a\", \"output\": \"a.lz4\", \"status\": \"ok\", "
                       "\"input_bytes\": 100000"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("{\"index\": 1, \"input\": \"missing\", \"output\": \"\", \"status\": \"error\""),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("{\"summary\": {\"files\": 2, \"failed\": 1"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 3);
  EXPECT_EQ(sluice("--json -c a").status, 2) << "JSON and data cannot share stdout";
}

TEST_F(Cli, DecompressingABatch) {
  for (int i = 0; i < 6; ++i) {
    put("f" + std::to_string(i), text_bytes(150000, static_cast<std::uint64_t>(40 + i)));
    ASSERT_EQ(sh(fmt::format("{} -q -c f{} > f{}.x && mv f{}.x f{}.{}", i % 2 ? "zstd" : "gzip", i, i, i, i,
                             i % 2 ? "zst" : "gz")).status, 0);
  }
  ASSERT_EQ(sh("mkdir orig && cp f? orig/ && rm f?").status, 0);
  const auto r = sluice("-d -v f0.gz f1.zst f2.gz f3.zst f4.gz f5.zst");
  ASSERT_EQ(r.status, 0) << describe(r);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(get("f" + std::to_string(i)), get("orig/f" + std::to_string(i))) << i;
  EXPECT_NE(r.err.find("6 files"), std::string::npos) << r.err;
}

TEST_F(Cli, TestingOrDecompressingATreeTakesOnlyItsCompressedFiles) {
  ASSERT_EQ(sh("mkdir -p tree/sub && echo one > tree/a && echo two > tree/sub/b && gzip -k tree/a && "
               "zstd -q -k tree/sub/b").status, 0);
  auto r = sluice("-t -r -v tree");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_NE(r.err.find("tree/a.gz: OK"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("tree/sub/b.zst: OK"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("tree/a:"), std::string::npos) << "uncompressed files are not inputs: " << r.err;
  r = sluice("-d -c -r tree");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_EQ(r.out, "one\ntwo\n");
  r = sluice("-t tree/a");
  EXPECT_EQ(r.status, 1) << "a file named on the command line is tested whatever its name";
}

TEST_F(Cli, ProgressDisplayOnATerminalUnlessQuiet) {
  put("a", text_bytes(1 << 20, 51));
  put("b", text_bytes(1 << 20, 52));
  // `script` gives the command a terminal; the delay override makes the bar appear at once.
  const auto shown = sh(fmt::format("SLUICE_PROGRESS_DELAY_MS=0 script -qec {} /dev/null",
                                    quote(testing::sluice() + " -F lz4 a b")));
  EXPECT_EQ(shown.status, 0) << shown.out;
  EXPECT_NE(shown.out.find("files] "), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("of 2.0 MiB"), std::string::npos) << shown.out;
  const auto quiet = sh(fmt::format("SLUICE_PROGRESS_DELAY_MS=0 script -qec {} /dev/null",
                                    quote(testing::sluice() + " -q -f -F lz4 a b")));
  EXPECT_EQ(quiet.status, 0) << quiet.out;
  EXPECT_EQ(quiet.out.find("files]"), std::string::npos) << quiet.out;
}

TEST_F(Cli, NoProgressDisplayWhenStderrIsNotATerminal) {
  put("a", random_bytes(4 << 20, 50));
  const auto r = sluice("-9 a");
  ASSERT_EQ(r.status, 0);
  EXPECT_EQ(r.err, "");
}

// ---- The Silesia corpus (skipped where ../shared/corpus is not present) ----

TEST_F(Cli, CorpusFilesRoundTripThroughTheStockToolsBothWays) {
  const fs::path corpus = testing::corpus_dir();
  if (corpus.empty()) GTEST_SKIP() << "the Silesia corpus is not available";
  for (const char* file : {"xml", "dickens"}) {
    const std::string path = quote((corpus / file).string());
    for (const auto& f : kFormats) {
      const auto ours = sh(fmt::format("{} -F {} -c {} | {} -dc | cmp - {}", testing::sluice(), f.codec, path, f.tool, path));
      EXPECT_EQ(ours.status, 0) << file << " " << f.codec << ": " << ours.err;
      const auto theirs = sh(fmt::format("{} -c {} | {} -dc | cmp - {}", f.tool, path, testing::sluice(), path));
      EXPECT_EQ(theirs.status, 0) << file << " " << f.codec << ": " << theirs.err;
    }
    const auto size = sh(fmt::format("test $({} -6 -c {} | wc -c) -le $(( $(pigz -6 -c {} | wc -c) * 101 / 100 ))",
                                     testing::sluice(), path, path));
    EXPECT_EQ(size.status, 0) << file << ": gzip -6 output more than 1% larger than pigz's";
  }
}

}  // namespace
}  // namespace sluice
