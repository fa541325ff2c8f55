// File, stream and memory ends for the graphs, and the atomic output file.
#include "sluice/io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include "core/file_descriptor.h"
#include "core/pending_outputs.h"
#include "sluice/error.h"

namespace sluice {

std::size_t ByteSource::read_full(std::uint8_t* dst, std::size_t max_bytes) {
  std::size_t total = 0;
  while (total < max_bytes) {
    const std::size_t got = read(dst + total, max_bytes - total);
    if (got == 0) break;
    total += got;
  }
  return total;
}

bool ByteSource::wait_readable(std::chrono::milliseconds) { return true; }

void ByteSource::seek(std::uint64_t) { throw Error(ErrorKind::kInternal, "the source is not a file to seek in", name()); }

std::size_t ByteSource::read_at(std::uint64_t, std::uint8_t*, std::size_t) {
  throw Error(ErrorKind::kInternal, "the source cannot be read at an offset", name());
}

void ByteSink::write_at(std::uint64_t, ByteView) {
  throw Error(ErrorKind::kInternal, "the output cannot be written at an offset", name());
}

void MemorySink::write_at(std::uint64_t offset, ByteView bytes) {
  if (offset > buffer_.size() || bytes.size() > buffer_.size() - offset) {
    throw Error(ErrorKind::kInternal, "write_at past what was written", name_);
  }
  std::memcpy(buffer_.data() + offset, bytes.data(), bytes.size());
}

namespace {
void throw_if_stopped(const std::stop_token& stop, const std::string& name) {
  if (stop.stop_requested()) throw Error(ErrorKind::kCancelled, "stopped: the run was asked to stop", name);
}
}  // namespace

std::size_t StoppableSource::read(std::uint8_t* dst, std::size_t max_bytes) {
  throw_if_stopped(stop_, name());
  return inner_.read(dst, max_bytes);
}

void StoppableSink::write(ByteView bytes) {
  throw_if_stopped(stop_, name());
  inner_.write(bytes);
}

void CountingSource::seek(std::uint64_t offset) {
  const auto at = inner_.file();
  if (at && offset > at->position) bytes_ += offset - at->position;
  inner_.seek(offset);
}

namespace {

// The process's umask, read once. umask() can only be read by setting it, which would race with
// other threads creating files (outputs are committed from several threads: a batch's writer,
// Dask's workers): Linux reports it in /proc/self/status, and the set-and-restore is the
// fallback, done once, at the first commit. A umask the process sets after that is not seen.
mode_t process_umask() {
  static const mode_t mask = [] {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::stoul(line.substr(6), nullptr, 8));
    }
    const mode_t old = ::umask(0);
    ::umask(old);
    return old;
  }();
  return mask;
}

}  // namespace

namespace {

FileStatus file_status(const struct stat& status) {
  FileStatus result;
  result.device = static_cast<std::uint64_t>(status.st_dev);
  result.inode = static_cast<std::uint64_t>(status.st_ino);
  result.size = static_cast<std::uint64_t>(status.st_size);
  result.permissions = static_cast<std::uint32_t>(status.st_mode & 07777);
  result.regular = S_ISREG(status.st_mode);
  result.mtime_seconds = status.st_mtim.tv_sec;
  result.mtime_nanoseconds = static_cast<std::uint32_t>(status.st_mtim.tv_nsec);
  result.atime_seconds = status.st_atim.tv_sec;
  result.atime_nanoseconds = static_cast<std::uint32_t>(status.st_atim.tv_nsec);
  result.owner = static_cast<std::uint32_t>(status.st_uid);
  result.group = static_cast<std::uint32_t>(status.st_gid);
  return result;
}

// fstat of `fd` as a FileStatus; throws (naming `name`) on failure, and for a directory.
FileStatus status_of_input(int fd, const std::string& name) {
  struct stat status {};
  if (::fstat(fd, &status) != 0) throw_system_error("cannot stat", name);
  if (S_ISDIR(status.st_mode)) throw Error(ErrorKind::kIo, "is a directory", name).set_error_number(EISDIR);
  return file_status(status);
}

}  // namespace

