// sluice._native: the library's calls for the Python package (python/sluice/__init__.py wraps
// them in the API users call). Every call that does work releases the GIL, so Python threads run
// side by side; a long one runs on a thread of its own while the caller's thread checks for
// signals every 50 ms, so that Ctrl-C stops the graph (its stop token) and raises
// KeyboardInterrupt within a fraction of a second. sluice::Error becomes sluice.Error (an
// OSError) or one of its subclasses, with the kind, path and offset as attributes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <fcntl.h>
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <stop_token>
#include <string_view>
#include <thread>

#include "sluice/batch.h"
#include "sluice/codec.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/deflate.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/parts.h"
#include "sluice/pipeline.h"
#include "sluice/stream.h"
#include "sluice/tar.h"
#include "sluice/version.h"
#include "sluice/zip.h"

namespace py = pybind11;

namespace sluice::python {
namespace {

// Inputs at least this large run on a thread of their own, interruptible; smaller ones finish
// in milliseconds and run on the caller's thread (with the GIL released).
constexpr std::size_t kInterruptibleBytes = 1 << 20;
// How often a wait on the calling thread, without the GIL, looks for a signal (Ctrl-C).
constexpr std::chrono::milliseconds kSignalCheck{50};

// What a tar extraction or a pipeline lists of its problems (entries refused or failed, with
// their names, which a pax header makes up to 8 MiB each, and any number of them in a small
// compressed archive): the first ones, up to 16 MiB of names and messages; the rest are counted
// (more), not kept.
template <typename T>
class Listed {
 public:
  void add(T item, std::size_t bytes) {
    if (more_ > 0 || bytes_ + bytes > kListedBytes) {  // the first ones only: none after one left out
      ++more_;
      return;
    }
    bytes_ += bytes;
    items_.push_back(std::move(item));
  }
  const std::vector<T>& items() const { return items_; }
  std::uint64_t more() const { return more_; }

 private:
  static constexpr std::size_t kListedBytes = 16u << 20;
  std::vector<T> items_;
  std::size_t bytes_ = 0;
  std::uint64_t more_ = 0;
};

std::size_t listed_bytes(const TarEntry& entry, std::string_view message) {
  return entry.path.size() + entry.link_target.size() + message.size() + sizeof(TarEntry);
}
std::size_t listed_bytes(const ZipEntry& entry, std::string_view message) {
  return entry.path.size() + entry.raw_name.size() + entry.comment.size() + message.size() + sizeof(ZipEntry);
}

// The reader's warnings as listed (one per unreadable pax record: a small archive may hold
// millions), and what was left out counted in a last one.
std::vector<std::string> listed_warnings(const Listed<std::string>& warnings, const std::string& archive) {
  std::vector<std::string> out = warnings.items();
  if (warnings.more() > 0) {
    out.push_back(printable_name(archive.empty() ? "<file>" : archive) + ": " + std::to_string(warnings.more()) +
                  " more warnings, not listed");
  }
  return out;
}

// Names and messages that hold them, as bytes (not always UTF-8): the package decodes them as
// os.fsdecode does.
py::str fs_str(const std::string& bytes) {
  PyObject* text = PyUnicode_DecodeFSDefaultAndSize(bytes.data(), static_cast<Py_ssize_t>(bytes.size()));
  if (!text) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(text);
}
py::list bytes_list(const std::vector<std::string>& texts) {
  py::list out;
  for (const std::string& text : texts) out.append(py::bytes(text));
  return out;
}

// The exception classes, made once when the module loads (SluiceError(OSError) and its kinds).
struct Exceptions {
  PyObject* usage = nullptr;
  PyObject* base = nullptr;
  PyObject* corrupt = nullptr;
  PyObject* truncated = nullptr;
  PyObject* trailing_garbage = nullptr;
  PyObject* limit = nullptr;
  std::map<int, PyObject*> system;  // errno -> a class that is sluice.Error and FileNotFoundError, ...
};
Exceptions exceptions;

const char* kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUsage:
      return "usage";
    case ErrorKind::kIo:
      return "io";
    case ErrorKind::kCorruptData:
      return "corrupt_data";
    case ErrorKind::kTrailingGarbage:
      return "trailing_garbage";
    case ErrorKind::kLimit:
      return "limit";
    case ErrorKind::kInternal:
      return "internal";
    case ErrorKind::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

// The Python exception for an error: sluice.Error or the subclass of its kind (UsageError, also a
// ValueError, for bad arguments), with its kind, path, offset and detail.
py::object to_python(const Error& error) {
  PyObject* type = exceptions.base;
  if (error.kind() == ErrorKind::kUsage) type = exceptions.usage;
  if (error.kind() == ErrorKind::kCorruptData) {
    // Every codec says a stream cut short so, and the tar reader an archive (TruncatedError: also
    // an EOFError, as gzip's is).
    const bool truncated =
        error.detail().starts_with("unexpected end of input") || error.detail().starts_with("archive truncated");
    type = truncated ? exceptions.truncated : exceptions.corrupt;
  }
  if (error.kind() == ErrorKind::kTrailingGarbage) type = exceptions.trailing_garbage;
  if (error.kind() == ErrorKind::kLimit) type = exceptions.limit;
  if (const auto it = exceptions.system.find(error.error_number()); it != exceptions.system.end()) type = it->second;
  // A name in angle brackets ("<memory>", "<stdin>") is no file.
  const bool named = !error.path().empty() && error.path().front() != '<';
  const std::string message =
      named ? std::string(error.what())
            : error.detail() + (error.offset() ? " (at byte " + std::to_string(*error.offset()) + ")" : std::string());
  // Names are bytes, not always UTF-8 (an archive's member names): decoded as os.fsdecode does.
  const auto text = [](const std::string& bytes) {
    return py::reinterpret_steal<py::object>(
        PyUnicode_DecodeFSDefaultAndSize(bytes.data(), static_cast<Py_ssize_t>(bytes.size())));
  };
  return py::handle(type)(text(message), kind_name(error.kind()), named ? text(error.path()) : py::none(),
                          error.offset() ? py::object(py::int_(*error.offset())) : py::none(), text(error.detail()),
                          error.error_number() != 0 ? py::object(py::int_(error.error_number())) : py::none());
}

void raise(const Error& error) {
  py::object instance = to_python(error);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr());
  throw py::error_already_set();
}

// Threads at the interpreter's end. Python 3.11 ends a thread that takes the GIL once finalization
// has begun (a daemon thread coming back from a call, a graph's worker calling a file object)
// with pthread_exit, whose unwinding through C++ frames aborts the process: through a noexcept
// destructor such as gil_scoped_release's, a catch (...) or a library's frames ("terminate called
// without an active exception", "FATAL: exception not rethrown", exit 134 or 139). Python 3.14
// makes such a thread wait forever instead; this gate does that for the GIL taken through this
// module. The module's atexit hook, registered when it loads and so run after the package's own
// (which close its open files), closes the gate: for up to a second it lets the threads waiting
// for the GIL take it and the ones running Python code for sluice (a file object's read, a
// callback: a "section") finish, before finalization begins. From then on, a thread other than
// the closing one that would take the GIL through this module
//   - inside a section: goes on (it finishes what it is doing, a nested call too), until
//     finalization begins;
//   - a Python thread that used sluice before (a daemon thread's call returning): waits, for
//     good once finalization begins, or goes on after a second (another atexit callback may be
//     joining it); one that first comes after (started by a later atexit callback) goes on;
//   - a thread of the library's, outside a section: refused with Error(kCancelled), so that its
//     run stops and no one waits on it, unless it works for the closing thread (its file object,
//     or while that thread is inside a call);
//   - once finalization has begun: a Python thread waits forever (the process is ending), a
//     library thread is refused or waits.
// The closing thread, and a Python thread that holds the GIL already, pass. A child of fork()
// starts with the gate open and nothing counted.
class GilGate {
 public:
  // Before taking the GIL; a library thread refused throws (`refuse`) or waits forever.
  // `for_thread`: the Python thread a library thread works for, where known (a file object's).
  static void enter(bool refuse, std::thread::id for_thread = {}) {
    State& state = the_state();
    std::unique_lock lock(state.mutex);
    // PyGILState_Check() says 1 to any thread once the runtime is finalized: asked only of a
    // thread with a thread state (which is none by then).
    const bool python_thread = PyGILState_GetThisThreadState() != nullptr;
    if (!state.closed) {
      used_before_close_ = true;
    } else if (state.closer != std::this_thread::get_id() && !(python_thread && PyGILState_Check() != 0)) {
      bool pass = false;
      if (section_depth_ > 0 || (python_thread && !used_before_close_)) {
        pass = !finalizing();
      } else if (python_thread) {
        const auto until = std::chrono::steady_clock::now() + kCloseWait;
        while (!finalizing() && std::chrono::steady_clock::now() < until) {
          state.changed.wait_for(lock, std::chrono::milliseconds(10));
        }
        pass = !finalizing();
      } else {
        pass = !finalizing() && (state.closer_calling > 0 || for_thread == state.closer);
      }
      if (!pass) {
        if (python_thread || !refuse) state.never.wait(lock, [] { return false; });  // the process is ending
        throw Error(ErrorKind::kCancelled, "stopped: the Python interpreter is exiting");
      }
    }
    ++state.entering;
  }
  // After taking it.
  static void entered() {
    State& state = the_state();
    {
      std::lock_guard lock(state.mutex);
      --state.entering;
    }
    state.changed.notify_all();
  }
  // A section: Python code run for sluice with the GIL taken through the gate (AcquiredGil).
  static void section_begins() {
    ++section_depth_;
    State& state = the_state();
    std::lock_guard lock(state.mutex);
    ++state.sections;
  }
  static void section_ends() {
    --section_depth_;
    State& state = the_state();
    {
      std::lock_guard lock(state.mutex);
      --state.sections;
    }
    state.changed.notify_all();
  }
  // Around a call's work without the GIL (ReleasedGil): while the thread that closed the gate is
  // in one, the library's threads are let through (they may be its run's), until finalization.
  static bool calling() {
    State& state = the_state();
    std::lock_guard lock(state.mutex);
    if (!state.closed || state.closer != std::this_thread::get_id()) return false;
    ++state.closer_calling;
    return true;
  }
  static void called() {
    State& state = the_state();
    std::lock_guard lock(state.mutex);
    --state.closer_calling;
  }
  // The atexit hook's, with the GIL held: closes the gate, then lets the threads waiting for the
  // GIL take it, and the sections under way end, for up to kCloseWait, before finalization.
  static void close() {
    State& state = the_state();
    {
      std::lock_guard lock(state.mutex);
      state.closed = true;
      state.closer = std::this_thread::get_id();
    }
    PyThreadState* thread_state = PyEval_SaveThread();
    {
      std::unique_lock lock(state.mutex);
      state.changed.wait_for(lock, kCloseWait, [&] { return state.entering == 0 && state.sections == 0; });
    }
    PyEval_RestoreThread(thread_state);
  }
  // fork()'s child: one thread, the gate open, nothing counted (the parent's counts and mutex
  // were copied as they were at the fork).
  static void forked() {
    the_state_pointer() = new State;
    section_depth_ = 0;
    used_before_close_ = false;
  }

