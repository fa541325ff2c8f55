// The walk of the paths given to an archive writer.
#include "archives/tree_walk.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/file_descriptor.h"
#include "sluice/error.h"

namespace sluice::detail {
namespace {

// The archive name for an operand, as GNU tar stores it: without a leading "/", without
// everything up to and including the last ".." component (../a, ./../a and sub/../a all become
// a, which every extractor takes), and without trailing slashes.
std::string archive_name_for(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  for (std::size_t at = 0; at < path.size();) {
    std::size_t end = path.find('/', at);
    if (end == std::string::npos) end = path.size();
    if (path.compare(at, end - at, "..") == 0) {
      path.erase(0, std::min(end + 1, path.size()));
      at = 0;
    } else {
      at = end + 1;
    }
  }
  while (path.starts_with("/")) path.erase(0, 1);
  return path;
}

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// Directory children in byte order of their names, so the archive does not depend on readdir order.
std::vector<std::string> sorted_children(const std::string& dir) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) throw_system_error("cannot read directory", dir);
  std::vector<std::string> names;
  errno = 0;
  while (const dirent* item = ::readdir(handle)) {
    const std::string name = item->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  const int saved = errno;
  ::closedir(handle);
  if (saved != 0) {
    errno = saved;
    throw_system_error("cannot read directory", dir);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_link(const std::string& path, std::size_t size_hint) {
  std::string target(size_hint + 1, '\0');
  for (;;) {
    const ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    if (n < 0) throw_system_error("cannot read symbolic link", path);
    if (static_cast<std::size_t>(n) < target.size()) {
      target.resize(static_cast<std::size_t>(n));
      return target;
    }
    target.resize(target.size() * 2);
  }
}

}  // namespace

TreeWalk::TreeWalk(std::vector<std::string> operands, std::string directory, std::vector<std::string> exclude,
                   bool recursive, bool one_file_system,
                   std::function<void(const std::string& prefix)> on_prefix_removed)
    : operands_(std::move(operands)),
      directory_(std::move(directory)),
      exclude_(std::move(exclude)),
      recursive_(recursive),
      one_file_system_(one_file_system),
      on_prefix_removed_(std::move(on_prefix_removed)) {}

std::optional<WalkedPath> TreeWalk::next() {
  for (;;) {
    while (stack_.empty()) {
      if (next_operand_ == operands_.size()) return std::nullopt;
      const std::string& operand = operands_[next_operand_++];
      check_system_name(operand);
      check_system_name(directory_);
      const bool relative = !operand.starts_with("/") && !directory_.empty();
      std::string name = archive_name_for(operand);
      if (on_prefix_removed_) {
        std::string_view kept = operand;
        while (kept.size() > 1 && kept.back() == '/') kept.remove_suffix(1);
        if (kept.size() > name.size()) on_prefix_removed_(std::string(kept.substr(0, kept.size() - name.size())));
      }
      stack_.push_back({relative ? join(directory_, operand) : operand, std::move(name), std::nullopt});
    }
    Planned planned = std::move(stack_.back());
    stack_.pop_back();
    if (exclude_.excludes(planned.archive_name)) continue;  // and, for a directory, all under it
    WalkedPath walked;
    if (::lstat(planned.disk_path.c_str(), &walked.status) != 0)
      throw_system_error("cannot archive", planned.disk_path);
    if (S_ISDIR(walked.status.st_mode)) {
      // A mount point is given as a directory, without what is mounted there (GNU tar's
      // --one-file-system); without recursion, so is every directory.
      const bool other_file_system =
          one_file_system_ && planned.parent_device && *planned.parent_device != walked.status.st_dev;
      if (recursive_ && !other_file_system) {
        // Children go on the stack in reverse so that they come off it in order.
        const auto children = sorted_children(planned.disk_path);
        for (auto it = children.rbegin(); it != children.rend(); ++it) {
          stack_.push_back({join(planned.disk_path, *it), join(planned.archive_name, *it), walked.status.st_dev});
        }
      }
      if (planned.archive_name.empty()) continue;  // "/" itself: its children only
    } else if (S_ISLNK(walked.status.st_mode)) {
      walked.link_target = read_link(planned.disk_path, static_cast<std::size_t>(walked.status.st_size));
    }
    walked.disk_path = std::move(planned.disk_path);
    walked.archive_name = std::move(planned.archive_name);
    return walked;
  }
}

}  // namespace sluice::detail
