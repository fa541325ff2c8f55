// Where bytes come from and go to: files, standard streams and memory.
//
// The graphs read through ByteSource and write through ByteSink so that the same graph serves a
// file, stdin, an in-memory buffer or (later) a member of a batch. OutputFile implements the
// "nothing half-written" rule: it writes to a temporary file beside the target and renames it
// into place only on commit(); destroying it uncommitted removes the temporary.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "sluice/bytes.h"

namespace sluice {

// What the library keeps of a file's metadata (its fstat), in portable types.
struct FileStatus {
  std::uint64_t device = 0;  // with `inode`, which file it is
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::uint32_t permissions = 0;  // mode bits 07777
  bool regular = false;           // a regular file
  std::int64_t mtime_seconds = 0;
  std::uint32_t mtime_nanoseconds = 0;
  std::int64_t atime_seconds = 0;
  std::uint32_t atime_nanoseconds = 0;
  std::uint32_t owner = 0;  // uid
  std::uint32_t group = 0;  // gid
};

// A regular file behind a source, which a reader may map instead of calling read().
struct SourceFile {
  int descriptor = -1;         // open for reading; not the reader's to close
  std::uint64_t size = 0;      // bytes in the file when it was opened
  std::uint64_t position = 0;  // file offset of the source's next read()
};

// Where bytes come from. Besides read(), a source says what else it can do, so that a reader
// can do better than read() where the source allows, and wrappers (counting, replaying a prefix)
// keep those abilities by forwarding them:
// - file(): a regular file read by position, which the graphs map from `position` on; after
//   taking bytes from the mapping they seek() the source past them;
// - size() and read_at(): the total size and reads at any offset (a zip's central directory).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `max_bytes` into `dst`; returns 0 only at end of input. May return fewer bytes
  // than asked before the end (pipes do).
  virtual std::size_t read(std::uint8_t* dst, std::size_t max_bytes) = 0;
  // A name for messages: the path, or "<stdin>".
  virtual const std::string& name() const = 0;
  // Fills `dst` with up to `max_bytes`, stopping short only at end of input.
  std::size_t read_full(std::uint8_t* dst, std::size_t max_bytes);
  // Whether read() would return at once (bytes, the end, or an error), waiting up to `timeout`
  // for it. False only for a source written as it is read (a pipe, a socket) whose writer has
  // sent nothing more yet: a decoder then writes out what it has before it waits (decompress()).
  // True by default.
  virtual bool wait_readable(std::chrono::milliseconds timeout);
  // Whether the bytes read so far end at a flush point: where the writer of a source written as
  // it is read asked for all it wrote before to be made decodable (Compressor::flush). Asking
  // clears it. A read() never returns bytes from both sides of a flush point, and returns 0 at
  // one that has no bytes before it since the last: a 0 is the end of input only where this is
  // then false. False by default.
  virtual bool take_flush_point() { return false; }

  // The regular file behind the source, if it is one read by position; nullopt by default.
  virtual std::optional<SourceFile> file() const { return std::nullopt; }
  // For a source with a file(): the next read() starts at file offset `offset` (after bytes a
  // reader took from a mapping). Throws Error(kInternal) on any other source.
  virtual void seek(std::uint64_t offset);
  // The source's size in bytes, when known.
  virtual std::optional<std::uint64_t> size() const { return std::nullopt; }
  // Whether read_at() works.
  virtual bool random_access() const { return false; }
  // Reads up to `max_bytes` at `offset`, without moving where read() goes on; fewer only at the
  // end. Throws Error(kInternal) unless random_access().
  virtual std::size_t read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes);
};

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(ByteView bytes) = 0;
  virtual const std::string& name() const = 0;
  // Passes what was written on to where its reader sees it. The compression graph calls it after
  // the output of a chunk that ends at a flush point (ByteSource::take_flush_point). Nothing by
  // default: the sinks here write through.
  virtual void flush() {}
  // Whether write_at() works (a regular file being written): a writer may then patch what it
  // wrote, such as a zip member's sizes in its header.
  virtual bool random_access() const { return false; }
  // Overwrites bytes already written, `offset` bytes from the start of what this sink was given.
  // Throws Error(kInternal) unless random_access().
  virtual void write_at(std::uint64_t offset, ByteView bytes);
};

