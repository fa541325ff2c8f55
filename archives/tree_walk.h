// The walk of the paths given to an archive writer (tar and zip share it). Internal to the library.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sluice/tar.h"

namespace sluice::detail {

struct WalkedPath {
  std::string disk_path;
  // The name in the archive: the operand without leading "/" and "../" and trailing slashes,
  // then the names below it; "" for an operand such as "/" or "..".
  std::string archive_name;
  struct stat status {};    // lstat(): a symlink is not followed
  std::string link_target;  // a symlink's
};

// Operands in order, each directory before its children and the children in byte order of their
// names, so that the same tree gives the same archive. Paths the exclusion rules name are left
// out (a directory with all under it); a directory with an empty archive name ("/") gives its
// children only.
class TreeWalk {
 public:
  // Relative operands are taken under `directory` when it is given (tar -C). Without `recursive`
  // only the operands themselves are given (a directory without its contents); with
  // `one_file_system` a directory on another file system than the one it lies in is given but
  // not walked (GNU tar's --no-recursion and --one-file-system).
  // `on_prefix_removed` is told what an operand's name loses in front ("/", "../", "a/../"), as
  // each operand is begun.
  TreeWalk(std::vector<std::string> operands, std::string directory, std::vector<std::string> exclude,
           bool recursive = true, bool one_file_system = false,
           std::function<void(const std::string& prefix)> on_prefix_removed = {});
  // The next path; nullopt at the end. Throws Error naming the path that cannot be read.
  std::optional<WalkedPath> next();

 private:
  struct Planned {
    std::string disk_path;
    std::string archive_name;
    std::optional<dev_t> parent_device;  // the device of the directory it was found in; none for an operand
  };
  std::vector<std::string> operands_;
  std::size_t next_operand_ = 0;
  std::string directory_;
  TarExclude exclude_;
  bool recursive_ = true;
  bool one_file_system_ = false;
  std::function<void(const std::string&)> on_prefix_removed_;
  std::vector<Planned> stack_;  // depth-first, sorted
};

}  // namespace sluice::detail