FdSource::FdSource(const std::string& path) : owned_(true), name_(path) {
  detail::check_system_name(path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw_system_error("cannot open", path);
  try {
    status_ = status_of_input(fd_, path);
  } catch (...) {
    ::close(fd_);
    throw;
  }
  positional_ = status_.regular;
}

FdSource::FdSource(int fd, std::string name, Ownership ownership)
    : fd_(fd), owned_(ownership == Ownership::kOwned), name_(std::move(name)) {
  try {
    status_ = status_of_input(fd_, name_);
  } catch (...) {
    if (owned_) ::close(fd_);
    throw;
  }
  // A regular file is read by position (so it can be mapped): an owned descriptor from its
  // start, like a file opened by name (its offset may be shared with one the caller reads); a
  // borrowed one (stdin redirected from a file) from where the caller left it, and left where
  // we stopped.
  if (status_.regular && owned_) {
    positional_ = true;
  } else if (status_.regular) {
    const off_t at = ::lseek(fd_, 0, SEEK_CUR);
    if (at >= 0) {
      positional_ = restore_position_ = true;
      offset_ = start_ = static_cast<std::uint64_t>(at);
    }
  }
}

FdSource::~FdSource() {
  if (restore_position_) ::lseek(fd_, static_cast<off_t>(offset_), SEEK_SET);
  if (owned_ && fd_ >= 0) ::close(fd_);
}

std::size_t FdSource::read(std::uint8_t* dst, std::size_t max_bytes) {
  for (;;) {
    const ssize_t got = positional_ ? ::pread(fd_, dst, max_bytes, static_cast<off_t>(offset_))
                                    : ::read(fd_, dst, max_bytes);
    if (got > 0) {
      offset_ += static_cast<std::uint64_t>(got);
      return static_cast<std::size_t>(got);
    }
    if (got == 0) {  // the end of the input
      if (positional_ && max_bytes > 0) check_not_shrunk();
      return 0;
    }
    if (errno == EINTR) continue;
    const int saved = errno;
    throw Error(ErrorKind::kIo, fmt::format("read failed: {}", std::strerror(saved)), name_, offset_ - start_)
        .set_error_number(saved);
  }
}

bool FdSource::wait_readable(std::chrono::milliseconds timeout) {
  if (positional_) return true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd entry{fd_, POLLIN, 0};
    const int ready = ::poll(&entry, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (ready > 0) return true;  // bytes, the end (POLLHUP) or an error: read() says which
    if (ready == 0) return false;
    if (errno != EINTR) return true;  // let read() report it
  }
}

std::optional<SourceFile> FdSource::file() const {
  if (!positional_) return std::nullopt;
  return SourceFile{fd_, status_.size, offset_};
}

void FdSource::seek(std::uint64_t offset) {
  if (!positional_) ByteSource::seek(offset);
  offset_ = offset;
}

std::optional<std::uint64_t> FdSource::size() const {
  if (!positional_) return std::nullopt;
  return status_.size;
}

std::size_t FdSource::read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) {
  if (!positional_) return ByteSource::read_at(offset, dst, max_bytes);
  std::size_t total = 0;
  while (total < max_bytes) {
    const ssize_t got = ::pread(fd_, dst + total, max_bytes - total, static_cast<off_t>(offset + total));
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      throw Error(ErrorKind::kIo, fmt::format("read failed: {}", std::strerror(saved)), name_, offset + total)
          .set_error_number(saved);
    }
    total += static_cast<std::size_t>(got);
  }
  return total;
}

void FdSource::check_not_shrunk() const {
  const std::uint64_t size_at_open = status_.size;
  if (offset_ >= size_at_open) return;
  struct stat now {};
  // Some regular files (in /proc, /sys) claim a size they do not have; only a file whose size
  // really went down has lost bytes under us.
  if (::fstat(fd_, &now) != 0 || static_cast<std::uint64_t>(now.st_size) >= size_at_open) return;
  throw Error(ErrorKind::kIo,
              fmt::format("file shrank while being read (it had {} bytes when opened)", size_at_open), name_,
              offset_ - start_);
}

namespace {

void write_all(int fd, ByteView bytes, const std::string& name) {
  const std::uint8_t* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    const ssize_t done = ::write(fd, p, left);
    if (done < 0) {
      if (errno == EINTR) continue;
      throw_system_error("write failed", name);
    }
    p += done;
    left -= static_cast<std::size_t>(done);
  }
}

}  // namespace

void FdSink::write(ByteView bytes) { write_all(fd_, bytes, name_); }

