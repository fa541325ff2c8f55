// The unit of work in every graph: a numbered piece of one stream, and the pool that recycles
// them. Internal to the library.
//
// A chunk's input buffer holds the history the codec asked for (the end of the previous chunk)
// followed by the chunk's own bytes, so the reader fills both with one copy and the compressor
// sees them contiguously; a chunk cut from a mapped file is a view of both instead, no copy.
// Chunks travel through the graph as raw pointers owned by the pool; the writer hands each back
// when it retires it, so buffers are allocated once per slot and reused for the whole run.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "core/mapped_file.h"
#include "sluice/bytes.h"
#include "sluice/codec_author.h"

namespace sluice::detail {

struct Chunk {
  std::uint32_t stream = 0;    // index of the stream this chunk belongs to
  std::uint64_t sequence = 0;  // global order across the run: the sequencer's key
  std::uint64_t offset = 0;    // offset of the payload's first byte within its stream
  bool first = false;          // first chunk of its stream
  bool last = false;           // last chunk of its stream
  bool flush = false;          // compression: ends at a flush point (ByteSource::take_flush_point)
  bool pause = false;          // compression, with last: the stream goes on elsewhere (StreamHandOff)
  bool skip = false;           // set once the run has failed: pass through without work
  Buffer input;                // history_bytes of history, then the payload
  std::size_t history_bytes = 0;
  Buffer output;
  std::uint64_t check = 0;     // codec-defined per-chunk check value (e.g. CRC-32)

  // Decompression only: what this piece of a compressed stream is.
  enum class Piece : std::uint8_t {
    kUnit,       // decodes alone (in parallel) to `output`
    kMarker,     // carries facts for the verifier, no data
    kSerial,     // compressed bytes for the serial streaming decoder
    kSerialEnd,  // the end of the serially decoded part
  };
  Piece piece = Piece::kUnit;
  Cut cut;
  // The bytes the chunk works on when they are not copied into `input`: a compression chunk's
  // history + payload cut from a mapped file, or a decompression piece's compressed bytes in a
  // read block or a mapped window. `keep` holds what the view points into (the pieces cut from
  // one block or window share it) until the chunk retires; set exactly when `view` is in use.
  ByteView view;
  std::shared_ptr<const void> keep;
  // Set for every chunk of a stream read (partly) from a mapping: the writer checks it before it
  // trusts the stream's output (core/mapped_file.h).
  std::shared_ptr<const MappedFileState> mapped_file;
  // Decompression only: the failure found while reading or decoding this piece. It travels in
  // order, so the writer emits everything before it first (a truncated stream still yields its
  // good prefix, as a tar extraction needs).
  std::exception_ptr error;
  // Decompression only: a speculative unit (Cut::speculative) that its decoder found was no unit;
  // the writer decodes it in order instead.
  bool guess_failed = false;

  ByteView bytes() const { return keep ? view : input.view(); }
  ByteView history() const { return bytes().first(history_bytes); }
  ByteView payload() const { return bytes().subspan(history_bytes); }
};

// A free list of chunks. Grows on demand; the graph's limiter bounds how many exist.
class ChunkPool {
 public:
  Chunk* acquire() {
    std::lock_guard lock(mutex_);
    Chunk* chunk;
    if (free_.empty()) {
      all_.push_back(std::make_unique<Chunk>());
      chunk = all_.back().get();
    } else {
      chunk = free_.back();
      free_.pop_back();
    }
    ++in_use_;
    if (in_use_ > peak_in_use_) peak_in_use_ = in_use_;
    return chunk;
  }

  void release(Chunk* chunk) {
    // The caller owns the chunk until it is on the free list: no lock needed to reset it (and a
    // block's deleter must not run under this lock).
    chunk->skip = false;
    chunk->guess_failed = false;
    chunk->error = nullptr;
    chunk->view = {};
    chunk->keep.reset();
    chunk->mapped_file.reset();
    std::lock_guard lock(mutex_);
    free_.push_back(chunk);
    --in_use_;
  }

  std::size_t peak_in_use() const {
    std::lock_guard lock(mutex_);
    return peak_in_use_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Chunk>> all_;
  std::vector<Chunk*> free_;
  std::size_t in_use_ = 0;
  std::size_t peak_in_use_ = 0;
};

}  // namespace sluice::detail
