// Zip archives through the same engine as every other job.
//
// Reading: ZipReader reads the central directory (zip64 included) from a random-access source and
// checks every member's local header against it before anything is decoded: names equal, every
// member's header and data inside the archive, before the central directory, and no two members
// overlapping (the shape of "zip bombs" built from overlapping entries). Members are decoded on
// every worker: small ones whole, one per task; a big one through the decompression graph, in
// bounded memory. Each member's size and CRC-32 are verified. Methods: stored, those a registered
// codec declares (CodecInfo::zip_method: deflate, zstd), and bzip2, LZMA and xz (libbz2,
// liblzma); others (deflate64, PPMd, ...) and encrypted members are a clear error naming the
// member. Names: UTF-8 when the
// archive says so (flag bit 11, or the Info-ZIP Unicode path field), otherwise taken as they are
// when they come from a Unix host (names there are bytes), and as CP437 otherwise (as unzip does).
//
// Extracting goes through the safe extractor that tar uses (no "..", no absolute paths, nothing
// written through a symlink, setuid/setgid dropped unless asked for, files renamed into place
// when complete): a zip entry is given to it as a TarEntry.
//
// Creating: create_zip() walks the given paths and writes the archive: files are cut into chunks
// compressed on every worker; a file of one chunk is one member whose sizes and CRC-32 precede it;
// a bigger file's chunks join into one member's stream (the CRC-32s combined). Sizes are patched
// into the local header when the sink allows it (a file), else follow the data in a data
// descriptor (a pipe). Zip64 records are written where sizes, offsets or the member count need
// them. The same tree gives the same bytes for any number of threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "sluice/compress.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/tar.h"

namespace sluice {

struct TarWrittenNames;  // sluice/tar.h

enum class ZipEntryType { kFile, kDirectory, kSymlink };

struct ZipEntry {
  std::string path;      // decoded as above (a Unix writer's bytes as they are); a directory's without its '/'
  std::string raw_name;  // the name's bytes as stored in the central directory
  ZipEntryType type = ZipEntryType::kFile;
  std::uint16_t method = 0;  // APPNOTE 4.4.5: 0 stored, 8 deflate, 93 zstd, ...
  std::uint16_t flags = 0;   // general purpose bits
  std::uint32_t crc32 = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
  std::uint64_t header_offset = 0;  // archive byte of the local header
  std::uint64_t data_offset = 0;    // archive byte of the member's data
  std::uint32_t mode = 0644;        // permission bits (07777): the Unix mode when stored, else a default
  bool unix_mode = false;           // whether the archive stored a Unix mode
  std::int64_t mtime_seconds = 0;   // the extended timestamp when stored, else the DOS time (local)
  std::uint32_t chunk_bytes = 0;    // sluice's independent chunks, decoded in parallel; 0: one stream
  std::string comment;

  bool encrypted() const { return (flags & 1u) != 0; }
  // "stored", "deflate", "zstd", ... or "method N".
  std::string method_name() const;
};

// The central directory of a zip archive, read from a random-access source (ByteSource::read_at)
// that must outlive the reader; members are then read with read_at() from several threads at once
// (FdSource and MemorySource allow it: pread, memcpy). Throws Error (kCorruptData, naming the archive and the byte)
// when the archive is not a zip, is truncated, or fails the checks above; kUsage for a source that cannot be read at
// any offset (a pipe).
class ZipReader {
 public:
  explicit ZipReader(ByteSource& source);
  ~ZipReader();
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  // The members, in central directory order: each is made on request from a compact table (a
  // vector of ZipEntry took 366 MB for 2 million members). entry() throws std::out_of_range past
  // the last.
  std::size_t size() const;
  ZipEntry entry(std::size_t index) const;
  const std::string& comment() const;
  const std::string& name() const;  // the archive's, for messages
  // Bytes before the first member that the archive's offsets do not count (a self-extractor's
  // program, or data the zip was appended to).
  std::uint64_t prefix_bytes() const;

