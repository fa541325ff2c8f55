// The decompression graph, the compression graph reversed:
//
//   reader (splits) -> limiter -> decoder (parallel) -> ordering (sequencer) -> writer
//      ^                                                                          |
//      +------------------------- decrement (one piece retired) ------------------+
//
// The reader maps the compressed file (or reads a pipe into shared blocks) and asks the codec's
// splitter where the next independently decodable unit ends (a zstd frame, an lz4 block, a
// size-annotated gzip member); units, views into the mapping or block, are decoded on every
// worker and written in order. A stream the splitter cannot cut (or a
// codec without a splitter) goes serial from that point: the reader passes raw pieces along, the
// writer feeds them to the codec's streaming decoder, and the decoder's output goes to the sink
// through a writing thread of its own (engine/overlapped_sink.h), so reading, decoding and writing
// overlap. Memory is bounded by the in-flight limit times the unit bounds, never by a size the
// stream claims.
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/enumerable_thread_specific.h>
#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include "core/first_error.h"
#include "engine/caller_context.h"
#include "engine/chunk.h"
#include "engine/ordered_graph.h"
#include "engine/overlapped_sink.h"
#include "engine/run_ends.h"
#include "engine/thread_arena.h"
#include "sluice/compress.h"
#include "sluice/decompress.h"
#include "sluice/error.h"
#include "sluice/flow.h"

namespace sluice {
namespace {

using detail::Chunk;
using detail::ChunkPool;
using detail::FirstError;
using detail::wait_for_source;
using Piece = detail::Chunk::Piece;
namespace flow = tbb::flow;

// What decompress() tells the format from (at most), and the size of the reader's reads.
constexpr std::size_t kReadBytes = 1024 * 1024;
// A stream whose whole input is at most this is decoded on the calling thread, without the graph
// (run_decompression in the caller, DecompressOptions::small_inputs_in_caller): decoding 64 KiB costs
// less than starting the graph's workers.
constexpr std::size_t kSmallInputBytes = 64 * 1024;
static_assert(kSmallInputBytes < kReadBytes, "the first read must show that the stream ended");
// From a pipe, the reader reads into blocks of this size (two huge pages) and cuts pieces as views
// into them; only the unit that does not fit in what is left of a block is copied, into the next.
constexpr std::size_t kBlockBytes = 4 * 1024 * 1024;
// A regular file is mapped instead, window by window (no copy at all). The next window starts at
// the first unconsumed byte, so a unit that ran past the end of one is whole in the next.
constexpr std::size_t kWindowBytes = 16 * 1024 * 1024;
// No splitter asks for more than its unit bound (16 MiB and a little); this is the backstop.
constexpr std::size_t kMaxBufferedBytes = 64 * 1024 * 1024;
constexpr std::size_t kPiecesPerThread = 3;
// A stream read as it is written (a pipe, a socket) whose writer sends nothing for this long is
// decoded as it arrives from then on ("live"): on the calling thread, each read's output written
// out before the next read waits. Long enough that a fast writer (cat, a local program) does not
// look idle: decoding live is serial.
constexpr std::chrono::milliseconds kIdleWait{50};
// A prefix this long tells every built-in format by its magic (or tells that it has none), so a
// live stream's start waits for no more than this before its format is told; unless it holds
// only skippable frames so far (detection_may_change): the first frame after them tells.
constexpr std::size_t kFormatBytes = 64;

std::string known_formats() { return fmt::format("{}", fmt::join(CodecRegistry::global().names(), ", ")); }

// Read blocks, recycled: a block returns here when the reader has moved past it and the last piece
// cut from it has retired, so their number is bounded by the pieces in flight plus one.
class BlockPool {
 public:
  // A block holding `adopt`'s bytes, with room for at least `capacity_bytes`.
  std::shared_ptr<Buffer> acquire(std::size_t capacity_bytes, Buffer adopt = {}) {
    std::unique_ptr<Buffer> buffer;
    if (adopt.capacity() >= capacity_bytes) {
      buffer = std::make_unique<Buffer>(std::move(adopt));
    } else {
      {
        std::lock_guard lock(mutex_);
        if (!free_.empty()) {
          buffer = std::move(free_.back());
          free_.pop_back();
        }
      }
      if (!buffer) buffer = std::make_unique<Buffer>();
      buffer->clear();
      buffer->reserve(capacity_bytes);
      buffer->append(adopt.view());
    }
    return {buffer.release(), [this](Buffer* block) {
              std::lock_guard lock(mutex_);
              free_.emplace_back(block);
            }};
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<Buffer>> free_;
};

// The start of a stream, where its format is told from: a regular file larger than one read is
// mapped, and its first window is the start (the mapping was made for the reader anyway; reading
// the first 1 MiB as well cost a page fault per page and a copy, for bytes thrown away); anything
// else is read, and the read becomes the reader's first block.
struct StreamStart {
  Buffer read;
  bool live = false;  // read from a writer that went quiet before kReadBytes came (kIdleWait)
  std::optional<detail::FileMapper> mapper;
  std::shared_ptr<detail::FileWindow> window;
  std::uint64_t file_base = 0;  // file offset of the stream's first byte, when mapped

