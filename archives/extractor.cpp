// The safe extractor that tar and zip share (archives/extractor.h).
//
// The rules that keep an archive inside the destination:
// - entry names and hard-link targets are relative paths without ".." components and without NUL
//   bytes (the checks here see the whole name, the system calls would see it cut at the NUL);
// - no entry changes the destination itself ("./" is skipped; a directory whose mode and times
//   are applied at the end is opened without following symlinks and checked to be the one made);
// - no path component inside the destination is ever followed if it is a symlink (the entry is
//   refused; this is bsdtar's default), so "link -> /etc" then "link/passwd" cannot escape;
// - an existing symlink (or file) at an entry's own name is replaced, never written through;
// - setuid/setgid bits are dropped and device nodes refused unless asked for (and root).
// Regular files are written unnamed (or to a temporary beside their final name) and named when
// complete, so an archive that breaks off mid-file leaves no partial file; small ones are created
// under their names at once and removed if they fail (start_file). Directory modes and times are
// applied at the end, deepest first, as tar does (a read-only directory still gets its contents).
//
// What is held for the entries is bounded, whatever the archive: the directories waiting for
// their modes and times to kPendingDirectoryBytes (past that, all but those of the entry being
// made get theirs at once, as GNU tar does for every directory without --delay-directory-restore:
// an entry put later into such a directory changes its time, and if it is read-only, fails), and
// the cache of directories known to be real ones to kVerifiedDirectoryBytes. 20,000 directories
// of 3.5 KB names held 226 MB, and when the cache held every prefix of every name, a name 1,000
// directories deep put 1 MB in it (300 such entries in a 1 MB archive: 328 MB).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <unordered_set>

#include <fmt/format.h>

#include "archives/extractor.h"
#include "archives/name_key.h"
#include "archives/tar_format.h"
#include "core/file_descriptor.h"
#include "sluice/error.h"
#include "sluice/tar.h"

namespace sluice::detail {
namespace {

// `path` split into its components with "" and "." dropped; nullopt and a reason if it is
// absolute or has a ".." component.
std::optional<std::string> relative_path(const std::string& path, std::string& why) {
  if (path.find('\0') != std::string::npos) {
    why = "name contains a NUL byte";
    return std::nullopt;
  }
  if (path.starts_with("/")) {
    why = "absolute path";
    return std::nullopt;
  }
  const std::vector<std::string> parts = detail::path_components(path);
  if (std::find(parts.begin(), parts.end(), "..") != parts.end()) {
    why = "path contains '..'";
    return std::nullopt;
  }
  return detail::join_components(parts);
}

// Whether a symbolic link's target only goes down from the link's directory: not absolute, no
// "..". Links that each only descend resolve inside the tree whatever they chain through, where a
// ".." that stays inside by its letters may not once a link it passes resolves to the top.
bool descends(const std::string& target) {
  if (target.empty() || target.front() == '/') return false;
  const std::vector<std::string> parts = detail::path_components(target);
  return std::find(parts.begin(), parts.end(), "..") == parts.end();
}

// TarExtractOptions::reserved with each path in relative_path's form ("./a//b" is "a/b").
std::vector<std::pair<std::string, std::string>> reserved_paths(const std::map<std::string, std::string>& reserved) {
  std::vector<std::pair<std::string, std::string>> paths;
  for (const auto& [path, why] : reserved) {
    std::string ignored;
    if (auto relative = relative_path(path, ignored); relative && !relative->empty())
      paths.emplace_back(std::move(*relative), why);
  }
  return paths;
}

std::string parent_of(const std::string& relative) {
  const std::size_t slash = relative.rfind('/');
  return slash == std::string::npos ? std::string() : relative.substr(0, slash);
}

constexpr std::size_t kPendingDirectoryBytes = 16u << 20;
// Files up to this size are created under their own names (start_file): for them, the unnamed
// file and its link were 40% of the time; a larger file's writing outweighs them, and it keeps
// the guarantee that a crash leaves nothing. (A batch's outputs are not created so: compressing
// 20,000 files of 4 KB is bound by deflate, and it gained 1%.)
constexpr std::uint64_t kInPlaceBytes = 64u << 10;
constexpr std::size_t kVerifiedDirectoryBytes = 8u << 20;

// The memory a path held in a node-based container takes, about: the characters and the node.
std::size_t held_bytes(const std::string& path) { return path.capacity() + 96; }

// Thrown inside the extractor for an entry that is refused; caught in begin().
struct Refusal {
  std::string why;
};

}  // namespace

}  // namespace sluice::detail