// Outputs a signal handler must remove: fixed storage, so the handler needs no allocation.
namespace {
constexpr int kCleanupSlots = 256;
constexpr std::size_t kCleanupPathBytes = 4096;
// A slot's state: free; a path to remove; or a file being created in place, which may or may not
// be ours until its open() returns (it fails on a file that is there, which is not ours).
enum CleanupState : unsigned char { kSlotFree, kSlotRemove, kSlotCreating };
char g_cleanup_paths[kCleanupSlots][kCleanupPathBytes];
std::atomic<unsigned char> g_cleanup_state[kCleanupSlots];
std::mutex g_cleanup_mutex;
// The signal a handler is dealing with, stored before it looks at the slots: a creation that
// sees it does not begin, and one that ends raises it again (remove_pending_outputs() returned
// false and left it to that creation).
std::atomic<int> g_deferred_signal{0};
// set_pending_outputs_removed_on_signals(): whether files may be created in place.
std::atomic<bool> g_removed_on_signals{false};

int register_cleanup(const std::string& path, CleanupState state = kSlotRemove) {
  if (path.size() >= kCleanupPathBytes) return -1;
  std::lock_guard lock(g_cleanup_mutex);
  for (int slot = 0; slot < kCleanupSlots; ++slot) {
    if (g_cleanup_state[slot].load(std::memory_order_relaxed) == kSlotFree) {
      std::memcpy(g_cleanup_paths[slot], path.c_str(), path.size() + 1);
      g_cleanup_state[slot].store(state, std::memory_order_seq_cst);
      return slot;
    }
  }
  return -1;  // more outputs open than slots: still removed by the destructor, not by a signal
}

void unregister_cleanup(int slot) {
  if (slot >= 0) g_cleanup_state[slot].store(kSlotFree, std::memory_order_release);
}

// A random name for a temporary: `prefix` and six letters or digits, as mkstemp makes them. The
// randomness comes from a generator per thread, seeded once from getrandom (a system call per
// name was one in twelve of a batch of small files' calls), and seeded again when a name was
// taken; O_EXCL, not the name, keeps a temporary from being shared.
constexpr std::size_t kMaxNameInTemporary = 200;

std::string temporary_name(const std::string& prefix, bool reseed) {
  static constexpr char kLetters[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::uint64_t state = 0;
  if (state == 0 || reseed) {
    if (::getrandom(&state, sizeof state, 0) != static_cast<ssize_t>(sizeof state)) {
      throw_system_error("cannot make a temporary name", prefix);
    }
    state |= 1;
  }
  std::string name = prefix;
  for (int i = 0; i < 6; ++i) {
    state ^= state << 13;  // xorshift64
    state ^= state >> 7;
    state ^= state << 17;
    name += kLetters[(state >> 32) % (sizeof kLetters - 1)];
  }
  return name;
}
}  // namespace

// A handler stores the signal before it looks at the slots; a creation stores its slot's state
// before it looks at the signal, when it begins and when it ends; all sequentially consistent, so
// one of the two always sees the other's store: a handler that saw no creation removes what a
// creation beginning after it would otherwise leave (the creation does not begin), and one that
// saw a creation is sure to have its signal raised again when it ends.
int detail::begin_creation(const std::string& path) {
  if (!g_removed_on_signals.load(std::memory_order_relaxed)) return -1;
  const int slot = register_cleanup(path, kSlotCreating);
  if (slot >= 0 && g_deferred_signal.load(std::memory_order_seq_cst) != 0) {
    unregister_cleanup(slot);
    return -1;
  }
  return slot;
}

void detail::end_creation(int slot, bool made) {
  g_cleanup_state[slot].store(made ? kSlotRemove : kSlotFree, std::memory_order_seq_cst);
  if (const int signal_number = g_deferred_signal.load(std::memory_order_seq_cst); signal_number != 0) {
    ::raise(signal_number);
  }
}

void set_pending_outputs_removed_on_signals(bool removed) noexcept {
  g_removed_on_signals.store(removed, std::memory_order_relaxed);
}

// The stream a signal leaves unfinished (MarkedStreamSink): its descriptor (-1: none) and mark.
namespace {
constexpr std::size_t kMaxUnfinishedMark = 64;
std::atomic<int> g_unfinished_fd{-1};
char g_unfinished_mark[kMaxUnfinishedMark];
std::size_t g_unfinished_mark_size = 0;

// `if_ready`: only while the descriptor takes bytes without waiting (a signal handler must not
// wait on a stalled reader, and a reader gone would raise SIGPIPE inside the handler).
void write_mark(int fd, const char* mark, std::size_t size, bool if_ready) noexcept {
  while (size > 0) {
    if (if_ready) {
      struct pollfd ready {
        fd, POLLOUT, 0
      };
      if (::poll(&ready, 1, 0) != 1 || (ready.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return;
    }
    const ssize_t done = ::write(fd, mark, size);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) return;  // the reader gone, a full disk: nothing more to do
    mark += done;
    size -= static_cast<std::size_t>(done);
  }
}
}  // namespace

bool remove_pending_outputs(int signal_number) noexcept {
  g_deferred_signal.store(signal_number, std::memory_order_seq_cst);
  for (int slot = 0; slot < kCleanupSlots; ++slot) {
    if (g_cleanup_state[slot].load(std::memory_order_seq_cst) == kSlotCreating) return false;
  }
  for (int slot = 0; slot < kCleanupSlots; ++slot) {
    if (g_cleanup_state[slot].load(std::memory_order_acquire) == kSlotRemove) ::unlink(g_cleanup_paths[slot]);
  }
  if (signal_number != SIGPIPE) {  // SIGPIPE: the stream's reader is gone
    if (const int fd = g_unfinished_fd.exchange(-1, std::memory_order_acq_rel); fd >= 0) {
      const int saved = errno;
      // The stream's writer goes on until the process ends: from here on its writes go to
      // /dev/null (one after the mark made the stream damaged, not cut short: "invalid deflate
      // block" under ASan in CI). The mark goes through a duplicate of the stream's descriptor,
      // after any write that had it first.
      const int stream = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      const int nowhere = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (stream >= 0 && nowhere >= 0) ::dup2(nowhere, fd);
      if (nowhere >= 0) ::close(nowhere);
      write_mark(stream >= 0 ? stream : fd, g_unfinished_mark, g_unfinished_mark_size, /*if_ready=*/true);
      if (stream >= 0) ::close(stream);
      errno = saved;
    }
  }
  return true;
}

MarkedStreamSink::MarkedStreamSink(int fd, std::string name, std::string unfinished_mark)
    : sink_(fd, std::move(name)), fd_(fd), mark_(std::move(unfinished_mark)) {
  if (mark_.size() > kMaxUnfinishedMark) mark_.clear();  // CodecRegistry::add() refuses such a codec
}

MarkedStreamSink::~MarkedStreamSink() {
  if (!started_ || finished_ || mark_.empty()) return;
  g_unfinished_fd.store(-1, std::memory_order_release);
  write_mark(fd_, mark_.data(), mark_.size(), /*if_ready=*/false);
}

void MarkedStreamSink::write(ByteView bytes) {
  if (!started_ && !bytes.empty() && !mark_.empty()) {
    started_ = true;
    g_unfinished_fd.store(-1, std::memory_order_release);  // another's (finished or not) no longer
    std::memcpy(g_unfinished_mark, mark_.data(), mark_.size());
    g_unfinished_mark_size = mark_.size();
    g_unfinished_fd.store(fd_, std::memory_order_release);
  }
  sink_.write(bytes);
}

void MarkedStreamSink::finish() noexcept {
  finished_ = true;
  if (started_) g_unfinished_fd.store(-1, std::memory_order_release);
}

// Whether an open file can be named through /proc/self/fd (linkat with AT_SYMLINK_FOLLOW; the
// other way, AT_EMPTY_PATH, needs a capability): where /proc is not mounted, outputs get
// temporaries with names instead.
static bool proc_fd_links() {
  static const bool usable = ::access("/proc/self/fd", X_OK) == 0;
  return usable;
}

namespace {
// The descriptor an absolute, normal path names when it is one of this process's own, by the
// names the system gives them; -1 for any other.
int descriptor_of_name(std::string_view path) {
  if (path == "/dev/stdout") return 1;
  if (path == "/dev/stderr") return 2;
  for (const std::string_view prefix : {"/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/"}) {
    if (!path.starts_with(prefix) || path.size() == prefix.size() || path.size() > prefix.size() + 9) continue;
    int fd = 0;
    for (const char c : path.substr(prefix.size())) {
      if (c < '0' || c > '9') return -1;
      fd = fd * 10 + (c - '0');
    }
    return fd;
  }
  return -1;
}

// The descriptor `path` names when it is one of this process's own: /dev/stdout, /dev/fd/N,
// /proc/self/fd/N however spelt (/dev//stdout), or a symbolic link to one (as /dev/stdout is,
// reached by any path: ../dev/stdout, a link to /dev); -1 for any other path. `is_link`: lstat
// found a symbolic link there (the constructor's own lstat: no system call added per output).
int descriptor_named(const std::string& path, bool is_link) {
  const std::filesystem::path normal = std::filesystem::path(path).lexically_normal();
  if (const int fd = descriptor_of_name(normal.native()); fd >= 0) return fd;
  if (!is_link) return -1;
  char target[64];
  const ssize_t length = ::readlink(path.c_str(), target, sizeof target);
  if (length <= 0 || static_cast<std::size_t>(length) == sizeof target) return -1;
  const std::filesystem::path link_target(std::string(target, static_cast<std::size_t>(length)));
  if (!link_target.is_absolute()) return -1;  // /dev/stdout's is
  return descriptor_of_name(link_target.lexically_normal().native());
}
}  // namespace

OutputFile::OutputFile(std::string path, bool overwrite, bool devices_in_place, Found found)
    : path_(std::move(path)), overwrite_(overwrite) {
  detail::check_system_name(path_);
  // Nothing there (the usual case) is one lstat; a symbolic link is judged by what it points to.
  struct stat existing {};
  existing.st_mode = S_IFREG;
  const bool exists =
      found == Found::kRegularFile || (found == Found::kUnknown && ::lstat(path_.c_str(), &existing) == 0);
  // A name of one of our descriptors (-o /dev/stdout, tar -cf /dev/stdout) is written through
  // that descriptor, as a device is written in place (no unfinished mark, which "-" gets): a file
  // there was "already exists", and with -f (tar -c always) the link /dev/stdout itself was
  // renamed over, as root the system's.
  if (devices_in_place && found == Found::kUnknown) {
    if (const int named = descriptor_named(path_, exists && S_ISLNK(existing.st_mode)); named >= 0) {
      fd_ = ::fcntl(named, F_DUPFD_CLOEXEC, 0);
      if (fd_ < 0) throw_system_error("cannot open output", path_);
      return;
    }
  }
  if (exists) {
    struct stat target = existing;
    if (S_ISLNK(existing.st_mode) && ::stat(path_.c_str(), &target) != 0) target.st_mode = S_IFREG;  // dangling
    if (!S_ISREG(target.st_mode)) {
      if (S_ISDIR(target.st_mode)) throw Error(ErrorKind::kIo, "is a directory", path_).set_error_number(EISDIR);
      if (!devices_in_place) {
        if (!overwrite_) throw output_exists_error(path_);
        open_temporary();  // renamed over the device, FIFO or link at commit
        return;
      }
      // A device or FIFO (/dev/null, a named pipe) is written in place: there is nothing to
      // replace atomically, and renaming over it would destroy it.
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd_ < 0) throw_system_error("cannot open output", path_);
      return;
    }
    if (!overwrite_) throw output_exists_error(path_);
  }
  const std::filesystem::path target(path_);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  // A new file (where nothing is yet: tar's extraction allows replacing, but mostly creates)
  // starts without a name where the file system allows it: a crash leaves nothing behind, and the
  // name is made once, at commit (linkat), instead of a temporary's and a rename: a third of the
  // directory operations of a batch of small files.
  if (!exists && proc_fd_links()) {
    // Read and write: where it cannot be linked, it is read back into a named temporary.
    fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ >= 0) {
      unnamed_ = true;
      return;
    }
  }
  open_temporary();
}