  ByteView prefix() const {
    if (!window) return read.view();
    const ByteView bytes = window->bytes();
    return bytes.first(std::min(bytes.size(), kReadBytes));
  }
};

// Whether `prefix` is enough to decode a stream in `codec` (named, or else told from its magic).
}  // namespace

bool detail::format_told(ByteView prefix, const std::string& codec) {
  if (!codec.empty()) return true;
  return !detection_may_change(prefix) &&
         (prefix.size() >= kFormatBytes || CodecRegistry::global().detection_settled(prefix));
}

// The format of a stream that starts with `prefix`, unless `codec` names it. Throws kCorruptData
// for input in no known format.
std::string detail::detect_format(ByteView prefix, const std::string& codec) {
  if (!codec.empty()) return codec;
  if (const auto info = CodecRegistry::global().detect(prefix)) return info->name;
  if (prefix.empty()) throw Error(ErrorKind::kCorruptData, "empty input: not compressed data", {}, 0);
  // Name what it is where we can tell ("bad magic" leaves a user with an .xz wondering).
  const std::string foreign = foreign_format(prefix);
  throw Error(ErrorKind::kCorruptData,
              foreign.empty() ? fmt::format("not compressed data in a known format ({})", known_formats())
                              : fmt::format("not compressed data in a known format: {}, which sluice does not "
                                            "decode (it reads {})",
                                            foreign, known_formats()),
              {}, 0);
}

// The codec a decompression uses: named or detected, with the backend asked for.
std::unique_ptr<Codec> detail::make_decoding_codec(const std::string& name, const DecompressOptions& options) {
  CodecOptions codec_options;
  if (const auto backend = options.backends.find(name); backend != options.backends.end()) {
    codec_options.backend = backend->second;
  }
  return CodecRegistry::global().create(name, codec_options);
}

namespace {

using detail::detect_format;
using detail::format_told;
using detail::make_decoding_codec;

StreamStart start_stream(ByteSource& source, const std::string& codec, const std::stop_token& stop) {
  StreamStart start;
  const auto file = source.file();
  if (file && detail::FileMapper::enabled()) {
    const std::uint64_t size = file->size;
    const std::uint64_t base = file->position;
    if (size > base + kReadBytes) {
      start.mapper.emplace(file->descriptor, size);
      start.window = start.mapper->map(base, kReadBytes, kWindowBytes);
      if (start.window) {
        start.file_base = base;
        return start;
      }
      start.mapper.reset();
    }
  }
  start.read.reserve(kReadBytes);
  std::size_t size = 0;
  while (size < kReadBytes) {
    // A writer that went quiet: what came is decoded now, and the rest as it comes.
    if (size > 0 && format_told({start.read.data(), size}, codec) && !source.wait_readable(kIdleWait)) {
      start.live = true;
      break;
    }
    if (!wait_for_source(source, [&] { return stop.stop_requested(); }))
      std::rethrow_exception(detail::stopped_error());
    const std::size_t got = source.read(start.read.data() + size, kReadBytes - size);
    if (got == 0) break;
    size += got;
  }
  start.read.resize(size);
  return start;
}

// Copies what is left of `source` to `sink`; returns the bytes copied.
std::uint64_t copy_rest(ByteSource& source, ByteSink& sink) {
  std::uint64_t copied = 0;
  Buffer block(kReadBytes);
  block.resize(kReadBytes);
  while (const std::size_t got = source.read(block.data(), block.size())) {
    sink.write(block.view().first(got));
    copied += got;
  }
  return copied;
}

// Copies a stream in no known format to `sink` as it is (DecompressOptions::pass_through): the
// bytes already read for the format check, then the rest. Returns the bytes copied.
std::uint64_t copy_through(ByteSource& source, StreamStart start, ByteSink& sink) {
  std::uint64_t copied = 0;
  if (start.window) {
    // Mapped: nothing was read from the source, whose position is still the stream's start.
    start.window.reset();
    start.mapper.reset();
  } else {
    sink.write(start.read.view());
    copied += start.read.size();
  }
  return copied + copy_rest(source, sink);
}

// What follows the last unit of a stream where `error` (kTrailingGarbage) says it is in no known
// format, copied to `sink` as it is (DecompressOptions::pass_through, as gzip -dcf and zstd -dcf
// do): from the error's offset to the end, read again by position. `stream_file` is the file
// behind the source where the stream started; without one (a pipe) those bytes were read and are
// gone: nullopt, nothing copied. Returns the bytes copied.
std::optional<std::uint64_t> copy_after_stream(ByteSource& source, const std::optional<SourceFile>& stream_file,
                                               const Error& error, ByteSink& sink) {
  if (!stream_file || !error.offset()) return std::nullopt;
  source.seek(stream_file->position + *error.offset());
  return copy_rest(source, sink);
}

// A source read once (a pipe) with the last bytes read kept, so that what follows a stream where
// DecompressOptions::pass_through copies it (trailing data, as gzip -dcf and zstd -dcf copy it)
// is still in hand after the decoders read past it: the bytes read ahead of the stream's end.
class TailKeepingSource final : public ByteSource {
 public:
  explicit TailKeepingSource(ByteSource& inner) : inner_(inner) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    const std::size_t n = inner_.read(dst, max_bytes);
    if (n == 0) return 0;
    std::vector<std::uint8_t> block = std::move(spare_);  // the block last dropped, its memory reused
    block.assign(dst, dst + n);
    kept_.push_back(std::move(block));
    kept_bytes_ += n;
    read_bytes_ += n;
    while (kept_bytes_ - kept_.front().size() >= kKeptBytes) {
      kept_bytes_ -= kept_.front().size();
      spare_ = std::move(kept_.front());
      kept_.pop_front();
    }
    return n;
  }
  const std::string& name() const override { return inner_.name(); }
  bool wait_readable(std::chrono::milliseconds timeout) override { return inner_.wait_readable(timeout); }
  bool take_flush_point() override { return inner_.take_flush_point(); }

  std::uint64_t read_bytes() const { return read_bytes_; }

  // Writes to `sink` what was read from stream offset `offset` on, if it is still kept; false if
  // not (nothing written).
  bool copy_kept_from(std::uint64_t offset, ByteSink& sink) const {
    std::uint64_t at = read_bytes_ - kept_bytes_;  // the first kept byte's offset
    if (offset < at || offset > read_bytes_) return false;
    for (const auto& block : kept_) {
      const std::uint64_t end = at + block.size();
      if (end > offset) {
        const std::size_t skip = offset > at ? static_cast<std::size_t>(offset - at) : 0;
        sink.write(ByteView(block.data() + skip, block.size() - skip));
      }
      at = end;
    }
    return true;
  }

 private:
  // More than the decoders read past a stream's end before they find it ends: the reader's block
  // and a splitter's look for the next gzip member (kMaxGuessedMemberBytes). Measured with 50 MB
  // after the stream: 40 KB (lz4) to 1.6 MB (one member) past it, 4.6 MB after two members at -j2.
  static constexpr std::uint64_t kKeptBytes = 16u << 20;
  ByteSource& inner_;
  std::deque<std::vector<std::uint8_t>> kept_;
  std::vector<std::uint8_t> spare_;
  std::uint64_t kept_bytes_ = 0;
  std::uint64_t read_bytes_ = 0;
};

// Cuts the compressed stream into pieces. Runs serially: the decompression graph's input_node,
// pulling from a source; or DecompressNode's cutter, fed the caller's pieces (feed()).
class PieceReader {
 public:
  PieceReader(ByteSource& source, StreamStart start, const CodecInfo& codec, StreamSplitter* splitter, ChunkPool& pool,
              BlockPool& blocks, FirstError& errors)
      : source_(&source),
        name_(source.name()),
        codec_(codec),
        splitter_(splitter),
        serial_(splitter == nullptr),
        pool_(pool),
        blocks_(blocks),
        errors_(errors) {
    if (start.window) {  // pieces are views of the file's windows
      mapped_file_ = start.mapper->file();
      mapper_.emplace(std::move(*start.mapper));
      window_ = std::move(start.window);
      file_base_ = start.file_base;
      bytes_ = window_->bytes();
      return;
    }
    // The first block is the detection read itself: a small stream never touches a full block.
    eof_ = start.read.empty();
    block_ = blocks_.acquire(0, std::move(start.read));
    bytes_ = block_->view();
  }

  // Without a source: the bytes come from feed().
  PieceReader(std::string name, const CodecInfo& codec, StreamSplitter* splitter, ChunkPool& pool, BlockPool& blocks,
              FirstError& errors)
      : name_(std::move(name)),
        codec_(codec),
        splitter_(splitter),
        serial_(splitter == nullptr),
        pool_(pool),
        blocks_(blocks),
        errors_(errors) {}

  // Once `failed` is set (by the unit decoders: a speculative unit was no unit), the rest of the
  // stream is cut into serial pieces: it is decoded in order from there anyway, and guessing on
  // would cut it at every false candidate (a stored block of "00 00 ff ff" repeated: one unit
  // every few bytes). `in_callers_graph`: the threads are not the reader's to unpin.
  void watch_guesses(const std::atomic<bool>* failed, bool in_callers_graph = false) {
    guesses_failed_ = failed;
    in_callers_graph_ = in_callers_graph;
  }

  // In the graph: where the source has nothing to read for kIdleWait (a pipe whose writer went
  // quiet), next() returns null at once instead of waiting in the graph's thread, and paused()
  // says so; the caller finishes the graph and goes on with go_live(). Not inside a marker
  // being skipped: the serial decoder could not start in its middle.
  void pause_when_idle() { pause_when_idle_ = source_ != nullptr; }
  bool paused() const { return paused_; }

  // From here on reads wait for the source, and the stream is cut into serial pieces of whatever
  // each read brings, from the first cut where the streaming decoder can take over (at once
  // where the splitter says it can: StreamSplitter::serial_may_start; units until then): for a
  // stream decoded as it arrives, one piece after another.
  void go_live() {
    pause_when_idle_ = paused_ = waiting_ = false;
    live_ = true;
  }

  // Tells `on_read` (when it holds a function) the bytes taken from the source so far, as they are
  // read or cut from a mapping (DecompressOptions::on_read).
  void report_reads(const std::function<void(std::uint64_t)>* on_read) { on_read_ = on_read; }

  // The next bytes of the stream (`last`: and then it ends); take the pieces with next_fed()
  // until it returns null. `bytes` must stay valid until then.
  void feed(ByteView bytes, bool last) {
    fed_ = bytes;
    fed_last_ = last;
    waiting_ = false;
  }