namespace sluice {

struct TarWrittenNames {
  // By SHA-256, as the extractor's verified directories: no archive can make names meet in a bucket.
  std::unordered_set<detail::NameKey, detail::NameKeyHash> names;
};

std::shared_ptr<TarWrittenNames> make_tar_written_names() { return std::make_shared<TarWrittenNames>(); }

}  // namespace sluice

namespace sluice::detail {

class SafeExtractor::Impl final : public TarEntryHandler {
 public:
  explicit Impl(const TarExtractOptions& options)
      : options_(options),
        members_(options.members),
        exclude_(options.exclude),
        reserved_(reserved_paths(options.reserved)),
        written_(options.written_names ? options.written_names : make_tar_written_names()) {
    root_ = options.directory.empty() ? "." : options.directory;
    check_system_name(root_);
    std::error_code made;
    std::filesystem::create_directories(root_, made);
    if (::stat(root_.c_str(), &root_status_) != 0) {
      // Why it could not be made (a parent not writable: EACCES), not the stat's ENOENT after.
      if (made) errno = made.value();
      throw_system_error("cannot use destination", root_);
    }
    if (!S_ISDIR(root_status_.st_mode))
      throw Error(ErrorKind::kIo, "destination is not a directory", root_).set_error_number(ENOTDIR);
    is_root_ = ::geteuid() == 0;
    const mode_t mask = ::umask(0);
    ::umask(mask);
    umask_ = mask;
  }

