// The ISA-L (igzip) engine: the fastest inflate for streams of unknown size, and the fastest
// deflate at gzip's lowest level. ISA-L has levels of its own (0-3) that do not match zlib's;
// sluice uses its level 3 for every gzip level. Its levels 1 and 2 are faster but give other
// bytes for the same input depending on where the isal_zstream sits in memory (2.30, measured:
// the same 3,000 chunks of 123 bytes deflated by a stream at 26 addresses gave 26 different
// outputs, all valid; 4 of 26 for chunks of 64 KiB), so which worker compressed a chunk would
// show in the output. The cause, traced in Debian's 2.30 build: the deflate body of those levels
// (isal_deflate_icf_body_hash_hist_01/02/04), on the first byte of a stream without history,
// hashes the third position from rcx, which still holds the stream's address (the source's
// `mov tmp2, curr_data` is missing there), so that position goes into a hash slot chosen by
// crc32c(address >> 16). Level 3 is other code and gave the same bytes at every address and
// size tried; DeflateEngines.SameBytesFromEveryWorkersDeflater (codec_tests.cpp) checks it and
// is the test to run before taking levels 1 and 2 back with a later ISA-L. Level 3's output is
// 5% smaller than zlib's level 1 and 2% smaller than its 2 (BENCHMARKS.md, "gzip engines"), 1.6%
// larger than its 3 (the Silesia tar in 128 KiB chunks, 0.2795 against 0.2751).
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include <fmt/format.h>

#include "codecs/deflate_engines.h"
#include "sluice/error.h"

namespace sluice::codecs {
namespace {

// ISA-L's own level for every gzip level (see the top of the file).
constexpr int kIsalLevel = 3;

std::uint32_t clamp_u32(std::size_t n) {
  return static_cast<std::uint32_t>(std::min<std::size_t>(n, std::numeric_limits<std::uint32_t>::max()));
}

// The one place ISA-L's inflate codes become our errors: the reason for invalid data, else null.
const char* invalid_data_reason(int ret) {
  switch (ret) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid deflate code";
    case ISAL_INVALID_LOOKBACK:
      return "invalid distance too far back";
    default:
      return nullptr;
  }
}

[[noreturn]] void throw_inflate_error(int ret) {
  if (const char* reason = invalid_data_reason(ret)) throw Error(ErrorKind::kCorruptData, reason);
  throw Error(ErrorKind::kInternal, fmt::format("ISA-L inflate failed ({})", ret));
}

class IsalChunkDeflater final : public ChunkDeflater {
 public:
  IsalChunkDeflater() : level_buffer_(ISAL_DEF_LVL3_DEFAULT) {}

  // Stored blocks (5 bytes per 64 KiB) are the worst case; ISA-L needs some slack besides.
  std::size_t bound(std::size_t input_bytes) const override { return input_bytes + input_bytes / 16 + 1024; }

  // Not final: ISA-L's full flush, which ends on an empty stored block as a sync flush does.
  std::size_t deflate(ByteView input, std::span<std::uint8_t> out, bool final) override {
    // Every field zeroed first: isal_deflate_stateless_init leaves some unset, and ISA-L 2.30
    // reads one of them (hist_bits, the window) and others; garbage there gave other bytes from one
    // run to the next. The stream is a member (80 KiB), zeroed for each chunk as no state may
    // carry over: which chunks a thread's deflater gets differs between runs.
    isal_zstream& stream = stream_;
    std::memset(&stream, 0, sizeof stream);
    isal_deflate_stateless_init(&stream);
    stream.level = kIsalLevel;
    stream.level_buf = level_buffer_.data();
    stream.level_buf_size = clamp_u32(level_buffer_.size());
    stream.gzip_flag = IGZIP_DEFLATE;
    stream.end_of_stream = final ? 1 : 0;
    stream.flush = final ? NO_FLUSH : FULL_FLUSH;
    stream.next_in = const_cast<std::uint8_t*>(input.data());
    stream.avail_in = clamp_u32(input.size());
    stream.next_out = out.data();
    stream.avail_out = clamp_u32(out.size());
    const int ret = isal_deflate_stateless(&stream);
    if (ret != COMP_OK) throw Error(ErrorKind::kInternal, fmt::format("ISA-L deflate failed ({})", ret));
    if (stream.avail_in != 0) throw Error(ErrorKind::kInternal, "ISA-L deflate left input unconsumed");
    std::size_t written = out.size() - stream.avail_out;
    // Where the data does not compress, stateless ISA-L writes it as stored blocks and no flush
    // after them: the chunk would not end on the sync flush that independent chunks promise
    // (docs/independent-gzip.md). Stored blocks end byte-aligned at a block boundary, so the
    // empty stored block is added here.
    if (!final && written == stored_bytes(input.size()) && written > 0 && (out[0] & 0x07) == 0) {
      static constexpr std::uint8_t kEmptyStoredBlock[5] = {0x00, 0x00, 0x00, 0xFF, 0xFF};
      if (out.size() - written < sizeof kEmptyStoredBlock)
        throw Error(ErrorKind::kInternal, "ISA-L deflate: no room for the flush");
      std::memcpy(out.data() + written, kEmptyStoredBlock, sizeof kEmptyStoredBlock);
      written += sizeof kEmptyStoredBlock;
    }
    return written;
  }