// Reads a file descriptor: pread() on regular files, read() on pipes and terminals.
class FdSource final : public ByteSource {
 public:
  // Opens `path` for reading. Throws kIo if it cannot be opened or is a directory.
  // A regular file truncated by someone else while we read it is an error: read() reports it
  // (kIo, "shrank while being read") when it ends before the size the file had when opened. A
  // file that grows is read to its new end. (The graphs map large regular files instead of
  // reading them, guarded so that truncation is reported the same way: core/mapped_file.h.)
  explicit FdSource(const std::string& path);
  // Wraps an open descriptor (e.g. 0 for stdin). A regular file is read by position:
  //  - kBorrowed: the caller keeps and closes it; read from its offset, which is left after the
  //    last byte read. The caller must not close it while the source lives (the number could be
  //    reused).
  //  - kOwned: closed with the source; read from the file's start (seek() moves on), its offset
  //    never used or moved.
  enum class Ownership { kBorrowed, kOwned };
  FdSource(int fd, std::string name, Ownership ownership = Ownership::kBorrowed);
  ~FdSource() override;
  FdSource(const FdSource&) = delete;
  FdSource& operator=(const FdSource&) = delete;

  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override;
  const std::string& name() const override { return name_; }
  // poll(2) on a pipe, socket or terminal; true for a regular file.
  bool wait_readable(std::chrono::milliseconds timeout) override;
  const FileStatus& status() const { return status_; }
  // A regular file is read by position: it has a file(), a size() and reads at any offset.
  std::optional<SourceFile> file() const override;
  void seek(std::uint64_t offset) override;
  std::optional<std::uint64_t> size() const override;
  bool random_access() const override { return positional_; }
  std::size_t read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) override;

 private:
  void check_not_shrunk() const;

  int fd_ = -1;
  bool owned_ = false;
  bool positional_ = false;  // regular file: pread at offset_
  bool restore_position_ = false;  // a descriptor we were given: leave its offset after our reads
  std::uint64_t offset_ = 0;
  std::uint64_t start_ = 0;  // offset_ when we began (messages count from here)
  std::string name_;
  FileStatus status_;
};

// Writes to a file descriptor it does not own (e.g. 1 for stdout), with full writes and EINTR
// handling.
class FdSink final : public ByteSink {
 public:
  FdSink(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}
  void write(ByteView bytes) override;
  const std::string& name() const override { return name_; }

 private:
  int fd_;
  std::string name_;
};

// A compressed stream written to a descriptor that cannot be taken back (standard output, a
// pipe): once bytes are written and until finish(), a handler calling remove_pending_outputs()
// appends `unfinished_mark` (the codec's CodecInfo::unfinished_mark) to it, and so does the
// destructor without finish() (the run failed), so that every reader finds the stream cut short:
// the units written before make a valid stream of their own (zstd -t and gzip -t passed a
// multi-frame stream whose writer was stopped by Ctrl-C). One at a time takes the signal's mark.
class MarkedStreamSink final : public ByteSink {
 public:
  MarkedStreamSink(int fd, std::string name, std::string unfinished_mark);
  ~MarkedStreamSink() override;
  MarkedStreamSink(const MarkedStreamSink&) = delete;
  MarkedStreamSink& operator=(const MarkedStreamSink&) = delete;
  void write(ByteView bytes) override;
  const std::string& name() const override { return sink_.name(); }
  // The stream is complete: nothing is appended.
  void finish() noexcept;

 private:
  FdSink sink_;
  int fd_;
  std::string mark_;
  bool started_ = false;
  bool finished_ = false;
};