std::unique_ptr<OutputFile> OutputFile::create_in_place(std::string path) {
  std::unique_ptr<OutputFile> file(new OutputFile());  // before the file: nothing to leave if it throws
  const int slot = detail::begin_creation(path);
  if (slot < 0) return nullptr;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  detail::end_creation(slot, fd >= 0);
  if (fd < 0) return nullptr;
  file->path_ = std::move(path);
  file->overwrite_ = true;  // nothing was there, and a commit only closes
  file->fd_ = fd;
  file->in_place_ = true;
  file->cleanup_slot_ = slot;
  return file;
}

// Makes a new temporary beside the target with `create(name)` (true when it made the file; false
// with errno set when it did not), under fresh names while they are taken. The name is
// registered for remove_pending_outputs() before the file exists (mkstemp would create it
// first): a signal that arrives once it exists always finds it registered. False (errno set) if
// no temporary could be made.
bool OutputFile::make_temporary(const std::function<bool(const std::string&)>& create) {
  const std::filesystem::path target(path_);
  const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
  // The temporary's name holds the target's, cut short where it must (".", ".sluice-" and six
  // letters added to a name of up to NAME_MAX, 255 bytes, would not fit).
  std::string base = target.filename().string();
  if (base.size() > kMaxNameInTemporary) base.resize(kMaxNameInTemporary);
  const std::string prefix = (dir / ("." + base + ".sluice-")).string();
  for (int attempt = 0; attempt < 100; ++attempt) {
    // After a name that was taken, fresh randomness: the generator's next names are foreseeable.
    std::string candidate = temporary_name(prefix, /*reseed=*/attempt > 0);
    const int slot = register_cleanup(candidate);
    if (create(candidate)) {
      temp_path_ = std::move(candidate);
      cleanup_slot_ = slot;
      return true;
    }
    const int saved = errno;
    unregister_cleanup(slot);
    errno = saved;
    if (saved != EEXIST) return false;
  }
  return false;
}