  // The size of `input_bytes` as stored blocks (5 bytes of header per 65,535 bytes).
  static std::size_t stored_bytes(std::size_t input_bytes) {
    return input_bytes + 5 * std::max<std::size_t>(1, (input_bytes + 65534) / 65535);
  }

 private:
  std::vector<std::uint8_t> level_buffer_;
  isal_zstream stream_{};
};

void set_window(inflate_state& state, ByteView window) {
  if (window.empty()) return;
  const int ret = isal_inflate_set_dict(&state, const_cast<std::uint8_t*>(window.data()), clamp_u32(window.size()));
  if (ret != COMP_OK) throw Error(ErrorKind::kInternal, fmt::format("ISA-L inflate_set_dict failed ({})", ret));
}

// A stream that starts inside a byte: its first bits go into ISA-L's bit buffer, as if read.
void take_lead(inflate_state& state, LeadBits lead) {
  if (lead.count == 0) return;
  if (lead.count > 7) throw Error(ErrorKind::kInternal, "a lead of more than 7 bits");
  state.read_in = lead.value & ((1u << lead.count) - 1);
  state.read_in_length = lead.count;
}

// A fresh inflate of raw deflate (no gzip or zlib wrapper, no CRC) from `deflated` into `out`.
void start_raw_inflate(inflate_state& state, ByteView deflated, std::span<std::uint8_t> out) {
  isal_inflate_init(&state);
  state.crc_flag = ISAL_DEFLATE;
  state.next_in = const_cast<std::uint8_t*>(deflated.data());
  state.avail_in = clamp_u32(deflated.size());
  state.next_out = out.data();
  state.avail_out = clamp_u32(out.size());
}

class IsalWholeInflater final : public WholeInflater {
 public:
  void inflate(ByteView deflated, std::span<std::uint8_t> out) override {
    start_raw_inflate(state_, deflated, out);
    const int ret = isal_inflate_stateless(&state_);
    if (ret == ISAL_OUT_OVERFLOW) throw Error(ErrorKind::kCorruptData, "inflates to more than its size field says");
    if (ret == ISAL_END_INPUT) throw Error(ErrorKind::kCorruptData, "truncated");
    if (ret != ISAL_DECOMP_OK) throw_inflate_error(ret);
    if (state_.avail_out != 0 || state_.avail_in != 0) {
      throw Error(ErrorKind::kCorruptData, "its size field does not match its contents");
    }
  }

 private:
  inflate_state state_{};
};

class IsalStreamInflater final : public StreamInflater {
 public:
  IsalStreamInflater() { reset({}, {}); }

  void reset(ByteView window, LeadBits lead) override {
    isal_inflate_init(&state_);
    state_.crc_flag = ISAL_DEFLATE;  // gzip_codec.cpp checks the CRC, on another worker
    set_window(state_, window);
    take_lead(state_, lead);
  }

