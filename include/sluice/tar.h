// Tar archives through the same graphs as every other job.
//
// Creating: TarWriterSource walks the given paths and produces the archive (POSIX pax/ustar) as a
// byte stream, one file open at a time and each file's contents read straight into the graph's
// chunks; create_tar() feeds that stream to the compression graph (or writes it plain). The
// archive is produced in order while its chunks are compressed in parallel.
//
// Reading: TarReader is a ByteSink that parses an archive as it is written to it, in whatever
// pieces, and reports entries to a TarEntryHandler. read_tar() detects the compression from the
// magic bytes, runs the decompression graph into a TarReader (or feeds a plain archive
// directly), so contents stream through in bounded memory whatever the file sizes.
// extract_tar() and list_tar() are the two handlers the `sluice tar` command uses.
//
// Formats read: POSIX ustar and pax (local and global headers), GNU (././@LongLink names,
// base-256 numbers), old v7 headers, and sparse files in every form GNU tar and bsdtar write (old
// GNU 'S' headers with extension blocks, pax 0.0, 0.1 and 1.0). Multi-volume continuations and
// volume labels are reported and skipped.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/compress.h"
#include "sluice/error.h"
#include "sluice/io.h"

namespace sluice {

enum class TarEntryType { kFile, kHardLink, kSymlink, kCharDevice, kBlockDevice, kDirectory, kFifo };

// Where one run of a sparse file's data lies in the file.
struct TarSparseRegion {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool operator==(const TarSparseRegion&) const = default;
};

struct TarEntry {
  std::string path;             // as stored, after pax and GNU long-name records
  TarEntryType type = TarEntryType::kFile;
  char typeflag = '0';          // the raw header type
  std::uint32_t mode = 0644;    // permission bits, including setuid/setgid/sticky (07777)
  // False where the archive records no permissions (a zip member from DOS or Windows): `mode` is
  // a default, to which extraction applies the umask even for root (as unzip does).
  bool mode_recorded = true;
  std::uint64_t uid = 0;
  std::uint64_t gid = 0;
  std::string uname;
  std::string gname;
  std::uint64_t size = 0;       // the file's size (for a sparse file, holes included)
  std::int64_t mtime_seconds = 0;
  std::uint32_t mtime_nanoseconds = 0;
  std::string link_target;      // symlink target, or the path a hard link refers to
  std::uint32_t device_major = 0;
  std::uint32_t device_minor = 0;
  std::uint64_t header_offset = 0;  // archive byte where the entry's first header block starts
  // A sparse file: its data regions, in order, not overlapping, within `size`; data() passes
  // their bytes one region after the other (the holes between them are not in the archive).
  bool sparse = false;
  std::vector<TarSparseRegion> regions;
  // Set for entries that cannot be reproduced (multi-volume continuations, a sparse map that does
  // not match the data stored): the reason. Their stored bytes are still passed to data(), and
  // `size` is then their count.
  std::string unsupported;