  // The next piece cut from what was fed; null when more must be fed (or the stream is over).
  // The stream's last piece is marked `last`; a failure is a piece carrying the error.
  Chunk* next_fed() {
    if (done_) return nullptr;
    Chunk* chunk = nullptr;
    try {
      chunk = next_piece();
    } catch (...) {
      done_ = true;
      chunk = piece(Piece::kMarker, {}, offset_, 0);
      chunk->error = detail::current_error_with_context(name_, offset_);
    }
    if (!chunk && done_) chunk = piece(Piece::kMarker, {}, offset_, 0);  // the end, for the writer
    if (chunk) chunk->last = done_;
    return chunk;
  }

  Chunk* next(tbb::flow_control& control) {
    Chunk* chunk = next();
    if (!chunk) control.stop();
    return chunk;
  }

  // The next piece; null at the end (or after a failure).
  Chunk* next() {
    Chunk* chunk = nullptr;
    if (!errors_.failed() && !done_) {
      try {
        chunk = next_piece();
      } catch (...) {
        // The failure goes down the graph in order, after the pieces before it.
        done_ = true;
        chunk = piece(Piece::kMarker, {}, offset_, 0);
        chunk->error = detail::current_error_with_context(name_, offset_);
      }
    }
    progressed();
    return chunk;
  }

  std::uint64_t bytes_read() const { return offset_ + buffered(); }

  // Fed: whether the stream is over (its last piece cut). Until then, next_fed() returns null
  // only once it has taken all it was fed.
  bool finished() const { return done_; }

  // Throws if the input was mapped and lost pages to truncation while it was read.
  void check_mapping() const {
    if (mapped_file_ && mapped_file_->lost_pages.load(std::memory_order_acquire)) {
      detail::throw_lost_pages(*mapped_file_, name_);
    }
  }

 private:
  std::size_t buffered() const { return bytes_.size() - position_; }
  ByteView view() const { return bytes_.subspan(position_); }

  // Calls on_read_ if more was taken from the source: from a mapping, what was cut into pieces
  // (a window maps ahead of the decoding); from reads, all that was read.
  void progressed() {
    if (!on_read_ || !*on_read_) return;
    const std::uint64_t bytes = window_ ? offset_ : offset_ + buffered();
    if (bytes > reported_) (*on_read_)(reported_ = bytes);
  }

  Chunk* next_piece() {
    for (;;) {
      if (!serial_ && guesses_failed_ && guesses_failed_->load(std::memory_order_relaxed)) go_serial();
      if (live_ && !serial_ && skip_bytes_ == 0 && (offset_ == 0 || splitter_->serial_may_start())) go_serial();
      if (serial_) return next_serial_piece();
      if (skip_bytes_ > 0) {
        const std::size_t skipped = std::min<std::uint64_t>(skip_bytes_, buffered());
        consume(skipped);
        skip_bytes_ -= skipped;
        if (skip_bytes_ > 0 && !fill()) {
          if (waiting_) return nullptr;
          if (!skip_may_end_early_) throw truncated(skip_start_);
          skip_bytes_ = 0;
        }
        continue;
      }
      if (buffered() == 0 && !fill(/*may_pause=*/true)) {
        if (waiting_) return nullptr;
        done_ = true;
        // After speculative units the writer ends the stream: its serial decoder, which may have
        // taken over, or else the verifier's, judges whether the stream is complete.
        if (speculated_) return piece(Piece::kSerialEnd, {}, offset_, 0);
        splitter_->finish(offset_);
        return nullptr;
      }
      Cut cut = splitter_->next(view(), offset_);  // checked (codec_author.h)
      if (cut.kind == Cut::Kind::kNeedMore) {
        if (buffered() >= kMaxBufferedBytes)
          throw Error(ErrorKind::kCorruptData, "frame too large to split", {}, offset_);
        if (fill(/*may_pause=*/true)) continue;
        if (waiting_) return nullptr;
        cut = splitter_->at_end(view(), offset_);  // what is buffered is all there is
        if (cut.kind == Cut::Kind::kNeedMore) {
          // A splitter that knows where the frame or member began names it (lz4's frame was named
          // as starting where its last block did); else the piece that is cut short.
          splitter_->finish(offset_ + buffered());
          throw truncated();
        }
      }
      switch (cut.kind) {
        case Cut::Kind::kNeedMore:  // handled above: more read, or at_end's cut
          break;
        case Cut::Kind::kSerial:
          go_serial();
          break;
        case Cut::Kind::kMarker: {
          const std::uint64_t at = offset_;
          if (speculated_) {  // with its bytes (all buffered: checked), for a serial decoder that took over
            Chunk* chunk = piece(Piece::kMarker, cut, at, cut.bytes);
            consume(cut.bytes);
            return chunk;
          }
          const std::size_t now = std::min(cut.bytes, buffered());
          consume(now);
          skip_bytes_ = cut.bytes - now;
          skip_start_ = at;
          skip_may_end_early_ = cut.may_end_early;
          if (cut.flags != 0) return piece(Piece::kMarker, cut, at, 0);
          break;
        }
        case Cut::Kind::kUnit: {
          speculated_ = speculated_ || cut.speculative;
          const std::uint64_t at = offset_;
          Chunk* chunk = piece(Piece::kUnit, cut, at, cut.bytes);
          consume(cut.bytes);
          return chunk;
        }
      }
    }
  }

  void go_serial() {
    serial_ = true;
    // One decoding thread from here on, and a writing thread it makes (which starts with its
    // maker's CPU mask): unpinned, the scheduler places them better (thread_arena.h).
    if (!in_callers_graph_) detail::unpin_arena_threads();
  }

  // Raw bytes for the streaming decoder (all that is buffered), then one end piece.
  Chunk* next_serial_piece() {
    if (buffered() == 0 && !fill(/*may_pause=*/true)) {
      if (waiting_) return nullptr;
      done_ = true;
      return piece(Piece::kSerialEnd, {}, offset_, 0);
    }
    const std::size_t bytes = buffered();
    const std::uint64_t at = offset_;
    Chunk* chunk = piece(Piece::kSerial, {}, at, bytes);
    consume(bytes);
    return chunk;
  }

  // A piece whose compressed bytes are the next `bytes` buffered, as a view into the block or
  // window that holds them.
  Chunk* piece(Piece kind, const Cut& cut, std::uint64_t at, std::size_t bytes) {
    Chunk* chunk = pool_.acquire();
    chunk->piece = kind;
    chunk->cut = cut;
    chunk->offset = at;
    chunk->sequence = sequence_++;
    chunk->last = false;
    chunk->history_bytes = 0;
    chunk->input.clear();
    chunk->output.clear();
    chunk->view = view().first(bytes);
    if (bytes > 0) {
      if (window_) chunk->keep = window_;
      else chunk->keep = block_;
    }
    return chunk;
  }

  void consume(std::size_t bytes) {
    position_ += bytes;
    offset_ += bytes;
  }

