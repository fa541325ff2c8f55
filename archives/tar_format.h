// The tar header block, both ways: building ustar headers (with a pax extended header in front
// when a field does not fit ustar) and decoding ustar/pax/GNU/v7 headers. Internal to the library.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/bytes.h"
#include "sluice/tar.h"

namespace sluice::detail {

constexpr std::size_t kTarBlockBytes = 512;
constexpr std::size_t kTarRecordBytes = 10240;  // archives are padded to this (GNU tar, bsdtar)

// Padding after `bytes` of content to the next block boundary.
constexpr std::uint64_t tar_padding(std::uint64_t bytes) {
  return (kTarBlockBytes - bytes % kTarBlockBytes) % kTarBlockBytes;
}

// Appends the header blocks for `entry` to `out`: a pax 'x' header when any field needs one
// (long or non-ASCII names, sizes from 8 GiB, large ids, sub-second or negative mtimes, a sparse
// file), then the ustar header. A sparse entry's data is sparse_map_data(), then its regions.
void append_tar_headers(Buffer& out, const TarEntry& entry);

// The map that starts a sparse entry's data (pax sparse format 1.0): the number of regions, then
// each one's offset and length, a decimal number a line, padded with NULs to the block.
std::string sparse_map_data(const std::vector<TarSparseRegion>& regions);

enum class HeaderCheck { kValid, kZero, kBadChecksum };

// Whether `block` (512 bytes) is a header with a good checksum, or all zeros.
HeaderCheck check_tar_header(const std::uint8_t* block);

// Decodes a header whose checksum is good into the fields a header holds (path, link target,
// typeflag, mode, ids, names, size, mtime, device numbers), before pax and GNU long-name records
// are applied. Throws Error (no path) on malformed numbers.
TarEntry decode_tar_header(const std::uint8_t* block);

// The map of an old GNU sparse header ('S': four regions at byte 386, "isextended" at 482, the real
// size at 483) or of one of the extension blocks that follow it (21 regions, "isextended" at 504),
// added to `out`. An unused region slot ends the list. Throws Error on malformed numbers.
struct OldGnuSparse {
  std::vector<TarSparseRegion> regions;
  bool extended = false;  // another extension block follows
  std::uint64_t real_size = 0;
};
void decode_old_gnu_sparse(const std::uint8_t* block, bool extension_block, OldGnuSparse& out);

// Parses pax extended header records ("LEN key=value\n" ...), calling `on_record` for each in
// order. Throws Error on a malformed record.
void parse_pax_records(std::string_view data,
                       const std::function<void(std::string_view key, std::string_view value)>& on_record);

// The components of a slash-separated path without empty and "." ones: "./a//b/" -> {"a", "b"}.
std::vector<std::string> path_components(const std::string& path);
// Components joined with '/'.
std::string join_components(const std::vector<std::string>& components);
// join_components(path_components(path)) in one pass, with no string per component (an 8 MiB
// name of "a/" is 4 million of them: 186 MB).
std::string normal_path(std::string_view path);

// Naming the compressed files of an archive's members (transcoding: "f" -> "f.gz"):
// - The name as the extractor takes it, without trailing "/" and "/.": "f/" + ".gz" would be a
//   file ".gz" in a directory "f" (and "f/." one "..gz").
std::string without_trailing_slashes(std::string path);
// - Whether a name may take the extension: not ".", ".." or a name ending in one, and short
//   enough for the system. Others are extracted under their own names, so that the extractor
//   refuses them as it does in any extraction ("..": "...gz" was written; a longer name is
//   refused, and splitting 8 MiB of "a/" cost 664 MB).
bool takes_extension(const std::string& path);
// - Where a symbolic link at `link` leads, from the top of the tree, for a target that only
//   descends (transcoding refuses others): "d/l" to "f" is "d/f". A link to a file that was
//   compressed is renamed, and so is its target, as a hard link to one is.
std::string symlink_target_path(std::string_view link, std::string_view target);

// pax values, read as leniently as the tars we interoperate with: leading blanks, a '+' or '-' sign
// and any number of leading zeros are taken. A time: "123.45" -> {123, 450000000}, anything after
// the number ignored; nullopt without digits or beyond 2^62 seconds.
std::optional<std::pair<std::int64_t, std::uint32_t>> parse_pax_time(std::string_view text);
// A number (size, uid, gid): decimal digits only after the sign, at most 2^63 - 1; nullopt
// otherwise (negative too).
std::optional<std::uint64_t> parse_pax_number(std::string_view text);

}  // namespace sluice::detail