 private:
  static constexpr std::chrono::seconds kCloseWait{1};
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    std::condition_variable never;
    bool closed = false;
    std::thread::id closer;
    std::size_t entering = 0;        // threads between enter() and entered()
    std::size_t sections = 0;        // AcquiredGil scopes open
    std::size_t closer_calling = 0;  // the closing thread's ReleasedGil scopes
  };
  // Never destroyed: threads wait on it forever, and exit() would wait for them in the
  // condition variable's destructor.
  static State*& the_state_pointer() {
    static State* state = new State;
    return state;
  }
  static State& the_state() { return *the_state_pointer(); }
  static bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing() != 0;
#else
    return _Py_IsFinalizing() != 0;
#endif
  }
  static inline thread_local int section_depth_ = 0;
  static inline thread_local bool used_before_close_ = false;
};

// py::gil_scoped_acquire through the gate: a library thread refused throws Error(kCancelled).
// Its scope is a section (GilGate).
class AcquiredGil {
 public:
  explicit AcquiredGil(std::thread::id for_thread = {}) {
    GilGate::enter(/*refuse=*/true, for_thread);
    take();
  }
  // For a destructor: refused, held() is false (its Python objects are left, as the interpreter's
  // end leaves them), no throw.
  explicit AcquiredGil(std::nothrow_t, std::thread::id for_thread = {}) {
    try {
      GilGate::enter(/*refuse=*/true, for_thread);
    } catch (const Error&) {
      return;
    }
    take();
  }
  ~AcquiredGil() {
    if (!acquire_) return;
    GilGate::section_ends();
    acquire_.reset();
  }
  AcquiredGil(const AcquiredGil&) = delete;
  AcquiredGil& operator=(const AcquiredGil&) = delete;
  bool held() const { return acquire_.has_value(); }

 private:
  void take() {
    acquire_.emplace();
    GilGate::section_begins();  // before entered(): the gate's close() sees one or the other
    GilGate::entered();
  }
  std::optional<py::gil_scoped_acquire> acquire_;
};

// py::gil_scoped_release whose end takes the GIL back through the gate (a Python thread waits
// there for good once the interpreter is exiting: not in the destructor's unwinding).
class ReleasedGil {
 public:
  ReleasedGil() : calling_(GilGate::calling()) {}
  ~ReleasedGil() {  // before release_'s destructor takes the GIL back
    if (calling_) GilGate::called();
    GilGate::enter(/*refuse=*/false);
  }
  ReleasedGil(const ReleasedGil&) = delete;
  ReleasedGil& operator=(const ReleasedGil&) = delete;

 private:
  struct Entered {
    ~Entered() { GilGate::entered(); }
  };
  Entered entered_;  // destroyed last, after release_ took the GIL
  py::gil_scoped_release release_;
  bool calling_;
};

// Runs `work(stop)` without the GIL. Large work runs on a thread of its own while this thread
// checks for signals: on one (Ctrl-C), the stop is requested, the work ends within a chunk, and
// the signal's exception (KeyboardInterrupt) is raised; no output of the stopped work is kept.
template <typename Work>
void run_released(std::size_t work_bytes, Work&& work) {
  std::exception_ptr failure;
  if (work_bytes < kInterruptibleBytes) {
    {
      ReleasedGil release;
      try {
        work(std::stop_token{});
      } catch (...) {
        failure = std::current_exception();
      }
    }
  } else {
    std::stop_source stop;
    std::promise<void> finished;
    std::future<void> done = finished.get_future();
    bool interrupted = false;
    {
      ReleasedGil release;
      std::thread worker([&] {
        try {
          work(stop.get_token());
        } catch (...) {
          failure = std::current_exception();
        }
        finished.set_value();
      });
      while (done.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout && !interrupted) {
        AcquiredGil acquire;
        if (PyErr_CheckSignals() != 0) {
          interrupted = true;
          stop.request_stop();
        }
      }
      worker.join();
    }
    if (interrupted) throw py::error_already_set();  // the signal handler's exception
  }
  if (failure) {
    // A signal's exception that the work found pending (DrainSink's check) is the call's.
    if (PyErr_Occurred()) throw py::error_already_set();
    try {
      std::rethrow_exception(failure);
    } catch (const Error& e) {
      raise(e);
    }
  }
}

// A bytes-like object's memory, held for the call (no copy). C-contiguous buffers only.
struct Input {
  explicit Input(const py::buffer& buffer) : info(buffer.request()) {
    if (!PyBuffer_IsContiguous(info.view(), 'C')) throw py::value_error("sluice needs a contiguous bytes-like object");
  }
  ByteView view() const {
    return {static_cast<const std::uint8_t*>(info.ptr), static_cast<std::size_t>(info.size * info.itemsize)};
  }
  py::buffer_info info;
};

py::bytes to_bytes(const Buffer& buffer) {
  return py::bytes(reinterpret_cast<const char*>(buffer.data()), buffer.size());
}

CompressOptions compress_options(const std::string& format, int level, int threads, std::size_t chunk_size,
                                 const std::map<std::string, std::string>& knobs, const std::string& backend) {
  CompressOptions options;
  options.codec = format;
  options.codec_options.level = level;
  options.codec_options.chunk_bytes = chunk_size;
  options.codec_options.knobs = knobs;
  options.codec_options.backend = backend;
  options.threads = threads;
  return options;
}

// An empty input decodes to b"" here, as gzip.decompress and gzip.open take it (files in a batch
// are the command line's: an empty one is an error there).
DecompressOptions decompress_options(const std::string& format, int threads, std::uint64_t max_output) {
  DecompressOptions options;
  options.codec = format;
  options.threads = threads;
  options.max_output_bytes = max_output;
  options.empty_input_is_empty = true;
  return options;
}

// Decoded output written straight into a bytes object of the size the stream claims
// (expected_output_bytes), which sluice.decompress then returns as it is: no copy of the output.
// What comes past the claim (a claim too small, or none) goes into a Buffer and is joined to it
// at the end, one copy as before. The object is made and finished with the GIL held; write() runs
// on the graph's writer thread without it and touches only the object's bytes, which nothing else
// can see until finish() hands the object over.
class BytesSink final : public ByteSink {
 public:
  explicit BytesSink(std::uint64_t expected) {
    if (expected == 0) return;
    PyObject* bytes = PyBytes_FromStringAndSize(nullptr, static_cast<py::ssize_t>(expected));
    if (bytes == nullptr) {  // a claim past what may be allocated: the output as it comes
      PyErr_Clear();
      return;
    }
    bytes_ = py::reinterpret_steal<py::object>(bytes);
    data_ = reinterpret_cast<std::uint8_t*>(PyBytes_AS_STRING(bytes));
    capacity_ = static_cast<std::size_t>(expected);
    detail::advise_huge_pages(data_, capacity_);  // a fault per 2 MiB, not per 4 KiB, where it can
  }
  void write(ByteView bytes) override {
    if (next_check_ > 0 && size_ + rest_.size() + bytes.size() > next_check_) check_signals();
    const std::size_t fits = std::min(bytes.size(), capacity_ - size_);
    if (fits > 0) std::memcpy(data_ + size_, bytes.data(), fits);
    size_ += fits;
    rest_.append(bytes.subspan(fits));
  }
  const std::string& name() const override { return name_; }
  // For a call on the main thread that runs there (a small one), which sees no signal on its own:
  // past each further kInterruptibleBytes of output, written on the calling thread, a signal
  // (Ctrl-C) is looked for and ends the call, its exception pending (as DrainSink's check);
  // written by a run's own writer, the output stops there instead (past_limit()), for the call to
  // be made again where it can be stopped (run_released's thread).
  void watch_signals(std::thread::id caller) {
    caller_ = caller;
    next_check_ = kInterruptibleBytes;
  }
  bool past_limit() const { return past_limit_; }
  // The output as a bytes object (the GIL held): the object made, where the claim was exact;
  // otherwise (a claim short of the output, or none, or one longer than a stream that decoded
  // without error, which no format gives) the output copied into an object of its own size.
  py::bytes finish() {
    if (rest_.empty() && bytes_ && size_ == capacity_) return py::reinterpret_steal<py::bytes>(bytes_.release());
    PyObject* joined = PyBytes_FromStringAndSize(nullptr, static_cast<py::ssize_t>(size_ + rest_.size()));
    if (joined == nullptr) throw py::error_already_set();
    char* out = PyBytes_AS_STRING(joined);
    if (size_ > 0) std::memcpy(out, data_, size_);
    if (!rest_.empty()) std::memcpy(out + size_, rest_.data(), rest_.size());
    return py::reinterpret_steal<py::bytes>(joined);
  }

 private:
  py::object bytes_;  // null without a claim
  std::uint8_t* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
  void check_signals() {
    next_check_ += kInterruptibleBytes;
    if (std::this_thread::get_id() != caller_) {
      past_limit_ = true;
      throw Error(ErrorKind::kCancelled, "more output than a call on the calling thread takes", name_);
    }
    AcquiredGil acquire;
    if (PyErr_CheckSignals() != 0) throw Error(ErrorKind::kCancelled, "the call was interrupted", name_);
  }

  std::size_t next_check_ = 0;  // 0: not watched
  std::thread::id caller_;
  bool past_limit_ = false;
  Buffer rest_;
  std::string name_ = "<memory>";
};