// Creates the named temporary beside the target and opens it.
void OutputFile::open_temporary() {
  const bool made = make_temporary([this](const std::string& name) {
    fd_ = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    return fd_ >= 0;
  });
  if (!made) throw_system_error("cannot create output", path_);
}

OutputFile::~OutputFile() { discard(); }

void OutputFile::write(ByteView bytes) { write_all(fd_, bytes, path_); }

void OutputFile::write_at(std::uint64_t offset, ByteView bytes) {
  if (!random_access()) ByteSink::write_at(offset, bytes);
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_system_error("cannot write", path_);
    bytes = bytes.subspan(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
}

void OutputFile::skip(std::uint64_t bytes) {
  if (bytes == 0) return;
  if (!random_access()) {
    static const std::uint8_t zeros[64 * 1024] = {};
    for (std::uint64_t left = bytes; left > 0;) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, sizeof zeros));
      write_all(fd_, ByteView(zeros, n), path_);
      left -= n;
    }
    return;
  }
  const off_t end = ::lseek(fd_, static_cast<off_t>(bytes), SEEK_CUR);
  if (end < 0 || ::ftruncate(fd_, end) != 0) throw_system_error("cannot extend", path_);
}

void OutputFile::preserve_metadata_of(const FileStatus& source) {
  metadata_ = source;
  copy_owner_ = false;
}