  Step inflate(ByteView input, std::span<std::uint8_t> out) override {
    Step step;
    if (state_.block_state == ISAL_BLOCK_FINISH) {
      step.ended = true;
      return step;
    }
    state_.next_in = const_cast<std::uint8_t*>(input.data());
    state_.avail_in = clamp_u32(input.size());
    const std::size_t offered = state_.avail_in;
    state_.next_out = out.data();
    state_.avail_out = clamp_u32(out.size());
    const std::size_t room = state_.avail_out;
    const int ret = isal_inflate(&state_);
    step.consumed = offered - state_.avail_in;
    step.produced = room - state_.avail_out;
    if (ret != ISAL_DECOMP_OK) {
      step.error = invalid_data_reason(ret);
      if (!step.error) throw_inflate_error(ret);
      return step;
    }
    step.ended = state_.block_state == ISAL_BLOCK_FINISH;
    if (step.ended) give_back_read_ahead(step);
    return step;
  }

 private:
  // ISA-L reads input 8 bytes at a time into a bit buffer; at the end of the stream the whole
  // bytes left in it belong to what follows (the gzip trailer). Give them back: first by
  // un-consuming this call's input, then, if the buffer reached into earlier input, as pushback.
  void give_back_read_ahead(Step& step) {
    const auto whole_bytes = static_cast<std::size_t>(std::max(state_.read_in_length, 0) / 8);
    if (whole_bytes <= step.consumed) {
      step.consumed -= whole_bytes;
    } else {
      const std::size_t earlier = whole_bytes - step.consumed;
      std::uint64_t bits = state_.read_in >> (state_.read_in_length % 8);
      for (std::size_t i = 0; i < earlier; ++i, bits >>= 8) step.pushback[i] = static_cast<std::uint8_t>(bits);
      step.pushback_bytes = earlier;
      step.consumed = 0;
    }
    state_.read_in = 0;
    state_.read_in_length = 0;
  }

  inflate_state state_{};
};

// The stateful inflate, which stops where the input ends and keeps its state for more.
//
// A piece that ends at a byte boundary must leave it waiting for a block header (about to read
// one, or having begun to with nothing to read: ISA-L reports either after a stored block) with
// no bits or bytes held back and no final block seen. A header begun with bits in hand would hold
// them in read_in or tmp_in_buffer.
//
// A piece that ends inside a byte is given its bits of that byte followed by an empty final
// block, twice from the same state: a stored one (the bits 1, 00, zeros to the byte boundary,
// LEN 0, NLEN 0xFFFF) and a fixed Huffman one (1, 10, end of block as seven zero bits, zeros to
// the byte boundary). Each must end the stream exactly at its end. Either alone can be fooled by
// a stream made for it: a real final stored block that starts in the piece's last bits skips to
// the byte boundary and reads the stored ending's LEN and NLEN as its own, and a real block that
// runs on past the cut could end on the last bits of one ending. Both cannot: the fixed ending
// has no LEN and NLEN to give, and a block's end-of-block code cannot end on the stored ending's
// ones and on the fixed ending's zeros alike. So both end exactly only when a block of the
// piece's own ended where the piece does and was not final.
class IsalChunkInflater final : public ChunkInflater {
 public:
  std::size_t inflate(ByteView deflated, std::span<std::uint8_t> out, ByteView window, PieceEdges edges) override {
    if (edges.tail_bits > 7) throw Error(ErrorKind::kInternal, "a tail of more than 7 bits");
    const bool inside_byte = edges.tail_bits != 0 && !deflated.empty();
    start_raw_inflate(state_, inside_byte ? deflated.first(deflated.size() - 1) : deflated, out);
    set_window(state_, window);
    take_lead(state_, edges.lead);
    const int ret = isal_inflate(&state_);
    if (ret != ISAL_DECOMP_OK) throw_inflate_error(ret);
    if (state_.avail_in != 0) throw not_at_end(state_);
    if (inside_byte) {
      const auto last = static_cast<std::uint8_t>(deflated.back() & ((1u << edges.tail_bits) - 1));
      probe_ = state_;
      const std::size_t stored = finish(state_, stored_ending(last, edges.tail_bits), out.size());
      if (finish(probe_, fixed_ending(last, edges.tail_bits), out.size()) != stored) {
        throw Error(ErrorKind::kCorruptData, "does not end at a block boundary");
      }
      return stored;
    }
    if (state_.tmp_in_size != 0) throw not_at_end(state_);
    const bool at_header = state_.block_state == ISAL_BLOCK_NEW_HDR || state_.block_state == ISAL_BLOCK_HDR;
    if (!at_header || state_.bfinal != 0 || state_.read_in_length != 0 ||
        state_.tmp_out_valid != state_.tmp_out_processed || state_.copy_overflow_length != 0) {
      throw Error(ErrorKind::kCorruptData, "does not end at a block boundary");
    }
    return out.size() - state_.avail_out;
  }