// Collects what a Compressor or Decompressor writes (on the graph's writer thread, or on the
// caller's for a small stream) for the Python side to take (drain) during and between calls.
// With a `hold`, the writer waits between calls while that much is held, until the caller drains
// it or stops the sink (a Decompressor's output would otherwise grow while Python does other
// things: a bomb's); during a call (CallScope) it never waits, as the call takes it all.
class DrainSink final : public ByteSink {
 public:
  static constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();
  explicit DrainSink(std::size_t hold = kAll) : hold_(hold) {}
  void write(ByteView bytes) override {
    bool callers = false;  // written by the thread in a call (only it touches since_check_)
    {
      std::unique_lock lock(mutex_);
      const auto room = [&] { return in_call_ || stopped_ || held() < hold_; };
      if (!room() && on_full_) {
        lock.unlock();
        on_full_();  // a caller waiting for this much output wakes
        lock.lock();
      }
      drained_.wait(lock, room);
      if (stopped_) throw Error(ErrorKind::kCancelled, "the stream was stopped", name_);
      buffer_.append(bytes);
      callers = in_call_ && caller_ == std::this_thread::get_id();
    }
    if (callers && (since_check_ += bytes.size()) >= kSignalCheckBytes) check_signals();
  }
  const std::string& name() const override { return name_; }
  // What is held, or its first `limit` bytes (the rest kept for the next drain).
  py::bytes drain(std::size_t limit = kAll) {
    Buffer taken;
    std::size_t from = 0;
    {
      std::lock_guard lock(mutex_);
      if (held() > limit) {
        py::bytes out(reinterpret_cast<const char*>(buffer_.data() + head_), limit);
        head_ += limit;
        if (head_ >= buffer_.size() / 2) {  // each byte moved at most once more than it is drained
          std::memmove(buffer_.data(), buffer_.data() + head_, held());
          buffer_.resize(held());
          head_ = 0;
        }
        drained_.notify_all();
        return out;
      }
      from = std::exchange(head_, 0);
      taken = std::move(buffer_);
      buffer_ = std::move(spare_);  // memory faulted in already: a fresh buffer's pages cost more
      buffer_.clear();
    }
    drained_.notify_all();
    py::bytes out(reinterpret_cast<const char*>(taken.data() + from), taken.size() - from);
    if (taken.capacity() <= kSpareBytes) {
      std::lock_guard lock(mutex_);
      spare_ = std::move(taken);
    }
    return out;
  }
  std::size_t size() {
    std::lock_guard lock(mutex_);
    return held();
  }
  // Between calls the writer waits while this much is held (kAll: never).
  void set_hold(std::size_t hold) {
    {
      std::lock_guard lock(mutex_);
      hold_ = hold;
    }
    drained_.notify_all();
  }
  // Called, without the sink's lock, when the writer is about to wait for a drain.
  void on_full(std::function<void()> notify) { on_full_ = std::move(notify); }
  // Ends any wait of the writer's, for good (before the stream's run is joined).
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
    }
    drained_.notify_all();
  }

  // A call's scope: the sink takes what comes without waiting for a drain. What the calling
  // thread decodes itself (a Decompressor's caller-side decoder), without the GIL and maybe
  // without end (a bomb), checks for signals every kSignalCheckBytes of output: on Ctrl-C the
  // write throws, the stream stops, and run_released raises the pending KeyboardInterrupt.
  class CallScope {
   public:
    explicit CallScope(DrainSink& sink) : sink_(sink) { sink_.in_call(true); }
    ~CallScope() { sink_.in_call(false); }
    CallScope(const CallScope&) = delete;
    CallScope& operator=(const CallScope&) = delete;

   private:
    DrainSink& sink_;
  };

 private:
  static constexpr std::size_t kSignalCheckBytes = 4 << 20;

  void check_signals() {
    since_check_ = 0;
    AcquiredGil acquire;
    if (PyErr_CheckSignals() != 0) {  // the exception stays pending, for run_released to raise
      throw Error(ErrorKind::kCancelled, "the stream was stopped by an interrupted call", name_);
    }
  }

  void in_call(bool in) {
    {
      std::lock_guard lock(mutex_);
      in_call_ = in;
      caller_ = in ? std::this_thread::get_id() : std::thread::id{};
    }
    drained_.notify_all();
  }

  std::size_t held() const { return buffer_.size() - head_; }  // with mutex_ held

  std::size_t hold_;
  std::function<void()> on_full_;
  std::mutex mutex_;
  std::condition_variable drained_;
  Buffer buffer_;
  std::size_t head_ = 0;  // bytes of buffer_ drained already (by a drain with a limit)
  // The last drained buffer, for the next round, unless a large call grew it past kSpareBytes.
  static constexpr std::size_t kSpareBytes = 8 << 20;
  Buffer spare_;
  bool in_call_ = false;
  bool stopped_ = false;
  std::thread::id caller_;        // the thread in a call, while one is (its writes check signals)
  std::size_t since_check_ = 0;   // written by the caller's thread since it last checked
  std::string name_ = "<python>";
};

// sluice.open's writing underneath: bytes pushed into a Compressor, its output drained after
// each call. Ctrl-C during a call cancels the stream, so that a push waiting for the graph
// returns at once. A flush and finish() wait for what was pushed since the last flush; when that
// is little, on this thread, as a small push does (a helper thread cost most of a flush of a few
// records, and of writing a small file).
class Writer {
 public:
  Writer(const CompressOptions& options, const StreamInfo& info) : stream_(sink_, options, info) {}
  py::bytes push(const py::buffer& data) {
    const Input input(data);
    run_released(input.view().size(), [&](std::stop_token stop) {
      const std::stop_callback on_stop(stop, [this] { stream_.cancel(); });
      stream_.write(input.view());
    });
    unflushed_ += input.view().size();
    return sink_.drain();
  }
  // `last`: the stream's last bytes (what Python gathered), written first in the same call.
  py::bytes finish(const py::buffer& last) {
    const Input input(last);
    run_released(std::exchange(unflushed_, 0) + input.view().size(), [&](std::stop_token stop) {
      const std::stop_callback on_stop(stop, [this] { stream_.cancel(); });
      stream_.write(input.view());
      stream_.finish();
    });
    return sink_.drain();
  }
  // What was pushed so far and `more` (what Python gathered, written first in the same call: a
  // call less for each flushed record) comes out as decodable data, drained here.
  py::bytes flush(const py::buffer& more) {
    const Input input(more);
    run_released(std::exchange(unflushed_, 0) + input.view().size(), [&](std::stop_token stop) {
      const std::stop_callback on_stop(stop, [this] { stream_.cancel(); });
      stream_.write(input.view());
      stream_.flush();
    });
    return sink_.drain();
  }
  void cancel() { stream_.cancel(); }

 private:
  DrainSink sink_;
  Compressor stream_;
  std::size_t unflushed_ = 0;  // bytes pushed since the last flush
};

// sluice.Decompressor underneath: compressed pieces pushed into a Decompressor; each call returns
// what was decoded by its end: all of it while the stream is small (Decompressor decodes it on
// this thread); once a run decodes it, the call's own input may come out in part at the next
// call, and between calls the run decodes ahead into at most kHeld bytes.
class Decoder {
 public:
  static constexpr std::size_t kHeld = 8 << 20;
  Decoder(const DecompressOptions& options, const std::string& name)
      : sink_(kHeld), stream_(sink_, options, name), one_thread_(options.threads == 1) {
    sink_.on_full([this] {
      std::lock_guard lock(feed_mutex_);
      fed_.notify_all();
    });
  }
  ~Decoder() {
    sink_.stop();  // a run waiting for Python to drain ends before it is joined
    if (feeder_.joinable()) {
      stream_.cancel();
      {
        std::lock_guard lock(feed_mutex_);
        quit_ = true;
      }
      fed_.notify_all();
      feeder_.join();
    }
  }
  py::bytes push(const py::buffer& data) {
    if (feeder_.joinable()) return feed(data, DrainSink::kAll);
    const Input input(data);
    {
      const DrainSink::CallScope call(sink_);
      run_released(input.view().size(), [&](std::stop_token stop) {
        const std::stop_callback on_stop(stop, [this] { cancel(); });
        stream_.write(input.view());
      });
      // What the input decodes to comes out in this call, not all at flush(): a 4 MB input of a
      // 1 GB stream had 1,015 MB come out there at once (zlib's took 71 MB in all). Waited for
      // on this thread, signals checked between waits (a thread for each call, to wait with
      // Ctrl-C checked, made calls of 1 KiB ten times as slow).
      for (bool taken = false; !taken;) {
        run_released(0, [&](std::stop_token) { taken = stream_.wait_taken(kSignalCheck); });
        if (!taken && PyErr_CheckSignals() != 0) {
          cancel();
          throw py::error_already_set();
        }
      }
    }
    return sink_.drain();
  }
  // decompress(data, max_length): at most max_length bytes out. The stream is decoded on a thread
  // of the Decoder's (the feeder) which waits, inside the decoder's call, while max_length bytes
  // are held: no engine need stop in the middle of its input, and what a bomb's piece decodes to
  // is held max_length (and one write of the decoder's) at a time. Only with one thread: a run's
  // output lags its input (taken in is not decoded), so needs_input could not be told, and what a
  // run decodes after the input's last piece would all come out at flush().
  py::bytes push_bounded(const py::buffer& data, std::size_t max_length) {
    if (!one_thread_) {
      raise(Error(ErrorKind::kUsage, "decompress() takes a max_length with threads=1 only (the default)",
                  stream_.name()));
    }
    if (!feeder_.joinable()) feeder_ = std::thread([this] { feed_loop(); });
    return feed(data, max_length);
  }
  // False while input given is not decoded yet, or output decoded (or an error) is not returned yet.
  bool needs_input() {
    {
      std::lock_guard lock(feed_mutex_);
      if (feeding_ || feed_error_) return false;
    }
    return sink_.size() == 0;
  }
  py::bytes finish() {
    if (feeder_.joinable()) {
      wait_fed(DrainSink::kAll);  // what was given is decoded before the end is declared
      std::lock_guard lock(feed_mutex_);
      if (feed_error_) throw_feed_error();
    }
    {
      const DrainSink::CallScope call(sink_);
      // A stream decoded on this thread ends here (no thread to wait on a run for Ctrl-C).
      run_released(stream_.decodes_in_background() ? kInterruptibleBytes : 0, [&](std::stop_token stop) {
        const std::stop_callback on_stop(stop, [this] { cancel(); });
        stream_.finish();
      });
    }
    return sink_.drain();
  }
  // What was decoded before a call raised (the good part before an error).
  py::bytes drain() { return sink_.drain(); }
  void cancel() {
    sink_.stop();
    stream_.cancel();
  }