  // Writes the member's data, decoded and checked against its size and CRC-32, to `sink`.
  // Throws Error naming the member and the archive byte: unsupported method, encryption, corrupt
  // data, a size or CRC-32 that does not match. `threads`: for a big member's decoding (0: all).
  // `stop`: a big member's decoding stops within a chunk (Error(kCancelled)).
  void read(const ZipEntry& entry, ByteSink& sink, int threads = 0, std::stop_token stop = {}) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Whether `source` (read at offset 0, so a random-access one) starts as a zip archive does: a
// local file header, or the end record of an empty archive.
bool looks_like_zip(ByteSource& source);

struct ZipStats {
  std::uint64_t entries = 0;
  std::uint64_t archive_bytes = 0;  // the zip file's size (read) or bytes written (create)
  std::uint64_t stored_bytes = 0;   // members' uncompressed bytes (those read, or written)
  double seconds = 0;
};

// Calls `on_entry` for every entry of the archive, in central directory order.
ZipStats list_zip(ByteSource& source, const std::function<void(const ZipEntry&)>& on_entry);

// Decodes every member (on every worker) and checks its size and CRC-32, writing nothing.
// Members that fail are reported through `on_failed` and counted; the archive's own faults throw.
struct ZipTestStats : ZipStats {
  std::uint64_t failed = 0;
  std::vector<std::string> members_not_found;  // of ZipTestSelection::members
};
ZipTestStats test_zip(ByteSource& source, int threads = 0,
                      const std::function<void(const ZipEntry&, const Error&)>& on_failed = {},
                      std::stop_token stop = {});
// Only some members, chosen as extract_zip chooses them (unzip -t a.zip MEMBER...).
struct ZipTestSelection {
  std::vector<std::string> members;  // only these paths (and what is under them); empty: all
  bool member_wildcards = false;     // members with *, ? or [...] are patterns, as unzip's
  std::vector<std::string> exclude;  // but not these (TarExclude's rules)
};
ZipTestStats test_zip(ByteSource& source, const ZipTestSelection& selection, int threads = 0,
                      const std::function<void(const ZipEntry&, const Error&)>& on_failed = {},
                      std::stop_token stop = {});

struct ZipExtractOptions {
  std::string directory = ".";        // created if missing
  std::vector<std::string> members;   // only these paths (and what is under them); empty: all
  bool member_wildcards = false;      // members with *, ? or [...] are patterns (TarMembers), as unzip's
  std::vector<std::string> exclude;   // but not these (TarExclude's rules)
  bool preserve_permissions = false;  // keep setuid/setgid bits and ignore the umask (root's: never applied)
  bool strict = false;                // a refused or failed member is an error instead of a warning
  // A member whose name exists already is refused, and what is there kept (as
  // TarExtractOptions::keep_existing); by default it is replaced, never written through.
  bool keep_existing = false;
  bool keep_what_was_there = false;                // as TarExtractOptions::keep_what_was_there
  std::shared_ptr<TarWrittenNames> written_names;  // as TarExtractOptions::written_names (sluice/tar.h)
  // The most bytes of file contents to write (0: no limit): when the members to extract declare
  // more in all, the call throws Error(kLimit) before anything is written (a member decoding to
  // more than it declares fails), so that a small archive (a zip bomb) cannot fill a disk.
  // transcode_zip counts the members' contents, before they are compressed.
  std::uint64_t max_output_bytes = 0;
  std::map<std::string, std::string> reserved;  // as TarExtractOptions::reserved (sluice/tar.h)
  int threads = 0;
  std::function<void(const ZipEntry&)> on_entry;                            // each entry extracted
  std::function<void(const ZipEntry&, const std::string& why)> on_refused;  // refused for safety
  // A member that could not be decoded (unsupported method, corrupt data, wrong CRC-32) or written:
  // nothing of it is left, and extraction goes on (with `strict` it stops).
  std::function<void(const ZipEntry&, const Error& error)> on_failed;
  // Once requested, no new member starts and a big one stops within a chunk; the call throws
  // Error(kCancelled) and the member being written is not published.
  std::stop_token stop;
};

struct ZipExtractStats : ZipStats {
  std::uint64_t extracted = 0;
  std::uint64_t refused = 0;
  std::uint64_t failed = 0;
  std::vector<std::string> members_not_found;
};

// Extracts the archive under options.directory, with tar's safety rules (sluice/tar.h,
// extract_tar). Members are decoded in parallel and written in archive order.
ZipExtractStats extract_zip(ByteSource& source, const ZipExtractOptions& options);

// The upload service's job in one pass: every file member compressed with `compress` (its codec,
// level, chunk size; threads come from options) to its own file under options.directory, named
// as the member with the codec's extension ("a/b.txt" -> "a/b.txt.gz"), without the plain files
// being written; the bytes of each are what compress() makes of the member (the gzip header
// records its base name and time). Directories and symlinks are made as extract_zip makes them,
// under the same safety rules and TarExtractOptions::files_and_links_within. on_entry and the
// stats count members.
ZipExtractStats transcode_zip(ByteSource& source, const ZipExtractOptions& options, const CompressOptions& compress);

struct ZipCreateOptions {
  std::string directory;                      // paths are taken relative to it (as tar -C)
  std::vector<std::string> exclude;           // TarExclude's rules; an excluded directory is not walked
  std::optional<std::int64_t> mtime_seconds;  // stored for every entry when set
  // The codec whose chunks make the members (one with a CodecInfo::zip_method); "": deflate.
  std::string codec;
  int level = 0;                // 0: the codec's default
  std::size_t chunk_bytes = 0;  // 0: the codec's default
  bool store = false;           // members' data as it is, uncompressed (Info-ZIP's zip -0)
  int threads = 0;
  // Files never to add, by device and inode: the archive being written.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> skip_files;
  std::function<void(const ZipEntry&)> on_entry;                                    // each entry as it is written
  std::function<void(const std::string& path, const std::string& why)> on_skipped;  // sockets, devices
  // Once requested, no new chunk is read and the call throws Error(kCancelled).
  std::stop_token stop;
};

// Writes the archive of `paths` (directories walked recursively, children in byte order of their
// names) to `sink`. Entry names are the paths as given without leading "/", "../" and "./". Throws
// Error naming the file when one cannot be read or shrinks while it is archived (one that grows
// is archived at the size it had when opened).
ZipStats create_zip(const std::vector<std::string>& paths, ByteSink& sink, const ZipCreateOptions& options = {});

}  // namespace sluice
