// File helpers shared by the savers: whole-file reads with clear errors, folders, safetensors bytes.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "meshflow/models/layer.h"

namespace meshflow::saving {

// The whole file; a missing or unreadable file is an error naming `what` and the path.
std::string read_whole_file(const std::string& path, const std::string& what);
// Creates the folder and its parents when missing.
void make_folder(const std::string& folder);

std::string encode_safetensors(const std::vector<std::pair<std::string, Tensor>>& tensors, const Json& metadata);
std::vector<std::pair<std::string, Tensor>> decode_safetensors(const std::string& bytes, const std::string& source,
                                                               Json* metadata);

// Note [Whole saves]
// save_model writes several files; a kill between two of them must not leave a folder that mixes
// two saves. The files go to a staging folder beside the target (".NAME.saving-XXXXXX", same file
// system), and publish() swaps it into place with one renameat2(RENAME_EXCHANGE) (or, where the
// file system cannot exchange, renames the old folder aside first, so the target is briefly
// absent but never mixed), then removes the old one. The next save of the same target removes
// what a killed save left (staging folders, old folders aside). Readers see the old save or the
// new one; load_model also checks that every file carries the same save id.
class StagedFolder {
 public:
  // Removes leftovers of killed saves of `target` and makes the staging folder. An existing
  // target must be a folder holding a save (config.json) or nothing, since publish() replaces it.
  explicit StagedFolder(const std::string& target);
  ~StagedFolder();  // removes the staging folder unless it was published
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;
  // Where to write `file` before publishing.
  std::string file(const std::string& name) const;
  // Puts the staged folder at the target, atomically where the file system can.
  void publish();

 private:
  std::string target_, staging_;
  bool published_ = false;
};

// Test hook: called after each chunk write_file_atomic writes (lets a test slow the write down
// to kill the process in the middle of it). Null by default.
extern void (*g_after_chunk_written)(size_t bytes_so_far);

}  // namespace meshflow::saving