 private:
  // The bytes of an ending: the piece's `tail` bits of its last byte, then an empty final block.
  struct Ending {
    std::uint8_t bytes[8] = {};
    int padding = 0;  // zero bits after the block, to the byte boundary, that stay unread

    Ending(std::uint8_t last, int tail) : bytes{last}, at_(tail) {}
    void put(unsigned value, int count) {
      for (int i = 0; i < count; ++i, ++at_) {
        bytes[at_ / 8] = static_cast<std::uint8_t>(bytes[at_ / 8] | ((value >> i) & 1u) << (at_ % 8));
      }
    }
    void align() {
      padding = (8 - at_ % 8) % 8;
      at_ += padding;
    }
    std::uint32_t size() const { return static_cast<std::uint32_t>((at_ + 7) / 8); }

   private:
    int at_;
  };

  static Ending stored_ending(std::uint8_t last, int tail) {
    Ending ending(last, tail);
    ending.put(1, 1);  // BFINAL
    ending.put(0, 2);  // BTYPE 0, stored
    ending.align();
    ending.put(0x0000, 16);
    ending.put(0xFFFF, 16);
    ending.padding = 0;  // a stored block skips its padding: nothing is left after NLEN
    return ending;
  }

  static Ending fixed_ending(std::uint8_t last, int tail) {
    Ending ending(last, tail);
    ending.put(1, 1);  // BFINAL
    ending.put(1, 2);  // BTYPE 1, fixed Huffman
    ending.put(0, 7);  // end of block
    ending.align();
    return ending;
  }

  // Feeds `ending` to `state`, which must then end the stream exactly after it; returns the
  // bytes written in all.
  static std::size_t finish(inflate_state& state, Ending ending, std::size_t room) {
    state.next_in = ending.bytes;
    state.avail_in = ending.size();
    const int ret = isal_inflate(&state);
    if (ret != ISAL_DECOMP_OK) throw_inflate_error(ret);
    if (state.block_state != ISAL_BLOCK_FINISH) throw not_at_end(state);
    if (state.avail_in != 0 || state.read_in_length != ending.padding ||
        state.tmp_out_valid != state.tmp_out_processed) {
      throw Error(ErrorKind::kCorruptData, "does not end at a block boundary");
    }
    return room - state.avail_out;
  }

  // Input left over: the output is full, or the stream went on (or ended) elsewhere.
  static Error not_at_end(const inflate_state& state) {
    return Error(ErrorKind::kCorruptData,
                 state.avail_out == 0 ? "inflates to more than a chunk holds" : "does not end at a block boundary");
  }

  inflate_state state_{};
  inflate_state probe_{};  // the same piece, to end another way
};

}  // namespace

std::unique_ptr<ChunkInflater> make_isal_chunk_inflater() { return std::make_unique<IsalChunkInflater>(); }
// Every gzip level is ISA-L's level 3 (the top of the file says why).
std::unique_ptr<ChunkDeflater> make_isal_chunk_deflater(int /*level*/) { return std::make_unique<IsalChunkDeflater>(); }
std::unique_ptr<WholeInflater> make_isal_whole_inflater() { return std::make_unique<IsalWholeInflater>(); }
std::unique_ptr<StreamInflater> make_isal_stream_inflater() { return std::make_unique<IsalStreamInflater>(); }

std::uint32_t update_crc32(std::uint32_t crc, ByteView bytes) {
  return crc32_gzip_refl(crc, bytes.data(), bytes.size());
}

}  // namespace sluice::codecs