  // Makes more input available after what is buffered; false at end of input. From a mapped
  // file: the next window (starting at the first unconsumed byte, so a unit never spans two).
  // Otherwise read into blocks. Bytes already in a block may belong to pieces in flight: a block
  // is only ever appended to, never moved; when it is full, the unconsumed bytes move to a fresh
  // block. `may_pause`: at a cut, where pause_when_idle() may stop here.
  bool fill(bool may_pause = false) {
    if (eof_) return false;
    if (!source_ && fed_.empty()) {  // fed: wait for more, unless that was the last
      if (fed_last_)
        eof_ = true;
      else
        waiting_ = true;
      return false;
    }
    if (mapper_ && next_window()) return true;
    if (may_pause && pause_when_idle_ && !source_->wait_readable(kIdleWait)) {
      paused_ = waiting_ = true;
      return false;
    }
    // Live, reads wait for the writer: a stop (or a failure) is seen while waiting.
    if (live_ && !wait_for_source(*source_, [this] { return errors_.failed(); })) {
      eof_ = true;
      return false;
    }
    if (!block_ || block_->capacity() - block_->size() < kReadBytes / 4) {
      const std::size_t keep = buffered();
      std::shared_ptr<Buffer> next = blocks_.acquire(std::max(kBlockBytes, keep + kReadBytes));
      next->append(view());
      block_ = std::move(next);
      window_.reset();
      position_ = 0;
    }
    Buffer& block = *block_;
    const std::size_t old_size = block.size();
    const std::size_t room = block.capacity() - old_size;
    block.resize(old_size + room);  // within capacity: the block does not move
    const std::size_t got =
        source_ ? source_->read(block.data() + old_size, room) : take_fed(block.data() + old_size, room);
    block.resize(old_size + got);
    bytes_ = block.view().subspan(0, old_size + got);
    if (got == 0) eof_ = true;
    progressed();
    return got > 0;
  }

  // Copies fed bytes into the block being filled.
  std::size_t take_fed(std::uint8_t* to, std::size_t room) {
    const std::size_t n = std::min(room, fed_.size());
    if (n > 0) std::memcpy(to, fed_.data(), n);
    fed_ = fed_.subspan(n);
    return n;
  }

  // Maps the window after the current one; false when the mapped size is used up (or the system
  // refused): the source then reads on from there (a file that grew is read to its new end).
  bool next_window() {
    const std::uint64_t mapped_end = window_->offset() + window_->bytes().size();  // in the file
    if (mapped_end < mapper_->file_bytes()) {
      const std::uint64_t at = file_base_ + offset_;
      if (auto next = mapper_->map(at, buffered() + 1, std::max(kWindowBytes, 2 * buffered()))) {
        window_ = std::move(next);
        bytes_ = window_->from(at);
        position_ = 0;
        return true;
      }
    }
    source_->seek(mapped_end);
    mapper_.reset();
    return false;
  }

  // The frame or member starting at `start` (by default, the one at the current position) ends
  // early.
  Error truncated(std::optional<std::uint64_t> start = std::nullopt) const {
    return Error(ErrorKind::kCorruptData,
                 fmt::format("unexpected end of input: the {} {} starting at byte {} is truncated", codec_.name,
                             codec_.unit_noun, start.value_or(offset_)),
                 {},
                 offset_ + buffered());
  }

  ByteSource* source_ = nullptr;  // null: fed
  std::string name_;
  ByteView fed_;
  bool fed_last_ = false;
  bool waiting_ = false;  // fed: the splitter needs bytes not fed yet; or paused
  bool pause_when_idle_ = false;
  bool paused_ = false;
  bool live_ = false;
  const CodecInfo& codec_;
  // Where the buffered bytes are: a window of the mapped input, or the block being read into
  // (pieces in flight may share either).
  std::optional<detail::FileMapper> mapper_;
  std::uint64_t file_base_ = 0;  // file offset of the stream's first byte
  std::shared_ptr<detail::FileWindow> window_;
  std::shared_ptr<const detail::MappedFileState> mapped_file_;
  std::shared_ptr<Buffer> block_;
  ByteView bytes_;                 // the window's bytes from its first unconsumed one, or the block's
  std::size_t position_ = 0;       // first unconsumed byte in bytes_
  std::uint64_t offset_ = 0;       // stream offset of that byte
  std::uint64_t skip_bytes_ = 0;  // of a marker that is longer than what was buffered
  std::uint64_t skip_start_ = 0;
  bool skip_may_end_early_ = false;
  StreamSplitter* splitter_;
  bool serial_;
  bool speculated_ = false;  // a speculative unit was cut: the writer ends the stream
  const std::atomic<bool>* guesses_failed_ = nullptr;
  bool in_callers_graph_ = false;
  const std::function<void(std::uint64_t)>* on_read_ = nullptr;
  std::uint64_t reported_ = 0;  // the last count given to on_read_
  bool eof_ = false;
  bool done_ = false;
  std::uint64_t sequence_ = 0;
  ChunkPool& pool_;
  BlockPool& blocks_;
  FirstError& errors_;
};

// Names the output in the errors of a sink that does not name itself (a caller's sink), so that
// they are not taken for errors of the input.
class OutputNamingSink final : public ByteSink {
 public:
  explicit OutputNamingSink(ByteSink& inner) : inner_(inner) {}
  void write(ByteView bytes) override {
    try {
      inner_.write(bytes);
    } catch (const Error& e) {
      throw e.with_context(inner_.name(), std::nullopt);
    }
  }
  const std::string& name() const override { return inner_.name(); }

 private:
  ByteSink& inner_;
};

bool is_error_of_kind(const std::exception_ptr& error, ErrorKind kind) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return e.kind() == kind;
  } catch (...) {
    return false;
  }
}

// The worker: decodes a unit on whichever thread takes it, with that thread's own decoder (made
// on first use; UnitDecoder::decode checks it against what its cut promised). Other pieces pass
// through; an error travels with its piece, to be raised in order.
class UnitDecoders {
 public:
  // `guesses_failed` is set at the first speculative unit that was no unit (PieceReader::
  // watch_guesses); `pin`: pin the threads (not in a caller's graph, whose threads are not ours);
  // `in_caller`: every unit is decoded on the calling thread (run_decompression), with one decoder
  // and no thread-local storage (making that would start oneTBB's allocator).
  UnitDecoders(const Codec& codec, const FirstError& errors, const std::string& source_name,
               std::atomic<bool>& guesses_failed, bool pin, bool in_caller)
      : codec_(codec), errors_(errors), source_name_(source_name), guesses_failed_(guesses_failed), pin_(pin) {
    if (!in_caller) decoders_.emplace([&codec] { return codec.make_unit_decoder(); });
  }

  Chunk* decode(Chunk* chunk) {
    if (chunk->piece != Piece::kUnit || chunk->error || errors_.failed()) return chunk;
    if (pin_) detail::pin_this_thread();  // one CPU per thread while units are decoded (thread_arena.h)
    try {
      local().decode(chunk->view, chunk->cut, chunk->output);  // checked (codec_author.h)
    } catch (const Error& e) {
      if (chunk->cut.speculative && e.kind() == ErrorKind::kCorruptData) {
        chunk->guess_failed = true;  // the writer decodes it in order (Cut::speculative)
        guesses_failed_.store(true, std::memory_order_relaxed);
        chunk->output.clear();
      } else if (e.offset()) {  // from the unit's start (UnitDecoder::decode): in the stream
        Error in_stream(e.kind(), e.detail(), e.path().empty() ? source_name_ : e.path(), chunk->offset + *e.offset());
        in_stream.set_error_number(e.error_number());
        chunk->error = std::make_exception_ptr(in_stream);
      } else {
        chunk->error = detail::current_error_with_context(source_name_, chunk->offset);
      }
    } catch (...) {
      chunk->error = detail::current_error_with_context(source_name_, chunk->offset);
    }
    return chunk;
  }

  // How many distinct threads decoded units.
  std::size_t threads() const { return decoders_ ? decoders_->size() : (caller_decoder_ ? 1 : 0); }

 private:
  UnitDecoder& local() {
    if (decoders_) return *decoders_->local();
    if (!caller_decoder_) caller_decoder_ = codec_.make_unit_decoder();
    return *caller_decoder_;
  }

  const Codec& codec_;
  const FirstError& errors_;
  const std::string& source_name_;
  std::atomic<bool>& guesses_failed_;
  const bool pin_;
  std::optional<tbb::enumerable_thread_specific<std::unique_ptr<UnitDecoder>>> decoders_;  // on the workers
  std::unique_ptr<UnitDecoder> caller_decoder_;                                            // in the caller
};