  void begin(const TarEntry& stored) override {
    current_ = &stored;
    skipping_ = true;
    // Entries not asked for are passed over before any check (as GNU tar does).
    if (!members_.selects(stored.path) || exclude_.excludes(stored.path)) return;
    if (options_.strip_components > 0) {
      // The name with its leading components taken off, and a hard link's target with them (as
      // GNU tar does); an entry with nothing left of its name is passed over.
      stripped_ = stored;
      stripped_.path = strip_tar_components(stored.path, options_.strip_components);
      if (stripped_.path.empty()) return;
      current_ = &stripped_;
      if (stored.type == TarEntryType::kHardLink) {
        stripped_.link_target = strip_tar_components(stored.link_target, options_.strip_components);
        if (stripped_.link_target.empty()) {
          return refuse(stripped_, fmt::format("nothing is left of the hard link target '{}' once its leading "
                                               "components are taken off",
                                               printable_name(stored.link_target)));
        }
      }
    }
    const TarEntry& entry = *current_;
    std::string why;
    if (entry.path.empty()) return refuse(entry, "entry with an empty name");
    if (entry.path.size() >= PATH_MAX) {  // refused by the system, and not split (8 MiB of "a/": 186 MB)
      try {
        errno = ENAMETOOLONG;
        throw_system_error("cannot create", full(entry.path.substr(0, 64) + "..."));
      } catch (const Error& error) {
        return fail_entry(entry, error, false);
      }
    }
    const auto relative = relative_path(entry.path, why);
    if (!relative) return refuse(entry, why);
    if (relative->empty()) {
      // "./" names the destination, which an archive never changes.
      if (entry.type != TarEntryType::kDirectory) refuse(entry, "names the destination itself");
      return;
    }
    for (const auto& [name, reason] : reserved_) {
      if (relative->starts_with(name) && (relative->size() == name.size() || (*relative)[name.size()] == '/'))
        return refuse(entry, reason);
    }
    if (!entry.unsupported.empty()) return refuse(entry, entry.unsupported + " (not supported)");
    if (options_.files_and_links_within) {
      if (entry.type == TarEntryType::kFifo || entry.type == TarEntryType::kCharDevice ||
          entry.type == TarEntryType::kBlockDevice) {
        return refuse(entry, "not a file (a tree of compressed files holds no FIFO or device)");
      }
      if (entry.type == TarEntryType::kSymlink && !descends(entry.link_target)) {
        return refuse(entry, fmt::format("symbolic link to '{}' may lead out of the tree (absolute, or with '..')",
                                         printable_name(entry.link_target)));
      }
    }
    if (want_owner() && (entry.uid > kMaxOwnerId || entry.gid > kMaxOwnerId)) {
      // uid_t and gid_t would wrap them (and -1 means "leave unchanged"), as GNU tar says.
      return refuse(entry,
                    fmt::format("owner {}:{} is out of range (ids go up to {})", entry.uid, entry.gid, kMaxOwnerId));
    }
    try {
      const std::string path = full(*relative);
      if (path.size() >= PATH_MAX) {  // refused by the system: no directory is made for it
        errno = ENAMETOOLONG;
        throw_system_error("cannot create", path);
      }
      ensure_directories(parent_of(*relative));
      // With keep_existing, what is there stays: a directory entry joins a directory that exists,
      // its mode, owner and times kept (GNU tar's and bsdtar's -k: an archive's 0777 entry made
      // ~/.ssh world-writable), and is refused where something else is (a symbolic link was
      // replaced by it, silently).
      struct stat existing {};
      std::optional<NameKey> key;  // keep_what_was_there: the name, once
      if (options_.keep_what_was_there) key = name_key(*relative);
      const bool keep = options_.keep_existing || (key && !written_->names.contains(*key));
      const bool kept = keep && ::lstat(path.c_str(), &existing) == 0 && !made_here(*relative);
      if (kept && (entry.type != TarEntryType::kDirectory || !S_ISDIR(existing.st_mode))) {
        throw Refusal{"it exists already and is kept"};
      }
      switch (entry.type) {
        case TarEntryType::kFile:
          check_output_limit(entry);
          start_file(entry, path);
          output_bytes_ += entry.size;
          break;
        case TarEntryType::kDirectory:
          make_directory(entry, *relative, path, /*metadata=*/!kept);
          break;
        case TarEntryType::kSymlink:
          make_symlink(entry, path);
          break;
        case TarEntryType::kHardLink:
          make_hard_link(entry, path);
          break;
        case TarEntryType::kFifo:
        case TarEntryType::kCharDevice:
        case TarEntryType::kBlockDevice:
          make_special(entry, path);
          break;
      }
      if (key) written_->names.insert(std::move(*key));  // made: a later entry of its name replaces it
      ++extracted_;
      if (options_.on_entry) options_.on_entry(entry);
    } catch (const Refusal& refusal) {
      refuse(entry, refusal.why);
    } catch (const Error& error) {
      // A stop (or a callback's failure) ends the run, as the output limit does.
      if (error.kind() == ErrorKind::kCancelled || error.kind() == ErrorKind::kLimit) throw;
      fail_entry(entry, error, false);
    }
  }

  void data(ByteView bytes) override {
    if (!file_) return;
    try {
      write(bytes);
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::kCancelled) throw;
      fail_entry(*current_, error, true);
    }
  }