void OutputFile::copy_attributes_of(const FileStatus& source) {
  metadata_ = source;
  metadata_->permissions &= 0777;
  copy_owner_ = true;
}

void OutputFile::commit(bool durable) {
  if (fd_ < 0) throw Error(ErrorKind::kInternal, "output already committed or discarded", path_);
  if (!random_access()) {  // a device or FIFO written in place
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_system_error("cannot close output", path_);
    return;
  }
  if (metadata_) {
    // Best effort, as gzip: a file we cannot chown, chmod or touch is still a good output. The
    // group first, then the mode, then the owner (gzip's order): where users may give files
    // away, the mode is set while the file is still ours.
    if (copy_owner_) (void)::fchown(fd_, static_cast<uid_t>(-1), static_cast<gid_t>(metadata_->group));
    (void)::fchmod(fd_, static_cast<mode_t>(metadata_->permissions & 07777));
    if (copy_owner_) (void)::fchown(fd_, static_cast<uid_t>(metadata_->owner), static_cast<gid_t>(-1));
    const struct timespec times[2] = {
        {static_cast<time_t>(metadata_->atime_seconds), static_cast<long>(metadata_->atime_nanoseconds)},
        {static_cast<time_t>(metadata_->mtime_seconds), static_cast<long>(metadata_->mtime_nanoseconds)}};
    (void)::futimens(fd_, times);
  } else {
    // mkstemp creates 0600; give new files the usual umask-derived mode.
    (void)::fchmod(fd_, 0666 & ~process_umask());
  }
  if (durable && ::fsync(fd_) != 0) throw_system_error("cannot flush output", path_);
  if (in_place_) {
    close_in_place();
  } else if (unnamed_) {
    link_unnamed(durable);
  } else {
    rename_temporary();
  }
  if (!durable) return;
  const std::filesystem::path target(path_);
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
}

