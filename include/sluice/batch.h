// Many inputs in one run: a batch of files (or of in-memory buffers) compressed by ONE graph, so
// that small inputs go through whole, big ones are split into chunks, and all of them share the
// workers; the one big file no longer sets the pace. A failing item fails alone (unless asked to
// stop the batch) and every other item completes; each output is published as soon as its last
// chunk is written.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"

namespace sluice {

enum class ItemStatus {
  kDone,
  kFailed,
  kSkipped,  // not attempted: the batch stopped at an earlier failure (fail_fast)
};

struct ItemResult {
  std::string input;             // path, "-" for stdin, or the item's name
  std::string output;            // path; empty for stdout or memory
  ItemStatus status = ItemStatus::kSkipped;
  std::uint64_t input_bytes = 0;   // bytes read
  std::uint64_t output_bytes = 0;  // bytes written
  double seconds = 0;
  std::optional<Error> error;    // set when status is kFailed or kSkipped
  // Set for a done item whose input held something passed over: trailing garbage after the last
  // frame or member (everything before it was written; the input is kept even with remove_inputs).
  std::optional<Error> warning;
  bool ok() const { return status == ItemStatus::kDone; }
};

struct BatchReport {
  std::vector<ItemResult> items;  // one per input, in input order
  std::uint64_t input_bytes = 0;
  std::uint64_t output_bytes = 0;
  std::size_t failed = 0;   // items that failed or were skipped
  std::size_t worker_threads = 0;
  double seconds = 0;
};

// ---- In memory ----

struct BufferResult {
  Buffer output;
  std::uint64_t input_bytes = 0;
  std::optional<Error> error;  // the item failed; output is empty
  bool ok() const { return !error.has_value(); }
};

// Compresses each buffer to its own complete stream, all in one graph run. The results are in
// input order; a failing item (e.g. a user codec that throws) does not stop the others.
std::vector<BufferResult> compress_buffers(const std::vector<ByteView>& inputs, const CompressOptions& options);

// ---- Files ----

struct FileJob {
  FileJob() = default;
  FileJob(std::string input_path, std::string output_path = {}, std::optional<std::int64_t> output_mtime = {})
      : input(std::move(input_path)), output(std::move(output_path)), mtime_seconds(output_mtime) {}

  std::string input;   // a path, or "-" for standard input
  std::string output;  // a path, or empty for standard output
  // The output's modification time, instead of the input's (gunzip -N: the time the header
  // records); unset: the input's.
  std::optional<std::int64_t> mtime_seconds;
  // The output's name was made from the input's (sluice file -> file.gz), not given by the user:
  // an existing device or FIFO there (or a symbolic link to one) is an existing file like any
  // other, never written into. A named output writes into one in place (-o /dev/null).
  bool derived_output = false;
};

struct FileBatchOptions {
  bool overwrite = false;           // replace existing outputs (otherwise such an item fails)
  bool durable = false;             // fsync each output (and its directory) before publishing it
  bool remove_inputs = false;       // delete each input once its output is published durably
                                    // (an input that changed while read is kept; the item fails)
  bool store_name = true;           // record the input's name and mtime in the header (gzip)
  bool fail_fast = false;           // stop at the first failure; later items are skipped
  bool create_directories = false;  // create missing parent directories of outputs
  bool discard_output = false;      // decode and check only (sluice -t): write nothing
  // Called once per item as it completes (published, failed or skipped), never concurrently.
  std::function<void(std::size_t index, const ItemResult&)> on_item_done;
  // Called with the bytes read from the inputs so far, all items together (for progress
  // displays): uncompressed bytes when compressing, compressed bytes when decompressing. It counts
  // what the sources have given, not what has been written: it moves after every read() of a pipe
  // (a slow stdin), as chunks are cut from a mapped file, and while the first chunk of a slow
  // level is still being compressed (CompressOptions::on_read, DecompressOptions::on_read). It
  // ends at the sum of the items' input_bytes, or more where an item failed part-way or had
  // trailing garbage. Never called concurrently with itself or on_item_begin.
  std::function<void(std::uint64_t input_bytes)> on_progress;
  // Compressing: called by the writer with the input bytes whose compressed form has been written
  // so far, all items together (CompressOptions::on_progress). It lags on_progress by the chunks
  // in flight: with a mapped input and a slow level, by many seconds. Not called decompressing,
  // where decoding keeps up with reading.
  std::function<void(std::uint64_t input_bytes)> on_written;
  // Called as the batch begins an item (before opening its input), so that a display can name
  // the file being read. Decompressing, several items are read side by side: the latest begun.
  std::function<void(std::size_t index)> on_item_begin;
};

// Compresses every job in one graph run. Outputs are written atomically (temporary file, then
// rename) and carry the input's permissions and times.
BatchReport compress_files(const std::vector<FileJob>& jobs, const CompressOptions& options,
                           const FileBatchOptions& batch = {});

// Decompresses every job, several files at once (each file is decoded as a stream). Outputs
// going to standard output are written one after another in job order. A file with trailing
// garbage is done with a warning (ItemResult::warning), its output published.
BatchReport decompress_files(const std::vector<FileJob>& jobs, const DecompressOptions& options,
                             const FileBatchOptions& batch = {});

}  // namespace sluice