 private:
  py::bytes feed(const py::buffer& data, std::size_t max_length) {
    const Input input(data);
    {
      std::lock_guard lock(feed_mutex_);
      if (!feed_error_ && !input.view().empty()) {
        pending_.append(input.view());
        feeding_ = true;
      }
    }
    fed_.notify_all();
    wait_fed(max_length);
    py::bytes out = sink_.drain(max_length);
    if (py::len(out) == 0 && sink_.size() == 0) {  // (max_length 0 drains nothing: the rest waits)
      std::lock_guard lock(feed_mutex_);
      if (feed_error_) throw_feed_error();  // after all that decoded before it was returned
    }
    return out;
  }
  // Until what was fed is decoded (taken in by a run), max_length bytes are held, or it failed.
  // Between calls the feeder decodes ahead into at most max_length bytes and kHeld.
  void wait_fed(std::size_t max_length) {
    sink_.set_hold(max_length);
    for (;;) {
      bool done = false;
      {
        ReleasedGil release;
        std::unique_lock lock(feed_mutex_);
        done =
            fed_.wait_for(lock, kSignalCheck, [&] { return feed_error_ || !feeding_ || sink_.size() >= max_length; });
      }
      if (done) break;
      if (PyErr_CheckSignals() != 0) {
        cancel();
        throw py::error_already_set();
      }
    }
    sink_.set_hold(std::min(max_length, kHeld));
  }
  [[noreturn]] void throw_feed_error() {
    try {
      std::rethrow_exception(feed_error_);
    } catch (const Error& e) {
      raise(e);
    }
    std::rethrow_exception(feed_error_);  // not reached: raise() throws
  }
  void feed_loop() {
    std::unique_lock lock(feed_mutex_);
    for (;;) {
      fed_.wait(lock, [&] { return quit_ || !pending_.empty(); });
      if (quit_) return;
      const Buffer input = std::exchange(pending_, Buffer());
      lock.unlock();
      std::exception_ptr error;
      try {
        stream_.write(input.view());
        while (!stream_.wait_taken(kSignalCheck)) {
          const std::lock_guard quitting(feed_mutex_);
          if (quit_) break;
        }
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (error) {
        feed_error_ = error;
        pending_.clear();
      }
      if (pending_.empty()) feeding_ = false;
      fed_.notify_all();
    }
  }

  DrainSink sink_;
  Decompressor stream_;
  const bool one_thread_;
  // The feeder's hand-over (once decompress() was given a max_length).
  std::mutex feed_mutex_;
  std::condition_variable fed_;
  Buffer pending_;        // given, not yet handed to the stream
  bool feeding_ = false;  // given input not yet decoded (or taken in by a run)
  bool quit_ = false;
  std::exception_ptr feed_error_;
  std::thread feeder_;  // last: joined by the destructor before the rest goes
};

// A Python binary file object as a source or sink, for the graphs' threads: each call takes
// the GIL for the file's own read or write. A Python exception inside becomes an I/O error naming
// the file (the graph stops; the original exception is kept and re-raised by the caller).
class PythonFile {
 public:
  PythonFile(py::object file, std::string name) : file_(std::move(file)), name_(std::move(name)) {}
  ~PythonFile() {
    // Python objects go with the GIL held; refused (the interpreter is exiting), they are left to it.
    const AcquiredGil acquire(std::nothrow, opener_);
    if (!acquire.held()) {
      static_cast<void>(file_.release());
      static_cast<void>(new std::shared_ptr<py::error_already_set>(std::move(python_error_)));
      return;
    }
    python_error_.reset();
    file_ = py::object();
  }
  template <typename Call>
  auto call(Call&& call) {
    const AcquiredGil acquire(opener_);
    try {
      return call(file_);
    } catch (py::error_already_set& e) {
      std::string what = e.what();
      {
        std::lock_guard lock(mutex_);
        if (!python_error_) python_error_ = std::make_shared<py::error_already_set>(std::move(e));
      }
      throw Error(ErrorKind::kIo, what, name_);
    }
  }
  // The first Python exception a call of the file raised, if any: raised instead of the Error.
  void restore_python_error() {
    std::lock_guard lock(mutex_);
    if (python_error_) {
      python_error_->restore();
      python_error_.reset();
      throw py::error_already_set();
    }
  }
  const std::string& name() const { return name_; }
  std::thread::id opener() const { return opener_; }

 private:
  py::object file_;
  std::string name_;
  std::thread::id opener_ = std::this_thread::get_id();  // the Python thread that opened it
  std::mutex mutex_;
  std::shared_ptr<py::error_already_set> python_error_;
};

// run_released() for work that reads or writes a Python file object: when it fails because a
// call of the file raised, that exception is raised (ConnectionResetError, say), not the I/O
// error the library made of it.
// A callback's exception likewise (`callback_error`, recorded by the callback's wrapper, which
// then stops the run with Error(kCancelled)).
template <typename Work>
void run_released_with(std::optional<PythonFile>& file, std::size_t work_bytes, Work&& work,
                       const std::exception_ptr* callback_error = nullptr) {
  try {
    run_released(work_bytes, std::forward<Work>(work));
  } catch (py::error_already_set&) {
    if (callback_error && *callback_error) std::rethrow_exception(*callback_error);
    if (file) file->restore_python_error();
    throw;
  }
}

// Calls a Python callback from a library thread with the GIL; its exception is kept in `error`
// and stops the run (the caller re-raises it: run_released_with).
// `argument()` makes the callback's argument, with the GIL held.
template <typename Argument>
void call_back(const py::object& callback, std::exception_ptr& error, Argument&& argument) {
  AcquiredGil acquire;
  if (error) throw Error(ErrorKind::kCancelled, "stopped: a callback raised");
  try {
    callback(argument());
  } catch (...) {
    error = std::current_exception();
    throw Error(ErrorKind::kCancelled, "stopped: a callback raised");
  }
}

class PythonSource final : public ByteSource {
 public:
  explicit PythonSource(PythonFile& file) : file_(file) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    return file_.call([&](py::object& f) -> std::size_t {
      if (!py::hasattr(f, "readinto")) {  // read() only (a StreamingBody, a wrapper of one's own)
        py::object got = f.attr("read")(max_bytes);
        if (got.is_none()) throw Error(ErrorKind::kIo, "the file object is non-blocking and had no data", file_.name());
        Py_buffer view;  // any bytes-like object, in any layout (a memoryview with strides too)
        if (PyObject_GetBuffer(got.ptr(), &view, PyBUF_FULL_RO) != 0) throw py::error_already_set();
        const std::unique_ptr<Py_buffer, void (*)(Py_buffer*)> release(&view, PyBuffer_Release);
        const auto n = static_cast<std::size_t>(view.len);
        if (n > max_bytes) throw Error(ErrorKind::kIo, "read() returned more than asked", file_.name());
        if (PyBuffer_ToContiguous(dst, &view, view.len, 'C') != 0) throw py::error_already_set();
        return n;
      }
      // Into a bytearray of Python's own, copied out after the call: a view that the file object
      // keeps (a slice, a memoryview of it, the frame of a readinto() that raised) holds that
      // bytearray, never the run's memory, which is freed when the run ends.
      // It is held (a buffer taken from it) from before the call to after the copy, so the file
      // object cannot resize it meanwhile; it grows to the largest read asked.
      const auto size = static_cast<py::ssize_t>(max_bytes);
      if (!scratch_ || PyByteArray_GET_SIZE(scratch_.ptr()) < size) {
        scratch_ = py::reinterpret_steal<py::object>(PyByteArray_FromStringAndSize(nullptr, size));
        if (!scratch_) throw py::error_already_set();
      }
      Py_buffer held;
      if (PyObject_GetBuffer(scratch_.ptr(), &held, PyBUF_SIMPLE) != 0) throw py::error_already_set();
      const std::unique_ptr<Py_buffer, void (*)(Py_buffer*)> release(&held, PyBuffer_Release);
      py::object whole = py::reinterpret_steal<py::object>(PyMemoryView_FromObject(scratch_.ptr()));
      if (!whole) throw py::error_already_set();
      py::object target = whole[py::slice(0, size, 1)];
      py::object got = f.attr("readinto")(target);
      if (got.is_none()) throw Error(ErrorKind::kIo, "the file object is non-blocking and had no data", file_.name());
      const Py_ssize_t n = PyNumber_AsSsize_t(got.ptr(), PyExc_OverflowError);  // io's check: an int in range
      if (n == -1 && PyErr_Occurred()) throw py::error_already_set();
      if (n < 0 || static_cast<std::size_t>(n) > max_bytes) {
        throw Error(ErrorKind::kIo,
                    "readinto() returned " + std::to_string(n) + " (should have been between 0 and " +
                        std::to_string(max_bytes) + ")",
                    file_.name());
      }
      std::memcpy(dst, held.buf, static_cast<std::size_t>(n));
      return static_cast<std::size_t>(n);
    });
  }
  const std::string& name() const override { return file_.name(); }
  ~PythonSource() override {
    // Python objects go with the GIL held; refused (the interpreter is exiting), left to it.
    const AcquiredGil acquire(std::nothrow, file_.opener());
    if (!acquire.held()) static_cast<void>(scratch_.release());
    scratch_ = py::object();
  }

 private:
  PythonFile& file_;
  py::object scratch_;  // what the file object reads into (null until the first read)
};

class PythonSink final : public ByteSink {
 public:
  explicit PythonSink(PythonFile& file) : file_(file) {}
  void write(ByteView bytes) override {
    file_.call([&](py::object& f) {
      // Raw files and sockets may take part of it: write the rest (None: nothing taken).
      std::size_t done = 0;
      while (done < bytes.size()) {
        py::object n =
            f.attr("write")(py::bytes(reinterpret_cast<const char*>(bytes.data()) + done, bytes.size() - done));
        const std::size_t taken = n.is_none() ? 0 : n.cast<std::size_t>();
        if (taken == 0) throw Error(ErrorKind::kIo, "the file object took none of the bytes written", file_.name());
        done += std::min(taken, bytes.size() - done);
      }
      return 0;
    });
  }
  const std::string& name() const override { return file_.name(); }

 private:
  PythonFile& file_;
};

// Bytes a Python thread feeds (sluice/__init__.py, _Feeder): the source of a PullReader over a
// file object that may block, a pipe or a socket. The graph's reads wait here, and cancel() ends
// the wait at once, where a read blocked in the file itself cannot be interrupted (closing the
// file, the interpreter's exit or Ctrl-C hung until the writer sent more or closed). The feeding
// thread, a daemon, finds the source cancelled once its read returns, and stops.
class FedSource final : public ByteSource {
 public:
  explicit FedSource(std::string name) : name_(std::move(name)) {}

  // The feeding thread's: queues a copy of `data`, waiting (without the GIL) while kQueuedBytes
  // are queued. False once cancelled.
  bool push(const py::buffer& data) {
    const Input input(data);
    std::vector<std::uint8_t> copy(input.view().begin(), input.view().end());
    if (copy.empty()) return true;
    ReleasedGil release;
    std::unique_lock lock(mutex_);
    room_.wait(lock, [&] { return cancelled_ || queued_ < kQueuedBytes; });
    if (cancelled_) return false;
    queued_ += copy.size();
    queue_.push_back(std::move(copy));
    ready_.notify_all();
    return true;
  }
  // The file's end, or its read's failure (`message`; the caller raises the exception itself).
  void end(const std::string& message) {
    std::lock_guard lock(mutex_);
    ended_ = true;
    failure_ = message;
    ready_.notify_all();
  }
  void cancel() {
    std::lock_guard lock(mutex_);
    cancelled_ = true;
    ready_.notify_all();
    room_.notify_all();
  }

  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return cancelled_ || !queue_.empty() || ended_; });
    if (cancelled_) throw Error(ErrorKind::kCancelled, "stopped", name_);
    if (queue_.empty()) {
      if (!failure_.empty()) throw Error(ErrorKind::kIo, failure_, name_);
      return 0;
    }
    std::size_t n = 0;
    while (n < max_bytes && !queue_.empty()) {
      std::vector<std::uint8_t>& front = queue_.front();
      const std::size_t take = std::min(max_bytes - n, front.size() - front_taken_);
      std::memcpy(dst + n, front.data() + front_taken_, take);
      n += take;
      front_taken_ += take;
      if (front_taken_ == front.size()) {
        queue_.pop_front();
        front_taken_ = 0;
      }
    }
    queued_ -= n;
    room_.notify_all();
    return n;
  }
  const std::string& name() const override { return name_; }
  // A reader that found nothing queued for a while decodes what it has (decompress()'s "live").
  bool wait_readable(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mutex_);
    return ready_.wait_for(lock, timeout, [&] { return cancelled_ || !queue_.empty() || ended_; });
  }

 private:
  static constexpr std::size_t kQueuedBytes = 4 << 20;
  std::string name_;
  std::mutex mutex_;
  std::condition_variable ready_, room_;
  std::deque<std::vector<std::uint8_t>> queue_;
  std::size_t front_taken_ = 0;  // of queue_.front(), already read
  std::size_t queued_ = 0;
  bool ended_ = false, cancelled_ = false;
  std::string failure_;
};