// The writer, serial and in order: verification across units, the streaming decoder for a stream
// that could not be split (made when the first serial piece comes), the caller's output limit,
// and the output.
class PieceWriter {
 public:
  PieceWriter(ByteSink& sink, const Codec& codec, StreamSplitter* splitter, int threads, std::uint64_t max_output,
              FirstError& errors, const std::string& source_name, DecompressStats& stats)
      : sink_(sink), codec_(codec), verifier_(splitter ? codec.make_unit_verifier() : nullptr), threads_(threads),
        max_output_(max_output), errors_(errors), source_name_(source_name), stats_(stats) {}

  // Set once a speculative unit turns out to be none here (UnitVerifier::complete), as the unit
  // decoders do (PieceReader::watch_guesses).
  void report_guesses(std::atomic<bool>* failed) { guesses_failed_ = failed; }

  // From here on each piece's output is written out before the next piece is read (a stream
  // decoded as it arrives: PieceReader::go_live).
  void go_live() {
    live_ = true;
    if (!overlapped_) return;
    try {
      overlapped_->flush();
    } catch (...) {
      errors_.capture_current(source_name_, std::nullopt);
    }
  }

  void write(Chunk& chunk) {
    if (chunk.error) errors_.record(chunk.error);
    if (errors_.failed()) return;
    try {
      switch (chunk.piece) {
        case Piece::kUnit:
          // Once a guess failed, every byte from there on goes through the serial decoder.
          if (serial_decoder_ || chunk.guess_failed || !complete(chunk)) {
            decode_serially(chunk);
            break;
          }
          if (errors_.failed()) break;  // stopped, or failed elsewhere, while it was completed
          if (verifier_) verifier_->on_unit(chunk.cut, chunk.output.view());
          emit(chunk.output.view());
          ++stats_.units;
          break;
        case Piece::kMarker:
          if (serial_decoder_)
            decode_serially(chunk);  // a guess before it failed: its bytes are the decoder's
          else if (verifier_)
            verifier_->on_marker(chunk.cut, chunk.offset);
          break;
        case Piece::kSerial:
        case Piece::kSerialEnd:
          decode_serially(chunk);
          break;
      }
      if (live_ && overlapped_) overlapped_->flush();
    } catch (...) {
      // Trailing garbage, or a stream cut short (its end found wanting): what decoded before it
      // (checked, before garbage) is written out before the error is raised, as a run of one
      // thread writes it as it goes and gzip -d does (a truncated file at -j2 gave up to 4 MiB
      // less); a failure to write it wins. Not after damage inside the stream: what decoded just
      // before that may be the damage's (a reader of a tar then met a bad header before the
      // decoder's error, which names the offset).
      const std::exception_ptr error = std::current_exception();
      if (overlapped_ && (is_error_of_kind(error, ErrorKind::kTrailingGarbage) ||
                          (chunk.piece == Piece::kSerialEnd && is_error_of_kind(error, ErrorKind::kCorruptData)))) {
        try {
          overlapped_->flush();
        } catch (...) {
          errors_.capture_current(source_name_, std::nullopt);
        }
      }
      errors_.capture_current(source_name_, std::nullopt);
    }
  }

 private:
  // The verifier's part of a unit (UnitVerifier::complete); false when a speculative unit turned
  // out to be none.
  bool complete(Chunk& chunk) {
    if (!verifier_) return true;
    try {
      verifier_->complete(chunk.cut, chunk.view, chunk.output);
    } catch (const Error& e) {
      if (!chunk.cut.speculative || e.kind() != ErrorKind::kCorruptData) throw;
      if (guesses_failed_) guesses_failed_->store(true, std::memory_order_relaxed);
      return false;
    }
    if (chunk.output.size() > chunk.cut.max_output_bytes) {
      throw Error(ErrorKind::kInternal,
                  fmt::format("the {} codec completed a unit to more than its cut promised", codec_.info().name));
    }
    return true;
  }

  // A serial piece, or a unit's compressed bytes once units are decoded in order (a speculative
  // unit failed); the end piece finishes the stream.
  void decode_serially(const Chunk& chunk) {
    if (!serial_decoder_) {
      if (verifier_) serial_decoder_ = verifier_->serial_decoder();
      if (!serial_decoder_) {  // the unit starts a frame (or member): a new decoder goes on from it
        serial_decoder_ = codec_.make_decoder();
        if (chunk.offset > 0) serial_decoder_->resume_at(chunk.offset);
      }
      if (chunk.piece == Piece::kSerialEnd) {  // nothing went serial: the decoder only judges the end
        serial_decoder_->finish();
        return;
      }
      stats_.serial_from = chunk.offset;
      // With more than one thread, through a writing thread of its own, so that decoding and a
      // slow sink (a file, a tar extraction) overlap. 4 x 1 MiB: measured best of 128 KiB-1 MiB.
      // With an output limit the decoder stops within a buffer of it.
      if (threads_ > 1 && !live_) overlapped_.emplace(sink_, 4, 1024 * 1024, max_output_, &errors_);
    }
    if (chunk.piece != Piece::kSerialEnd && overlapped_) {
      const std::uint64_t before = overlapped_->bytes();
      serial_decoder_->decode_to(chunk.view, *overlapped_);
      stats_.output_bytes += overlapped_->bytes() - before;
      check_limit(stats_.output_bytes);
    } else if (chunk.piece != Piece::kSerialEnd) {
      serial_decoder_->decode(chunk.view, [this](ByteView bytes) { emit(bytes); });
    } else {
      serial_decoder_->finish();
      if (overlapped_) overlapped_->flush();
    }
  }

  // A run stopped or failed elsewhere ends here too, not after all that the decoder's piece makes
  // (the overlapped sink checks likewise).
  void emit(ByteView bytes) {
    errors_.rethrow_if_failed();
    check_limit(stats_.output_bytes + bytes.size());
    if (overlapped_) overlapped_->write(bytes);
    else sink_.write(bytes);
    stats_.output_bytes += bytes.size();
  }

  // The caller's cap on output (a decompression bomb is stopped here, not by memory).
  void check_limit(std::uint64_t output_bytes) const {
    if (max_output_ > 0 && output_bytes > max_output_) {
      throw Error(ErrorKind::kLimit, fmt::format("output exceeds the limit of {} bytes set for this run", max_output_));
    }
  }

  ByteSink& sink_;
  const Codec& codec_;
  const std::unique_ptr<UnitVerifier> verifier_;
  std::unique_ptr<StreamDecoder> serial_decoder_;
  std::atomic<bool>* guesses_failed_ = nullptr;
  std::optional<detail::OverlappedSink> overlapped_;
  bool live_ = false;
  const int threads_;
  const std::uint64_t max_output_;
  FirstError& errors_;
  const std::string& source_name_;
  DecompressStats& stats_;
};