// Writes `path` atomically: bytes go to a temporary file in the same directory, which commit()
// flushes to disk and renames over `path`. Without commit() the temporary is removed.
// An existing device or FIFO (e.g. /dev/null) is written in place instead.
class OutputFile final : public ByteSink {
 public:
  // Throws kIo if `path` exists and `overwrite` is false, or the directory is not writable.
  // `devices_in_place`: an existing device or FIFO at `path` (or a symbolic link to one) is
  // written into, as a path the user named wants (-o /dev/null); otherwise it is an existing
  // file like any other, refused or, with `overwrite`, replaced (the link, not what it points to).
  // `found`: what the caller found at `path` just before (an lstat of its own, as tar's
  // extraction makes), so that it is not looked at again: a fifth of the system time of
  // extracting 100,000 small files went to the two lstat calls.
  enum class Found { kUnknown, kNothing, kRegularFile };
  OutputFile(std::string path, bool overwrite, bool devices_in_place = true, Found found = Found::kUnknown);
  // A new file created at `path` itself, at once (O_EXCL: nothing is ever replaced or followed),
  // as gzip and tar create theirs; nullptr where something is at `path` or the file cannot be
  // made so (the caller then makes an OutputFile as above, whose errors say what is wrong), and
  // always unless the program said its signal handlers remove pending outputs
  // (set_pending_outputs_removed_on_signals). Until commit(), the destructor, discard() and
  // remove_pending_outputs() remove it, as they do a temporary: only what ends the process
  // without them (SIGKILL, a signal not handled, a crash) leaves it, partly written. For small
  // files, whose bytes follow at once: an unnamed file and its link cost 40% of extracting
  // 100,000 files of a few hundred bytes (BENCHMARKS.md, "Many small members").
  static std::unique_ptr<OutputFile> create_in_place(std::string path);
  ~OutputFile() override;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(ByteView bytes) override;
  const std::string& name() const override { return path_; }
  // A temporary being written is a regular file (a device or FIFO written in place is not).
  bool random_access() const override { return unnamed_ || in_place_ || !temp_path_.empty(); }
  void write_at(std::uint64_t offset, ByteView bytes) override;
  // Leaves the next `bytes` of the file unwritten: a hole where the file system keeps one, read as
  // zeros; the file's size covers it even when nothing is written after it. (A device or FIFO
  // written in place gets zeros.)
  void skip(std::uint64_t bytes);

  // Copies permission bits and access/modification times, applied at commit.
  void preserve_metadata_of(const FileStatus& source);
  // As gzip does for the file it writes from another: the source's group and owner where the
  // process may give them (root; a group of one's own), and its permission bits but for setuid,
  // setgid and sticky (which no output of someone else's file may get), with its times. Applied
  // at commit.
  void copy_attributes_of(const FileStatus& source);
  // Puts the file in place (links the unnamed file, or renames the temporary); with `durable`,
  // first flushes it to disk and afterwards the directory too (needed before the input is
  // deleted). After this the destructor does nothing.
  void commit(bool durable = true);
  // Removes the temporary now (the destructor does the same).
  void discard() noexcept;
  // The file being written (fstat of the temporary, or of the device): lets a caller that walks
  // directories recognise its own output, as tar must.
  FileStatus status() const;
  // The files an archive written here leaves out where it walks a tree that holds them, as
  // (device, inode): the one being written, and the one it replaces (at `path` now; a symbolic
  // link there is what is replaced, and the file it points to is archived as any other), which GNU
  // tar, writing in place, never finds either. Without the second, each run of a --force zip
  // into a tree it archives packed the last run's archive inside the new one.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> own_files() const;

 private:
  OutputFile() = default;
  void close_in_place();
  void remove_in_place() noexcept;
  bool make_temporary(const std::function<bool(const std::string&)>& create);
  void open_temporary();
  void link_unnamed(bool durable);
  bool link_as_temporary(const std::string& self);
  void copy_unnamed_to_temporary();
  void rename_temporary();

  std::string path_;
  // What is written: a file without a name yet (O_TMPFILE, for a new file), or a temporary
  // beside the target (replacing a file, or where the file system has no unnamed files).
  bool unnamed_ = false;
  bool in_place_ = false;  // create_in_place(): the file has its name from the start
  std::string temp_path_;
  int fd_ = -1;
  bool overwrite_ = false;
  std::optional<FileStatus> metadata_;
  bool copy_owner_ = false;  // copy_attributes_of()
  int cleanup_slot_ = -1;  // registration for remove_pending_outputs()
};

// In-memory ends, for the library API and tests.
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(ByteView bytes, std::string name = "<memory>")
      : bytes_(bytes), name_(std::move(name)) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override;
  const std::string& name() const override { return name_; }
  std::optional<std::uint64_t> size() const override { return bytes_.size(); }
  bool random_access() const override { return true; }
  std::size_t read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) override;

 private:
  ByteView bytes_;
  std::size_t offset_ = 0;
  std::string name_;
};