// sluice.open's reading side: a DecompressingSource (the decompression graph behind a bounded
// pipe) over the file, read by a path (mapped where it pays), through a Python file object, or
// from what a feeding thread reads of one (FedSource). Memory stays bounded whatever the
// expansion: the graph waits while the pipe is full.
class PullReader {
 public:
  // A path, or a descriptor of a regular file (`fd`, duplicated: the caller may close it), is
  // read from byte `offset` on (a seek that starts at a unit of the stream).
  PullReader(const std::string& path, py::object file, const DecompressOptions& options, const std::string& name,
             std::uint64_t offset, std::shared_ptr<FedSource> fed, int fd) {
    if (fed) {
      fed_ = std::move(fed);
      source_ = fed_;
    } else if (fd >= 0) {
      // A descriptor of our own: the caller's may be closed, and its number reused by another
      // file, before the last reference to this reader goes (an error's traceback keeps it).
      const int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (own < 0) throw_system_error("cannot duplicate its descriptor", name);
      source_ = std::make_shared<FdSource>(own, name, FdSource::Ownership::kOwned);
      source_->seek(offset);
    } else if (file.is_none()) {
      source_ = std::make_shared<FdSource>(path);
      if (offset > 0) source_->seek(offset);
    } else {
      python_file_.emplace(std::move(file), name);
      source_ = std::make_shared<PythonSource>(*python_file_);
    }
    decoder_ = std::make_unique<DecompressingSource>(*source_, options);
  }
  ~PullReader() {
    ReleasedGil release;  // the graph's threads may want the GIL to finish a read
    decoder_.reset();
  }

  // Up to `size` decoded bytes, fewer only at the end of the stream. What decoded before an
  // error is returned first; the error is raised by the next call.
  // `some`: as soon as there are any (at least one byte, fewer than `size` whenever fewer are
  // decoded yet): read1() and lines of a stream that arrives slowly.
  py::bytes read(std::size_t size, bool some) {
    // Decoded straight into a new bytes object, not yet shared with anyone (no copy).
    PyObject* bytes = PyBytes_FromStringAndSize(nullptr, static_cast<py::ssize_t>(size));
    if (!bytes) throw py::error_already_set();
    auto result = py::reinterpret_steal<py::object>(bytes);
    const std::size_t got = fill(reinterpret_cast<std::uint8_t*>(PyBytes_AS_STRING(bytes)), size, some);
    if (got < size) {
      PyObject* shrunk = result.release().ptr();
      if (_PyBytes_Resize(&shrunk, static_cast<py::ssize_t>(got)) != 0) throw py::error_already_set();
      result = py::reinterpret_steal<py::object>(shrunk);
    }
    return py::reinterpret_steal<py::bytes>(result.release());
  }
  // Into a writable bytes-like object, without a copy; returns the count. `some` as for read().
  std::size_t readinto(const py::buffer& target, bool some) {
    py::buffer_info info = target.request(/*writable=*/true);
    if (!PyBuffer_IsContiguous(info.view(), 'C')) throw py::value_error("readinto needs a contiguous buffer");
    return fill(static_cast<std::uint8_t*>(info.ptr), static_cast<std::size_t>(info.size * info.itemsize), some);
  }
  void cancel() {
    if (fed_) fed_->cancel();
    if (decoder_) decoder_->cancel();
  }
  // Stops the run and lets go of what it read (a descriptor, a file object) now, while references
  // to the reader may live on (an exception's traceback); reads then raise. A read in progress
  // on another thread (it is stopped) lets go as it returns.
  void close() {
    if (closed_) return;  // a second close(): the first lets go, or the read in progress does
    closed_ = true;
    cancel();
    if (reading_ == 0) let_go();
  }

 private:
  // The run joined and its source closed. With the GIL held (as reading_ and closed_ are): the
  // members are emptied before it is released, so a cancel() meanwhile finds nothing to stop.
  void let_go() {
    auto decoder = std::move(decoder_);
    auto source = std::move(source_);
    auto fed = std::move(fed_);
    {
      ReleasedGil release;  // the graph's threads may want the GIL to finish a read
      decoder.reset();
      source.reset();
      fed.reset();
    }
    python_file_.reset();
  }

  std::size_t fill(std::uint8_t* dst, std::size_t size, bool some) {
    if (closed_) throw py::value_error("I/O operation on a closed reader");
    ++reading_;
    struct Leave {
      PullReader& reader;
      ~Leave() {
        if (--reader.reading_ == 0 && reader.closed_) reader.let_go();
      }
    } leave{*this};
    std::size_t got = 0;
    // Reads of up to 16 MiB take milliseconds once the graph runs: on the calling thread, as
    // a thread of their own per read cost more than the read (0.124 against 0.074 s for the
    // Silesia tar in 1 MiB reads).
    // A file object may block (a socket, a pipe with an idle writer): its reads are always
    // interruptible.
    const bool interruptible = python_file_.has_value() || fed_ || size >= (16u << 20);
    run_released_with(python_file_, interruptible ? std::max<std::size_t>(size, kInterruptibleBytes) : 0,
                      [&](std::stop_token stop) {
                        const std::stop_callback on_stop(stop, [this] { cancel(); });
                        while (got < size) {
                          std::size_t n = 0;
                          try {
                            n = decoder_->read(dst + got, size - got);
                          } catch (...) {
                            if (got > 0) break;  // these bytes first: the source keeps the error for the next read
                            throw;
                          }
                          if (n == 0) break;
                          got += n;
                          if (some) break;
                        }
                      });
    return got;
  }

  std::optional<PythonFile> python_file_;
  std::shared_ptr<FedSource> fed_;
  std::shared_ptr<ByteSource> source_;
  std::unique_ptr<DecompressingSource> decoder_;
  int reading_ = 0;  // fill() calls in progress (threads take turns at the GIL between reads)
  bool closed_ = false;
};

const char* entry_type_name(TarEntryType type) {
  switch (type) {
    case TarEntryType::kFile:
      return "file";
    case TarEntryType::kHardLink:
      return "hardlink";
    case TarEntryType::kSymlink:
      return "symlink";
    case TarEntryType::kCharDevice:
      return "chardev";
    case TarEntryType::kBlockDevice:
      return "blockdev";
    case TarEntryType::kDirectory:
      return "directory";
    case TarEntryType::kFifo:
      return "fifo";
  }
  return "unknown";
}

// An entry as the tuple sluice/tar.py makes a TarMember of.
py::tuple entry_tuple(const TarEntry& e) {
  return py::make_tuple(py::bytes(e.path), entry_type_name(e.type), e.size, e.mode,
                        static_cast<double>(e.mtime_seconds) + e.mtime_nanoseconds / 1e9, e.uid, e.gid,
                        py::bytes(e.uname), py::bytes(e.gname), py::bytes(e.link_target), e.header_offset,
                        e.device_major, e.device_minor, e.sparse);
}

py::tuple stats_tuple(const TarStats& stats) {
  return py::make_tuple(stats.codec, stats.entries, stats.archive_bytes, stats.stored_bytes, stats.warnings,
                        stats.seconds);
}

const char* zip_type_name(ZipEntryType type) {
  switch (type) {
    case ZipEntryType::kDirectory:
      return "directory";
    case ZipEntryType::kSymlink:
      return "symlink";
    case ZipEntryType::kFile:
      break;
  }
  return "file";
}

// A zip entry as the tuple sluice/zip.py makes a ZipMember of.
// The entries of a tar archive fed to it in pieces (sluice.tar.entries, which reads the archive,
// through sluice.open where it is compressed): each feed() returns the entries that began in its
// piece, so that memory stays bounded however many the archive holds (tar_list holds them all).
// An error of the archive's comes after the entries before it: raised by the next call where the
// piece that met it began some.
class TarEntries final : public TarEntryHandler {
 public:
  explicit TarEntries(const std::string& name) : name_(name), reader_(*this, name) {}
  py::list feed(const py::buffer& data) {
    if (error_) std::rethrow_exception(error_);
    const Input input(data);
    if (!fed_) foreign_ = foreign_format(input.view().first(std::min<std::size_t>(input.view().size(), 4096)));
    fed_ = true;
    try {
      reader_.write(input.view());
    } catch (const Error& e) {
      if (begun_.empty()) throw_as_foreign(e);
      error_ = std::current_exception();
    }
    return take();
  }
  py::list finish() {
    if (error_) std::rethrow_exception(error_);
    try {
      reader_.finish();
    } catch (const Error& e) {
      throw_as_foreign(e);
    }
    return take();
  }
  void begin(const TarEntry& entry) override { begun_.push_back(entry); }
  void data(ByteView) override {}
  void end() override {}

 private:
  py::list take() {
    py::list out;
    for (const auto& entry : begun_) out.append(entry_tuple(entry));
    begun_.clear();
    return out;
  }
  // An archive that fails before its first entry and starts as a format sluice does not read is
  // named as what it is (as list_tar names it), not as a tar with a bad header.
  [[noreturn]] void throw_as_foreign(const Error& error) {
    if (reader_.entries() == 0 && !foreign_.empty()) {
      throw Error(ErrorKind::kCorruptData, "not a tar archive: this is " + foreign_, name_, 0);
    }
    throw error;
  }
  std::string name_;
  bool fed_ = false;
  std::string foreign_;  // what the archive's start is, if it is another format's
  std::vector<TarEntry> begun_;
  std::exception_ptr error_;
  TarReader reader_;  // last: it calls back into the members above
};

py::tuple zip_entry_tuple(const ZipEntry& e) {
  return py::make_tuple(py::bytes(e.path), zip_type_name(e.type), e.size, e.compressed_size, e.method_name(), e.crc32,
                        e.mode, e.mtime_seconds, e.header_offset, e.encrypted());
}

py::tuple zip_stats_tuple(const ZipStats& stats) {
  return py::make_tuple(stats.entries, stats.archive_bytes, stats.stored_bytes, stats.seconds);
}

}  // namespace
}  // namespace sluice::python

