// Creating zip archives: the walk cuts files into chunks (one reader), the chunks are compressed
// on every worker, and one writer puts the members in order, the central directory last.
//
//   walk + read (serial) -> compress_part (parallel) -> write (serial, in order)
//
// The pipeline admits two chunks per worker, so memory in flight is bounded whatever the sizes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <string>
#include <unordered_map>

#include <fmt/format.h>
#include <oneapi/tbb/parallel_pipeline.h>

#include "archives/tree_walk.h"
#include "archives/zip_format.h"
#include "core/first_error.h"
#include "sluice/codec.h"
#include "sluice/flow.h"
#include "sluice/parts.h"
#include "sluice/zip.h"

namespace sluice {

using namespace detail;

namespace {

// From this size on a file's local header carries zip64 sizes: its compressed size, not known
// before it is written, could pass 4 GiB.
constexpr std::uint64_t kZip64FromBytes = 0xff000000u;
constexpr std::uint16_t kMadeBy = (kZipHostUnix << 8) | 63;  // Unix, APPNOTE 6.3

struct Member {
  ZipEntry entry;
  std::string name;  // as stored: a directory's ends with '/'
  std::uint32_t external = 0;
  bool zip64_local = false;
  bool descriptor = false;
  bool whole = false;            // one piece: sizes and CRC-32 known before the header is written
  std::uint64_t read = 0;        // bytes of the file read so far
  std::uint64_t compressed = 0;  // bytes of its data written so far
};

struct Piece {
  std::shared_ptr<Member> member;
  bool first = false;
  bool last = false;
  Buffer input;
  std::size_t input_bytes = 0;
  Buffer history;  // the member's bytes just before `input` (the codec's window)
  Buffer output;
  bool compress = false;  // a file's data; links and directories are stored
  std::uint32_t crc32 = 0;
  std::uint16_t method = kZipMethodStored;
};

std::uint16_t version_needed(std::uint16_t method, bool zip64) {
  std::uint16_t version = method == kZipMethodStored ? 10 : method == 8 ? 20 : 63;
  if (zip64) version = std::max<std::uint16_t>(version, 45);
  return version;
}

bool is_ascii(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

void put_timestamp(Buffer& out, std::int64_t mtime) {
  zip_put16(out, kZipExtraTimestamp);
  zip_put16(out, 5);
  const std::uint8_t flags = 1;  // modification time
  out.append(ByteView(&flags, 1));
  // Signed before 1970; unsigned past 2038-01-19 (to 2106), as Info-ZIP zip writes it on 64-bit
  // systems and unzip and sluice read it (by the DOS date).
  const auto clamped = std::clamp<std::int64_t>(mtime, std::numeric_limits<std::int32_t>::min(),
                                                std::numeric_limits<std::uint32_t>::max());
  zip_put32(out, static_cast<std::uint32_t>(clamped));
}

class ZipWriter {
 public:
  ZipWriter(const std::vector<std::string>& paths, ByteSink& sink, const ZipCreateOptions& options)
      : options_(options), sink_(sink), walk_(paths, options.directory, options.exclude) {
    std::string codec_name = options.codec;
    if (codec_name.empty()) {
      for (const std::string& name : CodecRegistry::global().names()) {
        if (CodecRegistry::global().find(name)->zip_method == 8) codec_name = name;
      }
    }
    const auto info = CodecRegistry::global().find(codec_name);
    if (!info) throw Error(ErrorKind::kUsage, fmt::format("unknown codec '{}'", codec_name));
    if (info->zip_method == 0)
      throw Error(ErrorKind::kUsage, fmt::format("{} has no zip compression method", codec_name));
    method_ = options.store ? kZipMethodStored : info->zip_method;
    history_bytes_ = options.store ? 0 : info->history_bytes;
    compress_.codec = codec_name;
    compress_.codec_options.level = options.level;
    compress_.codec_options.chunk_bytes = options.chunk_bytes;
    // Validates level and chunk size, and gives the defaults.
    const auto codec = CodecRegistry::global().create(codec_name, compress_.codec_options);
    compress_.codec_options = codec->options();
    chunk_bytes_ = compress_.codec_options.chunk_bytes;
  }
  ~ZipWriter() { close_file(); }

  ZipStats run() {
    const int workers = resolve_threads(options_.threads);
    // No filter throws: oneTBB's pipeline, cancelled by an exception, does not destroy the pieces
    // in flight (as in zip extraction). The first failure is kept; the reader then stops, the
    // pieces in flight drain unwritten, and the failure is thrown after the pipeline.
    detail::FirstError failure;
    run_in_task_arena(workers, [&] {
      tbb::parallel_pipeline(
          static_cast<std::size_t>(workers) * 2,
          tbb::make_filter<void, std::shared_ptr<Piece>>(tbb::filter_mode::serial_in_order,
                                                         [&](tbb::flow_control& control) -> std::shared_ptr<Piece> {
                                                           try {
                                                             if (!failure.failed()) return next_piece(control);
                                                           } catch (...) {
                                                             failure.record(std::current_exception());
                                                           }
                                                           control.stop();
                                                           return nullptr;
                                                         }) &
              tbb::make_filter<std::shared_ptr<Piece>, std::shared_ptr<Piece>>(
                  tbb::filter_mode::parallel,
                  [&](std::shared_ptr<Piece> piece) -> std::shared_ptr<Piece> {
                    if (failure.failed()) return piece;
                    try {
                      return compress(std::move(piece));
                    } catch (...) {
                      failure.record(std::current_exception());
                      return nullptr;
                    }
                  }) &
              tbb::make_filter<std::shared_ptr<Piece>, void>(tbb::filter_mode::serial_in_order,
                                                             [&](std::shared_ptr<Piece> piece) {
                                                               if (failure.failed()) return;
                                                               try {
                                                                 write(*piece);
                                                               } catch (...) {
                                                                 failure.record(std::current_exception());
                                                               }
                                                             }));
    });
    failure.rethrow_if_failed();
    write_directory();
    ZipStats stats;
    stats.entries = members_.size();
    stats.archive_bytes = written_;
    stats.stored_bytes = stored_bytes_;
    return stats;
  }

 private:
  void close_file() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // --- reading (serial) ---

  std::shared_ptr<Piece> next_piece(tbb::flow_control& control) {
    if (options_.stop.stop_requested()) throw Error(ErrorKind::kCancelled, "stopped: the run was asked to stop");
    while (!file_) {
      auto walked = walk_.next();
      if (!walked) {
        control.stop();
        return nullptr;
      }
      if (auto piece = start_member(*walked)) return piece;
    }
    return read_piece();
  }

  // The first piece of the entry at `walked`; null for an entry left out.
  std::shared_ptr<Piece> start_member(const WalkedPath& walked) {
    const struct stat& status = walked.status;
    for (const auto& [device, inode] : options_.skip_files) {
      if (device == status.st_dev && inode == status.st_ino) {
        if (options_.on_skipped) options_.on_skipped(walked.disk_path, "is the archive being written; not added");
        return nullptr;
      }
    }
    auto member = std::make_shared<Member>();
    ZipEntry& entry = member->entry;
    entry.path = walked.archive_name;
    while (entry.path.starts_with("./")) entry.path.erase(0, 2);  // as zip stores "zip -r a.zip ."
    if (entry.path.empty() || entry.path == ".") return nullptr;  // "." or "/" itself: its children only
    member->name = entry.path;
    entry.mode = status.st_mode & 07777;
    entry.unix_mode = true;
    entry.mtime_seconds = options_.mtime_seconds ? *options_.mtime_seconds : status.st_mtim.tv_sec;
    member->external = static_cast<std::uint32_t>(status.st_mode) << 16;
    if (S_ISDIR(status.st_mode)) member->name += '/';
    // A file given twice, or a path under one given before ("a a/b"), is stored once, as Info-ZIP
    // does: unzip asks what to do with a second member of a name, and 7-Zip refuses to write one.
    // Another file whose name comes out the same ("x/f" and "../x/f", whose "../" is not stored)
    // is an error, as Info-ZIP's "cannot repeat names": left out, it was lost without a word.
    const auto [first, added] =
        names_.try_emplace(member->name, FirstOfName{status.st_dev, status.st_ino, walked.disk_path});
    if (!added) {
      if (first->second.device == status.st_dev && first->second.inode == status.st_ino) return nullptr;
      throw Error(ErrorKind::kUsage,
                  fmt::format("would be stored as '{}', the name of {} already: a zip holds one member of a name",
                              member->name, first->second.disk_path),
                  walked.disk_path);
    }
    auto piece = std::make_shared<Piece>();
    piece->member = member;
    piece->first = true;
    if (S_ISDIR(status.st_mode)) {
      entry.type = ZipEntryType::kDirectory;
      member->external |= 0x10;  // MS-DOS directory attribute
      member->whole = true;
      piece->last = true;
      return piece;
    }
    if (S_ISLNK(status.st_mode)) {
      entry.type = ZipEntryType::kSymlink;
      piece->input.append(as_bytes(walked.link_target));
      member->whole = true;
      piece->last = true;
      return piece;
    }
    if (!S_ISREG(status.st_mode)) {
      if (options_.on_skipped)
        options_.on_skipped(walked.disk_path, "not a file, directory or symbolic link; not added");
      return nullptr;
    }
    // Open before the header is written so that the size recorded is the size read.
    fd_ = ::open(walked.disk_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd_ < 0) throw_system_error("cannot archive", walked.disk_path);
    struct stat opened {};
    if (::fstat(fd_, &opened) != 0) throw_system_error("cannot stat", walked.disk_path);
    if (!S_ISREG(opened.st_mode)) throw Error(ErrorKind::kIo, "changed type while being archived", walked.disk_path);
    entry.size = static_cast<std::uint64_t>(opened.st_size);
    if (!options_.mtime_seconds) entry.mtime_seconds = opened.st_mtim.tv_sec;
    member->zip64_local = entry.size >= kZip64FromBytes;
    member->whole = entry.size <= chunk_bytes_;
    member->descriptor = !member->whole && !sink_.random_access();
    file_ = member;
    file_path_ = walked.disk_path;
    history_.clear();
    return read_piece(std::move(piece));
  }

  std::shared_ptr<Piece> read_piece(std::shared_ptr<Piece> piece = nullptr) {
    if (!piece) {
      piece = std::make_shared<Piece>();
      piece->member = file_;
    }
    Member& member = *file_;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_bytes_, member.entry.size - member.read));
    piece->input.resize(want);
    for (std::size_t done = 0; done < want;) {
      const ssize_t n = ::pread(fd_, piece->input.data() + done, want - done, static_cast<off_t>(member.read + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_system_error("cannot read", file_path_);
      if (n == 0) throw Error(ErrorKind::kIo, "shrank while being archived", file_path_);
      done += static_cast<std::size_t>(n);
    }
    member.read += want;
    piece->compress = !options_.store;
    piece->history = std::move(history_);
    if (history_bytes_ > 0) {
      const std::size_t keep = std::min(history_bytes_, want);
      history_.clear();
      history_.append(piece->input.view().last(keep));
    }
    piece->last = member.read == member.entry.size;
    if (piece->last) {
      file_.reset();
      close_file();
    }
    return piece;
  }

  // --- compressing (parallel) ---

  std::shared_ptr<Piece> compress(std::shared_ptr<Piece> piece) {
    piece->crc32 = zip_crc32(0, piece->input.view());
    piece->input_bytes = piece->input.size();
    if (!piece->compress || piece->input.size() == 0) {
      piece->output = std::move(piece->input);
      return piece;
    }
    CompressedPart part = compress_part(piece->history.view(), piece->input.view(), piece->last, compress_);
    piece->history = Buffer();
    if (piece->first && piece->last && part.bytes.size() >= piece->input.size()) {
      piece->output = std::move(piece->input);  // stored: compression would not make it smaller
    } else {
      piece->output = std::move(part.bytes);
      piece->method = method_;
    }
    piece->input = Buffer();
    return piece;
  }

  // --- writing (serial, in order) ---

  void emit(ByteView bytes) {
    sink_.write(bytes);
    written_ += bytes.size();
  }

  void write(Piece& piece) {
    Member& member = *piece.member;
    ZipEntry& entry = member.entry;
    if (piece.first) {
      entry.header_offset = written_;
      entry.method = member.whole ? piece.method : method_;
      if (member.whole) {
        entry.crc32 = piece.crc32;
        entry.compressed_size = piece.output.size();
        entry.size = piece.input_bytes;
      }
      write_local_header(member);
    }
    emit(piece.output.view());
    if (!member.whole) {
      entry.crc32 = piece.first ? piece.crc32 : zip_crc32_combine(entry.crc32, piece.crc32, piece.input_bytes);
      member.compressed += piece.output.size();
    }
    if (!piece.last) return;
    if (!member.whole) finish_member(member);
    stored_bytes_ += entry.size;
    if (options_.on_entry) options_.on_entry(entry);
    members_.push_back(std::move(piece.member));
  }

  void write_local_header(Member& member) {
    const ZipEntry& entry = member.entry;
    const bool known = member.whole;
    Buffer header;
    zip_put32(header, kZipLocalSignature);
    zip_put16(header, version_needed(entry.method, member.zip64_local));
    std::uint16_t flags = 0;
    if (member.descriptor) flags |= kZipFlagDescriptor;
    if (!is_ascii(member.name) && zip_valid_utf8(member.name)) flags |= kZipFlagUtf8;
    member.entry.flags = flags;
    zip_put16(header, flags);
    zip_put16(header, entry.method);
    const auto [date, time] = zip_unix_to_dos(entry.mtime_seconds);
    zip_put16(header, time);
    zip_put16(header, date);
    zip_put32(header, known ? entry.crc32 : 0);
    if (member.zip64_local) {
      zip_put32(header, kZip32Max);
      zip_put32(header, kZip32Max);
    } else {
      zip_put32(header, known ? static_cast<std::uint32_t>(entry.compressed_size) : 0);
      zip_put32(header, known ? static_cast<std::uint32_t>(entry.size) : 0);
    }
    zip_put16(header, static_cast<std::uint16_t>(member.name.size()));
    zip_put16(header, static_cast<std::uint16_t>(9 + (member.zip64_local ? 20 : 0) + (chunked(member) ? 8 : 0)));
    header.append(as_bytes(member.name));
    put_timestamp(header, entry.mtime_seconds);
    if (member.zip64_local) {  // first after the timestamp: finish_member() patches it there
      zip_put16(header, kZipExtraZip64);
      zip_put16(header, 16);
      zip_put64(header, known ? entry.size : 0);
      zip_put64(header, known ? entry.compressed_size : 0);
    }
    if (chunked(member)) put_chunks(header);
    emit(header.view());
  }

  // A member of several compressed pieces says so, with the chunk size, for readers that decode
  // them in parallel (zip_format.h); stored data needs no decoding.
  bool chunked(const Member& member) const { return !member.whole && method_ != kZipMethodStored; }
  void put_chunks(Buffer& out) const {
    zip_put16(out, kZipExtraSluiceChunks);
    zip_put16(out, 4);
    zip_put32(out, static_cast<std::uint32_t>(chunk_bytes_));
  }

  // A member of several pieces: its CRC-32 and sizes after the data (a pipe) or in its header.
  void finish_member(Member& member) {
    ZipEntry& entry = member.entry;
    entry.compressed_size = member.compressed;
    if (!member.zip64_local && entry.compressed_size >= kZip32Max) {
      throw Error(ErrorKind::kInternal, "member grew past 4 GiB compressed without zip64", member.name);
    }
    if (member.descriptor) {
      Buffer descriptor;
      zip_put32(descriptor, kZipDescriptorSignature);
      zip_put32(descriptor, entry.crc32);
      if (member.zip64_local) {
        zip_put64(descriptor, entry.compressed_size);
        zip_put64(descriptor, entry.size);
      } else {
        zip_put32(descriptor, static_cast<std::uint32_t>(entry.compressed_size));
        zip_put32(descriptor, static_cast<std::uint32_t>(entry.size));
      }
      emit(descriptor.view());
      return;
    }
    Buffer fields;
    zip_put32(fields, entry.crc32);
    if (!member.zip64_local) {
      zip_put32(fields, static_cast<std::uint32_t>(entry.compressed_size));
      zip_put32(fields, static_cast<std::uint32_t>(entry.size));
    }
    sink_.write_at(entry.header_offset + 14, fields.view());
    if (member.zip64_local) {
      Buffer sizes;
      zip_put64(sizes, entry.size);
      zip_put64(sizes, entry.compressed_size);
      // After the header, the name and the timestamp field, the zip64 field's id and length.
      sink_.write_at(entry.header_offset + kZipLocalBytes + member.name.size() + 9 + 4, sizes.view());
    }
  }

  void write_directory() {
    const std::uint64_t directory_offset = written_;
    for (const auto& member : members_) {
      const ZipEntry& entry = member->entry;
      const bool big_size = entry.size >= kZip32Max || entry.compressed_size >= kZip32Max || member->zip64_local;
      const bool big_offset = entry.header_offset >= kZip32Max;
      Buffer zip64;
      if (big_size) {
        zip_put64(zip64, entry.size);
        zip_put64(zip64, entry.compressed_size);
      }
      if (big_offset) zip_put64(zip64, entry.header_offset);
      Buffer record;
      zip_put32(record, kZipCentralSignature);
      zip_put16(record, kMadeBy);
      zip_put16(record, version_needed(entry.method, big_size || big_offset || member->zip64_local));
      zip_put16(record, entry.flags);
      zip_put16(record, entry.method);
      const auto [date, time] = zip_unix_to_dos(entry.mtime_seconds);
      zip_put16(record, time);
      zip_put16(record, date);
      zip_put32(record, entry.crc32);
      zip_put32(record, big_size ? kZip32Max : static_cast<std::uint32_t>(entry.compressed_size));
      zip_put32(record, big_size ? kZip32Max : static_cast<std::uint32_t>(entry.size));
      zip_put16(record, static_cast<std::uint16_t>(member->name.size()));
      zip_put16(record,
                static_cast<std::uint16_t>(9 + (zip64.size() > 0 ? 4 + zip64.size() : 0) + (chunked(*member) ? 8 : 0)));
      zip_put16(record, 0);  // comment
      zip_put16(record, 0);  // disk
      zip_put16(record, 0);  // internal attributes
      zip_put32(record, member->external);
      zip_put32(record, big_offset ? kZip32Max : static_cast<std::uint32_t>(entry.header_offset));
      record.append(as_bytes(member->name));
      put_timestamp(record, entry.mtime_seconds);
      if (zip64.size() > 0) {
        zip_put16(record, kZipExtraZip64);
        zip_put16(record, static_cast<std::uint16_t>(zip64.size()));
        record.append(zip64.view());
      }
      if (chunked(*member)) put_chunks(record);
      emit(record.view());
    }
    const std::uint64_t directory_bytes = written_ - directory_offset;
    const std::uint64_t count = members_.size();
    const bool zip64 = count >= kZip16Max || directory_offset >= kZip32Max || directory_bytes >= kZip32Max;
    Buffer end;
    if (zip64) {
      const std::uint64_t record_offset = written_;
      zip_put32(end, kZip64EndSignature);
      zip_put64(end, kZip64EndBytes - 12);
      zip_put16(end, kMadeBy);
      zip_put16(end, 45);
      zip_put32(end, 0);
      zip_put32(end, 0);
      zip_put64(end, count);
      zip_put64(end, count);
      zip_put64(end, directory_bytes);
      zip_put64(end, directory_offset);
      zip_put32(end, kZip64LocatorSignature);
      zip_put32(end, 0);
      zip_put64(end, record_offset);
      zip_put32(end, 1);
    }
    zip_put32(end, kZipEndSignature);
    zip_put16(end, 0);
    zip_put16(end, 0);
    zip_put16(end, static_cast<std::uint16_t>(std::min<std::uint64_t>(count, kZip16Max)));
    zip_put16(end, static_cast<std::uint16_t>(std::min<std::uint64_t>(count, kZip16Max)));
    zip_put32(end, static_cast<std::uint32_t>(std::min<std::uint64_t>(directory_bytes, kZip32Max)));
    zip_put32(end, static_cast<std::uint32_t>(std::min<std::uint64_t>(directory_offset, kZip32Max)));
    zip_put16(end, 0);  // comment
    emit(end.view());
  }

  const ZipCreateOptions& options_;
  ByteSink& sink_;
  TreeWalk walk_;
  CompressOptions compress_;
  std::uint16_t method_ = 0;
  struct FirstOfName {
    dev_t device;
    ino_t inode;
    std::string disk_path;
  };
  std::unordered_map<std::string, FirstOfName> names_;  // of the members started: the file that has each
  std::size_t history_bytes_ = 0;
  std::size_t chunk_bytes_ = 0;
  // The file being read: its member, descriptor and path, and the tail of its last piece.
  std::shared_ptr<Member> file_;
  int fd_ = -1;
  std::string file_path_;
  Buffer history_;
  // Written so far.
  std::uint64_t written_ = 0;
  std::uint64_t stored_bytes_ = 0;
  std::vector<std::shared_ptr<Member>> members_;
};

}  // namespace

ZipStats create_zip(const std::vector<std::string>& paths, ByteSink& sink, const ZipCreateOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  ZipWriter writer(paths, sink, options);
  ZipStats stats = writer.run();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace sluice