// reader -> limiter -> unit decoders -> ordering -> writer (engine/ordered_graph.h); or, `in_caller`,
// the same reader, unit decoders and writer one piece after another on the calling thread: for a
// stream whose whole input came with the first read and is small, where the graph's workers,
// pinning and read blocks would cost more than the decoding (a 1 KB gzip took 300 us through the
// graph). The same pieces in the same order either way, so the same output and the same errors.
// A stream read as it is written is decoded as it arrives (kIdleWait): from its start, when the
// writer went quiet before the first read was full (`start.live`, in the caller), or else from
// where the graph's reader found it quiet: the graph finishes the pieces read so far, and the
// rest goes on here.
void run_decompression(ByteSource& source, ByteSink& output_sink, StreamStart start, const Codec& codec, int threads,
                       const DecompressOptions& options, DecompressStats& stats, bool in_caller) {
  const std::size_t max_pieces = in_caller ? 0 : options.max_pieces_in_flight;
  const std::uint64_t max_output = options.max_output_bytes;
  const std::stop_token& stop = options.stop;
  const std::function<void(std::uint64_t)>& on_read = options.on_read;
  const bool live = start.live;
  OutputNamingSink sink(output_sink);
  std::optional<flow::graph> graph;  // none in the caller: making one would start oneTBB's workers
  if (!in_caller) graph.emplace();
  FirstError errors([&graph] {
    if (graph) graph->cancel();
  });
  const std::stop_callback on_stop(stop, [&errors] { errors.record(detail::stopped_error()); });
  BlockPool blocks;  // before the chunk pool: retiring a chunk returns its block here
  ChunkPool pool;
  const auto splitter = codec.make_splitter();
  PieceReader piece_reader(source, std::move(start), codec.info(), splitter.get(), pool, blocks, errors);
  std::atomic<bool> guesses_failed{false};
  piece_reader.watch_guesses(&guesses_failed, /*in_callers_graph=*/in_caller);
  piece_reader.report_reads(&on_read);
  UnitDecoders decoders(codec, errors, source.name(), guesses_failed, /*pin=*/!in_caller, in_caller);
  PieceWriter piece_writer(sink, codec, splitter.get(), in_caller ? 1 : threads, max_output, errors, source.name(),
                           stats);
  piece_writer.report_guesses(&guesses_failed);
  if (splitter) splitter->set_hints({in_caller ? 1 : threads, options.unit_input_bytes});
  const auto go_live = [&] {
    piece_reader.go_live();
    piece_writer.go_live();
  };
  const auto one_by_one = [&] {
    while (Chunk* chunk = piece_reader.next()) {
      piece_writer.write(*decoders.decode(chunk));
      pool.release(chunk);
    }
  };

  if (in_caller) {
    if (live) go_live();
    one_by_one();
  } else {
    piece_reader.pause_when_idle();
    const std::size_t in_flight = max_pieces > 0 ? max_pieces : kPiecesPerThread * static_cast<std::size_t>(threads);
    detail::run_ordered_graph<Chunk>(
        *graph, in_flight, [&](tbb::flow_control& control) { return piece_reader.next(control); },
        [&](Chunk* chunk) { return decoders.decode(chunk); },
        [&](Chunk* chunk) {
          piece_writer.write(*chunk);
          pool.release(chunk);
        });
    if (piece_reader.paused() && !errors.failed()) {
      go_live();
      one_by_one();
    }
  }

  stats.input_bytes = piece_reader.bytes_read();
  stats.decoder_threads = decoders.threads();
  piece_reader.check_mapping();  // the cause of whatever else went wrong after a truncation
  errors.rethrow_if_failed();
}

}  // namespace

// DecompressNode: the same reader (fed), unit decoders and writer as the graph above, as nodes of
// a caller's graph:
//
//   in -> ordering -> inbox -> cutter (serial) -> decoder (parallel) -> ordering -> writer (serial)
//                        ^                                                            |    |
//                        +------------------- one piece retired ----------------------+    |
//                                                                          ordering <------+
//                                                                             |
//                                                                            out
//
// The cutter cuts at most `max_in_flight` pieces ahead of the writer, as the graph above's
// limiter admits them: the caller's pieces wait, whole, until the reader gets to them. (Cutting
// all that was sent at once gave every piece a chunk of its own, decoded into new memory that the
// kernel had to zero: BENCHMARKS.md, "DecompressNode".) The last sequencer is there for the
// reason CompressNode has one (flow_node.cpp).
struct DecompressNode::Nodes {
  // How much of the stream's start the format is told from, unless the input ends sooner.
  static constexpr std::size_t kDetectBytes = 64;

  Nodes(flow::graph& graph, const DecompressOptions& given)
      : options(given),
        ordering_in(graph, [](const ByteChunk& chunk) { return chunk.sequence; }),
        inbox(graph),
        cutter(graph, flow::serial,
               [this](const Inbox::output_type& message, CutterPorts& ports) {
                 if (message.tag() == 0) {
                   const ByteChunk& piece = flow::cast_to<ByteChunk>(message);
                   // In order here: a piece after the one marked last was dropped without a word.
                   if (ended) {
                     throw Error(ErrorKind::kUsage,
                                 fmt::format("DecompressNode: piece {} comes after piece {}, marked last",
                                             piece.sequence, piece.sequence - 1));
                   }
                   ended = piece.last;
                   inputs.push_back(piece);
                 } else {
                   --in_flight;  // a piece was retired
                 }
                 cut(ports);
               }),
        decoder(graph, flow::unlimited, [this](Chunk* chunk) { return decoders->decode(chunk); }),
        ordering_mid(graph, [](Chunk* const& chunk) { return chunk->sequence; }),
        writer(graph, flow::serial, [this](Chunk* chunk, WriterPorts& ports) { write(chunk, ports); }),
        ordering_out(graph, [](const ByteChunk& chunk) { return chunk.sequence; }) {
    flow::make_edge(ordering_in, flow::input_port<0>(inbox));
    flow::make_edge(inbox, cutter);
    flow::make_edge(flow::output_port<0>(cutter), decoder);
    flow::make_edge(decoder, ordering_mid);
    flow::make_edge(ordering_mid, writer);
    flow::make_edge(flow::output_port<0>(writer), ordering_out);
    flow::make_edge(flow::output_port<1>(writer), flow::input_port<1>(inbox));
  }

  using Inbox = flow::indexer_node<ByteChunk, flow::continue_msg>;
  using Cutter = flow::multifunction_node<Inbox::output_type, std::tuple<Chunk*>>;
  using CutterPorts = Cutter::output_ports_type;
  using Writer = flow::multifunction_node<Chunk*, std::tuple<ByteChunk, flow::continue_msg>>;
  using WriterPorts = Writer::output_ports_type;

  // Cuts pieces from the caller's, in order, while fewer than `max_in_flight` are in flight: the
  // first bytes tell the format (and make the reader); then each piece is fed to the reader once
  // it has taken all of the one before.
  void cut(CutterPorts& ports) {
    if (!reader) {
      Buffer start;  // the stream's first bytes, from as many pieces as they take
      bool whole = false;
      for (const ByteChunk& chunk : inputs) {
        const ByteView bytes = chunk.bytes ? chunk.bytes->view() : ByteView{};
        start.append(bytes.first(std::min(bytes.size(), kDetectBytes - start.size())));
        whole = chunk.last;
        if (start.size() == kDetectBytes || whole) break;
      }
      if (start.size() < kDetectBytes && !whole) return;
      start_reader(start.view());
    }
    while (in_flight < max_in_flight) {
      if (Chunk* piece = reader->next_fed()) {
        ++in_flight;
        std::get<0>(ports).try_put(piece);
        continue;
      }
      if (reader->finished()) {  // nothing more is read: the caller's pieces are let go
        inputs.clear();
        feeding = false;
        return;
      }
      // The reader has taken all it was fed: the next of the caller's pieces, if it came.
      if (feeding) inputs.pop_front();
      feeding = !inputs.empty();
      if (!feeding) return;
      const ByteChunk& next = inputs.front();
      reader->feed(next.bytes ? next.bytes->view() : ByteView{}, next.last);
    }
  }

  void start_reader(ByteView start) {
    codec = make_decoding_codec(detect_format(start, options.codec), options);
    splitter = codec->make_splitter();
    // The caller's arena decodes the units: as many threads as it has (a member of another
    // tool's is then decoded in pieces, by parallel inflate, where there are two or more).
    const int threads = tbb::this_task_arena::max_concurrency();
    if (splitter) splitter->set_hints({threads, options.unit_input_bytes});
    max_in_flight = options.max_pieces_in_flight > 0 ? options.max_pieces_in_flight
                                                     : kPiecesPerThread * static_cast<std::size_t>(threads);
    decoders.emplace(*codec, errors, name, guesses_failed, /*pin=*/false, /*in_caller=*/false);
    piece_writer.emplace(output, *codec, splitter.get(), 1, options.max_output_bytes, errors, name, stats);
    piece_writer->report_guesses(&guesses_failed);
    reader.emplace(name, codec->info(), splitter.get(), pool, blocks, errors);
    reader->watch_guesses(&guesses_failed, /*in_callers_graph=*/true);
  }

