// sluice._native: the library's calls for the Python package (python/sluice/__init__.py wraps
// them in the API users call). Every call that does work releases the GIL, so Python threads run
// side by side; a long one runs on a thread of its own while the caller's thread checks for
// signals every 50 ms, so that Ctrl-C stops the graph (its stop token) and raises
// KeyboardInterrupt within a fraction of a second. sluice::Error becomes sluice.Error (an
// OSError) or one of its subclasses, with the kind, path and offset as attributes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <malloc.h>

#include <chrono>
#include <future>
#include <mutex>
#include <stop_token>
#include <thread>

#include "sluice/batch.h"
#include "sluice/codec.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/io.h"
#include "sluice/stream.h"
#include "sluice/version.h"

namespace py = pybind11;

namespace sluice::python {
namespace {

// Inputs at least this large run on a thread of their own, interruptible; smaller ones finish
// in milliseconds and run on the caller's thread (with the GIL released).
constexpr std::size_t kInterruptibleBytes = 1 << 20;

// The exception classes, made once when the module loads (SluiceError(OSError) and its kinds).
struct Exceptions {
  PyObject* usage = nullptr;
  PyObject* base = nullptr;
  PyObject* corrupt = nullptr;
  PyObject* trailing_garbage = nullptr;
  PyObject* limit = nullptr;
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
  if (error.kind() == ErrorKind::kCorruptData) type = exceptions.corrupt;
  if (error.kind() == ErrorKind::kTrailingGarbage) type = exceptions.trailing_garbage;
  if (error.kind() == ErrorKind::kLimit) type = exceptions.limit;
  // A name in angle brackets ("<memory>", "<stdin>") is no file.
  const bool named = !error.path().empty() && error.path().front() != '<';
  const std::string message =
      named ? std::string(error.what())
            : error.detail() + (error.offset() ? " (at byte " + std::to_string(*error.offset()) + ")" : std::string());
  return py::handle(type)(message, kind_name(error.kind()), named ? py::object(py::str(error.path())) : py::none(),
                          error.offset() ? py::object(py::int_(*error.offset())) : py::none(), error.detail());
}

void raise(const Error& error) {
  py::object instance = to_python(error);
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(instance.ptr())), instance.ptr());
  throw py::error_already_set();
}