  // The bytes data() passes for this entry: `size`, or the regions' lengths added up.
  std::uint64_t stored_bytes() const;
  // Of a type no tar knows ('Z', say): read as a regular file, as POSIX asks.
  bool of_unknown_type() const;
};

// Receives a parsed archive: begin(), the content in pieces through data(), end(); in order.
class TarEntryHandler {
 public:
  virtual ~TarEntryHandler() = default;
  virtual void begin(const TarEntry& entry) = 0;
  virtual void data(ByteView bytes) = 0;
  virtual void end() = 0;
  // What the reader read past instead of failing, e.g. a pax value it could not read (the ustar
  // field applies instead): a message naming the archive and the byte. Ignored by default.
  virtual void warning(const std::string& message) { (void)message; }
};

// Parses a tar archive written to it in any pieces. Throws Error (kCorruptData) on a corrupt
// header, naming the archive byte and the entry before it; finish() throws if the archive ends in
// the middle of an entry.
class TarReader final : public ByteSink {
 public:
  TarReader(TarEntryHandler& handler, std::string name);
  ~TarReader() override;
  void write(ByteView bytes) override;
  const std::string& name() const override;
  void finish();
  std::uint64_t entries() const;
  std::uint64_t bytes_parsed() const;
  std::uint64_t warnings() const;
  // Passes a warning about the archive to the handler (and counts it).
  void warn(const std::string& message);
  // The entry whose content (or sparse map) is being read, for messages about a failure of the
  // stream beneath ("entry 'a/b' (header at archive byte 512)"); empty between entries.
  std::string current_entry() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// --- creating ---

struct TarOwner {
  std::optional<std::string> name;  // stored user/group name ("" stores none)
  std::optional<std::uint64_t> id;  // stored numeric id
};

struct TarCreateOptions {
  // Paths are taken relative to this directory (tar -C); entry names do not include it.
  std::string directory;
  // Entries to leave out, by GNU tar's --exclude rules (TarExclude); an excluded directory is
  // not walked.
  std::vector<std::string> exclude;
  // Walk directories given (false: a directory given is stored without its contents).
  bool recursive = true;
  // Do not walk into a directory on another file system than the one it lies in (a mount
  // point is stored as an empty directory), as GNU tar's --one-file-system.
  bool one_file_system = false;
  // Applied to every entry when set, for reproducible archives. A name given without an id takes
  // the id this system gives it (resolve_tar_user, resolve_tar_group).
  std::optional<std::int64_t> mtime_seconds;
  TarOwner owner;
  TarOwner group;
  bool numeric_owner = false;  // store no user/group names
  // Store files with holes as sparse entries (pax sparse format 1.0, as GNU tar --sparse and
  // bsdtar write): their holes take no room in the archive and come back as holes.
  bool sparse = false;
  // Files never to add, by device and inode: the archive being written, when it lies inside a
  // directory being archived (reported through on_skipped).
  std::vector<std::pair<std::uint64_t, std::uint64_t>> skip_files;
  // Called as each entry is added (for -v), and for files left out (sockets): the path and why.
  std::function<void(const TarEntry&)> on_entry;
  std::function<void(const std::string& path, const std::string& why)> on_skipped;
  // Called for a file that changed while it was read (it grew, or was written to): the archive
  // holds what was read under the size and time it had when opened (GNU tar warns "file changed
  // as we read it" and exits 1). A file that shrank is an error instead: its entry cannot be
  // completed.
  std::function<void(const std::string& path)> on_changed;
  // Called when a path given loses its front to make its entry's name ("/" of "/etc", "../" of
  // "../a", "a/../" of "a/../b"), before its entries are added (GNU tar says "Removing leading
  // `/' from member names" once for each).
  std::function<void(const std::string& prefix)> on_prefix_removed;
};

// "NAME", "NAME:ID", "ID" or "+ID" (as GNU tar's --owner/--group). Throws Error (kUsage).
TarOwner parse_tar_owner(const std::string& text);
// An owner or group given by name only, with the id this system's user or group database gives
// that name (getpwnam, getgrnam), as GNU tar finds it; others as they are. Throws Error (kUsage)
// for a name the system does not know (GNU tar would store the file's own id under it), so
// that an archive never records a name with an id that is not its own: give NAME:ID for it.
// TarWriterSource resolves its options' owner and group itself.
TarOwner resolve_tar_user(TarOwner owner);
TarOwner resolve_tar_group(TarOwner group);
// "@SECONDS", "YYYY-MM-DD", or "YYYY-MM-DD HH:MM[:SS[.fraction]]" ('T' for the space), in UTC
// unless it ends with "Z", "UTC" or an offset (+HH, +HHMM, +HH:MM, after a space or not): seconds
// since 1970 (as GNU tar's --mtime; a fraction dropped). Throws Error (kUsage) for anything else,
// trailing text included.
std::int64_t parse_tar_mtime(const std::string& text);

// The archive of `paths` as a byte stream. Directories are walked recursively, children in
// byte order of their names, so the same tree gives the same bytes. Entry names are the paths as
// given, without leading "/" and "../". Reading throws Error naming the file when one cannot be
// read, vanishes, or shrinks while it is archived.
class TarWriterSource final : public ByteSource {
 public:
  TarWriterSource(std::vector<std::string> paths, TarCreateOptions options);
  ~TarWriterSource() override;
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override;
  const std::string& name() const override;
  std::uint64_t entries() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

struct TarStats {
  std::string codec;               // "" for a plain archive
  std::uint64_t entries = 0;
  std::uint64_t archive_bytes = 0; // uncompressed tar stream
  std::uint64_t stored_bytes = 0;  // bytes written (create) or read (extract, list)
  std::uint64_t warnings = 0;      // reading: TarEntryHandler::warning() calls
  double seconds = 0;
};

// Writes the archive of `paths` to `sink`, compressed with compress.codec through the compression
// graph, or plain when `codec` is empty.
TarStats create_tar(const std::vector<std::string>& paths, ByteSink& sink, const std::string& codec,
                    const CompressOptions& compress, const TarCreateOptions& options = {});

// The codec options create_tar() compresses an archive with, resolved as the codec resolves them
// (level, chunk size, knobs): when no chunk size is given, the codec's chunk size for archives
// (CodecInfo::archive_chunk_bytes) unless the level's own chunks are larger. Throws Error (kUsage)
// for options the codec refuses.
CodecOptions tar_codec_options(const std::string& codec, const CodecOptions& options);

// --- reading ---

// Parses the archive in `source` (compressed with any registered codec, or plain) into `handler`.
TarStats read_tar(ByteSource& source, TarEntryHandler& handler, int threads = 0);

// The names extractions wrote (TarExtractOptions::written_names): opaque, made empty here.
struct TarWrittenNames;
std::shared_ptr<TarWrittenNames> make_tar_written_names();

struct TarExtractOptions {
  std::string directory = ".";        // created if missing
  std::vector<std::string> members;   // only these paths (and what is under them); empty: all
  std::vector<std::string> exclude;   // but not these (TarExclude)
  bool preserve_permissions = false;  // keep setuid/setgid bits and ignore the umask (root's: never applied)
  bool same_owner = false;            // restore uid/gid (only when running as root)
  bool devices = false;               // create device nodes (only when running as root)
  bool strict = false;                // a refused or failed entry is an error instead of a warning
  // Leading components taken off each name (and each hard link's target) before it is extracted,
  // as GNU tar's --strip-components: "a/b/c" with 1 is "b/c". Entries left with no name are passed
  // over. Members and exclusions match the names as stored.
  std::size_t strip_components = 0;
  // An entry whose name exists already is refused, and what is there kept, a symbolic link
  // included; a directory entry joins a directory that exists, its mode, owner and times kept
  // (GNU tar's --keep-old-files). By default it is replaced, never written through.
  bool keep_existing = false;
  // keep_existing for what was there before the extraction began only: an entry still replaces
  // what an earlier entry of this extraction wrote (a name an archive holds twice, as GNU tar
  // extracts it). Transcoding into a directory without overwriting. Memory: each written name.
  bool keep_what_was_there = false;
  // With keep_what_was_there, the names written so far, shared by the extractions of one run into
  // one directory (several archives: a later one replaces what an earlier one wrote, as a later
  // entry does); null: this extraction's own (make_tar_written_names()).
  std::shared_ptr<TarWrittenNames> written_names;
  // A directory entry whose name holds a file replaces it, as GNU tar and bsdtar do; false: the
  // entry is refused and the file kept, as unzip and 7-Zip do (extract_zip). A symbolic link
  // there is replaced either way, never followed.
  bool replace_files_with_directories = true;
  // Symbolic links whose target is absolute or holds "..", and FIFOs and devices, are refused:
  // transcode_tar and transcode_zip set it, for a tree of compressed files that others are served
  // from (an upload's link "x.gz -> /etc/shadow" was made there), which nothing should block.
  bool files_and_links_within = false;
  // The most bytes of file contents to write, all entries together (0: no limit): a file entry
  // that would take the total past it stops extraction with Error(kLimit) before it is begun
  // (the entries before it stay extracted), so that a small archive (a .tar.gz of zeros, a bomb)
  // cannot fill a disk. Counted as the sizes the entries declare: a sparse file's whole size,
  // and transcode_tar's contents before they are compressed; and 4096 bytes for each directory
  // made (names of thousands of components are a bomb of directories), none for one there.
  std::uint64_t max_output_bytes = 0;
  // Paths under the directory that are the caller's (a run's manifest, written after): an entry
  // at one, or below one, is refused with its reason ("reserved for the run's manifest"), and
  // what is there is kept. The path an entry is written at counts (transcode_tar's NAME.gz).
  std::map<std::string, std::string> reserved;
  int threads = 0;
  std::function<void(const TarEntry&)> on_entry;  // each entry extracted
  // Each entry refused for safety: the entry and why. Without `strict` extraction goes on.
  std::function<void(const TarEntry&, const std::string& why)> on_refused;
  // Each entry the file system would not take (a name too long, a full disk): the entry and the
  // error. Its partial file is removed and extraction goes on; with `strict` it stops.
  std::function<void(const TarEntry&, const Error& error)> on_failed;
  // What the reader read past (TarEntryHandler::warning).
  std::function<void(const std::string& message)> on_warning;
};

struct TarExtractStats : TarStats {
  std::uint64_t extracted = 0;
  std::uint64_t refused = 0;
  std::uint64_t failed = 0;  // entries the file system would not take (on_failed)
  std::vector<std::string> members_not_found;  // options.members that matched no entry
};

// Extracts the archive in `source` under options.directory. Never writes outside it, nor changes
// the directory itself: entries with absolute paths, ".." components or a NUL byte in their name
// or link target, paths through symlinks, and hard links to outside are refused. Files appear under their final names only when complete. On a corrupt or truncated
// archive the entries before it stay extracted and the Error is thrown.
TarExtractStats extract_tar(ByteSource& source, const TarExtractOptions& options);

// Every file of the archive compressed with `compress` (codec, level, chunk size; threads come from
// options) to its own file under options.directory, named as the entry with the codec's
// extension ("a/b.txt" -> "a/b.txt.gz"), without the plain files being written; each file's
// bytes are what compress() makes of it (the gzip header records its base name and time). Other
// entries, and sparse files, are made as extract_tar makes them, under the same rules, and
// options.files_and_links_within; a link (hard or symbolic) to a file compressed before it links
// to the compressed file, under its own name + extension too (transcode_zip: wherever it stands).
TarExtractStats transcode_tar(ByteSource& source, const TarExtractOptions& options, const CompressOptions& compress);

// The name transcode_tar and transcode_zip write a file entry's compressed file under: the name
// as the extractor takes it with `extension` ("a/b.txt" -> "a/b.txt.gz", "y/." -> "y.gz"); a name
// the extractor refuses as it is (".", "..", "x/..", one too long) is given back unchanged, to be
// refused ("..": "...gz" was written).
std::string transcoded_name(const std::string& path, const std::string& extension);

// `path` without its first `count` components, as GNU tar's --strip-components counts them
// (leading slashes skipped, then a component ends at each run of slashes: "./a/b" with 1 is "a/b");
// "" when nothing is left.
std::string strip_tar_components(const std::string& path, std::size_t count);

// Picks entries by the member names a user gave (as `tar -x ARCHIVE MEMBER...` does): an entry
// is selected if its path equals a member or lies under one. Paths compare without "./" and
// trailing slashes. With `wildcards`, a member with *, ?, [...] or \ in it is a shell pattern,
// as unzip takes one: matched against the whole path (a directory's with its '/', so "*/" takes
// directories only), * and ? matching '/' too, and nothing else about it (not what lies under
// a match, not the member's letters as a name). Remembers which members matched nothing.
class TarMembers {
 public:
  explicit TarMembers(std::vector<std::string> members, bool wildcards = false);
  // True for every path when there are no members. `directory`: the entry is one (a pattern
  // sees its path with a '/').
  bool selects(const std::string& entry_path, bool directory = false);
  std::vector<std::string> not_found() const;