// Names the unnamed file: linkat() fails if the name appeared meanwhile, so we never clobber a
// file we promised to keep. Through /proc/self/fd, else by the descriptor (AT_EMPTY_PATH, which
// needs a capability), else (a sandbox that hides /proc, a security module) by copying it into
// a named temporary that is then renamed as any other.
//
// Where the process may link by the descriptor (root in a container, mostly), that goes first:
// the /proc path is looked up at every link, a seventh of the time of each small file extracted.
// Whether it may is learnt at the first link; a refusal then (ENOENT, or EPERM) sends every link
// through /proc.
void OutputFile::link_unnamed(bool durable) {
  static std::atomic<int> by_descriptor{-1};  // -1 not known yet, 0 refused, 1 works
  const std::string self = fmt::format("/proc/self/fd/{}", fd_);
  const auto link_by_descriptor = [&] {
    const int works = by_descriptor.load(std::memory_order_relaxed);
    if (works == 0) {
      errno = 0;
      return false;
    }
    if (::linkat(fd_, "", AT_FDCWD, path_.c_str(), AT_EMPTY_PATH) == 0) {
      by_descriptor.store(1, std::memory_order_relaxed);
      return true;
    }
    if (works == -1 && (errno == ENOENT || errno == EPERM)) by_descriptor.store(0, std::memory_order_relaxed);
    return false;
  };
  if (!link_by_descriptor() &&
      (errno == EEXIST || ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path_.c_str(), AT_SYMLINK_FOLLOW) != 0)) {
    if (errno == EEXIST && !overwrite_) throw output_exists_error(path_);
    // The name itself cannot be (no copy would help): said as the system says it.
    if (errno == ENAMETOOLONG || errno == ENOTDIR || errno == ENOSPC || errno == EDQUOT || errno == EROFS) {
      throw_system_error("cannot create output", path_);
    }
    // A file that appeared meanwhile, which we may replace: named as a temporary first, so that
    // the rename replaces it in one step.
    if (errno == EEXIST && link_as_temporary(self)) {
      if (durable) (void)::fsync(fd_);
      rename_temporary();
      return;
    }
    copy_unnamed_to_temporary();
    if (durable && ::fsync(fd_) != 0) throw_system_error("cannot flush output", path_);
    rename_temporary();
    return;
  }
  // The new name's link count is on disk with the file's data only after another flush on some
  // file systems; the directory is flushed by commit().
  if (durable) (void)::fsync(fd_);
  const int fd = fd_;
  fd_ = -1;
  unnamed_ = false;
  if (::close(fd) != 0) {
    const int saved = errno;
    ::unlink(path_.c_str());
    errno = saved;
    throw_system_error("cannot close output", path_);
  }
}

// A file created in place is complete (its bytes written, its mode and times set): no longer
// removed by a signal, then closed; one that cannot be closed (a network file system may not
// have all its bytes) is removed.
void OutputFile::close_in_place() {
  unregister_cleanup(cleanup_slot_);
  cleanup_slot_ = -1;
  if (::close(fd_) == 0) {
    fd_ = -1;
    in_place_ = false;
    return;
  }
  const int saved = errno;
  remove_in_place();
  fd_ = -1;
  errno = saved;
  throw_system_error("cannot close output", path_);
}

// Removes the file created in place if its name is still this file's (not one that replaced it
// meanwhile).
void OutputFile::remove_in_place() noexcept {
  struct stat mine {};
  struct stat there {};
  if (::fstat(fd_, &mine) == 0 && ::lstat(path_.c_str(), &there) == 0 && mine.st_dev == there.st_dev &&
      mine.st_ino == there.st_ino) {
    ::unlink(path_.c_str());
  }
  in_place_ = false;
}

// Links the unnamed file as a new temporary beside the target, which it then is. False if it
// could not.
bool OutputFile::link_as_temporary(const std::string& self) {
  const bool linked = make_temporary([&self](const std::string& name) {
    return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0;
  });
  if (linked) unnamed_ = false;
  return linked;
}