PYBIND11_MODULE(_native, m) {
  using namespace sluice;
  using namespace sluice::python;
  m.doc() = "The sluice library's calls; use the sluice package, not this module.";
  m.attr("version") = SLUICE_VERSION_STRING;
  // Registered as the module loads, so that it runs after the package's exit hooks (atexit runs
  // the last registered first), which close the open files through the gate still open.
  py::module_::import("atexit").attr("register")(py::cpp_function([] { GilGate::close(); }));
  ::pthread_atfork(nullptr, nullptr, [] { GilGate::forked(); });

  // The exception classes are the package's (python/sluice/__init__.py), handed over at import.
  m.def("_register_errors",
        [](py::object base, py::object corrupt, py::object truncated, py::object trailing_garbage, py::object limit,
           py::object usage) {
          exceptions.usage = usage.release().ptr();
          exceptions.base = base.release().ptr();
          exceptions.corrupt = corrupt.release().ptr();
          exceptions.truncated = truncated.release().ptr();
          exceptions.trailing_garbage = trailing_garbage.release().ptr();
          exceptions.limit = limit.release().ptr();
        });
  m.def("_register_system_errors", [](const std::map<int, py::object>& classes) {
    for (const auto& [number, type] : classes) exceptions.system[number] = py::object(type).release().ptr();
  });

  // A sluice::Error that escapes a call outside run_released() (options checked up front).
  py::register_exception_translator([](std::exception_ptr pending) {
    try {
      if (pending) std::rethrow_exception(pending);
    } catch (const Error& e) {
      py::object instance = to_python(e);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr());
    }
  });

  m.def("set_thread_pinning", &set_thread_pinning);
  m.def("formats", [] { return CodecRegistry::global().names(); });
  // The format a file's name says (".zst", ".zstd", ".tgz", ".tar.lz4", any case), as the command
  // line reads it; "" for none.
  m.def("format_for_name", [](const std::string& path) {
    const CodecRegistry& codecs = CodecRegistry::global();
    auto info = codecs.by_extension(path);
    if (!info) info = codecs.by_tar_name(path);
    return info ? info->name : std::string();
  });
  // A format sluice does not decode, by its first bytes or by a name ("an xz stream"); "" for none.
  m.def("foreign_format", [](const py::bytes& prefix, const std::string& name) {
    const std::string_view bytes = prefix;
    std::string found = foreign_format(ByteView(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
    return found.empty() ? foreign_format_by_name(name) : found;
  });
  // Keeps `object` alive until the process ends, past the interpreter's finalization (the engines
  // a forked child inherited: freeing them would join threads that stayed in the parent).
  m.def("keep_forever", [](const py::object& object) { object.inc_ref(); });
  m.def("format_info", [](const std::string& name) {
    const auto info = CodecRegistry::global().find(name);
    if (!info) {  // as the codecs' own refusal: UsageError (also a ValueError)
      std::string known;
      for (const std::string& each : CodecRegistry::global().names()) known += (known.empty() ? "" : ", ") + each;
      throw Error(ErrorKind::kUsage, "unknown format '" + name + "' (known: " + known + ")");
    }
    py::dict knobs;
    for (const auto& knob : info->knobs) knobs[py::str(knob.name)] = py::make_tuple(knob.values, knob.default_value);
    py::dict result;
    result["extension"] = info->extension;
    result["levels"] = py::make_tuple(info->min_level, info->max_level, info->default_level);
    result["knobs"] = knobs;
    result["backends"] = info->backends;
    return result;
  });

  m.def(
      "compress",
      [](const py::buffer& data, const std::string& format, int level, int threads, std::size_t chunk_size,
         const std::map<std::string, std::string>& knobs, const std::string& backend) {
        const Input input(data);
        CompressOptions options = compress_options(format, level, threads, chunk_size, knobs, backend);
        Buffer output;
        run_released(input.view().size(), [&](std::stop_token stop) {
          options.stop = stop;
          output = compress_buffer(input.view(), options);
        });
        return to_bytes(output);
      },
      py::arg("data"), py::arg("format"), py::arg("level"), py::arg("threads"), py::arg("chunk_size"), py::arg("knobs"),
      py::arg("backend"));

  m.def(
      "decompress",
      [](const py::buffer& data, const std::string& format, int threads, std::uint64_t max_output) {
        const Input input(data);
        DecompressOptions options = decompress_options(format, threads, max_output);
        std::uint64_t expected = 0;
        {
          ReleasedGil release;  // it may inflate a chunk to check a member's size
          expected = expected_output_bytes(input.view(), options);
        }
        // A small input that claims a small output is decoded on this thread (a thread of its own
        // costs more than such a call), where no signal was looked at: a 218 KB zstd bomb of zeros
        // that records no size went on to 6 GiB, 25 s, before KeyboardInterrupt. On the main thread
        // (the one signals reach) the sink looks for one every MiB of output; where a run's writer
        // thread writes it, the call stops at 1 MiB and is made again on a thread of its own.
        if (std::max<std::uint64_t>(input.view().size(), expected) < kInterruptibleBytes) {
          BytesSink output(expected);
          if (_PyOS_IsMainThread()) output.watch_signals(std::this_thread::get_id());
          run_released(0, [&](std::stop_token) {
            MemorySource source(input.view());
            try {
              decompress(source, output, options);
            } catch (const Error&) {
              if (!output.past_limit()) throw;
            }
          });
          if (!output.past_limit()) return output.finish();
        }
        BytesSink output(expected);
        run_released(kInterruptibleBytes, [&](std::stop_token stop) {
          options.stop = stop;
          MemorySource source(input.view());
          decompress(source, output, options);
        });
        return output.finish();
      },
      py::arg("data"), py::arg("format"), py::arg("threads"), py::arg("max_output"));

  // One stream compressed in parts (sluice/parts.h), for sluice.dask. A record is a tuple
  // (input bytes, output bytes, check).
  m.def(
      "compress_part",
      [](const py::buffer& history, const py::buffer& data, bool last, const std::string& format, int level,
         std::size_t chunk_size, const std::map<std::string, std::string>& knobs, const std::string& backend) {
        const Input before(history), input(data);
        CompressOptions options = compress_options(format, level, 1, chunk_size, knobs, backend);
        CompressedPart part;
        // On the calling thread (a part is at most tens of MiB): compress_part keeps its codec
        // context per thread, for the next part of a Dask worker's thread.
        run_released(0, [&](std::stop_token) { part = compress_part(before.view(), input.view(), last, options); });
        py::list records;
        for (const ChunkRecord& c : part.chunks) records.append(py::make_tuple(c.input_bytes, c.output_bytes, c.check));
        return py::make_tuple(to_bytes(part.bytes), records);
      },
      py::arg("history"), py::arg("data"), py::arg("last"), py::arg("format"), py::arg("level"), py::arg("chunk_size"),
      py::arg("knobs"), py::arg("backend"));
  // The same, the part written to the file `path` chunk by chunk (atomically: a temporary beside it,
  // renamed into place when complete, so that a task run twice leaves one whole part): a Dask
  // worker whose storage the client also reads hands back only (bytes written, records).
  m.def(
      "compress_part_to_file",
      [](const py::buffer& history, const py::buffer& data, bool last, const std::string& format, int level,
         std::size_t chunk_size, const std::map<std::string, std::string>& knobs, const std::string& backend,
         const std::string& path) {
        const Input before(history), input(data);
        CompressOptions options = compress_options(format, level, 1, chunk_size, knobs, backend);
        std::vector<ChunkRecord> chunks;
        std::uint64_t written = 0;
        run_released(0, [&](std::stop_token) {
          OutputFile out(path, /*overwrite=*/true);
          chunks = compress_part(before.view(), input.view(), last, options, [&](ByteView bytes) {
            out.write(bytes);
            written += bytes.size();
          });
          out.commit(/*durable=*/false);  // read back by the client, never the only copy
        });
        py::list records;
        for (const ChunkRecord& c : chunks) records.append(py::make_tuple(c.input_bytes, c.output_bytes, c.check));
        return py::make_tuple(written, records);
      },
      py::arg("history"), py::arg("data"), py::arg("last"), py::arg("format"), py::arg("level"), py::arg("chunk_size"),
      py::arg("knobs"), py::arg("backend"), py::arg("path"));
  // One chunk of a gzip member as sluice writes it by default: raw deflate from a chunk's start
  // to a sync flush that ends it (byte-aligned, the member goes on), at most `max_size` bytes
  // when inflated, after `window` (the output before it, for a piece that refers back; empty:
  // none). inflate_blocks: the end is proven, not guessed. Raises CorruptDataError where the
  // bytes are not such a chunk. For sluice.dask's partitions.
  m.def(
      "inflate_chunk",
      [](const py::buffer& data, std::size_t max_size, const py::buffer& window) {
        const Input input(data), before(window);
        thread_local Buffer out;
        std::size_t size = 0;
        try {
          ReleasedGil release;
          out.resize(max_size);
          size = inflate_blocks(input.view(), std::span<std::uint8_t>(out.data(), max_size), before.view());
        } catch (const Error& e) {
          raise(e);
        }
        return py::bytes(reinterpret_cast<const char*>(out.data()), size);
      },
      py::arg("data"), py::arg("max_size"), py::arg("window") = py::bytes());
  // gzip's CRC-32 of a bytes-like object, after `crc` (ISA-L's, the GIL released), and two of
  // them combined: sluice.dask checks a member inflated in partitions against its trailer.
  m.def(
      "crc32",
      [](const py::buffer& data, std::uint32_t crc) {
        const Input input(data);
        ReleasedGil release;
        return update_crc32(crc, input.view());
      },
      py::arg("data"), py::arg("crc") = 0);
  m.def("combine_crc32", &combine_crc32, py::arg("crc_a"), py::arg("crc_b"), py::arg("length_b"));
  m.def(
      "stream_framing",
      [](const std::string& format, int level, std::size_t chunk_size, const std::map<std::string, std::string>& knobs,
         const std::string& backend, const std::string& name, std::int64_t mtime,
         const std::vector<std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>>& records) {
        const CompressOptions options = compress_options(format, level, 1, chunk_size, knobs, backend);
        const StreamInfo info{name, mtime};
        std::vector<ChunkRecord> chunks;
        chunks.reserve(records.size());
        for (const auto& [in, out, check] : records) chunks.push_back({in, out, check});
        Buffer header, trailer;
        try {
          header = stream_header(options, info);
          trailer = stream_trailer(options, info, chunks);
        } catch (const Error& e) {
          raise(e);
        }
        return py::make_tuple(to_bytes(header), to_bytes(trailer));
      },
      py::arg("format"), py::arg("level"), py::arg("chunk_size"), py::arg("knobs"), py::arg("backend"), py::arg("name"),
      py::arg("mtime"), py::arg("records"));
  m.def("chunk_size", [](const std::string& format, int level, std::size_t chunk_size,
                         const std::map<std::string, std::string>& knobs, const std::string& backend) {
    std::unique_ptr<Codec> codec;
    try {
      codec = CodecRegistry::global().create(
          format, compress_options(format, level, 1, chunk_size, knobs, backend).codec_options);
    } catch (const Error& e) {
      raise(e);
    }
    return py::make_tuple(codec->options().chunk_bytes, codec->info().history_bytes);
  });

  // Many buffers in one graph run; each result is bytes or the exception of that item.
  m.def(
      "compress_many",
      [](const std::vector<py::buffer>& items, const std::string& format, int level, int threads,
         std::size_t chunk_size, const std::map<std::string, std::string>& knobs, const std::string& backend) {
        std::vector<Input> inputs;
        inputs.reserve(items.size());
        std::vector<ByteView> views;
        std::size_t total = 0;
        for (const auto& item : items) {
          inputs.emplace_back(item);
          views.push_back(inputs.back().view());
          total += views.back().size();
        }
        CompressOptions options = compress_options(format, level, threads, chunk_size, knobs, backend);
        (void)CodecRegistry::global().create(format, options.codec_options);  // bad options: ValueError
        std::vector<BufferResult> results;
        run_released(total, [&](std::stop_token stop) {
          options.stop = stop;
          results = compress_buffers(views, options);
        });
        py::list out;
        for (auto& result : results) {
          if (result.ok())
            out.append(to_bytes(result.output));
          else
            out.append(to_python(*result.error));
        }
        return out;
      },
      py::arg("items"), py::arg("format"), py::arg("level"), py::arg("threads"), py::arg("chunk_size"),
      py::arg("knobs"), py::arg("backend"));

  // Files: one graph run (compressing) or several files at once (decompressing), per-item
  // results as tuples (input, output, status, input bytes, output bytes, seconds, error,
  // warning); `progress(index, result)` after each item, on the calling thread's GIL.
  const auto run_files = [](bool compressing, const std::vector<std::pair<std::string, std::string>>& pairs,
                            CompressOptions compress, DecompressOptions decompress, FileBatchOptions batch,
                            const py::object& progress) {
    std::vector<FileJob> jobs;
    std::uint64_t total = 0;
    for (const auto& [input, output] : pairs) {
      // Every output's name is made from its input's (beside it or under output_dir): a device or
      // FIFO there is an existing file, never written into (FileJob::derived_output).
      jobs.emplace_back(input, output).derived_output = true;
      total += kInterruptibleBytes;  // files: always on a thread of their own, interruptible
    }
    const auto as_tuple = [](const ItemResult& item) {
      const char* status = item.status == ItemStatus::kDone     ? "done"
                           : item.status == ItemStatus::kFailed ? "failed"
                                                                : "skipped";
      return py::make_tuple(fs_str(item.input), fs_str(item.output), status, item.input_bytes, item.output_bytes,
                            item.seconds, item.error ? to_python(*item.error) : py::none(),
                            item.warning ? to_python(*item.warning) : py::none());
    };
    // A progress callback that raises (Ctrl-C inside it too) stops the batch, as Ctrl-C does: no
    // later file is written or has its input removed, and its exception is raised. (It was
    // kept for the end: 30 files compressed and their inputs removed after the first raised.)
    std::exception_ptr callback_error;
    std::stop_source stopping;
    if (!progress.is_none()) {
      batch.on_item_done = [&](std::size_t index, const ItemResult& item) {
        const AcquiredGil acquire(std::nothrow);
        if (!acquire.held() || callback_error) return;  // not held: the interpreter is exiting
        try {
          progress(index, as_tuple(item));
        } catch (...) {
          callback_error = std::current_exception();
          stopping.request_stop();
        }
      };
    }
    BatchReport report;
    run_released(total, [&](std::stop_token stop) {
      const std::stop_callback on_stop(stop, [&] { stopping.request_stop(); });
      compress.stop = stopping.get_token();
      decompress.stop = stopping.get_token();
      try {
        report = compressing ? compress_files(jobs, compress, batch) : decompress_files(jobs, decompress, batch);
      } catch (...) {
        if (!callback_error) throw;  // else the callback's exception is raised, below
      }
    });
    if (callback_error) std::rethrow_exception(callback_error);
    py::list results;
    for (const auto& item : report.items) results.append(as_tuple(item));
    return results;
  };
  m.def("compress_files",
        [run_files](const std::vector<std::pair<std::string, std::string>>& jobs, const std::string& format, int level,
                    int threads, std::size_t chunk_size, const std::map<std::string, std::string>& knobs,
                    const std::string& backend, bool overwrite, bool remove_inputs, bool store_name, bool fail_fast,
                    const py::object& progress) {
          CompressOptions options = compress_options(format, level, threads, chunk_size, knobs, backend);
          (void)CodecRegistry::global().create(format, options.codec_options);  // bad options: UsageError
          FileBatchOptions batch;
          batch.overwrite = overwrite;
          batch.remove_inputs = remove_inputs;
          batch.store_name = store_name;
          batch.fail_fast = fail_fast;
          batch.create_directories = true;
          return run_files(true, jobs, options, {}, batch, progress);
        });
  m.def("decompress_files",
        [run_files](const std::vector<std::pair<std::string, std::string>>& jobs, int threads, std::uint64_t max_output,
                    bool overwrite, bool remove_inputs, bool fail_fast, const py::object& progress) {
          FileBatchOptions batch;
          batch.overwrite = overwrite;
          batch.remove_inputs = remove_inputs;
          batch.fail_fast = fail_fast;
          batch.create_directories = true;
          DecompressOptions decompress = decompress_options("", threads, max_output);
          decompress.empty_input_is_empty = false;
          return run_files(false, jobs, {}, decompress, batch, progress);
        });
  m.def("decompressed_name", [](const std::string& path) -> py::object {
    const auto name = CodecRegistry::global().decompressed_name(path);
    return name ? py::object(fs_str(*name)) : py::none();
  });

  // ---- Tar archives (sluice/tar.py) ----
  m.def("tar_format_for", [](const std::string& path) { return tar_codec_for_path(path); });
  // The codec whose stream `prefix` starts, as decompression detects it; "" for none.
  m.def("detect_format", [](const py::bytes& prefix) {
    const std::string_view bytes = prefix;
    const auto found =
        CodecRegistry::global().detect(ByteView(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
    return found ? found->name : std::string();
  });
  py::class_<TarEntries>(m, "TarEntries")
      .def(py::init<std::string>(), py::arg("name"))
      .def("feed", &TarEntries::feed)
      .def("finish", &TarEntries::finish);

  // Creates an archive of `paths` at `archive` (a path: written to a temporary and renamed) or
  // into `file` (a binary file object). Returns the stats tuple.
  m.def("tar_create",
        [](const std::vector<std::string>& paths, const std::string& archive, py::object file,
           const std::string& format, int level, int threads, std::size_t chunk_size,
           const std::map<std::string, std::string>& knobs, const std::string& backend, const std::string& directory,
           const std::vector<std::string>& exclude, std::optional<std::int64_t> mtime, const std::string& owner,
           const std::string& group, bool numeric_owner, bool sparse, const py::object& on_entry) {
          CompressOptions compress = compress_options(format, level, threads, chunk_size, knobs, backend);
          if (!format.empty()) (void)CodecRegistry::global().create(format, compress.codec_options);  // bad options
          TarCreateOptions create;
          create.directory = directory;
          create.exclude = exclude;
          create.mtime_seconds = mtime;
          if (!owner.empty()) create.owner = parse_tar_owner(owner);
          if (!group.empty()) create.group = parse_tar_owner(group);
          create.numeric_owner = numeric_owner;
          create.sparse = sparse;
          std::exception_ptr callback_error;
          if (!on_entry.is_none()) {
            create.on_entry = [&](const TarEntry& entry) {
              call_back(on_entry, callback_error, [&] { return entry_tuple(entry); });
            };
          }
          TarStats stats;
          std::optional<PythonFile> python_file;
          if (!file.is_none()) python_file.emplace(file, archive.empty() ? "<file>" : archive);
          run_released_with(
              python_file, kInterruptibleBytes,
              [&](std::stop_token stop) {
                compress.stop = stop;  // and for a plain tar, the sink stops at its next write
                if (python_file) {
                  PythonSink sink(*python_file);
                  StoppableSink stoppable(sink, stop);
                  stats = create_tar(paths, stoppable, format, compress, create);
                  return;
                }
                OutputFile output(archive, /*overwrite=*/true);
                create.skip_files = output.own_files();
                StoppableSink stoppable(output, stop);
                stats = create_tar(paths, stoppable, format, compress, create);
                output.commit(false);
              },
              &callback_error);
          return stats_tuple(stats);
        });

  // Extracts `archive` (a path) or `file` (a binary file object) under `directory`. Returns
  // (stats, extracted, refused [(entry, why)], failed [(entry, error)], warnings, not found).
  m.def("tar_extract",
        [](const std::string& archive, py::object file, const std::string& directory,
           const std::vector<std::string>& members, const std::vector<std::string>& exclude, bool preserve_permissions,
           bool same_owner, bool devices, bool strict, int threads, std::uint64_t max_output,
           const py::object& on_entry) {
          TarExtractOptions extract;
          extract.directory = directory;
          extract.members = members;
          extract.exclude = exclude;
          extract.preserve_permissions = preserve_permissions;
          extract.same_owner = same_owner;
          extract.devices = devices;
          extract.strict = strict;
          extract.threads = threads;
          extract.max_output_bytes = max_output;
          // Collected on the extracting thread, handed to Python at the end (or as each entry lands).
          Listed<std::pair<TarEntry, std::string>> refused;
          Listed<std::pair<TarEntry, Error>> failed;
          Listed<std::string> warnings;
          std::exception_ptr callback_error;
          if (!on_entry.is_none()) {
            extract.on_entry = [&](const TarEntry& entry) {
              call_back(on_entry, callback_error, [&] { return entry_tuple(entry); });
            };
          }
          extract.on_refused = [&](const TarEntry& entry, const std::string& why) {
            refused.add({entry, why}, listed_bytes(entry, why));
          };
          extract.on_failed = [&](const TarEntry& entry, const Error& error) {
            failed.add({entry, error}, listed_bytes(entry, error.what()));
          };
          extract.on_warning = [&](const std::string& message) { warnings.add(message, message.size() + 32); };
          std::optional<PythonFile> python_file;
          if (!file.is_none()) python_file.emplace(file, archive.empty() ? "<file>" : archive);
          TarExtractStats stats;
          run_released_with(
              python_file, kInterruptibleBytes,
              [&](std::stop_token stop) {
                // The tar API takes no stop token: a stop closes the source under the reader instead.
                std::unique_ptr<ByteSource> source;
                if (python_file)
                  source = std::make_unique<PythonSource>(*python_file);
                else
                  source = std::make_unique<FdSource>(archive);
                StoppableSource stoppable(*source, stop);
                stats = extract_tar(stoppable, extract);
              },
              &callback_error);
          py::list refused_list, failed_list;
          for (const auto& [entry, why] : refused.items()) {
            refused_list.append(py::make_tuple(entry_tuple(entry), fs_str(why)));
          }
          for (const auto& [entry, error] : failed.items())
            failed_list.append(py::make_tuple(entry_tuple(entry), to_python(error)));
          std::vector<std::string> warning_list = listed_warnings(warnings, archive);
          const std::string name = printable_name(archive.empty() ? "<file>" : archive);
          if (refused.more() > 0)
            warning_list.push_back(name + ": " + std::to_string(refused.more()) + " more entries refused, not listed");
          if (failed.more() > 0)
            warning_list.push_back(name + ": " + std::to_string(failed.more()) + " more entries failed, not listed");
          return py::make_tuple(stats_tuple(stats), stats.extracted, refused_list, failed_list,
                                bytes_list(warning_list), bytes_list(stats.members_not_found));
        });

  // The entries of `archive` (a path) or `file`, as tuples, and the reader's warnings.
  m.def("tar_list", [](const std::string& archive, py::object file, int threads) {
    std::vector<TarEntry> entries;
    Listed<std::string> warnings;
    std::optional<PythonFile> python_file;
    if (!file.is_none()) python_file.emplace(file, archive.empty() ? "<file>" : archive);
    TarStats stats;
    run_released_with(python_file, kInterruptibleBytes, [&](std::stop_token stop) {
      std::unique_ptr<ByteSource> source;
      if (python_file)
        source = std::make_unique<PythonSource>(*python_file);
      else
        source = std::make_unique<FdSource>(archive);
      StoppableSource stoppable(*source, stop);
      stats = list_tar(
          stoppable, [&](const TarEntry& entry) { entries.push_back(entry); }, threads,
          [&](const std::string& message) { warnings.add(message, message.size() + 32); });
    });
    py::list out;
    for (const auto& entry : entries) out.append(entry_tuple(entry));
    return py::make_tuple(out, bytes_list(listed_warnings(warnings, archive)));
  });

  // ---- Zip archives (sluice/zip.py) ----
  // Creates an archive of `paths` at `archive` (written to a temporary and renamed) or into `file`
  // (a binary file object, written as a stream). Returns the stats tuple.
  m.def("zip_create",
        [](const std::vector<std::string>& paths, const std::string& archive, py::object file,
           const std::string& format, std::optional<int> level, int threads, std::size_t chunk_size,
           const std::string& directory, const std::vector<std::string>& exclude, std::optional<std::int64_t> mtime,
           const py::object& on_entry) {
          ZipCreateOptions create;
          create.codec = format;
          create.store = level == 0;         // zip -0
          create.level = level.value_or(0);  // None: the codec's default
          create.threads = threads;
          create.chunk_bytes = chunk_size;
          create.directory = directory;
          create.exclude = exclude;
          create.mtime_seconds = mtime;
          std::exception_ptr callback_error;
          if (!on_entry.is_none()) {
            create.on_entry = [&](const ZipEntry& entry) {
              call_back(on_entry, callback_error, [&] { return zip_entry_tuple(entry); });
            };
          }
          ZipStats stats;
          std::optional<PythonFile> python_file;
          if (!file.is_none()) python_file.emplace(file, archive.empty() ? "<file>" : archive);
          run_released_with(
              python_file, kInterruptibleBytes,
              [&](std::stop_token stop) {
                create.stop = stop;
                if (python_file) {
                  PythonSink sink(*python_file);
                  stats = create_zip(paths, sink, create);
                  return;
                }
                OutputFile output(archive, /*overwrite=*/true);
                create.skip_files = output.own_files();
                stats = create_zip(paths, output, create);
                output.commit(false);
              },
              &callback_error);
          return zip_stats_tuple(stats);
        });

  // Extracts the zip at `archive` under `directory`; with a `format`, each file member is
  // compressed to its own file instead (transcode_zip). Returns (stats, extracted, refused
  // [(entry, why)], failed [(entry, error)], not found).
  m.def("zip_extract", [](const std::string& archive, const std::string& directory,
                          const std::vector<std::string>& members, const std::vector<std::string>& exclude,
                          bool preserve_permissions, bool strict, int threads, const std::string& format, int level,
                          std::uint64_t max_output, const py::object& on_entry, bool keep_what_was_there) {
    ZipExtractOptions extract;
    extract.directory = directory;
    extract.keep_what_was_there = keep_what_was_there;
    extract.members = members;
    extract.exclude = exclude;
    extract.preserve_permissions = preserve_permissions;
    extract.strict = strict;
    extract.threads = threads;
    extract.max_output_bytes = max_output;
    Listed<std::pair<ZipEntry, std::string>> refused;
    Listed<std::pair<ZipEntry, Error>> failed;
    std::exception_ptr callback_error;
    if (!on_entry.is_none()) {
      extract.on_entry = [&](const ZipEntry& entry) {
        call_back(on_entry, callback_error, [&] { return zip_entry_tuple(entry); });
      };
    }
    extract.on_refused = [&](const ZipEntry& entry, const std::string& why) {
      refused.add({entry, why}, listed_bytes(entry, why));
    };
    extract.on_failed = [&](const ZipEntry& entry, const Error& error) {
      failed.add({entry, error}, listed_bytes(entry, error.what()));
    };
    std::optional<PythonFile> no_file;
    ZipExtractStats stats;
    run_released_with(
        no_file, kInterruptibleBytes,
        [&](std::stop_token stop) {
          extract.stop = stop;
          FdSource source(archive);
          if (format.empty()) {
            stats = extract_zip(source, extract);
          } else {
            CompressOptions compress;
            compress.codec = format;
            compress.codec_options.level = level;
            (void)CodecRegistry::global().create(format, compress.codec_options);  // bad options
            stats = transcode_zip(source, extract, compress);
          }
        },
        &callback_error);
    py::list refused_list, failed_list;
    for (const auto& [entry, why] : refused.items()) {
      refused_list.append(py::make_tuple(zip_entry_tuple(entry), fs_str(why)));
    }
    for (const auto& [entry, error] : failed.items())
      failed_list.append(py::make_tuple(zip_entry_tuple(entry), to_python(error)));
    return py::make_tuple(zip_stats_tuple(stats), stats.extracted, refused_list, failed_list,
                          bytes_list(stats.members_not_found), refused.more() + failed.more());
  });

  // The entries of the zip at `archive`, as tuples.
  m.def("zip_list", [](const std::string& archive) {
    std::vector<ZipEntry> entries;
    std::optional<PythonFile> no_file;
    run_released_with(no_file, 0, [&](std::stop_token) {
      FdSource source(archive);
      list_zip(source, [&](const ZipEntry& entry) { entries.push_back(entry); });
    });
    py::list out;
    for (const auto& entry : entries) out.append(zip_entry_tuple(entry));
    return out;
  });

  // Decodes every member of the zip at `archive`, checking sizes and CRC-32s. Returns (stats,
  // failed [(entry, error)]).
  m.def("zip_test", [](const std::string& archive, int threads) {
    Listed<std::pair<ZipEntry, Error>> failed;
    std::optional<PythonFile> no_file;
    ZipTestStats stats;
    run_released_with(no_file, kInterruptibleBytes, [&](std::stop_token stop) {
      FdSource source(archive);
      stats = test_zip(
          source, threads,
          [&](const ZipEntry& entry, const Error& error) {
            failed.add({entry, error}, listed_bytes(entry, error.what()));
          },
          stop);
    });
    py::list failed_list;
    for (const auto& [entry, error] : failed.items())
      failed_list.append(py::make_tuple(zip_entry_tuple(entry), to_python(error)));
    return py::make_tuple(zip_stats_tuple(stats), failed_list, failed.more());
  });

  // ---- Pipelines ----
  // Runs a pipeline file (or, with `is_text`, pipeline text); `plan_only` returns the plan that
  // `sluice run --dry-run` prints instead. Returns (items, manifest, seconds, problems); on_item(tuple)
  // as each output is published; problems: an untar stage's messages (pipeline.h's on_problem).
  m.def("run_pipeline",
        [](const std::string& source, bool is_text, const std::vector<std::string>& overrides, bool plan_only,
           const py::object& on_item) -> py::object {
          PipelineSpec spec =
              is_text ? parse_pipeline_text(source, "<text>", overrides) : parse_pipeline_file(source, overrides);
          if (plan_only) {
            validate_pipeline(spec);
            return py::str(describe_pipeline(spec));
          }
          const auto item_tuple = [](const PipelineItem& item) {
            return py::make_tuple(item.input, item.output, item.input_bytes, item.output_bytes, item.checksum);
          };
          std::exception_ptr callback_error;
          PipelineReport report;
          Listed<std::string> problems;
          std::optional<PythonFile> no_file;
          run_released_with(
              no_file, kInterruptibleBytes,
              [&](std::stop_token stop) {
                spec.stop = stop;
                report = sluice::run_pipeline(
                    spec,
                    [&](const PipelineItem& item) {
                      if (!on_item.is_none()) call_back(on_item, callback_error, [&] { return item_tuple(item); });
                    },
                    [&](const std::string& message) { problems.add(message, message.size() + sizeof(std::string)); });
              },
              &callback_error);
          py::list items;
          for (const auto& item : report.items) items.append(item_tuple(item));
          std::vector<std::string> listed = problems.items();
          if (problems.more() > 0) listed.push_back(std::to_string(problems.more()) + " more problems, not listed");
          return py::make_tuple(items, report.manifest, report.seconds, listed);
        });

  py::class_<FedSource, std::shared_ptr<FedSource>>(m, "FedSource")
      .def(py::init<std::string>(), py::arg("name"))
      .def("push", &FedSource::push)
      .def("end", &FedSource::end, py::arg("message") = "")
      .def("cancel", &FedSource::cancel);
  py::class_<PullReader>(m, "PullReader")
      .def(py::init([](const std::string& path, py::object file, const std::string& format, int threads,
                       std::uint64_t max_output, const std::string& name, std::uint64_t offset,
                       std::shared_ptr<FedSource> fed, int fd) {
             try {
               return std::make_unique<PullReader>(path, std::move(file),
                                                   decompress_options(format, threads, max_output), name, offset,
                                                   std::move(fed), fd);
             } catch (const Error& e) {
               raise(e);
               throw;
             }
           }),
           py::arg("path"), py::arg("file"), py::arg("format"), py::arg("threads"), py::arg("max_output"),
           py::arg("name"), py::arg("offset") = 0, py::arg("fed") = nullptr, py::arg("fd") = -1)
      .def("read", &PullReader::read, py::arg("size"), py::arg("some") = false)
      .def("readinto", &PullReader::readinto, py::arg("target"), py::arg("some") = false)
      .def("cancel", &PullReader::cancel)
      .def("close", &PullReader::close);

  py::class_<Decoder>(m, "Decoder")
      .def(py::init([](const std::string& format, int threads, std::uint64_t max_output, const std::string& name) {
             try {
               return std::make_unique<Decoder>(decompress_options(format, threads, max_output), name);
             } catch (const Error& e) {
               raise(e);
               throw;
             }
           }),
           py::arg("format"), py::arg("threads"), py::arg("max_output"), py::arg("name"))
      .def("push", &Decoder::push)
      .def("push_bounded", &Decoder::push_bounded)
      .def("needs_input", &Decoder::needs_input)
      .def("finish", &Decoder::finish)
      .def("drain", &Decoder::drain)
      .def("cancel", &Decoder::cancel);

  py::class_<Writer>(m, "Writer")
      .def(py::init([](const std::string& format, int level, int threads, std::size_t chunk_size,
                       const std::map<std::string, std::string>& knobs, const std::string& backend,
                       const std::string& name, std::int64_t mtime) {
             try {
               return std::make_unique<Writer>(compress_options(format, level, threads, chunk_size, knobs, backend),
                                               StreamInfo{name, mtime});
             } catch (const Error& e) {
               raise(e);
               throw;
             }
           }),
           py::arg("format"), py::arg("level"), py::arg("threads"), py::arg("chunk_size"), py::arg("knobs"),
           py::arg("backend"), py::arg("name"), py::arg("mtime"))
      .def("write", &Writer::push)
      .def("flush", &Writer::flush, py::arg("more"))
      .def("finish", &Writer::finish, py::arg("last"))
      .def("cancel", &Writer::cancel);
}