  void write(ByteView bytes) {
    if (!current_->sparse) return file_->write(bytes);
    // A sparse file: each region's bytes at its offset, the gaps left as holes.
    const auto& regions = current_->regions;
    while (!bytes.empty()) {
      while (region_ < regions.size() && within_region_ == regions[region_].length) next_region();
      if (region_ == regions.size()) throw Error(ErrorKind::kInternal, "sparse data past the map", file_->name());
      const TarSparseRegion& region = regions[region_];
      if (within_region_ == 0) file_->skip(region.offset - written_to_);
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), region.length - within_region_));
      file_->write(bytes.first(take));
      within_region_ += take;
      written_to_ = region.offset + within_region_;
      bytes = bytes.subspan(take);
    }
  }

  void warning(const std::string& message) override {
    if (options_.on_warning) options_.on_warning(message);
  }

  void end() override {
    if (!file_) return;
    try {
      if (current_->sparse) file_->skip(current_->size - written_to_);  // a hole at the end
      file_->commit(false);
      const std::string path = file_->name();
      file_.reset();
      if (want_owner()) restore_owner(path, *current_, true);
    } catch (const Error& error) {
      if (error.kind() == ErrorKind::kCancelled) throw;
      fail_entry(*current_, error, true);
    }
  }

  // Directory modes and times, deepest first. Runs after success and after failure alike. Each is
  // applied through a descriptor of the directory opened without following a symlink, and only if
  // it is still the directory the entry made (never the destination).
  void finish_directories() noexcept {
    // A path sorts after its ancestors' paths: in reverse order, children come first.
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) apply_directory(it->first, it->second);
    pending_.clear();
    pending_bytes_ = 0;
  }

  bool writing() const { return file_ != nullptr; }
  std::uint64_t extracted() const { return extracted_; }
  std::uint64_t refused() const { return refused_; }
  std::uint64_t failed() const { return failed_; }
  std::vector<std::string> members_not_found() const { return members_.not_found(); }

  // An entry the file system would not take, or whose data could not be read: see SafeExtractor::fail.
  void fail(const TarEntry& entry, const Error& error, bool begun);

 private:
  struct PendingDirectory {
    mode_t mode;
    struct timespec mtime;
    uid_t uid;
    gid_t gid;
    dev_t device;  // the directory made for the entry
    ino_t inode;
  };

  void apply_directory(const std::string& path, const PendingDirectory& directory) const noexcept {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    struct stat status {};
    if (::fstat(fd, &status) == 0 && status.st_dev == directory.device && status.st_ino == directory.inode &&
        !is_destination(status)) {
      if (want_owner()) (void)::fchown(fd, directory.uid, directory.gid);
      (void)::fchmod(fd, directory.mode);
      const struct timespec times[2] = {directory.mtime, directory.mtime};
      (void)::futimens(fd, times);
    }
    ::close(fd);
  }

  // Past kPendingDirectoryBytes: every waiting directory but `path` and its ancestors gets its
  // mode and times now, deepest first.
  void apply_directories_off(const std::string& path) {
    for (auto it = pending_.end(); it != pending_.begin();) {
      --it;
      const std::string& waiting = it->first;
      if (path.starts_with(waiting) && (path.size() == waiting.size() || path[waiting.size()] == '/')) continue;
      apply_directory(waiting, it->second);
      pending_bytes_ -= held_bytes(waiting);
      it = pending_.erase(it);
    }
  }

  // Past kVerifiedDirectoryBytes (a key and its node, about 48 bytes each) the cache is dropped:
  // what it held is checked again when needed.
  // Directories this extraction made, for keep_existing and keep_what_was_there: a directory entry
  // after its files (made then with the default mode) still takes its mode. Past the budget no
  // more are noted, and a later directory entry of one made since keeps what it has.
  void remember_made(const std::string& relative) {
    constexpr std::size_t kKeyBytes = sizeof(NameKey) + 32;
    if (!options_.keep_existing && !options_.keep_what_was_there) return;
    if (made_.size() * kKeyBytes < kVerifiedDirectoryBytes) made_.insert(name_key(relative));
  }
  bool made_here(const std::string& relative) const { return made_.contains(name_key(relative)); }

  void remember_verified(const std::string& relative) {
    constexpr std::size_t kKeyBytes = sizeof(NameKey) + 32;
    if (verified_.size() * kKeyBytes >= kVerifiedDirectoryBytes) verified_.clear();
    verified_.insert(name_key(relative));
  }

  void next_region() {
    ++region_;
    within_region_ = 0;
  }

  bool is_destination(const struct stat& status) const {
    return status.st_dev == root_status_.st_dev && status.st_ino == root_status_.st_ino;
  }

  std::string full(const std::string& relative) const { return root_ + "/" + relative; }

  void refuse(const TarEntry& entry, const std::string& why) {
    ++refused_;
    if (options_.strict) {
      throw Error(ErrorKind::kCorruptData, fmt::format("refusing entry '{}' (archive byte {}): {}",
                                                       printable_name(entry.path), entry.header_offset, why));
    }
    if (options_.on_refused) options_.on_refused(entry, why);
  }

  // An entry the file system would not take (a name too long, a full disk): reported, its partial
  // file removed, and extraction goes on, as GNU tar does (with `strict` it stops).
  void fail_entry(const TarEntry& entry, const Error& error, bool begun) {
    file_.reset();
    ++failed_;
    if (begun) --extracted_;
    if (options_.strict) {
      throw Error(error.kind(),
                  fmt::format("cannot extract '{}' (archive byte {}): {}", printable_name(entry.path),
                              entry.header_offset, error.detail()),
                  error.path())
          .set_error_number(error.error_number());
    }
    if (options_.on_failed) options_.on_failed(entry, error);
  }

  bool want_owner() const { return options_.same_owner && is_root_; }
  static constexpr std::uint64_t kMaxOwnerId = 0xfffffffe;

  // Permission bits to give an entry: without -p, no setuid/setgid, and the umask applies
  // (except for root, as with GNU tar). A mode the archive does not record is a default, which
  // the umask always trims (unzip's 0644 and 0755 under the usual 022, root or not).
  mode_t mode_for(const TarEntry& entry) const {
    mode_t mode = static_cast<mode_t>(entry.mode & 07777);
    if (!entry.mode_recorded) return mode & ~umask_ & 0777;
    if (!options_.preserve_permissions) {
      mode &= ~static_cast<mode_t>(S_ISUID | S_ISGID);
      if (!is_root_) mode &= ~umask_;
    }
    return mode;
  }

  static struct timespec mtime_of(const TarEntry& entry) {
    return {static_cast<time_t>(entry.mtime_seconds), static_cast<long>(entry.mtime_nanoseconds)};
  }

  // Makes every directory of `relative` (a path inside the destination) exist, refusing to pass
  // through a symlink or a non-directory; with `create` false, makes none and returns false where
  // one is missing. From the destination, or from `relative`'s parent when entries were made there
  // before (verified_), each directory is opened by its name in the one above, never following a
  // symlink, and made first where missing: a look-up per directory, linear in the name. (Looking
  // each prefix up by its whole path cost its depth: 200 entries 2,000 deep took 50 s; probing the
  // cache for every prefix cost the square of the name's length: 23 s for one 800 KB name.)
  bool ensure_directories(const std::string& relative, bool create = true) {
    if (relative.empty() || verified_.count(name_key(relative))) return true;
    const std::string parent = parent_of(relative);
    const bool known = !parent.empty() && verified_.count(name_key(parent)) > 0;
    const std::string from = known ? full(parent) : root_;
    FileDescriptor directory(::open(from.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | (known ? O_NOFOLLOW : 0)));
    if (directory.get() < 0) throw_system_error("cannot create directory", from);
    for (std::size_t at = known ? parent.size() + 1 : 0; at < relative.size();) {
      const std::size_t slash = std::min(relative.find('/', at), relative.size());
      const std::string name = relative.substr(at, slash - at);
      constexpr int kFlags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
      int next = ::openat(directory.get(), name.c_str(), kFlags);
      if (next < 0 && errno == ENOENT) {
        if (!create) return false;
        count_directory(relative.substr(0, slash));
        if (::mkdirat(directory.get(), name.c_str(), 0777) == 0) {
          remember_made(relative.substr(0, slash));
        } else if (errno != EEXIST) {
          throw_system_error("cannot create directory", full(relative.substr(0, slash)));
        }
        next = ::openat(directory.get(), name.c_str(), kFlags);
      }
      if (next < 0) {
        const int error = errno;
        const std::string prefix = relative.substr(0, slash);
        struct stat status {};
        if (::fstatat(directory.get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(status.st_mode)) {
          if (S_ISLNK(status.st_mode))
            throw Refusal{fmt::format("path goes through the symbolic link '{}'", printable_name(prefix))};
          throw Refusal{fmt::format("'{}' is not a directory", printable_name(prefix))};
        }
        errno = error;
        throw_system_error("cannot create directory", full(prefix));
      }
      directory.reset(next);
      at = slash + 1;
    }
    remember_verified(relative);
    return true;
  }

  // Makes room at `path` for a new non-directory: an existing file or symlink there is removed
  // (never followed); an existing directory is refused.
  void clear_place(const std::string& path) {
    struct stat status {};
    if (::lstat(path.c_str(), &status) != 0) return;
    if (S_ISDIR(status.st_mode)) throw Refusal{"a directory exists at that path"};
    if (::unlink(path.c_str()) != 0) throw_system_error("cannot replace", path);
  }

  // options.max_output_bytes: a file that would take the contents written past it stops the
  // run before it is begun. Its size is what the archive declares: a tar entry's data is that
  // many bytes, and a zip member that decodes to more than it declares fails.
  void check_output_limit(const TarEntry& entry) const {
    const std::uint64_t limit = options_.max_output_bytes;
    if (limit == 0 || entry.size <= limit - std::min(limit, output_bytes_)) return;
    throw Error(ErrorKind::kLimit,
                fmt::format("'{}' (archive byte {}) holds {} bytes: the files would exceed the limit of {} bytes set "
                            "for this run ({} written before it)",
                            printable_name(entry.path), entry.header_offset, entry.size, limit, output_bytes_));
  }

  // A directory to be made counts as a block of the file system towards max_output_bytes: ten
  // entries of 2,040 components each (328 bytes of .tar.gz) made 20,421 directories, 80 MB of
  // disk, past any limit on file contents.
  void count_directory(const std::string& relative) {
    const std::uint64_t limit = options_.max_output_bytes;
    if (limit != 0 && kExtractedDirectoryBytes > limit - std::min(limit, output_bytes_)) {
      throw Error(ErrorKind::kLimit,
                  fmt::format("directory '{}' would take the output past the limit of {} bytes set for this run ({} "
                              "written before it; a directory counts as {} bytes)",
                              printable_name(relative), limit, output_bytes_, kExtractedDirectoryBytes));
    }
    output_bytes_ += kExtractedDirectoryBytes;
  }

  void start_file(const TarEntry& entry, const std::string& path) {
    // A small file where nothing is yet (the usual case) is created under its name at once, as
    // GNU tar and bsdtar create every file: its bytes follow at once, and a failure or a signal
    // removes it as it would a temporary. Larger ones, and any name that is taken, go the careful
    // way: written unnamed (or as a temporary) and named when complete.
    if (entry.size <= kInPlaceBytes) file_ = OutputFile::create_in_place(path);
    if (!file_) {
      struct stat existing {};
      OutputFile::Found found = OutputFile::Found::kUnknown;  // an lstat that failed otherwise: the output says why
      if (::lstat(path.c_str(), &existing) == 0) {
        if (S_ISDIR(existing.st_mode)) throw Refusal{"a directory exists at that path"};
        // The temporary is renamed over a regular file; anything else (a symlink above all, or a
        // FIFO the output would open) is removed first so that nothing is written through it.
        if (!S_ISREG(existing.st_mode) && ::unlink(path.c_str()) != 0) throw_system_error("cannot replace", path);
        found = S_ISREG(existing.st_mode) ? OutputFile::Found::kRegularFile : OutputFile::Found::kNothing;
      } else if (errno == ENOENT) {
        found = OutputFile::Found::kNothing;
      }
      file_ = std::make_unique<OutputFile>(path, true, true, found);
    }
    region_ = 0;
    within_region_ = 0;
    written_to_ = 0;
    FileStatus metadata;
    metadata.permissions = mode_for(entry);
    metadata.mtime_seconds = metadata.atime_seconds = entry.mtime_seconds;
    metadata.mtime_nanoseconds = metadata.atime_nanoseconds = entry.mtime_nanoseconds;
    file_->preserve_metadata_of(metadata);
    skipping_ = false;
  }

  // `metadata`: the entry's mode, owner and times are applied at the end (false: a directory kept).
  void make_directory(const TarEntry& entry, const std::string& relative, const std::string& path, bool metadata) {
    struct stat status {};
    const bool exists = ::lstat(path.c_str(), &status) == 0;
    if (exists && !S_ISDIR(status.st_mode)) {
      if (!options_.replace_files_with_directories && !S_ISLNK(status.st_mode)) {
        throw Refusal{"a file exists at that path"};
      }
      if (::unlink(path.c_str()) != 0) throw_system_error("cannot replace", path);
    }
    if (!exists || !S_ISDIR(status.st_mode)) count_directory(relative);
    if (::mkdir(path.c_str(), 0700) == 0) {
      remember_made(relative);
    } else if (errno != EEXIST) {
      throw_system_error("cannot create directory", path);
    }
    if (::lstat(path.c_str(), &status) != 0) throw_system_error("cannot create directory", path);
    if (!S_ISDIR(status.st_mode)) throw Refusal{"not a directory after it was made"};
    if (is_destination(status)) throw Refusal{"names the destination itself"};
    remember_verified(relative);
    if (!metadata) return;
    // A directory that comes twice takes its last entry's mode and times, as with GNU tar.
    const PendingDirectory pending{
        mode_for(entry), mtime_of(entry), static_cast<uid_t>(entry.uid), static_cast<gid_t>(entry.gid),
        status.st_dev,   status.st_ino};
    const auto [it, added] = pending_.insert_or_assign(path, pending);
    if (added) pending_bytes_ += held_bytes(it->first);
    if (pending_bytes_ > kPendingDirectoryBytes) apply_directories_off(path);
  }

  void make_symlink(const TarEntry& entry, const std::string& path) {
    if (entry.link_target.find('\0') != std::string::npos) throw Refusal{"link target contains a NUL byte"};
    clear_place(path);
    if (::symlink(entry.link_target.c_str(), path.c_str()) != 0)
      throw_system_error("cannot create symbolic link", path);
    const struct timespec times[2] = {mtime_of(entry), mtime_of(entry)};
    (void)::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
    if (want_owner()) restore_owner(path, entry, false);
  }

  void make_hard_link(const TarEntry& entry, const std::string& path) {
    std::string why;
    // A directory's name: no hard link goes to one, and to a file by it is "Not a directory".
    if (entry.link_target.ends_with('/')) {
      throw Refusal{
          fmt::format("hard link to '{}': a name ending in '/' names a directory", printable_name(entry.link_target))};
    }
    const auto target = relative_path(entry.link_target, why);
    if (!target || target->empty()) {
      throw Refusal{fmt::format("hard link to '{}': {}", printable_name(entry.link_target),
                                why.empty() ? "the destination" : why)};
    }
    const std::string target_path = full(*target);
    struct stat target_status {};
    // Its directories looked at, never made (GNU tar makes none for a link to nothing).
    if (!ensure_directories(parent_of(*target), /*create=*/false) ||
        ::lstat(target_path.c_str(), &target_status) != 0) {
      throw Refusal{fmt::format("hard link target '{}' was not extracted", printable_name(entry.link_target))};
    }
    if (S_ISDIR(target_status.st_mode))
      throw Refusal{fmt::format("hard link to the directory '{}'", printable_name(entry.link_target))};
    struct stat existing {};
    if (::lstat(path.c_str(), &existing) == 0 && existing.st_dev == target_status.st_dev &&
        existing.st_ino == target_status.st_ino) {
      return;  // already the same file
    }
    clear_place(path);
    // Flags 0: a symlink target is linked as the symlink itself, never followed.
    if (::linkat(AT_FDCWD, target_path.c_str(), AT_FDCWD, path.c_str(), 0) != 0) {
      throw_system_error("cannot create hard link", path);
    }
  }

  void make_special(const TarEntry& entry, const std::string& path) {
    if (entry.type != TarEntryType::kFifo && !(options_.devices && is_root_)) {
      throw Refusal{"device node (extracted only as root with --devices)"};
    }
    clear_place(path);
    const mode_t type = entry.type == TarEntryType::kFifo         ? S_IFIFO
                        : entry.type == TarEntryType::kCharDevice ? S_IFCHR
                                                                  : S_IFBLK;
    const dev_t device = makedev(entry.device_major, entry.device_minor);
    if (::mknod(path.c_str(), type | mode_for(entry), type == S_IFIFO ? 0 : device) != 0) {
      throw_system_error("cannot create special file", path);
    }
    if (want_owner()) restore_owner(path, entry, true);
    const struct timespec times[2] = {mtime_of(entry), mtime_of(entry)};
    (void)::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }

  void restore_owner(const std::string& path, const TarEntry& entry, bool reapply_mode) {
    if (::lchown(path.c_str(), static_cast<uid_t>(entry.uid), static_cast<gid_t>(entry.gid)) != 0) {
      throw_system_error("cannot restore owner", path);
    }
    // chown clears setuid/setgid; put the mode back.
    if (reapply_mode) (void)::chmod(path.c_str(), mode_for(entry));
  }

  const TarExtractOptions& options_;
  std::string root_;
  struct stat root_status_ {};
  TarMembers members_;
  TarExclude exclude_;
  std::vector<std::pair<std::string, std::string>> reserved_;  // options.reserved, as relative_path gives names
  bool is_root_ = false;
  mode_t umask_ = 022;
  // Directories known to be real ones (relative paths, by name_key): those entries were made
  // in, and those made by entries, not every prefix of every name (a name 2,000 deep has 4 MB of
  // those); by SHA-256, so that no archive can make names meet in one bucket of the set.
  std::unordered_set<NameKey, NameKeyHash> verified_;
  std::unordered_set<NameKey, NameKeyHash> made_;    // remember_made()
  std::shared_ptr<TarWrittenNames> written_;         // names entries made (keep_what_was_there)
  std::map<std::string, PendingDirectory> pending_;  // directories waiting for their modes and times, by path
  std::size_t pending_bytes_ = 0;
  std::unique_ptr<OutputFile> file_;
  // A sparse file being written: the region its data goes to, how much of it is written, and
  // the file offset reached.
  std::size_t region_ = 0;
  std::uint64_t within_region_ = 0;
  std::uint64_t written_to_ = 0;
  const TarEntry* current_ = nullptr;
  TarEntry stripped_;  // the entry begun last with its leading components taken off
  bool skipping_ = true;
  std::uint64_t extracted_ = 0;
  std::uint64_t output_bytes_ = 0;  // the sizes of the files begun (check_output_limit)
  std::uint64_t refused_ = 0;
  std::uint64_t failed_ = 0;
};