class MemorySink final : public ByteSink {
 public:
  explicit MemorySink(std::string name = "<memory>") : name_(std::move(name)) {}
  void write(ByteView bytes) override { buffer_.append(bytes); }
  const std::string& name() const override { return name_; }
  bool random_access() const override { return true; }
  void write_at(std::uint64_t offset, ByteView bytes) override;
  const Buffer& buffer() const { return buffer_; }
  Buffer take() { return std::move(buffer_); }
  // Room for `bytes` in all, allocated now: a buffer of known size is not grown (a small one's
  // growth copies what was written; a large one's moves it, and faults its pages in as they come).
  void reserve(std::size_t bytes) { buffer_.reserve(bytes); }

 private:
  Buffer buffer_;
  std::string name_;
};

// Passes reads through and counts the bytes (how much of a source a graph consumed), bytes a
// reader took from a mapping of the file included (they are what a seek() moves past).
class CountingSource final : public ByteSource {
 public:
  explicit CountingSource(ByteSource& inner) : inner_(inner) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    const std::size_t n = inner_.read(dst, max_bytes);
    bytes_ += n;
    return n;
  }
  const std::string& name() const override { return inner_.name(); }
  bool wait_readable(std::chrono::milliseconds timeout) override { return inner_.wait_readable(timeout); }
  bool take_flush_point() override { return inner_.take_flush_point(); }
  std::uint64_t bytes() const { return bytes_; }
  std::optional<SourceFile> file() const override { return inner_.file(); }
  void seek(std::uint64_t offset) override;
  std::optional<std::uint64_t> size() const override { return inner_.size(); }
  bool random_access() const override { return inner_.random_access(); }
  std::size_t read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) override {
    return inner_.read_at(offset, dst, max_bytes);
  }

 private:
  ByteSource& inner_;
  std::uint64_t bytes_ = 0;
};

// Passes reads and writes through until `stop` is requested, then throws Error(kCancelled) at the
// next one: stops work that takes no stop token (tar's reading and writing, a plain copy) when its
// caller is asked to stop (a Python binding on Ctrl-C). The source hides the file (no mapping),
// so that every byte passes through read() and a stop is seen within a read.
class StoppableSource final : public ByteSource {
 public:
  StoppableSource(ByteSource& inner, std::stop_token stop) : inner_(inner), stop_(std::move(stop)) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override;
  const std::string& name() const override { return inner_.name(); }
  bool wait_readable(std::chrono::milliseconds timeout) override { return inner_.wait_readable(timeout); }
  bool take_flush_point() override { return inner_.take_flush_point(); }

 private:
  ByteSource& inner_;
  std::stop_token stop_;
};

class StoppableSink final : public ByteSink {
 public:
  StoppableSink(ByteSink& inner, std::stop_token stop) : inner_(inner), stop_(std::move(stop)) {}
  void write(ByteView bytes) override;
  const std::string& name() const override { return inner_.name(); }
  void flush() override { inner_.flush(); }
  bool random_access() const override { return inner_.random_access(); }
  void write_at(std::uint64_t offset, ByteView bytes) override { inner_.write_at(offset, bytes); }

 private:
  ByteSink& inner_;
  std::stop_token stop_;
};

// For a program's SIGINT or SIGTERM handler, so that an interrupted run leaves nothing
// half-written behind: removes every OutputFile not yet committed (temporaries, and files created
// in place), marks a MarkedStreamSink's stream unfinished (not for SIGPIPE: its reader is gone;
// the stream's descriptor then leads to /dev/null, so that nothing written after the mark
// reaches the stream), and returns true; the handler then ends the process (from then on, no
// file is created in place). Async-signal-safe.
// While a file is being created in place (until the system call returns, whether a file at its
// name is the one it made is not known) it removes nothing and returns false: the handler must
// then return at once, and `signal_number` is raised again, on the creating thread, as soon as
// the creation is over (microseconds; a hung network file system delays it as long).
bool remove_pending_outputs(int signal_number) noexcept;

// A program whose handlers for the signals that end it (SIGINT, SIGTERM, SIGHUP, ...) call
// remove_pending_outputs() says so here; then the library creates small files of tar's and zip's
// extraction in place (OutputFile::create_in_place), as GNU tar creates every file. Off by
// default: a signal that ends the process without such a handler (the default action, as in a
// Python program) would leave a file created in place partly written, where an unnamed file
// leaves nothing.
void set_pending_outputs_removed_on_signals(bool removed) noexcept;

// Parses a byte count such as "4M", "128KiB", "1g" or "65536" (binary multiples).
// Throws kUsage on anything else.
std::uint64_t parse_byte_count(const std::string& text);

}  // namespace sluice