// The unnamed file's bytes into a new named temporary beside the target, which becomes the file
// being written (the unnamed one is closed, and so gone).
void OutputFile::copy_unnamed_to_temporary() {
  const int unnamed = fd_;
  fd_ = -1;
  unnamed_ = false;
  try {
    open_temporary();
    struct stat status {};
    if (::fstat(unnamed, &status) != 0) throw_system_error("cannot stat output", path_);
    if (copy_owner_) (void)::fchown(fd_, status.st_uid, status.st_gid);
    (void)::fchmod(fd_, status.st_mode & 07777);
    std::uint8_t buffer[64 * 1024];
    for (off_t at = 0;;) {
      const ssize_t n = ::pread(unnamed, buffer, sizeof buffer, at);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_system_error("cannot read back output", path_);
      if (n == 0) break;
      write_all(fd_, ByteView(buffer, static_cast<std::size_t>(n)), path_);
      at += n;
    }
    if (metadata_) {
      const struct timespec times[2] = {
          {static_cast<time_t>(metadata_->atime_seconds), static_cast<long>(metadata_->atime_nanoseconds)},
          {static_cast<time_t>(metadata_->mtime_seconds), static_cast<long>(metadata_->mtime_nanoseconds)}};
      (void)::futimens(fd_, times);
    }
  } catch (...) {
    ::close(unnamed);
    throw;
  }
  ::close(unnamed);
}

void OutputFile::rename_temporary() {
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw_system_error("cannot close output", path_);
  }
  fd_ = -1;
  if (!overwrite_) {
    // Neither fails over a file that appeared meanwhile, so we never clobber a file we promised
    // to keep: renameat2(RENAME_NOREPLACE), one call, where the file system has it; else link()
    // and unlink().
    const bool renamed = ::renameat2(AT_FDCWD, temp_path_.c_str(), AT_FDCWD, path_.c_str(), RENAME_NOREPLACE) == 0;
    if (!renamed && errno == EEXIST) throw output_exists_error(path_);
    if (!renamed && ::link(temp_path_.c_str(), path_.c_str()) != 0) {
      if (errno == EEXIST) throw output_exists_error(path_);
      if (::rename(temp_path_.c_str(), path_.c_str()) != 0) throw_system_error("cannot rename output", path_);
    } else if (!renamed) {
      ::unlink(temp_path_.c_str());
    }
  } else if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    throw_system_error("cannot rename output", path_);
  }
  unregister_cleanup(cleanup_slot_);
  cleanup_slot_ = -1;
  temp_path_.clear();
}

void OutputFile::discard() noexcept {
  if (in_place_) remove_in_place();
  if (fd_ >= 0) {
    ::close(fd_);  // an unnamed file is gone with it
    fd_ = -1;
  }
  unnamed_ = false;
  if (!temp_path_.empty()) {
    ::unlink(temp_path_.c_str());
    temp_path_.clear();
  }
  unregister_cleanup(cleanup_slot_);
  cleanup_slot_ = -1;
}

FileStatus OutputFile::status() const {
  struct stat result {};
  if (fd_ < 0 || ::fstat(fd_, &result) != 0) throw_system_error("cannot stat output", path_);
  return file_status(result);
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> OutputFile::own_files() const {
  const FileStatus written = status();
  std::vector<std::pair<std::uint64_t, std::uint64_t>> files{{written.device, written.inode}};
  // lstat: a symbolic link at `path` is what is replaced, not the file it points to.
  if (struct stat replaced{}; ::lstat(path_.c_str(), &replaced) == 0) {
    files.emplace_back(replaced.st_dev, replaced.st_ino);
  }
  return files;
}

std::size_t MemorySource::read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) {
  if (offset >= bytes_.size()) return 0;
  const std::size_t n = std::min<std::uint64_t>(max_bytes, bytes_.size() - offset);
  if (n > 0) std::memcpy(dst, bytes_.data() + offset, n);
  return n;
}

std::size_t MemorySource::read(std::uint8_t* dst, std::size_t max_bytes) {
  const std::size_t n = std::min(max_bytes, bytes_.size() - offset_);
  if (n > 0) std::memcpy(dst, bytes_.data() + offset_, n);
  offset_ += n;
  return n;
}

std::uint64_t parse_byte_count(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0 || digits > 15) throw Error(ErrorKind::kUsage, fmt::format("invalid size '{}'", text));
  const std::uint64_t number = std::stoull(text.substr(0, digits));
  std::string unit = text.substr(digits);
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::uint64_t multiplier = 0;
  if (unit.empty() || unit == "b") multiplier = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") multiplier = 1ULL << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib") multiplier = 1ULL << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib") multiplier = 1ULL << 30;
  else throw Error(ErrorKind::kUsage, fmt::format("invalid size '{}' (use a number with K, M or G)", text));
  if (number > UINT64_MAX / multiplier) throw Error(ErrorKind::kUsage, fmt::format("size '{}' is too large", text));
  return number * multiplier;
}

}  // namespace sluice