void SafeExtractor::Impl::fail(const TarEntry& entry, const Error& error, bool begun) {
  fail_entry(entry, error, begun);
}

SafeExtractor::SafeExtractor(const TarExtractOptions& options) : impl_(std::make_unique<Impl>(options)) {}
SafeExtractor::~SafeExtractor() = default;
void SafeExtractor::begin(const TarEntry& entry) { impl_->begin(entry); }
void SafeExtractor::data(ByteView bytes) { impl_->data(bytes); }
void SafeExtractor::end() { impl_->end(); }
void SafeExtractor::warning(const std::string& message) { impl_->warning(message); }
void SafeExtractor::fail(const TarEntry& entry, const Error& error, bool begun) { impl_->fail(entry, error, begun); }
void SafeExtractor::finish_directories() noexcept { impl_->finish_directories(); }
bool SafeExtractor::writing() const { return impl_->writing(); }

StreamInfo stream_info_for(const std::string& path, std::int64_t mtime_seconds) {
  StreamInfo info;
  const std::size_t slash = path.rfind('/');
  info.name = slash == std::string::npos ? path : path.substr(slash + 1);
  info.mtime_seconds = mtime_seconds;
  return info;
}
std::uint64_t SafeExtractor::extracted() const { return impl_->extracted(); }
std::uint64_t SafeExtractor::refused() const { return impl_->refused(); }
std::uint64_t SafeExtractor::failed() const { return impl_->failed(); }
std::vector<std::string> SafeExtractor::members_not_found() const { return impl_->members_not_found(); }

}  // namespace sluice::detail