  // The decoded stream as it is written, in buffers of 64 KiB to 1 MiB handed on whole (the
  // caller owns them): a piece's first write starts one of its own size within those bounds (a
  // unit's output is one write), and later writes (a serial decoder's) fill buffers of 1 MiB.
  // No buffer grows: growing one copies it into fresh memory each
  // time, which the kernel must zero. And none is 2 MiB or more, which Buffer backs with huge
  // pages: memory the caller frees is faulted in again, a huge page at a time with direct
  // compaction. (A MemorySink here, doing both, was most of the node's time: BENCHMARKS.md,
  // "DecompressNode".)
  class Output final : public ByteSink {
   public:
    static constexpr std::size_t kMinBufferBytes = 64 * 1024, kMaxBufferBytes = 1024 * 1024;

    void write(ByteView bytes) override {
      while (!bytes.empty()) {
        if (current_.size() == current_.capacity()) {
          const bool first = current_.empty() && done_.empty();  // since the last take()
          if (!current_.empty()) done_.push_back(std::move(current_));
          current_ = Buffer(first ? std::clamp(bytes.size(), kMinBufferBytes, kMaxBufferBytes) : kMaxBufferBytes);
        }
        const std::size_t n = std::min(bytes.size(), current_.capacity() - current_.size());
        current_.append(bytes.first(n));
        bytes = bytes.subspan(n);
      }
    }
    const std::string& name() const override { return name_; }

    // What was written since the last call, in order.
    std::vector<Buffer> take() {
      if (!current_.empty()) done_.push_back(std::move(current_));
      return std::exchange(done_, {});
    }

   private:
    std::string name_ = "<flow graph>";
    Buffer current_;
    std::vector<Buffer> done_;
  };

  // In order: each piece's output, as chunks of the decoded stream; the error of a piece is
  // thrown here, after the output before it (what the failing piece decoded included: trailing
  // garbage comes after a whole stream's output).
  void write(Chunk* chunk, WriterPorts& ports) {
    piece_writer->write(*chunk);
    const bool last = chunk->last && !errors.failed();
    pool.release(chunk);
    std::get<1>(ports).try_put(flow::continue_msg());  // retired: the cutter may cut the next
    std::vector<Buffer> buffers = output.take();
    if (buffers.empty() && last) buffers.emplace_back();
    for (std::size_t i = 0; i < buffers.size(); ++i) {
      ByteChunk out;
      out.sequence = next_output++;
      out.last = last && i + 1 == buffers.size();
      out.bytes = std::make_shared<const Buffer>(std::move(buffers[i]));
      std::get<0>(ports).try_put(out);
    }
    errors.rethrow_if_failed();
  }

  DecompressOptions options;
  const std::string name = "<flow graph>";
  FirstError errors;
  DecompressStats stats;
  Output output;
  // The caller's pieces not yet taken by the reader; the first is being fed when `feeding`.
  std::deque<ByteChunk> inputs;
  bool ended = false;  // the caller's piece marked last came (cutter only)
  bool feeding = false;
  std::size_t in_flight = 0;  // pieces cut and not yet retired by the writer
  std::size_t max_in_flight = 1;
  std::unique_ptr<Codec> codec;
  std::unique_ptr<StreamSplitter> splitter;
  BlockPool blocks;  // before the chunk pool: retiring a chunk returns its block here
  ChunkPool pool;
  std::atomic<bool> guesses_failed{false};
  std::optional<UnitDecoders> decoders;
  std::optional<PieceWriter> piece_writer;
  std::optional<PieceReader> reader;
  std::uint64_t next_output = 0;
  flow::sequencer_node<ByteChunk> ordering_in;
  Inbox inbox;
  Cutter cutter;
  flow::function_node<Chunk*, Chunk*> decoder;
  flow::sequencer_node<Chunk*> ordering_mid;
  Writer writer;
  flow::sequencer_node<ByteChunk> ordering_out;
};

DecompressNode::DecompressNode(flow::graph& graph, const DecompressOptions& options)
    : composite_node(graph), nodes_(std::make_unique<Nodes>(graph, options)) {
  set_external_ports(input_ports_type(nodes_->ordering_in), output_ports_type(nodes_->ordering_out));
}

DecompressNode::~DecompressNode() = default;