 private:
  std::vector<std::string> given_;
  std::vector<std::string> normalised_;
  std::vector<bool> patterns_;  // which members are matched as patterns
  std::vector<bool> matched_;
};

// Leaves entries out by GNU tar's --exclude rules: a pattern, with shell wildcards in which `*`
// and `?` match `/` too, excludes a path when it matches the path or any tail of it that starts
// at a component, and so everything under a path it excludes: "*.o" leaves out "src/a.o", ".git"
// leaves out "src/.git" and "src/.git/config", "src/*/tmp" leaves out "src/a/b/tmp". Paths
// compare without "./" and trailing slashes.
class TarExclude {
 public:
  explicit TarExclude(std::vector<std::string> patterns);
  bool excludes(const std::string& path) const;

 private:
  bool matches_at(const std::string& path, std::size_t at, std::size_t end) const;
  std::vector<std::string> patterns_;
};

// Calls `on_entry` for every entry of the archive in `source`, and `on_warning` (when set) for
// what the reader read past.
TarStats list_tar(ByteSource& source, const std::function<void(const TarEntry&)>& on_entry, int threads = 0,
                  const std::function<void(const std::string& message)>& on_warning = {});

// The codec a tar file name implies: .tar.gz/.tgz gzip, .tar.zst/.tzst zstd, .tar.lz4 lz4;
// "" for anything else (a plain archive).
std::string tar_codec_for_path(const std::string& path);

}  // namespace sluice