// Runs `work(stop)` without the GIL. Large work runs on a thread of its own while this thread
// checks for signals: on one (Ctrl-C), the stop is requested, the work ends within a chunk, and
// the signal's exception (KeyboardInterrupt) is raised; no output of the stopped work is kept.
template <typename Work>
void run_released(std::size_t work_bytes, Work&& work) {
  std::exception_ptr failure;
  if (work_bytes < kInterruptibleBytes) {
    {
      py::gil_scoped_release release;
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
      py::gil_scoped_release release;
      std::thread worker([&] {
        try {
          work(stop.get_token());
        } catch (...) {
          failure = std::current_exception();
        }
        finished.set_value();
      });
      while (done.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout && !interrupted) {
        py::gil_scoped_acquire acquire;
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

DecompressOptions decompress_options(const std::string& format, int threads, std::uint64_t max_output) {
  DecompressOptions options;
  options.codec = format;
  options.threads = threads;
  options.max_output_bytes = max_output;
  return options;
}

// Collects what a streaming object writes (on the graph's writer thread) for the Python side to
// take (drain) between calls.
class DrainSink final : public ByteSink {
 public:
  void write(ByteView bytes) override {
    std::lock_guard lock(mutex_);
    buffer_.append(bytes);
  }
  const std::string& name() const override { return name_; }
  py::bytes drain() {
    Buffer taken;
    {
      std::lock_guard lock(mutex_);
      taken = std::move(buffer_);
    }
    return to_bytes(taken);
  }

 private:
  std::mutex mutex_;
  Buffer buffer_;
  std::string name_ = "<python>";
};

// sluice.open underneath: bytes pushed into a streaming object (a Compressor when writing, a
// Decompressor when reading), its output drained after each call. Ctrl-C during a call cancels
// the stream, so that a push waiting for the graph returns at once.
template <typename Stream>
class Pushed {
 public:
  template <typename... Args>
  explicit Pushed(Args&&... args) : stream_(sink_, std::forward<Args>(args)...) {}
  py::bytes push(const py::buffer& data) {
    const Input input(data);
    run_released(input.view().size(), [&](std::stop_token stop) {
      const std::stop_callback on_stop(stop, [this] { stream_.cancel(); });
      stream_.write(input.view());
    });
    return sink_.drain();
  }
  py::bytes finish() {
    run_released(kInterruptibleBytes, [&](std::stop_token stop) {
      const std::stop_callback on_stop(stop, [this] { stream_.cancel(); });
      stream_.finish();
    });
    return sink_.drain();
  }
  void cancel() { stream_.cancel(); }
  // What came out before a call raised (the good prefix before an error).
  py::bytes drain() { return sink_.drain(); }

 private:
  DrainSink sink_;
  Stream stream_;
};
using Writer = Pushed<Compressor>;
using Reader = Pushed<Decompressor>;

}  // namespace
}  // namespace sluice::python

PYBIND11_MODULE(_native, m) {
  using namespace sluice;
  using namespace sluice::python;
  m.doc() = "The sluice library's calls; use the sluice package, not this module.";
  // Each call makes its codec's contexts and chunk buffers (hundreds of KB to MBs) and frees them.
  // glibc raises its mmap threshold after such a block is freed, so later ones come from the heap,
  // where threads' frees fragment it: RSS grew about 2 KB a call over 25,000 small gzip
  // compressions in C++, and stayed at 6 MiB with a fixed threshold, which keeps large blocks
  // mmapped and returned to the system.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  m.attr("version") = SLUICE_VERSION_STRING;

  // The exception classes are the package's (python/sluice/__init__.py), handed over at import.
  m.def("_register_errors",
        [](py::object base, py::object corrupt, py::object trailing_garbage, py::object limit, py::object usage) {
          exceptions.usage = usage.release().ptr();
          exceptions.base = base.release().ptr();
          exceptions.corrupt = corrupt.release().ptr();
          exceptions.trailing_garbage = trailing_garbage.release().ptr();
          exceptions.limit = limit.release().ptr();
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

  m.def("formats", [] { return CodecRegistry::global().names(); });
  m.def("format_info", [](const std::string& name) {
    const auto info = CodecRegistry::global().find(name);
    if (!info) throw py::value_error("unknown format '" + name + "'");
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
        Buffer output;
        run_released(input.view().size(), [&](std::stop_token stop) {
          options.stop = stop;
          output = decompress_buffer(input.view(), options);
        });
        return to_bytes(output);
      },
      py::arg("data"), py::arg("format"), py::arg("threads"), py::arg("max_output"));

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
      jobs.push_back({input, output});
      total += kInterruptibleBytes;  // files: always on a thread of their own, interruptible
    }
    const auto as_tuple = [](const ItemResult& item) {
      const char* status = item.status == ItemStatus::kDone     ? "done"
                           : item.status == ItemStatus::kFailed ? "failed"
                                                                : "skipped";
      return py::make_tuple(item.input, item.output, status, item.input_bytes, item.output_bytes, item.seconds,
                            item.error ? to_python(*item.error) : py::none(),
                            item.warning ? to_python(*item.warning) : py::none());
    };
    std::exception_ptr callback_error;
    if (!progress.is_none()) {
      batch.on_item_done = [&](std::size_t index, const ItemResult& item) {
        py::gil_scoped_acquire acquire;
        if (callback_error) return;
        try {
          progress(index, as_tuple(item));
        } catch (...) {
          callback_error = std::current_exception();
        }
      };
    }
    BatchReport report;
    run_released(total, [&](std::stop_token stop) {
      compress.stop = stop;
      decompress.stop = stop;
      report = compressing ? compress_files(jobs, compress, batch) : decompress_files(jobs, decompress, batch);
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
          return run_files(false, jobs, {}, decompress_options("", threads, max_output), batch, progress);
        });
  m.def("decompressed_name", [](const std::string& path) { return CodecRegistry::global().decompressed_name(path); });

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
      .def("finish", &Writer::finish)
      .def("cancel", &Writer::cancel);

  py::class_<Reader>(m, "Reader")
      .def(py::init([](const std::string& format, int threads, std::uint64_t max_output, const std::string& name) {
             try {
               return std::make_unique<Reader>(decompress_options(format, threads, max_output), name);
             } catch (const Error& e) {
               raise(e);
               throw;
             }
           }),
           py::arg("format"), py::arg("threads"), py::arg("max_output"), py::arg("name"))
      .def("feed", &Reader::push)
      .def("finish", &Reader::finish)
      .def("drain", &Reader::drain)
      .def("cancel", &Reader::cancel);
}