DecompressStats decompress(ByteSource& given, ByteSink& sink, const DecompressOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  DecompressStats stats;
  const int threads = resolve_threads(options.threads);
  // Where the stream starts in the file behind the source, if it has one (pass_through); without
  // one, what follows the stream is kept as it is read.
  const std::optional<SourceFile> stream_file = options.pass_through ? given.file() : std::nullopt;
  std::optional<TailKeepingSource> kept;
  if (options.pass_through && !stream_file) kept.emplace(given);
  ByteSource& source = kept ? static_cast<ByteSource&>(*kept) : given;
  StreamStart stream_start;
  try {
    stream_start = start_stream(source, options.codec, options.stop);
    if (options.empty_input_is_empty && !stream_start.window && stream_start.read.empty()) {
      stats.codec = options.codec;
      stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return stats;
    }
    if (options.pass_through && options.codec.empty() && !CodecRegistry::global().detect(stream_start.prefix())) {
      // From the source itself: nothing follows a stream here, and nothing need be kept.
      stats.input_bytes = stats.output_bytes = copy_through(given, std::move(stream_start), sink);
      stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return stats;
    }
    stats.codec = detect_format(stream_start.prefix(), options.codec);
  } catch (const Error& e) {
    // Zeros where a file that shrank lost its pages are no format: say what happened instead.
    if (const auto& mapper = stream_start.mapper; mapper && mapper->file()->lost_pages.load()) {
      detail::throw_lost_pages(*mapper->file(), source.name());
    }
    throw e.with_context(source.name(), std::nullopt);
  }
  const auto codec = make_decoding_codec(stats.codec, options);
  // Counted (thread_arena.h) on every path: a thread that once ran in an arena keeps one of
  // oneTBB's, where the paths below without a ThreadArena of their own run tasks (a CRC, a graph).
  const detail::RunCount counted;
  try {
    if (stream_start.live ||
        (options.small_inputs_in_caller && !stream_start.window && stream_start.read.size() <= kSmallInputBytes)) {
      // The first read stopped short of kReadBytes: the whole stream is in hand, and it is small,
      // or the rest comes as it is written, decoded one read at a time (kIdleWait). On a
      // worker of an arena, isolated: a task the decoders make (gzip's CRC of a large block) and
      // the wait for it never pick up the caller's other work. Elsewhere in no arena at all, so
      // that oneTBB is not even started (decoders make no task outside an arena): for a small
      // file that is most of a run's cost.
      const auto in_caller = [&] {
        run_decompression(source, sink, std::move(stream_start), *codec, 1, options, stats, /*in_caller=*/true);
      };
      if (tbb::this_task_arena::current_thread_index() != tbb::task_arena::not_initialized) {
        tbb::this_task_arena::isolate(in_caller);
      } else {
        in_caller();
      }
    } else {
      const auto run = [&] {
        run_decompression(source, sink, std::move(stream_start), *codec, threads, options, stats,
                          /*in_caller=*/false);
      };
      if (tbb::this_task_arena::current_thread_index() != tbb::task_arena::not_initialized &&
          tbb::this_task_arena::max_concurrency() == threads) {
        // Already on a worker of an arena of this size (a batch decoding files side by side): run
        // here, isolated so that waiting for this graph never picks up the caller's other work.
        // An arena per file made from inside the batch's workers cost more with every file (time
        // and memory grew with the batch: BENCHMARKS.md, the 100,000-file batch).
        tbb::this_task_arena::isolate(run);
      } else {
        detail::ThreadArena arena(threads);
        arena.execute(run);
      }
    }
  } catch (const Error& e) {
    // Everything before the garbage was decoded, checked and written.
    if (!options.pass_through || e.kind() != ErrorKind::kTrailingGarbage) throw;
    std::optional<std::uint64_t> copied;
    if (kept && e.offset()) {
      if (kept->copy_kept_from(*e.offset(), sink)) copied = kept->read_bytes() - *e.offset() + copy_rest(given, sink);
    } else {
      copied = copy_after_stream(source, stream_file, e, sink);
    }
    if (!copied) throw;
    stats.input_bytes = *e.offset() + *copied;
    stats.output_bytes += *copied;
  }
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

DecompressStats decompress_file(const std::string& input_path, const std::string& output_path,
                                const DecompressOptions& options, bool overwrite) {
  return detail::run_file_to_file(input_path, output_path, overwrite, [&](FdSource& source, ByteSink& output) {
    return decompress(source, output, options);
  });
}

// The codec's describe_stream, which never throws for bad data: what the stream records, or else
// what it suggests (StreamFacts::likely_uncompressed_bytes). An unknown codec or format gives 0
// (decompress() then says so). Capped: reserving maps memory, no more.
std::uint64_t expected_output_bytes(ByteView input, const DecompressOptions& options) {
  const std::uint64_t max_reserved =
      std::min<std::uint64_t>(std::uint64_t{1} << 30, std::max<std::uint64_t>(64 << 20, input.size() * 1100ull));
  std::string name = options.codec;
  if (name.empty()) {
    const auto detected = CodecRegistry::global().detect(input.first(std::min(input.size(), kReadBytes)));
    if (!detected) return 0;
    name = detected->name;
  }
  std::uint64_t bytes = 0;
  try {
    const StreamFacts facts = make_decoding_codec(name, options)->describe_stream(input);
    bytes = facts.uncompressed_bytes.value_or(facts.likely_uncompressed_bytes.value_or(0));
  } catch (const Error&) {  // an unknown codec or backend
    return 0;
  }
  bytes = std::min(bytes, max_reserved);
  if (options.max_output_bytes > 0) bytes = std::min(bytes, options.max_output_bytes);
  return bytes;
}

// Into memory of the size the stream claims, where it claims one, allocated once (BENCHMARKS.md,
// "DecompressNode": growing it as the output came once took 1.8-2.5x the time of decompress()
// into a sink that keeps nothing).
Buffer decompress_buffer(ByteView input, const DecompressOptions& options) {
  MemorySource source(input);
  MemorySink sink;
  try {
    sink.reserve(static_cast<std::size_t>(expected_output_bytes(input, options)));
  } catch (const std::bad_alloc&) {  // a size claimed past what may be mapped: grown as it comes
  }
  decompress(source, sink, options);
  return sink.take();
}

namespace {

// Counts what it is given, keeps nothing.
class CountingSink final : public ByteSink {
 public:
  explicit CountingSink(std::string name) : name_(std::move(name)) {}
  void write(ByteView bytes) override { bytes_ += bytes.size(); }
  const std::string& name() const override { return name_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  std::string name_;
  std::uint64_t bytes_ = 0;
};

// Passes reads through and keeps the first kReadBytes of them: the format of a stream from a
// pipe, when decoding it ends in trailing garbage and no DecompressStats say what it was. (A
// file's stream may be decoded from mappings, which pass no bytes through it.)
class HeadKeepingSource final : public ByteSource {
 public:
  explicit HeadKeepingSource(ByteSource& inner) : inner_(inner) {}
  std::size_t read(std::uint8_t* dst, std::size_t max_bytes) override {
    const std::size_t n = inner_.read(dst, max_bytes);
    head_.insert(head_.end(), dst, dst + std::min(n, kReadBytes - std::min(kReadBytes, head_.size())));
    return n;
  }
  const std::string& name() const override { return inner_.name(); }
  bool wait_readable(std::chrono::milliseconds timeout) override { return inner_.wait_readable(timeout); }
  bool take_flush_point() override { return inner_.take_flush_point(); }
  std::optional<SourceFile> file() const override { return inner_.file(); }
  void seek(std::uint64_t offset) override { inner_.seek(offset); }
  std::optional<std::uint64_t> size() const override { return inner_.size(); }
  bool random_access() const override { return inner_.random_access(); }
  std::size_t read_at(std::uint64_t offset, std::uint8_t* dst, std::size_t max_bytes) override {
    return inner_.read_at(offset, dst, max_bytes);
  }
  ByteView head() const { return ByteView(head_.data(), head_.size()); }

 private:
  ByteSource& inner_;
  std::vector<std::uint8_t> head_;
};

}  // namespace

StreamListing list_stream(ByteSource& source, const DecompressOptions& options) {
  StreamListing listing;
  const auto file = source.file();
  if (file && file->size > file->position && detail::FileMapper::enabled()) {
    const std::uint64_t bytes = file->size - file->position;
    detail::FileMapper mapper(file->descriptor, file->size);
    if (const auto window = mapper.map(file->position, bytes, bytes)) {
      const ByteView stream = window->from(file->position).first(bytes);
      try {
        listing.codec = detect_format(stream.first(std::min<std::size_t>(stream.size(), kReadBytes)), options.codec);
      } catch (const Error& e) {
        throw e.with_context(source.name(), std::nullopt);
      }
      // (gzip's, zstd's and lz4's facts give up at garbage after the stream: decoding lists it.)
      const StreamFacts facts = make_decoding_codec(listing.codec, options)->describe_stream(stream);
      if (mapper.file()->lost_pages.load()) detail::throw_lost_pages(*mapper.file(), source.name());
      listing.compressed_bytes = bytes;
      listing.check = facts.check;
      if (facts.uncompressed_bytes) {
        listing.units = facts.units;
        listing.uncompressed_bytes = *facts.uncompressed_bytes;
        return listing;
      }
      source.seek(file->position);
    }
  }
  CountingSink counter(source.name());
  HeadKeepingSource input(source);
  // Where the stream starts, if it can be read again there; SourceFile's fields held as values
  // (GCC 12 took an optional<SourceFile>'s for uninitialized).
  const std::optional<SourceFile> file_now = source.random_access() ? source.file() : std::nullopt;
  const std::uint64_t start = file_now ? file_now->position : 0;
  const std::uint64_t rest = file_now ? file_now->size - file_now->position : 0;
  DecompressOptions decode = options;
  decode.pass_through = false;
  listing.decoded = true;
  try {
    const DecompressStats stats = decompress(input, counter, decode);
    listing.codec = stats.codec;
    listing.compressed_bytes = stats.input_bytes;
  } catch (const Error& e) {
    // Everything before the garbage was decoded and checked (decompress() wrote it all).
    if (e.kind() != ErrorKind::kTrailingGarbage || !e.offset()) throw;
    if (listing.codec.empty()) {  // a pipe's, or a file's that did not map whole (decoding mapped windows)
      std::vector<std::uint8_t> head(input.head().begin(), input.head().end());
      if (head.empty() && rest > 0) {
        head.resize(static_cast<std::size_t>(std::min<std::uint64_t>(kReadBytes, rest)));
        head.resize(source.read_at(start, head.data(), head.size()));
      }
      listing.codec = detect_format(ByteView(head.data(), head.size()), options.codec);
    }
    listing.compressed_bytes = *e.offset();
    listing.trailing_garbage = e;
  }
  listing.uncompressed_bytes = counter.bytes();
  return listing;
}

StreamListing list_file(const std::string& path, const DecompressOptions& options) {
  FdSource source(path);
  return list_stream(source, options);
}

}  // namespace sluice
