// Atomic file writes (temporary file, fsync, rename, fsync of the folder), whole-folder saves
// (Note [Whole saves]) and whole-file reads.
#include "saving/files.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "meshflow/core/error.h"
#include "meshflow/models/saving.h"

namespace meshflow {
namespace saving {

void (*g_after_chunk_written)(size_t) = nullptr;

std::string read_whole_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  MF_CHECK(std::filesystem::exists(path, ec), "cannot read ", what, " '", path, "': the file does not exist");
  MF_CHECK(!std::filesystem::is_directory(path, ec), "cannot read ", what, " '", path, "': it is a folder");
  std::ifstream f(path, std::ios::binary);
  MF_CHECK(f.good(), "cannot open ", what, " '", path, "': ", std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  MF_CHECK(!f.bad(), "error reading ", what, " '", path, "': ", std::strerror(errno));
  return bytes;
}

void make_folder(const std::string& folder) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  MF_CHECK(!ec && std::filesystem::is_directory(folder), "cannot create the folder '", folder, "': ", ec.message());
}

namespace {

namespace fs = std::filesystem;

// The target as an absolute path without a trailing separator ("out/model/" -> /cwd/out/model).
fs::path normalized(const std::string& target) {
  fs::path p = fs::absolute(fs::path(target)).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p;
}

// Makes a rename or a file creation inside `folder` durable (its entry list on disk).
void fsync_folder(const std::string& folder, const std::string& target) {
  int dfd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY);
  MF_CHECK(dfd >= 0, "write '", target, "': cannot open its folder to fsync it: ", std::strerror(errno));
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  MF_CHECK(rc == 0, "write '", target, "': fsync of its folder failed: ", std::strerror(err));
}

}  // namespace

StagedFolder::StagedFolder(const std::string& target) {
  const fs::path t = normalized(target);
  MF_CHECK(!t.filename().empty() && t.has_parent_path(), "save_model: '", target, "' cannot be a save folder");
  target_ = t.string();
  const fs::path parent = t.parent_path();
  make_folder(parent.string());
  std::error_code ec;
  if (fs::exists(t, ec)) {
    MF_CHECK(fs::is_directory(t, ec), "save_model: '", target, "' exists and is not a folder");
    MF_CHECK(fs::exists(t / "config.json", ec) || fs::is_empty(t, ec), "save_model: '", target,
             "' exists and holds something other than a saved model (no config.json); save_model replaces the ",
             "whole folder, so choose a new or empty one");
  }
  // Leftovers of killed saves of this target (Note [Whole saves]).
  const std::string name = t.filename().string();
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with("." + name + ".saving-") || n.starts_with("." + name + ".old-")) fs::remove_all(e.path(), ec);
  }
  std::string pattern = (parent / ("." + name + ".saving-XXXXXX")).string();
  MF_CHECK(::mkdtemp(pattern.data()) != nullptr, "save_model: cannot create a staging folder beside '", target,
           "': ", std::strerror(errno));
  // mkdtemp makes it private (0700); a saved model folder is readable as other folders are.
  fs::permissions(pattern, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec, ec);
  staging_ = pattern;
}

StagedFolder::~StagedFolder() {
  if (published_ || staging_.empty()) return;
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

std::string StagedFolder::file(const std::string& name) const { return (fs::path(staging_) / name).string(); }

void StagedFolder::publish() {
  MF_CHECK(!published_, "save_model: the staged folder was published already");
  const fs::path t(target_), parent = t.parent_path();
  fsync_folder(staging_, target_);
  std::error_code ec;
  if (!fs::exists(t, ec)) {
    MF_CHECK(::rename(staging_.c_str(), target_.c_str()) == 0, "save_model: cannot move the staged save to '",
             target_, "': ", std::strerror(errno));
  } else if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(staging_, ec);  // the old save, now under the staging name
  } else {
    // No exchange on this file system: the old folder steps aside, then the new one moves in.
    std::string aside = (parent / ("." + t.filename().string() + ".old-XXXXXX")).string();
    MF_CHECK(::mkdtemp(aside.data()) != nullptr, "save_model: cannot create a folder beside '", target_, "': ",
             std::strerror(errno));
    fs::remove(aside, ec);
    MF_CHECK(::rename(target_.c_str(), aside.c_str()) == 0, "save_model: cannot move the old save '", target_,
             "' aside: ", std::strerror(errno));
    MF_CHECK(::rename(staging_.c_str(), target_.c_str()) == 0, "save_model: cannot move the staged save to '",
             target_, "': ", std::strerror(errno));
    fs::remove_all(aside, ec);
  }
  published_ = true;
  fsync_folder(parent.string(), target_);
}

}  // namespace saving

namespace {

// Closes the descriptor and removes the temporary file unless the write completed.
struct TempFile {
  std::string path;
  int fd = -1;
  bool keep = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!keep && !path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

// Note [Atomic writes]: readers see the old file or the new one, never a mix. The bytes go to a
// temporary file in the same folder (rename is atomic only within one file system), are fsynced
// so the data is on disk before the name points at it, then renamed over the target; the folder
// is fsynced last so the rename itself survives a power cut.
void write_file_atomic(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  MF_CHECK(!path.empty(), "write_file_atomic: empty path");
  fs::path target(path);
  std::string folder = target.has_parent_path() ? target.parent_path().string() : ".";
  MF_CHECK(fs::is_directory(folder), "cannot write '", path, "': the folder '", folder, "' does not exist");
  TempFile tmp;
  std::string pattern = (fs::path(folder) / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  tmp.fd = ::mkstemp(pattern.data());
  MF_CHECK(tmp.fd >= 0, "cannot write '", path, "': cannot create a temporary file in '", folder, "': ",
           std::strerror(errno));
  tmp.path = pattern;
  constexpr size_t kChunk = 1 << 20;
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(tmp.fd, bytes.data() + done, std::min(kChunk, bytes.size() - done));
    if (n < 0 && errno == EINTR) continue;
    MF_CHECK(n > 0, "cannot write '", path, "' (temporary file '", tmp.path, "'): ", std::strerror(errno));
    done += static_cast<size_t>(n);
    if (saving::g_after_chunk_written) saving::g_after_chunk_written(done);
  }
  // mkstemp creates the file 0600; give it the permissions a plain fopen would.
  mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(tmp.fd, 0666 & ~mask);
  MF_CHECK(::fsync(tmp.fd) == 0, "cannot write '", path, "': fsync failed: ", std::strerror(errno));
  MF_CHECK(::close(tmp.fd) == 0, "cannot write '", path, "': close failed: ", std::strerror(errno));
  tmp.fd = -1;
  MF_CHECK(::rename(tmp.path.c_str(), path.c_str()) == 0, "cannot write '", path, "': renaming the temporary file ",
           "failed: ", std::strerror(errno));
  tmp.keep = true;
  saving::fsync_folder(folder, path);
}

}  // namespace meshflow
